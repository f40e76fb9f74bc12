"""`modelspec run SPEC` and `modelspec resume FOLDER`: train every run of the grid."""

from __future__ import annotations

import shlex
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional, Sequence

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..compile.task import strip_split
from ..errors import SpecError, SpecIssue
from ..export.pipeline import export_after_run
from ..load import LoadedSpec, load_spec
from ..runner import GridResult, latest_grid_folder, run_grid
from ..runner.checkpoint import RESUME_SAFE_KEYS
from ..runner.folder import anchor_data_root, load_stored_spec, started_from, stored_executor
from ..runner import distributed
from ..runner.memory import steady_allocator
from ._common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_SPEC, EXIT_TERMINATED, SetOpt, SpecArg, UnsetOpt, command

NprocOpt = Annotated[int, typer.Option(
    "--nproc", min=1, help="Train each run with DDP on N processes of this machine (starts torchrun).")]
ExecutorOpt = Annotated[Optional[str], typer.Option(
    "--executor", metavar="local|vmap|ray",
    help="local: one run after another in this process (the default); vmap: runs of one network trained "
         "together as one stacked model; ray: each run a Ray task. A resume runs as the grid was started "
         "unless given.")]
PackSizeOpt = Annotated[Optional[int], typer.Option(
    "--pack-size", min=1, help="With --executor vmap: the most runs trained together (default: as many as "
                               "half the free memory holds by an estimate).")]
AddressOpt = Annotated[Optional[str], typer.Option(
    "--address", help="With --executor ray: the cluster to join (auto, or ray://HOST:PORT); "
                      "without it Ray starts on this machine.")]
CpusOpt = Annotated[Optional[float], typer.Option(
    "--cpus-per-run", help="With --executor ray: CPUs each run takes (torch uses as many threads). Default 1.")]
GpusOpt = Annotated[Optional[float], typer.Option(
    "--gpus-per-run", help="With --executor ray: GPUs each run takes; 0.25 puts four runs on one GPU. Default 0.")]


def _results_table(result: GridResult) -> Table:
    """One line per run, the best by the monitor first (its direction from the metric)."""
    monitor = next((o.monitor for o in result.outcomes.values() if o.monitor is not None), None)
    name = monitor.name if monitor else "val_loss"
    test = "test_" + strip_split(name)
    table = Table(title=f"results ({result.folder}), best {name} first", title_justify="left")
    for column in ("run", "status", "epochs", f"best {name}", f"final {name}", test, "reason"):
        table.add_column(column, justify="left" if column in ("run", "status", "reason") else "right",
                         overflow="fold")

    def best(outcome):
        row = outcome.best_row()
        return row.get(outcome.monitor.name) if row else None

    def key(item):
        outcome = item[1]
        value = best(outcome)
        sign = -1 if monitor is None or monitor.higher_is_better else 1
        rank = {"finished": 0, "pruned": 1}.get(outcome.status, 2)  # a search's pruned trials between
        return (rank, value is None, sign * value if value is not None else 0)

    def fmt(value):
        return "" if value is None else f"{value:.4f}"

    for run, outcome in sorted(result.outcomes.items(), key=key):
        last = outcome.rows[-1] if outcome.rows else {}
        # Names and reasons are text, not markup: a reason such as gloo's "[.../pair.cc:545] ..." would
        # otherwise be read as a rich markup tag.
        table.add_row(escape(run), outcome.status, str(outcome.epochs), fmt(best(outcome) if outcome.monitor else None),
                      fmt(last.get(name)), fmt(last.get(test)), escape(outcome.reason or ""))
    return table


def _search_lines(summary: dict, loaded: LoadedSpec) -> None:
    """Under a search's table: its counts, the best trial and the command that retrains it (with the
    command line's own --set and --unset), and which axes mattered."""
    states = [trial["state"] for trial in summary["trials"]]
    counts = ", ".join(f"{states.count(s)} {s}" for s in ("finished", "pruned", "failed", "stopped") if s in states)
    typer.echo(f"search: {len(states)} trials ({counts}); every epoch trained: "
               f"{sum(trial['epochs'] for trial in summary['trials'])}")
    best = summary["best"]
    if best is None:
        typer.echo("no trial finished with a monitor value")
        return
    typer.echo(f"best: {best['run']} ({best['value']:.4g})")
    origins = dict.fromkeys(origin for path, origin in loaded.source.overrides.items() if path[:1] != ("search",))
    given = [" ".join((option, shlex.quote(value))) for option, _, value in (o.partition(" ") for o in origins)]
    typer.echo(f"retrain it: modelspec run {shlex.quote(loaded.file)} " + " ".join([*given, *best["set"]]))
    if summary["importance"]:
        shares = ", ".join(f"{key} {share:.2f}" for key, share in summary["importance"].items())
        typer.echo(f"what mattered (share of the variance, fANOVA): {shares}")


