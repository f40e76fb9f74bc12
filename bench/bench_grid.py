"""Small grids: modelspec's fixed costs per run and per epoch against a hand-written loop.

A tiny MLP (32 features -> 64 -> 10 classes) on 1,024 synthetic samples (20 % validation), batch
size 64, Adam, 10 epochs per run, R runs (a grid over the seed). The hand-written loop does what a
careful person writes around it: re-seed, build, train, evaluate the validation split, and log the
same scalars to TensorBoard (loss and accuracy on both splits, the learning rate) through one
SummaryWriter per run. modelspec runs the same grid with `run_grid` at its defaults (the results
table, TensorBoard with histograms, images and graph, checkpoints at their `auto` cadence, each run's
weights, run.json and confusion matrix files).

    python bench/bench_grid.py                  # R = 1, 16, 64
    python bench/bench_grid.py --runs 1 16 64 256
    python bench/bench_grid.py --smoke          # seconds: that it still runs
    python bench/bench_grid.py --runs 1000 --per-run   # modelspec's time per run, by tenths of the grid
    python bench/bench_grid.py --runs 64 --waits       # where each side's wall time goes: CPU, load, waits
    python bench/bench_grid.py --runs 64 --interleave 8   # both sides as alternating grids of 8: the same load
    python bench/bench_grid.py --runs 64 --executor vmap  # modelspec's side packed (#22; bench_vmap.py: all three)

Both sides run in this one process with one torch thread, alternately, each on fresh folders, as
many rounds as `--repeat` says; the figures are the fastest round's wall seconds per grid of each
side (a shared machine's noise only ever adds time), their ratio, and the cost per run-epoch; then
the ratio of the process CPU seconds and the "own" ratio: the wall less the time the training thread
was ready to run but had no core (Linux's schedstat). On a loaded machine the load moves between one
side's round and the other's; the own ratio leaves it out and tracks the CPU ratio.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

SPEC = """\
name: tiny
seed: 0
data:
  dataset: synthetic
  input_shape: [32]
  num_classes: 10
  size: {size}
  test_size: 0
  transforms: []
  batch_size: 64
  val_split: 0.2
model:
  - linear: {{out_features: 64}}
  - relu
  - linear: {{out_features: num_classes}}
train:
  epochs: {epochs}
  optimizer: {{name: adam, lr: 0.01}}
  device: cpu
grid:
  seed: {seeds}
export:
  formats: [torchscript]
