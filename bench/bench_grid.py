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

Both sides run in this one process with one torch thread, alternately, each on fresh folders, as
many rounds as `--repeat` says; the figures are the fastest round's wall seconds per grid of each
side (a shared machine's noise only ever adds time), their ratio, and the cost per run-epoch.
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


def modelspec_grid(runs: int, epochs: int, size: int, folder: Path, overrides: list[str]) -> None:
    from modelspec.load import loads_spec
    from modelspec.runner import run_grid

    text = SPEC.format(size=size, epochs=epochs, seeds=list(range(runs)))
    loaded = loads_spec(text, "tiny.yaml", [f"tracking.dir={folder}", *overrides])
    result = run_grid(loaded, quiet=True, log=lambda _: None)
    assert not result.failed, [o.reason for o in result.outcomes.values()]


def per_run(runs: int, epochs: int, size: int, overrides: list[str]) -> None:
    """One modelspec grid with each run timed (from its start to its outcome recorded): the median
    of each tenth of the grid, to see whether a run's cost grows with the runs before it."""
    import statistics

    from modelspec.runner import grid

    times: list[float] = []
    run_one = grid._Grid._run_one

    def timed(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return run_one(self, *args, **kwargs)
        finally:
            times.append(time.perf_counter() - start)

    grid._Grid._run_one = timed
    try:
        with tempfile.TemporaryDirectory(prefix="bench_grid_per_run_") as folder:
            modelspec_grid(runs, epochs, size, Path(folder), overrides)
    finally:
        grid._Grid._run_one = run_one
    step = max(runs // 10, 1)
    print(f"modelspec, {runs} runs: median ms per run by tenth of the grid")
    print("  " + " ".join(f"{1000 * statistics.median(times[i : i + step]):.1f}" for i in range(0, runs, step)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds; the fastest of each side counts")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="spec overrides for modelspec")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check that it runs")
    parser.add_argument("--per-run", action="store_true", help="only modelspec, each run timed: the median of each tenth")
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.epochs, args.size, args.repeat = [2], 2, 128, 1
    torch.set_num_threads(1)
    from modelspec.data.synthetic import _split as synthetic_split  # the same samples modelspec trains on
    from modelspec.load import loads_spec

    data = loads_spec(SPEC.format(size=args.size, epochs=1, seeds=[0]), "tiny.yaml").spec.data
    source = synthetic_split(data, train=True)
    print(f"tiny MLP, {args.size} samples, batch 64, {args.epochs} epochs per run; torch {torch.__version__}, 1 thread")
    with tempfile.TemporaryDirectory() as folder:  # imports and first-use costs, untimed
        modelspec_grid(1, 1, args.size, Path(folder), args.set)
    if args.per_run:
        for runs in args.runs:
            per_run(runs, args.epochs, args.size, args.set)
        return
    print(f"{'runs':>5} {'hand s':>8} {'modelspec s':>12} {'ratio':>6} {'hand ms/ep':>11} {'ms ms/ep':>9}")
    for runs in args.runs:
        times = {"hand": math.inf, "modelspec": math.inf}
        for round_ in range(args.repeat):
            for name in ("hand", "modelspec") if (runs + round_) % 2 else ("modelspec", "hand"):
                with tempfile.TemporaryDirectory(prefix=f"bench_grid_{name}_") as folder:
                    start = time.perf_counter()
                    if name == "hand":
                        hand_written(runs, args.epochs, args.size, Path(folder), source.tensors, source.targets)
                    else:
                        modelspec_grid(runs, args.epochs, args.size, Path(folder), args.set)
                    times[name] = min(times[name], time.perf_counter() - start)
        per = runs * args.epochs
        print(f"{runs:>5} {times['hand']:>8.2f} {times['modelspec']:>12.2f} {times['modelspec'] / times['hand']:>6.2f} "
              f"{1000 * times['hand'] / per:>11.1f} {1000 * times['modelspec'] / per:>9.1f}")


if __name__ == "__main__":
    main()
