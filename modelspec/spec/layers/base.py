"""The contract of a layer kind, and the shape helpers the kinds share.

A layer kind is one frozen pydantic class: its fields are its torch module's arguments under torch's
names, `output_shape(input_shape)` is the static shape rule (it also checks the input), and
`build(input_shape)` makes the module. Shapes here are per sample: no batch dimension.
"""

from __future__ import annotations

import math
from typing import Sequence

from torch import nn

from ...errors import SpecError
from ..base import SpecModel

Shape = tuple[int, ...]


def fmt_shape(shape: Sequence[int]) -> str:
    return "×".join(str(s) for s in shape) if shape else "scalar"


class LayerSpec(SpecModel):
    """Base of every layer kind. Subclasses set `type: Literal[...]` and override the two methods."""

    type: str

    def output_shape(self, input_shape: Shape) -> Shape:
        raise NotImplementedError

    def build(self, input_shape: Shape) -> nn.Module:
        raise NotImplementedError

    @property
    def label(self) -> str:
        """The name a summary table shows: the kind and its main arguments."""
        return self.type


def check_given(layer: LayerSpec, name: str, inferred: int, what: str) -> int:
    """Infer a size, or check a size the user wrote against the inferred one."""
    given = getattr(layer, name)
    if given is not None and given != inferred:
        raise SpecError(
            f"{name}={given}, but the input here has {inferred} {what}",
            path=(name,),
            hint=f"omit {name} to infer it",
        )
    return inferred


def spatial_rank(layer: LayerSpec, input_shape: Shape, dim: int | None, kinds: str) -> int:
    """1, 2 or 3 spatial dims, from the input rank (C, L) / (C, H, W) / (C, D, H, W) or `dim`."""
    inferred = len(input_shape) - 1
    if inferred not in (1, 2, 3):
        raise SpecError(
            f"{layer.type} needs an input of shape (C, L), (C, H, W) or (C, D, H, W); "
            f"received {fmt_shape(input_shape)}",
            hint=f"{kinds} works on channels × positions; put it before `flatten`",
        )
    if dim is not None and dim != inferred:
        raise SpecError(
            f"dim={dim}, but the input {fmt_shape(input_shape)} has {inferred} spatial dims",
            path=("dim",),
            hint="omit dim to pick it from the input",
        )
    return inferred


def per_dim(value: int | Sequence[int], rank: int, name: str) -> tuple[int, ...]:
    """Expand an int-or-list argument to one value per spatial dim."""
    if isinstance(value, int):
        return (value,) * rank
    if len(value) != rank:
        raise SpecError(
            f"{name} has {len(value)} values but the input has {rank} spatial dims",
            path=(name,),
            hint=f"give one number, or a list of {rank}",
        )
    return tuple(value)


def sliding_output(
    layer: LayerSpec,
    sizes: Shape,
    kernel: Shape,
    stride: Shape,
    padding: Shape,
    dilation: Shape,
    ceil_mode: bool = False,
) -> Shape:
    """Output sizes of a sliding window (conv, pool), as torch computes them; refuses zero."""
    out = []
    for size, k, s, p, d in zip(sizes, kernel, stride, padding, dilation):
        span = size + 2 * p - d * (k - 1) - 1
        n = (math.ceil if ceil_mode else math.floor)(span / s) + 1
        if ceil_mode and (n - 1) * s >= size + p:  # torch drops a last window that starts in padding
            n -= 1
        if span < 0 or n <= 0:
            raise SpecError(
                f"kernel_size {fmt_shape(kernel)} (dilation {fmt_shape(dilation)}, padding "
                f"{fmt_shape(padding)}) does not fit the input {fmt_shape(sizes)}: the output would be empty",
                path=("kernel_size",),
                hint="use a smaller kernel or stride, add padding, or remove a pooling layer before this one",
            )
        out.append(n)
    return tuple(out)
