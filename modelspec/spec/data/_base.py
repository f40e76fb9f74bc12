"""What every data kind shares: the loader settings, and the questions the rest of modelspec asks.

A kind is one class (`dataset: Literal[...]` tag, its own keys) that answers, without reading data,
`static_shape()` (per-sample input shape and class count, None where only the data knows), and opens
its splits with `open(seed)`, which lives in `modelspec.data` and is imported only when data is read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal, Optional

from pydantic import Field

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

    # The note validate prints when `static_shape` cannot know the input shape.
    unknown_shape_note: ClassVar[str] = "the input shape is known only from the data, so shapes are checked at run time"

    def static_shape(self) -> tuple[Shape, int | None]:
        """(input_shape, num_classes) as far as they are known without reading data."""
        raise NotImplementedError

    @property
    def target_count(self) -> int | None:
        """Real-valued targets per sample, where known without data (class counts: `static_shape`)."""
        return None

    def open(self, seed: int) -> "Opened":
        """The train (with validation carved out) and test splits, as `modelspec.data` reads them."""
        raise NotImplementedError

    @property
    def tokens(self) -> bool:
        """Whether samples are integer token ids (an embedding must come first)."""
        return False

    def sample_transforms(self) -> list[Any]:
        """The per-sample transforms (images); other kinds arrive as tensors."""
        return []

    @property
    def random_transforms(self) -> bool:
        return any(t.random for t in self.sample_transforms())

    def cache_root(self) -> str:
        """Where cached statistics go (beside the data), unless $MODELSPEC_CACHE says otherwise."""
        return "data"
