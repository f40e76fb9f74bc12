"""batchnorm (1d/2d/3d from the input rank) and layernorm."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from ...errors import SpecError
from .._torch import nn
from ..base import PositiveInt
from .base import LayerSpec, Shape, check_given, fmt_shape

_BATCHNORM = {1: "BatchNorm1d", 2: "BatchNorm1d", 3: "BatchNorm2d", 4: "BatchNorm3d"}  # nn's, by input rank


class _PerChannelNorm(LayerSpec):
    """Batch and instance norm: torch's 1d/2d/3d class from the input rank, over dim 0's channels."""

    eps: float = Field(1e-5, gt=0)
    momentum: float | None = Field(0.1, ge=0, le=1)
    num_features: PositiveInt | None = None  # inferred: the input's channels (dim 0)
    _classes: ClassVar[dict[int, str]]  # nn's class names
    _needs: ClassVar[str]

    def _module_class(self, input_shape: Shape) -> type[nn.Module]:
        if len(input_shape) not in self._classes:
            raise SpecError(f"{self.type} needs {self._needs}; received {fmt_shape(input_shape)}")
        return getattr(nn, self._classes[len(input_shape)])

    def output_shape(self, input_shape: Shape) -> Shape:
        self._module_class(input_shape)
        check_given(self, "num_features", input_shape[0], "channels (features)")
        return input_shape

    def build(self, input_shape: Shape) -> nn.Module:
        cls = self._module_class(input_shape)
        features = check_given(self, "num_features", input_shape[0], "channels (features)")
        return cls(features, self.eps, self.momentum, self.affine, self.track_running_stats)


class BatchNorm(_PerChannelNorm):
    type: Literal["batchnorm"] = "batchnorm"
    affine: bool = True
    track_running_stats: bool = True
    _classes = _BATCHNORM
    _needs = "an input of 1 to 4 dims"


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

    def keeps_steps(self, input_shape: Shape) -> bool:
        return len(self._normalized(input_shape)) < len(input_shape)  # each step normalised on its own

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.LayerNorm(
            list(self._normalized(input_shape)), self.eps, self.elementwise_affine, bias=self.bias
        )


class GroupNorm(LayerSpec):
    type: Literal["group_norm"] = "group_norm"
    num_groups: PositiveInt
    eps: float = Field(1e-5, gt=0)
    affine: bool = True
    num_channels: PositiveInt | None = None  # inferred: the input's channels (dim 0)

    def _channels(self, input_shape: Shape) -> int:
        if len(input_shape) < 2:
            raise SpecError(f"group_norm needs (C, ...) with positions; received {fmt_shape(input_shape)}")
        channels = check_given(self, "num_channels", input_shape[0], "channels")
        if channels % self.num_groups:
            raise SpecError(
                f"num_groups={self.num_groups} does not divide the {channels} channels",
                path=("num_groups",),
                hint="pick a divisor of the channel count",
            )
        return channels

    def output_shape(self, input_shape: Shape) -> Shape:
        self._channels(input_shape)
        return input_shape

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.GroupNorm(self.num_groups, self._channels(input_shape), self.eps, self.affine)


_INSTANCENORM = {2: "InstanceNorm1d", 3: "InstanceNorm2d", 4: "InstanceNorm3d"}


class InstanceNorm(_PerChannelNorm):
    """Each sample's channels normalised over their positions (style transfer, GANs)."""

    type: Literal["instance_norm"] = "instance_norm"
    affine: bool = False  # torch's defaults: no weights, no running statistics
    track_running_stats: bool = False
    _classes = _INSTANCENORM
    _needs = "(C, L), (C, H, W) or (C, D, H, W): it normalises each channel over its positions"
