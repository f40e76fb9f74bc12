"""batchnorm (1d/2d/3d from the input rank) and layernorm."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn

from ...errors import SpecError
from ..base import PositiveInt
from .base import LayerSpec, Shape, check_given, fmt_shape

_BATCHNORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d, 4: nn.BatchNorm3d}


class BatchNorm(LayerSpec):
    type: Literal["batchnorm"] = "batchnorm"
    eps: float = Field(1e-5, gt=0)
    momentum: float | None = Field(0.1, ge=0, le=1)
    affine: bool = True
    track_running_stats: bool = True
    num_features: PositiveInt | None = None  # inferred: the input's channels (dim 0)

    def _module_class(self, input_shape: Shape) -> type[nn.Module]:
        if len(input_shape) not in _BATCHNORM:
            raise SpecError(
                f"batchnorm needs an input of 1 to 4 dims; received {fmt_shape(input_shape)}",
            )
        return _BATCHNORM[len(input_shape)]

    def output_shape(self, input_shape: Shape) -> Shape:
        self._module_class(input_shape)
        check_given(self, "num_features", input_shape[0], "channels (features)")
        return input_shape

    def build(self, input_shape: Shape) -> nn.Module:
        cls = self._module_class(input_shape)
        features = check_given(self, "num_features", input_shape[0], "channels (features)")
        return cls(features, self.eps, self.momentum, self.affine, self.track_running_stats)


class LayerNorm(LayerSpec):
    type: Literal["layernorm"] = "layernorm"
    # The trailing dims to normalise over; inferred as the last dim.
    normalized_shape: PositiveInt | list[PositiveInt] | None = None
    eps: float = Field(1e-5, gt=0)
    elementwise_affine: bool = True
    bias: bool = True

    def _normalized(self, input_shape: Shape) -> tuple[int, ...]:
        if not input_shape:
            raise SpecError("layernorm needs an input with at least one dim")
        if self.normalized_shape is None:
            return (input_shape[-1],)
        wanted = (self.normalized_shape,) if isinstance(self.normalized_shape, int) else tuple(self.normalized_shape)
        if tuple(input_shape[-len(wanted):]) != wanted or len(wanted) > len(input_shape):
            raise SpecError(
                f"normalized_shape={list(wanted)} is not the trailing dims of the input {fmt_shape(input_shape)}",
                path=("normalized_shape",),
                hint="omit normalized_shape to normalise over the last dim",
            )
        return wanted

    def output_shape(self, input_shape: Shape) -> Shape:
        self._normalized(input_shape)
        return input_shape

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.LayerNorm(
            list(self._normalized(input_shape)), self.eps, self.elementwise_affine, bias=self.bias
        )
