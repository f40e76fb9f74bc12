"""From a data spec to feeds: open the splits, carve validation, decode, pick the feeding path.

Evaluation (validation and test) always uses the deterministic transforms only, decoded once into
tensors. Training uses the same tensors when every transform is deterministic and the data fits
(`loader: auto`/`device`); with random transforms it goes through a DataLoader so that each sample is
augmented afresh every epoch. One log line says which path ran.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch.utils.data import Dataset

from ..errors import SpecError
from ..readers.sources import Source
from ..spec.data import DataBase
from ..spec.transforms import Normalize, ToTensor, TransformSpec, scale_to_unit
from .feeds import LoaderFeed, TensorFeed
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
    num_classes: int | None  # classes; outputs of 0/1 targets; None for real values
    tokens: bool  # integer token inputs
    path: str  # "device" or "dataloader", for the log
    device: torch.device
    class_names: list[str] | None = None  # the class indices' names, from the data
    target_names: list[str] | None = None  # the target columns (tables, series)
    target_kind: str = "classes"  # classes (int64 y), binary or real (float32 y)
    # Everything fitted or chosen from the data, as JSON data: stored with the weights and exported.
    preprocessing: dict[str, Any] | None = None


# --------------------------------------------------------------------------------------------------
# transforms


def _batched(transform: TransformSpec, stats: Stats | None) -> Callable[[torch.Tensor], torch.Tensor]:
    if isinstance(transform, ToTensor):
        return scale_to_unit  # the same op as the per-sample ToTensor, on a whole chunk
    return transform.build(stats)


def _chunks(source: Source, transforms: list[TransformSpec], stats: Stats | None, device: torch.device,
            indices: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    """A split's tensors through deterministic transforms, CHUNK samples at a time."""
    steps = [_batched(t, stats) for t in transforms if not (isinstance(t, ToTensor) and not source.is_image)]
    n = len(source.tensors) if indices is None else len(indices)
    for start in range(0, n, CHUNK):
        rows = slice(start, start + CHUNK) if indices is None else indices[start : start + CHUNK]
        chunk = source.tensors[rows].to(device)
        for step in steps:
            chunk = step(chunk)
        yield chunk


def _decode(source: Source, transforms: list[TransformSpec], stats: Stats | None,
            device: torch.device, indices: torch.Tensor | None = None) -> torch.Tensor:
    """Apply deterministic transforms to every sample of a split, in chunks, batched where possible.

    Chunks are written into one tensor allocated once, so the peak is the decoded split and a chunk,
    not twice the split (chunks, then their concatenation)."""
    if source.tensors is not None:
        n = len(source.tensors) if indices is None else len(indices)
        out = None
        start = 0
        for chunk in _chunks(source, transforms, stats, device, indices):
            if out is None:
                out = torch.empty((n, *chunk.shape[1:]), dtype=chunk.dtype, device=device)
            out[start : start + len(chunk)] = chunk
            start += len(chunk)
        return out if out is not None else source.tensors[:0].to(device)
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


def _auto_stats(data: DataBase, train_source: Source, deterministic: list[TransformSpec],
                log: Callable[[str], None]) -> Stats | None:
    """`normalize: auto`: the training split's channel statistics, computed once and cached."""
    normalizers = [i for i, t in enumerate(deterministic) if isinstance(t, Normalize) and t.needs_stats]
    if not normalizers:
        return None
    before = deterministic[: normalizers[0]]
    what = data.identity("transforms", "val_split", "loader")
    key = {"data": what, "root": os.path.abspath(data.cache_root()), "split": "train",
           "transforms": [t.model_dump(mode="json") for t in before], "size": len(train_source.targets)}

    def compute() -> Stats:
        if train_source.tensors is not None:  # chunk by chunk: the decoded split is never held whole
            return channel_stats(lambda: _chunks(train_source, before, None, torch.device("cpu")))
        decoded = _decode(train_source, before, None, torch.device("cpu"))
        return channel_stats(lambda: [decoded[i : i + CHUNK] for i in range(0, len(decoded), CHUNK)])

    return cached_stats(key, compute, log)


def fit_auto_stats(data: DataBase, seed: int, log: Callable[[str], None] = print) -> None:
    """Compute (or read from the cache) the `normalize: auto` statistics of this data, so that
    `stats.known_stats()` holds them: a Ray grid's driver does it once and hands them to its tasks."""
    deterministic = [t for t in data.sample_transforms() if not t.random]
    if any(isinstance(t, Normalize) and t.needs_stats for t in deterministic):
        _auto_stats(data, data.open(seed).train, deterministic, log)


def _preprocessing(data: DataBase, prepared_fit: dict[str, Any], deterministic: list[TransformSpec],
                   stats: Stats | None, source: Source) -> dict[str, Any]:
    """What a user of the trained model must know of the data, as JSON data."""
    out: dict[str, Any] = {"dataset": data.dataset, "target_kind": data.target_kind,
                           "class_names": source.class_names, "target_names": source.target_names}
    if data.sample_transforms():
        out["transforms"] = [t.model_dump(mode="json") for t in deterministic]
        out["normalize"] = {"mean": stats[0], "std": stats[1]} if stats else None
    return {**out, **prepared_fit}


