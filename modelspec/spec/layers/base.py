"""The contract of a layer kind, and the shape helpers the kinds share.

A layer kind is one frozen pydantic class: its fields are its torch module's arguments under torch's
names, `output_shape(input_shape)` is the static shape rule (it also checks the input), and
`build(input_shape)` makes the module. Shapes here are per sample: no batch dimension.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, ClassVar, Optional, Sequence, Union

from pydantic import ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from ...errors import SpecError
from .._torch import nn
from ..base import SpecModel

Shape = tuple[int, ...]
# A layer's name in a graph: an identifier (it also names the layer's module in the state dict, so
# no dots, and no leading digit that could clash with the index of an unnamed layer).
NodeName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]
# The network's (or block's) own input, as a `from` source.
INPUT = "input"


def fmt_shape(shape: Sequence[int]) -> str:
    return "×".join(str(s) for s in shape) if shape else "scalar"


@dataclass(frozen=True)
class ExportExample:
    """A small network that holds a kind, which the export tests build, export to every format and verify.

    Plain data: synthetic data of `input_shape` with 3 classes (token ids below `vocab_size` when it is
    given), and a network of `layers`, then a linear to the classes unless `head` is false."""

    input_shape: Shape
    layers: tuple = ()
    vocab_size: int | None = None
    head: bool = True

    @classmethod
    def around(cls, activation: str | dict) -> ExportExample:
        """An element-wise kind between a linear and the head, on a vector."""
        return cls((6,), ({"linear": {"out_features": 5}}, activation))

    @property
    def data(self) -> dict:
        """The spec's `data` section."""
        data = {"dataset": "synthetic", "input_shape": list(self.input_shape), "num_classes": 3}
        return data if self.vocab_size is None else {**data, "vocab_size": self.vocab_size}

    @property
    def network(self) -> list:
        """The spec's `model` list."""
        return [*self.layers, *([{"linear": {"out_features": "num_classes"}}] if self.head else [])]


class LayerSpec(SpecModel):
    """Base of every layer kind. Subclasses set `type: Literal[...]` and override the two methods.

    Every kind may carry `name` (so later layers can take its output) and `from` (which earlier
    layers feed it: a name, a list of names, or `input`); without `from` a layer takes the previous
    layer's output, so a plain list is a plain stack.
    """

    model_config = ConfigDict(serialize_by_alias=True)  # `from`, as written, in dumps

    type: str
    name: Optional[NodeName] = None
    """Names this layer's output, so a later layer can take it in `from`; also its module's name in
    the state dict. Unnamed layers are known by their index."""
    from_: Optional[Union[NodeName, list[NodeName]]] = Field(None, alias="from")
    """The layer(s) whose output feeds this one: a name, a list of names, or `input` (the network's
    input). Omitted, the layer takes the previous layer's output."""
    # Multi-input kinds (add, concat, ...) get their inputs as one list, in `from` order.
    takes_list: ClassVar[bool] = False
    # Keeps the time steps: on a (T, ...) input, output step t is made from input step t (element-wise
    # kinds, dropout, a linear on each step), so the padding at the end of a token sequence stays at
    # its end, unmixed. Kinds whose answer depends on their arguments override `keeps_steps`.
    per_step: ClassVar[bool] = False
    # Takes a second argument, each sequence's real length (N,), when it reads padded token steps.
    takes_lengths: ClassVar[bool] = False
    examples: ClassVar[tuple[tuple[dict, Shape | list[Shape]], ...]] = ()
    """(arguments, per-sample input shape) pairs the per-kind tests build: the static shape rule against a
    real forward, the parameter count, and the dump round trip; several where a kind has modes worth
    checking. A merge takes a list of input shapes. Every kind declares at least one."""
    export_example: ClassVar[ExportExample | None] = None
    """The small network the export tests export to every format and verify; every kind declares one."""

    @model_serializer(mode="wrap")
    def _without_unset_wiring(self, handler: SerializerFunctionWrapHandler) -> dict:
        """A stack's layers dump as they always did (no `name: null`), so the stored spec of a run,
        and the hash that resume compares, do not change for specs written before graphs."""
        data = handler(self)
        for key in ("name", "from", "from_"):
            if key in data and data[key] is None:
                del data[key]
        return data

    def output_shape(self, input_shape: Shape) -> Shape:
        raise NotImplementedError

    def build(self, input_shape: Shape) -> nn.Module:
        raise NotImplementedError

    def graph_output_shape(self, input_shapes: Sequence[Shape]) -> Shape:
        """The shape rule over the layer's inputs; one-input kinds take exactly one."""
        return self.output_shape(_single(self, input_shapes))

    def graph_build(self, input_shapes: Sequence[Shape]) -> nn.Module:
        return self.build(_single(self, input_shapes))

    def keeps_steps(self, input_shape: Shape) -> bool:
        """On a (T, ...) input whose dim 0 is time steps: output step t is made from input step t (or, for
        a recurrent layer given the lengths, from the real steps alone) and the padding stays after them."""
        return self.per_step

    def with_num_classes(self, num_classes: int) -> "LayerSpec":
        """This layer with `num_classes` sizes resolved (kinds that take `num_classes` override it)."""
        return self

    @property
    def sources(self) -> list[str] | None:
        """`from` as a list, or None (the previous layer)."""
        if self.from_ is None:
            return None
        return [self.from_] if isinstance(self.from_, str) else list(self.from_)

    @property
    def label(self) -> str:
        """The name a summary table shows: the kind and its main arguments."""
        return self.type


def _single(layer: LayerSpec, input_shapes: Sequence[Shape]) -> Shape:
    if len(input_shapes) != 1:
        raise SpecError(
            f"{layer.type} takes one input; received {len(input_shapes)} (from: {', '.join(layer.sources or [])})",
            path=("from",),
            hint="to combine several outputs, use `add`, `multiply` or `concat`",
        )
    return input_shapes[0]


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


def per_dim(value: float | Sequence[float], rank: int, name: str) -> tuple:
    """Expand an int-or-list argument to one value per spatial dim."""
    if isinstance(value, (int, float)):
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
