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
from .base import ExportExample, LayerSpec, Shape, fmt_shape


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
    """Reorders the dims (`torch.permute`), e.g. (C, T) -> (T, C) with dims [0, 2, 1]."""

    type: Literal["permute"] = "permute"
    dims: list[Int] = Field(min_length=2)
    """A permutation of all dims, the batch first as torch counts them: [0, 2, 1] swaps the last two."""

    examples = (({"dims": [0, 2, 3, 1]}, (3, 4, 5)), ({"dims": [0, -1, 1]}, (3, 4)))
    export_example = ExportExample(
        (2, 6, 6), ({"permute": {"dims": [0, 2, 3, 1]}}, {"linear": {"out_features": 4}}, "flatten")
    )

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
    """Swaps two dims (`torch.transpose`), counting the batch dim as 0."""

    type: Literal["transpose"] = "transpose"
    dim0: Int = 1
    """The first dim to swap, batch = 0 (default 1)."""
    dim1: Int = 2
    """The second dim to swap, batch = 0 (default 2)."""

    examples = (({}, (3, 4)), ({"dim0": -1, "dim1": 1}, (2, 3, 4)))
    export_example = ExportExample(
        (7, 4), ({"transpose": {}}, {"conv": {"out_channels": 4, "kernel_size": 3}}, "flatten")
    )

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
    """Reshapes each sample (`torch.reshape`) to `shape`; the element count must stay the same."""

    type: Literal["reshape"] = "reshape"
    shape: list[Int] = Field(min_length=1)
    """The new per-sample shape (no batch dim); one entry may be -1, inferred from the others."""

    examples = (({"shape": [2, -1]}, (3, 4)), ({"shape": [12]}, (3, 2, 2)))
    export_example = ExportExample((6,), ({"reshape": {"shape": [2, -1]}}, {"linear": {"out_features": 4}}, "flatten"))

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
    """Inserts a size-1 dim (`torch.unsqueeze`), e.g. (T) -> (T, 1)."""

    type: Literal["unsqueeze"] = "unsqueeze"
    dim: Int
    """Where the new size-1 dim goes, counting the batch dim as 0; negatives count from the end."""

    examples = (({"dim": 1}, (4,)), ({"dim": -1}, (3, 4)))
    export_example = ExportExample(
        (6,), ({"unsqueeze": {"dim": 1}}, {"conv": {"out_channels": 2, "kernel_size": 3}}, "flatten")
    )

    def output_shape(self, input_shape: Shape) -> Shape:
        at = sample_dim(self, self.dim, input_shape, extra=1)
        return (*input_shape[:at], 1, *input_shape[at:])

    def build(self, input_shape: Shape) -> nn.Module:
        self.output_shape(input_shape)
        return modules.Unsqueeze(self.dim)


class SqueezeSpec(LayerSpec):
    """Removes a size-1 dim (`torch.squeeze`)."""

    type: Literal["squeeze"] = "squeeze"
    dim: Int
    """The size-1 dim to remove, counting the batch dim as 0; never the batch, which may be 1 by chance."""

    examples = (({"dim": 2}, (4, 1)), ({"dim": 1}, (1, 3, 3)))
    export_example = ExportExample(
        (2, 6, 6), ({"conv": {"out_channels": 1, "kernel_size": 3}}, {"squeeze": {"dim": 1}}, "flatten")
    )

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
    """Takes one entry along a dim (`torch.select`), dropping that dim: the last time step of a (T, F)
    sequence by default."""

    type: Literal["select"] = "select"
    dim: Int = 1
    """The dim to index, counting the batch dim as 0; the default 1 is the time step of a (T, F) sequence."""
    index: Int = -1
    """The entry to take; -1 (the default) is the last (the last time step)."""

    examples = (({}, (5, 3)), ({"dim": 2, "index": 0}, (2, 4)))
    export_example = ExportExample((7, 4), ({"select": {"dim": 1, "index": -1}},))

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
    """Passes its input through unchanged, `nn.Identity` (a named junction in a graph)."""

    type: Literal["identity"] = "identity"
    per_step: ClassVar[bool] = True

    examples = (({}, (3, 4)),)
    export_example = ExportExample((6,), ("identity",))

    def output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.Identity()


__all__ = ["PermuteSpec", "TransposeSpec", "ReshapeSpec", "UnsqueezeSpec", "SqueezeSpec", "SelectSpec",
           "IdentitySpec"]
