"""Past one process: a grid on Ray against the same grid run one run after another, and what Ray
and torchrun cost to start.

The work: a grid of R runs (8 by default, a grid over the seed) of a small MLP (64 features -> 256
-> 256 -> 10 classes) on 8,192 synthetic samples, batch 64, Adam, E epochs. Each side is the CLI as
a user runs it, in a child process, timed from start to exit:

    sequential   modelspec run SPEC                                  (torch uses every core)
    ray          modelspec run SPEC --executor ray --cpus-per-run C  (Ray started on this machine)

Then the fixed costs: Ray's start-up (ray.init on this machine, the first task's round trip,
shutdown), and torchrun's (`modelspec run --nproc 2` against `modelspec run` on one epoch of 64
samples, so that what differs is starting the processes and their process group).

    python bench/bench_parallel.py                  # R = 8, E = 5, C = 1
    python bench/bench_parallel.py --runs 16 --cpus-per-run 2
    python bench/bench_parallel.py --smoke          # seconds: that it still runs
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SPEC = """\
name: parallel
seed: 0
data:
  dataset: synthetic
  input_shape: [64]
  num_classes: 10
  size: {size}
  test_size: 64
  transforms: []
  batch_size: 64
  val_split: 0.2
model:
  - linear: {{out_features: 256}}
  - relu
  - linear: {{out_features: 256}}
  - relu
  - linear: {{out_features: num_classes}}
train:
  epochs: {epochs}
  optimizer: {{name: adam, lr: 0.001}}
  device: cpu
tracking: {{histograms: false, images: false}}
grid:
  seed: {seeds}
"""


def _cli(args: list[str], cwd: Path) -> float:
    """Wall seconds of one `modelspec` command, start to exit; a failure stops the benchmark."""
    env = {**os.environ, "MODELSPEC_CACHE": str(cwd / "cache"), "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "modelspec", *args], cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"modelspec {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def _spec(folder: Path, runs: int, epochs: int, size: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spec.yaml"
    path.write_text(SPEC.format(size=size, epochs=epochs, seeds=list(range(runs))))
    return path


def grid_times(runs: int, epochs: int, size: int, cpus: float, work: Path) -> tuple[float, float]:
    spec = _spec(work / "grid", runs, epochs, size)
    sequential = _cli(["run", str(spec), "-q", "--set", "tracking.dir=seq"], spec.parent)
    ray = _cli(["run", str(spec), "-q", "--set", "tracking.dir=ray", "--executor", "ray",
                "--cpus-per-run", str(cpus)], spec.parent)
    return sequential, ray


def ray_startup() -> tuple[float, float, float]:
    """Seconds to start Ray on this machine, for the first task's round trip, and to shut down."""
    import ray

    started = time.perf_counter()
    ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    init = time.perf_counter() - started

    @ray.remote
    def nothing() -> int:
        return 0

    started = time.perf_counter()
    ray.get(nothing.remote())
    first = time.perf_counter() - started
    started = time.perf_counter()
    ray.shutdown()
    return init, first, time.perf_counter() - started


def torchrun_startup(work: Path) -> tuple[float, float]:
    spec = _spec(work / "torchrun", 1, 1, 64)
    one = _cli(["run", str(spec), "-q", "--set", "tracking.dir=one"], spec.parent)
    two = _cli(["run", str(spec), "-q", "--set", "tracking.dir=two", "--nproc", "2"], spec.parent)
    return one, two


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--cpus-per-run", type=float, default=1.0)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: that it still runs")
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.epochs, args.size = 2, 1, 256
    print(f"{os.cpu_count()} CPU; torch threads in the sequential grid: all; per Ray run: {args.cpus_per_run:g}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        try:
            import ray  # noqa: F401
        except ImportError:
            print("Ray is not installed (pip install 'modelspec[ray]'): grid and Ray start-up skipped")
        else:
            sequential, on_ray = grid_times(args.runs, args.epochs, args.size, args.cpus_per_run, work)
            print(f"grid of {args.runs} runs x {args.epochs} epochs: sequential {sequential:.1f}s, "
                  f"ray {on_ray:.1f}s, ratio sequential/ray {sequential / on_ray:.2f}")
            init, first, shutdown = ray_startup()
            print(f"ray start-up: init {init:.2f}s, first task {first:.2f}s, shutdown {shutdown:.2f}s")
        one, two = torchrun_startup(work)
        print(f"torchrun start-up: one process {one:.1f}s, --nproc 2 {two:.1f}s, difference {two - one:.1f}s")


if __name__ == "__main__":
    main()
