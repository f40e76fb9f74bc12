"""export_trained: write each format, load it back as a deployment would, and verify it.

For each format, its methods are tried in order (script then trace; dynamo then TorchScript-based
ONNX) until one writes a file that matches the eager model on every verification batch. A file that
fails is kept, and the report marks it failed; the caller decides what a failure means (the CLI exits
1). Nothing here decides where inputs come from: real data are the caller's to pass.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from ..artifacts import TrainedModel
from ..fileio import disk_full_error
from ..errors import SpecError
from ..spec.layers import fmt_shape
from .card import run_folder_of, write_card
from .format import Format
from .inputs import cases, dynamic_axes, example, random_inputs, verify_batch
from .plan import PREPROCESSING_FILE, ExportPlan, data_files, preprocessing
from .registry import FORMATS, check_formats
from .report import Attempt, Check, ExportReport, FormatResult
from .verify import Reference, first_line

Log = Callable[[str], None]


def fmt_bytes(size: int) -> str:
    return f"{size / 1e6:.2f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"


def _check_inputs(inputs: torch.Tensor, trained: TrainedModel) -> torch.Tensor:
    info = trained.info
    if inputs.dim() < 1 or len(inputs) == 0 or list(inputs.shape[1:]) != list(info.input_shape):
        raise SpecError(
            f"verification inputs of shape {list(inputs.shape)} do not fit the model's input "
            f"(N, {fmt_shape(info.input_shape)})",
            hint="pass a batch of the run's transformed inputs, or none for a seeded random batch",
        )
    return inputs.detach().cpu().to(torch.int64 if info.input_dtype == "int64" else torch.float32)


@contextlib.contextmanager
def _warnings_into(noted: list[str]) -> Iterator[None]:
    """Exporters and loaders warn a lot (deprecations, tracer notes): keep each message once, for
    the report, instead of flooding the terminal."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for warning in caught:
                lines = str(warning.message).strip().splitlines()
                if lines and lines[0][:200] not in noted:
                    noted.append(lines[0][:200])


def export_format(fmt: Format, model: nn.Module, plan: ExportPlan, reference: Reference, out_dir: Path,
                  log: Log) -> FormatResult:
    """Try the format's methods in order; keep the first file that passes every check."""
    result = FormatResult(fmt.name)
    with _warnings_into(result.warnings):
        _try_methods(fmt, model, plan, reference, out_dir / fmt.file, result, log)
    return result


def _try_methods(fmt: Format, model: nn.Module, plan: ExportPlan, reference: Reference, path: Path,
                 result: FormatResult, log: Log) -> None:
    for method, make in fmt.methods:
        tmp = path.with_name(f".{method}-{path.name}")  # the kept file is replaced only by a whole one
        start = time.perf_counter()
        try:
            details = make(model, plan, tmp)
        except Exception as exc:  # exporters fail in many ways; each is this attempt's failure
            tmp.unlink(missing_ok=True)
            full = disk_full_error(exc)
            if full is not None:  # no other method will find space: the export stops, saying why
                raise full from None
            result.attempts.append(Attempt(method, f"export failed: {first_line(exc)}"))
            log(f"  {method}: export failed: {first_line(exc)}")
            continue
        finally:
            result.export_seconds += time.perf_counter() - start
        os.replace(tmp, path)
        result.file, result.bytes, result.method, result.details = fmt.file, path.stat().st_size, method, details
        start = time.perf_counter()
        try:
            result.checks = reference.check(fmt.load(path))
        except Exception as exc:  # a file its own loader cannot read is a failed check
            result.checks = [Check("loading", [], None, False, first_line(exc))]
        result.verify_seconds += time.perf_counter() - start
        result.attempts.append(Attempt(method))
        if result.passed:
            break
        failed = next(c for c in result.checks if not c.passed)
        why = failed.error or f"max abs error {failed.max_abs_error:.3g}"
        result.attempts[-1].failure = f"verification failed at {failed.case}: {why}"
        log(f"  {method}: verification failed at {failed.case}: {why}")


