"""The results table of a grid: one row per run and epoch, saved as CSV and JSON.

Columns follow the rows: the run and epoch, then the training split's loss and metrics, the
validation and test splits', the learning rate and durations, then the grid's values. `ResultsTracker`
is the tracking backend that writes one run's rows into its folder as they come and feeds them to the
grid's table, which the grid saves (atomically) when a run ends.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Iterable

from ..fileio import atomic_write_text, table_json
from .base import Tracker

ROWS_FILE = "rows.jsonl"  # one run's rows, in its folder
FIRST, LAST = ["run", "epoch"], ["current_lr", "epoch_duration", "run_duration"]
EVALUATED = ("val", "test")  # the splits whose columns carry their name (`val_loss`; training's: `loss`)


def taken_columns(measured: Iterable[str]) -> set[str]:
    """Every column a row may have besides the grid's: the fixed ones, and the loss and each of
    `measured` (the metric names) of every split."""
    names = {"loss", *measured}
    return {*FIRST, *LAST, *names, *(f"{split}_{name}" for split in EVALUATED for name in names)}


def _split_order(key: str) -> int:
    return next((i + 1 for i, split in enumerate(EVALUATED) if key.startswith(f"{split}_")), 0)


class ResultsTable:
    # Saving rewrites every row, so a grid of many short runs saves at most this often (and always
    # at its end): the runs' own rows.jsonl and run.json hold every finished row meanwhile. As the
    # table grows, the wait grows with what a save takes, so that saving stays under 2 % of the grid's
    # time (a save of 10,000 rows takes about 0.2 s).
    MIN_SECONDS_BETWEEN_SAVES = 5.0
    SAVES_SHARE = 0.02

    def __init__(self, folder: Path, grid_columns: list[str], run_order: list[str] = ()):
        self.folder = folder
        self.saved_at = -math.inf
        self.between_saves = self.MIN_SECONDS_BETWEEN_SAVES
        self.grid_columns = list(grid_columns)
        # Grid order, whatever order the runs finish in (on Ray, any).
        self.rows: dict[str, list[dict[str, Any]]] = {run: [] for run in run_order}  # run -> rows
        self.order = {run: i for i, run in enumerate(run_order)}
        self.runs: dict[str, dict[str, Any]] = {}  # run -> summary
        self.pending: Future | None = None  # a save being written on the files thread
        self.header: dict[str, Any] = {}  # what results.json says before its columns (a search's best trial)

    def set_rows(self, run: str, rows: list[dict[str, Any]]) -> None:
        self.rows[run] = list(rows)

    def set_summary(self, run: str, summary: dict[str, Any]) -> None:
        self.runs[run] = summary

    def all_rows(self) -> list[dict[str, Any]]:
        return [row for rows in self.rows.values() for row in rows]

    @property
    def columns(self) -> list[str]:
        """The metric columns every row has between the fixed ones, train first, then val, then test."""
        fixed = set(FIRST + LAST + self.grid_columns)
        seen = dict.fromkeys(k for row in self.all_rows() for k in row if k not in fixed)
        metrics = sorted(seen, key=_split_order)  # stable: each split keeps the rows' order
        return FIRST + metrics + LAST + [c for c in self.grid_columns if c not in FIRST + LAST]

    def save(self, force: bool = True, background: Callable[..., Future] | None = None) -> None:
        """Write results.csv and results.json atomically; unless `force`, only if the last save is
        `between_saves` old. With `background` (the files thread), the texts are made here and
        written there: the training thread does not wait on the disk's fsyncs, which a busy disk
        stretches. The error of a save written there (a full disk) is raised by the next save."""
        if not force and time.monotonic() - self.saved_at < self.between_saves:
            return
        self._written()  # the last save first: saves land in order, whichever files thread writes them
        start = self.saved_at = time.monotonic()
        texts = self._texts()
        if background is not None:
            self.pending = background(self._write, texts)
        else:
            self._write(texts)
        self.between_saves = max(self.MIN_SECONDS_BETWEEN_SAVES, (time.monotonic() - start) / self.SAVES_SHARE)

    def _written(self) -> None:
        """Wait for the save handed to the files thread, if any; its error is raised here."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()

    def _texts(self) -> dict[str, str]:
        columns = self.columns
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in self.all_rows():
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
        summaries = sorted(self.runs.values(), key=lambda summary: self.order.get(summary["run"], len(self.order)))
        document = {**self.header, "columns": columns, "rows": self.all_rows(), "runs": summaries}
        return {"results.csv": out.getvalue(), "results.json": table_json(document)}

    def _write(self, texts: dict[str, str]) -> None:
        for name, text in texts.items():
            atomic_write_text(self.folder / name, text)


class ResultsTracker(Tracker):
    """One run's rows: appended to its own `rows.jsonl` as each epoch ends (constant cost per epoch),
    and handed to the grid's table, which is saved when the run ends."""

    def __init__(self, table: ResultsTable, run: str, run_dir: Path):
        self.table, self.run, self.path = table, run, run_dir / ROWS_FILE
        self.rows: list[dict[str, Any]] = []
        self.handle = None

    def start(self, resume_step: int | None, rows: list[dict[str, Any]]) -> None:
        # The rows the run has (a resumed run's, from its checkpoint): what a killed process had
        # appended past the checkpoint is dropped with it.
        self.rows = list(rows)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.rows or self.path.exists():
            atomic_write_text(self.path, "".join(_line(row) for row in self.rows))
        self.handle = open(self.path, "a", encoding="utf-8")  # a new run's file starts empty

    def log(self, step: int, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.table.set_rows(self.run, self.rows)
        self.handle.write(_line(row))
        self.handle.flush()

    def finish(self, hparams: dict[str, Any], summary: dict[str, Any]) -> None:
        # Not synced to the disk: the run's run.json, written durably next, holds the same rows (a
        # stopped run's checkpoint holds them too, and rewrites this file when it resumes).
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def _line(row: dict[str, Any]) -> str:
    return json.dumps(row, default=str) + "\n"


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    """A run's rows.jsonl as `ResultsTracker` appends it; a line cut short by a killed process is
    left out."""
    try:
        lines = (run_dir / ROWS_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), int):
            rows.append(row)
    return rows
