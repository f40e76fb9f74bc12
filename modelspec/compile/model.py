"""Build the nn.Module of a network, after the shape pass has checked it.

A stack (every layer reads the one before) is an nn.Sequential, exactly as the same network written by
hand. A graph is a torch.fx GraphModule: a topologically ordered node list, each node naming its
inputs; its generated forward drops each value after its last use, and it scripts, traces and
exports like any module. Either way a layer's module is named by the layer's `name`, else its index,
so the state dict of a plain list is what it always was.

A recurrent layer that reads padded token steps (an embedding with padding_idx, then layers that keep
the steps) takes each sequence's real length as a second argument: such a network is a graph, even
a plain list, with one more node that computes the lengths from the token ids (it has no weights, so
the state dict is the same). The exported files compute it too: a caller feeds ids as ever.
"""

from __future__ import annotations

from collections import OrderedDict

import torch.fx as fx
from torch import nn

from ..errors import Path, SpecError
from ..spec.layers import LayerSpec, Shape
from ..spec.layers._recurrent import SequenceLengths
from .shapes import INPUT_INDEX, LayerShape, NetworkShapes, infer_shapes, length_readers
from .shapes import _located as located_at


def build_model(
    layers: list[LayerSpec], input_shape: Shape, num_classes: int | None = None, *, tokens: bool = False
) -> nn.Module:
    """A module equal, parameter for parameter, to the same network written by hand."""
    return build_from_shapes(infer_shapes(layers, input_shape, num_classes, tokens=tokens))


def build_from_shapes(shapes: NetworkShapes) -> nn.Module:
    """The modules of a network whose shape pass has already run (each layer knows its inputs)."""
    modules = OrderedDict((row.key, _module(row, shapes.path)) for row in shapes.layers)
    if shapes.is_stack and not _padded_readers(shapes):
        if all(row.layer.name is None for row in shapes.layers):
            return nn.Sequential(*modules.values())  # keys 0, 1, ... as ever
        return nn.Sequential(modules)
    return _graph(shapes, modules)


def _module(row: LayerShape, path: Path) -> nn.Module:
    if row.repeats:  # a block use: its body once per repeat
        bodies = [build_from_shapes(body) for body in row.repeats]
        return bodies[0] if len(bodies) == 1 else nn.Sequential(*bodies)
    try:
        return row.layer.graph_build(row.input_shapes)
    except SpecError as exc:  # what only a real build meets (weights that cannot be fetched): at the layer
        raise located_at(exc, path + (row.index, row.layer.type)) from None


def _padded_readers(shapes: NetworkShapes) -> dict[int, int]:
    """Layer index -> the padding id of the token steps it reads, for layers that take lengths."""
    readers = length_readers(shapes)
    return {index: row.layer.padding_idx for index, row in readers.items() if row.layer.padding_idx is not None}


def _graph(shapes: NetworkShapes, modules: OrderedDict[str, nn.Module]) -> fx.GraphModule:
    root = nn.Module()
    graph = fx.Graph()
    values = {INPUT_INDEX: graph.placeholder("x")}
    readers = _padded_readers(shapes)
    lengths = {}  # padding id -> the node of the sequence lengths (N,)
    for pad_id in sorted(set(readers.values())):
        name = _free_name(f"lengths_pad{pad_id}", modules)
        root.add_module(name, SequenceLengths(pad_id))
        lengths[pad_id] = graph.call_module(name, (values[INPUT_INDEX],))
    for row in shapes.layers:
        root.add_module(row.key, modules[row.key])
        inputs = [values[source] for source in row.sources]
        args = (inputs,) if row.layer.takes_list else tuple(inputs)
        if row.index in readers:
            args += (lengths[readers[row.index]],)
        values[row.index] = graph.call_module(row.key, args)
    graph.output(values[shapes.layers[-1].index])
    return fx.GraphModule(root, graph, class_name="GraphNetwork")


def _free_name(name: str, taken: OrderedDict[str, nn.Module]) -> str:
    while name in taken:  # a layer may be named so too
        name = "_" + name
    return name


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
