"""Run every run of a spec's grid: shared data, results table, failures, stops and resume.

The folder itself (creation, lock, what a resume reads back) is runner/folder.py and runner/lock.py;
what stops a grid from outside (signals, a full disk in a writer thread) is runner/stops.py.
A grid is stopped by Ctrl-C or SIGTERM (finish the batch, checkpoint, say how to resume) or by a full
disk (the last good checkpoint stays; resume once space is freed). A start that fails before any run
trains leaves no folder behind.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..fileio import atomic_write_text, finish_writes_together, is_disk_full, table_json
from ..errors import SpecError, SpecIssue, Terminated, did_you_mean, format_path
from ..load import LoadedSpec
from ..spec.grid import RunPlan, _short_names, grid_location
from ..compile.task import Monitor
from ..tracking import ResultsTable, ResultsTracker
from ..tracking.results import taken_columns
from .background import after, in_background
from .device import resolve_device
from .executor import Executor, LocalExecutor
from .folder import RUN_FILE, check_unchanged, create_grid_folder, previous_results, read_run_state
from .distributed import SINGLE, Ranks
from .lock import GridLock
from .loop import Interrupted, RunContext, RunFailed, RunOutcome, train_run
from .memory import frozen_heap
from .metrics import MetricPool
from .progress import Progress
from .stops import QuietDiskFullThreads, StopFlag


@dataclass
class GridResult:
    folder: Path
    outcomes: dict[str, RunOutcome] = field(default_factory=dict)
    interrupted: bool = False
    stop_signal: int | None = None  # SIGINT or SIGTERM, when a signal stopped the grid
    disk_full: str | None = None  # what could not be written, when a full disk stopped the grid
    export_failed: dict[str, str] = field(default_factory=dict)  # run -> why its export failed
    run_dirs: dict[str, Path] = field(default_factory=dict)  # run -> its folder
    search: dict[str, Any] | None = None  # a search's search.json: its history, best trial and importances

    @property
    def failed(self) -> list[str]:
        return [name for name, o in self.outcomes.items() if o.status == "failed"]


def run_folder_name(index: int, name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.,=+-]", "_", name)[:120]
    return f"{index:02d}_{safe}"


def latest_grid_folder(loaded: LoadedSpec) -> Path:
    base = Path(loaded.spec.tracking.dir) / loaded.spec.name
    folders = sorted(p for p in base.glob("[!.]*") if (p / "spec.json").is_file()) if base.is_dir() else []
    if not folders:
        raise SpecError(f"nothing to resume: no runs of '{loaded.spec.name}' under {base}",
                        hint="start it with `modelspec run SPEC` first")
    return folders[-1]


def locate_run_error(exc: SpecError, loaded: LoadedSpec, plan: RunPlan) -> SpecError:
    """A spec error found while a run runs (missing data, a layer that does not fit the real images),
    located where the value was written: the spec's line, its grid value, or the `--set` it came from."""
    issues = []
    for issue in exc.issues:
        if issue.file is not None or not issue.path:
            issues.append(issue)  # located already, or about no place in the spec (a damaged file)
            continue
        path = grid_location(loaded.spec, plan.values, issue.path)
        message = f"run {plan.name}: {issue.message}" if loaded.spec.axes else issue.message
        issues.append(loaded.source.issue(SpecIssue(message, path, issue.hint)))
    return SpecError(issues)


def check_devices(loaded: LoadedSpec, runs: list[RunPlan]) -> dict[str, Any]:
    """Resolve every run's device before training anything: a missing GPU is a spec error."""
    devices = {}
    for run in runs:
        try:
            devices[run.name] = resolve_device(run.spec.train.device)
        except SpecError as exc:
            raise locate_run_error(exc, loaded, run) from None
    return devices


def check_training_split(prepared, plan: RunPlan) -> None:
    """The real cause of a training split that gives no batch, before the run starts."""
    data = plan.spec.data
    n_train, n_all = len(prepared.train_indices), len(prepared.train_source.targets)
    if n_train == 0:
        raise SpecError(f"val_split={data.val_split} leaves no training samples: all {n_all:,} samples of the "
                        "train split are held out for validation",
                        path=("data", "val_split"), hint="lower data.val_split")
    if data.drop_last and n_train < data.batch_size:
        raise SpecError(f"drop_last with batch_size={data.batch_size} drops every batch: the training split "
                        f"has {n_train:,} samples", path=("data", "batch_size"),
                        hint=f"use a batch_size of at most {n_train:,}, or drop_last: false")


