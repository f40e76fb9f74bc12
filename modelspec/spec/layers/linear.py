"""flatten and linear."""

from __future__ import annotations

import math
from typing import Literal

from ...errors import SpecError
from .._torch import nn
from ..base import Int, PositiveInt
from .base import LayerSpec, Shape, check_given, fmt_shape


class Flatten(LayerSpec):
    type: Literal["flatten"] = "flatten"
    # torch's dims count the batch dim: 1 keeps the batch, flattens the rest.
    start_dim: Int = 1
    end_dim: Int = -1

    def _span(self, input_shape: Shape) -> tuple[int, int]:
        rank = len(input_shape) + 1  # with the batch dim
        start = self.start_dim % rank if -rank <= self.start_dim < rank else None
        end = self.end_dim % rank if -rank <= self.end_dim < rank else None
        if start is None or end is None or start == 0 or start > end:
            raise SpecError(
                f"start_dim={self.start_dim}, end_dim={self.end_dim} do not fit an input of "
                f"{rank} dims (batch, {fmt_shape(input_shape)})",
                path=("start_dim",),
                hint="dims count the batch dim as 0; start_dim must be 1 or more",
            )
        return start - 1, end - 1  # per-sample dims

    def output_shape(self, input_shape: Shape) -> Shape:
        start, end = self._span(input_shape)
        merged = math.prod(input_shape[start : end + 1])
        return (*input_shape[:start], merged, *input_shape[end + 1 :])

    def build(self, input_shape: Shape) -> nn.Module:
        self._span(input_shape)
        return nn.Flatten(self.start_dim, self.end_dim)


class Linear(LayerSpec):
    type: Literal["linear"] = "linear"
    # A number, or `num_classes`: the data set's class count, resolved when the model is compiled.
    out_features: PositiveInt | Literal["num_classes"]
    bias: bool = True
    in_features: PositiveInt | None = None  # inferred: the input's last dim

    @property
    def label(self) -> str:
        return f"linear {self.out_features}"

    def with_num_classes(self, num_classes: int) -> LayerSpec:
        if self.out_features == "num_classes":
            return self.model_copy(update={"out_features": num_classes})
        return self

    def _in_features(self, input_shape: Shape) -> int:
        if not input_shape:
            raise SpecError("linear needs an input with at least one dim", hint="put it after flatten")
        what = "features"
        if len(input_shape) > 1:
            what += f" (the last dim of {fmt_shape(input_shape)})"
        return check_given(self, "in_features", input_shape[-1], what)

    def _out_features(self) -> int:
        if not isinstance(self.out_features, int):
            raise SpecError(
                "out_features: num_classes is not resolved: the class count is unknown",
                path=("out_features",),
                hint="give data.num_classes, or use a data set whose class count is known",
            )
        return self.out_features

    def output_shape(self, input_shape: Shape) -> Shape:
        self._in_features(input_shape)
        return (*input_shape[:-1], self._out_features())

    def keeps_steps(self, input_shape: Shape) -> bool:
        return len(input_shape) >= 2  # on the last dim of each step

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.Linear(self._in_features(input_shape), self._out_features(), bias=self.bias)
