"""Element-wise activations: the shape goes through unchanged."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from ...errors import SpecError
from .._torch import modules, nn
from ..base import Int, PositiveInt
from .base import ExportExample, LayerSpec, Shape, fmt_shape


class _Activation(LayerSpec):
    per_step: ClassVar[bool] = True  # element-wise

    def output_shape(self, input_shape: Shape) -> Shape:
        return input_shape


class ReLU(_Activation):
    """Rectified linear unit, `nn.ReLU`: max(0, x) element-wise; the shape passes unchanged."""

    type: Literal["relu"] = "relu"

    examples = (({}, (3, 4)),)
    export_example = ExportExample.around("relu")

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.ReLU()


class LeakyReLU(_Activation):
    """Leaky ReLU, `nn.LeakyReLU`: x for x ≥ 0, else negative_slope · x; the shape passes unchanged."""

    type: Literal["leaky_relu"] = "leaky_relu"
    negative_slope: float = 0.01
    """The slope for negative inputs (default 0.01)."""

    examples = (({"negative_slope": 0.2}, (5,)),)
    export_example = ExportExample.around({"leaky_relu": {"negative_slope": 0.2}})

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.LeakyReLU(self.negative_slope)


class GELU(_Activation):
    """Gaussian error linear unit, `nn.GELU`, element-wise; the shape passes unchanged."""

    type: Literal["gelu"] = "gelu"
    approximate: Literal["none", "tanh"] = "none"
    """`none` computes the exact GELU; `tanh` uses torch's faster tanh approximation."""

    examples = (({"approximate": "tanh"}, (5,)),)
    export_example = ExportExample.around({"gelu": {"approximate": "tanh"}})

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.GELU(self.approximate)


class ELU(_Activation):
    """Exponential linear unit, `nn.ELU`, element-wise; the shape passes unchanged."""

    type: Literal["elu"] = "elu"
    alpha: float = Field(1.0, gt=0)
    """The value negative inputs saturate to, -alpha (default 1.0, must be positive)."""

    examples = (({"alpha": 0.5}, (2, 3, 3)),)
    export_example = ExportExample.around("elu")

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.ELU(self.alpha)


class Tanh(_Activation):
    """Hyperbolic tangent, `nn.Tanh`, element-wise; the shape passes unchanged."""

    type: Literal["tanh"] = "tanh"

    examples = (({}, (5,)),)
    export_example = ExportExample.around("tanh")

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.Tanh()


class Sigmoid(_Activation):
    """Logistic sigmoid, `nn.Sigmoid`, element-wise; the shape passes unchanged."""

    type: Literal["sigmoid"] = "sigmoid"

    examples = (({}, (5,)),)
    export_example = ExportExample.around("sigmoid")

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
    """Softmax along one dim, `nn.Softmax`: the values along `dim` become probabilities summing to 1; the
    shape passes unchanged."""

    type: Literal["softmax"] = "softmax"
    dim: Int = -1
    """The dim to normalise along, counting the batch dim as 0, as torch does; -1 (the default) is the last
    dim, the classes of (N, C)."""

    examples = (({}, (5,)), ({"dim": 1}, (3, 4)))
    export_example = ExportExample((6,), ({"linear": {"out_features": "num_classes"}}, "softmax"), head=False)

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.Softmax(self.dim)


class LogSoftmax(_AlongDim):
    """Log of the softmax along one dim, `nn.LogSoftmax` (pair it with the `nll` loss); the shape passes
    unchanged."""

    type: Literal["log_softmax"] = "log_softmax"
    dim: Int = -1
    """The dim to normalise along, counting the batch dim as 0, as torch does; -1 (the default) is the last
    dim."""

    examples = (({"dim": -2}, (3, 4)),)
    export_example = ExportExample((6,), ({"linear": {"out_features": "num_classes"}}, "log_softmax"), head=False)

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.LogSoftmax(self.dim)


class SiLU(_Activation):
    """Sigmoid linear unit (swish), `nn.SiLU`: x · sigmoid(x) element-wise; the shape passes unchanged."""

    type: Literal["silu"] = "silu"

    examples = (({}, (5,)),)
    export_example = ExportExample.around("silu")

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.SiLU()


class Mish(_Activation):
    """Mish, `nn.Mish`: x · tanh(softplus(x)) element-wise; the shape passes unchanged."""

    type: Literal["mish"] = "mish"

    examples = (({}, (2, 3)),)
    export_example = ExportExample.around("mish")

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.Mish()


class Softplus(_Activation):
    """Softplus, `nn.Softplus`: a smooth ReLU, log(1 + exp(beta · x)) / beta; the shape passes unchanged."""

    type: Literal["softplus"] = "softplus"
    beta: float = Field(1.0, gt=0)
    """The sharpness: larger values approach ReLU (default 1.0, must be positive)."""
    threshold: float = Field(20.0, gt=0)
    """Above this value of beta · x the input passes unchanged, for numerical stability (default 20.0)."""

    examples = (({"beta": 2.0, "threshold": 10.0}, (5,)),)
    export_example = ExportExample.around({"softplus": {"beta": 2.0}})

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.Softplus(self.beta, self.threshold)


class Hardswish(_Activation):
    """Hard swish, `nn.Hardswish`, a cheap piecewise-linear SiLU; the shape passes unchanged."""

    type: Literal["hardswish"] = "hardswish"

    examples = (({}, (5,)),)
    export_example = ExportExample.around("hardswish")

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.Hardswish()


class PReLU(_Activation):
    """Parametric ReLU, `nn.PReLU`: a leaky ReLU whose negative slope is learned; the shape passes unchanged."""

    type: Literal["prelu"] = "prelu"
    num_parameters: PositiveInt = 1
    """How many slopes to learn: 1 (the default) shares one slope, or the number of channels (dim 0 of the
    input) learns one per channel."""
    init: float = 0.25
    """The initial value of the learned slope(s) (default 0.25)."""

    examples = (({}, (3, 4, 4)), ({"num_parameters": 3, "init": 0.1}, (3, 4, 4)))
    export_example = ExportExample((2, 6, 6), ({"prelu": {"num_parameters": 2}}, "flatten"))

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
    """The constant the input is multiplied by (default 1.0)."""
    add: float = 0.0
    """The constant added after the multiplication (default 0.0)."""

    examples = (({"multiply": 2.0, "add": 1.0}, (5,)), ({"add": 1.0}, (2, 3)))
    export_example = ExportExample.around({"scale": {"multiply": 2.0, "add": 1.0}})

    @property
    def label(self) -> str:
        return f"scale ×{self.multiply} +{self.add}"

    def build(self, input_shape: Shape) -> nn.Module:
        return modules.ScaleModule(self.multiply, self.add)
