"""The runner: one generic, device-aware training loop over every run of a grid."""

from .grid import GridResult, latest_grid_folder, run_grid
from .loop import RunContext, RunOutcome, train_run

__all__ = ["GridResult", "latest_grid_folder", "run_grid", "RunContext", "RunOutcome", "train_run"]
