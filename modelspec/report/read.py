"""What a report shows, read from a grid folder's files: no torch, no plotting.

The grid's runs and best run come from tracking/overview.py (the readers `runs` and `compare` use);
here are the rest: the epochs' rows, each run's confusion matrix and outputs.csv, and a search's
search.json. A file that is missing or damaged leaves its part of the page out, with a line saying why.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..fileio import OUTPUTS_FILE, RESULTS_FILE, RUN_FILE, SEARCH_FILE
from ..spec.paths import parse_path, set_path
from ..tracking.overview import SPEC_FILE, GridOverview, RunEntry, _read_json, is_grid_folder, read_grid

CONFUSION_FILE = "confusion_matrix.csv"  # tracking/confusion.py's: rows true, columns predicted


@dataclass
class Confusion:
    names: list[str]  # the class names, rows and columns alike
    counts: list[list[int]]  # [true][predicted]


@dataclass
class Outputs:
    """outputs.csv (runner/outputs.py): classification when its first column is `target` (then one
    `p:<class>` column per class, or the positive class's alone), else regression (`target:<name>` and
    `prediction:<name>` per target)."""

    columns: list[str]
    rows: list[list[float]]

    @property
    def classification(self) -> bool:
        return self.columns[0] == "target"

    def column(self, name: str) -> list[float]:
        i = self.columns.index(name)
        return [row[i] for row in self.rows]


@dataclass
class RunDetail:
    """What the page shows of one run beyond its line in the table; each part None where missing."""

    run: RunEntry
    confusion: Confusion | None = None
    outputs: Outputs | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class ReportData:
    grid: GridOverview
    rows: dict[str, list[dict[str, Any]]]  # run name -> its epochs' rows, in order
    axes: list[str]  # the grid's or search's keys (spec paths), in the spec's order
    search: dict[str, Any] | None  # search.json
    details: list[RunDetail]  # the best run first, then each asked for
    notes: list[str]


def read_report(folder: Path, asked: list[str]) -> ReportData:
    """The grid at `folder`, with the details of its best run and of the runs `asked` (names or folders)."""
    if not is_grid_folder(folder):
        raise SpecError(f"{folder} is not a grid folder (no spec.json with results.json or grid.json)",
                        hint="give runs/<spec name>/<timestamp>; `modelspec runs` lists them")
    grid = read_grid(folder)
    notes = list(grid.notes)
    rows = _rows(folder, grid, notes)
    search = _read_json(folder / SEARCH_FILE, notes)
    best = grid.best()
    picked = ([best] if best else []) + [_find(grid, name) for name in asked]
    picked = list({run.dir: run for run in picked}.values())  # the best run asked again: once
    if best is None:
        notes.append("no finished run has a monitored value: no best run to look into")
    return ReportData(grid, rows, _axes(grid.spec), search if isinstance(search, dict) else None,
                      [_detail(folder, run) for run in picked], notes)


def _find(grid: GridOverview, name: str) -> RunEntry:
    for run in grid.runs:
        if name in (run.name, run.dir) and run.dir:
            return run
    known = ", ".join(run.name for run in grid.runs if run.dir)
    raise SpecError(f"--run {name}: no such run in {grid.folder}", hint=f"its runs: {known}")


def _axes(spec: dict[str, Any] | None) -> list[str]:
    spec = spec or {}
    search = spec.get("search") if isinstance(spec.get("search"), dict) else {}
    for axes in (search.get("space"), spec.get("grid")):
        if isinstance(axes, dict):
            return list(axes)
    return []


def _rows(folder: Path, grid: GridOverview, notes: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each run's rows from results.json; a run it does not hold yet, from its own run.json."""
    document = _read_json(folder / RESULTS_FILE, notes)
    rows: dict[str, list[dict[str, Any]]] = {}
    for row in (document or {}).get("rows", []) if isinstance(document, dict) else []:
        if isinstance(row, dict) and isinstance(row.get("run"), str):
            rows.setdefault(row["run"], []).append(row)
    for run in grid.runs:
        if run.dir and run.name not in rows:
            state = _read_json(folder / run.dir / RUN_FILE, notes)
            found = state.get("rows") if isinstance(state, dict) else None
            rows[run.name] = [row for row in found or [] if isinstance(row, dict)]
    return rows


def _detail(folder: Path, run: RunEntry) -> RunDetail:
    detail = RunDetail(run)
    run_dir = folder / run.dir
    try:
        detail.confusion = _confusion(run_dir / CONFUSION_FILE)
        detail.outputs = _outputs(run_dir / OUTPUTS_FILE)
    except (OSError, ValueError, IndexError) as exc:
        detail.notes.append(f"{run_dir}: a file is unreadable ({type(exc).__name__}: {exc}); its plots are left out")
    if detail.outputs is None and run.status not in ("finished", "pruned"):
        detail.notes.append(f"{run.name} {run.status}: it has no final model, so no outputs to plot")
    elif detail.outputs is None:
        detail.notes.append(f"{run.name}: no {OUTPUTS_FILE} (runs trained before the runner wrote it, and "
                            "multi-label runs, have none): no curves that need the model's outputs")
    return detail


def _confusion(path: Path) -> Confusion | None:
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as file:
        header, *lines = list(csv.reader(file))
    return Confusion(header[1:], [[int(cell) for cell in line[1:]] for line in lines])


def _outputs(path: Path) -> Outputs | None:
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as file:
        header, *lines = list(csv.reader(file))
    return Outputs(header, [[float(cell) for cell in line] for line in lines])


def run_spec(grid: GridOverview, run: RunEntry) -> dict[str, Any]:
    """The spec `run` trained with: its grid's spec without the grid or search that made the runs,
    the run's values (a grid's or a search trial's) set at their paths."""
    if grid.spec is None:
        raise SpecError(f"{grid.folder / SPEC_FILE} is unreadable, so the spec of run {run.name} is unknown",
                        hint="copy it back from spec.yaml, which holds the same spec")
    spec = {key: value for key, value in grid.spec.items() if key not in ("grid", "search")}
    for key, value in (run.summary.get("values") or {}).items():
        spec = set_path(spec, parse_path(key), value)
    return spec
