"""Which weights file a path names: a run folder, a grid folder (with --best), or the file itself.

A grid folder is runs/<spec name>/<timestamp>/ with results.json, whose "runs" list names each run's
folder ("dir"), status and validation accuracies; a run folder holds weights.pt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..artifacts import WEIGHTS_FILE
from ..errors import SpecError

RESULTS_FILE = "results.json"


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


def _accuracy(run: dict[str, Any]) -> float | None:
    for key in ("best_val_accuracy", "final_val_accuracy"):
        if isinstance(run.get(key), (int, float)):
            return float(run[key])
    return None


def best_run(folder: Path) -> dict[str, Any]:
    """The finished run with the highest validation accuracy (best epoch, else final)."""
    runs = _grid_runs(folder)
    scored = [r for r in runs if r.get("status") == "finished" and _accuracy(r) is not None]
    if not scored:
        statuses = ", ".join(f"{r.get('run', r['dir'])}: {r.get('status')}" for r in runs) or "no runs"
        raise SpecError(
            f"no finished run with a validation accuracy in {folder} ({statuses})",
            hint="--best needs data.val_split > 0 and a finished run; or give a run folder",
        )
    return max(scored, key=_accuracy)


def _missing_weights(run_dir: Path) -> SpecError:
    hint = "a run writes weights.pt when it finishes"
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
