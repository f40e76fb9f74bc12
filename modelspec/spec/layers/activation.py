"""Element-wise activations: the shape goes through unchanged."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn

from ...errors import SpecError
from ..base import Int
from .base import LayerSpec, Shape, fmt_shape


class _Activation(LayerSpec):
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
