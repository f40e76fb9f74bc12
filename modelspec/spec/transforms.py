"""Transforms: names mapping to torchvision.transforms.v2, each one small class like a layer kind.

`output_shape` follows the image shape statically ((C, H, W), with None for a size only the data
knows), so that validate and summary need no data. `random` transforms differ per sample and epoch,
which decides how the data can be fed (see modelspec.data.loaders).
"""

from __future__ import annotations

import math

from typing import Annotated, ClassVar, Literal, Optional, Sequence

from pydantic import Field, model_validator

from ..errors import SpecError
from .base import NonNegativeInt, PositiveInt, Probability, SpecModel
from ._forms import tagged_union
from ._torch import torch

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


def scale_to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 in [0, 1] exactly as torchvision's ToTensor: a division by 255.

    (v2.ToDtype(scale=True) multiplies by 1/255 instead, which differs in the last bit for about a
    quarter of the pixel values; a spec must reproduce a hand-written ToTensor loop exactly.)
    """
    return x.to(torch.float32).div(255) if x.dtype == torch.uint8 else x.float()


class ToTensor(TransformSpec):
    """PIL image or uint8 array -> float tensor in [0, 1], bit for bit as torchvision's ToTensor."""

    type: Literal["to_tensor"] = "to_tensor"

    def build(self, stats=None):
        v2 = _v2()
        return v2.Compose([v2.ToImage(), v2.Lambda(_image_to_unit)])


def _image_to_unit(x: torch.Tensor) -> torch.Tensor:  # module level: DataLoader workers pickle it
    return scale_to_unit(x.as_subclass(torch.Tensor))


class Normalize(TransformSpec):
    """Normalises each channel, (x - mean) / std, torchvision's `Normalize`; `auto` takes the training split's
    statistics."""

    type: Literal["normalize"] = "normalize"
    mean: Literal["auto"] | list[float] = "auto"
    """The per-channel means, or `auto` (the default): the training split's, computed once and cached."""
    std: Literal["auto"] | list[float] = "auto"
    """The per-channel standard deviations, or `auto` (the default): the training split's, computed once and
    cached."""

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
    """Resizes the image, torchvision's `Resize`."""

    type: Literal["resize"] = "resize"
    size: Size
    """One number resizes the smaller edge to it, keeping the aspect ratio; [h, w] sets both."""
    antialias: bool = True
    """Whether to antialias when downscaling (default true)."""

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
    """Crops the centre of the image, torchvision's `CenterCrop`."""

    type: Literal["center_crop"] = "center_crop"
    size: Size
    """The crop's size: one number for a square, or [h, w]."""

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
    """Crops a random window of the image (training only), torchvision's `RandomCrop`, after optional padding."""

    type: Literal["random_crop"] = "random_crop"
    random: ClassVar[bool] = True
    size: Size
    """The crop's size: one number for a square, or [h, w]."""
    padding: NonNegativeInt | Annotated[list[NonNegativeInt], Field(min_length=1, max_length=4)] | None = None
    """Padding added before cropping, in torchvision's forms: one number for all sides, [left/right,
    top/bottom], or [left, top, right, bottom]; omitted, none."""

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

    # ---- batched, on device-resident tensors: each sample its own offsets
    def draw(self, n: int, shape: tuple[int, ...], generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        h, w = _size(self.size)
        left, top, right, bottom = _sides(self.padding)
        device = generator.device if generator is not None else "cpu"
        high_y, high_x = shape[-2] + top + bottom - h + 1, shape[-1] + left + right - w + 1
        return {"top": torch.randint(0, high_y, (n,), generator=generator, device=device),
                "left": torch.randint(0, high_x, (n,), generator=generator, device=device)}

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor], fill: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W): pad with `fill` (per channel), then each sample's own window."""
        h, w = _size(self.size)
        left, top, right, bottom = _sides(self.padding)
        if left or top or right or bottom:
            padded = fill.view(1, -1, 1, 1).expand(len(x), -1, x.shape[2] + top + bottom, x.shape[3] + left + right).clone()
            padded[:, :, top : top + x.shape[2], left : left + x.shape[3]] = x
            x = padded
        rows = params["top"][:, None] + torch.arange(h, device=x.device)  # (B, h)
        cols = params["left"][:, None] + torch.arange(w, device=x.device)  # (B, w)
        batch = torch.arange(len(x), device=x.device)[:, None, None]
        return x.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