def _run_state_text(plan: RunPlan, outcome: RunOutcome, export: str | None) -> str:
    """run.json: how the run ended, and its rows."""
    return table_json({"run": plan.name, "status": outcome.status, "reason": outcome.reason, "export": export,
                       "monitor": _monitor_json(outcome.monitor), "rows": outcome.rows})


def _summary(plan: RunPlan, folder_name: str, outcome: RunOutcome, export: str | None) -> dict[str, Any]:
    """The run's line in results.json: status, grid values, best_* (best epoch by the monitor), final_*."""
    return {
        "run": plan.name, "dir": folder_name, "status": outcome.status, "reason": outcome.reason,
        "export": export,  # None (not asked), "ok" or "failed: <why>": training and export apart
        "values": plan.values, "epochs": outcome.epochs, **outcome.summary(),
    }


def _monitor_json(monitor: Monitor | None) -> dict[str, Any] | None:
    return {"name": monitor.name, "higher_is_better": monitor.higher_is_better} if monitor else None


def stored_outcome(state: dict[str, Any]) -> RunOutcome:
    """A finished or failed run, as its run.json has it."""
    monitor = state.get("monitor")
    return RunOutcome(state["status"], state["rows"], state.get("reason"), len(state["rows"]),
                      Monitor(monitor["name"], monitor["higher_is_better"]) if isinstance(monitor, dict) else None)


def _grid_columns(keys: list[str]) -> dict[str, str]:
    """Grid key -> its column in the rows: the short name (`lr`), or the whole key where the short
    name is a measurement's (a grid over `train.loss` must not overwrite the `loss` column)."""
    from ..spec.metrics import METRICS

    taken = taken_columns(METRICS)
    short = _short_names(keys)
    return {key: key if name in taken or name.split("_")[0] in taken else name for key, name in short.items()}


def _network_key(plan: RunPlan) -> str:
    return json.dumps([layer.model_dump(mode="json") for layer in plan.spec.layers])


def _first_of_their_network(runs: list[RunPlan]) -> tuple[set[str], set[str]]:
    """(the runs that are the grid's first of their network, the networks seen): a network's graph
    goes to TensorBoard once, not once per run (tracing costs as much as several epochs of a tiny
    model). By grid order, so that runs executed in any order (on Ray) log the same graphs."""
    seen, first = set(), set()
    for plan in runs:
        key = _network_key(plan)
        if key not in seen:
            seen.add(key)
            first.add(plan.name)
    return first, seen


def _open_folder(loaded: LoadedSpec, resume_folder: Path | None, log,
                 executor: dict[str, Any] | None) -> tuple[Path, GridLock, Any]:
    """The grid folder, locked: a new one (with what to discard if nothing trains), or the one to resume."""
    if resume_folder is None:
        lock = None

        def take_lock(staging: Path) -> None:
            nonlocal lock
            lock = GridLock(staging).acquire(log)

        made = create_grid_folder(loaded, take_lock, executor)
        lock.moved_to(made.folder)
        return made.folder, lock, made
    check_unchanged(loaded, resume_folder)
    try:
        lock = GridLock(resume_folder).acquire(log)
    except OSError as exc:
        raise SpecError(f"cannot write in {resume_folder}: {exc.strerror or exc}",
                        hint="resume needs to write the grid folder; check its permissions and free space") from None
    try:
        completed = finish_writes_together(resume_folder)  # a pack's checkpoints a kill cut in the middle
    except BaseException:
        lock.release()
        raise
    if completed:
        log(f"completed {completed} checkpoint(s) that a kill left half-committed")
    return resume_folder, lock, None


def _check_search_options(executor: Executor, ranks: Ranks) -> None:
    """What a search does not do: train one trial on several processes (its pruner hears each trial's
    epochs in one process), or on an executor that cannot reach the pruner."""
    if ranks.active:
        raise SpecError("a search does not run under --nproc or torchrun: its pruner hears each trial's epochs "
                        "in one process", hint="leave out --nproc; --executor ray trains several trials at once")
    if executor.search_round is None and getattr(executor, "run_search", None) is None:
        raise SpecError(f"--executor {executor.as_json()['kind']} cannot train a search's trials",
                        hint="use the default executor, --executor vmap or --executor ray")


