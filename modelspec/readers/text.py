"""Texts: labelled texts -> (N, max_length) int64 token ids with a Hugging Face `tokenizers` tokenizer.

The tokenizer is word level: lower-cased (if asked), split on whitespace and punctuation, a
vocabulary of the `max_words` most frequent training words seen at least `min_frequency` times
(ties in alphabetical order, so the vocabulary is the same every time), `<unk>` = 0 and `<pad>` = 1;
every text is cut or padded to `max_length`. Its padding and truncation are part of the saved
tokenizer.json, so any `tokenizers` client encodes a new text to exactly the ids the model saw.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import SpecError
from .columns import check_spec_columns
from .sources import (Opened, carve, encode_targets, fit_classes, is_missing, optional_import, read_utf8,
                      require_labels, tensor_source)
from .tables import SUFFIXES, check_format, format_of, separator_of
from .tokens import PAD_ID, PAD_TOKEN, SPECIAL_TOKENS, UNK_ID, UNK_TOKEN

# How a file of texts is read is decided by the spec's `format`, else by its suffix, in any case (.CSV
# is a CSV): a table (CSV, TSV, Parquet), or JSON lines. Any other file is a table of comma-separated
# values in training, and plain lines of text for `predict`.
JSON_LINES = ".jsonl"


def is_text_table(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES or path.suffix.lower() == JSON_LINES


def _text_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".txt" and p.is_file())


def _holds_text(folder: Path) -> bool:
    """Whether a folder holds a .txt file: read up to the first one (IMDB's class folders hold 12,500)."""
    with os.scandir(folder) as entries:
        return any(entry.name.lower().endswith(".txt") and entry.is_file() for entry in entries)


def class_folders(folder: Path, names: list[str] | None, key: str) -> list[Path]:
    """The class folders of a folder of texts, sorted, as a run reads them: those named in
    `class_folders` (all there), else every folder that holds a .txt file. Cheap (folder names, and
    each folder up to its first .txt file), so that validate lists them too."""
    try:
        dirs = sorted(p for p in folder.iterdir() if p.is_dir() and (names is None or p.name in names))
    except OSError as exc:
        raise SpecError(f"cannot read the folder {folder}: {exc.strerror or exc}", path=("data", key)) from None
    missing = sorted(set(names or []) - {p.name for p in dirs})
    if missing:
        raise SpecError(f"{folder} has no class folder {', '.join(missing)}", path=("data", "class_folders"))
    dirs = [d for d in dirs if _holds_text(d)]
    if not dirs:
        raise SpecError(f"{folder} holds no class folders of .txt files", path=("data", key),
                        hint="a text folder has one folder per class (e.g. pos/, neg/) of .txt files")
    return dirs


def folder_classes(data) -> list[str] | None:
    """The classes of a text folder (`data.path`) from its folder names alone, checked as a run checks
    its labels (two or more, `num_classes`, binary's two; a test folder's all among them): validate
    refuses a folder of one class before anything runs. None where `path` is a file."""
    if not Path(data.path).is_dir():
        return None
    names = [d.name for d in class_folders(Path(data.path), data.class_folders, "path")]
    classes = fit_classes(names, data.target_kind, data.path, data.num_classes, key=("data", "path"))
    if data.test_path is not None and Path(data.test_path).is_dir():
        tested = [d.name for d in class_folders(Path(data.test_path), data.class_folders, "test_path")]
        encode_targets(tested, data.target_kind, classes, data.test_path, ("data", "test_path"))
    return classes


def _read_folder(folder: Path, names: list[str] | None, key: str) -> tuple[list[str], list[str]]:
    """One folder of .txt files per class: (texts, labels)."""
    texts, labels = [], []
    for label_dir in class_folders(folder, names, key):
        for file in _text_files(label_dir):
            texts.append(read_utf8(file, key))
            labels.append(label_dir.name)
    return texts, labels


def _json_lines(text: str, path: Path, key: str | None) -> tuple[list[int], list[dict[str, Any]]]:
    """(line numbers, objects) of the non-blank lines; a line that is no JSON object is a SpecError."""
    numbers, records = [], []
    for number, line in enumerate(text.split("\n"), 1):  # not splitlines: JSON strings may hold U+2028
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise SpecError(f"{path}: line {number} is not JSON ({exc})"[:300], path=("data", key) if key else (),
                            hint="a .jsonl file holds one JSON object a line") from None
        if not isinstance(record, dict):
            raise SpecError(f"{path}: line {number} is a JSON {type(record).__name__}, not an object",
                            path=("data", key) if key else (), hint='one object a line: {"text": ..., "label": ...}')
        numbers.append(number)
        records.append(record)
    return numbers, records


def read_text_table(path: Path, key: str | None = "path", format: str | None = None):
    """A .csv, .tsv, .parquet or .jsonl file of texts (or one in the spec's `format`) as a DataFrame
    of its values as written: CSV cells as strings (see `read_cells`), Parquet and JSON values as
    they are typed (NaN where a line lacks the key), its index the rows or the line numbers
    (`index.name` is `row` or `line`). Unreadable or not UTF-8 is a SpecError at `data.<key>` (at
    no key with `key=None`, for a predict input)."""
    if format is not None or path.suffix.lower() != JSON_LINES:
        fmt = format_of(path, format)
        if fmt == "parquet":
            return read_parquet_cells(path, key, ("data", "format") if format else None)
        check_format(path, fmt, key, ("data", "format") if format else None)
        return read_cells(path, separator_of(fmt), key)
    pd = optional_import("pandas")
    numbers, records = _json_lines(read_utf8(path, key), path, key)
    return pd.DataFrame(records, index=pd.Index(numbers, name="line"), dtype=object)


def read_cells(path: Path, separator: str, key: str | None = "path"):
    """A CSV as written: every cell a string ("" when empty; 38 stays "38", NA stays "NA"), its index
    the rows after the header counted from 1 (`index.name` is `row`)."""
    pd = optional_import("pandas")
    text = read_utf8(path, key)
    try:
        frame = pd.read_csv(io.StringIO(text), sep=separator, dtype=str, keep_default_na=False)
    except ValueError as exc:  # pandas' ParserError is a ValueError
        raise SpecError(f"cannot read {path}: {str(exc).splitlines()[0][:200]}",
                        path=("data", key) if key else ()) from None
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="row")
    return frame


