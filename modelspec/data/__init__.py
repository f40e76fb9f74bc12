"""Data: data sets by name, transforms, splits, and the feeds the runner iterates."""

from .feeds import LoaderFeed, TensorFeed
from .prepare import PreparedData, describe, make_feeds, prepare_data, sample_inputs

__all__ = ["LoaderFeed", "TensorFeed", "PreparedData", "describe", "make_feeds", "prepare_data", "sample_inputs"]