"""


def hand_written(runs: int, epochs: int, size: int, folder: Path, x: torch.Tensor, y: torch.Tensor) -> None:
    from torch.utils.tensorboard import SummaryWriter

    n_val = int(round(size * 0.2))
    order = torch.randperm(size, generator=torch.Generator().manual_seed(0))
    val, train = order[:n_val].sort().values, order[n_val:].sort().values
    x_train, y_train, x_val, y_val = x[train], y[train], x[val], y[val]
    for seed in range(runs):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        loss_fn = nn.CrossEntropyLoss()
        generator = torch.Generator().manual_seed(seed)
        writer = SummaryWriter(str(folder / f"run{seed}"))
        for epoch in range(1, epochs + 1):
            model.train()
            loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
            perm = torch.randperm(len(y_train), generator=generator)
            for b in range(math.ceil(len(y_train) / 64)):
                index = perm[b * 64 : (b + 1) * 64]
                xb, yb = x_train[index], y_train[index]
                out = model(xb)
                loss = loss_fn(out, yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach() * len(yb)
                correct += (out.argmax(1) == yb).sum()
            model.eval()
            with torch.no_grad():
                out = model(x_val)
                val_loss, val_correct = loss_fn(out, y_val), (out.argmax(1) == y_val).sum()
            model.train()
            writer.add_scalar("loss/train", (loss_sum / len(y_train)).item(), epoch)
            writer.add_scalar("accuracy/train", (correct / len(y_train)).item(), epoch)
            writer.add_scalar("loss/val", val_loss.item(), epoch)
            writer.add_scalar("accuracy/val", (val_correct / len(y_val)).item(), epoch)
            writer.add_scalar("lr", optimizer.param_groups[0]["lr"], epoch)
        writer.close()


def modelspec_grid(runs: int, epochs: int, size: int, folder: Path, overrides: list[str], executor=None,
                   spec: str = SPEC) -> list[str]:
    """One grid through `run_grid` (one run after another, or by `executor`); the lines it logged."""
    from modelspec.load import loads_spec
    from modelspec.runner import run_grid

    text = spec.format(size=size, epochs=epochs, seeds=list(range(runs)))
    loaded = loads_spec(text, "tiny.yaml", [f"tracking.dir={folder}", *overrides])
    lines: list[str] = []
    result = run_grid(loaded, quiet=True, log=lines.append, executor=executor)
    assert not result.failed, [o.reason for o in result.outcomes.values()]
    return lines


def make_executor(name: str, pack_size: int | None):
    """None (run_grid's default: one run after another) or the vmap executor of issue #22."""
    if name == "local":
        return None
    from modelspec.runner.vmap_grid import VmapExecutor

    return VmapExecutor(pack_size=pack_size)


def per_run(runs: int, epochs: int, size: int, overrides: list[str]) -> None:
    """One modelspec grid with each run timed (from its start to its outcome recorded): the median
    of each tenth of the grid, to see whether a run's cost grows with the runs before it."""
    import statistics

    from modelspec.runner import grid

    times: list[float] = []
    run_one = grid.Grid.run_one

    def timed(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return run_one(self, *args, **kwargs)
        finally:
            times.append(time.perf_counter() - start)

    grid.Grid.run_one = timed
    try:
        with tempfile.TemporaryDirectory(prefix="bench_grid_per_run_") as folder:
            modelspec_grid(runs, epochs, size, Path(folder), overrides)
    finally:
        grid.Grid.run_one = run_one
    step = max(runs // 10, 1)
    print(f"modelspec, {runs} runs: median ms per run by tenth of the grid")
    print("  " + " ".join(f"{1000 * statistics.median(times[i : i + step]):.1f}" for i in range(0, runs, step)))


class WaitClock:
    """Seconds the training thread spends in each place it can wait (`--waits`): a Future of the
    files thread, an fsync, a TensorBoard writer's close, a thread's join. The waits are found by
    patching those calls, each wrapped in time.perf_counter, and summed per caller."""

    def __init__(self):
        import collections
        import threading

        self.main = threading.main_thread()
        self.seconds: dict[str, float] = collections.defaultdict(float)
        self.calls: dict[str, int] = collections.defaultdict(int)
        self.undo: list[tuple[object, str, object]] = []

    def wrap(self, owner, name: str, label: str) -> None:
        import sys
        import threading

        original = getattr(owner, name)

        def timed(*args, **kwargs):
            if threading.current_thread() is not self.main:
                return original(*args, **kwargs)
            caller = sys._getframe(1).f_code.co_name
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                key = f"{label} (in {caller})"
                self.seconds[key] += time.perf_counter() - start
                self.calls[key] += 1

        setattr(owner, name, timed)
        self.undo.append((owner, name, original))

    def __enter__(self) -> "WaitClock":
        import concurrent.futures
        import os
        import threading

        from torch.utils.tensorboard import SummaryWriter

        self.wrap(concurrent.futures.Future, "result", "Future.result")
        self.wrap(concurrent.futures.Future, "exception", "Future.exception")
        self.wrap(os, "fsync", "os.fsync")
        self.wrap(threading.Thread, "join", "Thread.join")
        self.wrap(SummaryWriter, "close", "SummaryWriter.close")
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, original in reversed(self.undo):
            setattr(owner, name, original)


def schedstat() -> tuple[float, float, int]:
    """This thread's seconds on a CPU and waiting for one (ready, but the cores were busy: the load),
    and how many times it was put on a core, from Linux's /proc/thread-self/schedstat; what is left
    of the wall time it was blocked: a lock (the GIL), a Future, a disk."""
    try:
        with open("/proc/thread-self/schedstat") as handle:
            on_cpu, runqueue, slices = handle.read().split()
    except OSError:
        return math.nan, math.nan, 0
    return int(on_cpu) / 1e9, int(runqueue) / 1e9, int(slices)


def switches() -> tuple[int, int]:
    """This thread's voluntary context switches (it blocked: a lock, the GIL, a Future, a disk) and
    involuntary ones (its time slice was up and another task took the core)."""
    counts = {}
    try:
        with open("/proc/thread-self/status") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.endswith("ctxt_switches"):
                    counts[key] = int(value)
    except OSError:
        return 0, 0
    return counts.get("voluntary_ctxt_switches", 0), counts.get("nonvoluntary_ctxt_switches", 0)


def waits(runs: int, epochs: int, size: int, overrides: list[str], x: torch.Tensor, y: torch.Tensor,
          executor=None) -> None:
    """Both sides once, each with its training thread's wall time split into CPU, waiting for a core
    (the machine's load) and blocked (waiting on something of its own), and modelspec's waits timed
    where it can wait."""
    for name in ("hand", "modelspec"):
        with tempfile.TemporaryDirectory(prefix="bench_grid_waits_") as folder, WaitClock() as clock:
            wall, cpu, before, switched = time.perf_counter(), time.process_time(), schedstat(), switches()
            if name == "hand":
                hand_written(runs, epochs, size, Path(folder), x, y)
            else:
                modelspec_grid(runs, epochs, size, Path(folder), overrides, executor)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            thread, ready, slices = (b - a for a, b in zip(before, schedstat()))
            voluntary, involuntary = (b - a for a, b in zip(switched, switches()))
        print(f"{name}, {runs} runs: wall {wall:.2f} s, process CPU {cpu:.2f} s; training thread: CPU {thread:.2f} s,"
              f" waiting for a core {ready:.2f} s, blocked {wall - thread - ready:.2f} s; on a core {slices} times,"
              f" after blocking {voluntary}, after preemption {involuntary}")
        for key, seconds in sorted(clock.seconds.items(), key=lambda item: -item[1]):
            print(f"  {1000 * seconds:9.1f} ms in {clock.calls[key]:5d} calls  {key}")


def interleaved(runs: int, chunk: int, epochs: int, size: int, overrides: list[str], x: torch.Tensor,
                y: torch.Tensor, executor=None) -> None:
    """Each side's `runs` as grids of `chunk` runs, the two sides alternating grid by grid, so that
    both meet the same load on a busy machine; the ratios of the sums. (A grid of `chunk` runs pays
    its per-grid costs runs/chunk times: the ratio is a little above a single grid's.)"""
    sums = {name: {"wall": 0.0, "cpu": 0.0, "ready": 0.0} for name in ("hand", "modelspec")}
    for index in range(math.ceil(runs / chunk)):
        for name in ("hand", "modelspec") if index % 2 else ("modelspec", "hand"):
            with tempfile.TemporaryDirectory(prefix=f"bench_grid_{name}_") as folder:
                start, start_cpu, (_, start_ready, _) = time.perf_counter(), time.process_time(), schedstat()
                if name == "hand":
                    hand_written(chunk, epochs, size, Path(folder), x, y)
                else:
                    modelspec_grid(chunk, epochs, size, Path(folder), overrides, executor)
                figures = {"wall": time.perf_counter() - start, "cpu": time.process_time() - start_cpu,
                           "ready": schedstat()[1] - start_ready}
                sums[name] = {key: sums[name][key] + value for key, value in figures.items()}
    hand, ms = sums["hand"], sums["modelspec"]
    print(f"{runs} runs as alternating grids of {chunk}: wall {hand['wall']:.2f} / {ms['wall']:.2f} s "
          f"= {ms['wall'] / hand['wall']:.2f}, CPU {hand['cpu']:.2f} / {ms['cpu']:.2f} s = {ms['cpu'] / hand['cpu']:.2f}, "
          f"waiting for a core {hand['ready']:.2f} / {ms['ready']:.2f} s "
          f"({hand['ready'] / hand['cpu']:.2f} / {ms['ready'] / ms['cpu']:.2f} s per CPU second)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds; the fastest of each side counts")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="spec overrides for modelspec")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check that it runs")
    parser.add_argument("--per-run", action="store_true", help="only modelspec, each run timed: the median of each tenth")
    parser.add_argument("--interleave", type=int, metavar="CHUNK", help="each side as grids of CHUNK runs, alternating")
    parser.add_argument("--waits", action="store_true", help="each side once: its training thread's CPU, waits for a core, blocked time")
    parser.add_argument("--executor", choices=("local", "vmap"), default="local",
                        help="how modelspec's side runs its grid: one run after another, or packed (#22)")
    parser.add_argument("--pack-size", type=int, help="with --executor vmap: runs per pack at most")
    args = parser.parse_args()
    if args.per_run and args.executor != "local":
        parser.error("--per-run times the runs of a sequential grid one by one: a pack trains its runs at once")
    if args.smoke:
        args.runs, args.epochs, args.size, args.repeat = [2], 2, 128, 1
    torch.set_num_threads(1)
    from modelspec.readers.synthetic import _split as synthetic_split  # the same samples modelspec trains on
    from modelspec.load import loads_spec

    data = loads_spec(SPEC.format(size=args.size, epochs=1, seeds=[0]), "tiny.yaml").spec.data
    source = synthetic_split(data, train=True)
    executor = make_executor(args.executor, args.pack_size)
    print(f"tiny MLP, {args.size} samples, batch 64, {args.epochs} epochs per run; torch {torch.__version__}, 1 thread;"
          f" modelspec's executor: {args.executor}")
    with tempfile.TemporaryDirectory() as folder:  # imports and first-use costs, untimed
        modelspec_grid(2, 1, args.size, Path(folder), args.set, executor)
    if args.per_run:
        for runs in args.runs:
            per_run(runs, args.epochs, args.size, args.set)
        return
    if args.interleave:
        for runs in args.runs:
            interleaved(runs, args.interleave, args.epochs, args.size, args.set, source.tensors, source.targets,
                        executor)
        return
    if args.waits:
        for runs in args.runs:
            waits(runs, args.epochs, args.size, args.set, source.tensors, source.targets, executor)
        return
    print(f"{'runs':>5} {'hand s':>8} {'modelspec s':>12} {'ratio':>6} {'hand ms/ep':>11} {'ms ms/ep':>9}"
          f" {'hand cpu s':>11} {'ms cpu s':>9} {'cpu ratio':>9} {'own ratio':>9}")
    for runs in args.runs:
        # Each side's fastest round of: wall seconds, the process's CPU seconds (every thread's), and
        # "own" seconds: the wall less the time the training thread was ready with no core free (the
        # machine's load, which moves between the two sides' rounds; see --waits).
        best = {name: {"wall": math.inf, "cpu": math.inf, "own": math.inf} for name in ("hand", "modelspec")}
        for round_ in range(args.repeat):
            for name in ("hand", "modelspec") if (runs + round_) % 2 else ("modelspec", "hand"):
                with tempfile.TemporaryDirectory(prefix=f"bench_grid_{name}_") as folder:
                    start, start_cpu, (_, start_ready, _) = time.perf_counter(), time.process_time(), schedstat()
                    if name == "hand":
                        hand_written(runs, args.epochs, args.size, Path(folder), source.tensors, source.targets)
                    else:
                        modelspec_grid(runs, args.epochs, args.size, Path(folder), args.set, executor)
                    wall, ready = time.perf_counter() - start, schedstat()[1] - start_ready
                    figures = {"wall": wall, "cpu": time.process_time() - start_cpu, "own": wall - ready}
                    best[name] = {key: min(best[name][key], value) for key, value in figures.items()}
        hand, ms, per = best["hand"], best["modelspec"], runs * args.epochs
        print(f"{runs:>5} {hand['wall']:>8.2f} {ms['wall']:>12.2f} {ms['wall'] / hand['wall']:>6.2f} "
              f"{1000 * hand['wall'] / per:>11.1f} {1000 * ms['wall'] / per:>9.1f}"
              f" {hand['cpu']:>11.2f} {ms['cpu']:>9.2f} {ms['cpu'] / hand['cpu']:>9.2f} {ms['own'] / hand['own']:>9.2f}")


if __name__ == "__main__":
    main()
