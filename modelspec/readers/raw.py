"""Raw tables, texts and series to model inputs, through the preprocessing fitted at training time:
what `modelspec predict` reads (`read_rows`, `read_texts`, `read_series`) and `modelspec evaluate
--data` (`labelled_rows`, `labelled_texts`; a series: `time_series.labelled_samples`), called by
the data kinds' hooks. A table's format is its suffix's (.csv, .tsv, .parquet/.pq; else CSV).

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
from .sources import Item, read_utf8
from .tables import format_of, records, separator_of


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


def _unreadable(path: Path, exc: SpecError) -> list[Item]:
    """The one input a file is, reported (not UTF-8, not JSON lines, no CSV), as an unreadable image is."""
    return [Item(str(path), None, exc.issues[0].message.removeprefix(f"{path}: ").removeprefix(f"{path} "))]


def _readable_text(path: Path) -> list[Item] | None:
    """None for a text table that is UTF-8 (or a Parquet file); else the one item it is, reported."""
    if format_of(path) == "parquet":
        return None
    try:
        read_utf8(path, None)
    except SpecError as exc:
        return _unreadable(path, exc)
    return None


def read_rows(arguments: Sequence[str], preprocessing: dict[str, Any], **_) -> list[Item]:
    """A table's rows; the feature columns by name, encoded as training did. Every column comes back
    as the file has it (a CSV's cells as text, an empty one empty; a Parquet file's as typed): the
    parsed values only feed the model."""
    from .tabular import encode_columns, read_table, require_columns
    from .text import read_cells

    columns = fitted(preprocessing, "table")["columns"]
    path = _one_file(arguments, "CSV")
    unreadable = _readable_text(path)
    if unreadable is not None:
        return unreadable
    frame = read_table(str(path))  # bounded in columns, parsed: what the model reads
    require_columns(frame, [c["name"] for c in columns], str(path), "features")
    fmt = format_of(path)  # the rows as written, for the output
    extras = records(frame) if fmt == "parquet" else read_cells(path, separator_of(fmt), None).to_dict("records")
    try:
        x = torch.from_numpy(encode_columns(columns, frame, str(path)))
        return [Item(f"row {i + 1}", x[i], extra=extras[i]) for i in range(len(frame))]
    except SpecError:  # some row holds a value its column cannot take (a word, inf): find which, keep the others
        items = []
        for i in range(len(frame)):
            try:
                one = torch.from_numpy(encode_columns(columns, frame.iloc[[i]], str(path)))[0]
                items.append(Item(f"row {i + 1}", one, extra=extras[i]))
            except SpecError as exc:
                items.append(Item(f"row {i + 1}", None, exc.issues[0].message.removeprefix(f"{path}: "), extras[i]))
        return items


# --------------------------------------------------------------------------------------------------
# texts


# Tokenizers made from stored preprocessing, by what they were made from: a server reads a text
# request through this reader, and rebuilding a 20,000-word tokenizer costs 30 ms a request. An
# inline tokenizer is known by its dict's id: the entry holds the dict, so no other can take its id.
_TOKENIZERS: dict[tuple, tuple[Any, Any]] = {}


def tokenizer_of(data: dict[str, Any], folder: Path | None):
    """The fitted tokenizer: inline (a run's weights) or tokenizer.json beside an export."""
    from tokenizers import Tokenizer

    from .text import _fixed_length

    stored, length = data["tokenizer"], data["max_length"]
    if isinstance(stored, str):  # a file name, in an export folder
        path = folder / stored if folder is not None else None
        if path is None or not path.is_file():
            raise SpecError(f"the tokenizer file {stored} is missing", hint="export the run again")
        found = path.stat()  # a file exported again in its place is another tokenizer
        key: tuple = ("file", str(path.resolve()), found.st_mtime_ns, found.st_size, length)
    else:
        key = ("inline", id(stored), length)
    made = _TOKENIZERS.get(key)
    if made is None:
        tokenizer = (Tokenizer.from_file(str(path)) if isinstance(stored, str)
                     else Tokenizer.from_str(json.dumps(stored)))
        if len(_TOKENIZERS) >= 8:
            _TOKENIZERS.clear()
        _TOKENIZERS[key] = made = (stored, _fixed_length(tokenizer, length))
    return made[1]


def _lines(text: str) -> list[str]:
    """A .txt file's lines as an editor numbers them: split at newlines only (not at U+2028 or form
    feeds, as `str.splitlines` does), without the last newline's empty line."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    return lines[:-1] if lines and not lines[-1] else lines


def read_texts(arguments: Sequence[str], preprocessing: dict[str, Any], column: str | None = None,
               folder: Path | None = None, **_) -> list[Item]:
    """One text per line of a text file, or a column (`--column`, default `text`) of a .csv/.tsv/.jsonl
    file (suffixes in any case), whose columns come back as the file has them."""
    from .text import encode_texts, is_text_table, read_text_table, texts_of

    data = fitted(preprocessing, "text")
    path = _one_file(arguments, "text")
    try:
        frame = read_text_table(path, None) if is_text_table(path) else None
        lines = _lines(read_utf8(path, None)) if frame is None else []
    except SpecError as exc:
        return _unreadable(path, exc)
    if frame is not None:
        name = column or "text"
        if name not in frame.columns:
            raise SpecError(f"{path} has no column '{name}'", hint="name the text column with --column")
        texts = texts_of(frame[name])
        names = [f"{frame.index.name} {n}" for n in frame.index]
        extras = frame.astype(object).where(frame.notna(), None).to_dict("records")
    else:
        texts, names = lines, [f"line {i + 1}" for i in range(len(lines))]
        extras = [{"text": text[:80]} for text in lines]
    tokenizer = tokenizer_of(data, folder)
    good = [i for i, text in enumerate(texts) if text.strip()]
    encoded = encode_texts(tokenizer, [texts[i] for i in good])
    rows = dict(zip(good, encoded))
    return [Item(names[i], rows.get(i), None if i in rows else "the text is empty", extras[i])
            for i in range(len(texts))]


# --------------------------------------------------------------------------------------------------
# series


def read_series(arguments: Sequence[str], preprocessing: dict[str, Any], last: bool = False, **_) -> list[Item]:
    """A CSV ordered by time: every complete window (or, with `last`, the latest), scaled as in
    training. Each is named by the rows it reads and says which row it forecasts (`for_row`, past the
    file's end for the latest windows, with the file's other columns of that row, such as a date,
    as `for_<column>` where the row is in the file). A window over a row that holds no finite number
    is reported with that row; the others are still predicted."""
    from bisect import bisect_left, bisect_right

    from .tabular import read_table, require_columns
    from .time_series import apply_scaler, last_known, model_values, read_values

    data = fitted(preprocessing, "time_series")
    path = _one_file(arguments, "CSV")
    unreadable = _readable_text(path)
    if unreadable is not None:
        return unreadable
    frame = read_table(str(path))
    columns, window, difference = data["columns"], data["window"], data["difference"]
    require_columns(frame, columns, str(path), "features")
    levels, bad = read_values(frame, columns)  # (rows, C), NaN where a row is bad
    steps = len(levels) - (1 if difference else 0)
    if steps < window:
        what = "first changes, from window + 1 rows" if difference else "rows"
        raise SpecError(f"{path} has {len(levels)} rows; the model reads windows of {window} {what}",
                        hint="give a longer series")
    scaled = apply_scaler(data["scaler"], model_values(levels, difference))
    features = [columns.index(c) for c in data["features"]]
    targets = [columns.index(c) for c in data["targets"]]
    others = [c for c in frame.columns if c not in columns]
    starts = np.arange(steps - window if last else 0, steps - window + 1)
    items = []
    for s, t in zip(starts.tolist(), last_known(starts, window, difference).tolist()):  # t: the last row known
        extra = {"for_row": t + data["horizon"] + 1, **_row_values(frame, others, t + data["horizon"], "for_")}
        within = bad.rows[bisect_left(bad.rows, s) : bisect_right(bad.rows, t)]
        if within:
            items.append(Item(f"rows {s + 1}-{t + 1}", None, f"no number to read: {bad.describe(within)}", extra))
            continue
        x = torch.from_numpy(scaled[s : s + window][:, features].astype(np.float32))  # (window, F)
        items.append(Item(f"rows {s + 1}-{t + 1}", x, extra={**extra, "_base": levels[t, targets].tolist()}))
    return items


def _row_values(frame, names: list[str], row: int, prefix: str) -> dict[str, Any]:
    """Row `row`'s values of the named columns as plain Python values; nothing past the file's end."""
    if row >= len(frame):
        return {}
    values = {}
    for name in names:
        value = frame[name].iloc[row]
        values[f"{prefix}{name}"] = None if value != value else value.item() if hasattr(value, "item") else value
    return values


def unscale(rows: list[dict[str, Any]], items: list[Item], preprocessing: dict[str, Any]) -> None:
    """A series' forecasts back in the file's units (the units its metrics are measured in):
    value * scale + offset of the targets' fitted units, plus the last known level x[t] when the
    model learnt the change x[t+h] - x[t]."""
    data = preprocessing.get("data") or {}
    if data.get("kind") != "time_series":
        return
    units = data.get("units") or _units_before_targets_had_their_own(data)
    for row, item in zip(rows, items):
        base = (item.extra or {}).pop("_base", None)
        for k, name in enumerate(data["targets"]):
            if name in row and isinstance(row[name], float):
                value = row[name] * units["scale"][k] + units["offset"][k]
                row[name] = value + base[k] if units["base"] and base is not None else value


def _units_before_targets_had_their_own(data: dict[str, Any]) -> dict[str, Any]:
    """Models saved before `units`: their targets were scaled with the inputs' scaler."""
    index = [data["columns"].index(name) for name in data["targets"]]
    scaler = data["scaler"]
    return {"scale": [scaler["scale"][j] for j in index], "offset": [scaler["offset"][j] for j in index],
            "base": data["difference"]}


# --------------------------------------------------------------------------------------------------
# labelled data for `modelspec evaluate --data`


def labelled_rows(path: Path, preprocessing: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """New labelled rows (a table with the target columns), encoded with what training fitted."""
    from .tabular import encode_columns, encode_target, read_table, require_columns

    table = fitted(preprocessing, "table")
    frame = read_table(str(path), key="path")  # its format by its suffix
    require_columns(frame, [c["name"] for c in table["columns"]] + table["target"]["columns"], str(path), "path")
    x = torch.from_numpy(encode_columns(table["columns"], frame, str(path)))
    return x, encode_target(table["target"], frame, str(path))


def labelled_texts(data, path: Path, preprocessing: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """New labelled texts in the spec's layout (`data`: its text kind), tokenised as in training."""
    from .sources import encode_targets
    from .text import encode_texts, read_texts

    text = fitted(preprocessing, "text")
    texts, labels = read_texts(data, str(path), "path")
    x = encode_texts(tokenizer_of(text, None), texts)
    return x, encode_targets(labels, data.target_kind, text["target"]["classes"], str(path))
