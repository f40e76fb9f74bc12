"""The registry of layer kinds: the discriminated union is the registry.

Adding a layer kind = one class in this folder + one entry in `LAYER_KINDS`. A layer may be written
as a bare name (`relu`), a one-key mapping (`conv: {out_channels: 6}`) or the long form
(`{type: conv, out_channels: 6}`); `normalize_layer` turns the first two into the third.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional, Union

from pydantic import BeforeValidator, Field

from .._forms import input_forms, tagged
from .activation import (
    ELU, GELU, Hardswish, LeakyReLU, LogSoftmax, Mish, PReLU, ReLU, Scale, Sigmoid, SiLU, Softmax, Softplus, Tanh,
)
from .base import INPUT, LayerSpec, Shape, fmt_shape
from .block import BlockUse
from .conv import Conv, ConvTranspose
from .dropout import Dropout, Dropout2d
from .embedding import Embedding
from .linear import Flatten, Linear
from .merge import AddSpec, ConcatSpec, MultiplySpec
from .norm import BatchNorm, GroupNorm, InstanceNorm, LayerNorm
from .pool import GlobalPool, Pool
from .recurrent import GRU, LSTM
from .resample import Pad, PixelShuffle, Upsample
from .shape import IdentitySpec, PermuteSpec, ReshapeSpec, SelectSpec, SqueezeSpec, TransposeSpec, UnsqueezeSpec
from .torchvision import TorchVision

LAYER_KINDS: tuple[type[LayerSpec], ...] = (
    Conv, ConvTranspose, Pool, GlobalPool, Flatten, Linear, BatchNorm, LayerNorm, GroupNorm, InstanceNorm,
    Dropout, Dropout2d, LSTM, GRU, Embedding,
    PermuteSpec, TransposeSpec, ReshapeSpec, UnsqueezeSpec, SqueezeSpec, SelectSpec, IdentitySpec,
    Upsample, Pad, PixelShuffle, AddSpec, MultiplySpec, ConcatSpec, TorchVision,
    ReLU, LeakyReLU, GELU, ELU, Tanh, Sigmoid, Softmax, LogSoftmax, SiLU, Mish, Softplus, Hardswish, PReLU, Scale,
)
LAYER_TYPES: dict[str, type[LayerSpec]] = {cls.model_fields["type"].default: cls for cls in LAYER_KINDS}
# What a network's list may hold: the layer kinds, and uses of the spec's own blocks (which the root
# spec resolves; they are no kind of their own, so the per-kind tests leave them out).
_ITEM_TYPES = {**LAYER_TYPES, "block": BlockUse}


def normalize_layer(value: Any) -> Any:
    """`relu` / `{conv: {...}}` / `{type: conv, ...}` -> `{type: conv, ...}`."""
    if isinstance(value, LayerSpec):
        return value
    return tagged(value, "type", _ITEM_TYPES, "layer kind")


AnyLayer = Annotated[Union[(*LAYER_KINDS, BlockUse)], Field(discriminator="type")]  # type: ignore[valid-type]
# A use of one of the spec's own blocks, `basic: {channels: 64}`: its name is the spec's, so the
# schema can only say "a one-key mapping whose key is no layer kind"; validate checks the name.
_BLOCK_USE_FORM = Annotated[
    dict[str, Optional[dict[str, Any]]],
    Field(min_length=1, max_length=1, json_schema_extra={"propertyNames": {"not": {"enum": [*_ITEM_TYPES]}}}),
]
Layer = Annotated[
    AnyLayer,
    BeforeValidator(
        normalize_layer,
        json_schema_input_type=Union[input_forms((*LAYER_KINDS, BlockUse), "type"), _BLOCK_USE_FORM],
    ),
]

__all__ = ["INPUT", "LAYER_KINDS", "LAYER_TYPES", "BlockUse", "Embedding", "Layer", "LayerSpec", "Shape",
           "TorchVision", "fmt_shape", "normalize_layer"]
