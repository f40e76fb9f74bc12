"""`modelspec report GRID_FOLDER`: the grid's runs, curves and best run as one HTML page.

Reads the grid folder's files only (modelspec/report): no torch, so it starts at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import SpecError
from ..report import write_report
from ._common import command


@command
def report(
    folder: Annotated[Path, typer.Argument(help="A grid folder: runs/<spec name>/<timestamp>.", metavar="GRID_FOLDER")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Where to write the page (default: "
                                                "GRID_FOLDER/report.html).", metavar="FILE")] = None,
    run: Annotated[Optional[list[str]], typer.Option("--run", help="Also show this run's confusion matrix and "
                                                     "curves, besides the best run's: its name or folder. Repeatable.",
                                                     metavar="RUN")] = None,
) -> None:
    """Write one HTML page of a grid (or search): its runs, learning curves, hyper-parameters against
    the monitor, the best run's confusion matrix and curves, and the runs' spec differences. It holds
    everything it needs: open it in a browser, offline."""
    if not folder.is_dir():
        raise SpecError(f"{folder} is a file, not a folder" if folder.exists() else f"no such folder: {folder}",
                        hint="give a grid folder, runs/<spec name>/<timestamp>; `modelspec runs` lists them")
    path = write_report(folder, out, tuple(run or ()))
    typer.echo(f"report: {path}")
