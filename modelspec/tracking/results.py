"""The results table of a grid: one row per run and epoch, saved as CSV and JSON after each epoch."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ..artifacts import atomic_write_text

METRIC_COLUMNS = [
    "run", "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy",
    "current_lr", "epoch_duration", "run_duration",
]


class ResultsTable:
    def __init__(self, folder: Path, grid_columns: list[str]):
        self.folder = folder
        self.columns = METRIC_COLUMNS + [c for c in grid_columns if c not in METRIC_COLUMNS]
        self.rows: dict[str, list[dict[str, Any]]] = {}  # run -> rows, in grid order
        self.runs: dict[str, dict[str, Any]] = {}  # run -> summary

    def set_rows(self, run: str, rows: list[dict[str, Any]]) -> None:
        self.rows[run] = list(rows)

    def set_summary(self, run: str, summary: dict[str, Any]) -> None:
        self.runs[run] = summary

    def all_rows(self) -> list[dict[str, Any]]:
        return [row for rows in self.rows.values() for row in rows]

    def save(self) -> None:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.columns, extrasaction="ignore")
        writer.writeheader()
        for row in self.all_rows():
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in self.columns})
        atomic_write_text(self.folder / "results.csv", out.getvalue())
        document = {"columns": self.columns, "rows": self.all_rows(), "runs": list(self.runs.values())}
        atomic_write_text(self.folder / "results.json", json.dumps(document, indent=1, default=str))
