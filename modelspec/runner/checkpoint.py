"""Per-run checkpoints: everything needed to continue a run exactly where it stopped.

Written atomically (modelspec.artifacts.atomic_save) and read with weights_only=True. A checkpoint
taken between epochs has `batch == 0`; one taken on Ctrl-C mid-epoch records how many batches of
the epoch are done, and the epoch's data order is redrawn from the generator state at its start.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..artifacts import atomic_save, safe_load

CHECKPOINT_FILE = "checkpoint.pt"
# The sections of a spec whose change makes a resumed run a different run.
RESUME_SECTIONS = ("seed", "data", "model", "networks", "train", "grid")


def spec_hash(resolved: dict[str, Any]) -> str:
    """Hash of the sections that decide a run's numbers (tracking and export may change)."""
    relevant = {key: resolved.get(key) for key in RESUME_SECTIONS}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()


def changed_sections(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [key for key in RESUME_SECTIONS if json.dumps(old.get(key), sort_keys=True, default=str)
            != json.dumps(new.get(key), sort_keys=True, default=str)]


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    atomic_save(state, run_dir / CHECKPOINT_FILE)


def load_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / CHECKPOINT_FILE
    return safe_load(path, "checkpoint") if path.exists() else None
