"""Layers that move dims around: permute, transpose, reshape, unsqueeze, squeeze, select, identity.

Dims count the batch dim as 0, as torch does (`transpose: {dim0: 1, dim1: 2}` swaps the first two
dims of a sample); the batch dim itself never moves.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ...errors import SpecError
from .._torch import modules, nn
from ..base import Int
from .base import LayerSpec, Shape, fmt_shape


def sample_dim(layer: LayerSpec, dim: int, input_shape: Shape, name: str = "dim", extra: int = 0) -> int:
    """A torch dim (batch = 0, negatives from the end) -> its index in the per-sample shape.

    `extra` widens the range by new dims (unsqueeze may insert after the last dim).
    """
    rank = len(input_shape) + 1 + extra  # with the batch dim
    if not -rank <= dim < rank or dim % rank == 0:
        raise SpecError(
            f"{name}={dim} is not a dim of the input (batch, {fmt_shape(input_shape)}) other than the batch",
            path=(name,),
            hint="dims count the batch dim as 0 and it cannot move; -1 is the last",
        )
    return dim % rank - 1


class PermuteSpec(LayerSpec):
    type: Literal["permute"] = "permute"
    dims: list[Int] = Field(min_length=2)  # a permutation of all dims, batch first: [0, 2, 1]

    def _dims(self, input_shape: Shape) -> list[int]:
        rank = len(input_shape) + 1
        dims = [d % rank if -rank <= d < rank else d for d in self.dims]
        if sorted(dims) != list(range(rank)) or dims[0] != 0:
            raise SpecError(
                f"dims={self.dims} is not a permutation of the {rank} dims of (batch, {fmt_shape(input_shape)}) "
                "that keeps the batch dim first",
                path=("dims",),
                hint=f"list every dim once, starting with 0: e.g. {[0, *range(rank - 1, 0, -1)]}",
            )
        return dims

    def output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape[d - 1] for d in self._dims(input_shape)[1:])

    def build(self, input_shape: Shape) -> nn.Module:
        return modules.Permute(self._dims(input_shape))


class TransposeSpec(LayerSpec):
    type: Literal["transpose"] = "transpose"
    dim0: Int = 1
    dim1: Int = 2

    def output_shape(self, input_shape: Shape) -> Shape:
        a = sample_dim(self, self.dim0, input_shape, "dim0")
        b = sample_dim(self, self.dim1, input_shape, "dim1")
        shape = list(input_shape)
        shape[a], shape[b] = shape[b], shape[a]
        return tuple(shape)

    def build(self, input_shape: Shape) -> nn.Module:
        self.output_shape(input_shape)
        return modules.Transpose(self.dim0, self.dim1)


class ReshapeSpec(LayerSpec):
    type: Literal["reshape"] = "reshape"
    shape: list[Int] = Field(min_length=1)  # per sample (no batch dim); one -1 is inferred

    @model_validator(mode="after")
    def _sizes(self):
        if any(s == 0 or s < -1 for s in self.shape) or self.shape.count(-1) > 1:
            raise ValueError(f"shape={self.shape}: sizes must be positive, with at most one -1")
        return self

    @property
    def label(self) -> str:
        return f"reshape {fmt_shape(self.shape)}"

    def output_shape(self, input_shape: Shape) -> Shape:
        total, known = math.prod(input_shape), math.prod(s for s in self.shape if s != -1)
        if -1 in self.shape and total % known == 0:
            return tuple(total // known if s == -1 else s for s in self.shape)
        if -1 not in self.shape and known == total:
            return tuple(self.shape)
        raise SpecError(
            f"cannot reshape {fmt_shape(input_shape)} ({total:,} elements) to {self.shape}",
            path=("shape",),
            hint=f"the sizes must multiply to {total:,}; one -1 takes what is left",
        )

    def build(self, input_shape: Shape) -> nn.Module:
        return modules.Reshape(list(self.output_shape(input_shape)))


class UnsqueezeSpec(LayerSpec):
    type: Literal["unsqueeze"] = "unsqueeze"
    dim: Int  # where the new size-1 dim goes (batch = 0)

    def output_shape(self, input_shape: Shape) -> Shape:
        at = sample_dim(self, self.dim, input_shape, extra=1)
        return (*input_shape[:at], 1, *input_shape[at:])

    def build(self, input_shape: Shape) -> nn.Module:
        self.output_shape(input_shape)
        return modules.Unsqueeze(self.dim)


class SqueezeSpec(LayerSpec):
    type: Literal["squeeze"] = "squeeze"
    dim: Int  # a size-1 dim to remove (batch = 0); never the batch, which may be 1 by chance

    def output_shape(self, input_shape: Shape) -> Shape:
        at = sample_dim(self, self.dim, input_shape)
        if input_shape[at] != 1:
            raise SpecError(
                f"dim={self.dim} has size {input_shape[at]} in (batch, {fmt_shape(input_shape)}); squeeze removes a size-1 dim",
                path=("dim",),
                hint="use `select` to pick one entry of a dim, or `reshape`",
            )
        return (*input_shape[:at], *input_shape[at + 1 :])

    def build(self, input_shape: Shape) -> nn.Module:
        self.output_shape(input_shape)
        return modules.Squeeze(self.dim)


class SelectSpec(LayerSpec):
    type: Literal["select"] = "select"
    dim: Int = 1  # batch = 0; 1 is the time step of a (T, F) sequence
    index: Int = -1  # -1: the last entry (the last time step)

    @property
    def label(self) -> str:
        return f"select [{self.index}] of dim {self.dim}"

    def output_shape(self, input_shape: Shape) -> Shape:
        at = sample_dim(self, self.dim, input_shape)
        size = input_shape[at]
        if not -size <= self.index < size:
            raise SpecError(
                f"index={self.index} is outside dim {self.dim} of size {size}",
                path=("index",),
                hint=f"use an index in [{-size}, {size - 1}]",
            )
        return (*input_shape[:at], *input_shape[at + 1 :])

    def build(self, input_shape: Shape) -> nn.Module:
        self.output_shape(input_shape)
        return modules.Select(self.dim, self.index)


class IdentitySpec(LayerSpec):
    type: Literal["identity"] = "identity"
    per_step: ClassVar[bool] = True

    def output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.Identity()


__all__ = ["PermuteSpec", "TransposeSpec", "ReshapeSpec", "UnsqueezeSpec", "SqueezeSpec", "SelectSpec",
           "IdentitySpec"]
