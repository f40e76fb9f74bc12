"""Feeds: what the runner iterates each epoch to get (x, y) batches on the training device.

`TensorFeed` is the fast path: the split is decoded once into tensors on the device, a batch is an
index slice, and shuffling is a permutation drawn on the device. `LoaderFeed` is torch's DataLoader
(workers, per-sample random transforms). Both draw an epoch's order with `torch.randperm` from the
same seeded generator state, so on the CPU they give the same batches in the same order.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset


def batch_count(size: int, batch_size: int, drop_last: bool) -> int:
    """Batches in an epoch: a short last batch counts unless it is dropped."""
    return size // batch_size if drop_last else math.ceil(size / batch_size)


class TensorFeed:
    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool,
                 drop_last: bool, generator: torch.Generator | None):
        self.x, self.y = x, y  # (N, ...) and (N,), on the training device
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.generator = generator

    @property
    def size(self) -> int:
        return len(self.y)

    def __len__(self) -> int:
        return batch_count(self.size, self.batch_size, self.drop_last)

    def batches(self, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch; `skip` batches of it already done (a resumed epoch draws the same order)."""
        bs = self.batch_size
        if self.shuffle:
            order = torch.randperm(self.size, generator=self.generator, device=self.x.device)
            for b in range(skip, len(self)):
                index = order[b * bs : (b + 1) * bs]
                yield self.x.index_select(0, index), self.y.index_select(0, index)
        else:
            for b in range(skip, len(self)):
                yield self.x[b * bs : (b + 1) * bs], self.y[b * bs : (b + 1) * bs]


class _EpochOrder(Sampler[int]):
    """The order TensorFeed would draw, for the DataLoader: same generator, same randperm."""

    def __init__(self, size: int, shuffle: bool, generator: torch.Generator | None):
        self.size, self.shuffle, self.generator, self.start = size, shuffle, generator, 0

    def __len__(self) -> int:
        return self.size - self.start

    def __iter__(self):
        order = torch.randperm(self.size, generator=self.generator) if self.shuffle else torch.arange(self.size)
        return iter(order[self.start :].tolist())


class LoaderFeed:
    def __init__(self, dataset: Dataset, indices: torch.Tensor, batch_size: int, shuffle: bool,
                 drop_last: bool, generator: torch.Generator | None, device: torch.device,
                 num_workers: int, pin_memory: bool, worker_seed: int = 0):
        self.size = len(indices)
        self.batch_size, self.drop_last, self.device = batch_size, drop_last, device
        self.sampler = _EpochOrder(self.size, shuffle, generator)
        self.loader = DataLoader(
            Subset(dataset, indices.tolist()),
            batch_size=batch_size,
            sampler=self.sampler,
            drop_last=drop_last,
            num_workers=num_workers,
            pin_memory=pin_memory and device.type == "cuda",
            persistent_workers=num_workers > 0,
            # Its own generator for worker seeds: otherwise each epoch's iterator draws from the
            # global RNG and shifts every dropout mask after it.
            generator=torch.Generator().manual_seed(worker_seed),
        )

    def __len__(self) -> int:
        return batch_count(self.size, self.batch_size, self.drop_last)

    def batches(self, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.sampler.start = skip * self.batch_size
        try:
            for x, y in self.loader:
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        finally:
            self.sampler.start = 0
