"""Time series: a CSV ordered by time, windows of `window` steps in, the step `horizon` ahead out.

Splits are chronological spans (train, then validation, then test); a window never crosses from one
span into the next, and the scaling is fitted on the training span only. A split asked for must hold
one window at least (checked at validate time from the file's row count).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from .._forms import spec_error
from ..base import PositiveInt
from ._base import DataBase


class TimeSeriesData(DataBase):
    dataset: Literal["time_series"]
    file_keys = ("path",)  # checked at validate time (DataBase.check_files), as the keys below
    column_keys = ("features", "targets")
    path: str  # a CSV with a header row, one row per time step, oldest first
    separator: str = Field(",", min_length=1)
    features: Annotated[list[str], Field(min_length=1)]  # the columns a window holds
    targets: Annotated[list[str], Field(min_length=1)]  # the columns predicted
    # Windows of first changes x[t] - x[t-1]; the model learns x[t+h] - x[t] from the last known x[t],
    # and a forecast is x[t] plus it: what a running total needs.
    difference: bool = False
    # Per column, fitted on the training span: `minmax` to [0, 1], `standard` to mean 0 and std 1;
    # the targets' on what is predicted there (levels, or changes over `horizon` steps).
    scale: Literal["none", "minmax", "standard"] = "none"
    window: PositiveInt  # steps in
    horizon: PositiveInt = 1  # the predicted step: `horizon` steps after the window's last one
    target_kind: Literal["real"] = "real"
    test_split: float = Field(0.0, ge=0.0, lt=1.0)  # the last span of the series

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
        from ...data.time_series import check_spans, count_rows

        rows = count_rows(self.path)
        if rows is not None:
            check_spans(self, rows)
        return shape

    def open(self, seed):
        from ...data.time_series import open_time_series

        return open_time_series(self, seed)
