"""The grid's progress: a rich bar for the runs and one for the current epoch's batches."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn


class Progress:
    def __init__(self, runs: int, enabled: bool = True):
        self.enabled = enabled
        self.console = Console(stderr=True)
        self.bar = RichProgress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=self.console, transient=False, disable=not enabled,
        )
        self.grid_task = self.bar.add_task("grid", total=runs)
        self.batch_task = None
        self.epoch = 0
        self.epochs = 0
        self.run = ""

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        self.bar.__exit__(*exc)

    def log(self, message: str) -> None:
        if self.enabled:  # --quiet: the final table says what happened
            # soft_wrap: a line is never cut at the console's width (80 columns in a CI log or a
            # `nohup` file, where nobody resizes the window); a terminal wraps long lines itself.
            self.bar.console.print(message, markup=False, highlight=False, soft_wrap=True)

    def start_run(self, name: str, epochs: int) -> None:
        self.run, self.epochs, self.epoch = name, epochs, 1
        if self.batch_task is not None:
            self.bar.remove_task(self.batch_task)
        self.batch_task = self.bar.add_task(f"{name} epoch 1/{epochs}", total=None)

    def batch(self, done: int, total: int) -> None:
        if self.enabled and self.batch_task is not None:
            self.bar.update(self.batch_task, completed=done, total=total)

    def epoch_done(self, row: dict[str, Any], metrics: list[str]) -> None:
        """One line per epoch: every split's loss and metrics, as the row names them."""
        self.log(epoch_line(self.run, row, metrics))
        self.epoch = row["epoch"] + 1
        if self.batch_task is not None and self.epoch <= self.epochs:
            self.bar.update(self.batch_task, description=f"{self.run} epoch {self.epoch}/{self.epochs}", completed=0)

    def advance_run(self, name: str) -> None:
        self.bar.advance(self.grid_task)

    def running(self, names: list[str], queued: int) -> None:
        """Runs trained elsewhere at once (Ray): which are in flight, how many wait."""
        shown = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
        self.bar.update(self.grid_task, description=f"running {shown or '-'}; queued {queued}")


def epoch_line(run: str, row: dict[str, Any], metrics: list[str]) -> str:
    values = " ".join(f"{key} {row[key]:.4f}" for key in metrics if row.get(key) is not None)
    return f"{run} epoch {row['epoch']}: {values} ({row['epoch_duration']:.2f}s)"