class _NoLock:
    """What the other ranks hold under torchrun: rank 0 holds the grid's lock for them."""

    def release(self) -> None:
        pass


def _pick_restarts(runs: list[RunPlan], restart: Sequence[str]) -> set[str]:
    """`--restart-run` names: a run's name or its folder's."""
    names = {run_folder_name(i, plan.name): plan.name for i, plan in enumerate(runs)}
    names.update({plan.name: plan.name for plan in runs})
    picked = set()
    for name in restart:
        if name.rstrip("/") not in names:
            raise SpecError(f"--restart-run {name}: the grid has no such run",
                            hint=did_you_mean(name, names) or "runs: " + ", ".join(p.name for p in runs))
        picked.add(names[name.rstrip("/")])
    return picked


def run_grid(
    loaded: LoadedSpec,
    *,
    resume_folder: Path | None = None,
    quiet: bool = False,
    fail_fast: bool = False,
    log: Callable[[str], None] = print,
    exporter: Callable[..., Any] | None = None,
    restart: Sequence[str] = (),
    ranks: Ranks = SINGLE,
    executor: Executor | None = None,
) -> GridResult:
    """Every run of the grid, by its `executor` (runner/executor.py; default: one after another, here).
    Under torchrun every rank calls this; rank 0 alone writes and prints."""
    executor = executor or LocalExecutor()
    log = log if ranks.main else (lambda message: None)
    quiet = quiet or not ranks.main
    searching = loaded.spec.search is not None
    if searching:
        _check_search_options(executor, ranks)
    runs = loaded.runs()  # a search's: the spec without its space, whose device is every trial's
    loaded.spec.tracking.check()  # the tracking backends can work here (their packages are installed)
    # Runs trained elsewhere find their devices where they run (a GPU of a cluster node, not of this one).
    devices = check_devices(loaded, runs) if executor.runs_here else {}
    restarts = _pick_restarts(runs, restart)
    if restarts and resume_folder is None:
        raise SpecError("--restart-run goes with a resume", hint="modelspec resume GRID_FOLDER --restart-run RUN")
    # Rank 0 makes (or locks) the folder; the other ranks only learn where it is.
    stored = executor.as_json()
    opened = _open_folder(loaded, resume_folder, log, stored) if ranks.main else (None, _NoLock(), None)
    folder, lock, new_grid = ranks.from_main(lambda: opened[0]), opened[1], opened[2]
    search = None
    if searching:
        from .search import Search

        # Each point is built on the data here before it trains; under Ray, on this machine's CPU.
        search = Search(loaded, folder, devices.get(runs[0].name) or resolve_device("cpu"))
        runs = search.known_runs(settle_partial=True)  # on a resume, the trials asked before
        devices = {plan.name: search.device for plan in runs}
    grid = Grid(loaded, runs, folder, devices, quiet, fail_fast, log, exporter, ranks, executor)
    grid.search = search
    try:
        grid.run(resuming=resume_folder is not None, restarts=restarts)
    except BaseException as exc:
        if new_grid is not None and not grid.trained:
            new_grid.discard()  # a start that failed before any run trained leaves nothing to resume
            log(f"no run started: {folder} removed")  # the folder announced above is gone: say so
            raise
        if not isinstance(exc, KeyboardInterrupt):
            raise
        # A signal outside a run's training steps (between runs, preparing data): the runs done so
        # far are saved, so this is a stop like any other, with the command that resumes it.
        grid.result.interrupted = True
        grid.result.stop_signal = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
    finally:
        lock.release()
        grid.result.export_failed = {k: v for k, v in grid.exports.items() if v != "ok"}
    return grid.result


