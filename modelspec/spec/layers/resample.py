"""Layers that change the spatial size without weights: upsample, pad, pixel_shuffle."""

from __future__ import annotations

import math
from typing import Literal, Optional

from pydantic import Field, model_validator

from ...errors import SpecError
from .._torch import modules, nn
from ..base import NonNegativeInt, PositiveInt
from .base import ExportExample, LayerSpec, Shape, fmt_shape, per_dim, spatial_rank

# The interpolations and the spatial ranks they take, as torch's F.interpolate has them.
_MODE_RANKS = {"nearest": (1, 2, 3), "linear": (1,), "bilinear": (2,), "bicubic": (2,), "trilinear": (3,)}


class Upsample(LayerSpec):
    """Upsampling without weights, `nn.Upsample`, over the spatial dims of (C, L), (C, H, W) or (C, D, H, W).
    Give scale_factor or size, exactly one."""

    type: Literal["upsample"] = "upsample"
    mode: Literal["nearest", "linear", "bilinear", "bicubic", "trilinear"] = "nearest"
    """The interpolation: `nearest` (default), `linear` (1 spatial dim), `bilinear`/`bicubic` (2) or
    `trilinear` (3)."""
    scale_factor: Optional[float | list[float]] = None
    """The output size as a multiple of the input's: output = floor(input × scale_factor); one number or one
    per spatial dim."""
    size: Optional[PositiveInt | list[PositiveInt]] = None
    """A fixed output size instead of a scale: one number or one per spatial dim."""
    align_corners: Optional[bool] = None
    """For the interpolating modes only: whether the corner pixels of input and output align (torch's default
    when omitted)."""

    examples = (
        ({"scale_factor": 2}, (2, 3, 3)),
        ({"mode": "bilinear", "size": [5, 7], "align_corners": False}, (2, 3, 3)),
        ({"mode": "bicubic", "scale_factor": [1.5, 2.0]}, (1, 4, 4)),
        ({"size": 6}, (2, 3)),  # nearest, 1d
    )
    export_example = ExportExample(
        (2, 6, 6), ({"upsample": {"scale_factor": 2}}, {"upsample": {"mode": "bilinear", "size": 9}}, "flatten")
    )

    @model_validator(mode="after")
    def _one_of_scale_or_size(self):
        if (self.scale_factor is None) == (self.size is None):
            raise ValueError("give scale_factor or size, exactly one")
        if self.mode == "nearest" and self.align_corners is not None:
            raise ValueError("align_corners applies to linear, bilinear, bicubic and trilinear only")
        return self

    @property
    def label(self) -> str:
        return f"upsample {self.mode} ×{self.scale_factor}" if self.size is None else f"upsample {self.mode} → {self.size}"

    def _rank(self, input_shape: Shape) -> int:
        rank = spatial_rank(self, input_shape, None, "upsample")
        if rank not in _MODE_RANKS[self.mode]:
            raise SpecError(
                f"mode={self.mode} takes {'/'.join(f'{r}d' for r in _MODE_RANKS[self.mode])} inputs; "
                f"received {fmt_shape(input_shape)} ({rank} spatial dims)",
                path=("mode",),
                hint="nearest takes any; linear: (C, L), bilinear/bicubic: (C, H, W), trilinear: (C, D, H, W)",
            )
        return rank

    def output_shape(self, input_shape: Shape) -> Shape:
        rank = self._rank(input_shape)
        if self.size is not None:
            return (input_shape[0], *per_dim(self.size, rank, "size"))
        scales = per_dim(self.scale_factor, rank, "scale_factor")
        sizes = tuple(math.floor(n * s) for n, s in zip(input_shape[1:], scales))
        if any(s <= 0 for s in sizes):
            raise SpecError(f"scale_factor={self.scale_factor} leaves an empty output", path=("scale_factor",))
        return (input_shape[0], *sizes)

    def build(self, input_shape: Shape) -> nn.Module:
        rank = self._rank(input_shape)
        if self.size is not None:
            return nn.Upsample(size=per_dim(self.size, rank, "size"), mode=self.mode, align_corners=self.align_corners)
        scale = per_dim(self.scale_factor, rank, "scale_factor")
        return nn.Upsample(scale_factor=scale, mode=self.mode, align_corners=self.align_corners)


