"""Per-run checkpoints: everything needed to continue a run exactly where it stopped.

Written atomically (modelspec.fileio.atomic_save) and read with weights_only=True. A checkpoint
taken between epochs has `batch == 0`; one taken on Ctrl-C mid-epoch records how many batches of
the epoch are done, and the epoch's data order is redrawn from the generator state at its start.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..artifacts import restart_hint, safe_load
from ..fileio import atomic_save
from ..errors import SpecError
from .state import CHECKPOINT_KEYS

CHECKPOINT_FILE = "checkpoint.pt"
# The sections of a spec whose change makes a resumed run a different run.
RESUME_SECTIONS = ("seed", "data", "model", "networks", "train", "grid")
# Keys inside those sections that say where the data is and how it is read, not what a run computes:
# a grid resumed on another machine or from another folder may change them (`resume --set`).
DATA_LOCATIONS = ("root", "path", "test_path", "tokenizer")  # the data kinds' file and folder keys
RESUME_SAFE_KEYS = (*(("data", key) for key in DATA_LOCATIONS), ("data", "download"), ("data", "num_workers"),
                    ("data", "pin_memory"), ("train", "checkpoint_every"))


def _relevant(spec: dict[str, Any]) -> dict[str, Any]:
    relevant = {key: spec.get(key) for key in RESUME_SECTIONS}
    for section, key in RESUME_SAFE_KEYS:
        if isinstance(relevant.get(section), dict):
            relevant[section] = {k: v for k, v in relevant[section].items() if k != key}
    return relevant


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def spec_hash(resolved: dict[str, Any]) -> str:
    """Hash of what decides a run's numbers (tracking, export and where the data lives may change)."""
    return hashlib.sha256(_text(_relevant(resolved)).encode()).hexdigest()


def changed_sections(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    old, new = _relevant(old), _relevant(new)
    return [key for key in RESUME_SECTIONS if _text(old.get(key)) != _text(new.get(key))]


def save_checkpoint(run_dir: Path, state: dict[str, Any], durable: bool = True) -> None:
    """Atomically; `durable` also syncs it to the disk (the run's last one, and Ctrl-C's)."""
    atomic_save(state, run_dir / CHECKPOINT_FILE, durable=durable)


def load_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / CHECKPOINT_FILE
    if not path.exists():
        return None
    checkpoint = safe_load(path, "checkpoint", hint=restart_hint(run_dir))
    if not isinstance(checkpoint, dict):
        raise SpecError(f"{path} holds no modelspec checkpoint (a {type(checkpoint).__name__})",
                        hint=restart_hint(run_dir))
    missing = [key for key in CHECKPOINT_KEYS if key not in checkpoint]
    if missing:
        raise SpecError(f"{path} holds no whole modelspec checkpoint: it lacks {', '.join(missing)}",
                        hint=restart_hint(run_dir))
    return checkpoint
