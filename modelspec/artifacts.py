"""Files a run leaves behind that later passes read: final weights, written and read back safely.

`weights.pt` holds the state dict and everything needed to rebuild the model without the original
spec file (nanoGPT keeps `model_args` and `config` in its checkpoint the same way): the resolved spec
of the run, the input shape and dtype, the class count and the normalisation it was trained with.
Files are written atomically (temporary file, fsync, rename) and read with `weights_only=True`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .compile import build_model
from .errors import SpecError
from .fileio import (  # noqa: F401 - GRID_FILE, WEIGHTS_FILE, restart_hint, safe_load: re-exported
    GRID_FILE,
    WEIGHTS_FILE,
    atomic_write_bytes,
    restart_hint,
    safe_load,
    torch_bytes,
)
from .spec.data import static_shape
from .spec.root import Spec
from .spec.validate import validate_data
from .spec.yaml_source import SourceMap

FORMAT_VERSION = 1


@dataclass
class ModelInfo:
    """What a trained model expects as input, stored beside its weights."""

    input_shape: list[int]  # per sample, after the spec's transforms
    input_dtype: str  # "float32", or "int64" for token data
    num_classes: int | None
    normalize: dict[str, list[float]] | None = None  # {"mean": [...], "std": [...]} if normalised
    extra: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] | None = None  # what each class index means, from the data
    task: dict[str, Any] | None = None  # kind, loss, outputs, threshold, monitor: how to read outputs
    target_names: list[str] | None = None  # the target columns (tables, series)
    # Everything fitted or chosen from the data (category lists, fill values, scalers, the tokenizer,
    # window and horizon), as JSON data: applied to new raw rows, texts or series before the model.
    preprocessing: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_shape": list(self.input_shape),
            "input_dtype": self.input_dtype,
            "num_classes": self.num_classes,
            "normalize": self.normalize,
            "extra": dict(self.extra),
            "class_names": self.class_names,
            "task": self.task,
            "target_names": self.target_names,
            "preprocessing": self.preprocessing,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelInfo":
        return cls(
            list(data["input_shape"]),
            str(data["input_dtype"]),
            data.get("num_classes"),
            data.get("normalize"),
            dict(data.get("extra") or {}),
            data.get("class_names"),
            data.get("task"),
            data.get("target_names"),
            data.get("preprocessing"),
        )


def weights_bytes(state_dict: Mapping[str, torch.Tensor], spec: Spec, info: ModelInfo) -> bytes:
    """weights.pt's content: a model's state dict with the resolved spec and what the model reads and gives."""
    return torch_bytes(
        {
            "format": FORMAT_VERSION,
            "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
            # The keys as set (defaults fill in on load): a full dump sets keys such as data.train_dir
            # that validation refuses for other data sets, so it would not load back.
            "spec": spec.resolved(),
            "info": info.to_dict(),
        }
    )


def save_weights(path: str | Path, model: nn.Module, spec: Spec, info: ModelInfo) -> None:
    atomic_write_bytes(path, weights_bytes(model.state_dict(), spec, info))


@dataclass
class TrainedModel:
    spec: Spec
    info: ModelInfo
    model: nn.Module  # in eval mode, on the CPU

    def describe(self) -> dict[str, Any]:
        """What a user of the model must know to feed it raw data and read its outputs, as JSON data
        (the export's preprocessing.json adds the exported files' input and output layout)."""
        info = self.info
        return {
            "spec": self.spec.name,
            "dataset": self.spec.data.dataset,
            "network": self.spec.network_name,
            "input_dtype": info.input_dtype,
            "input_shape": list(info.input_shape),  # per sample, after the spec's transforms
            "num_classes": info.num_classes,
            "class_names": info.class_names,
            "target_names": info.target_names,
            # Applied to the data before the model, per channel: x = (x - mean) / std, after to_tensor
            # has scaled pixels to [0, 1]. None: the model takes the transformed data as they are.
            "normalize": info.normalize,
            "transforms": [t.model_dump(mode="json") for t in self.spec.data.sample_transforms()],
            # What was fitted on the training data: how raw rows, texts or series become the input.
            "data": info.preprocessing,
            # How to read the outputs: the task (kind, loss, outputs per sample, the binary threshold),
            # with the class and target names above.
            "task": info.task,
            "extra": dict(info.extra),
        }


def load_trained(path: str | Path, spec: Spec | None = None) -> TrainedModel:
    """Rebuild a trained model from a weights file (or from `spec` with the file's weights)."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    payload = safe_load(path, "weights file")
    if not isinstance(payload, dict) or "state_dict" not in payload:
        # A bare state dict (e.g. torch.save(model.state_dict())): usable with a spec.
        if isinstance(payload, dict) and spec is not None:
            payload = {"state_dict": payload}
        else:
            raise SpecError(f"{path} holds no modelspec weights", hint="pass the spec with --weights")
    if spec is None:
        spec = validate_data(payload["spec"], SourceMap(f"{path} (stored spec)"))
    info = ModelInfo.from_dict(payload["info"]) if "info" in payload else None
    if info is None:
        shape, classes = static_shape(spec.data)
        if shape is None:
            raise SpecError("the input shape is unknown", hint="give data.input_shape in the spec")
        dtype = "int64" if spec.data.tokens else "float32"
        info = ModelInfo(list(shape), dtype, classes)
    model = build_model(spec.layers, tuple(info.input_shape), info.num_classes, tokens=info.input_dtype == "int64")
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise SpecError(
            f"the weights in {path} do not fit the spec's network '{spec.network_name}': {' '.join(first)[:300]}",
            hint="use the spec the weights were trained with",
        ) from None
    return TrainedModel(spec, info, model.eval())
