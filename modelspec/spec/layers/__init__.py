"""The registry of layer kinds: the discriminated union is the registry.

Adding a layer kind = one class in this folder + one entry in `LAYER_KINDS`. A layer may be written
as a bare name (`relu`), a one-key mapping (`conv: {out_channels: 6}`) or the long form
(`{type: conv, out_channels: 6}`); `normalize_layer` turns the first two into the third.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BeforeValidator, Field

from .._forms import input_forms, tagged
from .activation import ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .base import LayerSpec, Shape, fmt_shape
from .conv import Conv
from .dropout import Dropout, Dropout2d
from .embedding import Embedding
from .linear import Flatten, Linear
from .norm import BatchNorm, LayerNorm
from .pool import Pool
from .recurrent import GRU, LSTM

LAYER_KINDS: tuple[type[LayerSpec], ...] = (
    Conv, Pool, Flatten, Linear, BatchNorm, LayerNorm, Dropout, Dropout2d, LSTM, GRU, Embedding,
    ReLU, LeakyReLU, GELU, ELU, Tanh, Sigmoid, Softmax, LogSoftmax,
)
LAYER_TYPES: dict[str, type[LayerSpec]] = {cls.model_fields["type"].default: cls for cls in LAYER_KINDS}


def normalize_layer(value: Any) -> Any:
    """`relu` / `{conv: {...}}` / `{type: conv, ...}` -> `{type: conv, ...}`."""
    if isinstance(value, LayerSpec):
        return value
    return tagged(value, "type", LAYER_TYPES, "layer kind")


AnyLayer = Annotated[Union[LAYER_KINDS], Field(discriminator="type")]  # type: ignore[valid-type]
Layer = Annotated[
    AnyLayer, BeforeValidator(normalize_layer, json_schema_input_type=input_forms(LAYER_KINDS, "type"))
]

__all__ = ["LAYER_KINDS", "LAYER_TYPES", "Layer", "LayerSpec", "Shape", "fmt_shape", "normalize_layer"]
