"""Grids on Ray: each run of a grid is one Ray task, on this machine or across a cluster.

The driver (the `modelspec run --executor ray` process) makes and locks the grid folder, computes
the data statistics once, hands every pending run to Ray as a plain task, and rebuilds the grid's
results table from the files each task wrote in its run folder, as runs finish, in any order.

A task trains its run exactly as the sequential grid does (`Grid.run_one`), always continuing from
the run's checkpoint: a task that Ray runs again after its worker or node died goes on from the last
epoch it saved and ends with the weights of an undisturbed run. A worker keeps the data it decoded
for the next run it is given that reads the same data.

Run folders must be on storage every node sees: a task first checks that it can read the grid's
spec, and the driver that it can read the run.json each task wrote.

Stops: the first Ctrl-C or SIGTERM of the driver writes <grid>/.stop; running tasks finish their
batch, checkpoint and return, queued ones return without starting. A second signal cancels the tasks
at once (each keeps its last checkpoint).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from ..fileio import atomic_write_text, is_disk_full
from ..errors import SpecError, SpecIssue
from ..load import LoadedSpec
from ..spec.grid import RunPlan, plan_of
from ..tracking.base import measurements
from ..tracking.results import ROWS_FILE, read_rows
from .folder import read_run_state
from .grid import Grid, check_devices, locate_run_error, run_folder_name, stored_outcome
from .loop import RunOutcome
from .progress import Progress, epoch_line
from .ray_start import start_ray

STOP_FILE = ".stop"  # the driver's request to every task: checkpoint and return
LOG_FILE = "log.txt"  # a task's log lines, in its run folder (the driver prints only epochs)
RETRIES = 3  # a task whose worker or node died runs again this often, from its checkpoint
SHARED_STORAGE_HINT = ("run folders must be on storage every node sees (NFS or another shared mount): "
                       "point tracking.dir there, e.g. --set tracking.dir=/shared/runs")
INSTALL_HINT = "install it with: pip install 'modelspec[ray]'"


def import_ray():
    try:
        import ray
    except ImportError:
        raise SpecError("--executor ray needs Ray, which is not installed", hint=INSTALL_HINT) from None
    return ray


@dataclass(frozen=True)
class RayExecutor:
    """`--executor ray` and its settings; kept in grid.json so that a resume runs on Ray too."""

    address: str | None = None  # None: start Ray on this machine; `auto` or `ray://host:port`: join a cluster
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0  # a fraction puts several runs on one GPU

    def __post_init__(self):
        if self.cpus_per_run <= 0:
            raise SpecError(f"--cpus-per-run {self.cpus_per_run:g}: a run needs some CPU", hint="e.g. --cpus-per-run 1")
        if self.gpus_per_run < 0 or (self.gpus_per_run > 1 and self.gpus_per_run != int(self.gpus_per_run)):
            raise SpecError(f"--gpus-per-run {self.gpus_per_run:g}: Ray shares a GPU by fractions below 1, "
                            "or gives whole GPUs", hint="e.g. --gpus-per-run 0.25 (four runs per GPU) or 1")

    runs_here: ClassVar[bool] = False  # each run finds its device where its task runs
    OPTIONS: ClassVar[tuple[str, ...]] = ("address", "cpus_per_run", "gpus_per_run")
    search_round: ClassVar[int | None] = None  # a search's trials stream instead: see run_search

    def as_json(self) -> dict[str, Any]:
        return {"kind": "ray", **asdict(self)}

    @classmethod
    def from_options(cls, stored: dict[str, Any], address: str | None = None, cpus_per_run: float | None = None,
                     gpus_per_run: float | None = None) -> "RayExecutor":
        """The command line's settings over those the grid was started with (a resume's `stored`)."""
        import_ray()  # a missing extra is said before anything starts
        if address is not None:  # as is an address where nothing listens
            from .ray_start import check_reachable

            check_reachable(address)
        settings = cls.from_json(stored) if stored else cls()
        return cls(address if address is not None else settings.address,
                   cpus_per_run if cpus_per_run is not None else settings.cpus_per_run,
                   gpus_per_run if gpus_per_run is not None else settings.gpus_per_run)

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> "RayExecutor":
        return cls(stored.get("address"), float(stored.get("cpus_per_run", 1.0)),
                   float(stored.get("gpus_per_run", 0.0)))

    def run(self, grid: Grid, todo: list[tuple[RunPlan, Path]]) -> None:
        _Driver(self, grid).run(todo)

    def run_search(self, grid: Grid, search, todo: list[tuple[RunPlan, Path]]) -> None:
        """A search's trials as Ray tasks: a point asked for each free slot, each result told to the
        study as it lands, and a new point asked in its place (runner/search.py: stream)."""
        _Driver(self, grid).run(todo, search)


# --------------------------------------------------------------------------------------------------
# the task: one run, in a Ray worker


@dataclass
class _Job:
    """What every task of a grid shares (put in Ray's object store once)."""

    loaded: LoadedSpec  # with the data's relative paths resolved where the grid was started
    runs: list[RunPlan]  # a grid's (a search's trials are handed to their tasks one by one)
    folder: str  # absolute
    logs_graph: set[str]  # the runs that log their network's graph (the first of each network)
    stats: dict[str, Any]  # `normalize: auto` statistics, computed by the driver
    exporter: Callable[..., Any] | None
    cpus: float


@dataclass
class _Report:
    """What a task tells the driver besides the files it wrote."""

    host: str = ""
    wrote_state: bool = False  # its run.json is written: the driver reads the outcome from it
    status: str = "stopped"
    reason: str | None = None
    trained: bool = False
    disk_full: str | None = None
    export: str | None = None
    spec_issues: list[SpecIssue] = field(default_factory=list)
    storage: str | None = None  # what this node could not see of the grid folder


_PREPARED: dict[str, Any] = {}  # this worker's decoded data, for the next run that reads the same


class _StopFile:
    """The task's stop flag: the driver's stop file, looked at no more than twice a second."""

    def __init__(self, folder: Path):
        self.path, self.checked, self.found, self.graceful = folder / STOP_FILE, -1.0, False, False

    @property
    def requested(self) -> bool:
        if not self.found and time.monotonic() - self.checked > 0.5:
            self.checked, self.found = time.monotonic(), self.path.exists()
        return self.found


def _run_task(job: _Job, index: int, trial: RunPlan | None = None) -> _Report:
    import torch

    from ..data.stats import remember_stats
    host = socket.gethostname()
    folder, plan = Path(job.folder), trial or job.runs[index]
    if not (folder / "spec.json").is_file():
        return _Report(host, storage=f"the Ray task for run {plan.name} on {host} cannot see the grid folder {folder}")
    torch.set_num_threads(max(1, int(job.cpus)))
    remember_stats(job.stats)
    run_dir = folder / run_folder_name(index, plan.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOG_FILE, "a", encoding="utf-8") as log_file:
        def log(message: str) -> None:
            log_file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
            log_file.flush()

        log(f"run {plan.name} on {host}, pid {os.getpid()}")
        grid = Grid(job.loaded, [plan], folder, {}, True, False, log, job.exporter, writes_table=False,
                     prepared_cache=_PREPARED)
        grid.logs_graph = {plan.name} & job.logs_graph
        if trial is not None:  # a search's trial: its pruner reads and writes the study's journal here
            from .search import Search

            grid.search = Search(job.loaded, folder, None)
            grid.search.known_runs()
        grid.stop, grid.progress = _StopFile(folder), Progress(1, enabled=False)
        if grid.done_before(plan, run_dir):  # run again by Ray after it had finished
            return _Report(host, wrote_state=True, status=grid.result.outcomes[plan.name].status)
        if grid.stop.requested:
            return _Report(host, reason="stopped before it started")
        try:
            grid.devices = check_devices(job.loaded, [plan])
            outcome = grid.run_one(plan, run_dir, resuming=True)
        except SpecError as exc:
            return _Report(host, trained=grid.trained, spec_issues=exc.issues)
    return _Report(host, wrote_state=outcome is not None, status=outcome.status if outcome else "stopped",
                   reason=outcome.reason if outcome else "disk full", trained=grid.trained,
                   disk_full=grid.result.disk_full, export=grid.exports.get(plan.name))


# --------------------------------------------------------------------------------------------------
# the driver


class _Driver:
    def __init__(self, executor: RayExecutor, grid: Grid):
        self.executor, self.grid = executor, grid
        self.index = {plan.name: i for i, plan in enumerate(grid.runs)}  # run -> its place in the grid
        self.stop_written = False
        self.slots = 1  # how many runs the cluster trains at once (set once Ray has started)

    def run(self, todo: list[tuple[RunPlan, Path]], search=None) -> None:
        ray = import_ray()
        self._start(ray)
        stop_file = self.grid.folder / STOP_FILE
        stop_file.unlink(missing_ok=True)  # a stop of an earlier driver of this grid is done with
        self.grid.stop.graceful = True  # the first signal asks the tasks to checkpoint and return
        try:
            if search is None:
                self._train(ray, todo)
            else:
                from .search import stream

                stream(self.grid, search, todo, self.slots, lambda first, more: self._train(ray, first, more))
        finally:
            self.grid.stop.graceful = False
            stop_file.unlink(missing_ok=True)
            ray.shutdown()

    def _start(self, ray) -> None:
        executor, started = self.executor, time.monotonic()
        env = {k: v for k, v in os.environ.items() if k.startswith("MODELSPEC_")}
        start_ray(ray, executor.address, env)  # bounded, and Ctrl-C and SIGTERM still work meanwhile
        resources = ray.cluster_resources()
        cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
        self.slots = max(1, int(cpus // executor.cpus_per_run))
        if executor.gpus_per_run:
            self.slots = max(1, min(self.slots, int(gpus // executor.gpus_per_run)))
        where = f"joined {executor.address}" if executor.address else "started on this machine"
        self.grid.log(f"Ray {where} in {time.monotonic() - started:.1f}s: {cpus:g} CPU, {gpus:g} GPU; "
                      f"each run takes {executor.cpus_per_run:g} CPU, {executor.gpus_per_run:g} GPU")
        if executor.address is None and (executor.cpus_per_run > cpus or executor.gpus_per_run > gpus):
            ray.shutdown()  # no run could ever be scheduled: say so instead of waiting forever
            raise SpecError(f"a run asks for {executor.cpus_per_run:g} CPU and {executor.gpus_per_run:g} GPU, "
                            f"and this machine has {cpus:g} CPU and {gpus:g} GPU",
                            hint="lower --cpus-per-run / --gpus-per-run, or join a cluster with --address")

    def _job(self, todo: list[tuple[RunPlan, Path]]) -> _Job:
        from ..data.prepare import fit_auto_stats
        from ..data.stats import known_stats
        from .folder import anchor_data_root, started_from

        grid = self.grid
        loaded = anchor_data_root(grid.loaded, started_from(grid.folder, grid.loaded.spec.tracking.dir))
        runs = loaded.runs()
        # A search's trials read its spec's data (a space over batch sizes does not change it); a
        # trial whose data differs computes its statistics in its task.
        reading = [(runs[0], runs[0])] if grid.search else [(plan, runs[self.index[plan.name]]) for plan, _ in todo]
        fitted = set()
        for plan, anchored in reading:  # the statistics of each data set once, here, not once per run
            data = anchored.spec.data
            key = json.dumps(data.identity())
            if key not in fitted:
                fitted.add(key)
                try:
                    fit_auto_stats(data, plan.spec.seed, grid.log)
                except SpecError as exc:
                    raise locate_run_error(exc, grid.loaded, plan) from None
        return _Job(loaded, runs, str(grid.folder.resolve()), grid.logs_graph, known_stats(), grid.exporter,
                    self.executor.cpus_per_run)

    def _train(self, ray, todo: list[tuple[RunPlan, Path]],
               more: Callable[[RunPlan | None, int], list[tuple[RunPlan, Path]]] | None = None) -> None:
        """The runs of `todo` as tasks, each recorded as it ends; `more` (a search's) is asked after
        each, and once at the start, for runs to start in the slots left free (told the run that ended
        and how many are still in flight)."""
        unpacked = self._job(todo)
        job = ray.put(unpacked)
        task = ray.remote(_run_task)
        resources = dict(num_cpus=self.executor.cpus_per_run, num_gpus=self.executor.gpus_per_run,
                         max_retries=RETRIES, retry_exceptions=False)

        def submit(plan: RunPlan):
            if plan.name not in self.index:  # a search's new trial: its place among the grid's runs
                self.index[plan.name] = [run.name for run in self.grid.runs].index(plan.name)
            trial = None if more is None else plan_of(unpacked.loaded.raw, plan.values, plan.name)  # anchored
            return task.options(name=f"modelspec {plan.name}", **resources).remote(job, self.index[plan.name], trial)

        pending = {submit(plan): (plan, run_dir) for plan, run_dir in todo}
        if more is not None:
            pending.update({submit(plan): (plan, run_dir) for plan, run_dir in more(None, len(pending))})
        watcher = _EpochWatcher(self.grid)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                if self.grid.stop.requested:  # Ctrl-C or SIGTERM: the grid ends as a stopped one
                    self.grid.result.interrupted = True
                    self._request_stop()
                watcher.poll(list(pending.values()))
                for ref in ready:
                    plan, run_dir = pending.pop(ref)
                    self._finished(plan, run_dir, self._report(ray, ref))
                    if more is not None and not self.stop_written:
                        pending.update({submit(p): (p, d) for p, d in more(plan, len(pending))})
        except BaseException:
            # A second signal, a spec error of one run, a storage problem: the other tasks stop
            # now, each keeping its last checkpoint.
            for ref in pending:
                ray.cancel(ref, force=True)
            raise

    def _report(self, ray, ref) -> _Report:
        try:
            return ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            return _Report(reason="cancelled")
        except ray.exceptions.RayTaskError as exc:  # an error the task itself raised (not retried)
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            return _Report(status="failed", reason=f"{type(cause).__name__}: {_first_line(cause)}"[:300])
        except ray.exceptions.RayError as exc:  # its worker or node died more often than Ray retries
            if self.stop_written:  # Ctrl-C reached Ray's own processes too: a stop, not a failure
                return _Report(reason="stopped")
            return _Report(status="failed", reason=f"its Ray worker died {RETRIES + 1} times: {_first_line(exc)}"[:300])

    def _request_stop(self) -> None:
        """Every task checkpoints and returns: on a signal, a full disk, or --fail-fast's failure.
        Only a signal makes the grid a stopped one (exit 130/143); the others end as the sequential
        grid does (exit 1, the failure or the full disk named)."""
        if not self.stop_written:
            atomic_write_text(self.grid.folder / STOP_FILE, "stop\n")
            self.stop_written = True

    def _finished(self, plan: RunPlan, run_dir: Path, report: _Report) -> None:
        grid = self.grid
        if report.storage:
            raise SpecError(report.storage, hint=SHARED_STORAGE_HINT)
        if report.spec_issues:
            raise SpecError(report.spec_issues)
        grid.trained = grid.trained or report.trained
        if report.export is not None:
            grid.exports[plan.name] = report.export
        if report.disk_full:
            grid.result.disk_full = report.disk_full
            self._request_stop()
        outcome = self._outcome(plan, run_dir, report)
        try:
            grid.record(plan, run_dir, outcome, write_state=not (report.wrote_state or report.disk_full))
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            grid.disk_full(plan, exc)  # as the sequential grid says it
            with contextlib.suppress(OSError):  # the stop file may not fit either: the tasks meet the disk
                self._request_stop()
            return
        if outcome.status == "failed":
            grid.progress.log(f"run {plan.name} failed: {outcome.reason}")
            if grid.fail_fast:
                self._request_stop()
        elif outcome.status == "finished":
            grid.progress.log(f"run {plan.name} finished on {report.host}")

    def _outcome(self, plan: RunPlan, run_dir: Path, report: _Report) -> RunOutcome:
        """The run's outcome as its run.json has it: the grid's table is rebuilt from the runs' files."""
        if not report.wrote_state:  # stopped before it started, cancelled, disk full, its worker lost
            rows = read_rows(run_dir)
            return RunOutcome(report.status, rows, report.reason, len(rows))
        state = read_run_state(run_dir, self.grid.log)
        if state is None:
            raise SpecError(f"the Ray task for run {plan.name} on {report.host} wrote {run_dir / 'run.json'}, "
                            "but this machine cannot read it", hint=SHARED_STORAGE_HINT)
        return stored_outcome(state)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _EpochWatcher:
    """The driver's epoch lines: what the tasks append to their runs' rows.jsonl, printed as a
    sequential grid prints them, and which runs are in flight."""

    def __init__(self, grid: Grid):
        self.grid = grid
        self.sizes: dict[str, int] = {}
        self.printed = {name: max((r.get("epoch", 0) for r in rows), default=0) for name, rows in grid.table.rows.items()}
        self.grid_columns = set(grid.short.values())

    def poll(self, pending: list[tuple[RunPlan, Path]]) -> None:
        running = []
        for plan, run_dir in pending:
            try:
                size = (run_dir / ROWS_FILE).stat().st_size
            except OSError:
                continue  # not started yet
            running.append(plan.name)
            if size != self.sizes.get(plan.name):
                self.sizes[plan.name] = size
                self._print_new(plan.name, read_rows(run_dir))
        self.grid.progress.running(running, len(pending) - len(running))

    def _print_new(self, run: str, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if row["epoch"] > self.printed.get(run, 0):
                # The line shows the learning rate apart from the losses and metrics.
                metrics = [k for k in measurements(row, self.grid_columns) if k != "current_lr"]
                self.grid.progress.log(epoch_line(run, row, metrics))
                self.printed[run] = row["epoch"]
