"""What an export is traced with and verified on: the input batches and the axes that may vary.

Every exported file takes any batch size; a sequence model (one with an lstm or gru whose network
accepts another sequence length) takes any sequence length too. Verification runs each format at
batch 1 and at the spec's larger batch, and for a sequence model at two lengths, T and T'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..artifacts import ModelInfo
from ..compile import infer_shapes
from ..errors import SpecError
from ..spec.layers import Embedding, LayerSpec
from ..spec.layers.recurrent import GRU, LSTM
from ..spec.root import Spec

INPUT_NAME = "input"
OUTPUT_NAME = "output"
BATCH, SEQUENCE = "batch", "sequence"


@dataclass(frozen=True)
class Axes:
    """The dynamic axes of the input and the output, by index (batch dim included)."""

    input: dict[int, str]
    output: dict[int, str]
    lengths: tuple[int, int] | None  # (T, T') verified for a sequence model, else None


@dataclass(frozen=True)
class Case:
    name: str  # "batch 8", or "batch 8, length 6" for a sequence model
    x: torch.Tensor


def dynamic_axes(layers: list[LayerSpec], info: ModelInfo) -> Axes:
    """The batch axis always; the sequence axis when the network has an RNN and allows another T."""
    shape = tuple(info.input_shape)
    batch_only = Axes({0: BATCH}, {0: BATCH}, None)
    if not shape or not any(isinstance(layer, (LSTM, GRU)) for layer in layers):
        return batch_only
    length = shape[0]
    other = length // 2 if length >= 2 else 2

    def output_shape(sequence_length: int) -> tuple[int, ...]:
        return infer_shapes(layers, (sequence_length, *shape[1:]), info.num_classes,
                            tokens=info.input_dtype == "int64").output_shape

    try:  # e.g. an `output: all` lstm followed by flatten + linear fixes the length
        other_output = output_shape(other)
    except SpecError:
        return batch_only
    varying = [i for i, (a, b) in enumerate(zip(output_shape(length), other_output)) if a != b]
    output = {0: BATCH, **{i + 1: SEQUENCE for i in varying}}
    return Axes({0: BATCH, 1: SEQUENCE}, output, (length, other))


def token_range(spec: Spec) -> int:
    """Token ids are drawn from [0, this): the first embedding's vocabulary."""
    first = spec.layers[0]
    return first.num_embeddings if isinstance(first, Embedding) else spec.data.vocab_size or 2


def padding_id(spec: Spec) -> int | None:
    """The token id the network takes for padding: its first embedding's padding_idx."""
    first = spec.layers[0]
    return first.padding_idx if isinstance(first, Embedding) else None


def random_inputs(spec: Spec, info: ModelInfo, n: int) -> torch.Tensor:
    """A seeded batch of `n` inputs: N(0, 1) floats (as normalised data), or token ids; where the
    network has a padding id, each sequence padded at its end as texts are, from a length of its own
    (the first one's shorter than the whole, so that batch 1 has padding too)."""
    generator = torch.Generator().manual_seed(spec.seed)
    shape = (n, *info.input_shape)
    if info.input_dtype != "int64":
        return torch.randn(shape, generator=generator)
    ids = torch.randint(0, token_range(spec), shape, generator=generator)
    pad = padding_id(spec)
    if pad is None or len(shape) != 2:
        return ids
    steps = shape[1]
    ids[ids == pad] = (pad + 1) % token_range(spec)  # real tokens are no padding
    lengths = torch.randint(1, steps + 1, (n,), generator=generator)
    lengths[0] = max(1, steps // 3)
    return ids.masked_fill(torch.arange(steps) >= lengths.unsqueeze(1), pad)


def _rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """Exactly `n` samples: the first n, or the given ones repeated when there are fewer."""
    reps = math.ceil(n / x.shape[0])
    return x.repeat(reps, *([1] * (x.dim() - 1)))[:n]


def _length(x: torch.Tensor, length: int) -> torch.Tensor:
    """The same samples at sequence length `length` (dim 1): cut, or tiled and cut."""
    reps = math.ceil(length / x.shape[1])
    return x.repeat(1, reps, *([1] * (x.dim() - 2)))[:, :length]


def verify_batch(verify_batch_size: int) -> int:
    # Batch 1 is always checked; the larger batch is at least 2 so that the dynamic batch axis is.
    return max(2, verify_batch_size)


def cases(x: torch.Tensor, batch: int, axes: Axes) -> list[Case]:
    """The batches every format is verified on, cut from `x` (N, *input_shape)."""
    sizes = (1, batch)
    if axes.lengths is None:
        return [Case(f"batch {n}", _rows(x, n)) for n in sizes]
    return [
        Case(f"batch {n}, length {length}", _length(_rows(x, n), length))
        for length in axes.lengths
        for n in sizes
    ]


def example(x: torch.Tensor, axes: Axes) -> torch.Tensor:
    """The batch exporters trace with: two samples (and a length of two or more), so that no
    exporter specialises a dynamic axis to 1."""
    x = _rows(x, 2)
    return x if axes.lengths is None else _length(x, max(axes.lengths))
