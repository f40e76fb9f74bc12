"""The data section: a discriminated union on `dataset`, one class per kind of data.

Each kind keeps only its own keys, its static shape rule and its hooks (open the splits, read raw
inputs for predict, read labelled data for evaluate); the loader settings (batch size, shuffle,
workers, ...) are shared through `DataBase`. The registry is discovered: every `DataBase` subclass
with a `dataset` Literal defined in a module of this package is a kind, in module order and, within
a module, in the order of definition. Adding a kind is one module.
"""

from __future__ import annotations

import importlib
import pkgutil
import typing
from typing import Annotated, Any, Union

from pydantic import BeforeValidator, Field
from pydantic_core import to_jsonable_python

from ...errors import did_you_mean
from .._forms import spec_error
from ._base import LOADER_KEYS, DataBase, LoaderSettings, Shape, TargetKind
from .images import KNOWN_DATASETS, ImageData, ImageFolderData, TorchvisionData
from .synthetic import SyntheticData
from .tabular import Categorical, CsvData, NullIndicator, Numeric
from .text import TextData
from .time_series import TimeSeriesData


def _names(kind: type) -> tuple[str, ...]:
    """The `dataset` names a class takes: the arguments of its `dataset` Literal (none: no kind)."""
    field = getattr(kind, "model_fields", {}).get("dataset")
    if field is None or typing.get_origin(field.annotation) is not typing.Literal:
        return ()
    return typing.get_args(field.annotation)


def _discover() -> tuple[type[DataBase], ...]:
    """Every data kind defined in a module of this package, in a fixed order."""
    kinds: list[type[DataBase]] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        kinds += [value for value in vars(module).values()
                  if isinstance(value, type) and issubclass(value, DataBase) and value.__module__ == module.__name__
                  and _names(value)]
    return tuple(kinds)


DATA_KINDS: tuple[type[DataBase], ...] = _discover()
DATASET_NAMES_OF = {kind: _names(kind) for kind in DATA_KINDS}
DATASET_NAMES: list[str] = [name for names in DATASET_NAMES_OF.values() for name in names]


def kind_of(dataset: Any) -> type[DataBase] | None:
    """The kind whose `dataset` names include `dataset` (a stored preprocessing's), or None."""
    return next((kind for kind in DATA_KINDS if dataset in DATASET_NAMES_OF[kind]), None)


def reads_inputs(kind: type[DataBase]) -> bool:
    """Whether `modelspec predict` reads raw inputs for the kind (it overrides `read_inputs`)."""
    return kind.read_inputs.__func__ is not DataBase.read_inputs.__func__


def _defaults(kind: type[DataBase]) -> dict[str, Any]:
    """A kind's own keys that have defaults, at their defaults as JSON data."""
    return {name: to_jsonable_python(field.get_default(call_default_factory=True))
            for name, field in kind.model_fields.items()
            if name not in LoaderSettings.model_fields and not field.is_required()}


# Weights and checkpoints written before the data kinds hold the old flat data section in full: every
# kind's keys, at their defaults for the kinds they did not apply to. A key that is not the kind's
# own and holds another kind's default is such a leftover, and is dropped.
def _other_defaults(kind: type[DataBase]) -> dict[str, list[Any]]:
    """Key -> the defaults other kinds give it."""
    found: dict[str, list[Any]] = {}
    for other in DATA_KINDS:
        for name, default in (_defaults(other).items() if other is not kind else ()):
            found.setdefault(name, []).append(default)
    return found


_OTHER_DEFAULTS = {kind: _other_defaults(kind) for kind in DATA_KINDS}


def _without_flat_defaults(value: dict[str, Any]) -> dict[str, Any]:
    kind = kind_of(value.get("dataset"))
    if kind is None:
        return value
    others = _OTHER_DEFAULTS[kind]
    return {key: v for key, v in value.items() if key in kind.model_fields or v not in others.get(key, [])}


def _known_dataset(value: Any) -> Any:
    """An unknown or missing `dataset` is one message with the valid names (not one per kind)."""
    if isinstance(value, DataBase) or not isinstance(value, dict):
        return value
    value = _without_flat_defaults(value)
    if "dataset" not in value:
        raise spec_error("missing required key 'dataset'", key="dataset",
                         hint="one of: " + ", ".join(DATASET_NAMES))
    name = value["dataset"]
    if name not in DATASET_NAMES:
        expected = ", ".join(repr(n) for n in DATASET_NAMES[:-1]) + f" or {DATASET_NAMES[-1]!r}"
        raise spec_error(f"expected {expected}; received {name!r}"[:300], key="dataset",
                         hint=did_you_mean(name, DATASET_NAMES) if isinstance(name, str) else "")
    return value


DataSpec = Annotated[
    Annotated[Union[DATA_KINDS], Field(discriminator="dataset")],  # type: ignore[valid-type]
    BeforeValidator(_known_dataset),
]


def static_shape(data: DataBase) -> tuple[Shape, int | None]:
    """(input_shape, num_classes) as far as they are known without reading data."""
    return data.static_shape()


__all__ = [
    "DATA_KINDS", "DATASET_NAMES", "DataSpec", "DataBase", "ImageData", "TorchvisionData", "ImageFolderData",
    "CsvData", "TextData", "TimeSeriesData", "SyntheticData", "Categorical", "Numeric", "NullIndicator",
    "KNOWN_DATASETS", "LOADER_KEYS", "LoaderSettings", "TargetKind", "kind_of", "reads_inputs", "static_shape",
]