def read_parquet_cells(path: Path, key: str | None = "path", at=None):
    """A Parquet table of texts, its values as typed (objects, so labels keep their form), its index
    the rows counted from 1 (`index.name` is `row`)."""
    from .tables import read_frame

    pd = optional_import("pandas")
    frame = read_frame(path, "parquet", key=key, at=at).astype(object)
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="row")
    return frame


def texts_of(column) -> list[str]:
    """A column's texts: a missing value is the empty text."""
    return ["" if is_missing(value) else str(value) for value in column]


def _read_file(data, path: Path, key: str) -> tuple[list[str], list[Any]]:
    frame = read_text_table(path, key, getattr(data, "format", None))
    check_spec_columns(data, [str(c) for c in frame.columns], str(path), key)  # at their keys, as validate
    labels = frame[data.label_column].tolist()
    require_labels(labels, str(path), [f"{frame.index.name} {n}" for n in frame.index], data.label_column)
    return texts_of(frame[data.text_column]), labels


def read_texts(data, path: str, key: str) -> tuple[list[str], list[Any]]:
    """(texts, labels) of a .csv/.tsv/.jsonl file or a folder per class."""
    where = Path(path)
    if where.is_dir():
        return _read_folder(where, data.class_folders, key)
    if not where.is_file():
        raise SpecError(f"no file or folder at {path}", path=("data", key), hint="check the path")
    return _read_file(data, where, key)


