"""Tracking: TensorBoard events per run and the results table of a grid."""

from .results import ResultsTable
from .tensorboard import TensorBoardTracker

__all__ = ["ResultsTable", "TensorBoardTracker"]
