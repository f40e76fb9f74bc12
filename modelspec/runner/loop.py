"""One run: re-seed, build, restore, then train epochs, evaluate, track and checkpoint.

Reads top to bottom like a hand-written loop. The batch loop knows no task: the `Task` shapes the
targets for the loss and the inputs of the metrics; a `MetricSet` accumulates the loss and metrics on
the device and is read once per epoch (no per-batch `.item()`, which would stall the GPU every step);
the run's whole state is one `RunState`, whose `state_dict()` is the checkpoint. Under torchrun the
`Ranks` of the context (runner/distributed.py) shard the feeds, wrap the model in DDP, agree on
stopping and gather checkpoints; with one process they pass everything through.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..artifacts import ModelInfo, weights_bytes
from ..fileio import atomic_write_bytes
from ..compile import build_from_shapes
from ..compile.finetune import prepare_finetuning, trainable_parameters
from ..compile.shapes import infer_shapes
from ..compile.task import Monitor, Targets, Task, resolve_task, split_of, targets_of, units_of, watched
from ..data import PreparedData, make_feeds
from ..errors import SpecError
from ..spec.grid import RunPlan
from ..spec.root import Spec
from ..tracking import Tracker
from ..tracking.confusion import write_confusion
from .background import DONE, in_background
from .cadence import Cadence
from .checkpoint import load_checkpoint, spec_hash
from .device import make_generator, seed_everything
from .distributed import SINGLE, Ranks
from .metrics import MetricPool, MetricSet
from .outputs import write_outputs
from .state import EarlyStopping, RunState


class RunFailed(Exception):
    """A run that cannot go on (NaN loss, out of memory, a data error); the grid goes on."""


class Interrupted(Exception):
    """Ctrl-C: the run saved a checkpoint and stopped."""


@dataclass
class RunContext:
    """What the grid hands each run."""

    device: torch.device
    log: Callable[[str], None]
    stop_requested: Callable[[], bool] = lambda: False
    on_epoch: Callable[[dict[str, Any], list[str]], None] = lambda row, metrics: None  # progress
    on_batch: Callable[[int, int], None] = lambda done, total: None  # progress
    hparams: dict[str, Any] = field(default_factory=dict)  # grid values, for rows and HParams
    trackers: list[Tracker] = field(default_factory=list)  # besides the spec's tracking.backends
    export: Callable[[nn.Module, ModelInfo], None] | None = None  # export after the run
    monitor: Monitor | None = None  # set by the run once its task is known (a failed run's summary uses it)
    log_graph: bool = True  # trace the model graph for TensorBoard (the grid does it once per network)
    ranks: Ranks = SINGLE  # the processes training this run together (torchrun)
    # Return before the run's closing files are written (RunOutcome.files says when): the grid writes
    # the run's run.json after them while the next run trains. Otherwise the run waits for them.
    leave_files_writing: bool = False
    metric_pool: MetricPool = field(default_factory=MetricPool)  # a grid's runs share one
    # A search's pruner: told each epoch's row (with the run's monitor), it answers why the run ends
    # here as `pruned`, or None to go on.
    prune: Callable[[int, dict[str, Any], Monitor], str | None] | None = None


@dataclass
class RunOutcome:
    status: str  # finished | pruned (a search's pruner ended it early) | failed | stopped
    rows: list[dict[str, Any]]
    reason: str | None = None
    epochs: int = 0
    monitor: Monitor | None = None  # what picks the best epoch (None: the run failed before knowing)
    files: list[Future] = field(default_factory=list)  # its closing files, still being written

    def best_row(self) -> dict[str, Any] | None:
        """The row of the best epoch by the monitor (the first of equals), or None."""
        if self.monitor is None:
            return None
        best = None
        for row in self.rows:
            value = row.get(self.monitor.name)
            if value is not None and (best is None or self.monitor.better(value, best[self.monitor.name])):
                best = row
        return best

    def summary(self) -> dict[str, Any]:
        """best_<monitor> and best_epoch at the best epoch; final_<key> for every value of the last."""
        out: dict[str, Any] = {}
        if self.monitor is not None:
            best = self.best_row()
            out.update(monitor=self.monitor.name, monitor_mode="max" if self.monitor.higher_is_better else "min",
                       best_epoch=best["epoch"] if best else None,
                       **{f"best_{self.monitor.name}": best[self.monitor.name] if best else None})
        if self.rows:
            last = self.rows[-1]
            out.update({f"final_{k}": v for k, v in last.items() if isinstance(v, float) and not k.endswith("_duration")})
        return out


# --------------------------------------------------------------------------------------------------
# small helpers


def memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """Image batches (N, C, H, W) in channels-last layout when the spec asks for it."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x


