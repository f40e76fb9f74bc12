"""Grid folders read back for a look at them, without torch: `modelspec runs` and `modelspec compare`.

Everything here is plain JSON (results.json, run.json, spec.json, .lock), so both commands start in a
fraction of a second; the runner's own readers sit in packages that import torch. A file that was
damaged or is still being written is treated as missing and said in `GridOverview.notes`, never a
traceback. The file names are the runner's (runner/folder.py, runner/lock.py, runner/checkpoint.py).
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..fileio import CHECKPOINT_FILE, GRID_FILE, LOCK_FILE, RESULTS_FILE, RUN_FILE

SPEC_FILE = "spec.json"
RUN_FOLDER = re.compile(r"^\d+_")  # <NN>_<run name>, runner/grid.py's run_folder_name
STAMP = "%Y%m%d-%H%M%S"  # a grid folder's name: when it was started (runner/folder.py)

# The statuses a run's summary may have (pruned: a search's trial stopped early), in the order a
# table shows them; any other status found is counted after them.
STATUSES = ("finished", "failed", "pruned", "stopped", "running")
NOT_STARTED = "not started"


@dataclass
class RunEntry:
    name: str
    dir: str  # the run's folder, in the grid folder
    status: str
    summary: dict[str, Any] = field(default_factory=dict)  # its line in results.json ({} before it ended)


@dataclass
class GridOverview:
    folder: Path
    name: str
    started: datetime | None
    runs: list[RunEntry]
    spec: dict[str, Any] | None  # the stored spec as run (overrides applied), or None where unreadable
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for run in self.runs:
            counts[run.status] = counts.get(run.status, 0) + 1
        return counts

    def best(self) -> RunEntry | None:
        """The finished run with the best value of its monitor, in the monitor's direction (the first
        of equals, in grid order), or None."""
        scored = [(run, best_value(run.summary)) for run in self.runs if run.status == "finished"]
        scored = [(run, value) for run, value in scored if value is not None]
        if not scored:
            return None
        return max(scored, key=lambda item: item[1] if higher_is_better(item[0].summary) else -item[1])[0]


def higher_is_better(summary: dict[str, Any]) -> bool:
    return summary.get("monitor_mode") != "min"


def best_value(summary: dict[str, Any]) -> float | None:
    """The run's best value of its monitor (`best_<train.monitor>`), or None where it has none."""
    monitor = summary.get("monitor")
    value = summary.get(f"best_{monitor}") if isinstance(monitor, str) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def is_grid_folder(folder: Path) -> bool:
    """A grid folder holds its spec and results.json (grid.json alone until its first run ends)."""
    return (folder / SPEC_FILE).is_file() and ((folder / RESULTS_FILE).is_file() or (folder / GRID_FILE).is_file())


def find_grids(root: Path) -> list[Path]:
    """Every grid folder at or under `root`, without looking inside one (its runs) or into hidden
    folders (a grid being created, `.<stamp>.*`)."""
    found = []
    for here, dirs, _ in os.walk(root):
        if is_grid_folder(Path(here)):
            found.append(Path(here))
            dirs.clear()
        else:
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return found


def _read_json(path: Path, notes: list[str]) -> Any:
    """The file's JSON, or None where it is missing; an unreadable one is noted."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        notes.append(f"{path} is unreadable ({type(exc).__name__}); left out")
        return None


def _summaries(folder: Path, notes: list[str]) -> list[dict[str, Any]]:
    document = _read_json(folder / RESULTS_FILE, notes)
    runs = document.get("runs") if isinstance(document, dict) else None
    if document is not None and not isinstance(runs, list):
        notes.append(f"{folder / RESULTS_FILE} lists no runs; the statuses come from the runs' folders")
        return []
    return [run for run in runs or [] if isinstance(run, dict) and isinstance(run.get("dir"), str)]


def _started(folder: Path) -> datetime | None:
    """When the grid started: its folder's name (`20261207-144525`, `-2` for a second that second)."""
    try:
        return datetime.strptime(folder.name[:15], STAMP)
    except ValueError:
        try:
            # To the second, as a folder's name gives it (a table has no use for microseconds).
            return datetime.fromtimestamp(int((folder / SPEC_FILE).stat().st_mtime))
        except OSError:
            return None


