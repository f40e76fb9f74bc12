"""`modelspec compare A B`: how two runs' specs differ, and their metrics side by side.

A and B are each a run folder, or a grid folder, which stands for its best run by the monitor. The
specs compared are the ones the runs trained with: the grid's stored spec.json (overrides applied)
with the run's grid (or search trial's) values set, as the grid expanded them. They are not
validated again: validation imports torch (seconds), and the stored spec validated when its grid
started.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ..errors import format_path
from ..report.read import run_spec
from ..tracking.overview import ABSENT, GridOverview, RunEntry, locate_run, spec_diff, summary_metrics
from ._common import command


def _value(value: Any) -> str:
    """A spec value as YAML would read it: strings bare, the rest as JSON (true, null, [1, 2])."""
    if value is ABSENT:
        return repr(value)
    return value if isinstance(value, str) else json.dumps(value)


def _number(value: float | int | None, sign: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return f"{value:+d}" if sign else str(value)
    small = value != 0 and abs(value) < 1e-3  # a loss of 2e-05 would read 0.0000
    return f"{value:{'+' if sign else ''}{'.3e' if small else '.4f'}}"


def _metrics_table(a: RunEntry, b: RunEntry) -> Table:
    table = Table()
    for column in ("metric", f"A: {a.name}", f"B: {b.name}", "B - A"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name, mine, theirs in summary_metrics(a.summary, b.summary):
        both = mine is not None and theirs is not None
        table.add_row(name, _number(mine), _number(theirs), _number(theirs - mine, sign=True) if both else "")
    return table


def _describe(label: str, grid: GridOverview, run: RunEntry, picked: bool) -> str:
    text = f"{label}: {grid.folder / run.dir}: {run.name}, {run.status}"
    if run.summary.get("reason"):
        text += f": {run.summary['reason']}"
    if picked:
        text += f" (the best run of {grid.folder} by {run.summary.get('monitor')})"
    return text


@command
def compare(
    a: Annotated[Path, typer.Argument(help="A run folder, or a grid folder (its best run).", metavar="A")],
    b: Annotated[Path, typer.Argument(help="A run folder, or a grid folder (its best run).", metavar="B")],
) -> None:
    """Show how two runs' specs differ (A -> B) and their best and final metrics side by side."""
    (grid_a, run_a, picked_a), (grid_b, run_b, picked_b) = locate_run(a), locate_run(b)
    typer.echo(_describe("A", grid_a, run_a, picked_a))
    typer.echo(_describe("B", grid_b, run_b, picked_b))
    differences = spec_diff(run_spec(grid_a, run_a), run_spec(grid_b, run_b))
    typer.echo("spec (A -> B):" + ("" if differences else " the same"))
    for path, mine, theirs in differences:
        typer.echo(f"  {format_path(path)}: {_value(mine)} -> {_value(theirs)}")
    typer.echo("metrics (best_*: at the best epoch by the monitor; final_*: at the last epoch):")
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # a log file or pipe: do not squeeze run names into 80 columns
    console.print(_metrics_table(run_a, run_b))
