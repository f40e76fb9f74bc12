"""Tabular data: a table file (CSV, TSV or Parquet), a target column (or several), and a treatment
per feature column.

The treatments are written in the spec, and what they fit (category lists, fill values, means and
standard deviations) is fitted on the training rows only (each treatment's `fit`, by the table
reader) and stored with the model as JSON.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Optional, Sequence, Union

from pydantic import Field, model_validator

from .._forms import spec_error, tagged_union
from ..base import DATA_LOCATION, PositiveInt, SpecModel
from ._base import DataBase, TableFormat, TargetKind


class ColumnTreatment(SpecModel):
    type: str
    """The treatment: categorical, numeric or null_indicator."""

    def static_width(self) -> int | None:
        """Output columns, where known without data."""
        return None

    def fit(self, name: str, series: Any, what: str, key: tuple = ()) -> dict[str, Any]:
        """What this treatment learns from the training rows of column `name` (a pandas Series of
        the file `what`, named at spec path `key`), as JSON: what encodes any rows later."""
        raise NotImplementedError


class Categorical(ColumnTreatment):
    """One-hot: one column per category seen in training (sorted), plus `<name>_nan` if asked.

    A missing value, and at test time a category training never saw, sets the missing column (or
    no column at all, without one)."""

    type: Literal["categorical"] = "categorical"
    """One-hot columns, one per category seen in training."""
    missing_column: bool = False
    """Whether to add `<name>_nan`, set for a missing value or a category training never saw."""

    def static_width(self):
        return None

    def fit(self, name, series, what, key=()):
        from ...readers.tabular import fit_categorical

        return fit_categorical(name, series, self.missing_column)


class Numeric(ColumnTreatment):
    """The value as a number; a missing one is filled; `<name>_null` marks the filled rows if asked."""

    type: Literal["numeric"] = "numeric"
    """The value as a number."""
    fill: Union[Literal["mean", "median"], float] = "mean"
    """What fills a missing value: the training rows' mean or median, or a constant."""
    null_column: bool = False
    """Whether to add `<name>_null`: 1 where the value was missing (and filled), else 0."""
    standardize: bool = False
    """Whether to scale to (x - mean) / std of the training rows, after filling."""

    def static_width(self):
        return 1 + int(self.null_column)

    def fit(self, name, series, what, key=()):
        from ...readers.tabular import fit_numeric

        return fit_numeric(name, series, self.fill, self.null_column, self.standardize, what, key)


class NullIndicator(ColumnTreatment):
    """Only `<name>_null`: 1 where the value is missing, else 0 (the value itself is dropped)."""

    type: Literal["null_indicator"] = "null_indicator"
    """Only the missing-value indicator column."""

    def static_width(self):
        return 1

    def fit(self, name, series, what, key=()):
        return {"name": name, "type": "null_indicator"}


TREATMENT_KINDS = (Categorical, Numeric, NullIndicator)
TREATMENT_TYPES = {cls.model_fields["type"].default: cls for cls in TREATMENT_KINDS}

Treatment = tagged_union(TREATMENT_KINDS, "column treatment")


class CsvData(DataBase):
    """A table of rows: feature columns in, target column(s) out."""

    dataset: Literal["csv"]
    """A table file (CSV, TSV or Parquet) with named columns."""
    path: Annotated[str, DATA_LOCATION]
    """The training rows: a table file (.csv or .tsv with a header row, or .parquet / .pq)."""
    test_path: Annotated[Optional[str], DATA_LOCATION] = None
    """The test rows, a table of the same columns; without it, `test_split` of `path` is held out."""
    test_split: float = Field(0.0, ge=0.0, lt=1.0)
    """The fraction of `path`'s rows held out for testing, drawn with the spec's seed (0: none)."""
    format: Optional[TableFormat] = None
    """How the table files are read: csv, tsv or parquet; default: by each file's suffix (.tsv is
    tsv, .parquet and .pq are parquet, anything else csv)."""
    separator: Optional[str] = Field(None, min_length=1)
    """The column separator of a CSV file (longer ones are regular expressions); default: a comma
    (a tab for tsv)."""
    target: Union[str, Annotated[list[str], Field(min_length=1)]]
    """The target column, or several (0/1 labels or real values)."""
    target_kind: TargetKind = "classes"
    """classes: any values, their sorted set numbers the classes; binary: 0/1 values; real: numbers."""
    features: Optional[list[str]] = None
    """The feature columns, in order; default: every column but the targets."""
    columns: dict[str, Treatment] = Field(default_factory=dict)
    """How each feature column becomes numbers; default: numeric (mean fill) for number columns,
    categorical for the others."""
    num_classes: Optional[PositiveInt] = None
    """The number of classes: checked against the data, and lets validate check shapes."""

    file_keys: ClassVar[tuple[str, ...]] = ("path", "test_path")
    table_keys: ClassVar[tuple[str, ...]] = ("path", "test_path")
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

    def default_treatment(self, numeric: bool) -> ColumnTreatment:
        """The treatment of a column the spec gives none: numeric (mean fill) for a column of
        numbers, else categorical."""
        return Numeric() if numeric else Categorical()

    def check_files(self, seed):
        """A table small enough is fitted as a run fits it: its one-hot width and classes are known."""
        super().check_files(seed)
        from ...readers.tabular import csv_shape

        return csv_shape(self, seed)

    def open(self, seed):
        from ...readers.tabular import open_csv

        return open_csv(self, seed)

    @classmethod
    def read_inputs(cls, arguments: Sequence[str], preprocessing: dict[str, Any], **_: Any):
        """One table file's rows (its format by its suffix), encoded as training encoded them."""
        from ...readers.raw import read_rows

        return read_rows(arguments, preprocessing)

    def read_labelled(self, path, preprocessing, class_names):
        """New labelled rows: a table with the feature and the target columns."""
        from ...readers.raw import labelled_rows

        return labelled_rows(path, preprocessing)
