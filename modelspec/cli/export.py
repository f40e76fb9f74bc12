"""`modelspec export RUN`: TorchScript, ONNX and torch.export files of a trained run, each verified."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import torch
import typer

from ..artifacts import TrainedModel, load_trained
from ..fileio import check_output, output_error
from ..errors import RunError, SpecError
from ..export import FORMATS, check_formats, export_trained
from ..export.inputs import verify_batch
from ..export.locate import find_weights
from ..load import load_spec
from ._common import SetOpt, UnsetOpt, command

SPEC_SUFFIXES = (".yaml", ".yml")


def _trained(target: str, weights: Optional[str], best: bool, overrides: list[str],
             unset: list[str] = ()) -> tuple[TrainedModel, Path]:
    """The model to export, and the weights file it came from."""
    if Path(target).suffix.lower() in SPEC_SUFFIXES:
        if weights is None:
            raise SpecError(f"{target} is a spec; give the weights to export with --weights PATH")
        if best:
            raise SpecError("--best picks a run of a grid folder; it does not go with a spec and --weights")
        spec = load_spec(target, overrides, unset=unset).spec
        return load_trained(weights, spec), Path(weights)
    if weights is not None or overrides or unset:
        raise SpecError(
            f"--weights, --set and --unset go with a spec file; {target} is a run, which carries its own",
            hint=f"modelspec export SPEC.yaml --weights {weights or 'PATH'}",
        )
    path = find_weights(target, best)
    return load_trained(path), path


def _real_inputs(trained: TrainedModel, log) -> Optional[torch.Tensor]:
    """A batch of the run's own data, transformed as in training; None when it is not at hand."""
    n = verify_batch(trained.spec.export.verify_batch_size)
    try:
        from ..data import sample_inputs

        inputs = sample_inputs(trained.spec, trained.info, n)
    except (ImportError, AttributeError):  # a modelspec without the data package
        inputs = None
    except (SpecError, RuntimeError, OSError) as exc:  # missing data, a failed download
        log(f"the run's data cannot be read ({str(exc).strip().splitlines()[0][:200]}); "
            "verifying on a random batch")
        return None
    if inputs is None:
        log(f"no local copy of the run's data ({trained.spec.data.dataset}); verifying on a random batch")
    return inputs


@command
def export(
    target: Annotated[str, typer.Argument(
        help="A run folder (runs/<spec>/<timestamp>/<run>), a grid folder with --best, a weights file, "
             "or a spec file with --weights.", metavar="RUN|SPEC")],
    format_: Annotated[Optional[list[str]], typer.Option(
        "--format", "-f", help=f"A format to write: {', '.join(FORMATS)}. Repeatable. "
                               "Default: the spec's export.formats.")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Folder for the files. Default: <run folder>/export.")] = None,
    best: Annotated[bool, typer.Option(
        "--best", help="Export the finished run of a grid folder with the best value of its monitor (train.monitor).")] = False,
    weights: Annotated[Optional[str], typer.Option(
        "--weights", "-w", help="The weights file, when RUN|SPEC is a spec file.")] = None,
    set_: SetOpt = None,
    unset: UnsetOpt = None,
) -> None:
    """Export a trained run and verify each file numerically against the eager model."""
    formats = check_formats(format_) if format_ else None  # before anything slow
    trained, weights_path = _trained(target, weights, best, set_ or [], unset or [])
    if formats is None:
        formats = check_formats(trained.spec.export.formats)
    out_dir = out if out is not None else weights_path.parent / "export"
    check_output(out_dir, "--out", folder=True)
    typer.echo(f"model: {weights_path}")
    inputs = _real_inputs(trained, typer.echo)
    try:
        report = export_trained(trained, out_dir, formats, inputs, log=typer.echo, run_dir=weights_path.parent)
    except OSError as exc:  # the disk filled up, or the folder went away, while writing
        raise output_error(exc, out_dir, "--out") from None
    if not report.passed:
        raise RunError(
            "export failed verification; the files are kept and marked failed in "
            f"{out_dir / 'export_report.json'}:\n  " + "\n  ".join(report.failures)
        )
    if "torch_export" not in formats:
        typer.echo("tip: --format torch_export also writes a torch.export program (.pt2), the format "
                   "PyTorch recommends over TorchScript")
