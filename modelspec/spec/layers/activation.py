"""Element-wise activations: the shape goes through unchanged."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from ...errors import SpecError
from .._torch import modules, nn
from ..base import Int, PositiveInt
from .base import LayerSpec, Shape, fmt_shape


class _Activation(LayerSpec):
    per_step: ClassVar[bool] = True  # element-wise

    def output_shape(self, input_shape: Shape) -> Shape:
        return input_shape


class ReLU(_Activation):
    type: Literal["relu"] = "relu"

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.ReLU()


class LeakyReLU(_Activation):
    type: Literal["leaky_relu"] = "leaky_relu"
    negative_slope: float = 0.01

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.LeakyReLU(self.negative_slope)


class GELU(_Activation):
    type: Literal["gelu"] = "gelu"
    approximate: Literal["none", "tanh"] = "none"

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.GELU(self.approximate)


class ELU(_Activation):
    type: Literal["elu"] = "elu"
    alpha: float = Field(1.0, gt=0)

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.ELU(self.alpha)


class Tanh(_Activation):
    type: Literal["tanh"] = "tanh"

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.Tanh()


class Sigmoid(_Activation):
    type: Literal["sigmoid"] = "sigmoid"

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.Sigmoid()


class _AlongDim(_Activation):
    def output_shape(self, input_shape: Shape) -> Shape:
        rank = len(input_shape) + 1  # with the batch dim
        if not -rank <= self.dim < rank or self.dim % rank == 0:
            raise SpecError(
                f"dim={self.dim} is not a dim of the input (batch, {fmt_shape(input_shape)})",
                path=("dim",),
                hint="dims count the batch dim as 0; -1 is the last",
            )
        return input_shape

    def keeps_steps(self, input_shape: Shape) -> bool:
        return self.dim % (len(input_shape) + 1) != 1  # along dim 1 (time) it mixes the steps


class Softmax(_AlongDim):
    type: Literal["softmax"] = "softmax"
    dim: Int = -1  # counts the batch dim, as torch does; -1 is the class dim of (N, C)

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.Softmax(self.dim)


class LogSoftmax(_AlongDim):
    type: Literal["log_softmax"] = "log_softmax"
    dim: Int = -1

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.LogSoftmax(self.dim)


class SiLU(_Activation):
    type: Literal["silu"] = "silu"

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.SiLU()


class Mish(_Activation):
    type: Literal["mish"] = "mish"

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.Mish()


class Softplus(_Activation):
    type: Literal["softplus"] = "softplus"
    beta: float = Field(1.0, gt=0)
    threshold: float = Field(20.0, gt=0)  # above it (times beta) the input passes unchanged

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.Softplus(self.beta, self.threshold)


class Hardswish(_Activation):
    type: Literal["hardswish"] = "hardswish"

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.Hardswish()


class PReLU(_Activation):
    type: Literal["prelu"] = "prelu"
    # 1: one learned slope; or one per channel (dim 0 of the input), as torch takes it.
    num_parameters: PositiveInt = 1
    init: float = 0.25

    def output_shape(self, input_shape: Shape) -> Shape:
        channels = input_shape[0] if input_shape else 1
        if self.num_parameters not in (1, channels):
            raise SpecError(
                f"num_parameters={self.num_parameters}, but the input {fmt_shape(input_shape)} has {channels} channels",
                path=("num_parameters",),
                hint=f"use 1 (one slope) or {channels} (one per channel)",
            )
        return input_shape

    def build(self, input_shape: Shape) -> nn.Module:
        self.output_shape(input_shape)
        return nn.PReLU(self.num_parameters, self.init)


class Scale(_Activation):
    """x · multiply + add, with constants (the `1 + x` of a gated block is `scale: {add: 1}`)."""

    type: Literal["scale"] = "scale"
    multiply: float = 1.0
    add: float = 0.0

    @property
    def label(self) -> str:
        return f"scale ×{self.multiply} +{self.add}"

    def build(self, input_shape: Shape) -> nn.Module:
        return modules.ScaleModule(self.multiply, self.add)
