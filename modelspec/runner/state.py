"""A run's state as one object: what the checkpoint holds, and what resume restores.

`RunState.state_dict()` *is* the checkpoint (as nanoGPT's checkpoint is a dict of model, optimizer,
iter_num, best_val_loss and config), so saving and resuming cannot drift apart. A checkpoint taken
between epochs has `batch == 0`; one taken mid-epoch (Ctrl-C) records the batches done, the data-order
generator's state at the epoch's start (which redraws its order and augmentation), the other random
states as they are now, and the epoch's metric sums so far.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..compile.task import Monitor
from .device import rng_states, set_rng_states
from .metrics import MetricSet


class EarlyStopping:
    """Stop when the monitored value has not improved by `min_delta` for `patience` epochs."""

    def __init__(self, monitor: Monitor, patience: int, min_delta: float):
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.best: float | None = None
        self.bad_epochs = 0

    def should_stop(self, row: dict[str, Any]) -> bool:
        value = row.get(self.monitor.name)
        if value is None:
            return False
        if self.monitor.better(value, self.best, self.min_delta):
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        return self.stopped

    @property
    def stopped(self) -> bool:
        """The run has stopped early (a checkpoint taken after that epoch resumes to no more epochs)."""
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]


# What every checkpoint holds, in every version of `state_dict()`: a file without them is not one.
CHECKPOINT_KEYS = ("spec_hash", "epoch", "batch", "model", "optimizer", "rng", "rows", "run_seconds")


@dataclass
class RunState:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any | None
    scaler: torch.amp.GradScaler
    stopper: EarlyStopping | None
    generator: torch.Generator | None  # the data order
    train_metrics: MetricSet
    spec_hash: str
    epoch: int = 1  # the epoch under way, or the next one
    batch: int = 0  # batches of `epoch` done
    rows: list[dict[str, Any]] = field(default_factory=list)
    run_seconds: float = 0.0
    epoch_order: torch.Tensor | None = None  # the data generator's state at the start of `epoch`
    pruned: str | None = None  # why a search's pruner ended the run (a checkpoint after it resumes to no epoch)

    def begin_epoch(self) -> None:
        """Remember the data generator's state, which draws this epoch's order (a resumed epoch has it).
        Only it: a resumed epoch continues the other random states (dropout) from the checkpoint's
        instant, so capturing them here would be wasted on every epoch that is not interrupted."""
        if self.batch == 0:
            self.epoch_order = self.generator.get_state() if self.generator is not None else None
            self.train_metrics.reset()

    def end_epoch(self) -> None:
        self.epoch, self.batch, self.epoch_order = self.epoch + 1, 0, None

    def state_dict(self) -> dict[str, Any]:
        mid_epoch = self.batch > 0
        return {
            "spec_hash": self.spec_hash, "epoch": self.epoch, "batch": self.batch,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "early_stopping": self.stopper.state_dict() if self.stopper is not None else None,
            # Mid-epoch: every state as it is now, but the data order's as the epoch began.
            "rng": {**rng_states(self.generator), "data": self.epoch_order} if mid_epoch else rng_states(self.generator),
            "metrics": self.train_metrics.state_dict() if mid_epoch else None,
            "rows": self.rows, "run_seconds": self.run_seconds, "pruned": self.pruned,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler.is_enabled() and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        if self.stopper is not None and state.get("early_stopping") is not None:
            self.stopper.load_state_dict(state["early_stopping"])
        self.rows, self.run_seconds = list(state["rows"]), state["run_seconds"]
        self.pruned = state.get("pruned")
        self.epoch, self.batch = state["epoch"], state["batch"]
        # The generator back at the epoch's start redraws the same order; the other random states
        # (dropout masks) continue from where the stopped process was.
        set_rng_states(state["rng"], self.generator)
        if state.get("rng_now") is not None:  # a mid-epoch checkpoint of modelspec before 2026-11
            set_rng_states(state["rng_now"], None)
        if self.batch > 0:
            self.epoch_order = state["rng"]["data"]
            self.train_metrics.load_state_dict(state["metrics"])
