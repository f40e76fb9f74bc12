"""`modelspec run SPEC` and `modelspec resume FOLDER`: train every run of the grid."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import SpecError
from ..load import LoadedSpec, load_spec
from ..runner import GridResult, latest_grid_folder, run_grid
from ..runner.memory import steady_allocator
from ._common import EXIT_FAILED, SetOpt, SpecArg, command


def _results_table(result: GridResult) -> Table:
    table = Table(title=f"results ({result.folder}), best validation accuracy first", title_justify="left")
    for column in ("run", "status", "epochs", "best val acc", "final val acc", "test acc", "reason"):
        table.add_column(column, justify="right" if "acc" in column or column == "epochs" else "left",
                         overflow="fold")

    def key(item):
        outcome = item[1]
        best = outcome.metric("val_accuracy", best=True)
        return (outcome.status != "finished", -(best if best is not None else -1.0))

    def fmt(value):
        return "" if value is None else f"{value:.4f}"

    for name, outcome in sorted(result.outcomes.items(), key=key):
        table.add_row(name, outcome.status, str(outcome.epochs), fmt(outcome.metric("val_accuracy", True)),
                      fmt(outcome.metric("val_accuracy", False)), fmt(outcome.metric("test_accuracy", False)),
                      outcome.reason or "")
    return table


def _export_after_run(plan, run_dir, model, info):
    from ..artifacts import TrainedModel
    from ..data import sample_inputs
    from ..export import export_trained

    trained = TrainedModel(plan.spec, info, model.cpu())
    inputs = sample_inputs(plan.spec, info, plan.spec.export.verify_batch_size)
    report = export_trained(trained, run_dir / "export", inputs=inputs)
    if not report.passed:
        raise RuntimeError(f"export failed its verification (see {run_dir / 'export' / 'export_report.json'})")


def _train(loaded: LoadedSpec, resume_folder: Optional[Path], quiet: bool, fail_fast: bool) -> None:
    formats = {f for plan in loaded.runs() if plan.spec.export.after_run for f in plan.spec.export.formats}
    if formats:  # an unknown format or a missing onnx extra fails now, not after the first run
        from ..export import check_formats

        check_formats(sorted(formats))
    steady_allocator()  # before the data is decoded: see runner/memory.py
    result = run_grid(loaded, resume_folder=resume_folder, quiet=quiet, fail_fast=fail_fast,
                      exporter=_export_after_run)
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # a log file or pipe: do not squeeze run names into 80 columns
    console.print(_results_table(result))
    if result.interrupted:
        typer.echo(f"stopped; continue with: modelspec resume {result.folder}", err=True)
        raise typer.Exit(130)
    if result.failed:
        typer.echo(f"{len(result.failed)} run(s) failed: {', '.join(result.failed)}", err=True)
        raise typer.Exit(EXIT_FAILED)


@command
def run(
    spec: SpecArg,
    set_: SetOpt = None,
    list_runs: Annotated[bool, typer.Option("--list", help="Print the runs of the grid and stop.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or epoch lines.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the latest interrupted grid of this spec.")] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop at the first failed run.")] = False,
) -> None:
    """Train every run of the spec's grid; log to TensorBoard; save the results table."""
    loaded = load_spec(spec, set_ or [])
    if list_runs:
        for plan in loaded.runs():
            typer.echo(plan.name)
        return
    _train(loaded, latest_grid_folder(loaded) if resume else None, quiet, fail_fast)


@command
def resume(
    folder: Annotated[str, typer.Argument(help="A grid folder: runs/<spec name>/<timestamp>.")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast")] = False,
) -> None:
    """Continue an interrupted grid from its folder, with the spec stored there."""
    path = Path(folder)
    if not (path / "spec.yaml").is_file():
        raise SpecError(f"{folder} is not a grid folder (no spec.yaml)", hint="give runs/<spec name>/<timestamp>")
    loaded = load_spec(path / "spec.yaml")
    _train(loaded, path, quiet, fail_fast)
