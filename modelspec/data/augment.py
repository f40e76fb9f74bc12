"""Random augmentation on device-resident tensors: batched, each sample its own draw.

`random_horizontal_flip`, `random_crop` (with padding) and `random_rotation` run on whole batches of
the decoded tensors (as airbench augments on the GPU), so augmentation does not push training onto
the per-sample DataLoader path. An epoch's draws are made for every sample at once, right after the
epoch's order, from the run's data generator: a resumed epoch redraws exactly the same ones.

This is exact only where the random transforms commute with the deterministic ones after them, so
the batched path is taken when nothing but `to_tensor` and `normalize` follows the first random
transform; the padding and the corners a rotation leaves are then filled with what a black pixel
becomes after those (`(0 - mean) / std` per channel). Other pipelines keep the DataLoader path.
"""

from __future__ import annotations

from typing import Any

import torch

from ..spec.transforms import Normalize, RandomCrop, RandomHorizontalFlip, RandomRotation, ToTensor

BATCHED = (RandomCrop, RandomHorizontalFlip, RandomRotation)
COMMUTING = (ToTensor, Normalize)  # what may follow a random transform on the batched path


class BatchAugment:
    def __init__(self, transforms: list[Any], fill: torch.Tensor):
        self.transforms, self.fill = transforms, fill  # fill: (C,) on the data's device

    def draw(self, n: int, shape: tuple[int, ...], generator: torch.Generator | None) -> list[dict[str, torch.Tensor]]:
        """Every sample's parameters for one epoch, by position in the split."""
        return [t.draw(n, shape, generator) for t in self.transforms]

    def __call__(self, x: torch.Tensor, draws: list[dict[str, torch.Tensor]], index: torch.Tensor) -> torch.Tensor:
        """A batch (B, C, H, W) of the samples at `index`, augmented."""
        fill = self.fill.to(x.device, x.dtype)
        for transform, params in zip(self.transforms, draws):
            x = transform.apply(x, {k: v[index] for k, v in params.items()}, fill)
        return x


def batch_augment(transforms: list[Any], stats: tuple[list[float], list[float]] | None,
                  channels: int) -> BatchAugment | None:
    """The batched augmentation of a transform list, or None where it cannot be exact."""
    randoms = [t for t in transforms if t.random]
    first = next(i for i, t in enumerate(transforms) if t.random)
    after = [t for t in transforms[first:] if not t.random]
    if not all(isinstance(t, BATCHED) for t in randoms) or not all(isinstance(t, COMMUTING) for t in after):
        return None
    fill = torch.zeros(channels)
    for t in after:
        if isinstance(t, Normalize):
            mean = torch.tensor(stats[0] if t.mean == "auto" else t.mean).expand(channels)
            std = torch.tensor(stats[1] if t.std == "auto" else t.std).expand(channels)
            fill = (fill - mean) / std
    return BatchAugment(randoms, fill)
