"""Transforms: names mapping to torchvision.transforms.v2, each one small class like a layer kind.

`output_shape` follows the image shape statically ((C, H, W), with None for a size only the data
knows), so that validate and summary need no data. `random` transforms differ per sample and epoch,
which decides how the data can be fed (see modelspec.data.loaders).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Optional, Sequence, Union

import torch
from pydantic import BeforeValidator, Field, model_validator

from ..errors import SpecError
from .base import NonNegativeInt, PositiveInt, Probability, SpecModel
from ._forms import input_forms, tagged

ImageShape = tuple[Optional[int], ...]  # (C, H, W); None where only the data knows


def _v2():
    """torchvision costs a second to import; validate and summary never build transforms."""
    from torchvision.transforms import v2

    return v2


class TransformSpec(SpecModel):
    type: str
    random: ClassVar[bool] = False

    def output_shape(self, shape: ImageShape) -> ImageShape:
        return shape

    def build(self, stats: tuple[list[float], list[float]] | None = None) :
        raise NotImplementedError


# An image size: one number (a square, or for resize the smaller edge), or [h, w]. torchvision
# reads a list of one like the number, and refuses longer lists.
Size = PositiveInt | Annotated[list[PositiveInt], Field(min_length=1, max_length=2)]


def _size(size: int | Sequence[int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (size[0], size[-1])


class ToTensor(TransformSpec):
    """PIL image or uint8 array -> float tensor in [0, 1], as the old ToTensor did."""

    type: Literal["to_tensor"] = "to_tensor"

    def build(self, stats=None):
        v2 = _v2()
        return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])


class Normalize(TransformSpec):
    type: Literal["normalize"] = "normalize"
    # Per-channel numbers, or `auto`: the training split's statistics, computed once and cached.
    mean: Literal["auto"] | list[float] = "auto"
    std: Literal["auto"] | list[float] = "auto"

    @model_validator(mode="after")
    def _std_positive(self):
        if isinstance(self.std, list) and any(s <= 0 for s in self.std):
            raise ValueError("std must be positive")
        return self

    @property
    def needs_stats(self) -> bool:
        return self.mean == "auto" or self.std == "auto"

    def output_shape(self, shape):
        for name in ("mean", "std"):
            value = getattr(self, name)
            if isinstance(value, list) and shape[0] is not None and len(value) not in (1, shape[0]):
                raise SpecError(
                    f"{name} has {len(value)} values but the images have {shape[0]} channels",
                    path=(name,),
                    hint="give one value per channel, or `auto`",
                )
        return shape

    def build(self, stats=None):
        mean = stats[0] if self.mean == "auto" else self.mean
        std = stats[1] if self.std == "auto" else self.std
        return _v2().Normalize(mean, std)


class Resize(TransformSpec):
    type: Literal["resize"] = "resize"
    size: Size  # a number resizes the smaller edge, [h, w] both
    antialias: bool = True

    def output_shape(self, shape):
        if isinstance(self.size, list) and len(self.size) == 2:
            return (shape[0], *self.size)
        edge = self.size if isinstance(self.size, int) else self.size[0]
        if shape[1] is not None and shape[2] is not None:  # the smaller edge becomes `edge`
            h, w = shape[1], shape[2]
            longer = int(edge * max(h, w) / min(h, w))  # as torchvision computes it
            return (shape[0], edge, longer) if h <= w else (shape[0], longer, edge)
        return (shape[0], None, None)

    def build(self, stats=None):
        return _v2().Resize(self.size, antialias=self.antialias)


class CenterCrop(TransformSpec):
    type: Literal["center_crop"] = "center_crop"
    size: Size

    def output_shape(self, shape):
        return (shape[0], *_size(self.size))

    def build(self, stats=None):
        return _v2().CenterCrop(self.size)


def _sides(padding: int | list[int] | None) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) from torchvision's padding forms."""
    if padding is None or isinstance(padding, int):
        return (padding or 0,) * 4
    if len(padding) == 1:
        return (padding[0],) * 4
    if len(padding) == 2:
        return (padding[0], padding[1], padding[0], padding[1])
    return tuple(padding)


class RandomCrop(TransformSpec):
    type: Literal["random_crop"] = "random_crop"
    random: ClassVar[bool] = True
    size: Size
    # torchvision's forms: all sides, [left/right, top/bottom], or [left, top, right, bottom].
    padding: NonNegativeInt | Annotated[list[NonNegativeInt], Field(min_length=1, max_length=4)] | None = None

    @model_validator(mode="after")
    def _padding_form(self):
        if isinstance(self.padding, list) and len(self.padding) == 3:
            raise ValueError("padding takes 1, 2 or 4 numbers: all sides, [left/right, top/bottom] or [l, t, r, b]")
        return self

    def output_shape(self, shape):
        h, w = _size(self.size)
        left, top, right, bottom = _sides(self.padding)
        if shape[1] is not None and shape[2] is not None:
            padded = (shape[1] + top + bottom, shape[2] + left + right)
            if h > padded[0] or w > padded[1]:
                raise SpecError(
                    f"crop size {h}×{w} is larger than the image, {padded[0]}×{padded[1]} after padding",
                    path=("size",),
                    hint="crop smaller, or add padding",
                )
        return (shape[0], h, w)

    def build(self, stats=None):
        return _v2().RandomCrop(self.size, padding=self.padding)


class RandomHorizontalFlip(TransformSpec):
    type: Literal["random_horizontal_flip"] = "random_horizontal_flip"
    random: ClassVar[bool] = True
    p: Probability = 0.5

    def build(self, stats=None):
        return _v2().RandomHorizontalFlip(self.p)


class RandomRotation(TransformSpec):
    type: Literal["random_rotation"] = "random_rotation"
    random: ClassVar[bool] = True
    degrees: float | list[float] = Field(..., description="max angle, or [min, max]")

    def build(self, stats=None):
        return _v2().RandomRotation(self.degrees)


class Grayscale(TransformSpec):
    type: Literal["grayscale"] = "grayscale"
    num_output_channels: Literal[1, 3] = 1

    def output_shape(self, shape):
        return (self.num_output_channels, *shape[1:])

    def build(self, stats=None):
        return _v2().Grayscale(self.num_output_channels)


TRANSFORM_KINDS: tuple[type[TransformSpec], ...] = (
    ToTensor, Normalize, Resize, CenterCrop, RandomCrop, RandomHorizontalFlip, RandomRotation, Grayscale,
)
TRANSFORM_TYPES = {cls.model_fields["type"].default: cls for cls in TRANSFORM_KINDS}

Transform = Annotated[
    Annotated[Union[TRANSFORM_KINDS], Field(discriminator="type")],  # type: ignore[valid-type]
    BeforeValidator(
        lambda v: v if isinstance(v, TransformSpec) else tagged(v, "type", TRANSFORM_TYPES, "transform"),
        json_schema_input_type=input_forms(TRANSFORM_KINDS, "type"),
    ),
]
