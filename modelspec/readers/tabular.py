"""Tables: a CSV, TSV or Parquet file -> (N, F) float32 features and the targets, per-column
treatments fitted on the training rows only.

What is fitted is plain JSON (one entry per feature column, in order), applied by `encode_columns` to
the training, validation and test rows alike, and stored with the model so that new raw rows can be
encoded the same way without the training data (README: "Using a trained model on raw data"). Each
column's treatment (the spec's classes) fits itself with `fit_categorical` / `fit_numeric` here.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Any

import numpy as np
import torch

from ..errors import Path, SpecError
from .columns import check_columns
from .files import format_key, kind_problem
from .sources import Opened, carve, encode_targets, fit_classes, label_key, optional_import, sorted_labels, tensor_source
from .tables import format_of, read_frame, separator_of


def read_table(path: str, separator: str | None = None, key: str = "path", format: str | None = None,
               at: Path | None = None):
    """A table file (`format`, else by its suffix) as a pandas DataFrame; a missing or unreadable
    file is a SpecError naming it, and a table past the column limit is refused before pandas
    parses a row. `at`: where a format that the file's bytes contradict is located."""
    problem = kind_problem(path)
    if problem is not None:
        raise SpecError(problem, path=("data", key), hint="check the path (relative to the working folder)")
    fmt = format_of(path, format)
    return read_frame(path, fmt, separator_of(fmt, separator), key, at)


def read_spec_table(data, key: str):
    """The table a spec key (`path`, `test_path`) names, read as the spec says (`data.table_format`)."""
    path = getattr(data, key)
    fmt, separator = data.table_format(path)
    return read_table(path, separator, key, fmt, format_key(data))


def require_columns(frame, names: list[str], path: str, key: str) -> None:
    """The columns `names` are in `frame`, all located at `data.<key>`: for files read with what a
    model fitted (predict, evaluate); the spec's own files are checked at the keys that name each
    column (`columns.check_spec_columns`)."""
    check_columns([str(c) for c in frame.columns], {("data", key): names}, path)


# --------------------------------------------------------------------------------------------------
# feature columns: fit on the training rows, encode any rows


