"""Run every run of a spec's grid: folders, shared data, results table, failures, resume.

runs/<spec name>/<timestamp>/
    spec.yaml        the spec as run (overrides applied), to read
    spec.json        the same as data, to compare on resume
    results.csv      one row per run and epoch
    results.json     the same rows, and one summary per run
    <NN>_<run name>/ TensorBoard events, checkpoint.pt, weights.pt, run.json
"""

from __future__ import annotations

import json
import re
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from ..artifacts import atomic_write_text
from ..errors import SpecError, SpecIssue
from ..load import LoadedSpec
from ..spec.grid import RunPlan, _short_names
from ..tracking import ResultsTable
from .checkpoint import changed_sections
from .device import resolve_device
from .loop import Interrupted, RunContext, RunFailed, RunOutcome, train_run
from .progress import Progress


# Loader settings: runs that differ only in these share one decoded copy of the data.
_LOADER_ONLY = {"batch_size", "eval_batch_size", "shuffle", "num_workers", "pin_memory", "drop_last"}


@dataclass
class GridResult:
    folder: Path
    outcomes: dict[str, RunOutcome] = field(default_factory=dict)
    interrupted: bool = False

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


def _check_devices(loaded: LoadedSpec, runs: list[RunPlan]) -> dict[str, Any]:
    """Resolve every run's device before training anything: a missing GPU is a spec error."""
    devices = {}
    for run in runs:
        try:
            devices[run.name] = resolve_device(run.spec.train.device)
        except SpecError as exc:
            key = "train.device"
            path = ("grid", key, loaded.spec.grid[key].index(run.spec.train.device)) if key in loaded.spec.grid else ("train", "device")
            raise SpecError([loaded.source.issue(SpecIssue(i.message, path, i.hint)) for i in exc.issues]) from None
    return devices


def _prepare_folder(loaded: LoadedSpec, folder: Path | None) -> tuple[Path, bool]:
    if folder is not None:  # resuming
        stored = json.loads((folder / "spec.json").read_text())
        changed = changed_sections(stored, loaded.raw)
        if changed:
            raise SpecError(
                f"the spec changed since {folder} was started: {', '.join(changed)}",
                hint="resume with the spec as it was, or start a new grid with `modelspec run`",
            )
        return folder, True
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(loaded.spec.tracking.dir) / loaded.spec.name
    base.mkdir(parents=True, exist_ok=True)
    # The folder appears with its spec files or not at all (written aside, then renamed), so a grid
    # killed at any instant is either resumable or was never started.
    staging = Path(tempfile.mkdtemp(prefix=f".{stamp}.", dir=base))
    (staging / "spec.yaml").write_text(yaml.safe_dump(loaded.raw, sort_keys=False))
    (staging / "spec.json").write_text(json.dumps(loaded.raw, indent=1))
    n = 1
    while True:
        folder = base / (stamp if n == 1 else f"{stamp}-{n}")  # two grids within the same second
        try:
            staging.rename(folder)
            return folder, False
        except OSError:
            if not folder.exists():
                raise
            n += 1


def _summary(plan: RunPlan, folder_name: str, outcome: RunOutcome) -> dict[str, Any]:
    return {
        "run": plan.name, "dir": folder_name, "status": outcome.status, "reason": outcome.reason,
        "values": plan.values, "epochs": outcome.epochs,
        "best_val_accuracy": outcome.metric("val_accuracy", best=True),
        "final_val_accuracy": outcome.metric("val_accuracy", best=False),
        "final_test_accuracy": outcome.metric("test_accuracy", best=False),
    }


