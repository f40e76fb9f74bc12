"""Open a trained model for prediction: a run folder (its weights.pt, eager PyTorch) or an export
folder (preprocessing.json beside model.torchscript.pt / model.pt2 / model.onnx).

Everything a prediction needs besides the model comes from what training stored: the input shape and
dtype, the deterministic transforms and the normalisation statistics, the class names and the task.
Nothing is read from the training data.
"""

from __future__ import annotations

import json
import warnings
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
# The files `modelspec export` writes.
ONNX_FILE, TORCHSCRIPT_FILE, PROGRAM_FILE = (FORMATS[name].file for name in ("onnx", "torchscript", "torch_export"))


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


def _from_export(folder: Path, engine: Engine, trained: TrainedModel | None = None) -> Predictor:
    path = folder / PREPROCESSING_FILE
    if not path.is_file():
        raise SpecError(f"{folder} has no {PREPROCESSING_FILE}: predictions need the preprocessing the "
                        "model was trained with", hint="export the run again with `modelspec export RUN`")
    try:
        preprocessing = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SpecError(f"{path} cannot be read: {exc}") from None
    if engine == "onnx":
        if not (folder / ONNX_FILE).is_file():
            raise SpecError(f"{folder} has no {ONNX_FILE}", hint="export with --format onnx")
        return Predictor(preprocessing, _onnx(folder / ONNX_FILE), folder, "onnx", trained)
    if (folder / TORCHSCRIPT_FILE).is_file():
        with warnings.catch_warnings():  # TorchScript's deprecation notice: the file is ours to read
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(folder / TORCHSCRIPT_FILE), map_location="cpu").eval()
    elif (folder / PROGRAM_FILE).is_file():
        module = torch.export.load(str(folder / PROGRAM_FILE)).module()
    else:
        raise SpecError(f"{folder} holds no TorchScript or torch.export file", hint="try --engine onnx")
    return Predictor(preprocessing, module, folder, "torch", trained)


def open_model(target: str | Path, best: bool = False, engine: Engine = "torch") -> Predictor:
    """The model a path names: a run folder, a grid folder (one run, or `best`), a weights file, or
    an export folder."""
    from ..export.locate import find_weights

    path = Path(target)
    if path.is_dir() and (path / PREPROCESSING_FILE).exists() and not (path / WEIGHTS_FILE).exists():
        if best:
            raise SpecError("--best picks a run of a grid folder; an export folder is one model already")
        return _from_export(path, engine)
    if path.is_dir() and not path.joinpath(WEIGHTS_FILE).exists() and path.name == "export":
        raise SpecError(f"{path} has no {PREPROCESSING_FILE}: predictions need the preprocessing the model "
                        "was trained with", hint="export the run again with `modelspec export RUN`")
    return _from_run(find_weights(path, best), engine)