def _log_result(result: FormatResult, log: Log) -> None:
    extra = "".join(f", {k} {v}" for k, v in result.details.items())
    if result.file is None:
        log(f"{result.format}: FAILED, no file written")
        return
    status = "ok" if result.passed else "FAILED"
    log(
        f"{result.format}: {result.file} ({fmt_bytes(result.bytes or 0)}) via {result.method}{extra}; "
        f"export {result.export_seconds:.2f} s, verify {result.verify_seconds:.2f} s: {status}"
    )
    for check in result.checks:
        error = "n/a" if check.max_abs_error is None else f"{check.max_abs_error:.2e}"
        note = f"  ({check.error})" if check.error else ""
        log(f"    {check.case:<20} max abs error {error:>9}  {'ok' if check.passed else 'FAILED'}{note}")


def export_trained(
    trained: TrainedModel,
    out_dir: str | Path,
    formats: list[str] | None = None,
    inputs: torch.Tensor | None = None,
    *,
    log: Log = print,
    run_dir: Path | None = None,
    grid_values: dict | None = None,
) -> ExportReport:
    """Export `trained` (its model on the CPU) to `formats` in `out_dir` and verify every file.

    formats: None for the spec's export.formats. inputs: (N, *input_shape) real, transformed
    samples to verify on; None for a batch drawn with the spec's seed. The report is written to
    out_dir/export_report.json and returned; `report.passed` says whether every check passed.
    MODEL_CARD.md follows it, from the run in `run_dir` (None: the folder above `<run>/export`, if it
    is a run's) and its `grid_values` (None: as the grid's results.json has them).
    """
    started = time.perf_counter()
    spec = trained.spec
    names = check_formats(spec.export.formats if formats is None else formats)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = trained.model.eval()
    settings = spec.export
    batch = verify_batch(settings.verify_batch_size)
    if inputs is None:
        inputs, described = random_inputs(spec, trained.info, batch), f"a random batch (seed {spec.seed})"
    else:
        inputs = _check_inputs(inputs, trained)
        described = f"{len(inputs)} sample(s) of the run's data"
    axes = dynamic_axes(spec.layers, trained.info)
    reference = Reference.of(model, cases(inputs, batch, axes), settings.atol, settings.rtol)
    metadata = preprocessing(trained, axes, reference.outputs[0].shape)
    plan = ExportPlan(example(inputs, axes), axes, settings.opset, metadata, data_files(trained.info.preprocessing)[1])
    plan.write_files(out)

    report = ExportReport(out, spec.name, spec.network_name, described, settings.atol, settings.rtol,
                          preprocessing=PREPROCESSING_FILE)
    log(f"exporting {spec.name} (network {spec.network_name}) to {out}: {', '.join(names)}")
    log(
        f"verifying against the eager model on {described}, at {'; '.join(c.name for c in reference.cases)}: "
        f"|exported - eager| <= atol + rtol·|eager|, atol {settings.atol:g}, rtol {settings.rtol:g}"
    )
    for name in names:
        result = export_format(FORMATS[name], model, plan, reference, out, log)
        _log_result(result, log)
        report.formats.append(result)
    report.seconds = time.perf_counter() - started
    path = report.write()
    write_card(trained, report, out, run_dir if run_dir is not None else run_folder_of(out), grid_values)
    verdict = "all checks passed" if report.passed else "FAILED: " + "; ".join(report.failures)
    log(f"{verdict} ({report.seconds:.1f} s); report: {path}")
    return report


def export_after_run(plan, run_dir: Path, model: nn.Module, info) -> None:
    """The grid's exporter (`export.after_run`): a run that just trained, exported into
    `<run>/export` and verified on a batch of its own data; a failed verification raises."""
    from ..data import sample_inputs

    trained = TrainedModel(plan.spec, info, model.cpu())
    inputs = sample_inputs(plan.spec, info, plan.spec.export.verify_batch_size)
    report = export_trained(trained, run_dir / "export", inputs=inputs, run_dir=run_dir, grid_values=plan.values)
    if not report.passed:
        raise RuntimeError(f"export failed its verification (see {run_dir / 'export' / 'export_report.json'})")
