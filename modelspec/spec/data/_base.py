"""What every data kind shares: the loader settings, and the questions the rest of modelspec asks.

A kind is one class (`dataset: Literal[...]` tag, its own keys) that answers, without reading data,
`static_shape()` (per-sample input shape and class count, None where only the data knows); with
cheap reads of its files (validate's, never a decode), `check_files(seed)`, driven by the keys that
name files and columns; and opens its splits with `open(seed)`, which lives in `modelspec.data` and
is imported only when data is read.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Optional

from pydantic import Field, model_validator

from ...errors import Path
from .._forms import spec_error
from ..base import NonNegativeInt, PositiveInt, SpecModel

if TYPE_CHECKING:
    from ...data.sources import Opened

Shape = Optional[tuple[int, ...]]
# What a target is (each kind's `target_kind` field says which of these it can be): class indices (int64), 0/1 values (float32) or real values (float32).
TargetKind = Literal["classes", "binary", "real"]
# The keys of every kind that only say how batches are fed, not what the data are.
LOADER_KEYS = frozenset({"batch_size", "eval_batch_size", "shuffle", "num_workers", "pin_memory", "drop_last"})


class DataBase(SpecModel):
    batch_size: PositiveInt = 64
    eval_batch_size: Optional[PositiveInt] = None  # validation/test batches; default: twice batch_size
    shuffle: bool = True
    num_workers: NonNegativeInt = 0  # DataLoader workers, when the DataLoader path runs
    pin_memory: bool = False
    drop_last: bool = False
    val_split: float = Field(0.0, ge=0.0, lt=1.0)  # carved from train with the spec's seed
    # How batches are fed: `device` keeps the decoded data set on the training device and slices it;
    # `dataloader` is torch's DataLoader; `auto` picks `device` when the data fits and the transforms
    # are deterministic.
    loader: Literal["auto", "device", "dataloader"] = "auto"

    @property
    def evaluation_batch_size(self) -> int:
        """Validation, test and `modelspec evaluate` batches: by default twice the training batch, as
        PyTorch's own tutorial has it ("What is torch.nn really?"): without gradients a batch takes
        less memory, and fewer batches cost less time."""
        return self.eval_batch_size or 2 * self.batch_size

    # The keys that name the data's files (checked to exist at validate time), and the keys that name
    # columns of their header (checked to be there): one place that knows them, for every kind.
    file_keys: ClassVar[tuple[str, ...]] = ()
    column_keys: ClassVar[tuple[str, ...]] = ()
    # The keys that name a folder (a key in both takes either): a file where a folder is expected, or
    # the reverse, is refused at the key.
    folder_keys: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _more_than_one_class(self):
        """One class is nothing to learn (every answer is right), and the class metrics have no
        second class to count: refused here, for every kind that takes `num_classes`."""
        if getattr(self, "num_classes", None) == 1 and self.target_kind == "classes":
            raise spec_error("num_classes: 1 is no classification: there is nothing to tell apart",
                             key="num_classes", hint="give two classes or more; a yes/no target is "
                             "target_kind: binary (one 0/1 output)")
        return self

    # The note validate prints when `static_shape` cannot know the input shape.
    unknown_shape_note: ClassVar[str] = "the input shape is known only from the data, so shapes are checked at run time"

    def static_shape(self) -> tuple[Shape, int | None]:
        """(input_shape, num_classes) as far as they are known without reading data."""
        raise NotImplementedError

    @property
    def target_count(self) -> int | None:
        """Real-valued targets per sample, where known without data (class counts: `static_shape`)."""
        return None

    def named_columns(self) -> dict[Path, list[str]]:
        """Spec path -> the column names it gives (a mapping's keys each at their own path)."""
        named: dict[Path, list[str]] = {}
        for key in self.column_keys:
            value = getattr(self, key)
            if isinstance(value, str):
                named[("data", key)] = [value]
            elif isinstance(value, dict):
                named.update({("data", key, name): [name] for name in value})
            elif value is not None:
                named[("data", key)] = list(value)
        return named

    def table_separator(self, file: str) -> str | None:
        """The separator of a data file whose header row holds the named columns, or None where it
        has no header row to check (a folder, JSON lines)."""
        suffix = FilePath(file).suffix.lower()
        if not FilePath(file).is_file() or suffix == ".jsonl":
            return None
        return getattr(self, "separator", None) or ("\t" if suffix == ".tsv" else ",")

    def check_files(self, seed: int) -> tuple[Shape, int | None]:
        """What validate learns from cheap reads of the data's files (never a full decode): that they
        exist and name the columns the spec names; then (input_shape, num_classes) as far as those
        reads tell, else as `static_shape` knows them. Problems are SpecErrors at the key."""
        from ...data.files import check_named_files

        check_named_files(self)
        return self.static_shape()

    def open(self, seed: int) -> "Opened":
        """The train (with validation carved out) and test splits, as `modelspec.data` reads them."""
        raise NotImplementedError

    @property
    def tokens(self) -> bool:
        """Whether samples are integer token ids (an embedding must come first)."""
        return False

    @property
    def pad_id(self) -> int | None:
        """The token id that pads samples at their end (texts), or None: no padding."""
        return None

    def sample_transforms(self) -> list[Any]:
        """The per-sample transforms (images); other kinds arrive as tensors."""
        return []

    @property
    def random_transforms(self) -> bool:
        return any(t.random for t in self.sample_transforms())

    def cache_root(self) -> str:
        """The data's folder, part of the key of its cached statistics (data/stats.py: they are
        cached in the user's cache folder, never here)."""
        return "data"
