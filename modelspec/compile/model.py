"""Build the nn.Module of a network, after the shape pass has checked it.

A stack (every layer reads the one before) is an nn.Sequential, exactly as the same network written by
hand. A graph is a torch.fx GraphModule: a topologically ordered node list, each node naming its
inputs; its generated forward drops each value after its last use, and it scripts, traces and
exports like any module. Either way a layer's module is named by the layer's `name`, else its index,
so the state dict of a plain list is what it always was.
"""

from __future__ import annotations

from collections import OrderedDict

import torch.fx as fx
from torch import nn

from ..spec.layers import LayerSpec, Shape
from .shapes import INPUT_INDEX, LayerShape, NetworkShapes, infer_shapes


def build_model(
    layers: list[LayerSpec], input_shape: Shape, num_classes: int | None = None, *, tokens: bool = False
) -> nn.Module:
    """A module equal, parameter for parameter, to the same network written by hand."""
    return build_from_shapes(infer_shapes(layers, input_shape, num_classes, tokens=tokens))


def build_from_shapes(shapes: NetworkShapes) -> nn.Module:
    """The modules of a network whose shape pass has already run (each layer knows its inputs)."""
    modules = OrderedDict((row.key, _module(row)) for row in shapes.layers)
    if shapes.is_stack:
        if all(row.layer.name is None for row in shapes.layers):
            return nn.Sequential(*modules.values())  # keys 0, 1, ... as ever
        return nn.Sequential(modules)
    return _graph(shapes, modules)


def _module(row: LayerShape) -> nn.Module:
    if row.repeats:  # a block use: its body once per repeat
        bodies = [build_from_shapes(body) for body in row.repeats]
        return bodies[0] if len(bodies) == 1 else nn.Sequential(*bodies)
    return row.layer.graph_build(row.input_shapes)


def _graph(shapes: NetworkShapes, modules: OrderedDict[str, nn.Module]) -> fx.GraphModule:
    root = nn.Module()
    graph = fx.Graph()
    values = {INPUT_INDEX: graph.placeholder("x")}
    for row in shapes.layers:
        root.add_module(row.key, modules[row.key])
        inputs = [values[source] for source in row.sources]
        args = (inputs,) if row.layer.takes_list else tuple(inputs)
        values[row.index] = graph.call_module(row.key, args)
    graph.output(values[shapes.layers[-1].index])
    return fx.GraphModule(root, graph, class_name="GraphNetwork")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
