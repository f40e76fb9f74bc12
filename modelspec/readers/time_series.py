"""Time series: a table (CSV, TSV, Parquet) ordered by time -> (N, window, F) float32 windows and their targets.

Row i of the file is the level x[i]. The windows hold the levels, or with `difference` their first
changes (step i: x[i+1] - x[i]). A window's last known level is x[t]; the model learns x[t+h] for
`horizon` h, or with `difference` the change x[t+h] - x[t], so that the forecast of x[t+h] is
x[t] plus the model's change: known at time t, whatever h. Inputs and targets are scaled by
scalers fitted on the training span only (the targets' on what is predicted: levels, or changes
over h steps).

The series is cut into chronological spans: training first, then validation (`val_split`), then
test (`test_split`). Windows are made inside each span, so none crosses a boundary.

Metrics are measured in the data's own units (`units` in the preprocessing, read by the task): a
target is `value * scale + offset`, plus with `difference` the base level x[t], which travels as
extra target columns after the T scaled ones, (N, 2T), so that each sample carries it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import SpecError
from .sources import Opened, optional_import, tensor_source
from .columns import check_spec_columns
from .tabular import SHOWN, holds, read_spec_table, read_table, require_columns
from .tables import format_of


def fit_scaler(kind: str, values: np.ndarray) -> dict[str, Any]:
    """Per column offset and scale, x -> (x - offset) / scale, from the training span."""
    columns = values.shape[1]
    if kind == "none" or len(values) == 0:
        offset, scale = np.zeros(columns), np.ones(columns)
    elif kind == "minmax":
        offset, scale = values.min(0), values.max(0) - values.min(0)
    else:
        offset, scale = values.mean(0), values.std(0)
    scale = np.where(scale > 0, scale, 1.0)
    return {"kind": kind, "offset": offset.tolist(), "scale": scale.tolist()}


def apply_scaler(scaler: dict[str, Any], values: np.ndarray) -> np.ndarray:
    return (values - np.array(scaler["offset"])) / np.array(scaler["scale"])


# --------------------------------------------------------------------------------------------------
# reading: every cell a finite number, or its row reported


@dataclass
class BadRows:
    """The rows (0-based) whose series' cells hold no finite number, and what those cells hold, said
    only for the few rows a message names (a column of words in a long file costs no more)."""

    frame: Any
    columns: list[str]
    bad: np.ndarray  # (rows, C) bool
    rows: list[int]

    def describe(self, rows: list[int] | None = None) -> str:
        """'row 5: a is empty; row 9: b is inf' for the first few (1-based, as the file's data rows)."""
        rows = self.rows if rows is None else rows
        text = "; ".join(f"row {i + 1}: {self._cells(i)}" for i in rows[:SHOWN])
        return text + (f"; and {len(rows) - SHOWN} more row(s)" if len(rows) > SHOWN else "")

    def _cells(self, row: int) -> str:
        return ", ".join(f"{c} {holds(self.frame[c].iloc[row])}" for c, bad in zip(self.columns, self.bad[row]) if bad)

    def error(self, path: str, key: tuple[str, ...]) -> SpecError:
        return SpecError(f"{path}: {len(self.rows)} row(s) hold no finite number in the series' columns: "
                         f"{self.describe()}", path=key, hint="fill or remove those rows")


def read_values(frame, columns: list[str]) -> tuple[np.ndarray, BadRows]:
    """(steps, C) float64 levels, NaN where a cell holds no finite number (empty, text, inf), and
    those rows."""
    pd = optional_import("pandas")
    values = np.stack([pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64) for c in columns], 1)
    bad = ~np.isfinite(values)  # (rows, C)
    values[bad] = np.nan
    return values, BadRows(frame, columns, bad, np.flatnonzero(bad.any(1)).tolist())


# --------------------------------------------------------------------------------------------------
# samples


def model_values(levels: np.ndarray, difference: bool) -> np.ndarray:
    """What a window holds: the levels, or their first changes (step i: x[i+1] - x[i])."""
    return np.diff(levels, axis=0) if difference else levels


def last_known(starts: np.ndarray, window: int, difference: bool) -> np.ndarray:
    """The level step t a window knows last: its last level, or the level its last change reaches."""
    return starts + window - 1 + (1 if difference else 0)


def target_values(levels: np.ndarray, horizon: int, difference: bool) -> np.ndarray:
    """What is predicted, in data units, from every level step t that has one: x[t+h], or with
    `difference` x[t+h] - x[t]. Row t of the result belongs to the window ending at t."""
    return levels[horizon:] - levels[:-horizon] if difference else levels[horizon:]


def samples(scaled: np.ndarray, levels: np.ndarray, starts: np.ndarray,
            fitted: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """The windows starting at `starts` (indices into `scaled`, the scaled model values): (N, window,
    F) inputs and their targets, in model units, with the base levels x[t] after them where the
    model learns changes: (N, T) or (N, 2T) float32."""
    window, horizon, difference = fitted["window"], fitted["horizon"], fitted["difference"]
    columns = fitted["columns"]
    features = [columns.index(c) for c in fitted["features"]]
    targets = [columns.index(c) for c in fitted["targets"]]
    x = scaled[starts[:, None] + np.arange(window)][:, :, features]  # (N, window, F)
    t = last_known(starts, window, difference)
    units = fitted["units"]
    y = target_values(levels, horizon, difference)[t][:, targets]  # (N, T) in data units
    y = (y - np.array(units["offset"])) / np.array(units["scale"])
    if units["base"]:
        y = np.concatenate([y, levels[t][:, targets]], axis=1)
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32))


