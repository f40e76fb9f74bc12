"""The data section: a discriminated union on `dataset`, one class per kind of data.

Each kind keeps only its own keys, its static shape rule and its way to open a split; the loader
settings (batch size, shuffle, workers, val_split, ...) are shared through `DataBase`. Adding a kind
is one class here and one entry in `DATA_KINDS`.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Union

from pydantic import BeforeValidator, Field

from ...errors import did_you_mean
from .._forms import spec_error
from ._base import LOADER_KEYS, DataBase, Shape, TargetKind
from .images import KNOWN_DATASETS, ImageData, ImageFolderData, TorchvisionData
from .synthetic import SyntheticData
from .tabular import Categorical, CsvData, NullIndicator, Numeric
from .text import TextData
from .time_series import TimeSeriesData

DATA_KINDS: tuple[type[DataBase], ...] = (
    TorchvisionData, ImageFolderData, CsvData, TextData, TimeSeriesData, SyntheticData,
)
DATASET_NAMES_OF = {kind: typing.get_args(kind.model_fields["dataset"].annotation) for kind in DATA_KINDS}
DATASET_NAMES: list[str] = [name for names in DATASET_NAMES_OF.values() for name in names]


# Weights and checkpoints written before the data kinds hold the old flat data section in full: every
# kind's keys, at their defaults for the kinds they did not apply to. Those defaults are dropped.
_FLAT_DEFAULTS: dict[str, Any] = {
    "root": "data", "download": False, "transforms": [{"type": "to_tensor"}], "input_shape": None,
    "num_classes": None, "train_dir": "train", "test_dir": "test", "size": 1024, "test_size": 256,
    "vocab_size": None, "seed": 0,
}


def _without_flat_defaults(value: dict[str, Any]) -> dict[str, Any]:
    kind = next((k for k in DATA_KINDS if value.get("dataset") in DATASET_NAMES_OF[k]), None)
    if kind is None:
        return value
    return {key: v for key, v in value.items()
            if key in kind.model_fields or key not in _FLAT_DEFAULTS or v != _FLAT_DEFAULTS[key]}


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
    "KNOWN_DATASETS", "LOADER_KEYS", "TargetKind", "static_shape",
]
