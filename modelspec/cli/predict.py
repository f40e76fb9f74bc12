"""`modelspec predict MODEL INPUT...`: what a trained model says about raw inputs."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..fileio import atomic_write_text, check_output, output_error
from ..errors import RunError, SpecError
from ..predict import open_model
from ..predict.inputs import read_inputs
from ..predict.rows import prediction_rows
from ._common import command


def _check_out(out: Path) -> None:
    """--out names a .csv or .json file that can be written: said before the model runs."""
    if out.suffix.lower() not in (".csv", ".json"):
        raise SpecError(f"--out {out}: write .csv or .json", hint="e.g. --out predictions.csv")
    check_output(out, "--out")


def _text(rows: list[dict], out: Path) -> str:
    if out.suffix.lower() == ".json":
        return json.dumps(rows, indent=1) + "\n"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def _write(rows: list[dict], out: Path) -> None:
    try:
        atomic_write_text(out, _text(rows, out))
    except OSError as exc:  # the disk filled up, or the folder changed, since _check_out
        raise output_error(exc, out, "--out") from None


def _fmt(value, echoed: bool) -> Text:
    """A cell as plain text (never rich markup): the model's numbers to 4 places, the input's own
    columns as the file has them."""
    if value is None:
        return Text("")
    return Text(f"{value:.4f}" if isinstance(value, float) and not echoed else str(value))


def _print(rows: list[dict], items) -> None:
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    table = Table(title=None)
    columns = [c for c in dict.fromkeys(key for row in rows for key in row) if c != "error"]
    echoed = {key for item in items for key in (item.extra or {})}
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        if "error" not in row:
            table.add_row(*(_fmt(row.get(c, ""), c in echoed) for c in columns))
    console.print(table)


@command
def predict(
    model: Annotated[str, typer.Argument(help="A run folder, a grid folder with --best, or an export folder.",
                                         metavar="MODEL")],
    inputs: Annotated[list[str], typer.Argument(
        help="Image files or folders; a table (CSV, TSV, Parquet) of rows or of a series; a text file, one "
             "text a line.",
        metavar="INPUT...")],
    best: Annotated[bool, typer.Option("--best", help="The grid's best run by its monitor.")] = False,
    engine: Annotated[str, typer.Option("--engine", help="torch (eager or TorchScript) or onnx (onnxruntime).")] = "torch",
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Classes listed per input (multi-class).")] = 3,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the predictions as .csv or .json.")] = None,
    column: Annotated[Optional[str], typer.Option("--column", help="Texts: the CSV column holding them (default: text).")] = None,
    last: Annotated[bool, typer.Option("--last", help="Series: forecast from the latest window only.")] = False,
) -> None:
    """Predict raw inputs with a trained model, through the preprocessing it was trained with."""
    if engine not in ("torch", "onnx"):
        raise SpecError(f"--engine {engine}: expected torch or onnx")
    if out is not None:
        _check_out(out)
    predictor = open_model(model, best, engine)  # type: ignore[arg-type]
    items = read_inputs(inputs, predictor.preprocessing, column=column, last=last, folder=predictor.source)
    rows = prediction_rows(predictor, items, top_k)
    if out is not None:
        _write(rows, out)
        typer.echo(f"{sum('error' not in r for r in rows)} prediction(s) -> {out}")
    else:
        _print(rows, items)
    failed = [r for r in rows if "error" in r]
    for row in failed:
        typer.echo(f"error: {row['input']}: {row['error']}", err=True)
    if failed:
        raise RunError(f"{len(failed)} of {len(rows)} input(s) could not be predicted")
