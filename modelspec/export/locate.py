"""Which weights file a path names: a run folder, a grid folder (with --best), or the file itself.

A grid folder is runs/<spec name>/<timestamp>/ with results.json, whose "runs" list names each run's
folder ("dir"), status, monitor (`train.monitor`, e.g. val_accuracy or val_rmse), its direction and
its best value; a run folder holds weights.pt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..fileio import RESULTS_FILE, WEIGHTS_FILE



def _grid_runs(folder: Path) -> list[dict[str, Any]]:
    try:
        runs = json.loads((folder / RESULTS_FILE).read_text(encoding="utf-8"))["runs"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpecError(
            f"{folder / RESULTS_FILE} cannot be read ({type(exc).__name__}: {exc})",
            hint="is the grid still writing it? give a run folder instead",
        ) from None
    if not isinstance(runs, list) or not all(isinstance(r, dict) and "dir" in r for r in runs):
        raise SpecError(f"{folder / RESULTS_FILE} lists no runs in the expected form")
    return runs


def _best_value(run: dict[str, Any]) -> tuple[float, bool] | None:
    """(the run's best monitored value, whether higher is better), or None if it has none."""
    monitor = run.get("monitor")
    if isinstance(monitor, str) and isinstance(run.get(f"best_{monitor}"), (int, float)):
        return float(run[f"best_{monitor}"]), run.get("monitor_mode") != "min"
    if isinstance(run.get("best_val_accuracy"), (int, float)):  # results.json of modelspec 0.1
        return float(run["best_val_accuracy"]), True
    return None


def best_run(folder: Path) -> dict[str, Any]:
    """The finished run with the best value of the grid's monitor (train.monitor), in its direction."""
    runs = _grid_runs(folder)
    scored = [(r, _best_value(r)) for r in runs if r.get("status") == "finished"]
    scored = [(r, v) for r, v in scored if v is not None]
    if not scored:
        statuses = ", ".join(f"{r.get('run', r['dir'])}: {r.get('status')}" for r in runs) or "no runs"
        raise SpecError(
            f"no finished run with a monitored value in {folder} ({statuses})",
            hint="--best needs a finished run; or give a run folder",
        )
    return max(scored, key=lambda item: item[1][0] if item[1][1] else -item[1][0])[0]


def is_export_folder(folder: Path) -> bool:
    """A folder `modelspec export` wrote: by its name, or by a file only it writes."""
    from .registry import FORMATS  # here: the formats import torch, which finding a file needs not
    from .report import REPORT_FILE

    return folder.name == "export" or any((folder / name).is_file() for name in
                                          (REPORT_FILE, *(fmt.file for fmt in FORMATS.values())))


def _missing_weights(run_dir: Path) -> SpecError:
    hint = "a run writes weights.pt when it finishes"
    if is_export_folder(run_dir):
        hint = "this is an export folder, which holds exported files, not weights.pt; give the run folder it came from"
    grids = sorted(p for p in run_dir.iterdir() if (p / RESULTS_FILE).is_file())
    if grids:  # runs/<spec name>/: the grids are one level down
        hint = f"this is a spec's runs folder; give a grid folder in it with --best, e.g. {grids[-1]} --best"
    grid = run_dir.parent
    if (grid / RESULTS_FILE).is_file():
        for run in _grid_runs(grid):
            if run["dir"] == run_dir.name and run.get("status") != "finished":
                hint = f"this run {run.get('status')}" + (f": {run['reason']}" if run.get("reason") else "")
    return SpecError(f"{run_dir} holds no {WEIGHTS_FILE}", hint=hint)


def find_weights(target: str | Path, best: bool = False) -> Path:
    """The weights file that `target` names; with `best`, `target` is a grid folder."""
    path = Path(target)
    if not path.exists():
        raise SpecError(f"no such run folder or file: {path}", hint="give runs/<spec>/<timestamp>/<run>")
    if best:
        if not (path / RESULTS_FILE).is_file():
            raise SpecError(
                f"--best picks among the runs of a grid folder, and {path} has no {RESULTS_FILE}",
                hint="give runs/<spec name>/<timestamp> with --best, or a run folder without it",
            )
        path = path / best_run(path)["dir"]
    elif path.is_dir() and not (path / WEIGHTS_FILE).exists() and (path / RESULTS_FILE).is_file():
        runs = _grid_runs(path)
        if len(runs) != 1:
            raise SpecError(
                f"{path} is a grid folder with {len(runs)} runs; name one or pick the best",
                hint="add --best, or give one of: " + ", ".join(str(path / r["dir"]) for r in runs[:6]),
            )
        path = path / runs[0]["dir"]
    if path.is_dir():
        if not (path / WEIGHTS_FILE).is_file():
            raise _missing_weights(path)
        path = path / WEIGHTS_FILE
    return path
