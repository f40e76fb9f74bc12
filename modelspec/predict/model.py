"""Open a trained model for prediction: a run folder (its weights.pt, eager PyTorch) or an export
folder (preprocessing.json beside model.pt2 / model.onnx / model.torchscript.pt).

Everything a prediction needs besides the model comes from what training stored: the input shape and
dtype, the deterministic transforms and the normalisation statistics, the class names and the task.
Nothing is read from the training data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch

from ..artifacts import WEIGHTS_FILE, TrainedModel, load_trained
from ..errors import SpecError
from ..export.plan import PREPROCESSING_FILE
from ..export.registry import FORMATS

Engine = Literal["torch", "onnx"]
ONNX_FILE = FORMATS["onnx"].file
# What `--engine torch` loads from an export folder, the first found: PyTorch's recommended format
# first; TorchScript (deprecated by this torch) when that is all the folder has.
TORCH_FORMATS = ("torch_export", "torchscript")


@dataclass
class Predictor:
    """A model, batch in and raw outputs out, with the preprocessing it was trained with."""

    preprocessing: dict[str, Any]  # input_shape, input_dtype, transforms, normalize, class_names, task, ...
    forward: Callable[[torch.Tensor], torch.Tensor]  # (N, *input_shape) -> (N, outputs), on the CPU
    source: Path
    engine: Engine
    trained: TrainedModel | None = None  # a run folder's model and spec (evaluate needs them)

    @property
    def task(self) -> dict[str, Any]:
        task = self.preprocessing.get("task")
        if not task:
            raise SpecError(f"{self.source} does not say which task its model was trained for",
                            hint="re-export it with this modelspec, or predict from the run folder")
        return task

    @property
    def class_names(self) -> list[str] | None:
        return self.preprocessing.get("class_names")

    def predict(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Outputs for every sample of `x`, in batches, in eval mode."""
        dtype = torch.int64 if self.preprocessing["input_dtype"] == "int64" else torch.float32
        with torch.no_grad():
            parts = [self.forward(x[i : i + batch_size].to(dtype)) for i in range(0, len(x), batch_size)]
        return torch.cat(parts) if parts else torch.empty(0)


def _from_run(weights: Path, engine: Engine) -> Predictor:
    trained = load_trained(weights)
    if engine == "onnx":
        export = weights.parent / "export"
        if not (export / ONNX_FILE).is_file():
            raise SpecError(f"--engine onnx needs an ONNX export, and {export} has no {ONNX_FILE}",
                            hint=f"write it with `modelspec export {weights.parent} --format onnx`, or "
                                 "predict with the default --engine torch")
        return _from_export(export, engine, trained)
    model = trained.model.eval()
    return Predictor(trained.describe(), model, weights.parent, "torch", trained)


def _onnx(path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    try:
        import onnxruntime
    except ImportError:
        raise SpecError("--engine onnx needs onnxruntime", hint="pip install 'modelspec[onnx]'") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(np.asarray(session.run(None, {name: x.numpy()})[0]))


# What predict reads from an export's preprocessing.json, with the JSON type each must have; besides
# these, what the data kind reads (its `stored_keys`: how an image's pixels were transformed, what
# was fitted on a table, a text or a series).
PREPROCESSING_KEYS: dict[str, type | tuple[type, ...]] = {"dataset": str, "input_shape": list, "input_dtype": str,
                                                          "task": dict}


def read_preprocessing(path: Path) -> dict[str, Any]:
    """An export's preprocessing.json, checked for every key predict reads: a file edited by hand,
    cut short or of another tool is one error naming it and the key, not a traceback later."""
    from ..spec.data import DataBase, kind_of

    hint = "export the run again with `modelspec export RUN` (it writes the whole file)"
    try:
        preprocessing = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SpecError(f"{path} cannot be read: {exc}", hint=hint) from None
    if not isinstance(preprocessing, dict):
        raise SpecError(f"{path} holds a JSON {type(preprocessing).__name__}, not the mapping of an export's "
                        "preprocessing", hint=hint)
    kind = kind_of(preprocessing.get("dataset")) or DataBase
    for key, expected in {**PREPROCESSING_KEYS, **kind.stored_keys}.items():
        if key not in preprocessing:
            raise SpecError(f"{path} lacks the key '{key}'", hint=hint)
        if not isinstance(preprocessing[key], expected):
            raise SpecError(f"{path}: '{key}' is {json.dumps(preprocessing[key])[:80]}, not a JSON "
                            f"{_json_type(expected)}", hint=hint)
    return preprocessing


def _json_type(expected: type | tuple[type, ...]) -> str:
    names = {dict: "object", list: "array", str: "string", type(None): "null"}
    return " or ".join(names[t] for t in (expected if isinstance(expected, tuple) else (expected,)))


def _loaded(path: Path, load: Callable[[Path], Any]) -> Any:
    """An exported model file, loaded; one that its loader cannot read (damaged, cut short, another
    file under its name) is an error naming it. Loaders fail on foreign bytes with any exception."""
    try:
        return load(path)
    except SpecError:
        raise
    except Exception as exc:  # noqa: BLE001
        reason = " ".join(str(exc).split()).split(". ")[0][:200] or type(exc).__name__
        raise SpecError(f"{path} cannot be loaded (corrupt or truncated?): {reason}",
                        hint="export the run again with `modelspec export RUN`") from None


def _from_export(folder: Path, engine: Engine, trained: TrainedModel | None = None) -> Predictor:
    path = folder / PREPROCESSING_FILE
    if not path.is_file():
        raise SpecError(f"{folder} has no {PREPROCESSING_FILE}: predictions need the preprocessing the "
                        "model was trained with", hint="export the run again with `modelspec export RUN`")
    preprocessing = read_preprocessing(path)
    if engine == "onnx":
        if not (folder / ONNX_FILE).is_file():
            raise SpecError(f"{folder} has no {ONNX_FILE}", hint="export with --format onnx")
        return Predictor(preprocessing, _loaded(folder / ONNX_FILE, _onnx), folder, "onnx", trained)
    for name in TORCH_FORMATS:
        fmt = FORMATS[name]
        if (folder / fmt.file).is_file():
            return Predictor(preprocessing, _loaded(folder / fmt.file, fmt.load), folder, "torch", trained)
    raise SpecError(f"{folder} holds no torch.export or TorchScript file", hint="try --engine onnx")


def open_model(target: str | Path, best: bool = False, engine: Engine = "torch") -> Predictor:
    """The model a path names: a run folder, a grid folder (one run, or `best`), a weights file, or
    an export folder."""
    from ..export.locate import find_weights, is_export_folder

    path = Path(target)
    if path.is_dir() and (path / PREPROCESSING_FILE).exists() and not (path / WEIGHTS_FILE).exists():
        if best:
            raise SpecError("--best picks a run of a grid folder; an export folder is one model already")
        return _from_export(path, engine)
    if path.is_dir() and not path.joinpath(WEIGHTS_FILE).exists() and is_export_folder(path):
        raise SpecError(f"{path} has no {PREPROCESSING_FILE}: predictions need the preprocessing the model "
                        "was trained with", hint="export the run again with `modelspec export RUN`")
    return _from_run(find_weights(path, best), engine)
