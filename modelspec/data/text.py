"""Texts: labelled texts -> (N, max_length) int64 token ids with a Hugging Face `tokenizers` tokenizer.

The tokenizer is word level: lower-cased (if asked), split on whitespace and punctuation, a
vocabulary of the `max_words` most frequent training words seen at least `min_frequency` times
(ties in alphabetical order, so the vocabulary is the same every time), `<unk>` = 0 and `<pad>` = 1;
every text is cut or padded to `max_length`. Its padding and truncation are part of the saved
tokenizer.json, so any `tokenizers` client encodes a new text to exactly the ids the model saw.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import SpecError
from ..spec.data.text import PAD_ID, PAD_TOKEN, SPECIAL_TOKENS, UNK_ID, UNK_TOKEN
from .sources import Opened, carve, encode_targets, fit_classes, optional_import, tensor_source


def _read_folder(folder: Path, names: list[str] | None) -> tuple[list[str], list[str]]:
    """One folder of .txt files per class: (texts, labels)."""
    texts, labels = [], []
    dirs = sorted(p for p in folder.iterdir() if p.is_dir() and (names is None or p.name in names))
    missing = sorted(set(names or []) - {p.name for p in dirs})
    if missing:
        raise SpecError(f"{folder} has no class folder {', '.join(missing)}", path=("data", "class_folders"))
    for label_dir in dirs:
        for file in sorted(label_dir.glob("*.txt")):
            texts.append(file.read_text(encoding="utf-8", errors="replace"))
            labels.append(label_dir.name)
    if not texts:
        raise SpecError(f"{folder} holds no class folders of .txt files", path=("data", "path"),
                        hint="a text folder has one folder per class (e.g. pos/, neg/) of .txt files")
    return texts, labels


def read_text_table(path: Path, key: str = "path"):
    """A .csv, .tsv or .jsonl file of texts as a pandas DataFrame; unreadable is a SpecError."""
    pd = optional_import("pandas")
    try:
        if path.suffix == ".jsonl":
            return pd.read_json(path, lines=True)
        return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",")
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read {path}: {str(exc).splitlines()[0][:200]}", path=("data", key)) from None


def _read_file(data, path: Path, key: str) -> tuple[list[str], list[Any]]:
    frame = read_text_table(path, key)
    from .tabular import require_columns

    require_columns(frame, [data.text_column, data.label_column], str(path), key)
    return frame[data.text_column].fillna("").astype(str).tolist(), frame[data.label_column].tolist()


def read_texts(data, path: str, key: str) -> tuple[list[str], list[Any]]:
    """(texts, labels) of a .csv/.tsv/.jsonl file or a folder per class."""
    where = Path(path)
    if where.is_dir():
        return _read_folder(where, data.class_folders)
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


def encode_texts(tokenizer, texts: list[str]) -> torch.Tensor:
    """(N, max_length) int64 ids."""
    if not texts:
        return torch.zeros((0, tokenizer.truncation["max_length"]), dtype=torch.long)
    return torch.tensor([e.ids for e in tokenizer.encode_batch(texts)], dtype=torch.long)


def open_text(data, seed: int) -> Opened:
    texts, labels = read_texts(data, data.path, "path")
    if data.test_path is not None:
        test_texts, test_labels = read_texts(data, data.test_path, "test_path")
    else:
        keep, held_out = carve(len(texts), data.test_split, seed)
        test_texts, test_labels = [texts[i] for i in held_out], [labels[i] for i in held_out]
        texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
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
