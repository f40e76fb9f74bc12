"""The registry of layer kinds, found by scanning this package: the discriminated union is the registry.

Adding a layer kind = one module in this folder (or one class in a module here) whose `LayerSpec`
subclass has a `type: Literal["name"] = "name"` tag; nothing else lists it. A layer may be written as a
bare name (`relu`), a one-key mapping (`conv: {out_channels: 6}`) or the long form
(`{type: conv, out_channels: 6}`); `normalize_layer` turns the first two into the third.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing
from typing import Annotated, Any, Optional, Union

from pydantic import BeforeValidator, Field

from .._forms import input_forms, tagged
from .base import INPUT, LayerSpec, Shape, fmt_shape
from .block import BlockUse
from .embedding import Embedding
from .torchvision import TorchVision


def _is_kind(cls: Any, module: str) -> bool:
    """A concrete layer kind defined in `module`: a LayerSpec subclass whose `type` is one literal."""
    if not (inspect.isclass(cls) and issubclass(cls, LayerSpec) and cls.__module__ == module) or cls is BlockUse:
        return False
    tag = cls.model_fields.get("type")
    return tag is not None and typing.get_origin(tag.annotation) is typing.Literal and tag.default is not None


def discover_kinds() -> tuple[type[LayerSpec], ...]:
    """Every layer kind of the package's public modules, in module then definition order.

    `BlockUse` is left out: a use of the spec's own blocks is no kind of its own (the root spec
    resolves it), so the per-kind tests leave it out too."""
    kinds: list[type[LayerSpec]] = []
    for info in pkgutil.iter_modules(__path__):  # sorted by name
        if not info.name.startswith("_"):  # _modules, _recurrent: torch modules, no kinds
            module = importlib.import_module(f"{__name__}.{info.name}")
            kinds += [cls for cls in vars(module).values() if _is_kind(cls, module.__name__)]  # as defined
    return tuple(kinds)


LAYER_KINDS: tuple[type[LayerSpec], ...] = discover_kinds()
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
