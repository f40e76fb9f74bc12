"""What runs a grid's runs: the executors, one family.

An executor is handed the `Grid` (runner/grid.py: its folder, results table, stop flag, progress and
the calls that train and record one run) and the runs still to train, each with its folder. It trains
them its way and reports each through the grid: `grid.run_one` trains and records a run here as the
sequential grid does; `grid.record` records an outcome got another way (a Ray task's run.json, a
member of a vmap pack); a stop sets `grid.result.interrupted`, a full disk `grid.result.disk_full`.
`as_json()` is kept in grid.json, so that `modelspec resume` runs the grid the same way.

- `local` (here): one run after another, in this process;
- `vmap` (runner/vmap_grid.py): runs that can share one stacked model train together, in packs;
- `ray` (runner/ray_grid.py): each run one Ray task, on this machine or a cluster.
A new executor is one module with a class like these, named in EXECUTORS.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..errors import SpecError

if TYPE_CHECKING:
    from ..spec.grid import RunPlan
    from .grid import Grid

# kind -> "module:class", imported when asked for (Ray's module needs its extra only when used).
EXECUTORS: dict[str, str] = {
    "local": "modelspec.runner.executor:LocalExecutor",
    "vmap": "modelspec.runner.vmap_grid:VmapExecutor",
    "ray": "modelspec.runner.ray_grid:RayExecutor",
}


class Executor(Protocol):
    runs_here: bool  # trains in this process: devices are checked here, a run's files overlap the next
    OPTIONS: ClassVar[tuple[str, ...]]  # the command-line options it takes (their Python names)
    # How many of a search's trials it trains at once (runner/search.py asks them in rounds of this
    # many); None where it cannot train a search's trials (their pruner lives in this process).
    search_round: int | None

    def as_json(self) -> dict[str, Any] | None: ...

    def run(self, grid: "Grid", todo: list[tuple["RunPlan", Path]]) -> None: ...


class LocalExecutor:
    """One run after another, here."""

    runs_here = True
    OPTIONS: ClassVar[tuple[str, ...]] = ()
    search_round = 1  # one trial after another: each asked against every trial before it, finished

    def as_json(self) -> dict[str, Any] | None:
        return None  # the default: grid.json needs no word on it

    @classmethod
    def from_options(cls, stored: dict[str, Any], **options: Any) -> "LocalExecutor":
        return cls()

    def run(self, grid: "Grid", todo: list[tuple["RunPlan", Path]]) -> None:
        for plan, run_dir in todo:
            if grid.stop.requested:
                grid.result.interrupted = True
                break
            outcome = grid.run_one(plan, run_dir, grid.resuming)
            if outcome is None:  # the disk is full: stop where the checkpoint is
                break
            if grid.result.interrupted or (grid.fail_fast and outcome.status == "failed"):
                break


def executor_class(kind: str):
    """The executor class of `kind` (`local`, `vmap`, `ray`)."""
    if kind not in EXECUTORS:
        raise SpecError(f"--executor {kind}: no such executor", hint="use --executor " + ", ".join(EXECUTORS))
    module, name = EXECUTORS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def make_executor(kind: str | None, stored: dict[str, Any] | None, options: dict[str, Any]) -> Executor:
    """The executor the command line asks for: `kind` (else the one the grid was started with, on a
    resume, else local) with the options given, the others as the grid was started."""
    stored = stored or {}
    kind = kind or stored.get("kind", "local")
    cls = executor_class(kind)
    given = {name: value for name, value in options.items() if value is not None}
    foreign = [name for name in given if name not in cls.OPTIONS]
    if foreign:
        flags = ", ".join("--" + name.replace("_", "-") for name in foreign)
        owners = [k for k in EXECUTORS if k != kind and set(foreign) <= set(executor_class(k).OPTIONS)]
        if owners:
            raise SpecError(f"{flags} goes with --executor {owners[0]}", hint=f"add --executor {owners[0]}")
        raise SpecError(f"{flags} does not go with --executor {kind}", hint="leave it out")
    return cls.from_options(stored if stored.get("kind") == kind else {}, **given)
