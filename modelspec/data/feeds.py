"""Feeds: what the runner iterates each epoch to get (x, y) batches on the training device.

`TensorFeed` is the fast path: the split is decoded once into tensors on the device, a batch is an
index slice, and shuffling is a permutation drawn on the device. `LoaderFeed` is torch's DataLoader
(workers, per-sample random transforms). Both draw an epoch's order with `torch.randperm` from the
same seeded generator state, so on the CPU they give the same batches in the same order.

Under DDP every process draws that same order and keeps its part of each global batch (`shard`):
the single-process batches, split as evenly as possible, so `batch_size` means the same on 1 or N
processes and every sample of an evaluation split is seen exactly once (no padding).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset


def batch_count(size: int, batch_size: int, drop_last: bool) -> int:
    """Batches in an epoch: a short last batch counts unless it is dropped."""
    return size // batch_size if drop_last else math.ceil(size / batch_size)


@dataclass(frozen=True)
class Shard:
    """This process's part of every global batch: `rank` of `world` processes."""

    rank: int = 0
    world: int = 1

    def part(self, n: int) -> slice:
        """Of n samples, this rank's run of them; the first n % world ranks take one more."""
        base, extra = divmod(n, self.world)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def share(self, n: int) -> float:
        """This rank's part of n samples times the world: 1.0 when n splits evenly. A rank's mean
        loss weighted by it makes DDP's averaged gradient the global batch's mean gradient."""
        part = self.part(n)
        return (part.stop - part.start) * self.world / n


WHOLE = Shard()


class _Sharded:
    """What both feeds share: the global batch sizes, and this rank's share of each."""

    size: int
    batch_size: int
    shard: Shard = WHOLE

    def global_batch(self, b: int) -> int:
        """Samples in global batch `b` (the last may be short)."""
        return min(self.batch_size, self.size - b * self.batch_size)

    def share(self, b: int) -> float:
        return self.shard.share(self.global_batch(b))


class TensorFeed(_Sharded):
    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool,
                 drop_last: bool, generator: torch.Generator | None, augment=None):
        self.x, self.y = x, y  # (N, ...) and (N,), on the training device
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.generator = generator
        self.augment = augment  # random transforms, batched on the device (data/augment.py), or None

    @property
    def size(self) -> int:
        return len(self.y)

    def __len__(self) -> int:
        return batch_count(self.size, self.batch_size, self.drop_last)

    def sharded(self, shard: Shard) -> "TensorFeed":
        """The same feed giving this rank's part of each batch (a part may be empty: skipped)."""
        feed = copy.copy(self)
        feed.shard = shard
        return feed

    def batches(self, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch; `skip` batches of it already done (a resumed epoch draws the same order and
        the same augmentation). Under DDP, this rank's part of each global batch."""
        epoch = self.draw_epoch()
        for b in range(skip, len(self)):
            batch = self.batch_at(b, epoch)
            if batch is not None:
                yield batch

    def draw_epoch(self) -> tuple[torch.Tensor | None, Any]:
        """What an epoch draws from the generator before its first batch: its order (None: in order)
        and its random transforms' parameters (None: none)."""
        order = torch.randperm(self.size, generator=self.generator, device=self.x.device) if self.shuffle else None
        draws = self.augment.draw(self.size, tuple(self.x.shape[1:]), self.generator) if self.augment else None
        return order, draws

    def batch_indices(self, b: int, order: torch.Tensor | None) -> torch.Tensor:
        """The sample indices of batch `b` of an epoch drawn as `order` (its whole batch, unsharded)."""
        bs = self.batch_size
        return order[b * bs : (b + 1) * bs] if order is not None else \
            torch.arange(b * bs, min((b + 1) * bs, self.size), device=self.x.device)

    def batch_at(self, b: int, epoch: tuple[torch.Tensor | None, Any]) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Batch `b` of the epoch `draw_epoch` drew (None: this rank's part of it is empty)."""
        order, draws = epoch
        bs, sharded = self.batch_size, self.shard.world > 1
        if order is None and not sharded and draws is None:  # in order, without a copy
            return self.x[b * bs : (b + 1) * bs], self.y[b * bs : (b + 1) * bs]
        index = self.batch_indices(b, order)
        if sharded:
            index = index[self.shard.part(len(index))]
            if not len(index):
                return None
        x, y = self.x.index_select(0, index), self.y.index_select(0, index)
        return (self.augment(x, draws, index) if draws is not None else x), y


class _EpochOrder(Sampler[int]):
    """The order TensorFeed would draw, for the DataLoader: same generator, same randperm."""

    def __init__(self, size: int, shuffle: bool, generator: torch.Generator | None):
        self.size, self.shuffle, self.generator, self.start = size, shuffle, generator, 0

    def __len__(self) -> int:
        return self.size - self.start

    def __iter__(self):
        order = torch.randperm(self.size, generator=self.generator) if self.shuffle else torch.arange(self.size)
        return iter(order[self.start :].tolist())


class _RankBatches(Sampler[list[int]]):
    """The global batches of an epoch order, each cut to this rank's part."""

    def __init__(self, order: _EpochOrder, batch_size: int, drop_last: bool, shard: Shard):
        self.order, self.batch_size, self.drop_last, self.shard = order, batch_size, drop_last, shard

    def __len__(self) -> int:
        return batch_count(len(self.order), self.batch_size, self.drop_last)

    def __iter__(self):
        order = list(self.order)
        for b in range(len(self)):
            batch = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield batch[self.shard.part(len(batch))]


class LoaderFeed(_Sharded):
    def __init__(self, dataset: Dataset, indices: torch.Tensor, batch_size: int, shuffle: bool,
                 drop_last: bool, generator: torch.Generator | None, device: torch.device,
                 num_workers: int, pin_memory: bool, worker_seed: int = 0):
        self.size = len(indices)
        self.batch_size, self.drop_last, self.device = batch_size, drop_last, device
        self.sampler = _EpochOrder(self.size, shuffle, generator)
        self.subset = Subset(dataset, indices.tolist())
        self.options = dict(
            num_workers=num_workers,
            pin_memory=pin_memory and device.type == "cuda",
            persistent_workers=num_workers > 0,
            # Its own generator for worker seeds: otherwise each epoch's iterator draws from the
            # global RNG and shifts every dropout mask after it.
            generator=torch.Generator().manual_seed(worker_seed),
        )
        self.loader = DataLoader(self.subset, batch_size=batch_size, sampler=self.sampler, drop_last=drop_last,
                                 **self.options)

    def sharded(self, shard: Shard) -> "LoaderFeed":
        """The same feed giving this rank's part of each global batch."""
        feed = copy.copy(self)
        feed.shard = shard
        feed.loader = DataLoader(self.subset, batch_sampler=_RankBatches(self.sampler, self.batch_size,
                                                                         self.drop_last, shard), **self.options)
        return feed

    def __len__(self) -> int:
        return batch_count(self.size, self.batch_size, self.drop_last)

    def batches(self, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.sampler.start = skip * self.batch_size
        try:
            for x, y in self.loader:
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        finally:
            self.sampler.start = 0
