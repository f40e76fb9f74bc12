"""From a data spec to feeds: open the splits, carve validation, decode, pick the feeding path.

Evaluation (validation and test) always uses the deterministic transforms only, decoded once into
tensors. Training uses the same tensors when every transform is deterministic and the data fits
(`loader: auto`/`device`); with random transforms it goes through a DataLoader so that each sample is
augmented afresh every epoch. One log line says which path ran.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.utils.data import Dataset

from ..errors import SpecError
from ..spec.data import DataSpec
from ..spec.transforms import Normalize, ToTensor, TransformSpec
from .feeds import LoaderFeed, TensorFeed
from .sources import Source, open_split
from .stats import Stats, cached_stats, channel_stats

CHUNK = 4096  # samples per batched transform call: bounds the temporary memory of a decode


@dataclass
class Split:
    x: torch.Tensor  # decoded with the deterministic transforms, on the device
    y: torch.Tensor


@dataclass
class PreparedData:
    """Everything heavy about a data spec, computed once and shared by the runs of a grid."""

    train: Split | None  # None when training goes through the DataLoader
    train_source: Source
    train_indices: torch.Tensor  # positions of the training samples in the train split
    val: Split | None
    test: Split | None
    stats: Stats | None
    input_shape: tuple[int, ...]
    num_classes: int
    tokens: bool  # integer token inputs
    path: str  # "device" or "dataloader", for the log
    device: torch.device


# --------------------------------------------------------------------------------------------------
# transforms


def _batched(transform: TransformSpec, stats: Stats | None) -> Callable[[torch.Tensor], torch.Tensor]:
    if isinstance(transform, ToTensor):
        from torchvision.transforms import v2

        to_float = v2.ToDtype(torch.float32, scale=True)  # the same op as the per-sample ToTensor
        return lambda x: to_float(x) if x.dtype == torch.uint8 else x.float()
    return transform.build(stats)


def _decode(source: Source, transforms: list[TransformSpec], stats: Stats | None,
            device: torch.device, indices: torch.Tensor | None = None) -> torch.Tensor:
    """Apply deterministic transforms to every sample of a split, in chunks, batched where possible."""
    if source.tensors is not None:
        data = source.tensors if indices is None else source.tensors[indices]
        steps = [_batched(t, stats) for t in transforms if not (isinstance(t, ToTensor) and not source.is_image)]
        out = []
        for start in range(0, len(data), CHUNK):
            chunk = data[start : start + CHUNK].to(device)
            for step in steps:
                chunk = step(chunk)
            out.append(chunk)
        return torch.cat(out) if out else data.to(device)
    # Per-sample (image folders): PIL -> tensor through the torchvision pipeline.
    pipeline = _pipeline(transforms, stats)
    positions = range(len(source.dataset)) if indices is None else indices.tolist()
    samples = [pipeline(source.dataset[i][0]) for i in positions]
    shapes = {tuple(s.shape) for s in samples}
    if len(shapes) > 1:
        raise SpecError(
            f"the images have different sizes after the transforms ({len(shapes)} shapes, e.g. "
            f"{sorted(shapes)[:2]})",
            path=("data", "transforms"),
            hint="add `resize: {size: [H, W]}` or `center_crop: {size: ...}`",
        )
    return torch.stack(samples).to(device)


def _pipeline(transforms: list[TransformSpec], stats: Stats | None):
    from torchvision.transforms import v2

    return v2.Compose([t.build(stats) for t in transforms])


class _Transformed(Dataset):
    """A split with the full (random) train pipeline, per sample, for the DataLoader path."""

    def __init__(self, source: Source, transforms: list[TransformSpec], stats: Stats | None):
        self.source = source
        kept = [t for t in transforms if source.is_image or not isinstance(t, ToTensor)]
        self.pipeline = _pipeline(kept, stats) if kept else None
        self.tensors = source.tensors

    def __len__(self) -> int:
        return len(self.source.targets)

    def __getitem__(self, i: int):
        if self.tensors is not None:  # uint8 (C, H, W) arrays: the same pixels as the PIL image
            x = self.tensors[i]
            if self.source.is_image:
                from torchvision import tv_tensors

                x = tv_tensors.Image(x)
        else:
            x = self.source.dataset[i][0]
        if self.pipeline is not None:
            x = self.pipeline(x)
        return torch.as_tensor(x), self.source.targets[i]


# --------------------------------------------------------------------------------------------------
# preparing


def _fits(shape: tuple[int, ...], samples: int, device: torch.device) -> bool:
    need = samples * math.prod(shape) * 4
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return need < 0.4 * free
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        ram = 8 << 30
    return need < 0.25 * ram


def _split_positions(n: int, val_split: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and validation positions, carved with the spec's seed (same in every run)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * val_split))
    return order[n_val:].sort().values, order[:n_val].sort().values


def prepare_data(data: DataSpec, seed: int, device: torch.device, log: Callable[[str], None] = print) -> PreparedData:
    train_source = open_split(data, train=True)
    test_source = open_split(data, train=False)
    if len(train_source.targets) == 0:
        raise SpecError("the training split is empty", path=("data",))
    train_idx, val_idx = _split_positions(len(train_source.targets), data.val_split, seed)
    deterministic = [t for t in data.transforms if not t.random]

    stats = None
    normalizers = [i for i, t in enumerate(deterministic) if isinstance(t, Normalize) and t.needs_stats]
    if normalizers:
        before = deterministic[: normalizers[0]]
        key = {"dataset": data.dataset, "root": os.path.abspath(data.root), "split": "train",
               "transforms": [t.model_dump(mode="json") for t in before], "size": len(train_source.targets)}
        if data.dataset == "synthetic":
            key.update(seed=data.seed, shape=data.input_shape)

        def compute() -> Stats:
            decoded = _decode(train_source, before, None, torch.device("cpu"))
            return channel_stats(lambda: [decoded[i : i + CHUNK] for i in range(0, len(decoded), CHUNK)])

        stats = cached_stats(data.root, key, compute, log)

    tokens = data.vocab_size is not None
    eval_x = _decode(train_source, deterministic, stats, torch.device("cpu"), train_idx[:1])
    input_shape = tuple(eval_x.shape[1:])
    use_device = data.loader == "device" or (
        data.loader == "auto" and not data.random_transforms and _fits(input_shape, len(train_source.targets), device)
    )
    if data.loader == "device" and data.random_transforms:
        raise SpecError(
            "loader: device keeps decoded tensors, but random transforms must run per sample",
            path=("data", "loader"),
            hint="use loader: auto or dataloader, or remove the random transforms",
        )

    def split(source: Source, idx: torch.Tensor | None) -> Split:
        return Split(_decode(source, deterministic, stats, device, idx).contiguous(),
                     (source.targets if idx is None else source.targets[idx]).to(device))

    train = split(train_source, train_idx) if use_device else None
    val = split(train_source, val_idx) if len(val_idx) else None
    test = split(test_source, None) if test_source is not None and len(test_source.targets) else None
    path = "device" if use_device else "dataloader"
    return PreparedData(train, train_source, train_idx, val, test, stats, input_shape,
                        train_source.num_classes, tokens, path, device)


def make_feeds(prepared: PreparedData, data: DataSpec, generator: torch.Generator | None, seed: int = 0):
    """(train, val, test) feeds for one run: cheap, built from the shared prepared data."""
    eval_bs = data.eval_batch_size or data.batch_size
    if prepared.train is not None:
        train = TensorFeed(prepared.train.x, prepared.train.y, data.batch_size, data.shuffle, data.drop_last, generator)
    else:
        dataset = _Transformed(prepared.train_source, data.transforms, prepared.stats)
        train = LoaderFeed(dataset, prepared.train_indices, data.batch_size, data.shuffle, data.drop_last,
                           generator, prepared.device, data.num_workers, data.pin_memory, seed)
    val = TensorFeed(prepared.val.x, prepared.val.y, eval_bs, False, False, None) if prepared.val else None
    test = TensorFeed(prepared.test.x, prepared.test.y, eval_bs, False, False, None) if prepared.test else None
    return train, val, test


def describe(prepared: PreparedData, data: DataSpec) -> str:
    sizes = [f"train {len(prepared.train_indices)}"]
    if prepared.val:
        sizes.append(f"val {len(prepared.val.y)}")
    if prepared.test:
        sizes.append(f"test {len(prepared.test.y)}")
    how = ("decoded once, kept on " + str(prepared.device) + ", batches are index slices"
           if prepared.path == "device" else
           f"DataLoader with {data.num_workers} worker(s)" + (" (random transforms)" if data.random_transforms else ""))
    return f"data: {data.dataset} ({', '.join(sizes)}; input {'×'.join(map(str, prepared.input_shape))}): {how}"


def sample_inputs(spec: Any, info: Any, n: int) -> torch.Tensor | None:
    """Up to n real evaluation inputs (test split, else validation, else train), or None if absent."""
    try:
        prepared = prepare_data(spec.data, spec.seed, torch.device("cpu"), log=lambda _: None)
    except SpecError:
        return None
    for split in (prepared.test, prepared.val, prepared.train):
        if split is not None and len(split.y):
            return split.x[:n]
    return None
