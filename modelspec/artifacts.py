"""Files a run leaves behind that later passes read: final weights, written and read back safely.

`weights.pt` holds the state dict and everything needed to rebuild the model without the original
spec file (nanoGPT keeps `model_args` and `config` in its checkpoint the same way): the resolved spec
of the run, the input shape and dtype, the class count and the normalisation it was trained with.
Files are written atomically (temporary file, fsync, rename) and read with `weights_only=True`.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .compile import build_model
from .errors import SpecError
from .spec.root import Spec
from .spec.validate import validate_data
from .spec.yaml_source import SourceMap

WEIGHTS_FILE = "weights.pt"
FORMAT_VERSION = 1


@dataclass
class ModelInfo:
    """What a trained model expects as input, stored beside its weights."""

    input_shape: list[int]  # per sample, after the spec's transforms
    input_dtype: str  # "float32", or "int64" for token data
    num_classes: int | None
    normalize: dict[str, list[float]] | None = None  # {"mean": [...], "std": [...]} if normalised
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_shape": list(self.input_shape),
            "input_dtype": self.input_dtype,
            "num_classes": self.num_classes,
            "normalize": self.normalize,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelInfo":
        return cls(
            list(data["input_shape"]),
            str(data["input_dtype"]),
            data.get("num_classes"),
            data.get("normalize"),
            dict(data.get("extra") or {}),
        )


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, fsync, then rename over `path`.

    A kill at any instant leaves the old file or the new one, never a torn one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself must reach the disk too
        finally:
            os.close(dir_fd)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text files that others read back (results, run states): never seen half-written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def safe_load(path: str | Path, what: str = "file") -> Any:
    """torch.load with weights_only=True; a missing, corrupt or truncated file is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"no {what} at {path}", hint="check the path; runs keep weights in <run>/weights.pt")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError, OSError) as exc:
        raise SpecError(
            f"{path} is not a readable {what} (corrupt or truncated?): {str(exc).split('. ')[0][:200]}",
            hint="re-run or resume the run to write it again",
        ) from None


def save_weights(path: str | Path, model: nn.Module, spec: Spec, info: ModelInfo) -> None:
    atomic_save(
        {
            "format": FORMAT_VERSION,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            # The keys as set (defaults fill in on load): a full dump sets keys such as data.train_dir
            # that validation refuses for other data sets, so it would not load back.
            "spec": spec.resolved(),
            "info": info.to_dict(),
        },
        path,
    )


@dataclass
class TrainedModel:
    spec: Spec
    info: ModelInfo
    model: nn.Module  # in eval mode, on the CPU


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
        from .spec.data import static_shape

        shape, classes = static_shape(spec.data)
        if shape is None:
            raise SpecError("the input shape is unknown", hint="give data.input_shape in the spec")
        dtype = "int64" if spec.data.vocab_size else "float32"
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
