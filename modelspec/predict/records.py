"""Raw tables, texts and series to model inputs, through the preprocessing fitted at training time.

The fitted data (`preprocessing["data"]`: a table's column treatments, a text's tokenizer, a series'
scaler and window) are applied with the very functions training used, so a prediction sees what
training saw: unknown categories and words take the missing or unknown slot. A row or text that
cannot be encoded is reported with its number; the others are still predicted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import SpecError
from .inputs import Item


def fitted(preprocessing: dict[str, Any], kind: str) -> dict[str, Any]:
    data = preprocessing.get("data")
    if not isinstance(data, dict) or data.get("kind") != kind:
        raise SpecError(f"the stored preprocessing has no fitted {kind} data",
                        hint="export the run again with this modelspec, or predict from the run folder")
    return data


def _one_file(arguments: Sequence[str], what: str) -> Path:
    if len(arguments) != 1:
        raise SpecError(f"give one {what} file; received {len(arguments)}")
    path = Path(arguments[0])
    if not path.is_file():
        raise SpecError(f"no such input: {path}", hint=f"give a {what} file")
    return path


# --------------------------------------------------------------------------------------------------
# tables


def read_rows(arguments: Sequence[str], preprocessing: dict[str, Any], **_) -> list[Item]:
    """A CSV's rows; the feature columns by name, every column kept in the output."""
    from ..data.tabular import encode_columns, read_table, require_columns

    columns = fitted(preprocessing, "table")["columns"]
    path = _one_file(arguments, "CSV")
    frame = read_table(str(path), ",")
    require_columns(frame, [c["name"] for c in columns], str(path), "features")
    extras = frame.astype(object).where(frame.notna(), None).to_dict("records")
    try:
        x = torch.from_numpy(encode_columns(columns, frame))
        return [Item(f"row {i + 1}", x[i], extra=extras[i]) for i in range(len(frame))]
    except SpecError:  # some row holds a value its column cannot take: find which, keep the others
        items = []
        for i in range(len(frame)):
            try:
                items.append(Item(f"row {i + 1}", torch.from_numpy(encode_columns(columns, frame.iloc[[i]]))[0],
                                  extra=extras[i]))
            except SpecError as exc:
                items.append(Item(f"row {i + 1}", None, exc.issues[0].message, extras[i]))
        return items


# --------------------------------------------------------------------------------------------------
# texts


def tokenizer_of(data: dict[str, Any], folder: Path | None):
    """The fitted tokenizer: inline (a run's weights) or tokenizer.json beside an export."""
    from tokenizers import Tokenizer

    from ..data.text import _fixed_length

    stored = data["tokenizer"]
    if isinstance(stored, str):  # a file name, in an export folder
        if folder is None or not (folder / stored).is_file():
            raise SpecError(f"the tokenizer file {stored} is missing", hint="export the run again")
        tokenizer = Tokenizer.from_file(str(folder / stored))
    else:
        tokenizer = Tokenizer.from_str(json.dumps(stored))
    return _fixed_length(tokenizer, data["max_length"])


def read_texts(arguments: Sequence[str], preprocessing: dict[str, Any], column: str | None = None,
               folder: Path | None = None, **_) -> list[Item]:
    """One text per line of a .txt file, or a CSV/TSV/JSONL column (`--column`, default `text`)."""
    from ..data.text import encode_texts

    data = fitted(preprocessing, "text")
    path = _one_file(arguments, "text")
    if path.suffix in (".csv", ".tsv", ".jsonl"):
        from ..data.text import read_text_table

        frame = read_text_table(path)
        name = column or "text"
        if name not in frame.columns:
            raise SpecError(f"{path} has no column '{name}'", hint="name the text column with --column")
        texts = frame[name].fillna("").astype(str).tolist()
        extras = frame.astype(object).where(frame.notna(), None).to_dict("records")
    else:
        texts = path.read_text(encoding="utf-8").splitlines()
        extras = [None] * len(texts)
    tokenizer = tokenizer_of(data, folder)
    good = [i for i, text in enumerate(texts) if text.strip()]
    encoded = encode_texts(tokenizer, [texts[i] for i in good])
    rows = dict(zip(good, encoded))
    return [Item(f"line {i + 1}", rows.get(i), None if i in rows else "the text is empty",
                 extras[i] or {"text": text[:80]}) for i, text in enumerate(texts)]


# --------------------------------------------------------------------------------------------------
# series


def read_series(arguments: Sequence[str], preprocessing: dict[str, Any], last: bool = False, **_) -> list[Item]:
    """A CSV ordered by time: every complete window (or, with `last`, the latest), scaled as in training."""
    from ..data.tabular import read_table, require_columns

    data = fitted(preprocessing, "time_series")
    path = _one_file(arguments, "CSV")
    frame = read_table(str(path), ",")
    require_columns(frame, data["columns"], str(path), "features")
    try:
        values = frame[data["columns"]].to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise SpecError(f"{path}: the series' columns must hold numbers ({exc})"[:300]) from None
    raw = values
    if data["difference"]:
        values = np.diff(values, axis=0)
    scaled = (values - np.array(data["scaler"]["offset"])) / np.array(data["scaler"]["scale"])
    features = [data["columns"].index(c) for c in data["features"]]
    window = data["window"]
    starts = range(len(scaled) - window, len(scaled) - window + 1) if last else range(len(scaled) - window + 1)
    if len(scaled) < window:
        raise SpecError(f"{path} has {len(scaled)} usable steps; the model reads windows of {window}",
                        hint="give a longer series")
    items = []
    for s in starts:
        x = torch.from_numpy(scaled[s : s + window][:, features].astype(np.float32))
        end = s + window + (1 if data["difference"] else 0)  # rows of the file the window covers
        items.append(Item(f"steps {end - window + 1}-{end}", x, extra={"_last_raw": raw[end - 1].tolist()}))
    return items


def unscale(rows: list[dict[str, Any]], items: list[Item], preprocessing: dict[str, Any]) -> None:
    """A series' forecasts back in the file's units: x * scale + offset, plus the last value when the
    model learnt first differences."""
    data = preprocessing.get("data") or {}
    if data.get("kind") != "time_series":
        return
    offset, scale = data["scaler"]["offset"], data["scaler"]["scale"]
    for row, item in zip(rows, items):
        last = (item.extra or {}).pop("_last_raw", None)
        for name in data["targets"]:
            if name in row and isinstance(row[name], float):
                j = data["columns"].index(name)
                value = row[name] * scale[j] + offset[j]
                row[name] = value + last[j] if data["difference"] and last is not None else value