def holds(value: Any) -> str:
    """What a cell that is no finite number holds, for a message."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "is empty"
    text = str(value).strip()
    try:
        float(text)  # inf, -inf, nan as text (a column that also holds words stays text)
    except ValueError:
        return f"holds {text[:30]!r}, no number" if text else "is empty"
    return f"is {text}"


SHOWN = 5  # bad rows named in a message


def numbers(series, name: str, what: str, key: Path = (), missing: bool = True) -> np.ndarray:
    """A numeric column's float64 values (NaN where a cell is empty, if `missing` allows it). A cell
    that holds anything else (a word, inf) is a SpecError at `key` naming `what` (the file), the
    column and the rows: training on it would end in a loss of inf, or mean-fill with inf. Rows are
    numbered as the file's data rows (the frame's index, kept through any carve, plus one)."""
    pd = optional_import("pandas")
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if missing:
        bad &= series.notna().to_numpy()
    if not bad.any():
        return values
    rows = np.flatnonzero(bad).tolist()
    cells = [(series.index[i] + 1, holds(series.iloc[i])) for i in rows[:SHOWN]]
    shown = "; ".join(f"row {row}: {name} {says}" for row, says in cells)
    more = f"; and {len(rows) - SHOWN} more row(s)" if len(rows) > SHOWN else ""
    words = any("no number" in says for _, says in cells)
    hint = "fix or remove those rows" + (f", or treat it as categorical: `{name}: categorical`" if words else "")
    raise SpecError(f"{what}: column '{name}' is numeric, but {len(rows)} row(s) hold no finite number: "
                    f"{shown}{more}", path=key, hint=hint)


def fit_categorical(name: str, series, missing_column: bool) -> dict[str, Any]:
    """One-hot: the sorted categories of the training rows, as JSON."""
    keys = {label_key(v) for v in series[series.notna()].tolist()}
    return {"name": name, "type": "categorical", "categories": sorted_labels(keys), "missing_column": missing_column}


def fit_numeric(name: str, series, fill: str | float, null_column: bool, standardize: bool, what: str,
                key: Path = ()) -> dict[str, Any]:
    """A number column's fill (the training rows' mean or median, or a constant) and, to standardize,
    their mean and std after filling, as JSON. Cells that are no number are an error at `key`,
    naming the file `what`."""
    values = numbers(series, name, what, key)
    present = values[~np.isnan(values)]
    if isinstance(fill, str):
        fill = float(getattr(np, fill)(present)) if len(present) else 0.0
    fitted = {"name": name, "type": "numeric", "fill": float(fill), "null_column": null_column,
              "mean": None, "std": None}
    if standardize:
        filled = np.where(np.isnan(values), fitted["fill"], values)
        std = float(filled.std())
        fitted.update(mean=float(filled.mean()), std=std if std > 0 else 1.0)
    return fitted


def is_number_column(series) -> bool:
    """Whether a column holds numbers (not booleans): by default those are numeric, others categorical."""
    pd = optional_import("pandas")
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def column_outputs(column: dict[str, Any]) -> list[str]:
    """The names of the feature columns one fitted column gives, in order."""
    name = column["name"]
    if column["type"] == "categorical":
        return [f"{name}_{c}" for c in column["categories"]] + ([f"{name}_nan"] if column["missing_column"] else [])
    if column["type"] == "numeric":
        return [name] + ([f"{name}_null"] if column["null_column"] else [])
    return [f"{name}_null"]


def _encode_column(column: dict[str, Any], series, what: str, key: Path) -> np.ndarray:
    """(N, width) float64 for one fitted column."""
    missing = series.isna().to_numpy()
    if column["type"] == "categorical":
        index = {c: i for i, c in enumerate(column["categories"])}
        width = len(index) + int(column["missing_column"])
        out = np.zeros((len(series), width))
        for row, (value, absent) in enumerate(zip(series.tolist(), missing)):
            slot = None if absent else index.get(label_key(value))
            if slot is None and column["missing_column"]:
                slot = len(index)  # missing, or a category training never saw
            if slot is not None:
                out[row, slot] = 1.0
        return out
    if column["type"] == "numeric":
        values = np.where(missing, column["fill"], numbers(series, column["name"], what, key))
        if column["mean"] is not None:
            values = (values - column["mean"]) / column["std"]
        parts = [values] + ([missing.astype(np.float64)] if column["null_column"] else [])
        return np.stack(parts, axis=1)
    return missing.astype(np.float64)[:, None]


def encode_columns(columns: list[dict[str, Any]], frame, what: str = "the rows", key: Path = ()) -> np.ndarray:
    """Raw rows (of the file `what`, named at `key`) -> (N, F) float32 features, by the fitted columns."""
    if not columns:
        return np.zeros((len(frame), 0), dtype=np.float32)
    parts = [_encode_column(c, frame[c["name"]], what, key) for c in columns]
    return np.concatenate(parts, axis=1).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# targets


def fit_target(data, frame, what: str) -> dict[str, Any]:
    columns = data.target_columns
    for name in columns:
        if frame[name].isna().any():
            raise SpecError(f"the target column '{name}' of {what} has {int(frame[name].isna().sum())} missing "
                            "value(s)", path=("data", "target"), hint="remove those rows from the file")
    classes = None
    if data.target_kind == "classes":
        classes = fit_classes(frame[columns[0]].tolist(), "classes", what, data.num_classes, key=("data", "target"))
    return {"columns": columns, "kind": data.target_kind, "classes": classes}


def encode_target(target: dict[str, Any], frame, what: str, key: Path = ("data", "target"),
                  file_key: Path = ()) -> torch.Tensor:
    """The target tensor of `frame`'s rows; `key`: where a label training never saw is located,
    `file_key`: where a real target that is no finite number is (the key naming the file `what`)."""
    kind, columns = target["kind"], target["columns"]
    if kind == "classes":
        return encode_targets(frame[columns[0]].tolist(), kind, target["classes"], what, key)
    parts = []
    for name in columns:
        if kind == "binary":
            values = frame[name].tolist()
            bad = sorted({label_key(v) for v in values} - {"0", "1"})
            if bad:
                raise SpecError(f"binary target '{name}' of {what} holds values other than 0 and 1: "
                                f"{', '.join(bad[:5])}", path=key,
                                hint="use target_kind: classes for labels of any kind")
            parts.append(encode_targets(values, "real", None, what))
        else:
            parts.append(torch.from_numpy(numbers(frame[name], name, what, file_key, missing=False).astype(np.float32)))
    return parts[0] if len(parts) == 1 else torch.stack(parts, dim=1)


def _outputs(target: dict[str, Any]) -> int | None:
    if target["kind"] == "classes":
        return len(target["classes"])
    return len(target["columns"]) if target["kind"] == "binary" else None


# --------------------------------------------------------------------------------------------------
# opening


def _fit(data, seed: int):
    """The training and test rows, the validation carve, and what the training rows fit (feature
    columns, target): what `open_csv` encodes, and all that validate's `csv_shape` needs."""
    frame = read_spec_table(data, "path")
    check_columns([str(c) for c in frame.columns], data.named_columns(), data.path)
    targets = data.target_columns
    features = data.features if data.features is not None else [c for c in frame.columns if c not in targets]
    if data.test_path is not None:
        test_frame = read_spec_table(data, "test_path")
        check_columns([str(c) for c in test_frame.columns], {("data", "target"): targets, ("data", "features"): features},
                      data.test_path, at=("data", "test_path"))
    else:
        keep, held_out = carve(len(frame), data.test_split, seed)
        frame, test_frame = frame.iloc[keep.numpy()], frame.iloc[held_out.numpy()]
    if len(frame) == 0:
        raise SpecError(f"{data.path} has no rows", path=("data", "path"))
    train_idx, val_idx = carve(len(frame), data.val_split, seed + 1)
    fitting = frame.iloc[train_idx.numpy()]  # statistics and categories: training rows only
    # A treatment the spec gives, else the default for the column's values; each fits itself.
    treatments = {name: data.columns.get(name) or data.default_treatment(is_number_column(frame[name]))
                  for name in features}
    columns = [treatments[name].fit(name, fitting[name], data.path, ("data", "path")) for name in features]
    target = fit_target(data, frame, data.path)
    return frame, test_frame, train_idx, val_idx, columns, target