class Grid:
    """The runs of one grid, trained by its executor, with the results table they share."""

    def __init__(self, loaded, runs, folder, devices, quiet, fail_fast, log, exporter, ranks: Ranks = SINGLE,
                 executor: Executor | None = None, writes_table: bool = True,
                 prepared_cache: dict[str, Any] | None = None):
        self.loaded, self.runs, self.folder, self.devices = loaded, runs, folder, devices
        self.ranks = ranks  # under torchrun: every rank trains, rank 0 alone writes
        self.quiet, self.fail_fast, self.log, self.exporter = quiet, fail_fast, log, exporter
        self.executor = executor or LocalExecutor()
        self.resuming = False  # whether this is a resume: runs with a checkpoint continue from it
        self.writes_table = writes_table and ranks.main  # a Ray task writes its run's files, not the grid's
        self.short = _grid_columns(loaded.spec.axes)
        self.logs_graph, self.networks_seen = _first_of_their_network(runs)
        self.table = ResultsTable(folder, [self.short[k] for k in loaded.spec.axes], [plan.name for plan in runs])
        self.search = None  # a search's study (runner/search.py): its trials join `runs` as they are asked
        self.result = GridResult(folder)
        self.prepared_cache: dict[str, Any] = {} if prepared_cache is None else prepared_cache
        self.trained = False  # whether any run got as far as training
        self.exports: dict[str, str] = {}
        # Runs trained here return before their closing files are written, and their run.json
        # follows those files on a files thread while the next run trains (a Ray task's one run has
        # nothing to overlap with, and its driver reads the run.json as soon as it ends).
        self.overlap_files = self.executor.runs_here and self.writes_table
        self.unsettled: list[tuple[RunPlan, Path, Any]] = []  # (plan, run_dir, its run.json's Future)
        self.metric_pool = MetricPool()  # the runs' metric sets, taken up again by the next run

    # ---- the loop

    def run(self, resuming: bool, restarts: set[str]) -> None:
        total = self.search.spec.trials if self.search is not None else len(self.runs)
        self.log(f"search: {total} trials -> {self.folder}" if self.search is not None else
                 f"{total} run(s) -> {self.folder}")
        with StopFlag() as stop, QuietDiskFullThreads(), frozen_heap(), \
                Progress(total, enabled=not self.quiet) as progress:
            self.stop, self.progress = stop, progress
            self.resuming = resuming
            if resuming:
                self._load_previous(restarts)
            try:
                todo = self._todo(resuming)
                if self.search is not None:
                    from .search import run_search

                    run_search(self, self.search, todo)
                elif todo:
                    self.executor.run(self, todo)
            finally:
                self.settle()
                self._save_table()
        self.result.stop_signal = stop.signum if self.result.interrupted else None

    def _todo(self, resuming: bool) -> list[tuple[RunPlan, Path]]:
        """The runs still to train, each with its folder; a resume skips the finished and failed."""
        todo = []
        for index, plan in enumerate(self.runs):
            run_dir = self.folder / run_folder_name(index, plan.name)
            self.result.run_dirs[plan.name] = run_dir
            if not (resuming and self.done_before(plan, run_dir)):
                todo.append((plan, run_dir))
        return todo

    def _load_previous(self, restarts: set[str]) -> None:
        """Every row the grid had, in grid order, so that saving the table never drops one."""
        rows, summaries = previous_results(self.folder, self.log)
        for index, plan in enumerate(self.runs):
            if plan.name in restarts and self.ranks.main:
                run_dir = self.folder / run_folder_name(index, plan.name)
                self.log(f"starting {plan.name} over: removing {run_dir}")
                shutil.rmtree(run_dir, ignore_errors=True)
            self.table.set_rows(plan.name, [] if plan.name in restarts else rows.get(plan.name, []))
            if plan.name in summaries and plan.name not in restarts:
                self.table.set_summary(plan.name, summaries[plan.name])

    def done_before(self, plan: RunPlan, run_dir: Path) -> bool:
        state = read_run_state(run_dir, self.progress.log if not self.quiet else self.log)
        if state is None or state["status"] not in ("finished", "pruned", "failed"):
            return False
        outcome = stored_outcome(state)
        self.result.outcomes[plan.name] = outcome
        self.table.set_rows(plan.name, outcome.rows)
        self.table.set_summary(plan.name, _summary(plan, run_dir.name, outcome, state.get("export")))
        if isinstance(state.get("export"), str):
            self.exports[plan.name] = state["export"]
        self.progress.advance_run(f"{plan.name} (done before)")
        return True

    def run_one(self, plan: RunPlan, run_dir: Path, resuming: bool) -> RunOutcome | None:
        self.progress.start_run(plan.name, plan.spec.train.epochs)
        context: RunContext | None = None  # once made, it knows the run's monitor (for a failed run's summary)
        try:
            prepared = self.prepared_data(plan)
            check_training_split(prepared, plan)
            self.trained = True
            self.stop.graceful = True
            context = self.context(plan, run_dir)
            outcome = train_run(plan, run_dir, prepared, context, resume=resuming)
        except Interrupted as exc:
            self.result.interrupted = True
            outcome = RunOutcome("stopped", self.table.rows.get(plan.name, []), str(exc), monitor=context.monitor)
        except SpecError as exc:
            raise locate_run_error(exc, self.loaded, plan) from None
        except Exception as exc:
            if is_disk_full(exc):
                return self.disk_full(plan, exc)
            # Anything else that ends one run (a NaN, an OOM, a corrupt sample, a bug) is that run's
            # failure, with its type and message; the grid goes on.
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if not isinstance(exc, RunFailed):
                reason = f"{type(exc).__name__}: {reason}"
            self.trained = True  # a failed run is a result too: its folder says why
            outcome = RunOutcome("failed", self.table.rows.get(plan.name, []), reason[:300],
                                 monitor=context.monitor if context else None)
            self.progress.log(f"run {plan.name} failed: {outcome.reason}")
        finally:
            self.stop.graceful = False
        self.settle()  # the run before, whose files were written while this one trained
        try:
            self.record(plan, run_dir, outcome, write_state=True)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            return self.disk_full(plan, exc)
        return None if self.result.disk_full else outcome  # met by the run before's files: stop here

    def record(self, plan: RunPlan, run_dir: Path, outcome: RunOutcome, write_state: bool) -> None:
        """A run's outcome: into the grid's table (saved at most every few seconds, always at the end
        of the grid) and, unless it is there already, into the run's run.json."""
        outcome.epochs = len(outcome.rows)
        self.result.outcomes[plan.name] = outcome
        self.table.set_rows(plan.name, outcome.rows)
        self.table.set_summary(plan.name, _summary(plan, run_dir.name, outcome, self.exports.get(plan.name)))
        if self.writes_table:  # written on the files thread: the next run need not wait for the disk
            self.table.save(force=False, background=in_background)
        if write_state and self.ranks.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            text = _run_state_text(plan, outcome, self.exports.get(plan.name))
            # Durable, and its folder's sync also commits the weights and confusion files the run
            # wrote before it without one: a finished run.json never outlives them in a crash.
            if outcome.files:  # written after them, or not at all if one failed (see settle)
                self.unsettled.append((plan, run_dir, after(outcome.files, atomic_write_text, run_dir / RUN_FILE, text)))
            else:
                atomic_write_text(run_dir / RUN_FILE, text)
        self.progress.advance_run(plan.name)

    def settle(self) -> None:
        """Wait for the run.json files still being written (each after its run's closing files, a few
        milliseconds after the run ended). A full disk met by one stops the grid with that run
        resumable, as one met during a run does; another error fails the run, as it would have."""
        while self.unsettled:
            plan, run_dir, written = self.unsettled[0]
            exc = written.exception()  # waits; a Ctrl-C here leaves this one to the next call
            self.unsettled.pop(0)
            if exc is None:
                continue
            outcome = self.result.outcomes[plan.name]
            if is_disk_full(exc):
                self.disk_full(plan, exc)
                outcome = self.result.outcomes[plan.name]
            else:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                outcome.status, outcome.reason, outcome.files = "failed", f"{type(exc).__name__}: {reason}"[:300], []
                self.progress.log(f"run {plan.name} failed: {outcome.reason}")
                atomic_write_text(run_dir / RUN_FILE, _run_state_text(plan, outcome, self.exports.get(plan.name)))
            self.table.set_summary(plan.name, _summary(plan, run_dir.name, outcome, self.exports.get(plan.name)))

    # ---- a search's trials, added as they are asked

    def add_run(self, plan: RunPlan, device) -> Path:
        """A run that joins the grid (a search's new trial), on `device`: its folder."""
        index = len(self.runs)
        self.runs.append(plan)
        self.devices[plan.name] = device
        self.table.order[plan.name] = index
        self.table.set_rows(plan.name, [])
        key = _network_key(plan)
        if key not in self.networks_seen:  # the first trial of its network logs its graph
            self.networks_seen.add(key)
            self.logs_graph.add(plan.name)
        self.result.run_dirs[plan.name] = run_dir = self.folder / run_folder_name(index, plan.name)
        return run_dir

    def cannot_build(self, plan: RunPlan, higher_is_better: bool) -> str | None:
        """Why a search point cannot train (its data, network or task does not fit the data, or its
        monitor goes the other way than the search's), or None. Its data stays decoded for the run."""
        from .loop import resolve_run

        try:
            prepared = self.prepared_data(plan)
            check_training_split(prepared, plan)
            _, task = resolve_run(plan, prepared)
        except SpecError as exc:
            return "; ".join(f"{format_path(i.path)}: {i.message}" if i.path else i.message
                             for i in exc.issues)[:300] or "its data could not be read"
        if task.monitor.higher_is_better != higher_is_better:
            return (f"its monitor {task.monitor.name} is better {'higher' if higher_is_better is False else 'lower'}, "
                    "the other way than the search's")
        return None

    # ---- helpers

    def prepared_data(self, plan: RunPlan):
        """The decoded data, shared by consecutive runs that read the same data the same way."""
        from ..data import describe, prepare_data

        device = self.ranks.place(self.devices[plan.name])
        data = plan.spec.data
        # Runs that differ only in loader settings share one decoded copy. The run's seed changes the
        # decoded data only through the splits it carves: a grid over the seed without val_split (or
        # test_split) decodes once.
        carves = data.val_split > 0 or getattr(data, "test_split", 0)
        key = json.dumps([data.identity(), plan.spec.seed if carves else None,
                          str(device)])
        if key not in self.prepared_cache:
            self.prepared_cache.clear()  # one data set in memory at a time
            self.prepared_cache[key] = prepare_data(plan.spec.data, plan.spec.seed, device, self.log)
            self.log(describe(self.prepared_cache[key], plan.spec.data))
        return self.prepared_cache[key]

    def context(self, plan: RunPlan, run_dir: Path) -> RunContext:
        export = None
        if self.exporter is not None and plan.spec.export.after_run:
            export = lambda model, info: self._export(plan, run_dir, model, info)  # noqa: E731

        return RunContext(
            leave_files_writing=self.overlap_files,
            metric_pool=self.metric_pool,
            device=self.ranks.place(self.devices[plan.name]),
            log=self.progress.log if not self.quiet else self.log,
            stop_requested=lambda: self.stop.requested,
            on_epoch=self.progress.epoch_done,
            trackers=[ResultsTracker(self.table, plan.name, run_dir)],
            log_graph=plan.name in self.logs_graph,
            on_batch=self.progress.batch,
            hparams={self.short[k]: v for k, v in plan.values.items()},
            export=export,
            ranks=self.ranks,
            prune=self.search.pruner(plan) if self.search is not None else None,
        )

    def _export(self, plan: RunPlan, run_dir: Path, model, info) -> None:
        """Export after training, recorded apart from it: a failed export leaves the run finished
        (its weights are there; `modelspec export RUN` tries again)."""
        try:
            self.exporter(plan, run_dir, model, info)
            self.exports[plan.name] = "ok"
        except (SpecError, RuntimeError, ValueError, OSError, ImportError, TypeError) as exc:
            if isinstance(exc, OSError) and is_disk_full(exc):
                raise
            reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            self.exports[plan.name] = f"failed: {reason}"
            self.progress.log(f"run {plan.name}: training finished, but its export failed: {reason}")

    def disk_full(self, plan: RunPlan, exc: BaseException) -> None:
        where = getattr(exc, "filename", None) or self.folder
        self.result.disk_full = f"no space left on the disk writing {where}"
        rows = self.table.rows.get(plan.name, [])
        self.result.outcomes[plan.name] = RunOutcome("stopped", rows, "disk full", len(rows))
        self.progress.log(f"run {plan.name} stopped: disk full; its last checkpoint is kept")
        # TensorBoard creates its event files before it can write a byte: left empty, they are debris
        # (a resume writes its own).
        for events in self.folder.rglob("events.out.tfevents.*"):
            try:
                if events.stat().st_size == 0:
                    events.unlink()
            except OSError:
                pass
        return None

    def _save_table(self) -> None:
        if not self.writes_table:
            return
        try:
            self.table.save()
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            self.result.disk_full = self.result.disk_full or f"no space left on the disk writing {self.folder}"
