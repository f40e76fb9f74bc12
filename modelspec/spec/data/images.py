"""Image data: torchvision's data sets by name, and folders of images with one folder per class."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Callable, ClassVar, Literal, Optional, Sequence

from pydantic import Field, model_validator

from ...errors import SpecError
from .._forms import spec_error
from ..base import DATA_LOCATION, RESUME_SAFE, PositiveInt
from ..transforms import ImageShape, ToTensor, Transform
from ._base import DataBase, Shape, StoredKeys

# Image shape and class count of the built-in torchvision data sets, before transforms.
KNOWN_DATASETS: dict[str, tuple[tuple[int, int, int], int]] = {
    "fashion_mnist": ((1, 28, 28), 10),
    "mnist": ((1, 28, 28), 10),
    "kmnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
}
# The torchvision.datasets class of each.
TORCHVISION_CLASSES = {"fashion_mnist": "FashionMNIST", "mnist": "MNIST", "kmnist": "KMNIST", "cifar10": "CIFAR10"}


def image_pipeline(preprocessing: dict[str, Any]) -> Callable[[Any], Any]:
    """PIL image -> (C, H, W) float tensor, as the run's evaluation data was prepared: converted to
    the mode the model was trained on (L or RGB), through the deterministic transforms with the
    stored statistics, and resized to the model's input size if the transforms do not fix it."""
    from pydantic import TypeAdapter
    from torchvision.transforms import v2

    from ..transforms import Transform

    transforms = TypeAdapter(list[Transform]).validate_python(preprocessing.get("transforms") or [])
    norm = preprocessing.get("normalize")
    stats = (norm["mean"], norm["std"]) if norm else None
    steps = [t.build(stats) for t in transforms if not t.random]
    channels, *size = preprocessing["input_shape"]
    mode = "L" if channels == 1 else "RGB"
    pipeline = v2.Compose(steps)

    def prepare(image):
        x = pipeline(image.convert(mode))
        if list(x.shape[-2:]) != size:  # the transforms leave the size as the file has it
            x = v2.functional.resize(x, size, antialias=True)
        return x

    return prepare


class ImageData(DataBase):
    root: Annotated[str, DATA_LOCATION] = "data"
    """Where torchvision data sets live, or the image folder's root."""
    transforms: list[Transform] = Field(default_factory=lambda: [ToTensor()])
    """Per-image transforms, in order (random ones augment training only); default: to_tensor."""
    input_shape: Optional[list[PositiveInt]] = None
    """Per-sample shape [C, H, W] after the transforms; inferred where known, checked where given."""
    num_classes: Optional[PositiveInt] = None
    """The number of classes; inferred from the data set where known, checked where given."""

    # Predict reads images through the stored transforms and their normalisation statistics.
    stored_keys: ClassVar[StoredKeys] = {"transforms": list, "normalize": (dict, type(None))}

    @classmethod
    def read_inputs(cls, arguments: Sequence[str], preprocessing: dict[str, Any], **_: Any):
        """Image files, or folders of them (searched recursively); an unreadable file is that
        input's error, the others are still predicted."""
        from ...readers.images import read_image_items

        return read_image_items(arguments, image_pipeline(preprocessing))

    def read_labelled(self, path, preprocessing, class_names):
        """New labelled images: one folder per class, named as in training."""
        from ...readers.images import labelled_images

        return labelled_images(Path(path), class_names or [], image_pipeline(preprocessing))

    def sample_transforms(self):
        return list(self.transforms)

    def cache_root(self) -> str:
        return self.root

    def _image_shape(self) -> tuple[ImageShape, int | None]:
        raise NotImplementedError

    def static_shape(self) -> tuple[Shape, int | None]:
        shape, num_classes = self._image_shape()
        for index, transform in enumerate(self.transforms):
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
        if self.input_shape is not None:
            given = tuple(self.input_shape)
            if known is not None and known != given:
                raise SpecError(
                    f"input_shape={list(given)}, but {self.dataset} after its transforms gives {list(known)}",
                    path=("data", "input_shape"),
                    hint="omit input_shape to infer it",
                )
            known = given
        return known, num_classes