# Validate fits a table whose files are at most this large (about a second with pandas): the
# one-hot width and the class count are then known, and the network's shapes checked with them.
MAX_CHECK_BYTES = 16 * 2**20


def csv_shape(data, seed: int) -> tuple[tuple[int, ...] | None, int | None]:
    """(input_shape, num_classes) of a table as `open_csv` would give them, where its files are
    small enough to read at validate time; else what the spec alone says."""
    files = [data.path] + ([data.test_path] if data.test_path is not None else [])
    if sum(FilePath(f).stat().st_size for f in files) > MAX_CHECK_BYTES:
        return data.static_shape()
    frame, test_frame, _, _, columns, target = _fit(data, seed)
    # What a run's encoding would refuse, without the one-hot matrices (a column of names is as wide
    # as the file is long): numeric cells and real targets that are no finite number, binary values
    # that are no 0/1, test labels training never saw.
    for rows, test in ((frame, False), (test_frame, True)):
        what, key = _file_of(data, test)
        for column in (c for c in columns if c["type"] == "numeric"):
            numbers(rows[column["name"]], column["name"], what, key)
        encode_target(target, rows, what, _test_key(data) if test else ("data", "target"), key)
    return (sum(len(column_outputs(c)) for c in columns),), _outputs(target)


def _file_of(data, test: bool) -> tuple[str, Path]:
    """The file that holds the training or the test rows, and the key that names it."""
    if test and data.test_path is not None:
        return data.test_path, ("data", "test_path")
    return data.path, ("data", "path")


def _test_key(data) -> tuple[str, ...]:
    """The spec key that makes the test rows: a test file, or the split carved from `path`."""
    return ("data", "test_path") if data.test_path is not None else ("data", "test_split")


def open_csv(data, seed: int) -> Opened:
    frame, test_frame, train_idx, val_idx, columns, target = _fit(data, seed)
    targets = data.target_columns

    def source(rows, test: bool):
        what, file_key = _file_of(data, test)
        x = torch.from_numpy(encode_columns(columns, rows, what, file_key))
        y = encode_target(target, rows, what, _test_key(data) if test else ("data", "target"), file_key)
        return tensor_source(x, y, _outputs(target), target["classes"], targets)

    test = source(test_frame, True) if len(test_frame) else None
    preprocessing = {
        "kind": "table",
        "columns": columns,
        "features": [name for c in columns for name in column_outputs(c)],
        "target": target,
    }
    return Opened(source(frame, False), test, train_idx, val_idx, preprocessing)