def fit_tokenizer(data, texts: list[str]):
    """A word-level tokenizer fitted on `texts` (training only), padding and truncating to max_length."""
    tk = optional_import("tokenizers")
    from tokenizers import normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from tokenizers.trainers import WordLevelTrainer

    tokenizer = tk.Tokenizer(WordLevel(unk_token=UNK_TOKEN))
    if data.lowercase:
        tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = WordLevelTrainer(vocab_size=data.max_words + SPECIAL_TOKENS, min_frequency=data.min_frequency,
                               special_tokens=[UNK_TOKEN, PAD_TOKEN], show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def load_tokenizer(data):
    tk = optional_import("tokenizers")
    try:
        return tk.Tokenizer.from_file(data.tokenizer)
    except Exception as exc:  # tokenizers raises its own Exception type for a bad or missing file
        raise SpecError(f"cannot load the tokenizer {data.tokenizer}: {str(exc)[:200]}", path=("data", "tokenizer"),
                        hint="give a tokenizer.json written by Hugging Face tokenizers") from None


def _fixed_length(tokenizer, max_length: int):
    """Cut or pad to max_length (padding on the right with <pad>), saved in tokenizer.json."""
    pad_id = tokenizer.token_to_id(PAD_TOKEN)
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(pad_id=PAD_ID if pad_id is None else pad_id, pad_token=PAD_TOKEN, length=max_length)
    return tokenizer


# Hugging Face tokenizers holds about 110 bytes a token while it encodes (an Encoding's ids, offsets,
# masks and token strings; measured), so texts are encoded at most this many tokens at a time (about
# 0.1 GB) into a tensor allocated once: only the int64 ids grow with the data.
ENCODE_TOKENS = 2**20


def physical_memory() -> int | None:
    """This machine's memory in bytes, where the platform says (Linux, macOS)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_token_memory(rows: int, max_length: int, memory: int | None = None) -> None:
    """Refuse, before allocating, token ids (rows × max_length × 8 bytes) past half this machine's
    memory: the model's activations and the rest of the process need the other half."""
    needed, memory = rows * max_length * 8, memory or physical_memory()
    if memory is not None and needed > memory // 2:
        raise SpecError(f"{rows:,} texts of max_length={max_length:,} tokens are {needed / 1e9:,.1f} GB of int64 token "
                        f"ids, more than half this machine's memory ({memory / 1e9:,.1f} GB)",
                        path=("data", "max_length"),
                        hint="lower max_length (most texts fit in a few hundred tokens), or give fewer texts")


def encode_texts(tokenizer, texts: list[str]) -> torch.Tensor:
    """(N, max_length) int64 ids."""
    length = tokenizer.truncation["max_length"]
    check_token_memory(len(texts), length)
    ids = torch.empty((len(texts), length), dtype=torch.long)
    step = max(1, ENCODE_TOKENS // length)
    for start in range(0, len(texts), step):
        encoded = tokenizer.encode_batch(texts[start : start + step])
        ids[start : start + len(encoded)] = torch.tensor([e.ids for e in encoded], dtype=torch.long)
    return ids


def open_text(data, seed: int) -> Opened:
    texts, labels = read_texts(data, data.path, "path")
    if data.test_path is not None:
        test_texts, test_labels = read_texts(data, data.test_path, "test_path")
    else:
        keep, held_out = carve(len(texts), data.test_split, seed)
        test_texts, test_labels = [texts[i] for i in held_out], [labels[i] for i in held_out]
        texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
    check_token_memory(len(texts) + len(test_texts), data.max_length)  # the whole data set, before any split
    train_idx, val_idx = carve(len(texts), data.val_split, seed + 1)
    if data.tokenizer is not None:
        tokenizer = load_tokenizer(data)
    else:
        tokenizer = fit_tokenizer(data, [texts[i] for i in train_idx])  # training texts only
        assert tokenizer.token_to_id(UNK_TOKEN) == UNK_ID and tokenizer.token_to_id(PAD_TOKEN) == PAD_ID
    tokenizer = _fixed_length(tokenizer, data.max_length)
    classes = fit_classes(labels, data.target_kind, data.path, data.num_classes)
    outputs = 1 if data.target_kind == "binary" else len(classes)

    def source(split_texts, split_labels, what):
        y = encode_targets(split_labels, data.target_kind, classes, what)
        return tensor_source(encode_texts(tokenizer, split_texts), y, outputs, classes)

    test = source(test_texts, test_labels, data.test_path or data.path) if test_texts else None
    preprocessing = {
        "kind": "text",
        "tokenizer": json.loads(tokenizer.to_str()),  # the whole tokenizer.json, as data
        "vocab_size": tokenizer.get_vocab_size(),
        "max_length": data.max_length,
        "pad_id": tokenizer.token_to_id(PAD_TOKEN),
        "unk_id": tokenizer.token_to_id(UNK_TOKEN),
        "target": {"kind": data.target_kind, "classes": classes},
    }
    return Opened(source(texts, labels, data.path), test, train_idx, val_idx, preprocessing)
