"""Data orchestration: a data kind's opened splits (read by `modelspec.readers` through the kind's
`open` hook) decoded through the transforms, normalisation statistics, augmentation, and the feeds
the runner iterates."""

from .feeds import LoaderFeed, TensorFeed
from .prepare import PreparedData, describe, make_feeds, prepare_data, sample_inputs

__all__ = ["LoaderFeed", "TensorFeed", "PreparedData", "describe", "make_feeds", "prepare_data", "sample_inputs"]
