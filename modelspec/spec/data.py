"""The data section: which data set, its transforms, splits and loader settings."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from ..errors import SpecError
from ._forms import spec_error
from .base import NonNegativeInt, PositiveInt, Seed, SpecModel
from .transforms import ImageShape, ToTensor, Transform

DatasetName = Literal["fashion_mnist", "mnist", "kmnist", "cifar10", "image_folder", "synthetic"]

# Image shape and class count of the built-in torchvision data sets, before transforms.
KNOWN_DATASETS: dict[str, tuple[tuple[int, int, int], int]] = {
    "fashion_mnist": ((1, 28, 28), 10),
    "mnist": ((1, 28, 28), 10),
    "kmnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
}
# Keys that only mean something for one kind of data set.
_ONLY_FOR = {
    "download": ("fashion_mnist", "mnist", "kmnist", "cifar10"),
    "train_dir": ("image_folder",),
    "test_dir": ("image_folder",),
    "size": ("synthetic",),
    "test_size": ("synthetic",),
    "vocab_size": ("synthetic",),
}


class DataSpec(SpecModel):
    dataset: DatasetName
    root: str = "data"  # where torchvision data sets live, or the image folder's root
    download: bool = False  # torchvision's default: never reach the network unless asked
    transforms: list[Transform] = Field(default_factory=lambda: [ToTensor()])
    batch_size: PositiveInt = 64
    eval_batch_size: Optional[PositiveInt] = None  # validation/test batches; default: batch_size
    shuffle: bool = True
    num_workers: NonNegativeInt = 0  # DataLoader workers, when the DataLoader path runs
    pin_memory: bool = False
    drop_last: bool = False
    val_split: float = Field(0.0, ge=0.0, lt=1.0)  # carved from train with the spec's seed
    # How batches are fed: `device` keeps the decoded data set on the training device and slices it;
    # `dataloader` is torch's DataLoader; `auto` picks `device` when the data fits and the transforms
    # are deterministic.
    loader: Literal["auto", "device", "dataloader"] = "auto"
    input_shape: Optional[list[PositiveInt]] = None  # per sample, after transforms; inferred if known
    num_classes: Optional[PositiveInt] = None  # inferred from the data set if known
    # image_folder: class folders under root/train_dir and root/test_dir (torchvision ImageFolder).
    train_dir: str = "train"
    test_dir: Optional[str] = "test"
    # synthetic: `size` train and `test_size` test samples of shape `input_shape`, labels made by a
    # fixed random teacher so that they can be learnt; integer tokens when `vocab_size` is given.
    size: PositiveInt = 1024
    test_size: PositiveInt = 256
    vocab_size: Optional[PositiveInt] = None
    seed: Seed = 0  # synthetic data only: the same data for every run, whatever the run's seed

    @model_validator(mode="after")
    def _keys_fit_the_dataset(self):
        for key, datasets in _ONLY_FOR.items():
            # A default value is harmless (and is what a resolved spec, dumped in full, holds).
            default = type(self).model_fields[key].default
            if key in self.model_fields_set and getattr(self, key) != default and self.dataset not in datasets:
                raise spec_error(
                    f"'{key}' only applies to dataset {' / '.join(datasets)}, not {self.dataset}",
                    key=key,
                    hint=f"remove '{key}'",
                )
        if self.dataset == "synthetic":
            for key in ("input_shape", "num_classes"):
                if getattr(self, key) is None:
                    raise spec_error(
                        f"a synthetic data set needs '{key}'",
                        hint="e.g. input_shape: [1, 28, 28], num_classes: 10",
                    )
        return self

    @property
    def random_transforms(self) -> bool:
        return any(t.random for t in self.transforms)


def static_shape(data: DataSpec) -> tuple[tuple[int, ...] | None, int | None]:
    """(input_shape, num_classes) as far as they are known without reading data."""
    num_classes = data.num_classes
    if data.dataset == "synthetic":
        return tuple(data.input_shape), num_classes
    shape: ImageShape
    if data.dataset in KNOWN_DATASETS:
        shape, known_classes = KNOWN_DATASETS[data.dataset]
        if num_classes is not None and num_classes != known_classes:
            raise SpecError(
                f"num_classes={num_classes}, but {data.dataset} has {known_classes} classes",
                path=("data", "num_classes"),
                hint="omit num_classes to infer it",
            )
        num_classes = known_classes
    else:  # an image folder: RGB, size unknown until the transforms fix it
        shape = (3, None, None)
    for index, transform in enumerate(data.transforms):
        try:
            shape = transform.output_shape(shape)
        except SpecError as exc:
            raise SpecError(
                [
                    type(issue)(issue.message, ("data", "transforms", index, transform.type, *issue.path), issue.hint)
                    for issue in exc.issues
                ]
            ) from None
    known = tuple(shape) if all(s is not None for s in shape) else None
    if data.input_shape is not None:
        given = tuple(data.input_shape)
        if known is not None and known != given:
            raise SpecError(
                f"input_shape={list(given)}, but {data.dataset} after its transforms gives {list(known)}",
                path=("data", "input_shape"),
                hint="omit input_shape to infer it",
            )
        known = given
    return known, num_classes
