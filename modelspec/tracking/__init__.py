"""Tracking: the backends a run reports to (TensorBoard, the results table) and what they share."""

from .base import Tracker
from .results import ResultsTable, ResultsTracker
from .tensorboard import TensorBoardTracker

__all__ = ["ResultsTable", "ResultsTracker", "TensorBoardTracker", "Tracker"]
