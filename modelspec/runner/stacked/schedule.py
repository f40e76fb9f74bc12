"""Each run's learning rate, as its own scheduler sets it, for a pack's stacked optimizer step.

The runs of a pack may schedule differently (a grid over `step_size` or `gamma`, or different epochs
for a cosine's horizon), so each run keeps a torch scheduler of its own, over a stand-in optimizer
holding one scalar and the run's learning rate: torch computes exactly the rate it computes for the
run alone, and the pack reads the rates as float64 (torch's Python floats) for
`StackedOptimizer.set_lr`. A run that has stopped is not stepped: its rate stays where it stopped.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from ...spec.train import SchedulerSpec
from .optim import Unpackable


class StackedSchedules:
    """One scheduler per run (None: a constant rate), stepped per batch or per epoch as each says."""

    def __init__(self, specs: Sequence[SchedulerSpec | None], lrs: Sequence[float], *, epochs: Sequence[int],
                 steps_per_epoch: int, higher_is_better: Sequence[bool]):
        for spec in specs:
            if spec is not None and spec.name == "onecycle" and spec.kwargs.get("cycle_momentum", True):
                # It also moves each run's momentum (or Adam's beta1) every batch, which the stacked
                # step holds fixed per run today.
                raise Unpackable("onecycle cycles the momentum as well as the learning rate (cycle_momentum); "
                                 "these runs train one at a time")
        # The stand-in's scalar never changes: the scheduler only reads and writes its group's lr.
        self.optimizers = [torch.optim.SGD([torch.zeros((), requires_grad=True)], lr=lr) for lr in lrs]
        self.specs = list(specs)
        self.schedulers = [
            spec.build(optimizer, epochs=n, lr=lr, steps_per_epoch=steps_per_epoch, higher_is_better=higher)
            if spec is not None else None
            for spec, optimizer, n, lr, higher in zip(self.specs, self.optimizers, epochs, lrs, higher_is_better)
        ]

    def lrs(self) -> Tensor:
        """(R,) float64: each run's current learning rate."""
        return torch.tensor([o.param_groups[0]["lr"] for o in self.optimizers], dtype=torch.float64)

    def step_batch(self, active: Sequence[bool] | None = None) -> None:
        """After a training batch: the schedulers that step per batch (one-cycle)."""
        for i in self._stepping(active):
            if self.specs[i].per_batch:
                self._step(i, lambda scheduler: scheduler.step())

    def step_epoch(self, monitored: Sequence[float | None], active: Sequence[bool] | None = None) -> None:
        """After an epoch: the others; plateau reads the run's monitored value (`monitored[i]`)."""
        for i in self._stepping(active):
            self._step(i, lambda scheduler, i=i: self.specs[i].step_epoch(scheduler, monitored[i]))

    def _stepping(self, active: Sequence[bool] | None) -> list[int]:
        return [i for i, s in enumerate(self.schedulers) if s is not None and (active is None or active[i])]

    def _step(self, i: int, step) -> None:
        # The stand-in steps first (nothing to update: no gradient), as a run's optimizer does before
        # its scheduler: torch warns of a scheduler stepped before its optimizer.
        self.optimizers[i].step()
        step(self.schedulers[i])

    def state_dict(self) -> list[dict[str, Any] | None]:
        """Each run's scheduler state, as torch's scheduler of that run alone saves it."""
        return [s.state_dict() if s is not None else None for s in self.schedulers]

    def load_state_dict(self, states: Sequence[dict[str, Any] | None]) -> None:
        for scheduler, optimizer, state in zip(self.schedulers, self.optimizers, states):
            if scheduler is not None:
                scheduler.load_state_dict(state)
                # The rate the run had is in the scheduler's state; the stand-in group takes it back.
                optimizer.param_groups[0]["lr"] = scheduler.get_last_lr()[0] if hasattr(scheduler, "get_last_lr") \
                    else optimizer.param_groups[0]["lr"]
