"""Synthetic data: learnable random samples, no files; the same for every run of a spec."""

from __future__ import annotations

import math

import torch

from .sources import Opened, Source, carve


def _split(data, train: bool) -> Source:
    """Targets from a fixed random linear teacher, so that they can be learnt: its scores' argmax is
    the class (`classes`), their signs the 0/1 values (`binary`), or they are the values (`real`)."""
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
    outputs = data.num_targets if data.target_kind == "real" else data.num_classes
    weights = torch.randn(features.shape[1], outputs, generator=teacher_gen)
    scores = features @ weights / math.sqrt(features.shape[1])
    if data.target_kind == "classes":
        targets, names = scores.argmax(1), [str(i) for i in range(data.num_classes)]
    elif data.target_kind == "binary":  # one 0/1 value: (N,); several: (N, L), multi-label
        targets = (scores > 0).float()
        targets, names = (targets[:, 0], ["0", "1"]) if outputs == 1 else (targets, [f"label{i}" for i in range(outputs)])
    else:
        targets, names = scores, [f"y{i}" for i in range(outputs)]
    dataset = torch.utils.data.TensorDataset(x, targets)
    classes = None if data.target_kind == "real" else data.num_classes
    real = data.target_kind == "real"
    return Source(dataset, targets, x, classes, False, None if real else names, names if real else None)


def open_synthetic(data, seed: int) -> Opened:
    train = _split(data, train=True)
    train_idx, val_idx = carve(len(train.targets), data.val_split, seed)
    return Opened(train, _split(data, train=False) if data.test_size else None, train_idx, val_idx)
