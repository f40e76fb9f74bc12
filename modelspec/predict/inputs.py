"""Raw inputs to model inputs, exactly as training prepared its data: one reader per kind of data.

Tables, texts and series: see `records`. Images (files, or folders of them): opened with Pillow, converted to the mode the model was trained
on (L or RGB), through the spec's deterministic transforms with the stored statistics, and resized to
the model's input size if the transforms do not fix it. A file that cannot be read is reported with
its name; the others are still predicted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..errors import SpecError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
IMAGE_DATASETS = {"fashion_mnist", "mnist", "kmnist", "cifar10", "image_folder"}


@dataclass
class Item:
    """One input: its name (a file, a row), the model input, or why there is none."""

    name: str
    x: torch.Tensor | None
    error: str | None = None
    extra: dict[str, Any] | None = None  # columns a CSV row brings along, kept in the output


def image_files(arguments: Sequence[str]) -> list[Path]:
    """Files as given, folders expanded to their images (sorted, recursively)."""
    files: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise SpecError(f"{path} holds no image files", hint="suffixes: " + ", ".join(sorted(IMAGE_SUFFIXES)))
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise SpecError(f"no such input: {path}", hint="give image files or folders")
    return files


def image_pipeline(preprocessing: dict[str, Any]) -> Callable[[Any], torch.Tensor]:
    """PIL image -> (C, H, W) float tensor, as the run's evaluation data was prepared."""
    from pydantic import TypeAdapter
    from torchvision.transforms import v2

    from ..spec.transforms import Transform

    transforms = TypeAdapter(list[Transform]).validate_python(preprocessing.get("transforms") or [])
    norm = preprocessing.get("normalize")
    stats = (norm["mean"], norm["std"]) if norm else None
    steps = [t.build(stats) for t in transforms if not t.random]
    channels, *size = preprocessing["input_shape"]
    mode = "L" if channels == 1 else "RGB"
    pipeline = v2.Compose(steps)

    def prepare(image) -> torch.Tensor:
        x = pipeline(image.convert(mode))
        if list(x.shape[-2:]) != size:  # the transforms leave the size as the file has it
            x = v2.functional.resize(x, size, antialias=True)
        return x

    return prepare


def read_images(arguments: Sequence[str], preprocessing: dict[str, Any], **_) -> list[Item]:
    from PIL import Image

    from ..data.images import image_errors, image_problem

    prepare = image_pipeline(preprocessing)
    items = []
    for path in image_files(arguments):
        try:
            with Image.open(path) as image:
                items.append(Item(str(path), prepare(image)))
        except image_errors() as exc:  # that one file's problem (a decompression bomb too); the rest go on
            items.append(Item(str(path), None, f"cannot read the image: {image_problem(exc)}"))
    return items


def _readers() -> dict[str, Callable[..., list[Item]]]:
    """The reader for each kind of data a model can be trained on."""
    from .records import read_rows, read_series, read_texts

    return {**{name: read_images for name in IMAGE_DATASETS},
            "csv": read_rows, "text": read_texts, "time_series": read_series}


def read_inputs(arguments: Sequence[str], preprocessing: dict[str, Any], **options: Any) -> list[Item]:
    """Items for the raw inputs; `options`: `column` (texts in a CSV), `last` (series), `folder` (an
    export folder, where a tokenizer.json lies)."""
    dataset = preprocessing.get("dataset")
    readers = _readers()
    if dataset not in readers:
        raise SpecError(f"modelspec predict does not read raw inputs for {dataset} data",
                        hint="kinds it reads: " + ", ".join(sorted(readers)))
    return readers[dataset](arguments, preprocessing, **options)
