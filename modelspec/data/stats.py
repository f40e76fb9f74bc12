"""`normalize: {mean: auto, std: auto}`: per-channel statistics of the training split, cached.

Computed once over the training images after the transforms that come before `normalize`, and
cached as JSON in the user's cache folder (`cache_folder()`: $MODELSPEC_CACHE when set, else the
platform's convention), so every run of a grid and every later invocation reads them instead of
recomputing. Not beside the data: a data folder may be shared with others or read-only. The key
holds the data folder's absolute path, so one cache serves every data set.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Callable

import torch

from ..fileio import atomic_write_text

Stats = tuple[list[float], list[float]]


def channel_stats(batches: Callable[[], "list[torch.Tensor] | torch.Tensor"]) -> Stats:
    """Mean and std per channel of float images (N, C, ...), accumulated in float64."""
    total = total_sq = None
    count = 0
    for x in batches():
        x = x.double().transpose(0, 1).flatten(1)  # (C, N·H·W)
        total = x.sum(1) if total is None else total + x.sum(1)
        total_sq = (x * x).sum(1) if total_sq is None else total_sq + (x * x).sum(1)
        count += x.shape[1]
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(1e-12).sqrt()
    return mean.tolist(), std.tolist()


# Statistics this process computed or was handed (by a Ray grid's driver: runner/ray_grid.py), by
# key digest: a worker on another node, whose data folder has no cache yet, need not recompute them.
_KNOWN: dict[str, Stats] = {}


def known_stats() -> dict[str, Stats]:
    return dict(_KNOWN)


def remember_stats(stats: dict[str, Stats]) -> None:
    _KNOWN.update(stats)


def cached_stats(key: dict, compute: Callable[[], Stats], log: Callable[[str], None]) -> Stats:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    if digest not in _KNOWN:
        _KNOWN[digest] = _disk_cached(digest, key, compute, log)
    return _KNOWN[digest]


def _disk_cached(digest: str, key: dict, compute: Callable[[], Stats], log: Callable[[str], None]) -> Stats:
    path = cache_folder() / f"stats-{digest}.json"
    if path.is_file():
        try:
            cached = json.loads(path.read_text())
            return cached["mean"], cached["std"]
        except (ValueError, KeyError, OSError):
            log(f"ignoring an unreadable statistics cache {path}; recomputing")
    mean, std = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # atomically: the runs of a Ray or torchrun grid may compute and write the same file at once
        atomic_write_text(path, json.dumps({"key": key, "mean": mean, "std": std}, indent=1), sync_folder=False)
        log(f"normalize: auto statistics mean={_fmt(mean)} std={_fmt(std)} (cached in {path})")
    except OSError as exc:
        log(f"normalize: auto statistics mean={_fmt(mean)} std={_fmt(std)} (not cached: {exc})")
    return mean, std


def cache_folder() -> Path:
    """$MODELSPEC_CACHE, else the user's cache folder as the platform names it: $XDG_CACHE_HOME or
    ~/.cache on Linux, ~/Library/Caches on macOS, %LOCALAPPDATA% on Windows."""
    if os.environ.get("MODELSPEC_CACHE"):
        return Path(os.environ["MODELSPEC_CACHE"]).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local"
    elif sys.platform == "darwin":
        base = home / "Library" / "Caches"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or home / ".cache"
    return Path(base) / "modelspec"


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in values) + "]"
