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
    formats: list[ExportFormat] = Field(default_factory=lambda: ["torchscript", "onnx"])
    opset: Optional[PositiveInt] = None  # ONNX opset; default: the exporter's recommended one
    # Verification tolerance against the eager model, in float32.
    atol: float = Field(1e-4, gt=0)
    rtol: float = Field(1e-3, ge=0)
    after_run: bool = False  # export every run of `modelspec run` at its end
    verify_batch_size: PositiveInt = 8  # the larger batch verified beside batch size 1


class EverySpec(SpecModel):
    every: PositiveInt = 5  # epochs between two (and the run's last epoch)


class TrackingSpec(SpecModel):
    dir: str = "runs"  # runs land in <dir>/<spec name>/<timestamp>/
    # Every parameter and its gradient: `true` (every 5 epochs and the last), `{every: N}`, or `false`.
    # Each costs about 0.3 ms per tensor of a tiny model (64 even bins), 9 ms per million values.
    histograms: Union[bool, EverySpec] = True
    # The first batch as an image grid (image data) and the confusion matrices: `true` (every 5
    # epochs and the last), `{every: N}` (1: each epoch), or `false`. A matrix image costs about 1 ms.
    images: Union[bool, EverySpec] = True
    graph: bool = True  # the model graph, traced once per run

    @property
    def histogram_every(self) -> int | None:
        return _every(self.histograms)

    @property
    def image_every(self) -> int | None:
        return _every(self.images)


def _every(setting: bool | EverySpec) -> int | None:
    """Epochs between two: None for `false`, the default for `true`."""
    if setting is False:
        return None
    return setting.every if isinstance(setting, EverySpec) else EverySpec().every
