"""Build the nn.Module of a layer list, after the shape pass has checked it."""

from __future__ import annotations

from torch import nn

from ..spec.layers import LayerSpec, Shape
from .shapes import NetworkShapes, infer_shapes


def build_model(
    layers: list[LayerSpec], input_shape: Shape, num_classes: int | None = None, *, tokens: bool = False
) -> nn.Sequential:
    """An nn.Sequential equal, parameter for parameter, to the same network written by hand."""
    return build_from_shapes(infer_shapes(layers, input_shape, num_classes, tokens=tokens))


def build_from_shapes(shapes: NetworkShapes) -> nn.Sequential:
    """The modules of a network whose shape pass has already run (each layer knows its input)."""
    return nn.Sequential(*(row.layer.build(row.input_shape) for row in shapes.layers))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
