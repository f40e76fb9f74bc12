"""The grid folder on disk: made whole or not at all, reopened for a resume, read back tolerantly.

runs/<spec name>/<timestamp>/
    spec.yaml, spec.json   the spec as run (overrides applied)
    grid.json              the directory the grid was started from (relative paths resolve against
                           it), and the executor that runs it (Ray's settings) where not this process
    results.csv/json       one row per run and epoch (written by tracking.ResultsTable)
    .lock                  while a process trains the grid (runner/lock.py)
    <NN>_<run name>/       one run: TensorBoard events, checkpoint.pt, weights.pt, run.json

Everything read back here may have been edited, truncated or deleted by hand: an unreadable file is
said and treated as missing, never a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from ..errors import SpecError, SpecIssue
from ..fileio import GRID_FILE, RESULTS_FILE, RUN_FILE, atomic_write_text, shared_mode
from ..load import LoadedSpec, load_spec
from ..spec.paths import get_path, set_path
from ..spec.validate import relocate, validate_data
from .checkpoint import DATA_LOCATIONS, changed_sections

RUN_STATUSES = ("finished", "pruned", "failed", "stopped")


def _cannot_write(where: Path, exc: OSError) -> SpecError:
    reason = exc.strerror or str(exc)
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        reason = "a file, not a folder, is in the way"
    return SpecError(f"cannot create the grid folder under {where}: {reason} ({exc.filename or where})",
                     path=("tracking", "dir"),
                     hint="point tracking.dir at a folder you can write to (--set tracking.dir=PATH)")


@dataclass
class NewGrid:
    """A grid folder made by this process; `discard()` removes it and the parents it had to create."""

    folder: Path
    created: list[Path] = field(default_factory=list)  # parents that did not exist, deepest first

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        for parent in self.created:
            try:
                parent.rmdir()  # only if still empty: another grid may have appeared meanwhile
            except OSError:
                break


def create_grid_folder(loaded: LoadedSpec, prepare: Callable[[Path], None],
                       executor: dict[str, Any] | None = None) -> NewGrid:
    """`<dir>/<name>/<timestamp>/` with its spec files, appearing whole (written aside, then
    renamed), so that a grid killed at any instant is either resumable or was never started.
    `prepare(staging)` runs before the rename (the lock is taken there). `executor` (Ray's settings)
    is kept in grid.json, so that a resume runs the grid the same way."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(loaded.spec.tracking.dir) / loaded.spec.name
    created = [p for p in (base, *base.parents) if not p.exists() and p != Path(".")]
    try:
        base.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{stamp}.", dir=base))
        os.chmod(staging, shared_mode(directory=True))
        atomic_write_text(staging / "spec.yaml", yaml.safe_dump(loaded.raw, sort_keys=False))
        atomic_write_text(staging / "spec.json", json.dumps(loaded.raw, indent=1))
        grid = {"cwd": os.getcwd(), **({"executor": executor} if executor else {})}
        atomic_write_text(staging / GRID_FILE, json.dumps(grid, indent=1))
    except OSError as exc:
        raise relocate(_cannot_write(base, exc), loaded.source) from None
    prepare(staging)
    n = 1
    while True:
        folder = base / (stamp if n == 1 else f"{stamp}-{n}")  # two grids within the same second
        try:
            staging.rename(folder)
            return NewGrid(folder, created)
        except OSError:
            if not folder.exists():
                shutil.rmtree(staging, ignore_errors=True)
                raise
            n += 1


def load_stored_spec(folder: Path, overrides: Sequence[str] = (), log: Callable[[str], None] = print,
                     unset: Sequence[str] = ()) -> LoadedSpec:
    """The spec a grid was started with: spec.yaml, or spec.json where that is damaged (each holds
    all of it). A damaged copy is written again from the good one, and said."""
    loaded, errors = {}, {}
    for name in ("spec.yaml", "spec.json"):
        try:
            loaded[name] = load_spec(folder / name, overrides, unset=unset)
        except SpecError as exc:
            errors[name] = exc
    if not loaded:
        raise SpecError([SpecIssue(f"{folder} holds no readable spec (spec.yaml, spec.json)", file=str(folder),
                                   hint="the grid's stored spec is damaged; start a new grid with `modelspec run SPEC`")]
                        + errors["spec.yaml"].issues)
    good = next(iter(loaded.values()))
    for name, exc in errors.items():
        log(f"{folder / name} is damaged ({str(exc).splitlines()[-1][:120]}); writing it again from the other copy")
        stored = load_spec(folder / next(iter(loaded)))  # without the overrides: the spec as started
        try:
            atomic_write_text(folder / name, json.dumps(stored.raw, indent=1) if name.endswith(".json")
                              else yaml.safe_dump(stored.raw, sort_keys=False))
        except OSError:
            pass  # a read-only folder: the good copy serves
    return good


def stored_spec(folder: Path) -> dict[str, Any]:
    """The stored spec as data, for comparing with a spec given again (`run SPEC --resume`)."""
    return load_stored_spec(folder, log=lambda _: None).raw


def check_unchanged(loaded: LoadedSpec, folder: Path) -> None:
    changed = changed_sections(stored_spec(folder), loaded.raw)
    if changed:
        raise SpecError(
            f"the spec changed since {folder} was started: {', '.join(changed)}",
            hint="resume with the spec as it was, or start a new grid with `modelspec run`",
        )


def _grid_file(folder: Path) -> dict[str, Any]:
    try:
        grid = json.loads((folder / GRID_FILE).read_text(encoding="utf-8"))
        return grid if isinstance(grid, dict) else {}
    except (OSError, ValueError):
        return {}


def stored_executor(folder: Path) -> dict[str, Any] | None:
    """How the grid was started (`{"kind": "ray", ...}`), or None: one run after another here."""
    executor = _grid_file(folder).get("executor")
    return executor if isinstance(executor, dict) else None


def started_from(folder: Path, tracking_dir: str) -> Path:
    """The directory the grid was started from: stored in grid.json, else inferred from the folder
    (it is <start>/<tracking.dir>/<name>/<timestamp>)."""
    cwd = _grid_file(folder).get("cwd")
    if isinstance(cwd, str):
        return Path(cwd)
    if Path(tracking_dir).is_absolute():
        return Path.cwd()
    start = folder.resolve().parent.parent
    for _ in Path(tracking_dir).parts:
        start = start.parent
    return start


def anchor_data_root(loaded: LoadedSpec, start: Path) -> LoadedSpec:
    """The data's relative locations (data.root, data.path, data.test_path, data.tokenizer, and grid
    values of them) resolved against the grid's start directory, so that `modelspec resume` works
    from any directory. They are no part of a run's identity (see checkpoint.RESUME_SAFE_KEYS), so
    the resumed runs stay the same runs."""
    raw = loaded.raw
    fields = type(loaded.spec.data).model_fields

    def anchored(root: Any) -> Any:
        return str(start / root) if isinstance(root, str) and not Path(root).is_absolute() else root

    for key in DATA_LOCATIONS:
        if key not in fields or ("data", key) in loaded.source.overrides:
            continue
        try:
            value = get_path(raw, ("data", key))
        except KeyError:
            value = fields[key].default  # the default (`root: data`) is relative too
        if value is not None:
            raw = set_path(raw, ("data", key), anchored(value))
        grid = raw.get("grid") if isinstance(raw.get("grid"), dict) else {}
        if isinstance(grid.get(f"data.{key}"), list):
            raw = set_path(raw, ("grid", f"data.{key}"), [anchored(v) for v in grid[f"data.{key}"]])
    return LoadedSpec(validate_data(raw, loaded.source), raw, loaded.source, loaded.notes)


def read_run_state(run_dir: Path, log: Callable[[str], None]) -> dict[str, Any] | None:
    """A run's run.json, or None where it is missing or unreadable (said), so that the run goes on
    from its checkpoint."""
    path = run_dir / RUN_FILE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        problem = _state_problem(state)
    except (OSError, ValueError) as exc:
        problem = f"{type(exc).__name__}: {str(exc)[:100]}"
    if problem:
        log(f"{path} is unreadable ({problem}); going on from the run's checkpoint")
        return None
    return state


def _state_problem(state: Any) -> str | None:
    if not isinstance(state, dict):
        return f"a {type(state).__name__}, not a mapping"
    if state.get("status") not in RUN_STATUSES:
        return f"status {state.get('status')!r}"
    rows = state.get("rows")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return "no list of rows"
    return None


def previous_results(folder: Path, log: Callable[[str], None]) -> tuple[dict[str, list], dict[str, dict]]:
    """The rows and run summaries a grid's results.json holds (run name -> ...); a resume starts
    from them, so that it never drops a row it had."""
    path = folder / RESULTS_FILE
    if not path.exists():
        return {}, {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        rows, runs = document["rows"], document["runs"]
        if not isinstance(rows, list) or not isinstance(runs, list):
            raise TypeError("rows and runs must be lists")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log(f"{path} is unreadable ({type(exc).__name__}); rebuilding it from the runs' own files")
        return {}, {}
    by_run: dict[str, list] = {}
    for row in rows:
        if isinstance(row, dict) and isinstance(row.get("run"), str):
            by_run.setdefault(row["run"], []).append(row)
    summaries = {r["run"]: r for r in runs if isinstance(r, dict) and isinstance(r.get("run"), str)}
    return by_run, summaries
