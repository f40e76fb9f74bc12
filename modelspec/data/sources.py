"""Where samples come from: torchvision data sets by name, image folders, synthetic tensors.

A `Source` is one split before any transform. Where the data set already holds its images as one
uint8 array (the MNIST family, CIFAR-10) or is synthetic, `tensors` has them as (N, C, H, W) and the
fast, decode-once path can use it; `dataset` is the per-sample torchvision data set for the
DataLoader path. Missing data and failed downloads end as one `SpecError` that says where it looked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import SpecError
from ..spec.data import DataSpec

_TORCHVISION = {"fashion_mnist": "FashionMNIST", "mnist": "MNIST", "kmnist": "KMNIST", "cifar10": "CIFAR10"}


@dataclass
class Source:
    """One split: per-sample dataset (PIL images, int labels) and, if cheap, all of it as tensors."""

    dataset: Any  # torch Dataset yielding (image, label) without transforms
    targets: torch.Tensor  # (N,) int64
    tensors: torch.Tensor | None  # (N, C, H, W) uint8 or (N, ...) float/int64 for synthetic
    num_classes: int
    is_image: bool  # uint8 images that `to_tensor` scales to [0, 1]


def _torchvision_split(data: DataSpec, train: bool) -> Source:
    import torchvision

    cls = getattr(torchvision.datasets, _TORCHVISION[data.dataset])
    try:
        dataset = cls(root=data.root, train=train, download=data.download)
    except (RuntimeError, OSError) as exc:  # torchvision: "Dataset not found", "Error downloading", URLError
        folder = Path(data.root) / cls.__name__ / ("raw" if data.dataset != "cifar10" else "")
        if data.download:
            raise SpecError(
                f"downloading {data.dataset} into {data.root} failed: {str(exc).splitlines()[0][:200]}",
                path=("data", "download"),
                hint="check the internet connection, or put the files in place and set data.download: false",
            ) from None
        raise SpecError(
            f"{data.dataset} is not in {folder} ({str(exc).split('.')[0][:200]})",
            path=("data", "root"),
            hint="set data.download: true to fetch it (needs internet), or point data.root at a folder "
            f"holding {cls.__name__}/ in torchvision's layout",
        ) from None
    images = torch.as_tensor(dataset.data)  # MNIST: (N, H, W); CIFAR: (N, H, W, C)
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
    targets = torch.as_tensor(dataset.targets, dtype=torch.long)
    return Source(dataset, targets, images.contiguous(), len(dataset.classes), True)


def _image_folder_split(data: DataSpec, train: bool) -> Source | None:
    from torchvision.datasets import ImageFolder

    sub = data.train_dir if train else data.test_dir
    if sub is None:
        return None
    folder = Path(data.root) / sub
    if not folder.is_dir():
        if not train:
            return None  # a test split is optional
        raise SpecError(
            f"no image folder at {folder}",
            path=("data", "root"),
            hint="an image_folder data set has one folder per class under <root>/<train_dir>",
        )
    try:
        dataset = ImageFolder(str(folder))
    except (FileNotFoundError, RuntimeError) as exc:
        raise SpecError(f"cannot read the image folder {folder}: {exc}", path=("data", "root")) from None
    targets = torch.as_tensor(dataset.targets, dtype=torch.long)
    return Source(dataset, targets, None, len(dataset.classes), True)


def _synthetic_split(data: DataSpec, train: bool) -> Source:
    """Learnable random data: labels are the argmax of a fixed random linear teacher."""
    size = data.size if train else data.test_size
    gen = torch.Generator().manual_seed(data.seed * 2 + (0 if train else 1))
    teacher_gen = torch.Generator().manual_seed(data.seed * 2 + 12345)
    shape = tuple(data.input_shape)
    if data.vocab_size is not None:
        x = torch.randint(0, data.vocab_size, (size, *shape), generator=gen)
        token_vectors = torch.randn(data.vocab_size, 16, generator=teacher_gen)
        features = token_vectors[x].flatten(1)  # every position counts
    else:
        x = torch.randn(size, *shape, generator=gen)
        features = x.flatten(1)
    weights = torch.randn(features.shape[1], data.num_classes, generator=teacher_gen)
    targets = (features @ weights / math.sqrt(features.shape[1])).argmax(1)
    dataset = torch.utils.data.TensorDataset(x, targets)
    return Source(dataset, targets, x, data.num_classes, False)


def open_split(data: DataSpec, train: bool) -> Source | None:
    """The train (or test) split; None where the data set has no such split."""
    if data.dataset == "synthetic":
        return _synthetic_split(data, train)
    if data.dataset == "image_folder":
        return _image_folder_split(data, train)
    return _torchvision_split(data, train)
