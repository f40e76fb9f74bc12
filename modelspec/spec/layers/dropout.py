"""dropout (element-wise) and dropout2d (whole channels)."""

from __future__ import annotations

from typing import ClassVar, Literal

from ...errors import SpecError
from .._torch import nn
from ..base import Probability
from .base import ExportExample, LayerSpec, Shape, fmt_shape


class Dropout(LayerSpec):
    """Dropout, `nn.Dropout`: zeroes each element with probability p while training (scaling the rest by
    1/(1-p)); a no-op in evaluation. The shape passes unchanged."""

    type: Literal["dropout"] = "dropout"
    p: Probability = 0.5
    """The probability that an element is zeroed, 0 to 1 (default 0.5)."""
    per_step: ClassVar[bool] = True  # element-wise

    examples = (({"p": 0.3}, (5,)), ({}, (2, 3, 3)))
    export_example = ExportExample((6,), ({"dropout": {"p": 0.5}},))

    def output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.Dropout(self.p)


class Dropout2d(LayerSpec):
    """Channel dropout, `nn.Dropout2d`: zeroes whole channels of a (C, H, W) input with probability p while
    training; the shape passes unchanged."""

    type: Literal["dropout2d"] = "dropout2d"
    p: Probability = 0.5
    """The probability that a channel is zeroed, 0 to 1 (default 0.5)."""

    examples = (({"p": 0.3}, (3, 4, 4)),)
    export_example = ExportExample((2, 6, 6), ({"dropout2d": {"p": 0.5}}, "flatten"))

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
