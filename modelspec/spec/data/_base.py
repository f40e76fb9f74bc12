"""What every data kind shares: the loader settings, and the questions the rest of modelspec asks.

A kind is one class (`dataset: Literal[...]` tag, its own keys) in one module of this package, found
there by the registry (`DATA_KINDS`). It owns its whole life through these hooks:
- `static_shape()`: per-sample input shape and class count without reading data (None where only
  the data knows); `check_files(seed)`: the same after cheap reads of its files (validate's, never a
  decode), driven by the keys that name files and columns;
- `open(seed)`: its splits for training, read by `modelspec.readers`, imported only when data is read;
- `read_inputs(...)` (a classmethod: `modelspec predict` has no spec, only the stored preprocessing
  and its `dataset` name), `stored_keys` (what predict needs in that preprocessing) and `unscale`
  (predictions back in the data's units);
- `read_labelled(path, ...)`: new labelled data for `modelspec evaluate --data`.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Optional, Sequence

from pydantic import Field, model_validator

from ...errors import Path, SpecError
from ...readers.tables import format_of, separator_of
from .._forms import spec_error
from ..base import RESUME_SAFE, NonNegativeInt, PositiveInt, SpecModel

if TYPE_CHECKING:
    import torch

    from ...readers.sources import Item, Opened

Shape = Optional[tuple[int, ...]]
# What a target is (each kind's `target_kind` field says which of these it can be): class indices (int64), 0/1 values (float32) or real values (float32).
TargetKind = Literal["classes", "binary", "real"]
# The formats of a table file (the `format` key of the kinds that read tables).
TableFormat = Literal["csv", "tsv", "parquet"]
# What predict reads from a stored preprocessing (an export's preprocessing.json), with the JSON type
# each must have: besides the keys of every model, what a kind's `stored_keys` names.
StoredKeys = dict[str, "type | tuple[type, ...]"]


class LoaderSettings(SpecModel):
    """The keys of every kind that only say how batches are fed, not what the data are: a data set
    read once serves every run of a grid that differs only in these."""

    batch_size: PositiveInt = 64
    """Samples per training batch."""
    eval_batch_size: Optional[PositiveInt] = None
    """Samples per validation, test and `modelspec evaluate` batch; default: twice `batch_size`."""
    shuffle: bool = True
    """Whether the training samples are drawn in a new random order every epoch."""
    num_workers: Annotated[NonNegativeInt, RESUME_SAFE] = 0
    """Worker processes of torch's DataLoader, when the DataLoader path runs (0: in the main process)."""
    pin_memory: Annotated[bool, RESUME_SAFE] = False
    """Whether the DataLoader puts batches in page-locked memory (faster copies to a GPU)."""
    drop_last: bool = False
    """Whether the last training batch of an epoch is dropped when it is smaller than `batch_size`."""


# The loader keys, read off their class: what a grid may vary without reading the data again.
LOADER_KEYS = frozenset(LoaderSettings.model_fields)


class DataBase(LoaderSettings):
    val_split: float = Field(0.0, ge=0.0, lt=1.0)
    """The fraction of the training samples held out for validation, drawn with the spec's seed (0: none)."""
    loader: Literal["auto", "device", "dataloader"] = "auto"
    """How batches are fed: `device` keeps the decoded data set on the training device and slices it;
    `dataloader` is torch's DataLoader; `auto` picks `device` when the data fits and the transforms
    are deterministic."""

    def identity(self, *also: str) -> dict[str, Any]:
        """What the data are, as JSON data: every key but the loader settings (and `also`), so that
        runs that differ only in how batches are fed share one read of the data."""
        return self.model_dump(mode="json", exclude=set(LOADER_KEYS) | set(also))

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
    # The file keys whose file is a table with a header row (CSV, TSV, Parquet) that holds the columns
    # `column_keys` name: validate reads that header, and only that.
    table_keys: ClassVar[tuple[str, ...]] = ()

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

    def table_format(self, file: str) -> tuple[str, str]:
        """(format, separator) a table file of this data is read with: the spec's `format`, else the
        file's suffix (.csv, .tsv, .parquet/.pq; else CSV); the spec's `separator`, else by format."""
        fmt = format_of(file, getattr(self, "format", None))
        return fmt, separator_of(fmt, getattr(self, "separator", None))

    def check_files(self, seed: int) -> tuple[Shape, int | None]:
        """What validate learns from cheap reads of the data's files (never a full decode): that they
        exist and name the columns the spec names; then (input_shape, num_classes) as far as those
        reads tell, else as `static_shape` knows them. Problems are SpecErrors at the key."""
        from ...readers.files import check_named_files

        check_named_files(self)
        return self.static_shape()

    def open(self, seed: int) -> "Opened":
        """The train (with validation carved out) and test splits, as `modelspec.readers` reads them."""
        raise NotImplementedError

    # What `modelspec predict` needs in an export's preprocessing.json besides every model's keys:
    # a kind that reads raw inputs reads them through what training fitted on its data (`data`).
    stored_keys: ClassVar[StoredKeys] = {"data": dict}

    @classmethod
    def read_inputs(cls, arguments: Sequence[str], preprocessing: dict[str, Any], **options: Any) -> list["Item"]:
        """Raw inputs (files named on predict's command line) as model inputs, through the stored
        `preprocessing`; `options`: `column` (texts in a table), `last` (series), `folder` (an
        export folder). A kind that does not override it is one predict cannot read for."""
        raise NotImplementedError

    @classmethod
    def unscale(cls, rows: list[dict[str, Any]], items: list["Item"], preprocessing: dict[str, Any]) -> None:
        """Predictions (`rows`, read out by the task) back in the data's own units, in place: by
        default they are in them already."""

    def read_labelled(self, path: FilePath, preprocessing: dict[str, Any],
                      class_names: list[str] | None) -> tuple["torch.Tensor", "torch.Tensor"]:
        """New labelled data in this kind's layout (`modelspec evaluate --data`) as (inputs, targets),
        encoded with what training fitted (`preprocessing`); `class_names`: the model's classes."""
        raise SpecError(f"--data reads image folders, tables, texts and series; this model was trained on "
                        f"{self.dataset} data", hint="evaluate a split of the spec's own data with --split")

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
        """Whether a per-sample transform is random (augmentation: applied afresh every epoch)."""
        return any(t.random for t in self.sample_transforms())

    def cache_root(self) -> str:
        """The data's folder, part of the key of its cached statistics (data/stats.py: they are
        cached in the user's cache folder, never here)."""
        return "data"
