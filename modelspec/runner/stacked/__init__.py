"""Many runs as one: the pieces that train a pack of runs stacked along a first dim (R, ...)."""

from .model import StackedModel, packable
from .optim import StackedOptimizer, Unpackable
from .schedule import StackedSchedules

__all__ = ["StackedModel", "StackedOptimizer", "StackedSchedules", "Unpackable", "packable"]
