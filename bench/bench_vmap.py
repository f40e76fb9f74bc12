"""`--executor vmap` (issue #22): a grid's runs trained as one stacked model, against one run after another.

Two grids, each side by side in this one process with one torch thread, the sides alternating for
`--repeat` rounds on fresh folders, the fastest round of each side counting (a shared machine's noise
only ever adds time), wall and process-CPU seconds:

- tiny: bench_grid.py's grid (a 32-64-10 MLP, 1,024 synthetic samples, batch 64, Adam, 10 epochs a
  run, R runs over the seed) three ways: (h) its hand-written loop that logs the same scalars to
  TensorBoard, (s) modelspec's sequential executor, (v) `--executor vmap`. The figures: h/v and s/v
  (above 1: vmap is faster) and the milliseconds per run-epoch of each side, for each R. With
  `--task binary` (one logit, bce_with_logits: accuracy, auroc and f1), `--task multilabel` (10
  labels, bce_with_logits: f1, accuracy and per-label f1) or `--task regression` (one real target,
  mse: rmse, mae, r2 and mape), the same grid for that task's default metrics, s and v only (the
  hand-written loop is the multi-class one).
- fashion: `specs/fashion_bn.yaml`'s grid of 8 runs (2 networks x 2 learning rates x 2 batch sizes)
  on the CPU, sequential against vmap (4 packs of 2: a pack shares network and batch size), on the
  Fashion-MNIST files in `--fashion-root` (default ../shared/data, read only; synthetic images where
  they are absent) or on `--fashion-size` images tiled from them into a temporary folder.

    python bench/bench_vmap.py                              # tiny R = 1, 16, 64, 256, then fashion
    python bench/bench_vmap.py --only tiny --runs 64 --repeat 5
    python bench/bench_vmap.py --only fashion --fashion-epochs 2
    python bench/bench_vmap.py --only tiny --runs 64 --profile   # where the packed grid's time goes
    python bench/bench_vmap.py --only tiny --runs 64 --task binary  # a binary task's default metrics
    python bench/bench_vmap.py --smoke                      # seconds: that it still runs

`--profile` runs the vmap side once more under cProfile after the timed rounds and prints the
modelspec functions that take the most of it (cumulative, with their share of the grid's time) and
the calls that take the most time of their own.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_grid import SPEC, hand_written, modelspec_grid, schedstat  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


HEAD = "out_features: num_classes"
TASKS = {  # the tiny grid's spec for another task: (what it replaces, with what)
    "multiclass": [],
    "binary": [("num_classes: 10", "num_classes: 2"), (HEAD, "out_features: 1"),
               ("  optimizer:", "  loss: bce_with_logits\n  optimizer:")],
    "multilabel": [("num_classes: 10", "target_kind: binary\n  num_classes: 10"),
                   ("  optimizer:", "  loss: bce_with_logits\n  optimizer:")],
    "regression": [("  num_classes: 10\n", "  target_kind: real\n"), (HEAD, "out_features: 1"),
                   ("  optimizer:", "  loss: mse\n  optimizer:")],
}


def task_spec(task: str) -> str:
    text = SPEC
    for old, new in TASKS[task]:
        assert old in text, old
        text = text.replace(old, new)
    return text


def vmap_executor(pack_size: int | None):
    from modelspec.runner.vmap_grid import VmapExecutor

    return VmapExecutor(pack_size=pack_size)


def fastest(sides: dict[str, Callable[[Path], None]], repeat: int) -> dict[str, dict[str, float]]:
    """Each side's fastest round: wall and process-CPU seconds, and "own" seconds (the wall less the
    time the training thread was ready with no core free: the load, which moves between rounds)."""
    names = list(sides)
    best = {name: {"wall": math.inf, "cpu": math.inf, "own": math.inf} for name in names}
    for round_ in range(repeat):
        shift = round_ % len(names)  # each side goes first in turn
        for name in names[shift:] + names[:shift]:
            with tempfile.TemporaryDirectory(prefix=f"bench_vmap_{name}_") as folder:
                start, start_cpu, (_, start_ready, _) = time.perf_counter(), time.process_time(), schedstat()
                sides[name](Path(folder))
                wall, ready = time.perf_counter() - start, schedstat()[1] - start_ready
                figures = {"wall": wall, "cpu": time.process_time() - start_cpu, "own": wall - ready}
                best[name] = {key: min(best[name][key], value) for key, value in figures.items()}
            settle_disk()
    return best


def settle_disk() -> None:
    """Between rounds, untimed: the disk's journal takes in the folder just removed (thousands of
    entries) now, rather than stretching the next side's file creations and fsyncs (on this VM a
    run folder's creation took 0.05 ms or 0.7 ms as the last round's removal was or was not flushed)."""
    if hasattr(os, "sync"):
        os.sync()


def expect_packs(lines: list[str], runs: int) -> None:
    """The vmap side really packed: a benchmark of runs that silently trained alone would mislead."""
    packed = sum(int(line.split()[1]) for line in lines if line.startswith("packing "))
    if runs > 1 and packed != runs:
        raise SystemExit(f"expected all {runs} runs packed, {packed} were:\n" + "\n".join(lines))


def tiny(args, x: torch.Tensor, y: torch.Tensor) -> None:
    print(f"\ntiny MLP grid ({args.task}): {args.size} samples, batch 64, {args.epochs} epochs a run, one torch"
          f" thread; pack size {args.pack_size or 'by memory'}; fastest of {args.repeat} rounds")
    executor, spec = vmap_executor(args.pack_size), task_spec(args.task)

    def vmap_side(runs: int, folder: Path) -> None:
        expect_packs(modelspec_grid(runs, args.epochs, args.size, folder, args.set, executor, spec), runs)

    print(f"{'runs':>5} {'h wall s':>9} {'s wall s':>9} {'v wall s':>9} {'h/v':>6} {'s/v':>6} {'h/v cpu':>8}"
          f" {'s/v cpu':>8} {'h/v own':>8} {'h ms/ep':>8} {'s ms/ep':>8} {'v ms/ep':>8}")
    for runs in args.runs:
        sides = {
            "hand": lambda folder: hand_written(runs, args.epochs, args.size, folder, x, y),
            "sequential": lambda folder: modelspec_grid(runs, args.epochs, args.size, folder, args.set, None, spec),
            "vmap": lambda folder: vmap_side(runs, folder),
        }
        if args.task != "multiclass":
            del sides["hand"]
        best = fastest(sides, args.repeat)
        nan = {"wall": math.nan, "cpu": math.nan, "own": math.nan}
        h, s, v, per = best.get("hand", nan), best["sequential"], best["vmap"], runs * args.epochs
        print(f"{runs:>5} {h['wall']:>9.2f} {s['wall']:>9.2f} {v['wall']:>9.2f} {h['wall'] / v['wall']:>6.2f}"
              f" {s['wall'] / v['wall']:>6.2f} {h['cpu'] / v['cpu']:>8.2f} {s['cpu'] / v['cpu']:>8.2f}"
              f" {h['own'] / v['own']:>8.2f} {1000 * h['wall'] / per:>8.2f} {1000 * s['wall'] / per:>8.2f}"
              f" {1000 * v['wall'] / per:>8.2f}", flush=True)
    if args.profile:
        profile(f"the vmap side, {args.runs[-1]} runs", lambda folder: vmap_side(args.runs[-1], folder))


def fashion_data(args, folder: Path) -> tuple[Path, str]:
    """The folder holding FashionMNIST/raw, and where its images come from."""
    source = args.fashion_root if (args.fashion_root / "FashionMNIST" / "raw").is_dir() else None
    if source is not None and not args.fashion_size:
        return source, f"the files in {source}"
    from bench_train import build_dataset

    train_size = args.fashion_size or 2048
    return folder, build_dataset(folder, train_size, max(train_size // 6, 256), source)


def fashion_grid(root: Path, folder: Path, args, executor=None, epochs: int | None = None) -> None:
    from modelspec.load import load_spec
    from modelspec.runner import run_grid

    overrides = [f"tracking.dir={folder}", f"data.root={root}", "data.download=false", "train.device=cpu",
                 f"train.epochs={epochs or args.fashion_epochs}", *args.fashion_set]
    lines: list[str] = []
    result = run_grid(load_spec(REPO / "specs" / "fashion_bn.yaml", overrides), quiet=True, log=lines.append,
                      executor=executor)
    assert not result.failed, [o.reason for o in result.outcomes.values()]
    if executor is not None:
        expect_packs(lines, len(result.outcomes))


def fashion(args) -> None:
    executor = vmap_executor(args.pack_size)
    with tempfile.TemporaryDirectory(prefix="bench_vmap_data_") as data:
        root, origin = fashion_data(args, Path(data))
        print(f"\nspecs/fashion_bn.yaml, 8 runs, {args.fashion_epochs} epochs a run (the spec says 5), CPU, one torch"
              f" thread; data: {origin}; fastest of {args.fashion_repeat} rounds")
        with tempfile.TemporaryDirectory() as folder:  # the normalize statistics, cached for both sides
            fashion_grid(root, Path(folder), args, epochs=1)
        best = fastest({"sequential": lambda folder: fashion_grid(root, folder, args),
                        "vmap": lambda folder: fashion_grid(root, folder, args, executor)}, args.fashion_repeat)
        s, v, per = best["sequential"], best["vmap"], 8 * args.fashion_epochs
        print(f"sequential {s['wall']:.2f} s wall, {s['cpu']:.2f} s CPU; vmap {v['wall']:.2f} s wall, {v['cpu']:.2f} s CPU;"
              f" s/v wall {s['wall'] / v['wall']:.2f}, CPU {s['cpu'] / v['cpu']:.2f}, own {s['own'] / v['own']:.2f};"
              f" s per run-epoch {s['wall'] / per:.3f} / {v['wall'] / per:.3f}", flush=True)
        if args.profile:
            profile("the vmap side of fashion_bn", lambda folder: fashion_grid(root, folder, args, executor))


def profile(title: str, side: Callable[[Path], None], top: int = 25) -> None:
    """`side` once under cProfile: modelspec's functions by cumulative time, then every call by own time."""
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory(prefix="bench_vmap_profile_") as folder:
        start = time.perf_counter()
        profiler.runcall(side, Path(folder))
        total = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    rows = []
    for (file, line, function), (_, calls, own, cumulative, _) in stats.stats.items():
        rows.append((cumulative, own, calls, f"{_short(file)}:{line}({function})"))
    print(f"\nprofile of {title}: {total:.2f} s under cProfile (which slows Python calls, not kernels)")
    print("  modelspec functions by cumulative time (share of the grid's time, calls):")
    ours = sorted((r for r in rows if r[3].startswith("modelspec/")), reverse=True)[:top]
    for cumulative, _, calls, name in ours:
        print(f"  {100 * cumulative / total:5.1f} % {cumulative:7.3f} s {calls:7d}  {name}")
    print("  any call by its own time:")
    for cumulative, own, calls, name in sorted(rows, key=lambda r: -r[1])[:15]:
        print(f"  {100 * own / total:5.1f} % {own:7.3f} s {calls:7d}  {name}")
    sys.stdout.flush()