def labelled_samples(path: str, fitted: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every window of a new series (`evaluate --data`) whose target row is in the file, with its
    target, through what training fitted."""
    frame = read_table(path, key="path")  # its format by its suffix
    require_columns(frame, fitted["columns"], path, "path")
    levels, bad = read_values(frame, fitted["columns"])
    if bad.rows:
        raise bad.error(path, ())
    values = model_values(levels, fitted["difference"])
    count = len(values) - fitted["window"] - fitted["horizon"] + 1
    if count <= 0:
        steps = " of first changes" if fitted["difference"] else ""
        raise SpecError(f"{path} has {len(levels)} rows, too few for one window and its target: window + horizon = "
                        f"{fitted['window']} + {fitted['horizon']} steps{steps}", hint="give a longer series")
    return samples(apply_scaler(fitted["scaler"], values), levels, np.arange(count), fitted)


def _spans(steps: int, val_split: float, test_split: float) -> tuple[int, int]:
    """Where validation and test begin: the last `test_split`, and `val_split` of what is before."""
    test_start = steps - int(round(steps * test_split))
    val_start = test_start - int(round(test_start * val_split))
    return val_start, test_start


def check_spans(data, rows: int) -> tuple[int, int]:
    """Where validation and test begin in a file of `rows` rows; every span asked for holds at least
    one window: a split too short is a located error with the numbers, not a split silently dropped."""
    steps = max(0, rows - (1 if data.difference else 0))
    val_start, test_start = _spans(steps, data.val_split, data.test_split)
    need = data.window + data.horizon
    window = f"one window needs window + horizon = {data.window} + {data.horizon} = {need} steps"
    of = f"{steps} steps" + (" (the first changes of its rows)" if data.difference else "")
    if val_start < need:
        raise SpecError(f"the training span of {data.path} holds {val_start} of its {of}; {window}",
                        path=("data", "window"), hint="use a shorter window, or smaller val_split / test_split")
    spans = (("test_split", steps - test_start, steps, f"{data.path}'s {of}"),
             ("val_split", test_start - val_start, test_start, f"the {test_start} steps before the test span"))
    for key, length, total, whole in spans:
        fraction = getattr(data, key)
        if fraction > 0 and length < need:
            least = min(0.99, np.ceil(1000 * need / total) / 1000)
            raise SpecError(f"{key} {fraction} of {whole} is a span of {length} step(s); {window}",
                            path=("data", key),
                            hint=f"use {key}: {least:g} or more, a shorter window, or {key}: 0 for no such split")
    return val_start, test_start


def count_rows(path: str, limit: int = 256 << 20, format: str | None = None) -> int | None:
    """The data rows of a table: a CSV's non-blank lines after the header, as pandas reads them, a
    Parquet file's row count from its footer; None for what is no file, or a CSV over `limit`
    bytes: validate reads no more than that."""
    from pathlib import Path

    try:
        if not Path(path).is_file():
            return None
        if format_of(path, format) == "parquet":
            return _parquet_rows(path)
        if Path(path).stat().st_size > limit:
            return None
        with open(path, "rb") as handle:
            return max(0, sum(1 for line in handle if line.strip()) - 1)
    except OSError:  # unreadable: reading it for real says why
        return None


def _parquet_rows(path: str) -> int | None:
    """A Parquet file's row count, from its footer; None where it cannot be read (reading it for
    real says why)."""
    pq = optional_import("pyarrow.parquet")
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, ValueError):
        return None


def open_time_series(data, seed: int) -> Opened:  # noqa: ARG001 - chronological splits need no seed
    frame = read_spec_table(data, "path")
    columns = list(dict.fromkeys(data.features + data.targets))
    check_spec_columns(data, [str(c) for c in frame.columns], data.path)  # at features / targets, as validate
    levels, bad = read_values(frame, columns)  # (rows, C)
    if bad.rows:  # empty, text, inf: a loss of nan or inf epochs later would say less
        raise bad.error(data.path, ("data", "path"))
    values = model_values(levels, data.difference)  # (steps, C)
    val_start, test_start = check_spans(data, len(levels))
    targets = [columns.index(c) for c in data.targets]
    # The targets' scaler: what is predicted over the training span (its levels, or its changes over
    # `horizon` steps: rows 0..val_start), so that with horizon 1 it is the inputs' own.
    predicted = target_values(levels[: val_start + 1], data.horizon, True) if data.difference else levels[:val_start]
    target_scaler = fit_scaler(data.scale, predicted[:, targets])
    fitted = {
        "kind": "time_series",
        "columns": columns,
        "features": list(data.features),
        "targets": list(data.targets),
        "difference": data.difference,
        "scaler": fit_scaler(data.scale, values[:val_start]),  # the training span only
        "window": data.window,
        "horizon": data.horizon,
        # The targets back in the data's own units: value * scale + offset (+ x[t], the y columns after them).
        "units": {"offset": target_scaler["offset"], "scale": target_scaler["scale"], "base": data.difference},
    }
    scaled = apply_scaler(fitted["scaler"], values)

    def span(a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        return samples(scaled, levels, np.arange(a, max(a, b - data.window - data.horizon + 1)), fitted)

    (x_train, y_train), (x_val, y_val) = span(0, val_start), span(val_start, test_start)
    x_test, y_test = span(test_start, len(values))
    squeeze = y_train.shape[1] == 1  # one target: (N,), as for any single real-valued target
    x, y = torch.cat([x_train, x_val]), torch.cat([y_train, y_val])
    train = tensor_source(x, y[:, 0] if squeeze else y, None, None, list(data.targets))
    test = None
    if len(x_test):
        test = tensor_source(x_test, y_test[:, 0] if squeeze else y_test, None, None, list(data.targets))
    return Opened(train, test, torch.arange(len(x_train)), torch.arange(len(x_train), len(x)), fitted)