def prepare_data(data: DataBase, seed: int, device: torch.device, log: Callable[[str], None] = print) -> PreparedData:
    opened = data.open(seed)
    train_source, test_source = opened.train, opened.test
    if len(train_source.targets) == 0:
        raise SpecError("the training split is empty", path=("data",))
    train_idx, val_idx = opened.train_idx, opened.val_idx
    deterministic = [t for t in data.sample_transforms() if not t.random]
    stats = _auto_stats(data, train_source, deterministic, log)
    tokens = data.tokens
    eval_x = _decode(train_source, deterministic, stats, torch.device("cpu"), train_idx[:1])
    input_shape = tuple(eval_x.shape[1:])
    # Random transforms stay on the device path where they can run batched there (data/augment.py).
    batchable = not data.random_transforms or _augment(data, stats, input_shape) is not None
    use_device = data.loader == "device" or (
        data.loader == "auto" and batchable and _fits(input_shape, len(train_source.targets), device)
    )
    if data.loader == "device" and not batchable:
        raise SpecError(
            "loader: device keeps decoded tensors, but these random transforms must run per sample",
            path=("data", "loader"),
            hint="random_horizontal_flip, random_crop and random_rotation run batched when only "
                 "to_tensor and normalize follow them; otherwise use loader: auto or dataloader",
        )

    def split(source: Source, idx: torch.Tensor | None) -> Split:
        return Split(_decode(source, deterministic, stats, device, idx).contiguous(),
                     (source.targets if idx is None else source.targets[idx]).to(device))

    train = split(train_source, train_idx) if use_device else None
    val = split(train_source, val_idx) if len(val_idx) else None
    test = split(test_source, None) if test_source is not None and len(test_source.targets) else None
    path = "device" if use_device else "dataloader"
    preprocessing = _preprocessing(data, opened.preprocessing, deterministic, stats, train_source)
    return PreparedData(train, train_source, train_idx, val, test, stats, input_shape,
                        train_source.num_classes, tokens, path, device, train_source.class_names,
                        train_source.target_names, data.target_kind, preprocessing)


def _augment(data: DataBase, stats, input_shape):
    """The batched random transforms of the training split, or None (none, or not batchable)."""
    if not data.random_transforms or len(input_shape) != 3:
        return None
    from .augment import batch_augment

    return batch_augment(data.sample_transforms(), stats, input_shape[0])


def make_feeds(prepared: PreparedData, data: DataBase, generator: torch.Generator | None, seed: int = 0):
    """(train, val, test) feeds for one run: cheap, built from the shared prepared data."""
    eval_bs = data.evaluation_batch_size
    if prepared.train is not None:
        train = TensorFeed(prepared.train.x, prepared.train.y, data.batch_size, data.shuffle, data.drop_last,
                           generator, augment=_augment(data, prepared.stats, prepared.input_shape))
    else:
        dataset = _Transformed(prepared.train_source, data.sample_transforms(), prepared.stats)
        train = LoaderFeed(dataset, prepared.train_indices, data.batch_size, data.shuffle, data.drop_last,
                           generator, prepared.device, data.num_workers, data.pin_memory, seed)
    val = TensorFeed(prepared.val.x, prepared.val.y, eval_bs, False, False, None) if prepared.val else None
    test = TensorFeed(prepared.test.x, prepared.test.y, eval_bs, False, False, None) if prepared.test else None
    return train, val, test


def describe(prepared: PreparedData, data: DataBase) -> str:
    sizes = [f"train {len(prepared.train_indices)}"]
    if prepared.val:
        sizes.append(f"val {len(prepared.val.y)}")
    if prepared.test:
        sizes.append(f"test {len(prepared.test.y)}")
    how = ("decoded once, kept on " + str(prepared.device) + ", batches are index slices"
           + (", random transforms batched on the device" if data.random_transforms else "")
           + (f" (num_workers={data.num_workers} unused: no DataLoader on this path)" if data.num_workers else "")
           if prepared.path == "device" else
           f"DataLoader with {data.num_workers} worker(s)" + (" (random transforms)" if data.random_transforms else ""))
    return f"data: {data.dataset} ({', '.join(sizes)}; input {'×'.join(map(str, prepared.input_shape))}): {how}"


def sample_inputs(spec: Any, info: Any, n: int) -> torch.Tensor | None:
    """Up to n real evaluation inputs (test split, else validation, else train), or None if absent.

    Remembered for the last data set, so that exporting every run of a grid reads, parses and
    tokenises its files once, not once per run."""
    data = json.dumps(spec.data.identity())
    samples = _samples(data, spec.seed, n)
    return None if samples is None else samples.clone()


@functools.lru_cache(maxsize=1)
def _samples(data_json: str, seed: int, n: int) -> torch.Tensor | None:
    """The first n of the test split (else validation, else training), decoded alone: exporting a
    run does not decode its whole training set to verify on a few samples."""
    from pydantic import TypeAdapter

    from ..spec.data import DataSpec

    data = TypeAdapter(DataSpec).validate_json(data_json)
    try:
        opened = data.open(seed)
        deterministic = [t for t in data.sample_transforms() if not t.random]
        stats = _auto_stats(data, opened.train, deterministic, lambda _: None)
    except SpecError:
        return None
    for source, positions in ((opened.test, None), (opened.train, opened.val_idx), (opened.train, opened.train_idx)):
        if source is None:
            continue
        take = torch.arange(min(n, len(source.targets))) if positions is None else positions[:n]
        if len(take):
            return _decode(source, deterministic, stats, torch.device("cpu"), take).clone()
    return None
