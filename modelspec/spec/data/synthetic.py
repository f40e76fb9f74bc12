"""Synthetic data: learnable random samples of a given shape, no files and no download."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from .._forms import spec_error
from ..base import NonNegativeInt, PositiveInt, Seed
from ..transforms import Transform
from ._base import DataBase


class SyntheticData(DataBase):
    """`size` train and `test_size` test samples of shape `input_shape`, labelled by a fixed random
    teacher so that they can be learnt; integer tokens in [0, vocab_size) when `vocab_size` is given.
    `test_size: 0` makes no test split.

    The teacher makes one class of `num_classes` (`target_kind: classes`), `num_classes` 0/1 values
    (`binary`: one is a binary task, several a multi-label one), or `num_targets` real values (`real`)."""

    dataset: Literal["synthetic"]
    """Learnable random samples, made in memory (no files, no download)."""
    input_shape: list[PositiveInt]
    """The shape of one sample, e.g. [1, 28, 28] or, for tokens, [sequence length]."""
    num_classes: Optional[PositiveInt] = None
    """Classes (target_kind classes), or 0/1 outputs (binary); required unless the targets are real."""
    target_kind: Literal["classes", "binary", "real"] = "classes"
    """What the teacher makes: a class index, 0/1 values, or real values."""
    num_targets: PositiveInt = 1
    """Real values per sample (target_kind: real)."""
    size: PositiveInt = 1024
    """Training samples (validation is carved from them)."""
    test_size: NonNegativeInt = 256
    """Test samples; 0: no test split."""
    vocab_size: Optional[PositiveInt] = None
    """Samples of integer token ids in [0, vocab_size) instead of real numbers, where given."""
    seed: Seed = 0
    """The seed of the samples and their teacher: the same data for every run, whatever the run's seed."""
    transforms: list[Transform] = Field(default_factory=list)
    """Per-sample transforms on the float tensors (normalize); default: none."""

    @model_validator(mode="after")
    def _targets(self):
        if self.target_kind != "real" and self.num_classes is None:
            raise spec_error("synthetic data need 'num_classes' (classes, or 0/1 outputs for binary)",
                             hint="e.g. input_shape: [1, 28, 28], num_classes: 10")
        if self.target_kind == "real" and self.num_classes is not None:
            raise spec_error("num_classes means nothing for real targets", key="num_classes",
                             hint="give num_targets: the real values per sample")
        train = self.size - int(round(self.size * self.val_split))  # as data/sources.carve splits
        if train == 0:
            raise spec_error(f"val_split={self.val_split} leaves no training sample of the {self.size}",
                             key="val_split", hint="use a smaller val_split, or more samples (size)")
        if self.drop_last and self.batch_size > train:
            raise spec_error(f"drop_last with batch_size {self.batch_size} > the {train} training samples "
                             "leaves no batch", key="batch_size", hint="use a smaller batch_size, or drop_last: false")
        if self.target_kind != "real" and self.num_targets != 1:  # the default is harmless (resolved specs hold it)
            raise spec_error("num_targets is for target_kind: real", key="num_targets", hint="remove it")
        return self

    @property
    def target_count(self) -> int | None:
        return self.num_targets if self.target_kind == "real" else None

    def static_shape(self):
        return tuple(self.input_shape), self.num_classes

    @property
    def tokens(self) -> bool:
        return self.vocab_size is not None

    def sample_transforms(self):
        return list(self.transforms)

    def open(self, seed):
        from ...readers.synthetic import open_synthetic

        return open_synthetic(self, seed)
