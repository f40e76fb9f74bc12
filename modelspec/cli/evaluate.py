"""`modelspec evaluate RUN`: a trained run's metrics, per-class scores and confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..fileio import atomic_write_text, check_output, output_error
from ..errors import SpecError
from ..predict import open_model
from ..predict.evaluate import SPLITS, Evaluation, evaluate_data, evaluate_split
from ..tracking.confusion import TOP_CONFUSIONS, labelled, top_confusions, write_confusion
from ._common import command


def _tables(evaluation) -> list[Table]:
    """The metrics, then per-class scores and the confusion matrix: whole up to LABELLED_CLASSES
    classes; past it, the classes with the lowest F1 and the largest confusions (a table of 1,000
    columns is unreadable, and printing one took gigabytes). evaluation.json and the CSVs hold all."""
    metrics = Table(title=f"{evaluation.split}: {evaluation.samples} samples", title_justify="left")
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    for key, value in evaluation.metrics.items():
        metrics.add_row(key, f"{value:.4f}")
    per_class = evaluation.per_class()
    if not per_class:
        return [metrics]
    if labelled(len(per_class)):
        return [metrics, _scores(per_class, "per class"), _whole_matrix(evaluation)]
    worst = sorted(per_class, key=lambda row: row["f1"])[:TOP_CONFUSIONS]
    return [metrics,
            _scores(worst, f"the {len(worst)} of {len(per_class)} classes with the lowest F1 (all in evaluation.json)"),
            _largest_confusions(evaluation)]


def _scores(rows: list[dict], title: str) -> Table:
    scores = Table(title=title, title_justify="left")
    for column in ("class", "precision", "recall", "f1", "support"):
        scores.add_column(column, justify="left" if column == "class" else "right")
    for row in rows:
        scores.add_row(row["class"], *(f"{row[k]:.4f}" for k in ("precision", "recall", "f1")), str(row["support"]))
    return scores


def _whole_matrix(evaluation) -> Table:
    confusion = Table(title="confusion matrix (rows: true, columns: predicted)", title_justify="left")
    confusion.add_column("")
    for name in evaluation.class_names:
        confusion.add_column(name, justify="right")
    for name, row in zip(evaluation.class_names, evaluation.confusion.tolist()):
        confusion.add_row(name, *(str(int(v)) for v in row))
    return confusion


def _largest_confusions(evaluation) -> Table:
    k = len(evaluation.class_names)
    table = Table(title=f"the largest confusions of {k} classes (every cell in confusion_matrix.csv)",
                  title_justify="left")
    for column in ("true", "predicted", "count", "share of true"):
        table.add_column(column, justify="right" if column in ("count", "share of true") else "left")
    for cell in top_confusions(evaluation.confusion, evaluation.class_names):
        table.add_row(cell["true"], cell["predicted"], str(cell["count"]), f"{cell['share']:.1%}")
    return table


def measure_run(run: str | Path, split: str, data: Path | None, best: bool) -> tuple[Evaluation, Path]:
    """The run's evaluation on `split` of its data, or on new labelled `data` (read by the spec's
    data kind), and the run's folder; nothing written."""
    if split not in SPLITS:
        raise SpecError(f"--split {split}: expected one of {', '.join(SPLITS)}")
    predictor = open_model(run, best)
    if predictor.trained is None:
        raise SpecError("evaluate needs a run folder (its spec says how to read the data)",
                        hint="give runs/<spec>/<timestamp>/<run>, or a grid folder with --best")
    if data is not None:
        return evaluate_data(predictor.trained, data, predictor.preprocessing), predictor.source
    return evaluate_split(predictor.trained, split), predictor.source


@command
def evaluate(
    run: Annotated[str, typer.Argument(help="A run folder, or a grid folder with --best.", metavar="RUN")],
    best: Annotated[bool, typer.Option("--best", help="The grid's best run by its monitor.")] = False,
    split: Annotated[str, typer.Option("--split", help="test, val or train: a split of the spec's data.")] = "test",
    data: Annotated[Optional[Path], typer.Option("--data", help="New labelled data in the spec's format: an "
                                                 "image folder (a folder per class), a table (CSV, TSV, "
                                                 "Parquet) with the target columns, texts with labels.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for evaluation.json and the "
                                                "confusion matrix. Default: <run>/evaluation.")] = None,
) -> None:
    """Measure a trained run on a split of its data, or on new labelled data."""
    if out is not None:
        check_output(out, "--out", folder=True)  # before the evaluation, which may take minutes
    evaluation, source = measure_run(run, split, data, best)
    console = Console()
    for table in _tables(evaluation):
        console.print(table)
    folder = out if out is not None else source / "evaluation"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "evaluation.json", json.dumps(evaluation.to_dict(), indent=1) + "\n")
        if evaluation.confusion is not None:
            write_confusion(folder, evaluation.confusion, evaluation.class_names)
    except OSError as exc:
        raise output_error(exc, folder, "--out") from None
    typer.echo(f"written: {folder / 'evaluation.json'}" + (", confusion_matrix.csv/.png" if evaluation.confusion is not None else ""))