class _StopFlag:
    """First Ctrl-C: finish the batch, checkpoint and stop. A second one stops at once."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self.previous = signal.getsignal(signal.SIGINT)
        try:
            signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: Ctrl-C is the caller's business
            self.previous = None
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def run_grid(
    loaded: LoadedSpec,
    *,
    resume_folder: Path | None = None,
    quiet: bool = False,
    fail_fast: bool = False,
    log: Callable[[str], None] = print,
    exporter: Callable[..., Any] | None = None,
) -> GridResult:
    from ..data import describe, prepare_data

    runs = loaded.runs()
    devices = _check_devices(loaded, runs)
    folder, resuming = _prepare_folder(loaded, resume_folder)
    short = _short_names(list(loaded.spec.grid))
    table = ResultsTable(folder, [short[k] for k in loaded.spec.grid])
    result = GridResult(folder)
    prepared_cache: dict[str, Any] = {}
    log(f"{len(runs)} run(s) -> {folder}")

    with _StopFlag() as stop, Progress(len(runs), enabled=not quiet) as progress:
        for index, plan in enumerate(runs):
            folder_name = run_folder_name(index, plan.name)
            run_dir = folder / folder_name
            state_file = run_dir / "run.json"
            if resuming and state_file.is_file():
                state = json.loads(state_file.read_text())
                if state["status"] in ("finished", "failed"):
                    outcome = RunOutcome(state["status"], state["rows"], state.get("reason"), len(state["rows"]))
                    result.outcomes[plan.name] = outcome
                    table.set_rows(plan.name, outcome.rows)
                    table.set_summary(plan.name, _summary(plan, folder_name, outcome))
                    progress.advance_run(f"{plan.name} (done before)")
                    continue
            device = devices[plan.name]

            def prepared(plan=plan, device=device):
                """The decoded data, shared by consecutive runs that read the same data the same way."""
                key = json.dumps([plan.spec.data.model_dump(mode="json", exclude=_LOADER_ONLY), plan.spec.seed,
                                  str(device)])
                if key not in prepared_cache:
                    prepared_cache.clear()  # one data set in memory at a time
                    prepared_cache[key] = prepare_data(plan.spec.data, plan.spec.seed, device, log)
                    log(describe(prepared_cache[key], plan.spec.data))
                return prepared_cache[key]

            progress.start_run(plan.name, plan.spec.train.epochs)

            def on_epoch(rows, plan=plan):
                table.set_rows(plan.name, rows)
                table.save()
                progress.epoch_done(rows[-1])

            ctx = RunContext(
                device=device,
                log=progress.log if not quiet else log,
                stop_requested=lambda: stop.requested,
                on_epoch=on_epoch,
                on_batch=progress.batch,
                hparams={short[k]: v for k, v in plan.values.items()},
                export=(lambda model, info, plan=plan, run_dir=run_dir: exporter(plan, run_dir, model, info))
                if exporter is not None and plan.spec.export.after_run else None,
            )
            try:
                outcome = train_run(plan, run_dir, prepared(), ctx, resume=resuming)
            except Interrupted as exc:
                result.interrupted = True
                outcome = RunOutcome("stopped", table.rows.get(plan.name, []), str(exc))
            except SpecError:
                raise
            except (RunFailed, RuntimeError, ValueError, OSError, MemoryError) as exc:
                # Anything that ends one run (a NaN, an OOM, a corrupt sample) is that run's failure.
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if not isinstance(exc, RunFailed):
                    reason = f"{type(exc).__name__}: {reason}"
                outcome = RunOutcome("failed", table.rows.get(plan.name, []), reason[:300])
                progress.log(f"run {plan.name} failed: {outcome.reason}")
            outcome.epochs = len(outcome.rows)
            result.outcomes[plan.name] = outcome
            table.set_rows(plan.name, outcome.rows)
            table.set_summary(plan.name, _summary(plan, folder_name, outcome))
            table.save()
            run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(run_dir / "run.json", json.dumps(
                {"run": plan.name, "status": outcome.status, "reason": outcome.reason, "rows": outcome.rows},
                indent=1, default=str))
            progress.advance_run(plan.name)
            if result.interrupted or (fail_fast and outcome.status == "failed"):
                break
    return result