class Pad(LayerSpec):
    """Padding without weights, `F.pad`, over the spatial dims."""

    type: Literal["pad"] = "pad"
    padding: NonNegativeInt | list[NonNegativeInt]
    """One number pads that much on both sides of every spatial dim; a list follows torch's F.pad order, the
    last dim first: [left, right] or [left, right, top, bottom] ..."""
    mode: Literal["constant", "reflect", "replicate"] = "constant"
    """What the padding holds: `constant` (default, `value`), `reflect` or `replicate`."""
    value: float = 0.0
    """The fill of the `constant` mode (default 0.0)."""

    examples = (
        ({"padding": 1}, (2, 3, 3)),
        ({"padding": [1, 2], "mode": "reflect"}, (2, 4)),
        ({"padding": [0, 1, 2, 0], "mode": "replicate"}, (2, 3, 3)),
        ({"padding": [1, 1], "value": 0.5}, (5,)),
    )
    export_example = ExportExample(
        (2, 6, 6), ({"pad": {"padding": 1, "mode": "reflect"}}, {"pad": {"padding": [0, 1], "value": 1.0}}, "flatten")
    )

    @model_validator(mode="after")
    def _pairs(self):
        if isinstance(self.padding, list) and (not self.padding or len(self.padding) % 2):
            raise ValueError("padding lists come in pairs, last dim first: [left, right, top, bottom, ...]")
        if self.mode != "constant" and self.value != 0.0:
            raise ValueError("value is the fill of mode: constant only")
        return self

    def _padding(self, input_shape: Shape) -> list[int]:
        spatial = len(input_shape) - 1
        if isinstance(self.padding, int):
            if spatial < 1:
                raise SpecError(f"pad needs (C, L), (C, H, W) or (C, D, H, W); received {fmt_shape(input_shape)}")
            return [self.padding] * (2 * spatial)
        dims = len(self.padding) // 2
        limit = spatial if self.mode != "constant" else len(input_shape)
        if dims > limit or (self.mode != "constant" and dims != spatial):
            raise SpecError(
                f"padding {self.padding} pads {dims} dims, but mode={self.mode} on {fmt_shape(input_shape)} "
                f"pads {'exactly ' + str(spatial) if self.mode != 'constant' else 'at most ' + str(limit)}",
                path=("padding",),
                hint="give a pair per padded dim, the last dim first",
            )
        return list(self.padding)

    def output_shape(self, input_shape: Shape) -> Shape:
        padding = self._padding(input_shape)
        shape = list(input_shape)
        for i in range(len(padding) // 2):
            dim = len(shape) - 1 - i
            before, after = padding[2 * i], padding[2 * i + 1]
            if self.mode == "reflect" and max(before, after) >= shape[dim]:
                raise SpecError(
                    f"reflect padding {max(before, after)} must be smaller than the size {shape[dim]} it reflects",
                    path=("padding",),
                    hint="use replicate or constant padding, or less of it",
                )
            shape[dim] += before + after
        return tuple(shape)

    def build(self, input_shape: Shape) -> nn.Module:
        self.output_shape(input_shape)
        return modules.PadModule(self._padding(input_shape), self.mode, self.value)


class PixelShuffle(LayerSpec):
    """Pixel shuffle, `nn.PixelShuffle`: (C·r², H, W) -> (C, H·r, W·r), a sub-pixel upsampling."""

    type: Literal["pixel_shuffle"] = "pixel_shuffle"
    upscale_factor: PositiveInt = Field(le=64)
    """The factor r each spatial dim grows by; the channels must divide by r² (at most 64)."""

    examples = (({"upscale_factor": 2}, (8, 3, 3)),)
    export_example = ExportExample(
        (2, 6, 6),
        ({"conv": {"out_channels": 8, "kernel_size": 3}}, {"pixel_shuffle": {"upscale_factor": 2}}, "flatten"),
    )

    def output_shape(self, input_shape: Shape) -> Shape:
        r = self.upscale_factor
        if len(input_shape) != 3 or input_shape[0] % (r * r):
            raise SpecError(
                f"pixel_shuffle ×{r} needs (C, H, W) with C divisible by {r * r}; received {fmt_shape(input_shape)}",
                path=("upscale_factor",),
                hint=f"give the conv before it {r * r}× the channels you want out",
            )
        c, h, w = input_shape
        return (c // (r * r), h * r, w * r)

    def build(self, input_shape: Shape) -> nn.Module:
        self.output_shape(input_shape)
        return nn.PixelShuffle(self.upscale_factor)
