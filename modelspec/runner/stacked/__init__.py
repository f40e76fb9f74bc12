"""Many runs as one: the pieces that train a pack of runs stacked along a first dim (R, ...)."""

from .optim import StackedOptimizer, Unpackable

__all__ = ["StackedOptimizer", "Unpackable"]
