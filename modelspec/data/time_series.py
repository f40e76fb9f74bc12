"""Time series: a CSV ordered by time -> (N, window, F) float32 windows and (N, T) targets.

The series is cut into chronological spans: training first, then validation (`val_split`), then
test (`test_split`). Windows are made inside each span, so none crosses a boundary; the scaling is
fitted on the training span only. Sample i's input is steps [s, s + window) of its span and its
target the `targets` columns at step s + window - 1 + horizon, scaled like the inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import SpecError
from .sources import Opened, tensor_source
from .tabular import read_table, require_columns


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


def windows(values: np.ndarray, feature_idx: list[int], target_idx: list[int], window: int,
            horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every window of one span: (N, window, F) inputs, (N, T) targets."""
    n = len(values) - window - horizon + 1
    if n <= 0:
        return (torch.zeros((0, window, len(feature_idx))), torch.zeros((0, len(target_idx))))
    starts = np.arange(n)
    x = np.stack([values[s : s + window][:, feature_idx] for s in starts])
    y = values[starts + window - 1 + horizon][:, target_idx]
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32))


def _spans(steps: int, val_split: float, test_split: float) -> tuple[int, int]:
    """Where validation and test begin: the last `test_split`, and `val_split` of what is before."""
    test_start = steps - int(round(steps * test_split))
    val_start = test_start - int(round(test_start * val_split))
    return val_start, test_start


def open_time_series(data, seed: int) -> Opened:  # noqa: ARG001 - chronological splits need no seed
    frame = read_table(data.path, data.separator)
    columns = list(dict.fromkeys(data.features + data.targets))
    require_columns(frame, columns, data.path, "path")
    try:
        values = frame[columns].to_numpy(dtype=np.float64)  # (steps, C)
    except (ValueError, TypeError) as exc:
        raise SpecError(f"{data.path}: the feature and target columns must hold numbers ({exc})"[:300],
                        path=("data", "features")) from None
    if np.isnan(values).any():
        raise SpecError(f"{data.path} has missing values in {', '.join(c for c, bad in zip(columns, np.isnan(values).any(0)) if bad)}",
                        path=("data", "path"), hint="fill or remove those rows before training")
    if data.difference:
        values = np.diff(values, axis=0)  # step t holds x[t+1] - x[t]
    val_start, test_start = _spans(len(values), data.val_split, data.test_split)
    scaler = fit_scaler(data.scale, values[:val_start])  # the training span only
    scaled = (values - np.array(scaler["offset"])) / np.array(scaler["scale"])
    feature_idx = [columns.index(c) for c in data.features]
    target_idx = [columns.index(c) for c in data.targets]

    def span(a: int, b: int):
        return windows(scaled[a:b], feature_idx, target_idx, data.window, data.horizon)

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = span(0, val_start), span(val_start, test_start), span(test_start, len(scaled))
    if len(x_train) == 0:
        raise SpecError(f"the training span of {data.path} ({val_start} steps) is shorter than window + horizon "
                        f"({data.window + data.horizon})", path=("data", "window"),
                        hint="use a shorter window, or smaller val_split / test_split")
    squeeze = len(data.targets) == 1  # one target: (N,), as for any single real-valued target
    x = torch.cat([x_train, x_val])
    y = torch.cat([y_train, y_val])
    train = tensor_source(x, y[:, 0] if squeeze else y, None, None, list(data.targets))
    test = tensor_source(x_test, y_test[:, 0] if squeeze else y_test, None, None, list(data.targets)) if len(x_test) else None
    preprocessing = {
        "kind": "time_series",
        "columns": columns,
        "features": list(data.features),
        "targets": list(data.targets),
        "difference": data.difference,
        "scaler": scaler,
        "window": data.window,
        "horizon": data.horizon,
    }
    return Opened(train, test, torch.arange(len(x_train)), torch.arange(len(x_train), len(x)), preprocessing)
