"""Compile passes: shape inference over a layer list, then module building."""

from .model import build_from_shapes, build_model, count_parameters
from .shapes import LayerShape, NetworkShapes, infer_shapes

__all__ = ["build_from_shapes", "build_model", "count_parameters", "infer_shapes", "LayerShape", "NetworkShapes"]
