"""dropout (element-wise) and dropout2d (whole channels)."""

from __future__ import annotations

from typing import ClassVar, Literal

from ...errors import SpecError
from .._torch import nn
from ..base import Probability
from .base import LayerSpec, Shape, fmt_shape


class Dropout(LayerSpec):
    type: Literal["dropout"] = "dropout"
    p: Probability = 0.5
    per_step: ClassVar[bool] = True  # element-wise

    def output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.Dropout(self.p)


class Dropout2d(LayerSpec):
    type: Literal["dropout2d"] = "dropout2d"
    p: Probability = 0.5

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise SpecError(
                f"dropout2d drops whole channels of a (C, H, W) input; received {fmt_shape(input_shape)}",
                hint="use `dropout` after flatten",
            )
        return input_shape

    def build(self, input_shape: Shape) -> nn.Module:
        self.output_shape(input_shape)
        return nn.Dropout2d(self.p)
