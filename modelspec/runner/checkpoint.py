"""Per-run checkpoints: everything needed to continue a run exactly where it stopped.

Written atomically (modelspec.fileio.atomic_save) and read with weights_only=True. A checkpoint
taken between epochs has `batch == 0`; one taken on Ctrl-C mid-epoch records how many batches of
the epoch are done, and the epoch's data order is redrawn from the generator state at its start.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..fileio import CHECKPOINT_FILE, atomic_save, atomic_write_together, restart_hint, safe_load
from ..spec.base import resume_safe_fields
from ..spec.root import Spec
from .state import CHECKPOINT_KEYS

# The sections of a spec whose change makes a resumed run a different run.
RESUME_SECTIONS = ("seed", "data", "model", "networks", "train", "grid")
# The keys marked `ResumeSafe` in the spec's fields: where the data is, how it is read and what is
# logged, not what a run computes. A grid resumed on another machine or from another folder may
# change them (`resume --set`), and the run stays the same run.
_RESUME_SAFE = resume_safe_fields(Spec)
RESUME_SAFE_KEYS: tuple[tuple[str, ...], ...] = tuple(_RESUME_SAFE)
# The data kinds' file and folder keys, anchored at the grid's start directory on resume.
DATA_LOCATIONS = tuple(path[1] for path, marker in _RESUME_SAFE.items() if marker.location and path[0] == "data")


def _without(value: Any, path: tuple[str, ...]) -> Any:
    """`value` (JSON data) without the key at `path`, where it is there."""
    if not isinstance(value, dict) or not path or path[0] not in value:
        return value
    if len(path) == 1:
        return {k: v for k, v in value.items() if k != path[0]}
    return {**value, path[0]: _without(value[path[0]], path[1:])}


def _relevant(spec: dict[str, Any]) -> dict[str, Any]:
    relevant = {key: spec.get(key) for key in RESUME_SECTIONS}
    for path in RESUME_SAFE_KEYS:
        relevant = _without(relevant, path)
    return relevant


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def spec_hash(resolved: dict[str, Any]) -> str:
    """Hash of what decides a run's numbers (tracking, export and where the data lives may change)."""
    return hashlib.sha256(_text(_relevant(resolved)).encode()).hexdigest()


def changed_sections(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The sections whose change makes a resumed grid another grid. A search's space, sampler, pruner
    and seed decide its trials; its `trials` may grow (resume asks the further points)."""
    searches = [_without(spec.get("search"), ("trials",)) for spec in (old, new)]
    old, new = _relevant(old), _relevant(new)
    changed = [key for key in RESUME_SECTIONS if _text(old.get(key)) != _text(new.get(key))]
    return changed + (["search"] if _text(searches[0]) != _text(searches[1]) else [])


def save_checkpoint(run_dir: Path, state: dict[str, Any], durable: bool = True) -> None:
    """Atomically; `durable` also syncs it to the disk (the run's last one, and Ctrl-C's)."""
    atomic_save(state, run_dir / CHECKPOINT_FILE, durable=durable)


def save_checkpoints_together(checkpoints: list[tuple[Path, bytes]], durable: bool = True) -> None:
    """The checkpoints of runs that must resume at one place (a pack's: runner/stacked), each
    serialised (`fileio.torch_bytes`) in its run folder, committed as one through a journal in the
    grid folder above them: a kill leaves the runs at one place, once a resume has run
    `fileio.finish_writes_together` on that folder."""
    if not checkpoints:
        return
    grid_folder = Path(os.path.commonpath([run_dir.parent for run_dir, _ in checkpoints]))
    atomic_write_together([(run_dir / CHECKPOINT_FILE, data) for run_dir, data in checkpoints], grid_folder, durable)


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
