"""flatten and linear."""

from __future__ import annotations

import math
from typing import Literal

from ...errors import SpecError
from .._torch import nn
from ..base import Int, PositiveInt
from .base import ExportExample, LayerSpec, Shape, check_given, fmt_shape


class Flatten(LayerSpec):
    """Flatten, `nn.Flatten`: merges the dims from start_dim to end_dim into one, e.g. (C, H, W) -> (C·H·W),
    ready for a linear."""

    type: Literal["flatten"] = "flatten"
    start_dim: Int = 1
    """The first dim to merge, counting the batch dim as 0 as torch does; the default 1 keeps the batch and
    flattens the rest."""
    end_dim: Int = -1
    """The last dim to merge, counting the batch dim as 0; -1 (the default) is the last."""

    examples = (({}, (2, 3, 4)), ({"start_dim": 2}, (2, 3, 4)), ({"start_dim": 1, "end_dim": 2}, (2, 3, 4)))
    export_example = ExportExample((2, 6, 6), ("flatten",))

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
    """Fully connected layer, `nn.Linear`, applied to the input's last dim; in_features is inferred from the
    input."""

    type: Literal["linear"] = "linear"
    out_features: PositiveInt | Literal["num_classes"]
    """Features of the output: a number, or `num_classes` for the data set's class count (resolved when the
    model is compiled)."""
    bias: bool = True
    """Whether to learn an additive bias (default true)."""
    in_features: PositiveInt | None = None
    """Features of the input; omit it to infer it from the input's last dim, or give it to have it checked."""

    examples = (
        ({"out_features": 5}, (7,)),
        ({"out_features": 5, "bias": False, "in_features": 7}, (4, 7)),  # over the last dim
    )
    export_example = ExportExample((6,), ({"linear": {"out_features": 4}},))

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
