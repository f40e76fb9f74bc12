"""Layers that merge several inputs (named in `from`): add, multiply, concat."""

from __future__ import annotations

from typing import ClassVar, Literal, Sequence

from ...errors import SpecError
from .._torch import modules, nn
from ..base import Int
from .base import ExportExample, LayerSpec, Shape, fmt_shape
from .shape import sample_dim


class _Merge(LayerSpec):
    takes_list: ClassVar[bool] = True

    def output_shape(self, input_shape: Shape) -> Shape:  # one input: nothing to merge
        return self.graph_output_shape([input_shape])

    def build(self, input_shape: Shape) -> nn.Module:
        return self.graph_build([input_shape])

    def _check_count(self, input_shapes: Sequence[Shape]) -> None:
        if len(input_shapes) < 2:
            raise SpecError(
                f"{self.type} merges two or more inputs; received {len(input_shapes)}",
                path=("from",),
                hint=f"name the layers to merge: `{self.type}: {{from: [a, b]}}`",
            )

    def _described(self, input_shapes: Sequence[Shape]) -> str:
        return ", ".join(f"{source} {fmt_shape(shape)}" for source, shape in zip(self.sources or [], input_shapes))


class _Elementwise(_Merge):
    """Same shapes in, the same shape out (no broadcasting: a mismatch is nearly always a bug)."""

    def graph_output_shape(self, input_shapes: Sequence[Shape]) -> Shape:
        self._check_count(input_shapes)
        if len(set(input_shapes)) > 1:
            raise SpecError(
                f"{self.type} needs inputs of one shape; received {self._described(input_shapes)}",
                path=("from",),
                hint="match the channels and sizes first: e.g. a 1×1 conv with the same stride on the shortcut",
            )
        return input_shapes[0]


class AddSpec(_Elementwise):
    """Element-wise sum of the layers named in `from` (a residual connection); their shapes must be equal, and
    the output has that shape."""

    type: Literal["add"] = "add"

    examples = (({}, [(3, 4), (3, 4)]), ({}, [(2,), (2,), (2,)]))
    # A graph: the merge reads a named layer and the input.
    export_example = ExportExample(
        (6,), ({"linear": {"out_features": 6}}, {"relu": {"name": "a"}}, {"add": {"from": ["input", "a"]}})
    )

    def graph_build(self, input_shapes: Sequence[Shape]) -> nn.Module:
        self.graph_output_shape(input_shapes)
        return modules.Sum()


class MultiplySpec(_Elementwise):
    """Element-wise product of the layers named in `from` (gating); their shapes must be equal, and the output
    has that shape."""

    type: Literal["multiply"] = "multiply"

    examples = (({}, [(2, 3, 3), (2, 3, 3)]),)
    # A graph: the merge reads a named layer and the input.
    export_example = ExportExample(
        (6,),
        ({"linear": {"out_features": 6}}, {"sigmoid": {"name": "gate"}}, {"multiply": {"from": ["gate", "input"]}}),
    )

    def graph_build(self, input_shapes: Sequence[Shape]) -> nn.Module:
        self.graph_output_shape(input_shapes)
        return modules.Product()


class ConcatSpec(_Merge):
    """Concatenation (`torch.cat`) of the layers named in `from` along one dim; the other dims must match."""

    type: Literal["concat"] = "concat"
    dim: Int = 1
    """The dim to join along, counting the batch dim as 0: the default 1 is the channels of (C, H, W) or the
    features of (F)."""

    examples = (({}, [(2, 4), (3, 4)]), ({"dim": -1}, [(2, 3), (2, 5)]))
    # A graph: the merge reads a named layer and the input.
    export_example = ExportExample(
        (2, 6, 6),
        (
            {"conv": {"out_channels": 3, "kernel_size": 3, "padding": 1, "name": "c"}},
            {"concat": {"from": ["c", "input"]}},
            "flatten",
        ),
    )

    def graph_output_shape(self, input_shapes: Sequence[Shape]) -> Shape:
        self._check_count(input_shapes)
        first = input_shapes[0]
        if len({len(shape) for shape in input_shapes}) > 1:
            raise SpecError(
                f"concat needs inputs with the same number of dims; received {self._described(input_shapes)}",
                path=("from",),
            )
        at = sample_dim(self, self.dim, first)
        others = {shape[:at] + shape[at + 1 :] for shape in input_shapes}
        if len(others) > 1:
            raise SpecError(
                f"concat along dim {self.dim} needs the other dims equal; received {self._described(input_shapes)}",
                path=("from",),
                hint="resize the inputs to one size first (pool, upsample, pad)",
            )
        return (*first[:at], sum(shape[at] for shape in input_shapes), *first[at + 1 :])

    def graph_build(self, input_shapes: Sequence[Shape]) -> nn.Module:
        self.graph_output_shape(input_shapes)
        return modules.Concat(self.dim)
