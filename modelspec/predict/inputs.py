"""Raw inputs to model inputs, exactly as training prepared its data: the data kind reads them.

A stored preprocessing (a run's weights, an export's preprocessing.json) names the data set it was
fitted on (`dataset`); the kind that takes that name (`modelspec.spec.data.kind_of`) reads the raw
inputs through it (`read_inputs`) and, where its predictions are in other units than its data's,
puts them back (`unscale`). An input that cannot be read is reported with its name; the others are
still predicted.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import SpecError
from ..readers.sources import Item
from ..spec.data import DATA_KINDS, DATASET_NAMES_OF, DataBase, kind_of, reads_inputs

__all__ = ["Item", "read_inputs", "reading_kind", "unscale"]


def reading_kind(preprocessing: dict[str, Any]) -> type[DataBase]:
    """The data kind that reads raw inputs for a model trained with this preprocessing."""
    dataset = preprocessing.get("dataset")
    kind = kind_of(dataset)
    if kind is None or not reads_inputs(kind):
        readers = sorted(name for k in DATA_KINDS if reads_inputs(k) for name in DATASET_NAMES_OF[k])
        raise SpecError(f"modelspec predict does not read raw inputs for {dataset} data",
                        hint="kinds it reads: " + ", ".join(readers))
    return kind


def read_inputs(arguments: Sequence[str], preprocessing: dict[str, Any], **options: Any) -> list[Item]:
    """Items for the raw inputs; `options`: `column` (texts in a table), `last` (series), `folder`
    (an export folder, where a tokenizer.json lies)."""
    return reading_kind(preprocessing).read_inputs(arguments, preprocessing, **options)


def unscale(rows: list[dict[str, Any]], items: list[Item], preprocessing: dict[str, Any]) -> None:
    """Predictions back in the data's own units (a series' forecasts), in place."""
    kind = kind_of(preprocessing.get("dataset"))
    if kind is not None:
        kind.unscale(rows, items, preprocessing)
