"""The export and tracking sections."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from .base import PositiveInt, SpecModel

ExportFormat = Literal["torchscript", "onnx", "torch_export"]


class ExportSpec(SpecModel):
    formats: list[ExportFormat] = Field(default_factory=lambda: ["torchscript", "onnx"])
    opset: Optional[PositiveInt] = None  # ONNX opset; default: the exporter's recommended one
    # Verification tolerance against the eager model, in float32.
    atol: float = Field(1e-4, gt=0)
    rtol: float = Field(1e-3, ge=0)
    after_run: bool = False  # export every run of `modelspec run` at its end
    verify_batch_size: PositiveInt = 8  # the larger batch verified beside batch size 1


class TrackingSpec(SpecModel):
    dir: str = "runs"  # runs land in <dir>/<spec name>/<timestamp>/
    histograms: bool = True  # every parameter and its gradient, once per epoch
    images: bool = True  # an image grid of the first batch, for image data
    graph: bool = True  # the model graph, traced once per run
