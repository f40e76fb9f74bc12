"""Text data: labelled texts, tokenised into a fixed number of word ids with Hugging Face tokenizers.

The tokenizer is fitted on the training texts only (or read from a given tokenizer.json) and saved
with the model as tokenizer.json, which any `tokenizers` client loads.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Sequence

from pydantic import Field, model_validator

from ...readers.tokens import PAD_ID, PAD_TOKEN, SPECIAL_TOKENS, UNK_ID, UNK_TOKEN  # noqa: F401 - named here too
from .._forms import spec_error
from ..base import DATA_LOCATION, PositiveInt
from ._base import DataBase, TableFormat
# Tokens a text, at most: Hugging Face tokenizers holds about 110 bytes a token while it encodes (ids,
# offsets, masks, the token strings) and the ids take 8, so a million tokens is about 0.1 GB a text
# before the model sees it; past that max_length is a typo (an extra zero), like the layer limits.
MAX_LENGTH = 1_000_000
ENCODING_BYTES_PER_TOKEN = 118


class TextData(DataBase):
    """Labelled texts, tokenised into a fixed number of word ids."""

    dataset: Literal["text"]
    """Labelled texts: a table or JSON lines file, or a folder of class folders of .txt files."""
    file_keys = ("path", "test_path", "tokenizer")  # checked at validate time (DataBase.check_files)
    folder_keys = ("path", "test_path")  # a file of texts, or a folder of class folders
    table_keys = ("path", "test_path")  # where a file: a table of texts and labels (or JSON lines)
    column_keys = ("text_column", "label_column")  # in a table's header
    path: Annotated[str, DATA_LOCATION]
    """A .csv, .tsv, .parquet or .jsonl file with a text and a label column, or a folder with one
    folder of .txt files per class (IMDB's train/pos, train/neg)."""
    test_path: Annotated[Optional[str], DATA_LOCATION] = None
    """Test texts in the same form; without it, `test_split` of `path` is held out."""
    test_split: float = Field(0.0, ge=0.0, lt=1.0)
    """The fraction of `path`'s texts held out for testing, drawn with the spec's seed (0: none)."""
    format: Optional[TableFormat] = None
    """How a table of texts is read: csv, tsv or parquet; default: by the file's suffix (.jsonl
    files are JSON lines)."""
    class_folders: Optional[list[str]] = None
    """Folders only: the class folders to read; default: every folder that holds .txt files."""
    text_column: str = "text"
    """Files only: the column holding the texts."""
    label_column: str = "label"
    """Files only: the column holding the labels."""
    target_kind: Literal["classes", "binary"] = "classes"
    """classes: labels numbered in sorted order; binary: two labels, the second in sorted order is 1."""
    max_words: PositiveInt = 10_000
    """The most frequent training words kept in the vocabulary, besides <unk> and <pad>."""
    min_frequency: PositiveInt = 1
    """How often a word must occur in the training texts to be kept."""
    lowercase: bool = True
    """Whether texts are lower-cased before they are split into words."""
    max_length: PositiveInt = 200
    """Tokens per text: longer texts are cut, shorter ones padded."""
    tokenizer: Annotated[Optional[str], DATA_LOCATION] = None
    """A tokenizer.json (Hugging Face tokenizers) to use as it is instead of fitting one."""
    num_classes: Optional[PositiveInt] = None
    """The number of classes: checked against the data, and lets validate check shapes."""

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
        from ...readers.text import folder_classes

        found = folder_classes(self)
        if found is None or self.target_kind == "binary":
            return shape, classes
        return shape, len(found)

    def open(self, seed):
        from ...readers.text import open_text

        return open_text(self, seed)

    @classmethod
    def read_inputs(cls, arguments: Sequence[str], preprocessing: dict[str, Any], column: str | None = None,
                    folder=None, **_: Any):
        """One text per line of a text file, or a column (`--column`, default `text`) of a table or
        JSON lines file, tokenised with the stored tokenizer."""
        from ...readers.raw import read_texts

        return read_texts(arguments, preprocessing, column=column, folder=folder)

    def read_labelled(self, path, preprocessing, class_names):
        """New labelled texts in the spec's layout (a file with its columns, or class folders)."""
        from ...readers.raw import labelled_texts

        return labelled_texts(self, path, preprocessing)