class TorchvisionData(ImageData):
    """A torchvision data set by name (its images and labels, train and test splits)."""

    dataset: Literal["fashion_mnist", "mnist", "kmnist", "cifar10"]
    """The torchvision data set: fashion_mnist, mnist, kmnist or cifar10."""
    download: Annotated[bool, RESUME_SAFE] = False
    """Whether to download the data set into `root` when it is missing (torchvision's default: never
    reach the network unless asked)."""
    target_kind: Literal["classes"] = "classes"
    """The targets are class indices."""

    @property
    def torchvision_class(self) -> str:
        """The name of the data set's class in torchvision.datasets."""
        return TORCHVISION_CLASSES[self.dataset]

    def _image_shape(self):
        shape, known_classes = KNOWN_DATASETS[self.dataset]
        if self.num_classes is not None and self.num_classes != known_classes:
            raise SpecError(
                f"num_classes={self.num_classes}, but {self.dataset} has {known_classes} classes",
                path=("data", "num_classes"),
                hint="omit num_classes to infer it",
            )
        return shape, known_classes

    def open(self, seed):
        from ...readers.images import open_torchvision

        return open_torchvision(self, seed)


class ImageFolderData(ImageData):
    """Class folders under root/train_dir and root/test_dir (torchvision's ImageFolder layout)."""

    dataset: Literal["image_folder"]
    """Folders of images, one folder per class."""
    train_dir: str = "train"
    """The training images' folder under `root`, one folder per class."""
    test_dir: Optional[str] = "test"
    """The test images' folder under `root`, with the same class folders; null (or a missing
    folder): no test split."""
    target_kind: Literal["classes", "binary"] = "classes"
    """classes: one index per class folder (sorted); binary: two folders, the second in sorted
    order is 1 (one 0/1 output)."""

    unknown_shape_note = (
        "image_folder: the image size is known only from the data, so shapes are checked at run time; "
        "give data.input_shape (or a resize / center_crop transform) to check them now"
    )

    @model_validator(mode="after")
    def _binary_has_no_classes(self):
        if self.target_kind == "binary" and self.num_classes is not None:
            raise spec_error("num_classes means nothing for binary targets: they are 0/1 values, one output",
                             key="num_classes", hint="remove num_classes")
        return self

    def _image_shape(self):
        # RGB, size unknown until the transforms fix it; binary targets are one output.
        return (3, None, None), 1 if self.target_kind == "binary" else self.num_classes

    def check_files(self, seed):
        """The class folders, listed as torchvision's ImageFolder lists them (no image is opened):
        the class count is known at validate time, and checked against the spec."""
        folder = Path(self.root) / self.train_dir
        if not folder.is_dir():
            raise SpecError(f"no image folder at {folder}", path=("data", "root"),
                            hint="an image_folder data set has one folder per class under <root>/<train_dir>")
        try:
            classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
        except OSError as exc:
            raise SpecError(f"cannot read the image folder {folder}: {exc.strerror or exc}", path=("data", "root")) from None
        listed = ", ".join(classes[:10])
        if self.target_kind == "binary" and len(classes) != 2:
            raise SpecError(f"binary targets need two class folders; {folder} has {len(classes)}: {listed}",
                            path=("data", "target_kind"), hint="use target_kind: classes for more than two classes")
        if self.num_classes is not None and self.num_classes != len(classes):
            raise SpecError(f"num_classes={self.num_classes}, but {folder} has {len(classes)} class folders: {listed}",
                            path=("data", "num_classes"), hint="omit num_classes to infer it")
        if len(classes) < 2:
            raise SpecError(f"{folder} has {len(classes)} class folder(s){': ' + listed if classes else ''}; "
                            "a classifier needs two classes or more", path=("data", "root"),
                            hint="an image_folder data set has one folder per class under <root>/<train_dir>")
        shape, classes_out = self.static_shape()
        return shape, classes_out if classes_out is not None else len(classes)

    def open(self, seed):
        from ...readers.images import open_image_folder

        return open_image_folder(self, seed)
