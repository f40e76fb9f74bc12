"""The Python API: what the commands do, as functions for notebooks, scripts and tests.

Each function is the library call its command makes, without the printing and the exit codes: a
problem a user can cause raises `SpecError` (its `str()` is the located message the CLI prints), a
run, export or prediction that fails raises `RunError`.

    import modelspec

    loaded = modelspec.load_spec("specs/fashion_bn.yaml", set=["train.epochs=2"])
    model = modelspec.build_model(loaded)                 # the first run's nn.Module, untrained
    result = modelspec.run_grid(loaded)                  # every run of the grid -> GridResult
    report = modelspec.export_run(result.folder, best=True)   # the best run by train.monitor
    rows = modelspec.predict_files(report.out_dir, ["shoe.png"])
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .errors import RunError, SpecError

if TYPE_CHECKING:
    from torch import nn

    from .export.report import ExportReport
    from .load import LoadedSpec
    from .predict.evaluate import Evaluation
    from .runner.grid import GridResult


def load_spec(path: str | Path, set: Sequence[str] = (), unset: Sequence[str] = (), *,
         check_data: bool = True) -> "LoadedSpec":
    """Read and validate a spec file, as `modelspec validate` does: `set` takes `--set` overrides
    (`"train.lr=0.01"`), `unset` spec paths to remove; `check_data` also reads the data files'
    headers and sizes (never a full decode). Returns the validated spec with its grid."""
    from .load import load_spec as _load_spec

    return _load_spec(path, list(set), unset=list(unset), check_data=check_data)


def loads_spec(text: str, set: Sequence[str] = (), unset: Sequence[str] = (), *, check_data: bool = True,
          file: str = "<spec>") -> "LoadedSpec":
    """`load` for a spec given as YAML text (errors name `file`)."""
    from .load import loads_spec as _loads_spec

    return _loads_spec(text, file, list(set), unset=list(unset), check_data=check_data)


def build_model(loaded: "LoadedSpec", run: str | None = None) -> "nn.Module":
    """The untrained network of one run of the grid (`run`: its name; default the first run),
    exactly as training builds it; its input shape comes from the spec, or from cheap reads of
    the data files where only they know it."""
    from .compile import build_model as _build_model

    plans = loaded.runs()
    plan = next((p for p in plans if p.name == run), None) if run is not None else plans[0]
    if plan is None:
        raise SpecError(f"no run named {run!r} in this grid", hint="runs: " + ", ".join(p.name for p in plans))
    data = plan.spec.data
    input_shape, num_classes = data.check_files(plan.spec.seed)
    if input_shape is None:
        raise SpecError("the input shape is known only once the data is read", path=("data",),
                        hint="give data.input_shape, or train the run (`modelspec.run`) and load its weights")
    return _build_model(plan.spec.layers, input_shape, num_classes, tokens=data.tokens)


def run_grid(loaded: "LoadedSpec", *, resume: str | Path | None = None, quiet: bool = True,
        fail_fast: bool = False, log: Callable[[str], None] = print, executor: str | None = None,
        **options: Any) -> "GridResult":
    """Train every run of the grid, as `modelspec run` does (runs that export after training export
    too); `resume` continues a grid folder. `executor` is `--executor` (`local`: one run after another,
    the default; `vmap`: packed; `ray`), `options` its command-line options by their Python names
    (`pack_size=16`, `address="auto"`). Returns the grid's result: its folder, each run's outcome and
    rows, and which failed."""
    from .export.pipeline import export_after_run
    from .runner.executor import make_executor
    from .runner.folder import stored_executor
    from .runner.grid import run_grid as _run_grid
    from .runner.memory import steady_allocator

    folder = Path(resume) if resume is not None else None
    chosen = make_executor(executor, stored_executor(folder) if folder is not None else None, options)
    steady_allocator()
    return _run_grid(loaded, resume_folder=folder, quiet=quiet, fail_fast=fail_fast, log=log,
                     exporter=export_after_run, executor=chosen)


def export_run(target: str | Path, out: str | Path | None = None, formats: Sequence[str] | None = None, *,
           best: bool = False, log: Callable[[str], None] = lambda message: None) -> "ExportReport":
    """Export a trained run (a run folder, a weights file, or a grid folder with `best`) and verify
    every file against the eager model, as `modelspec export` does; default formats: the spec's
    `export.formats`, default folder: `<run>/export`. A failed verification raises `RunError`
    (the files stay, marked failed in export_report.json)."""
    from .artifacts import load_trained
    from .data import sample_inputs
    from .export import check_formats, export_trained
    from .export.locate import find_weights

    weights = find_weights(target, best)
    trained = load_trained(weights)
    chosen = check_formats(list(formats) if formats else trained.spec.export.formats)
    out_dir = Path(out) if out is not None else weights.parent / "export_run"
    inputs = sample_inputs(trained.spec, trained.info, trained.spec.export.verify_batch_size)
    report = export_trained(trained, out_dir, chosen, inputs, log=log, run_dir=weights.parent)
    if not report.passed:
        raise RunError("export failed verification: " + "; ".join(report.failures))
    return report


def predict_files(model: str | Path, inputs: Sequence[str | Path], *, best: bool = False, engine: str = "torch",
            top_k: int = 3, column: str | None = None, last: bool = False) -> list[dict[str, Any]]:
    """Predict raw inputs (image files or folders, a CSV of rows or of a series, a text file) with
    a run, a grid's best run or an export folder, through the preprocessing it was trained with,
    as `modelspec predict` does: one dict per input (`input`, and the prediction or an `error`)."""
    from .predict.rows import prediction_rows
    from .predict import open_model
    from .predict.inputs import read_inputs

    if engine not in ("torch", "onnx"):
        raise SpecError(f"engine {engine!r}: expected torch or onnx")
    predictor = open_model(model, best, engine)  # type: ignore[arg-type]
    items = read_inputs([str(i) for i in inputs], predictor.preprocessing, column=column, last=last,
                        folder=predictor.source)
    return prediction_rows(predictor, items, top_k)


def evaluate_run(run: str | Path, split: str = "test", data: str | Path | None = None, *,
             best: bool = False) -> "Evaluation":
    """Measure a trained run on a split of its data (test, val, train), or on new labelled data in
    the spec's format, as `modelspec evaluate` does; nothing is written."""
    from .cli.evaluate import measure_run

    return measure_run(run, split, Path(data) if data is not None else None, best)[0]


__all__ = ["RunError", "SpecError", "build_model", "evaluate_run", "export_run", "load_spec", "loads_spec",
           "predict_files", "run_grid"]
