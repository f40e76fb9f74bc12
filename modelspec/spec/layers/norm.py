"""batchnorm (1d/2d/3d from the input rank) and layernorm."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from ...errors import SpecError
from .._torch import nn
from ..base import PositiveInt
from .base import ExportExample, LayerSpec, Shape, check_given, fmt_shape

_BATCHNORM = {1: "BatchNorm1d", 2: "BatchNorm1d", 3: "BatchNorm2d", 4: "BatchNorm3d"}  # nn's, by input rank


class _PerChannelNorm(LayerSpec):
    """Batch and instance norm: torch's 1d/2d/3d class from the input rank, over dim 0's channels."""

    eps: float = Field(1e-5, gt=0)
    """Added to the variance for numerical stability (default 1e-5)."""
    momentum: float | None = Field(0.1, ge=0, le=1)
    """Weight of each batch in the running statistics, 0 to 1 (default 0.1); null keeps a cumulative average."""
    num_features: PositiveInt | None = None
    """Channels of the input; omit it to infer it from the input (dim 0), or give it to have it checked."""
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
    """Batch normalisation, `nn.BatchNorm1d`/`2d`/`3d` picked from the input rank, over the channels (dim 0);
    num_features is inferred from the input."""

    type: Literal["batchnorm"] = "batchnorm"
    affine: bool = True
    """Whether to learn a scale and shift per channel (default true)."""
    track_running_stats: bool = True
    """Whether to keep running mean and variance for evaluation (default true); false normalises with each
    batch's statistics."""
    _classes = _BATCHNORM
    _needs = "an input of 1 to 4 dims"

    examples = (
        ({}, (4,)),  # BatchNorm1d over features
        ({}, (3, 5)),  # BatchNorm1d over channels of a sequence
        ({"momentum": None, "affine": False}, (3, 4, 4)),  # BatchNorm2d
        ({"num_features": 2}, (2, 3, 3, 3)),  # BatchNorm3d
    )
    export_example = ExportExample((2, 6, 6), ("batchnorm", "flatten", {"linear": {"out_features": 5}}, "batchnorm"))


class LayerNorm(LayerSpec):
    """Layer normalisation, `nn.LayerNorm`: each sample normalised over its trailing dims; normalized_shape is
    inferred as the last dim."""

    type: Literal["layernorm"] = "layernorm"
    normalized_shape: PositiveInt | list[PositiveInt] | None = None
    """The trailing dims to normalise over (one size or a list); omit it to take the input's last dim."""
    eps: float = Field(1e-5, gt=0)
    """Added to the variance for numerical stability (default 1e-5)."""
    elementwise_affine: bool = True
    """Whether to learn a per-element scale (and shift, see bias) (default true)."""
    bias: bool = True
    """Whether the affine part learns a shift too (default true)."""

    examples = (({}, (6,)), ({"normalized_shape": [3, 4], "elementwise_affine": False}, (3, 4)))
    export_example = ExportExample((6,), ("layernorm",))

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
    """Group normalisation, `nn.GroupNorm`: the channels split into groups, each normalised per sample;
    num_channels is inferred from the input."""

    type: Literal["group_norm"] = "group_norm"
    num_groups: PositiveInt
    """How many groups to split the channels into; must divide the channel count."""
    eps: float = Field(1e-5, gt=0)
    """Added to the variance for numerical stability (default 1e-5)."""
    affine: bool = True
    """Whether to learn a scale and shift per channel (default true)."""
    num_channels: PositiveInt | None = None
    """Channels of the input; omit it to infer it from the input (dim 0), or give it to have it checked."""

    examples = (({"num_groups": 2}, (4, 3, 3)), ({"num_groups": 3, "affine": False}, (6, 5)))
    export_example = ExportExample(
        (2, 6, 6), ({"conv": {"out_channels": 4, "kernel_size": 3}}, {"group_norm": {"num_groups": 2}}, "flatten")
    )

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
    """Instance normalisation, `nn.InstanceNorm1d`/`2d`/`3d` picked from the input rank: each sample's
    channels normalised over their positions (style transfer, GANs); num_features is inferred."""

    type: Literal["instance_norm"] = "instance_norm"
    affine: bool = False
    """Whether to learn a scale and shift per channel (default false, as in torch)."""
    track_running_stats: bool = False
    """Whether to keep running statistics for evaluation (default false, as in torch: each sample is
    normalised with its own)."""
    _classes = _INSTANCENORM
    _needs = "(C, L), (C, H, W) or (C, D, H, W): it normalises each channel over its positions"

    examples = (({}, (3, 4, 4)), ({"affine": True, "track_running_stats": True}, (2, 5)))
    export_example = ExportExample((2, 6, 6), ({"instance_norm": {"affine": True}}, "flatten"))
