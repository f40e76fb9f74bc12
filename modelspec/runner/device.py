"""Devices, seeds and random states: small pure helpers the runner calls."""

from __future__ import annotations

import random

import numpy as np
import torch

from ..errors import SpecError


def resolve_device(name: str) -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an explicit device that is not there is a SpecError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SpecError(
                f"device '{name}' is asked for, but this machine has no CUDA GPU",
                path=("train", "device"),
                hint="use device: auto (cuda, then mps, then cpu) or device: cpu",
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SpecError(
                f"device '{name}' is asked for, but there are {torch.cuda.device_count()} GPU(s)",
                path=("train", "device"),
                hint="GPUs count from cuda:0",
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SpecError(
            "device 'mps' is asked for, but Apple's MPS is not available here",
            path=("train", "device"),
            hint="use device: auto or cpu",
        )
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_states(data_generator: torch.Generator | None) -> dict:
    """Every random state a run draws from, as plain data `torch.load(weights_only=True)` accepts
    (what a checkpoint holds). Python's and NumPy's 624-word states are kept as tensors: pickled as
    ints, they made a tiny model's checkpoint several times slower to write."""
    version, internal, python_gauss = random.getstate()
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states = {
        "python": [version, torch.tensor(internal, dtype=torch.int64), python_gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
        "data": data_generator.get_state() if data_generator is not None else None,
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _ints(values) -> list[int]:
    return values.tolist() if isinstance(values, torch.Tensor) else list(values)


def set_rng_states(states: dict, data_generator: torch.Generator | None) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(_ints(internal)), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.array(_ints(keys), dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if data_generator is not None and states.get("data") is not None:
        data_generator.set_state(states["data"])
    if states.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    """The data-order generator: lives where the data does, so shuffling stays on the device."""
    return torch.Generator(device=device).manual_seed(seed)
