"""The tracking protocol: what a run tells every backend (TensorBoard, MLflow, the results table, ...).

A backend is one class in a module of this package with a `name` (what `tracking.backends` lists), its
options as a spec model (`Options`, read at `tracking.<name>`; None: it has none), and the hooks:
`start`, `log` and `finish`; the optional ones default to doing nothing, so a backend implements only
what it can show. The package finds it (tracking/__init__.py: TRACKERS): adding one is one module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Collection

from pydantic import BaseModel

from ..fileio import is_disk_full

if TYPE_CHECKING:  # torch is imported where a run is, not where a spec is read
    import torch
    from torch import nn

STEP = "epoch"  # the row column that counts the steps


def numbers(row: dict[str, Any], hparams: Collection[str]) -> dict[str, float]:
    """A row's numbers but its step and the grid's values (which the row carries for the table)."""
    return {key: value for key, value in row.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != STEP and key not in hparams}


def measurements(row: dict[str, Any], hparams: Collection[str]) -> dict[str, float]:
    """What was measured in an epoch: the losses, metrics and learning rate, not its durations."""
    return {key: value for key, value in numbers(row, hparams).items() if not key.endswith("_duration")}


@dataclass(frozen=True)
class TrackedRun:
    """What a backend knows of the run it follows; plain values, so that tracking needs no spec class."""

    run_dir: Path  # the run's folder: <tracking.dir>/<spec name>/<timestamp>/<run>
    spec: dict[str, Any]  # the resolved spec, as JSON values
    hparams: dict[str, Any] = field(default_factory=dict)  # the run's grid values, by their row column
    resumed: bool = False  # continues from a checkpoint
    graph: bool = True  # the model graph is wanted from this run (the grid traces it once per network)
    log: Callable[[str], None] = print  # a line for the user

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def grid_dir(self) -> Path:
        return self.run_dir.parent

    @property
    def tracking(self) -> dict[str, Any]:
        return self.spec.get("tracking") or {}


class Tracker:
    name: ClassVar[str]  # set by a backend: its name in `tracking.backends`
    Options: ClassVar[type[BaseModel] | None] = None  # its settings at `tracking.<name>`
    # Whether it takes the run's files (`artefacts`): the run then waits for them to be written.
    takes_files: ClassVar[bool] = False

    def __init__(self, run: TrackedRun, options: BaseModel | None = None):
        self.run, self.options = run, options

    @classmethod
    def check(cls, options: BaseModel | None) -> None:
        """Raise a SpecError when the backend cannot work here (its package is missing); called by
        `TrackingSpec.check` before a grid starts, so that no run finds out at its end."""

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

    def artefacts(self, paths: list[Path]) -> None:
        """Files (or folders) the run left, once written: its weights and confusion files after its
        last epoch, its export folder after the export. Asked for by `takes_files`."""


class Guarded(Tracker):
    """A backend whose failure does not end the run: the first error of any hook is said once, with
    the backend's name, and turns the backend off for the rest of the run. A tracker is a report of
    the training, not the training: the run's own files and the results table keep every row. A full
    disk is the exception: it is the run's (the grid stops and keeps the last checkpoint)."""

    def __init__(self, inner: Tracker, log: Callable[[str], None]):
        self.inner, self.say, self.off = inner, log, False
        self.takes_files = inner.takes_files

    def _call(self, hook: str, *args: Any) -> None:
        if self.off:
            return
        try:
            getattr(self.inner, hook)(*args)
        except Exception as exc:
            if is_disk_full(exc):
                raise
            self.off = True
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            self.say(f"tracking: {self.inner.name} failed ({hook}): {type(exc).__name__}: {reason}; it is off for "
                     "the rest of this run, which goes on (its folder and the results table keep every epoch)")

    def start(self, resume_step, rows):
        self._call("start", resume_step, rows)

    def log(self, step, row):
        self._call("log", step, row)

    def finish(self, hparams, summary):
        self._call("finish", hparams, summary)

    def first_batch(self, model, x):
        self._call("first_batch", model, x)

    def model_state(self, step, model):
        self._call("model_state", step, model)

    def confusion(self, step, split, counts, names):
        self._call("confusion", step, split, counts, names)

    def artefacts(self, paths):
        self._call("artefacts", paths)
