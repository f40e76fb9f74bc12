"""Time series: a CSV ordered by time, windows of `window` steps in, the step `horizon` ahead out.

Splits are chronological spans (train, then validation, then test); a window never crosses from one
span into the next, and the scaling is fitted on the training span only. A split asked for must hold
one window at least (checked at validate time from the file's row count).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Sequence

from pydantic import Field, model_validator

from .._forms import spec_error
from ..base import DATA_LOCATION, PositiveInt
from ._base import DataBase, TableFormat


class TimeSeriesData(DataBase):
    """A table ordered by time: windows of steps in, a later step's values out."""

    dataset: Literal["time_series"]
    """A time series: one table row per time step, oldest first."""
    file_keys = ("path",)  # checked at validate time (DataBase.check_files), as the keys below
    table_keys = ("path",)
    column_keys = ("features", "targets")
    path: Annotated[str, DATA_LOCATION]
    """The series: a table file (.csv or .tsv with a header row, or .parquet / .pq), one row per
    time step, oldest first."""
    format: Optional[TableFormat] = None
    """How the table file is read: csv, tsv or parquet; default: by the file's suffix."""
    separator: Optional[str] = Field(None, min_length=1)
    """The column separator of a CSV file; default: a comma (a tab for tsv)."""
    features: Annotated[list[str], Field(min_length=1)]
    """The columns a window holds."""
    targets: Annotated[list[str], Field(min_length=1)]
    """The columns predicted."""
    difference: bool = False
    """Whether windows hold first changes x[t] - x[t-1]: the model learns x[t+h] - x[t] from the last
    known x[t], and a forecast is x[t] plus it (what a running total needs)."""
    scale: Literal["none", "minmax", "standard"] = "none"
    """Per column, fitted on the training span: `minmax` to [0, 1], `standard` to mean 0 and std 1;
    the targets' on what is predicted there (levels, or changes over `horizon` steps)."""
    window: PositiveInt
    """Time steps a window holds (the model's input length)."""
    horizon: PositiveInt = 1
    """The predicted step: `horizon` steps after the window's last one."""
    target_kind: Literal["real"] = "real"
    """The targets are real values."""
    test_split: float = Field(0.0, ge=0.0, lt=1.0)
    """The fraction of the series held out for testing: its last span (0: none)."""

    @model_validator(mode="after")
    def _distinct(self):
        for key in ("features", "targets"):
            names = getattr(self, key)
            if len(set(names)) != len(names):
                raise spec_error(f"a column is named twice in {key}", key=key)
        return self

    @property
    def target_count(self) -> int | None:
        return len(self.targets)

    def static_shape(self):
        return (self.window, len(self.features)), None

    def check_files(self, seed):
        """A series too short for a split it asks for is found from its row count (one cheap pass
        over the lines), before anything runs."""
        shape = super().check_files(seed)
        from ...readers.time_series import check_spans, count_rows

        rows = count_rows(self.path, format=self.format)
        if rows is not None:
            check_spans(self, rows)
        return shape

    def open(self, seed):
        from ...readers.time_series import open_time_series

        return open_time_series(self, seed)

    @classmethod
    def read_inputs(cls, arguments: Sequence[str], preprocessing: dict[str, Any], last: bool = False, **_: Any):
        """A table ordered by time: every complete window (or, with `last`, the latest), scaled as in
        training."""
        from ...readers.raw import read_series

        return read_series(arguments, preprocessing, last=last)

    @classmethod
    def unscale(cls, rows, items, preprocessing):
        """Forecasts back in the file's units (the units its metrics are measured in)."""
        from ...readers.raw import unscale

        unscale(rows, items, preprocessing)

    def read_labelled(self, path, preprocessing, class_names):
        """Every window of a new series whose target row is in the file, with its target."""
        from ...readers.raw import fitted
        from ...readers.time_series import labelled_samples

        return labelled_samples(str(path), fitted(preprocessing, "time_series"))
