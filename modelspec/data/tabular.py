"""Tables: a CSV file -> (N, F) float32 features and the targets, per-column treatments fitted on
the training rows only.

What is fitted is plain JSON (one entry per feature column, in order), applied by `encode_columns` to
the training, validation and test rows alike, and stored with the model so that new raw rows can be
encoded the same way without the training data (README: "Using a trained model on raw data").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import SpecError
from ..spec.data import Categorical, Numeric
from .sources import Opened, carve, encode_targets, fit_classes, label_key, optional_import, sorted_labels, tensor_source


def read_table(path: str, separator: str, key: str = "path"):
    """A CSV file as a pandas DataFrame; a missing or unreadable file is a SpecError naming it."""
    pd = optional_import("pandas")
    if not Path(path).is_file():
        raise SpecError(f"no file at {path}", path=("data", key), hint="check the path (relative to the working folder)")
    try:
        return pd.read_csv(path, sep=separator)
    except (ValueError, OSError, UnicodeDecodeError) as exc:  # pandas' ParserError is a ValueError
        raise SpecError(f"cannot read {path} as CSV: {str(exc).splitlines()[0][:200]}", path=("data", key)) from None


def require_columns(frame, names: list[str], path: str, key: str) -> None:
    missing = [name for name in names if name not in frame.columns]
    if missing:
        from ..errors import did_you_mean

        hint = did_you_mean(missing[0], [str(c) for c in frame.columns]) or "its columns: " + ", ".join(
            map(str, frame.columns[:20]))
        raise SpecError(f"{path} has no column {', '.join(repr(m) for m in missing)}", path=("data", key), hint=hint)


# --------------------------------------------------------------------------------------------------
# feature columns: fit on the training rows, encode any rows


def _numbers(series, name: str) -> np.ndarray:
    pd = optional_import("pandas")
    try:
        return pd.to_numeric(series, errors="raise").to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise SpecError(f"column '{name}' is numeric but holds a value that is no number ({exc})"[:300],
                        path=("data", "columns", name), hint=f"treat it as categorical: `{name}: categorical`") from None


def fit_column(name: str, treatment, series) -> dict[str, Any]:
    """What one column's treatment learns from the training rows, as JSON."""
    if isinstance(treatment, Categorical):
        keys = {label_key(v) for v in series[series.notna()].tolist()}
        return {"name": name, "type": "categorical", "categories": sorted_labels(keys),
                "missing_column": treatment.missing_column}
    if isinstance(treatment, Numeric):
        values = _numbers(series, name)
        present = values[~np.isnan(values)]
        if isinstance(treatment.fill, str):
            fill = float(getattr(np, treatment.fill)(present)) if len(present) else 0.0
        else:
            fill = float(treatment.fill)
        fitted = {"name": name, "type": "numeric", "fill": fill, "null_column": treatment.null_column,
                  "mean": None, "std": None}
        if treatment.standardize:
            filled = np.where(np.isnan(values), fill, values)
            std = float(filled.std())
            fitted.update(mean=float(filled.mean()), std=std if std > 0 else 1.0)
        return fitted
    return {"name": name, "type": "null_indicator"}


def column_outputs(column: dict[str, Any]) -> list[str]:
    """The names of the feature columns one fitted column gives, in order."""
    name = column["name"]
    if column["type"] == "categorical":
        return [f"{name}_{c}" for c in column["categories"]] + ([f"{name}_nan"] if column["missing_column"] else [])
    if column["type"] == "numeric":
        return [name] + ([f"{name}_null"] if column["null_column"] else [])
    return [f"{name}_null"]


def _encode_column(column: dict[str, Any], series) -> np.ndarray:
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
        values = np.where(missing, column["fill"], _numbers(series.where(~series.isna(), 0), column["name"]))
        if column["mean"] is not None:
            values = (values - column["mean"]) / column["std"]
        parts = [values] + ([missing.astype(np.float64)] if column["null_column"] else [])
        return np.stack(parts, axis=1)
    return missing.astype(np.float64)[:, None]


def encode_columns(columns: list[dict[str, Any]], frame) -> np.ndarray:
    """Raw rows -> (N, F) float32 features, by the fitted columns."""
    if not columns:
        return np.zeros((len(frame), 0), dtype=np.float32)
    return np.concatenate([_encode_column(c, frame[c["name"]]) for c in columns], axis=1).astype(np.float32)


def default_treatment(series):
    """Number columns are numeric (mean fill), the others categorical."""
    pd = optional_import("pandas")
    return Numeric() if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series) else Categorical()


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
        classes = fit_classes(frame[columns[0]].tolist(), "classes", what, data.num_classes)
    return {"columns": columns, "kind": data.target_kind, "classes": classes}


def encode_target(target: dict[str, Any], frame, what: str) -> torch.Tensor:
    kind, columns = target["kind"], target["columns"]
    if kind == "classes":
        return encode_targets(frame[columns[0]].tolist(), kind, target["classes"], what)
    parts = []
    for name in columns:
        values = frame[name].tolist()
        if kind == "binary":
            bad = sorted({label_key(v) for v in values} - {"0", "1"})
            if bad:
                raise SpecError(f"binary target '{name}' of {what} holds values other than 0 and 1: "
                                f"{', '.join(bad[:5])}", path=("data", "target"),
                                hint="use target_kind: classes for labels of any kind")
        parts.append(encode_targets(values, "real", None, what))
    return parts[0] if len(parts) == 1 else torch.stack(parts, dim=1)


def _outputs(target: dict[str, Any]) -> int | None:
    if target["kind"] == "classes":
        return len(target["classes"])
    return len(target["columns"]) if target["kind"] == "binary" else None


# --------------------------------------------------------------------------------------------------
# opening


def open_csv(data, seed: int) -> Opened:
    frame = read_table(data.path, data.separator)
    targets = data.target_columns
    features = data.features if data.features is not None else [c for c in frame.columns if c not in targets]
    require_columns(frame, targets + list(features), data.path, "path")
    if data.test_path is not None:
        test_frame = read_table(data.test_path, data.separator, "test_path")
        require_columns(test_frame, targets + list(features), data.test_path, "test_path")
    else:
        keep, held_out = carve(len(frame), data.test_split, seed)
        frame, test_frame = frame.iloc[keep.numpy()], frame.iloc[held_out.numpy()]
    if len(frame) == 0:
        raise SpecError(f"{data.path} has no rows", path=("data", "path"))
    train_idx, val_idx = carve(len(frame), data.val_split, seed + 1)
    fitting = frame.iloc[train_idx.numpy()]  # statistics and categories: training rows only
    treatments = {name: data.columns.get(name) or default_treatment(frame[name]) for name in features}
    columns = [fit_column(name, treatments[name], fitting[name]) for name in features]
    target = fit_target(data, frame, data.path)

    def source(rows, what):
        x = torch.from_numpy(encode_columns(columns, rows))
        return tensor_source(x, encode_target(target, rows, what), _outputs(target), target["classes"], targets)

    test = source(test_frame, data.test_path or data.path) if len(test_frame) else None
    preprocessing = {
        "kind": "table",
        "columns": columns,
        "features": [name for c in columns for name in column_outputs(c)],
        "target": target,
    }
    return Opened(source(frame, data.path), test, train_idx, val_idx, preprocessing)
