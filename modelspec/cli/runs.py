"""`modelspec runs [DIR]`: every grid under runs/ (or DIR), how many of its runs ended how, its best run.

Reads the grid folders' JSON files only (tracking/overview.py): no torch, so it answers at once.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ..errors import SpecError
from ..tracking.overview import STATUSES, GridOverview, best_value, find_grids, read_grid
from ._common import command


def grid_record(grid: GridOverview) -> dict[str, Any]:
    """One grid as `--json` gives it: where, when, its runs' statuses counted, and its best run."""
    best = grid.best()
    return {
        "folder": str(grid.folder), "name": grid.name,
        "started": grid.started.isoformat(sep=" ") if grid.started else None,
        "runs": len(grid.runs), "counts": grid.counts(),
        "monitor": best.summary.get("monitor") if best else None,
        "mode": best.summary.get("monitor_mode") if best else None,
        "best": best_value(best.summary) if best else None,
        "best_run": best.name if best else None, "best_dir": best.dir if best else None,
    }


def _table(records: list[dict[str, Any]]) -> Table:
    # The usual statuses always, so that tables of different days read alike; others as found.
    statuses = list(dict.fromkeys([*STATUSES, *(s for record in records for s in record["counts"])]))
    table = Table(title_justify="left")
    for column in ("name", "started", *statuses, "best", "best run", "folder"):
        table.add_column(column, justify="right" if column in statuses else "left")
    for record in records:
        counts = [str(record["counts"].get(status) or "[dim]0[/dim]") for status in statuses]
        best = f"{record['monitor']} {record['best']:.4f}" if record["best"] is not None else ""
        table.add_row(record["name"], record["started"] or "?", *counts, best, record["best_run"] or "",
                      record["folder"])
    return table


def _started(grid: GridOverview) -> tuple[datetime, str]:
    return grid.started or datetime.min, str(grid.folder)


@command
def runs(
    folder: Annotated[Path, typer.Argument(help="The folder to look in (tracking.dir, or any folder above "
                                                "grid folders).", metavar="DIR")] = Path("runs"),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list of the grids instead of a table.")] = False,
) -> None:
    """List every grid under DIR: when it started, its runs by status, its best run by the monitor."""
    if not folder.is_dir():
        raise SpecError(f"{folder} is a file, not a folder" if folder.exists() else f"no such folder: {folder}",
                        hint="give the folder your grids are written to (tracking.dir, runs by default)")
    grids = sorted((read_grid(path) for path in find_grids(folder)), key=_started)
    records = [grid_record(grid) for grid in grids]
    if as_json:
        typer.echo(json.dumps(records, indent=1))
    elif not grids:
        typer.echo(f"no grids under {folder}")
    else:
        console = Console()
        if not console.is_terminal:
            console = Console(width=200)  # a log file or pipe: do not squeeze folder names into 80 columns
        console.print(_table(records))
    for grid in grids:
        for note in grid.notes:
            typer.echo(f"note: {note}", err=True)
