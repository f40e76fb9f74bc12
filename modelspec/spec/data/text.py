"""Text data: labelled texts, tokenised into a fixed number of word ids with Hugging Face tokenizers.

The tokenizer is fitted on the training texts only (or read from a given tokenizer.json) and saved
with the model as tokenizer.json, which any `tokenizers` client loads.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from .._forms import spec_error
from ..base import PositiveInt
from ._base import DataBase

# Fixed ids of the two special tokens, as torchtext's vocabularies numbered them: 0 unknown, 1 padding.
UNK_TOKEN, PAD_TOKEN = "<unk>", "<pad>"
UNK_ID, PAD_ID = 0, 1
SPECIAL_TOKENS = 2
# Tokens a text, at most: Hugging Face tokenizers holds about 110 bytes a token while it encodes (ids,
# offsets, masks, the token strings) and the ids take 8, so a million tokens is about 0.1 GB a text
# before the model sees it; past that max_length is a typo (an extra zero), like the layer limits.
MAX_LENGTH = 1_000_000
ENCODING_BYTES_PER_TOKEN = 118


class TextData(DataBase):
    dataset: Literal["text"]
    file_keys = ("path", "test_path", "tokenizer")  # checked at validate time (DataBase.check_files)
    folder_keys = ("path", "test_path")  # a file of texts, or a folder of class folders
    column_keys = ("text_column", "label_column")  # in a .csv/.tsv file's header
    # A .csv, .tsv or .jsonl file with a text and a label column, or a folder with one folder of
    # .txt files per class (IMDB's train/pos, train/neg).
    path: str
    test_path: Optional[str] = None  # the same form; without it, `test_split` of `path` is held out
    test_split: float = Field(0.0, ge=0.0, lt=1.0)
    class_folders: Optional[list[str]] = None  # folders only: the class folders to read; default all
    text_column: str = "text"  # files only
    label_column: str = "label"  # files only
    # classes: labels numbered in sorted order; binary: two labels, the second in sorted order is 1.
    target_kind: Literal["classes", "binary"] = "classes"
    max_words: PositiveInt = 10_000  # the most frequent words kept, besides <unk> and <pad>
    min_frequency: PositiveInt = 1  # a word must occur at least this often in training to be kept
    lowercase: bool = True
    max_length: PositiveInt = 200  # tokens per text: longer texts are cut, shorter ones padded
    tokenizer: Optional[str] = None  # a tokenizer.json to use as it is instead of fitting one
    num_classes: Optional[PositiveInt] = None  # checked against the data; lets validate check shapes

    @model_validator(mode="after")
    def _classes(self):
        if self.target_kind == "binary" and self.num_classes is not None:
            raise spec_error("num_classes means nothing for binary targets: they are 0/1 values, one output",
                             key="num_classes",
                             hint="remove num_classes")
        return self

    @model_validator(mode="after")
    def _length(self):
        if self.max_length > MAX_LENGTH:
            size = self.max_length * ENCODING_BYTES_PER_TOKEN / 1e9
            raise spec_error(f"max_length={self.max_length:,} tokens: encoding one text takes about {size:,.1f} GB, "
                             f"a data set of them many times that; modelspec refuses more than {MAX_LENGTH:,}",
                             key="max_length",
                             hint="check it for an extra zero: most texts fit in a few hundred tokens")
        return self

    @property
    def tokens(self) -> bool:
        return True

    @property
    def pad_id(self) -> int | None:
        return PAD_ID if self.tokenizer is None else None  # a given tokenizer.json numbers <pad> itself

    @property
    def vocab_size(self) -> int | None:
        """Token ids lie in [0, vocab_size): the kept words and the two special tokens."""
        return None if self.tokenizer is not None else self.max_words + SPECIAL_TOKENS

    def static_shape(self):
        return (self.max_length,), (1 if self.target_kind == "binary" else self.num_classes)

    def check_files(self, seed):
        """A folder of class folders is listed (names only, as image_folder's): the class count is
        known, and one class refused, before anything runs."""
        shape, classes = super().check_files(seed)
        from ...data.text import folder_classes

        found = folder_classes(self)
        if found is None or self.target_kind == "binary":
            return shape, classes
        return shape, len(found)

    def open(self, seed):
        from ...data.text import open_text

        return open_text(self, seed)
