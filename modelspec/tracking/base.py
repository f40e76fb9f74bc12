"""The tracking protocol: what a run tells every backend (TensorBoard, the results table, ...).

A backend is one class with `start`, `log` and `finish`; the optional hooks default to doing nothing,
so a backend implements only what it can show. Adding one (MLflow, say) is one file.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# Row keys that are bookkeeping, not measurements.
BOOKKEEPING = frozenset({"run", "epoch", "epoch_duration", "run_duration"})


class Tracker:
    def start(self, resume_step: int | None, rows: list[dict[str, Any]]) -> None:
        """Before the first epoch; `resume_step` is the epoch a resumed run continues at, `rows` the
        rows it already has."""

    def log(self, step: int, row: dict[str, Any]) -> None:
        """One row per epoch: the run, the epoch, every split's loss and metrics, lr, durations."""

    def finish(self, hparams: dict[str, Any], summary: dict[str, Any]) -> None:
        """The run's grid values and its summary (best_* at the best epoch by the monitor, final_* at the last)."""

    # ---- optional hooks
    def first_batch(self, model: nn.Module, x: torch.Tensor) -> None:
        """The first training batch of the run (an image grid, the model graph)."""

    def model_state(self, step: int, model: nn.Module) -> None:
        """The model after an epoch (parameter and gradient histograms), as often as
        `tracking.histograms` says (the runner decides: runner/cadence.py)."""

    def confusion(self, step: int, split: str, counts: torch.Tensor, names: list[str]) -> None:
        """A split's confusion matrix after an epoch (rows true, columns predicted), as often as
        `tracking.images` says."""