def _short(file: str) -> str:
    """A path from its package down: modelspec/runner/stacked/pack.py, torch/autograd/graph.py."""
    parts = Path(file).parts
    for package in ("modelspec", "torch", "torchmetrics", "tensorboard"):
        if package in parts:
            return str(Path(*parts[len(parts) - 1 - parts[::-1].index(package):]))
    return file if file.startswith("<") or file == "~" else Path(file).name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("tiny", "fashion"), help="one of the two grids (default both)")
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 16, 64, 256], help="tiny: grid sizes")
    parser.add_argument("--epochs", type=int, default=10, help="tiny: epochs a run")
    parser.add_argument("--size", type=int, default=1024, help="tiny: samples")
    parser.add_argument("--repeat", type=int, default=3, help="tiny: alternating rounds; the fastest of each side counts")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="tiny: spec overrides")
    parser.add_argument("--task", choices=tuple(TASKS), default="multiclass",
                        help="tiny: the task, and so its default metrics (all but multiclass: s and v only)")
    parser.add_argument("--pack-size", type=int, help="runs per pack at most (default: as many as memory allows)")
    parser.add_argument("--fashion-root", type=Path, default=SHARED_DATA, help="holds FashionMNIST/raw (read only)")
    parser.add_argument("--fashion-size", type=int, help="fashion: training images tiled from the root's, in a temp folder")
    parser.add_argument("--fashion-epochs", type=int, default=5, help="fashion: epochs a run (the spec's 5)")
    parser.add_argument("--fashion-repeat", type=int, default=2, help="fashion: alternating rounds")
    parser.add_argument("--fashion-set", action="append", default=[], metavar="PATH=VALUE", help="fashion: overrides")
    parser.add_argument("--profile", action="store_true", help="then profile the vmap side once (cProfile)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, synthetic images: that it runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.runs, args.epochs, args.size, args.repeat = [1, 3], 2, 128, 1
        args.fashion_root, args.fashion_size, args.fashion_epochs, args.fashion_repeat = Path("/nonexistent"), 256, 1, 1
    torch.set_num_threads(1)
    from modelspec.load import loads_spec
    from modelspec.readers.synthetic import _split as synthetic_split  # the samples modelspec trains on

    print(f"torch {torch.__version__}, one thread")
    if args.only in (None, "tiny"):
        source = synthetic_split(loads_spec(SPEC.format(size=args.size, epochs=1, seeds=[0]), "tiny.yaml").spec.data,
                                 train=True)
        with tempfile.TemporaryDirectory() as folder:  # imports and first-use costs, untimed
            modelspec_grid(2, 1, args.size, Path(folder), args.set, vmap_executor(None), task_spec(args.task))
        tiny(args, source.tensors, source.targets)
    if args.only in (None, "fashion"):
        fashion(args)


if __name__ == "__main__":
    main()