def _executor(kind: Optional[str], stored: Optional[dict], **options):
    """The executor (runner/executor.py) from the options and, on a resume, the settings the grid was
    started with; None for one run after another here."""
    from ..runner.executor import LocalExecutor, make_executor

    chosen = make_executor(kind, stored, options)
    return None if isinstance(chosen, LocalExecutor) else chosen


def _train(loaded: LoadedSpec, resume_folder: Optional[Path], quiet: bool, fail_fast: bool,
           restart: Sequence[str] = (), executor=None) -> None:
    formats = {f for plan in loaded.runs() if plan.spec.export.after_run for f in plan.spec.export.formats}
    if formats:  # an unknown format or a missing onnx extra fails now, not after the first run
        from ..export import check_formats

        check_formats(sorted(formats))
    steady_allocator()  # before the data is decoded: see runner/memory.py
    with distributed.session() as ranks:
        try:
            distributed.check_batch_sizes(loaded, ranks)
            result = run_grid(loaded, resume_folder=resume_folder, quiet=quiet, fail_fast=fail_fast,
                              exporter=export_after_run, restart=restart, ranks=ranks, executor=executor)
        except SpecError:
            if ranks.main:
                raise
            raise typer.Exit(EXIT_SPEC) from None  # rank 0 says it, once
    if not ranks.main:  # rank 0 prints; the others only end with the same exit code
        raise typer.Exit(EXIT_INTERRUPTED if result.interrupted else EXIT_FAILED if result.failed else 0)
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # a log file or pipe: do not squeeze run names into 80 columns
    console.print(_results_table(result))
    if result.search is not None:
        _search_lines(result.search, loaded)
    if result.disk_full:
        typer.echo(f"error: {result.disk_full}; the runs keep their last checkpoint.\n"
                   f"free some space, then continue with: modelspec resume {result.folder}", err=True)
        raise typer.Exit(EXIT_FAILED)
    if result.interrupted:
        nproc = f" --nproc {ranks.world}" if ranks.active else ""
        typer.echo(f"stopped; continue with: modelspec resume {result.folder}{nproc}", err=True)
        raise typer.Exit(EXIT_TERMINATED if result.stop_signal == signal.SIGTERM else EXIT_INTERRUPTED)
    if result.failed:
        typer.echo(f"{len(result.failed)} {'trial' if result.search else 'run'}(s) failed: "
                   f"{', '.join(result.failed)}", err=True)
    for name, reason in result.export_failed.items():
        typer.echo(f"run {name} trained, but its export {reason}; retry with: modelspec export "
                   f"{result.run_dirs[name]}", err=True)
    # A search's failed trials are part of what it found (a learning rate that diverges): it failed
    # only where no trial finished.
    failed = result.search["best"] is None if result.search is not None else bool(result.failed)
    if failed or result.export_failed:
        raise typer.Exit(EXIT_FAILED)


def _under_torchrun(loaded: LoadedSpec, nproc: int, executor=None) -> None:
    """`--nproc N` outside torchrun: start torchrun's launcher with this same command, and wait.
    What the spec can be refused for is refused here, once, before any process starts."""
    if executor is not None and (nproc > 1 or distributed.launched_by_torchrun()):
        kind = executor.as_json()["kind"]
        raise SpecError(f"--executor {kind} trains runs its own way; it does not go with torchrun or --nproc",
                        hint=f"train each run on several processes with --nproc N, or --executor {kind}, not both")
    if loaded.spec.search is not None and (nproc > 1 or distributed.launched_by_torchrun()):
        raise SpecError("a search does not run under --nproc or torchrun: its pruner hears each trial's epochs "
                        "in one process", hint="leave out --nproc; --executor ray trains several trials at once")
    if nproc > 1 and not distributed.launched_by_torchrun():
        distributed.check_batch_sizes(loaded, distributed.Ranks(world=nproc))
        raise typer.Exit(distributed.launch(nproc, _without_nproc(sys.argv[1:])))


def _without_nproc(args: list[str]) -> list[str]:
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


