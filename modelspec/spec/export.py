"""The export and tracking sections."""

from __future__ import annotations

import re
from typing import Annotated, Literal, Optional, Union

from pydantic import AfterValidator, Field

from .base import PositiveInt, SpecModel

_FOLDER_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _one_folder(name: str) -> str:
    """A spec's name becomes a folder under tracking.dir: one path component, never `.` or `..`."""
    if not _FOLDER_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(
            f"{name!r} cannot name a folder: a name is letters, digits and _ . - (not '.' or '..'), "
            "so that runs land in <tracking.dir>/<name>/"
        )
    return name


FolderName = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_one_folder)]

ExportFormat = Literal["torchscript", "onnx", "torch_export"]


class ExportSpec(SpecModel):
    # PyTorch's recommended format and ONNX; TorchScript only on request: this torch deprecates it
    # (torch.jit.script, save and load each warn).
    formats: list[ExportFormat] = Field(default_factory=lambda: ["torch_export", "onnx"])
    opset: Optional[PositiveInt] = None  # ONNX opset; default: the exporter's recommended one
    # Verification tolerance against the eager model, in float32.
    atol: float = Field(1e-4, gt=0)
    rtol: float = Field(1e-3, ge=0)
    after_run: bool = False  # export every run of `modelspec run` at its end
    verify_batch_size: PositiveInt = 8  # the larger batch verified beside batch size 1


class EverySpec(SpecModel):
    every: PositiveInt  # epochs between two (and the run's last epoch)


class TrackingSpec(SpecModel):
    dir: str = "runs"  # runs land in <dir>/<spec name>/<timestamp>/
    # Every parameter and its gradient: `true` (after the first epoch that ends 10 s or more after the
    # last ones, and after the last epoch of a run that trained 10 s or more: runner/cadence.py),
    # `{every: N}` (and the last), or `false`.
    histograms: Union[bool, EverySpec] = True
    # The first batch as an image grid (image data), and the confusion matrices as often as `true`
    # or `{every: N}` say (as for histograms; `{every: 1}`: each epoch), or `false`; the run folder's
    # confusion_matrix.png comes with the last epoch's.
    images: Union[bool, EverySpec] = True
    graph: bool = True  # the model graph, traced once per run

    @property
    def histogram_every(self) -> int | Literal["auto"] | None:
        return _every(self.histograms)

    @property
    def image_every(self) -> int | Literal["auto"] | None:
        return _every(self.images)


def _every(setting: bool | EverySpec) -> int | Literal["auto"] | None:
    """Epochs between two; None for `false`, `auto` for `true` (the runner's time-based default)."""
    if setting is False:
        return None
    return setting.every if isinstance(setting, EverySpec) else "auto"