def autocast(device: torch.device, amp: str | None):
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def data_targets(spec: Spec, prepared: PreparedData) -> Targets:
    """What the prepared data's targets are, for the task; real values with their way back to the
    data's units, which the metrics are measured in."""
    targets = prepared.train_source.targets
    real_count = (targets.shape[1] if targets.ndim == 2 else 1) if spec.data.target_kind == "real" else None
    return targets_of(spec.data.target_kind, prepared.num_classes, real_count,
                      prepared.class_names, prepared.target_names, units_of(prepared.preprocessing))


@dataclass
class Parts:
    """What one run trains with and does not change: built once, after the state is restored."""

    spec: Spec
    task: Task
    step_model: nn.Module  # the model, or its torch.compile'd wrapper, in DDP's under torchrun
    eval_model: nn.Module  # the same without DDP: each rank evaluates its part alone
    loss_fn: nn.Module
    device: torch.device
    run_dir: Path
    trackers: list[Tracker]  # none on ranks other than 0
    ranks: Ranks = SINGLE

    def forward(self, x: torch.Tensor, y: torch.Tensor, model: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(output, loss) of one batch, under autocast when the spec asks for mixed precision."""
        x = memory_format(x, self.spec.train.channels_last)
        with autocast(self.device, self.spec.train.amp):
            out = (model or self.step_model)(x)
            return out, self.loss_fn(out.float(), self.task.loss_target(y))


# --------------------------------------------------------------------------------------------------
# one epoch of training, one pass of evaluation


def train_epoch(state: RunState, parts: Parts, feed, ctx: RunContext) -> None:
    """The batches of `state.epoch` not yet done; on Ctrl-C, checkpoint mid-epoch and stop."""
    train = parts.spec.train
    state.begin_epoch()
    state.model.train()
    for x, y in feed.batches(skip=state.batch):
        if state.epoch == 1 and state.batch == 0:
            for tracker in parts.trackers:
                tracker.first_batch(state.model, memory_format(x, train.channels_last))
        out, loss = parts.forward(x, y)
        state.optimizer.zero_grad(set_to_none=True)
        # The scaler is a pass-through unless amp is fp16; under DDP the loss is weighted by this
        # rank's share of the batch, and backward averages the gradients of all ranks.
        state.scaler.scale(parts.ranks.loss_for_gradient(loss, feed, state.batch)).backward()
        if train.grad_clip is not None:
            state.scaler.unscale_(state.optimizer)
            nn.utils.clip_grad_norm_(state.model.parameters(), train.grad_clip)
        state.scaler.step(state.optimizer)
        state.scaler.update()
        if state.scheduler is not None and train.scheduler.per_batch:
            state.scheduler.step()
        state.train_metrics.update(out, y, loss)
        state.batch += 1
        ctx.on_batch(state.batch, len(feed))
        if parts.ranks.any(ctx.stop_requested()) and state.batch < len(feed):
            parts.ranks.save_checkpoint(parts.run_dir, state)
            raise Interrupted(f"stopped at epoch {state.epoch}, batch {state.batch}")


@torch.no_grad()
def evaluate(parts: Parts, model: nn.Module, feed, metrics: MetricSet) -> dict[str, float]:
    """Loss and metrics over a split, in eval mode; back to train mode after."""
    model.eval()
    metrics.reset()
    for x, y in feed.batches():
        out, loss = parts.forward(x, y, parts.eval_model)
        metrics.update(out, y, loss)
    model.train()
    return metrics.compute()


# --------------------------------------------------------------------------------------------------
# the run


def resolve_run(plan: RunPlan, prepared: PreparedData):
    """The network's shapes and the run's task, from the data's real shape and targets."""
    spec = plan.spec
    network_path = spec.network_path(spec.network_name)
    shapes = _network_shapes(spec, prepared, network_path)
    last = shapes.layers[-1]
    task = resolve_task(spec.train, shapes.output_shape, data_targets(spec, prepared),
                        network_path + (last.index, last.layer.type))
    return shapes, task


_SHAPES: dict[str, Any] = {}  # the last networks' shape passes, by what they were run over


def _network_shapes(spec: Spec, prepared: PreparedData, network_path: tuple[str, ...]):
    """The shape pass again, now with the data's real shape and class count (validate may not have
    known them); its errors are spec errors, located at the layer. A grid's runs mostly train the
    same network on the same data: they share one pass (it builds every layer to count parameters)."""
    key = json.dumps([spec.model_dump(mode="json", include={"model", "networks", "blocks"}), spec.network_name,
                      prepared.input_shape, prepared.num_classes, prepared.tokens], default=str)
    if key not in _SHAPES:
        if len(_SHAPES) >= 8:
            _SHAPES.clear()
        _SHAPES[key] = infer_shapes(spec.layers, prepared.input_shape, prepared.num_classes, tokens=prepared.tokens,
                                    path=network_path)
    return _SHAPES[key]


def watch_monitors(task: Task, spec: Spec, available: set[str], log) -> tuple[Monitor, Monitor | None, Monitor | None]:
    """The run's monitor, early stopping's and plateau's, each moved to a split the run has."""
    def on_split(monitor: Monitor, what: str) -> Monitor:
        moved = monitor.on_split(available)
        if moved != monitor:
            log(f"{what}: no {monitor.name.split('_')[0]} split in this run; watching {moved.name} instead")
        return moved

    train = spec.train
    monitor = on_split(task.monitor, "monitor")
    stop = on_split(watched(task, train.early_stopping.monitor), "early stopping") if train.early_stopping else None
    plateau = None
    if train.scheduler is not None and train.scheduler.name == "plateau":
        plateau = on_split(watched(task, train.scheduler.monitor), "plateau scheduler")
    return monitor, stop, plateau


def _new_state(plan: RunPlan, shapes, task: Task, device, generator, stop: Monitor | None,
               plateau: Monitor | None, steps_per_epoch: int, ranks: Ranks, pool: MetricPool) -> RunState:
    train = plan.spec.train
    model = build_from_shapes(shapes).to(device)
    prepare_finetuning(model, train.init_from, train.freeze)  # start from other weights, freeze layers
    if train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if train.sync_batchnorm and ranks.active:  # with one process a batch norm is already "synchronised"
        from .sync_batchnorm import convert_sync_batchnorm

        model = convert_sync_batchnorm(model, device)
    optimizer = train.optimizer.build(trainable_parameters(model))  # frozen parameters stay out
    scheduler = None
    if train.scheduler is not None:
        scheduler = train.scheduler.build(optimizer, epochs=train.epochs, lr=train.optimizer.lr,
                                          steps_per_epoch=steps_per_epoch,
                                          higher_is_better=plateau.higher_is_better if plateau else False)
    return RunState(
        model=model, optimizer=optimizer, scheduler=scheduler,
        scaler=torch.amp.GradScaler(device.type, enabled=train.amp == "fp16"),
        stopper=EarlyStopping(stop, train.early_stopping.patience, train.early_stopping.min_delta) if stop else None,
        generator=generator,
        train_metrics=pool.take(task, device), spec_hash=spec_hash(plan.spec.resolved()),
    )


def _models(model: nn.Module, train, ranks: Ranks, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """(the model that trains, the one that evaluates): compiled when asked, in DDP under torchrun."""
    step_model = ranks.wrap(model, device)
    if train.compile:
        step_model = torch.compile(step_model)
    if not ranks.active:
        return step_model, step_model
    return step_model, torch.compile(model) if train.compile else model


def _plain(model: nn.Module, shapes, train, ranks: Ranks) -> nn.Module:
    """The trained network with plain batch norms again (synchronised ones do not export)."""
    if not (train.sync_batchnorm and ranks.active):
        return model
    plain = build_from_shapes(shapes).to(next(model.parameters()).device)
    plain.load_state_dict(model.state_dict())
    return plain


def train_run(plan: RunPlan, run_dir: Path, prepared: PreparedData, ctx: RunContext,
              resume: bool = False) -> RunOutcome:
    if not ctx.ranks.active:
        return _train_run(plan, run_dir, prepared, ctx, resume)
    try:
        return _train_run(plan, run_dir, prepared, ctx, resume)
    except (RunFailed, Interrupted, SpecError):  # every rank raises these together
        raise
    except Exception as exc:
        raise _on_every_rank(ctx.ranks, exc) from exc


def _train_run(plan: RunPlan, run_dir: Path, prepared: PreparedData, ctx: RunContext, resume: bool) -> RunOutcome:
    spec, train, device, ranks = plan.spec, plan.spec.train, ctx.device, ctx.ranks
    if ranks.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    if train.deterministic != torch.are_deterministic_algorithms_enabled():  # the call imports inductor: 3 s
        torch.use_deterministic_algorithms(train.deterministic, warn_only=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not train.deterministic

    # ---- a fresh, re-seeded network (the NetworkFactory of hand-written studies), its task and data
    seed_everything(spec.seed)
    shapes, task = resolve_run(plan, prepared)
    generator = make_generator(device, spec.seed)  # the data order; part of the run's state
    train_feed, val_feed, test_feed = ranks.shard_feeds(make_feeds(prepared, spec.data, generator, spec.seed))
    available = {"train"} | ({"val"} if val_feed else set()) | ({"test"} if test_feed else set())
    monitor, stop, plateau = watch_monitors(task, spec, available, ctx.log)
    ctx.monitor = monitor
    pool = ctx.metric_pool
    state = _new_state(plan, shapes, task, device, generator, stop, plateau, len(train_feed), ranks, pool)
    ranks.diverge_rng(spec.seed)
    val_metrics = pool.take(task, device, confusion=True) if val_feed else None
    test_metrics = pool.take(task, device, confusion=True) if test_feed else None

    restored = restore(state, run_dir, ctx) if resume else False
    trackers = [*tracking_backends(spec, run_dir, ctx, restored), *ctx.trackers] if ranks.main else []
    parts = Parts(spec, task, *_models(state.model, train, ranks, device), train.loss.build().to(device), device,
                  run_dir, trackers, ranks)
    for tracker in trackers:
        tracker.start(state.epoch if resume else None, state.rows)  # rows a resumed run has

    outcome = RunOutcome("stopped", state.rows, monitor=monitor)
    info = model_info(prepared, task)
    with closing_files(wait_on_success=not ctx.leave_files_writing) as closing:

        def write_results(picture: bool) -> None:
            """The run's final weights and confusion matrix (with its picture when `picture`), as soon
            as its last epoch is evaluated: serialised here, written in the background while the epoch
            is logged and checkpointed."""
            if ranks.main:  # durable once run.json's write syncs the folder (grid.py: record)
                closing.append(in_background(atomic_write_bytes, run_dir / "weights.pt",
                                              weights_bytes(state.model.state_dict(), spec, info), False))
            closing.append(final_confusion(parts, state, prepared, (val_feed, test_feed), (val_metrics, test_metrics),
                                            monitor, ctx, picture))
            closing.append(write_outputs(parts, prepared, (val_feed, test_feed), monitor))

        try:
            _epochs(state, parts, (train_feed, val_feed, test_feed), (val_metrics, test_metrics),
                    (monitor, plateau), plan, ctx, write_results)
            if not closing:  # resumed from a checkpoint after its last epoch: nothing was left to train
                write_results(Cadence(spec.tracking.image_every).due_at_end(state.run_seconds))
        except torch.cuda.OutOfMemoryError as exc:
            raise _on_every_rank(ranks, RunFailed(f"out of memory: {str(exc).splitlines()[0]}")) from None
        finally:
            pool.give_back(state.train_metrics, val_metrics, test_metrics)
            outcome.rows = state.rows
            outcome.epochs = len(state.rows)
            for tracker in trackers:  # closes every backend, with the HParams summary once there are rows
                tracker.finish(ctx.hparams, outcome.summary() if state.rows else {})

        # ---- the export asked for after the run (of the model in memory)
        if ctx.export is not None and ranks.main:
            wait(closing)  # its model card reads the run's confusion matrix and outputs
            ctx.export(_plain(state.model, shapes, train, ranks).eval(), info)
    outcome.status, outcome.files = ("pruned", closing) if state.pruned else ("finished", closing)
    outcome.reason = state.pruned
    hand_files(trackers, run_dir, closing)
    return outcome


def tracking_backends(spec: Spec, run_dir: Path, ctx: RunContext, restored: bool) -> list[Tracker]:
    """The spec's tracking backends, found by name in the registry, each guarded: one that fails
    says so once and is off for the rest of the run, which goes on (the results table has its rows)."""
    if not spec.tracking.backends:
        return []
    from ..tracking import TRACKERS, TrackedRun
    from ..tracking.base import Guarded

    run = TrackedRun(run_dir, spec.model_dump(mode="json"), ctx.hparams, resumed=restored, graph=ctx.log_graph,
                     log=ctx.log)
    return [Guarded(TRACKERS[name](run, spec.tracking.options(name)), ctx.log) for name in spec.tracking.backends]


def hand_files(trackers: list[Tracker], run_dir: Path, closing: list[Future]) -> None:
    """The run's files to the backends that take them, once written: its weights, confusion files and
    export folder (an export after the run writes `export/`)."""
    takers = [tracker for tracker in trackers if tracker.takes_files]
    if not takers:
        return
    wait(closing)  # a file that failed to be written is left out; the run's record says why
    paths = [run_dir / "weights.pt", *sorted(run_dir.glob("confusion_matrix.*")), run_dir / "export"]
    for tracker in takers:
        tracker.artefacts([path for path in paths if path.exists()])


def restore(state: RunState, run_dir: Path, ctx: RunContext, checkpoint: dict[str, Any] | None = None) -> bool:
    """Every state as it was at the run's checkpoint (read from `run_dir` unless given); False when it
    has none (it starts afresh)."""
    checkpoint = ctx.ranks.local_checkpoint(checkpoint if checkpoint is not None else load_checkpoint(run_dir))
    if checkpoint is None:
        return False
    if checkpoint["spec_hash"] != state.spec_hash:
        raise RunFailed("the checkpoint was written by a different spec")
    state.load_state_dict(checkpoint)
    ctx.log(f"resuming at epoch {state.epoch}" + (f", batch {state.batch}" if state.batch else ""))
    return True


@contextlib.contextmanager
def closing_files(wait_on_success: bool):
    """The Futures of files a run writes in the background, waited for before it counts as finished
    (here, or by the caller once the run returns). Their error (a full disk) is the run's, unless the
    run already failed for another reason."""
    futures: list[Future] = []
    try:
        yield futures
    except BaseException:
        wait(futures)  # written or failed; the run's own error is the one to report
        raise
    if wait_on_success:
        for future in futures:
            future.result()
        futures.clear()


def _on_every_rank(ranks: Ranks, exc: Exception) -> Exception:
    """What a run's error becomes. Alone, itself. Under torchrun an error of one rank (its own, or a
    collective that failed because a peer died) leaves the others waiting for it: no rank can go on
    to the next run, so every one stops, and the run stays resumable from its last checkpoint."""
    if not ranks.active:
        return exc
    reason = str(exc).splitlines()[0] if str(exc) else ""
    return Interrupted(f"process {ranks.rank} of {ranks.world} stopped the run: {type(exc).__name__}: {reason}"[:300])


@dataclass
class Extras:
    """When this run checkpoints and logs its histograms and confusion images (runner/cadence.py)."""

    checkpoints: Cadence
    histograms: Cadence
    images: Cadence

    @classmethod
    def of(cls, spec: Spec, clock: Callable[[], float] | None = None) -> "Extras":
        """`clock`: the seconds `auto` counts (a packed run counts its share of its pack's time)."""
        tracking = spec.tracking
        return cls(Cadence(spec.train.checkpoint_every, last_under_auto=False, clock=clock),
                   Cadence(tracking.histogram_every, clock=clock), Cadence(tracking.image_every, clock=clock))


def _epochs(state: RunState, parts: Parts, feeds, split_metrics, monitors, plan: RunPlan, ctx: RunContext,
            at_last: Callable[[bool], Any]) -> None:
    """The epochs still to train; `at_last` once the last one is evaluated, told whether the images are
    due (its files are then written while the epoch is logged and checkpointed)."""
    train_feed, val_feed, test_feed = feeds
    monitor, plateau = monitors
    train = parts.spec.train
    extras = Extras.of(parts.spec)
    if (state.stopper is not None and state.stopper.stopped) or state.pruned:
        return  # resumed from the checkpoint after the epoch that stopped the run early
    while state.epoch <= train.epochs:
        epoch, epoch_start = state.epoch, time.perf_counter()
        train_epoch(state, parts, train_feed, ctx)

        # ---- once per epoch: read the sums, evaluate, log, checkpoint
        if state.train_metrics.count == 0:
            # The grid says why before the run starts (grid.py: check_training_split).
            raise RunFailed("the training split gave no batch (see data.val_split, drop_last and batch_size)")
        values = state.train_metrics.compute()
        if not math.isfinite(values["loss"]):
            raise RunFailed(f"the training loss became {values['loss']} in epoch {epoch}")
        for split, feed, metrics in (("val", val_feed, split_metrics[0]), ("test", test_feed, split_metrics[1])):
            if feed is not None:
                values.update({f"{split}_{k}": v for k, v in evaluate(parts, state.model, feed, metrics).items()})
        row: dict[str, Any] = {"run": plan.name, "epoch": epoch, **values,
                               "current_lr": state.optimizer.param_groups[0]["lr"]}  # moves with a scheduler
        if state.scheduler is not None:
            train.scheduler.step_epoch(state.scheduler, row.get(plateau.name) if plateau else None)
        epoch_seconds = time.perf_counter() - epoch_start
        state.run_seconds += epoch_seconds
        row.update(epoch_duration=round(epoch_seconds, 4), run_duration=round(state.run_seconds, 4), **ctx.hparams)
        state.rows.append(row)
        stop_early = state.stopper is not None and state.stopper.should_stop(row)
        if ctx.prune is not None and epoch < train.epochs and not stop_early:  # a search (one process)
            state.pruned = ctx.prune(epoch, row, monitor)
        last = epoch == train.epochs or stop_early or bool(state.pruned)
        images = extras.images.due(epoch, last)  # asked once: under `auto` the answer is the clock's
        if last:
            at_last(images)
        track_epoch(parts, lambda: state.model, epoch, row, split_metrics, extras, last, images)
        ctx.on_epoch(row, list(values))
        state.end_epoch()
        # Every rank decides alike: the checkpoint gathers from all of them.
        if parts.ranks.any(extras.checkpoints.due(epoch, last)):
            # Atomic, not synced to the disk: a killed process loses nothing that was renamed into
            # place, and the run's end syncs its weights and run.json, after which a checkpoint is
            # not read (a crash of the machine before that retrains from an earlier checkpoint).
            parts.ranks.save_checkpoint(parts.run_dir, state, durable=False)
            extras.checkpoints.restart()
        if state.pruned:
            ctx.log(state.pruned)
            break
        if stop_early:
            ctx.log(f"early stopping after epoch {epoch}: {state.stopper.monitor.name} has not improved "
                    f"for {state.stopper.patience} epochs")
            break


def track_epoch(parts: Parts, model: Callable[[], nn.Module], epoch: int, row: dict[str, Any], split_metrics,
                extras: Extras, last: bool, images_due: bool) -> None:
    """The epoch's row to every tracker, with the histograms of `model()` and the confusion images when due."""
    histograms = bool(parts.trackers) and extras.histograms.due(epoch, last)
    images = bool(parts.trackers) and images_due
    for tracker in parts.trackers:
        tracker.log(epoch, row)
        if histograms:
            tracker.model_state(epoch, model())
        for split, metrics in zip(("val", "test"), split_metrics):
            if images and metrics is not None and metrics.counts_confusion:
                tracker.confusion(epoch, split, metrics.confusion_counts(), parts.task.class_names)
    if histograms:
        extras.histograms.restart()
    if images:
        extras.images.restart()


def model_info(prepared: PreparedData, task: Task) -> ModelInfo:
    return ModelInfo(
        list(prepared.input_shape), "int64" if prepared.tokens else "float32", prepared.num_classes,
        {"mean": prepared.stats[0], "std": prepared.stats[1]} if prepared.stats else None,
        class_names=prepared.class_names, target_names=prepared.target_names,
        preprocessing=prepared.preprocessing,
        task={"kind": task.kind, "loss": task.loss.name, "outputs": task.outputs, "threshold": task.threshold,
              "monitor": task.monitor.name},
    )


def final_confusion(parts: Parts, state: RunState, prepared: PreparedData, split_feeds, split_metrics,
                     monitor: Monitor, ctx: RunContext, picture: bool) -> Future:
    """confusion_matrix.csv (and .png with `picture`: drawing and encoding it costs a tiny run a tenth
    of its time) of the final model on the monitor's split (val, else test, else train), written in
    the background (the Future says when, or why not)."""
    if not parts.task.confusion:
        return DONE
    (val_feed, test_feed), (val_metrics, test_metrics) = split_feeds, split_metrics
    feed, metrics = {"val": (val_feed, val_metrics), "test": (test_feed, test_metrics)}.get(
        split_of(monitor.name), (None, None))
    if metrics is not None and metrics.count == 0:  # resumed after the last epoch: not evaluated here yet
        evaluate(parts, state.model, feed, metrics)
    if metrics is None:  # the training split, in eval mode, in order
        if prepared.train is None:
            ctx.log("confusion matrix: the training split is fed by a DataLoader here; none written")
            return DONE
        from ..data import TensorFeed

        metrics = MetricSet(parts.task, parts.device, confusion=True)
        bs = parts.spec.data.evaluation_batch_size
        feed = TensorFeed(prepared.train.x, prepared.train.y, bs, False, False, None)
        evaluate(parts, state.model, feed.sharded(parts.ranks.shard) if parts.ranks.active else feed, metrics)
    counts = metrics.confusion_counts()  # every rank's, reduced: a collective under torchrun
    if parts.ranks.main and counts.sum() > 0:
        return write_confusion(parts.run_dir, counts, parts.task.class_names, background=in_background,
                               sync_folder=False, picture=picture)
    return DONE
