"""Tracking: the backends a run reports to (TensorBoard, MLflow, the results table) and what they share.

`TRACKERS` maps each name `tracking.backends` may list to its class: every `Tracker` subclass with a
`name`, found in the modules of this package. A backend imports its library inside its hooks, so
finding them all costs no optional import.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import TrackedRun, Tracker
from .results import ResultsTable, ResultsTracker
from .tensorboard import TensorBoardTracker


def _discover() -> dict[str, type[Tracker]]:
    found: dict[str, type[Tracker]] = {}
    for module in pkgutil.iter_modules(__path__):
        namespace = vars(importlib.import_module(f"{__name__}.{module.name}"))
        for value in namespace.values():
            if (isinstance(value, type) and issubclass(value, Tracker) and "name" in vars(value)
                    and value.__module__ == f"{__name__}.{module.name}"):
                if value.name in found and found[value.name] is not value:
                    raise TypeError(f"two trackers are named {value.name!r}: {found[value.name]} and {value}")
                found[value.name] = value
    return dict(sorted(found.items()))


TRACKERS: dict[str, type[Tracker]] = _discover()

__all__ = ["TRACKERS", "ResultsTable", "ResultsTracker", "TensorBoardTracker", "TrackedRun", "Tracker"]
