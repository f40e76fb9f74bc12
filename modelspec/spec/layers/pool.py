"""pool: max or avg pooling, 1d/2d/3d from the input rank; adaptive when `output_size` is given."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from ...errors import SpecError
from .._torch import modules, nn
from ..base import NonNegativeInt, PositiveInt
from .base import ExportExample, LayerSpec, Shape, per_dim, sliding_output, spatial_rank

_POOL = {  # nn's classes by name
    ("max", 1): "MaxPool1d", ("max", 2): "MaxPool2d", ("max", 3): "MaxPool3d",
    ("avg", 1): "AvgPool1d", ("avg", 2): "AvgPool2d", ("avg", 3): "AvgPool3d",
}
_ADAPTIVE = {
    ("max", 1): "AdaptiveMaxPool1d", ("max", 2): "AdaptiveMaxPool2d", ("max", 3): "AdaptiveMaxPool3d",
    ("avg", 1): "AdaptiveAvgPool1d", ("avg", 2): "AdaptiveAvgPool2d", ("avg", 3): "AdaptiveAvgPool3d",
}


class Pool(LayerSpec):
    """Max or average pooling, `nn.MaxPool1d`/`2d`/`3d` or `AvgPool…` picked from the input rank; with
    output_size, adaptive pooling (`nn.AdaptiveMaxPool2d`…) to that size. Give kernel_size or output_size,
    exactly one."""

    type: Literal["pool"] = "pool"
    kind: Literal["max", "avg"] = "max"
    """`max` (default) or `avg`."""
    kernel_size: PositiveInt | list[PositiveInt] | None = None
    """The window's size: one number, or one per spatial dim. Give this or output_size."""
    stride: PositiveInt | list[PositiveInt] | None = None
    """The window's step: one number or one per dim; omitted, it equals kernel_size (torch's default)."""
    padding: NonNegativeInt | list[NonNegativeInt] = 0
    """Padding on both sides, at most half the kernel: one number or one per dim (default 0)."""
    ceil_mode: bool = False
    """Whether to round the output size up instead of down, keeping a last partial window (default false)."""
    output_size: PositiveInt | list[PositiveInt] | None = None
    """Adaptive pooling to this output size (one number, or one per dim), whatever the input size. Give this
    or kernel_size."""
    dim: Literal[1, 2, 3] | None = None
    """1, 2 or 3 spatial dims; omit it to pick it from the input's rank, or give it to have it checked."""

    examples = (
        ({"kernel_size": 2}, (3, 8, 8)),
        ({"kind": "avg", "kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, (2, 8, 8)),
        ({"kind": "max", "kernel_size": 2, "ceil_mode": True}, (2, 9)),  # 1d, a last partial window
        ({"kind": "avg", "output_size": 3}, (2, 7, 7)),  # adaptive
        ({"kind": "max", "output_size": [2, 1]}, (2, 6, 5)),
    )
    # Adaptive pooling exports to ONNX only where the output size divides the input size (4 -> 2).
    export_example = ExportExample(
        (2, 8, 8), ({"pool": {"kind": "avg", "kernel_size": 2}}, {"pool": {"output_size": 2}}, "flatten")
    )

    @model_validator(mode="after")
    def _one_of_kernel_or_output(self):
        if (self.kernel_size is None) == (self.output_size is None):
            raise ValueError(
                "give kernel_size (a fixed window) or output_size (adaptive pooling), exactly one"
            )
        if self.output_size is not None and (self.stride is not None or self.padding != 0):
            raise ValueError("adaptive pooling (output_size) takes no stride or padding")
        return self

    @property
    def label(self) -> str:
        if self.output_size is not None:
            return f"{self.kind} pool → {self.output_size}"
        return f"{self.kind} pool k={self.kernel_size}"

    def _args(self, input_shape: Shape):
        rank = spatial_rank(self, input_shape, self.dim, "pool")
        if self.output_size is not None:
            return rank, per_dim(self.output_size, rank, "output_size"), None, None
        kernel = per_dim(self.kernel_size, rank, "kernel_size")
        stride = per_dim(self.stride if self.stride is not None else self.kernel_size, rank, "stride")
        padding = per_dim(self.padding, rank, "padding")
        if any(2 * p > k for p, k in zip(padding, kernel)):
            raise SpecError(
                f"padding {self.padding} is more than half of kernel_size {self.kernel_size}",
                path=("padding",),
                hint="torch allows padding of at most half the kernel",
            )
        return rank, kernel, stride, padding

    def output_shape(self, input_shape: Shape) -> Shape:
        rank, kernel, stride, padding = self._args(input_shape)
        if self.output_size is not None:
            return (input_shape[0], *kernel)  # `kernel` holds the output size here
        sizes = sliding_output(self, input_shape[1:], kernel, stride, padding, (1,) * rank, self.ceil_mode)
        return (input_shape[0], *sizes)

    def build(self, input_shape: Shape) -> nn.Module:
        rank, kernel, stride, padding = self._args(input_shape)
        if self.output_size is not None:
            return getattr(nn, _ADAPTIVE[self.kind, rank])(kernel)
        return getattr(nn, _POOL[self.kind, rank])(kernel, stride=stride, padding=padding, ceil_mode=self.ceil_mode)


class GlobalPool(LayerSpec):
    """Global max or average pooling over every position, (C, H, W) -> (C) (or (C, 1, 1) with keepdim), for
    any input size."""

    type: Literal["global_pool"] = "global_pool"
    kind: Literal["avg", "max"] = "avg"
    """`avg` (default) or `max`."""
    keepdim: bool = False
    """false (default): (C, H, W) -> (C), ready for a linear; true keeps size-1 spatial dims, (C, 1, 1)."""

    examples = (({}, (3, 5, 5)), ({"kind": "max", "keepdim": True}, (3, 4, 4)), ({}, (2, 7)))
    export_example = ExportExample(
        (2, 6, 6), ({"conv": {"out_channels": 4, "kernel_size": 3}}, {"global_pool": {"kind": "max"}})
    )

    @property
    def label(self) -> str:
        return f"global {self.kind} pool"

    def output_shape(self, input_shape: Shape) -> Shape:
        rank = spatial_rank(self, input_shape, None, "global_pool")
        return (input_shape[0], *(1,) * rank) if self.keepdim else (input_shape[0],)

    def build(self, input_shape: Shape) -> nn.Module:
        rank = spatial_rank(self, input_shape, None, "global_pool")
        return modules.GlobalPoolModule(self.kind, list(range(2, 2 + rank)), self.keepdim)
