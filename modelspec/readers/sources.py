"""What opening a data set gives: its splits as `Source`s, the validation carve, what was fitted.

Each data kind has its own reader module here (images, synthetic, tabular, text, time_series) with
one `open_*` function, which its spec class calls; this module holds what they share, and `Item`,
one raw input read for `modelspec predict`.

Targets, the contract the runner relies on: int64 (N,) class indices for `classes`; float32 (N,) or
(N, T) for 0/1 (`binary`, several columns: multi-label) and real-valued (`real`) targets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import SpecError
from .extras import optional_import  # noqa: F401 - the readers' one way to import an extra


@dataclass
class Source:
    """One split: per-sample dataset (PIL images, int labels) and, if cheap, all of it as tensors."""

    dataset: Any  # torch Dataset yielding (sample, target) without transforms
    targets: torch.Tensor  # see the module's docstring
    tensors: torch.Tensor | None  # (N, C, H, W) uint8 images, or (N, ...) float32/int64 samples
    num_classes: int | None  # class count; outputs for binary targets; None for real values
    is_image: bool  # uint8 images that `to_tensor` scales to [0, 1]
    class_names: list[str] | None = None  # names of the class indices, stored with the weights
    target_names: list[str] | None = None  # the target columns (tables, series)


@dataclass
class Item:
    """One raw input for `modelspec predict`: its name (a file, a row), the model input, or why
    there is none."""

    name: str
    x: torch.Tensor | None
    error: str | None = None
    extra: dict[str, Any] | None = None  # columns a table row brings along, kept in the output


@dataclass
class Opened:
    """A data set opened for training: validation is carved out of `train` by position."""

    train: Source
    test: Source | None
    train_idx: torch.Tensor  # positions of the training samples in `train`
    val_idx: torch.Tensor  # positions of the validation samples in `train`
    # What was fitted on the training samples (category lists, scalers, the tokenizer), as JSON data.
    preprocessing: dict[str, Any] = field(default_factory=dict)


def carve(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held out) positions, the held-out `fraction` drawn with `seed` (same in every run)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_out = int(round(n * fraction))
    return order[n_out:].sort().values, order[:n_out].sort().values


def tensor_source(x: torch.Tensor, y: torch.Tensor, num_classes: int | None, class_names: list[str] | None,
                  target_names: list[str] | None = None) -> Source:
    """A split already encoded as tensors (tables, texts, series)."""
    return Source(torch.utils.data.TensorDataset(x, y), y, x, num_classes, False, class_names, target_names)


def read_utf8(path, key: str | None = "path") -> str:
    """A data file's text. Not UTF-8 is a SpecError naming the file, the byte offset and its line
    (at `data.<key>`, or at no spec key where a predict input is read); a BOM is dropped."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror or exc}", path=("data", key) if key else ()) from None
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise SpecError(f"{path} is not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start:,} (line {line}) "
                        f"is no UTF-8 character", path=("data", key) if key else (),
                        hint="save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 OLD > NEW)") from None


def is_missing(value: Any) -> bool:
    """No label: None, NaN (a float or pandas' NA) or blank text, as a reader gives an empty cell or
    an absent key."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ in ("NAType", "NaTType")


def require_labels(values: list[Any], what: str, rows: list[Any] | None = None, column: str | None = None) -> None:
    """Every sample has a label: a missing one would become a class named `nan`. `rows` name the
    samples where the file has them (`row 3`, `line 7`); without, only their count is said."""
    missing = [i for i, v in enumerate(values) if is_missing(v)]
    if not missing:
        return
    where = f" in column '{column}'" if column else ""
    at = f": {', '.join(str(rows[i]) for i in missing[:10])}{', ...' if len(missing) > 10 else ''}" if rows else ""
    raise SpecError(f"{what} has {len(missing)} sample(s) without a label{where}{at}", path=("data",),
                    hint="give every row a label, or remove the rows without one")


def label_key(value: Any) -> str:
    """A label or category as a stable string, whoever read the file: 3, 3.0, "3" and "3.0" are all
    "3", and 1.5 and "1.50" are "1.5" (numbers as Python writes them); other text stays as it is."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        if not math.isfinite(number):
            return value
        value = number
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def sorted_labels(keys: set[str]) -> list[str]:
    """Numbers in numeric order when every label is one, else in string order: deterministic."""
    try:
        return sorted(keys, key=float)
    except ValueError:
        return sorted(keys)


def encode_targets(values: list[Any], kind: str, classes: list[str] | None, what: str,
                   key: tuple[str, ...] = ("data",)) -> torch.Tensor:
    """Labels -> the target tensor of `kind`, given the classes fitted on training (classes, binary).
    `key`: the spec key that names these samples (a test file's `test_path`)."""
    require_labels(values, what)
    if kind == "real":
        return torch.tensor([float(v) for v in values], dtype=torch.float32)
    index = {name: i for i, name in enumerate(classes or [])}
    keys = [label_key(v) for v in values]
    unknown = sorted({k for k in keys if k not in index})
    if unknown:
        raise SpecError(f"{what} has labels that training never saw: {', '.join(unknown[:5])}",
                        path=key, hint="every test label must occur in the training split")
    ids = torch.tensor([index[k] for k in keys], dtype=torch.long)
    return ids.float() if kind == "binary" else ids


def fit_classes(values: list[Any], kind: str, what: str, expected: int | None = None,
                key: tuple[str, ...] = ("data",)) -> list[str]:
    """The sorted labels of the training samples; binary targets need exactly two, classes two or
    more (one class is nothing to learn, and its metrics have nothing to count against); a class
    count given in the spec must be theirs. `key`: the spec key that names the labels."""
    require_labels(values, what)
    classes = sorted_labels({label_key(v) for v in values})
    if expected is not None and expected != len(classes):
        raise SpecError(f"num_classes={expected}, but {what} has {len(classes)} labels: {', '.join(classes[:10])}",
                        path=("data", "num_classes"), hint="omit num_classes to infer it")
    if kind == "binary" and len(classes) != 2:
        raise SpecError(f"binary targets need two distinct labels; {what} has {len(classes)}: "
                        f"{', '.join(classes[:5])}", path=("data", "target_kind"),
                        hint="use target_kind: classes for more than two labels")
    if len(classes) < 2:
        raise SpecError(f"{what} has {'one label' if classes else 'no labels'}{': ' + classes[0] if classes else ''}; "
                        "a classifier needs two classes or more", path=key,
                        hint="check the target (or label) column and the rows the file holds")
    return classes
