"""A `search:` spec's trials: Optuna's ask-and-tell, each point an ordinary run of the grid folder.

The study lives in the grid folder (`search.journal`, Optuna's journal file storage: appends under a
file lock, safe on shared file systems). Its direction is the monitor's (`train.monitor`). Before each
point is asked, the sampler is made anew with a seed derived from the spec's seed and the trial's
number; with trials asked one after another, each is asked against the same finished history, so a
search resumed after a kill asks the same points as one left alone. A trial that was running when the
process died is not asked again: its run continues from its checkpoint, as any run does.

Each point is validated and its network built on the data (shapes, task, the training split) before
it trains; one that cannot be built is recorded as a failed run with its reason and told to the
sampler as failed. Each epoch's monitor value is reported to the pruner, which may end the run as
`pruned` (runner/loop.py: RunContext.prune).
"""

from __future__ import annotations

import json
import math
import shlex
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..compile.task import Monitor, monitor_direction
from ..errors import SpecError
from ..fileio import SEARCH_FILE, SEARCH_JOURNAL, atomic_write_text
from ..spec.grid import RunPlan, plan_of, point_name
from .loop import RunOutcome

if TYPE_CHECKING:
    from ..load import LoadedSpec
    from .grid import Grid

STUDY = "search"  # the study's name in its journal


