"""Tabular data: a CSV file, a target column (or several), and a treatment per feature column.

The treatments are written in the spec, and what they fit (category lists, fill values, means and
standard deviations) is fitted on the training rows only and stored with the model as JSON.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Optional, Union

from pydantic import Field, model_validator

from .._forms import spec_error, tagged_union
from ..base import PositiveInt, SpecModel
from ._base import DataBase, TargetKind


class ColumnTreatment(SpecModel):
    type: str

    def static_width(self) -> int | None:
        """Output columns, where known without data."""
        return None


class Categorical(ColumnTreatment):
    """One-hot: one column per category seen in training (sorted), plus `<name>_nan` if asked.

    A missing value, and at test time a category training never saw, sets the missing column (or
    no column at all, without one)."""

    type: Literal["categorical"] = "categorical"
    missing_column: bool = False

    def static_width(self):
        return None


class Numeric(ColumnTreatment):
    """The value as a number; a missing one is filled; `<name>_null` marks the filled rows if asked."""

    type: Literal["numeric"] = "numeric"
    fill: Union[Literal["mean", "median"], float] = "mean"  # of the training rows, or a constant
    null_column: bool = False
    standardize: bool = False  # (x - mean) / std of the training rows, after filling

    def static_width(self):
        return 1 + int(self.null_column)


class NullIndicator(ColumnTreatment):
    """Only `<name>_null`: 1 where the value is missing, else 0 (the value itself is dropped)."""

    type: Literal["null_indicator"] = "null_indicator"

    def static_width(self):
        return 1


TREATMENT_KINDS = (Categorical, Numeric, NullIndicator)
TREATMENT_TYPES = {cls.model_fields["type"].default: cls for cls in TREATMENT_KINDS}

Treatment = tagged_union(TREATMENT_KINDS, "column treatment")


class CsvData(DataBase):
    dataset: Literal["csv"]
    path: str  # the training rows (a CSV file with a header row)
    test_path: Optional[str] = None  # the test rows; without it, `test_split` of `path` is held out
    test_split: float = Field(0.0, ge=0.0, lt=1.0)  # carved from `path` with the spec's seed
    separator: str = Field(",", min_length=1)
    target: Union[str, Annotated[list[str], Field(min_length=1)]]
    # classes: any values, their sorted set numbers the classes; binary: 0/1 values; real: numbers.
    target_kind: TargetKind = "classes"
    features: Optional[list[str]] = None  # default: every column but the targets
    # How each feature becomes numbers. Default: numeric (mean fill) for number columns,
    # categorical for the others.
    columns: dict[str, Treatment] = Field(default_factory=dict)
    num_classes: Optional[PositiveInt] = None  # checked against the data; lets validate check shapes

    file_keys: ClassVar[tuple[str, ...]] = ("path", "test_path")
    column_keys: ClassVar[tuple[str, ...]] = ("target", "features", "columns")

    unknown_shape_note: ClassVar[str] = (
        "csv: the number of features (one-hot columns) is known only from the data, so shapes are "
        "checked at run time"
    )

    @property
    def target_columns(self) -> list[str]:
        return [self.target] if isinstance(self.target, str) else list(self.target)

    @model_validator(mode="after")
    def _consistent(self):
        targets = self.target_columns
        if len(set(targets)) != len(targets):
            raise spec_error("a target column is named twice", key="target")
        if self.target_kind == "classes" and len(targets) > 1:
            raise spec_error(
                "class labels come from one target column",
                key="target",
                hint="several 0/1 columns are `target_kind: binary` (multi-label); several numbers `real`",
            )
        if self.num_classes is not None and self.target_kind != "classes":
            raise spec_error(f"num_classes means nothing for target_kind {self.target_kind}", key="num_classes",
                             hint="remove num_classes")
        for name in self.features or []:
            if name in targets:
                raise spec_error(f"'{name}' is a target, so it cannot be a feature", key="features")
        if self.features is not None:
            for name in self.columns:
                if name not in self.features:
                    raise spec_error(f"'{name}' has a treatment but is not in features", key=("columns", name),
                                     hint="add it to features, or remove its treatment")
        return self

    @property
    def target_count(self) -> int | None:
        return len(self.target_columns) if self.target_kind == "real" else None

    def static_shape(self):
        classes = self.num_classes if self.target_kind == "classes" else None
        if self.target_kind == "binary":
            classes = len(self.target_columns)  # one output per 0/1 target
        if self.features is None:
            return None, classes
        widths = [self.columns[name].static_width() if name in self.columns else None for name in self.features]
        return ((sum(widths),) if None not in widths else None), classes

    def check_files(self, seed):
        """A table small enough is fitted as a run fits it: its one-hot width and classes are known."""
        super().check_files(seed)
        from ...data.tabular import csv_shape

        return csv_shape(self, seed)

    def open(self, seed):
        from ...data.tabular import open_csv

        return open_csv(self, seed)
