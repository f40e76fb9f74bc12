"""`modelspec report`: one self-contained HTML page of a grid or search, built with Plotly (the
`report` extra). Reading the grid folder (read.py) needs neither torch nor Plotly; the page does."""

from __future__ import annotations

from pathlib import Path

from ..errors import SpecError
from ..fileio import atomic_write_text, check_output, output_error

REPORT_FILE = "report.html"


def write_report(folder: Path, out: Path | None = None, runs: tuple[str, ...] = ()) -> Path:
    """The report of the grid at `folder` written to `out` (default: report.html in it), with the
    best run's details and those of `runs` (names or folders); its path."""
    from .read import read_report

    data = read_report(folder, list(runs))
    try:
        from .page import build_page
    except ImportError as exc:
        if exc.name is None or not exc.name.startswith("plotly"):
            raise
        raise SpecError("the report needs Plotly, which is not installed",
                        hint="pip install 'modelspec[report]'") from None
    path = out if out is not None else folder / REPORT_FILE
    check_output(path, "--out")  # before the page is built: a bad path is said at once
    page = build_page(data)
    try:
        atomic_write_text(path, page)
    except OSError as exc:
        raise output_error(exc, path, "--out") from None
    return path