def _optuna():
    try:
        import optuna
    except ImportError:
        raise SpecError("a `search:` needs Optuna, which is not installed",
                        path=("search",), hint="pip install 'modelspec[search]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the results table says what it would
    return optuna


def trial_seed(seed: int, number: int) -> int:
    """The sampler's seed for trial `number`: its own, so that no draw depends on how many draws
    the process made before (a resumed search starts a new process)."""
    return (seed * 1_000_003 + number * 7_919 + 1) % 2**32


class Search:
    """The study of one grid folder, and the runs its trials are."""

    def __init__(self, loaded: "LoadedSpec", folder: Path, device: Any):
        optuna = _optuna()
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        self.optuna, self.loaded, self.spec = optuna, loaded, loaded.spec.search
        self.keys = list(self.spec.space)
        self.distributions = {key: dim.distribution() for key, dim in self.spec.space.items()}
        self.higher_is_better = monitor_direction(loaded.spec.train)
        storage = JournalStorage(JournalFileBackend(str(folder / SEARCH_JOURNAL)))
        self.study = optuna.create_study(
            study_name=STUDY, storage=storage, load_if_exists=True, pruner=self.spec.pruner.build(),
            direction="maximize" if self.higher_is_better else "minimize")
        self.folder, self.device = folder, device  # every trial's (a search space holds no device)
        self.names: set[str] = set()
        self.trial_of: dict[str, Any] = {}  # run name -> its optuna Trial (to report and tell)
        self.unbuildable: dict[str, str] = {}  # run name -> why its point cannot be built

    # ---- the trials as runs

    def known_runs(self, settle_partial: bool = False) -> list[RunPlan]:
        """The trials the journal has (a resume's), in order, each as its run.

        A trial is asked one parameter at a time, so the journal can hold one whose parameters are
        not all there yet: the point the driver is asking while a Ray task reads the journal, or the
        one it was asking when it was killed. It is no run; the driver (`settle_partial`) tells the
        killed one's trial failed so that the study does not wait for it."""
        plans = []
        for frozen in self.study.get_trials(deepcopy=False):
            trial = self.optuna.trial.Trial(self.study, frozen._trial_id)  # noqa: SLF001
            if set(self.keys) <= set(frozen.params):
                plans.append(self._plan(trial, frozen.params))
            elif settle_partial and not frozen.state.is_finished():
                trial.set_user_attr("reason", "its point was being asked when the search was killed")
                self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        return plans

    def ask(self) -> RunPlan:
        """The next point, as a run (an unbuildable one's reason in `unbuildable`)."""
        number = len(self.study.get_trials(deepcopy=False))
        self.study.sampler = self.spec.sampler.build(trial_seed(self.spec.seed, number))
        trial = self.study.ask(self.distributions)
        return self._plan(trial, trial.params)

    def _plan(self, trial, params: dict[str, Any]) -> RunPlan:
        values = {key: self.spec.space[key].value(params[key]) for key in self.keys}
        name = point_name(self.keys, values)
        if name in self.names:  # the sampler may draw a point twice; runs are kept by name
            name = f"{name},trial={trial.number}"
        self.names.add(name)
        self.trial_of[name] = trial
        try:
            return plan_of(self.loaded.raw, values, name)
        except SpecError as exc:
            self.unbuildable[name] = "; ".join(issue.message for issue in exc.issues)[:300]
            # Never trained: the grid records it as failed under the spec it came from.
            return RunPlan(name, values, self.loaded.spec)

    # ---- what the runs tell the study

    def pruner(self, plan: RunPlan) -> Callable[[int, dict[str, Any], Monitor], str | None]:
        """The run's epoch hook: each epoch's monitor value to the pruner, which may end the run."""
        trial = self.trial_of[plan.name]
        pruner_name = self.spec.pruner.name

        def prune(epoch: int, row: dict[str, Any], monitor: Monitor) -> str | None:
            value = row.get(monitor.name)
            if value is None or not math.isfinite(value):
                return None
            decided = trial.user_attrs.get("pruned")
            if decided and decided[0] == epoch:
                # An epoch trained again after a kill that came between the decision and the run's
                # end: the same answer (a pruner with state, successive halving, would not give it).
                return decided[1]
            with warnings.catch_warnings():  # a resumed epoch reports again: Optuna keeps the first
                warnings.simplefilter("ignore")
                trial.report(value, epoch)
            if not trial.should_prune():
                return None
            # The median pruner judges the trial's best value so far; successive halving this epoch's.
            seen = list(trial._cached_frozen_trial.intermediate_values.values()) or [value]
            judged = (max(seen) if monitor.higher_is_better else min(seen)) if pruner_name == "median" else value
            reason = (f"pruned after epoch {epoch}: {monitor.name} {judged:.4g} "
                      f"{'(its best so far) ' if pruner_name == 'median' else ''}is behind the other trials ({pruner_name})")
            trial.set_user_attr("pruned", [epoch, reason])
            return reason

        return prune

    def tell(self, plan: RunPlan, outcome: RunOutcome | None) -> None:
        """A run's end to the study: its best monitor value, pruned, or failed (with the reason).
        A stopped run (or one not trained yet) is left running: the resume continues it."""
        trial = self.trial_of[plan.name]
        if trial._cached_frozen_trial.state.is_finished() or outcome is None or outcome.status == "stopped":
            return
        trial.set_user_attr("run", plan.name)
        state, value = self.optuna.trial.TrialState, self._value(outcome)
        if outcome.status == "finished" and value is not None:
            frozen = self.study.tell(trial, value)
        elif outcome.status == "pruned":
            frozen = self.study.tell(trial, state=state.PRUNED)
        else:
            trial.set_user_attr("reason", outcome.reason or "no monitor value")
            frozen = self.study.tell(trial, state=state.FAIL)
        trial._cached_frozen_trial = frozen  # noqa: SLF001 (a second tell of it is skipped above)

    @staticmethod
    def _value(outcome: RunOutcome) -> float | None:
        best = outcome.best_row()
        value = best.get(outcome.monitor.name) if best else None
        return value if value is not None and math.isfinite(value) else None

    @property
    def asked(self) -> int:
        return len(self.study.get_trials(deepcopy=False))

    # ---- what the user reads

    def summary(self, runs: list[RunPlan], outcomes: dict[str, RunOutcome], importance: bool = False) -> dict[str, Any]:
        """search.json: the trials in order with their values and states, the best so far after each
        (the optimisation history), the best trial with the --set lines that retrain it, and which
        axes mattered (Optuna's importance evaluator, once enough trials finished)."""
        trials, best = [], None
        for number, plan in enumerate(runs):
            outcome = outcomes.get(plan.name)
            value = self._value(outcome) if outcome is not None and outcome.status == "finished" else None
            if value is not None and (best is None or Monitor("", self.higher_is_better).better(value, best[1])):
                best = (plan, value)
            trials.append({"number": number, "run": plan.name, "state": outcome.status if outcome else "running",
                           "value": value, "epochs": outcome.epochs if outcome else 0,
                           "best_so_far": best[1] if best else None, "values": plan.values,
                           "reason": outcome.reason if outcome else None})
        return {
            "direction": "maximize" if self.higher_is_better else "minimize",
            "sampler": self.spec.sampler.name, "pruner": self.spec.pruner.name, "seed": self.spec.seed,
            "trials": trials,
            "best": None if best is None else {"run": best[0].name, "value": best[1], "values": best[0].values,
                                               "set": set_lines(best[0].values)},
            "importance": self.importance() if importance else {},
        }

    def importance(self) -> dict[str, float]:
        """Each axis's share of the objective's variance over the finished trials (fANOVA, Optuna's
        default evaluator); empty with fewer than two finished trials or one axis."""
        finished = [t for t in self.study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
        if len(finished) < 2 or len(self.keys) < 2:
            return {}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = self.optuna.importance.get_param_importances(self.study, params=self.keys)
        except (RuntimeError, ValueError, ImportError):  # all values equal, or sklearn-less fANOVA
            return {}
        return {key: round(float(share), 4) for key, share in found.items()}

    def write_summary(self, runs: list[RunPlan], outcomes: dict[str, RunOutcome],
                      importance: bool = False) -> dict[str, Any]:
        """search.json, rewritten after each trial (the importances, which take a while, at the end)."""
        summary = self.summary(runs, outcomes, importance)
        atomic_write_text(self.folder / SEARCH_FILE, json.dumps(summary, indent=1, default=str))
        return summary


def set_lines(values: dict[str, Any]) -> list[str]:
    """The options that turn the search's spec into one run of a point's values: `--unset search`
    and a `--set PATH=VALUE` for each (VALUE in JSON, which YAML reads back; quoted for a shell)."""
    return ["--unset search", *(f"--set {shlex.quote(f'{key}={json.dumps(value)}')}" for key, value in values.items())]


def run_search(grid: "Grid", search: Search, todo: list[tuple[RunPlan, Path]]) -> None:
    """The search's trials (`todo`: those a stopped search left unfinished), asked and trained until
    `trials` were asked or the grid stops: in rounds here and under vmap, as a stream on Ray."""
    for plan in grid.runs:  # ended before a kill reached the journal: told now
        search.tell(plan, grid.result.outcomes.get(plan.name))
    streams = getattr(grid.executor, "run_search", None)
    if streams is not None:  # Ray: see stream
        streams(grid, search, todo)
    else:
        _rounds(grid, search, todo, grid.executor.search_round)
    grid.result.search = search.write_summary(grid.runs, grid.result.outcomes, importance=True)


def _rounds(grid: "Grid", search: Search, todo: list[tuple[RunPlan, Path]], width: int) -> None:
    """Rounds of the executor's `search_round` (one, here; a pack's worth under vmap): a round's
    points are asked together, trained together and told together. A resume first completes the
    round a stop cut short (its missing points asked, its unfinished trials continued from their
    checkpoints), so that every later round is asked as it would have been."""
    # The round under way when the search stopped: its trials not yet ended, and its missing points.
    round_ = [(plan, run_dir) for plan, run_dir in todo if _buildable(grid, search, plan, run_dir)]
    while not _stopped(grid) and search.asked < search.spec.trials:
        while search.asked < search.spec.trials and (search.asked % width or not round_) and len(round_) < width:
            plan = search.ask()
            run_dir = grid.add_run(plan, search.device)
            if _buildable(grid, search, plan, run_dir):
                round_.append((plan, run_dir))
        if search.asked % width and search.asked < search.spec.trials:
            continue  # every point of the round was unbuildable so far: ask on
        if not _train_round(grid, search, round_):
            break
        round_ = []
    if round_ and not _stopped(grid):
        _train_round(grid, search, round_)  # the last round of a resumed search that asked them all


def stream(grid: "Grid", search: Search, todo: list[tuple[RunPlan, Path]], slots: int,
           train: Callable[[list, Callable], None]) -> None:
    """The trials as a stream (Ray's executor: runner/ray_grid.py): a point asked for each free slot,
    each result told as it lands and a new point asked in its place. Which points are asked then
    depends on the order the trials end in, so a search on Ray does not repeat its points exactly,
    and its resume continues the trials that were running and asks the rest afresh."""
    first = [(plan, run_dir) for plan, run_dir in todo if _buildable(grid, search, plan, run_dir)]

    def more(ended: RunPlan | None, in_flight: int) -> list[tuple[RunPlan, Path]]:
        if ended is not None:
            _told(grid, search, [ended])
        new: list[tuple[RunPlan, Path]] = []
        while in_flight + len(new) < slots and search.asked < search.spec.trials and not _stopped(grid):
            plan = search.ask()
            run_dir = grid.add_run(plan, search.device)
            if _buildable(grid, search, plan, run_dir):
                new.append((plan, run_dir))
        return new

    train(first, more)


def _buildable(grid: "Grid", search: Search, plan: RunPlan, run_dir: Path) -> bool:
    """Whether a point can train; one that cannot is recorded as a failed run and told so at once."""
    reason = search.unbuildable.get(plan.name) or grid.cannot_build(plan, search.higher_is_better)
    if not reason:
        return True
    search.unbuildable[plan.name] = reason
    grid.progress.log(f"trial {run_dir.name} cannot be built: {reason}")
    grid.record(plan, run_dir, RunOutcome("failed", [], reason), write_state=True)
    search.tell(plan, grid.result.outcomes.get(plan.name))
    return False


def _train_round(grid: "Grid", search: Search, round_: list[tuple[RunPlan, Path]]) -> bool:
    """A round's trials trained by the executor and told to the study; False where the search ends
    here (a stop, or --fail-fast and a failed trial)."""
    if round_:
        grid.executor.run(grid, round_)
    _told(grid, search, [plan for plan, _ in round_])
    failed = any(grid.result.outcomes.get(plan.name) and grid.result.outcomes[plan.name].status == "failed"
                 for plan, _ in round_)
    return not (_stopped(grid) or (grid.fail_fast and failed))


def _told(grid: "Grid", search: Search, ended: list[RunPlan]) -> None:
    """Trials' ends to the study, and search.json and results.json's `best` brought up to date."""
    for plan in ended:
        search.tell(plan, grid.result.outcomes.get(plan.name))
    summary = search.write_summary(grid.runs, grid.result.outcomes)
    grid.table.header = {"best": summary["best"]}  # results.json's first key


def _stopped(grid: "Grid") -> bool:
    if grid.stop.requested:
        grid.result.interrupted = True
    return grid.result.interrupted or grid.result.disk_full is not None