class RandomHorizontalFlip(TransformSpec):
    """Flips the image left to right with probability p (training only), torchvision's `RandomHorizontalFlip`."""

    type: Literal["random_horizontal_flip"] = "random_horizontal_flip"
    random: ClassVar[bool] = True
    p: Probability = 0.5
    """The probability of a flip, 0 to 1 (default 0.5)."""

    def build(self, stats=None):
        return _v2().RandomHorizontalFlip(self.p)

    def draw(self, n: int, shape: tuple[int, ...], generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        device = generator.device if generator is not None else "cpu"
        return {"flip": torch.rand(n, generator=generator, device=device) < self.p}

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor], fill: torch.Tensor) -> torch.Tensor:
        return torch.where(params["flip"][:, None, None, None], x.flip(-1), x)


class RandomRotation(TransformSpec):
    """Rotates the image by a random angle about its centre (training only), torchvision's `RandomRotation`."""

    type: Literal["random_rotation"] = "random_rotation"
    random: ClassVar[bool] = True
    degrees: float | list[float]
    """The largest angle in degrees (a rotation between -degrees and degrees), or [min, max]."""

    def build(self, stats=None):
        return _v2().RandomRotation(self.degrees)

    def draw(self, n: int, shape: tuple[int, ...], generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        low, high = (-self.degrees, self.degrees) if isinstance(self.degrees, (int, float)) else self.degrees
        device = generator.device if generator is not None else "cpu"
        return {"angle": low + (high - low) * torch.rand(n, generator=generator, device=device)}

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor], fill: torch.Tensor) -> torch.Tensor:
        """About the centre, nearest pixel, `fill` where the rotated image does not reach (as
        torchvision's default RandomRotation), one angle per sample."""
        import torch.nn.functional as F

        theta = params["angle"].to(x.dtype) * (math.pi / 180)
        cos, sin = theta.cos(), theta.sin()
        zero = torch.zeros_like(cos)
        # Output pixel -> input pixel in normalised coordinates (y down): a counter-clockwise turn.
        matrix = torch.stack([torch.stack([cos, -sin * x.shape[2] / x.shape[3], zero], 1),
                              torch.stack([sin * x.shape[3] / x.shape[2], cos, zero], 1)], 1)
        grid = F.affine_grid(matrix, list(x.shape), align_corners=False)
        shifted = x - fill.view(1, -1, 1, 1)  # zeros outside become `fill` after shifting back
        return F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False) + fill.view(1, -1, 1, 1)


class Grayscale(TransformSpec):
    """Converts the image to grayscale, torchvision's `Grayscale`."""

    type: Literal["grayscale"] = "grayscale"
    num_output_channels: Literal[1, 3] = 1
    """1 (default) or 3 (the gray value repeated, for networks that expect RGB)."""

    def output_shape(self, shape):
        return (self.num_output_channels, *shape[1:])

    def build(self, stats=None):
        return _v2().Grayscale(self.num_output_channels)


TRANSFORM_KINDS: tuple[type[TransformSpec], ...] = (
    ToTensor, Normalize, Resize, CenterCrop, RandomCrop, RandomHorizontalFlip, RandomRotation, Grayscale,
)
TRANSFORM_TYPES = {cls.model_fields["type"].default: cls for cls in TRANSFORM_KINDS}

Transform = tagged_union(TRANSFORM_KINDS, "transform")
