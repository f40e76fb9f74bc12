"""Raw inputs, read, to one row per input: what `modelspec predict` prints and `modelspec serve`
answers, from the one function both call (`prediction_rows`)."""

from __future__ import annotations

from typing import Any

import torch

from .inputs import Item, unscale
from .model import Predictor
from .readout import readout


def prediction_rows(predictor: Predictor, items: list[Item], top_k: int) -> list[dict[str, Any]]:
    """One row per input, in order: its name, the columns it brought along, and its prediction or
    why there is none. The inputs that could be read go through the model together."""
    good = [item for item in items if item.x is not None]
    readings = []
    if good:
        outputs = predictor.predict(torch.stack([item.x for item in good]))
        readings = readout(outputs, predictor.task, predictor.class_names, top_k,
                           predictor.preprocessing.get("target_names"))
        unscale(readings, good, predictor.preprocessing)  # a series' forecasts in the file's units
    readings = iter(readings)
    rows = []
    for item in items:
        row = {"input": item.name, **(item.extra or {})}
        row.update(next(readings) if item.x is not None else {"error": item.error})
        rows.append(row)
    return rows