@command
def run(
    spec: SpecArg,
    set_: SetOpt = None,
    unset: UnsetOpt = None,
    list_runs: Annotated[bool, typer.Option("--list", help="Print the runs of the grid and stop.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or epoch lines.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the latest interrupted grid of this spec.")] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop at the first failed run.")] = False,
    nproc: NprocOpt = 1,
    executor: ExecutorOpt = None,
    address: AddressOpt = None,
    cpus_per_run: CpusOpt = None,
    gpus_per_run: GpusOpt = None,
    pack_size: PackSizeOpt = None,
) -> None:
    """Train every run of the spec's grid; log to TensorBoard; save the results table."""
    # The data's files are checked too (they exist, hold the named columns), before any folder exists.
    loaded = load_spec(spec, set_ or [], unset=unset or [], check_data=True)
    if list_runs:
        if loaded.spec.search is not None:  # its points are picked as its trials end
            search = loaded.spec.search
            typer.echo(f"a search: {search.trials} trials over {', '.join(search.space)}; its points are "
                       "asked as it runs (the same spec and seed ask the same points)")
            return
        for plan in loaded.runs():
            typer.echo(plan.name)
        return
    folder = latest_grid_folder(loaded) if resume else None
    chosen = _executor(executor, stored_executor(folder) if folder else None, address=address,
                       cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run, pack_size=pack_size)
    _under_torchrun(loaded, nproc, chosen)
    _train(loaded, folder, quiet, fail_fast, executor=chosen)


# What `resume --set` may change: the keys marked `ResumeSafe` (where the data is, how it is read,
# what is logged) and what is exported; never what a run computes.
# `search.trials`: a search resumed with more trials asks the further points, as a longer one would have.
_RESUME_SETTABLE = {".".join(key) for key in RESUME_SAFE_KEYS} | {"search.trials"}


def _check_resume_overrides(overrides: Sequence[str], option: str = "--set") -> None:
    for item in overrides:
        path_text = item.partition("=")[0].strip()
        if path_text in _RESUME_SETTABLE or path_text.startswith("export."):
            continue
        reason = ("the grid folder is given" if path_text.startswith("tracking.") else
                  "the grid's folder is named by it" if path_text == "name" else
                  "it would change what the runs compute, and a resumed run must be the same run")
        raise SpecError([SpecIssue(
            f"{path_text} cannot change on resume: {reason}", file=f"{option} {item}",
            hint=f"resume may set {', '.join(sorted(_RESUME_SETTABLE))} and export.*; "
                 "for anything else start a new grid: modelspec run SPEC --set ...")])


@command
def resume(
    folder: Annotated[str, typer.Argument(help="A grid folder: runs/<spec name>/<timestamp>.")],
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", metavar="PATH=VALUE",
        help="Change what does not change results: data.root, data.num_workers, tracking flags, export.")] = None,
    unset: Annotated[Optional[list[str]], typer.Option(
        "--unset", metavar="PATH", help="Remove such a key, so that its default applies. Applied before --set.")] = None,
    restart_run: Annotated[Optional[list[str]], typer.Option(
        "--restart-run", metavar="RUN",
        help="Start this run over (its name or folder name), e.g. when its checkpoint is damaged. Repeatable.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast")] = False,
    nproc: NprocOpt = 1,
    executor: ExecutorOpt = None,
    address: AddressOpt = None,
    cpus_per_run: CpusOpt = None,
    gpus_per_run: GpusOpt = None,
    pack_size: PackSizeOpt = None,
) -> None:
    """Continue an interrupted grid from its folder, with the spec stored there."""
    path = Path(folder)
    if not ((path / "spec.yaml").is_file() or (path / "spec.json").is_file()):
        raise SpecError(f"{folder} is not a grid folder (no spec.yaml)", hint="give runs/<spec name>/<timestamp>")
    _check_resume_overrides(set_ or [])
    _check_resume_overrides(unset or [], "--unset")
    loaded = load_stored_spec(path, set_ or [], log=typer.echo, unset=unset or [])
    # Relative paths in the stored spec mean the directory the grid was started from.
    loaded = anchor_data_root(loaded, started_from(path, loaded.spec.tracking.dir))
    chosen = _executor(executor, stored_executor(path), address=address, cpus_per_run=cpus_per_run,
                       gpus_per_run=gpus_per_run, pack_size=pack_size)
    _under_torchrun(loaded, nproc, chosen)
    _train(loaded, path, quiet, fail_fast, restart_run or [], chosen)