def _trains_now(folder: Path) -> bool:
    """Whether a process holds the grid's lock. The lock file stays behind a killed process, so its
    owner (pid and host) must be alive; another host's owner cannot be asked and counts as alive."""
    try:
        owner = json.loads((folder / LOCK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        return False
    if owner.get("host") != socket.gethostname():
        return True
    try:
        os.kill(owner["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _unsummarised(run_dir: Path, training: bool, notes: list[str]) -> RunEntry:
    """A run folder results.json does not list yet: its run.json's status (written as a run ends,
    before results.json is saved again), else running while the grid trains; otherwise the grid was
    killed: stopped where a checkpoint lets a resume go on, not started where it would begin anew."""
    state = _read_json(run_dir / RUN_FILE, notes)
    name = RUN_FOLDER.sub("", run_dir.name, count=1)
    if isinstance(state, dict) and isinstance(state.get("status"), str):
        return RunEntry(str(state.get("run", name)), run_dir.name, state["status"])
    if training:
        return RunEntry(name, run_dir.name, "running")
    return RunEntry(name, run_dir.name, "stopped" if (run_dir / CHECKPOINT_FILE).is_file() else NOT_STARTED)


def _grid_size(spec: dict[str, Any] | None) -> int:
    """How many runs the stored spec makes: a search's trials, or its grid's product of axes."""
    if not isinstance(spec, dict):
        return 0
    search, grid = spec.get("search"), spec.get("grid")
    if isinstance(search, dict) and isinstance(search.get("trials"), int):
        return search["trials"]
    if not isinstance(grid, dict):
        return 1
    return math.prod(len(values) for values in grid.values() if isinstance(values, list))


def read_grid(folder: Path) -> GridOverview:
    notes: list[str] = []
    spec = _read_json(folder / SPEC_FILE, notes)
    spec = spec if isinstance(spec, dict) else None
    runs = [RunEntry(str(s.get("run", s["dir"])), s["dir"], str(s.get("status")), s)
            for s in _summaries(folder, notes)]
    listed = {run.dir for run in runs}
    training = _trains_now(folder)
    runs += [_unsummarised(path, training, notes) for path in sorted(folder.iterdir())
             if path.is_dir() and RUN_FOLDER.match(path.name) and path.name not in listed]
    # Runs a killed or still-training grid never reached have no folder yet.
    runs += [RunEntry("", "", NOT_STARTED) for _ in range(_grid_size(spec) - len(runs))]
    name = spec.get("name") if spec and isinstance(spec.get("name"), str) else folder.parent.name
    return GridOverview(folder, name, _started(folder), runs, spec, notes)


# --------------------------------------------------------------------------------------------------
# comparing two runs


class _Absent:
    """A key one of two compared specs lacks."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT = _Absent()


def spec_diff(a: Any, b: Any, path: tuple = ()) -> list[tuple[tuple, Any, Any]]:
    """(path, value in a, value in b) wherever two specs differ, ABSENT where a key is missing.
    Lists of equal length are compared item by item; others, whole (a layer inserted into a network
    is one difference, not one per layer after it)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in dict.fromkeys([*a, *b]) for d in spec_diff(a.get(key, ABSENT), b.get(key, ABSENT),
                                                                         (*path, key))]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in spec_diff(x, y, (*path, i))]
    same = a == b and isinstance(a, bool) == isinstance(b, bool)  # true is not 1 in a spec
    return [] if same else [(path, a, b)]


def summary_metrics(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(name, value in a, value in b) for the epochs and every best_* and final_* number of two
    runs' summaries, in a's order then b's; None where one run has no such value."""
    def numbers(summary: dict[str, Any]) -> dict[str, float | int]:
        return {key: value for key, value in summary.items()
                if (key == "epochs" or key.startswith(("best_", "final_")))
                and isinstance(value, (int, float)) and not isinstance(value, bool)}

    mine, theirs = numbers(a), numbers(b)
    return [(key, mine.get(key), theirs.get(key)) for key in dict.fromkeys([*mine, *theirs])]


def locate_run(target: Path) -> tuple[GridOverview, RunEntry, bool]:
    """The grid and run a path names: a run folder, or a grid folder, whose best run by its monitor
    is taken (the bool says so). Runs compared must have ended: their summaries hold the metrics."""
    if not target.is_dir():
        raise SpecError(f"{target} is a file, not a folder" if target.exists() else f"no such folder: {target}",
                        hint=_WHAT_TO_GIVE)
    if is_grid_folder(target):
        grid = read_grid(target)
        best = grid.best()
        if best is None:
            counts = ", ".join(f"{n} {status}" for status, n in grid.counts().items()) or "no runs"
            raise SpecError(f"{target} has no finished run with a monitored value in its {RESULTS_FILE} ({counts})",
                            hint="give one of its run folders instead")
        return grid, best, True
    if is_grid_folder(target.parent) and RUN_FOLDER.match(target.name):
        grid = read_grid(target.parent)
        run = next(run for run in grid.runs if run.dir == target.name)
        if not run.summary:
            raise SpecError(f"run {run.name} ({run.status}) has no summary in {grid.folder / RESULTS_FILE} yet",
                            hint="compare runs that have ended; `modelspec runs` shows each run's status")
        return grid, run, False
    grids = find_grids(target)
    raise SpecError(f"{target} is neither a grid folder nor a run folder",
                    hint=f"it holds grids: give one of them, e.g. {grids[-1]}" if grids else _WHAT_TO_GIVE)


_WHAT_TO_GIVE = "give a grid folder, runs/<spec name>/<timestamp> (its best run), or a run folder in it"
