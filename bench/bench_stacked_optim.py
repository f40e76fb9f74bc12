"""The stacked optimizer step of #22 against torch's optimizers stepping each run on its own.

R runs of the tiny MLP of bench_grid.py (32-64-3), each with its own learning rate: one
`StackedOptimizer.step()` over the stacked parameters (R, *shape) against R torch optimizer steps
(`foreach=False`, the rounding the stacked step reproduces bit for bit, and `foreach=True`). Only the
optimizer step is timed (the gradients are fixed), on one thread, wall and CPU time both: on a busy
machine a wall ratio far above the CPU ratio means the process waited, not that it worked.

    python bench/bench_stacked_optim.py            # R = 1, 16, 64, 256; adam and sgd with momentum
    python bench/bench_stacked_optim.py --smoke    # a few steps, to check that it runs
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import torch
from torch.func import stack_module_state

from modelspec.runner.stacked import StackedOptimizer

KINDS = {"adam": (torch.optim.Adam, {}), "sgd": (torch.optim.SGD, {"momentum": 0.9})}


def mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3))


def timed(step: Callable[[], object], steps: int) -> tuple[float, float]:
    """(wall, CPU) seconds per call, after a warm-up."""
    for _ in range(max(2, steps // 10)):
        step()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def compare(kind: str, runs: int, steps: int) -> list[str]:
    torch_class, extra = KINDS[kind]
    models = [mlp() for _ in range(runs)]
    settings = [{"lr": 1e-3 * (1 + i / runs), **extra} for i in range(runs)]  # a different lr per run
    stacked, _ = stack_module_state(models)
    params = {name: tensor.detach().clone().requires_grad_() for name, tensor in stacked.items()}
    for tensor in params.values():
        tensor.grad = torch.randn_like(tensor)
    optimizer = StackedOptimizer(params, kind, settings)
    rows = [("stacked", timed(optimizer.step, steps))]
    for foreach in (False, True):
        optimizers = []
        for model, setting in zip(models, settings):
            for p in model.parameters():
                p.grad = torch.randn_like(p)
            optimizers.append(torch_class(model.parameters(), foreach=foreach, **setting))
        rows.append((f"torch, foreach={foreach}", timed(lambda: [o.step() for o in optimizers], steps)))
    (_, (wall, cpu)) = rows[0]
    return [f"{kind:5s} R={runs:<4d} {name:22s} {w * 1e3:8.3f} ms  {c * 1e3:8.3f} ms CPU  "
            f"ratio to stacked: wall {w / wall:5.1f}  CPU {c / cpu:5.1f}" for name, (w, c) in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few steps of R=4, to check that it runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    sizes, steps = ((4,), 5) if args.smoke else ((1, 16, 64, 256), 100)
    print(f"torch {torch.__version__}, one thread; time per optimizer step of all R runs")
    for kind in KINDS:
        for runs in sizes:
            print("\n".join(compare(kind, runs, steps)))


if __name__ == "__main__":
    main()
