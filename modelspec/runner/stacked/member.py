"""One run of a pack: all a run alone has (its state, feeds, metrics, trackers and files), with its
weights and optimizer state living in slot `index` of the pack's stacked tensors.

The run's `RunState` is loop.py's, so its checkpoint is a plain run's: its model and optimizer are
views of the slot whose `state_dict()` is what the run alone would save (`SlotModel`, `SlotOptimizer`),
and a checkpoint written here resumes under any executor, and the reverse. What reads the run's
network as a module (histograms, the TensorBoard graph, `weights.pt`, the export after the run, the
final confusion matrix) gets the pack's one plain network with the slot's weights loaded (`module()`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from concurrent.futures import wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ...artifacts import weights_bytes
from ...compile.task import Monitor, Task
from ...data import PreparedData, make_feeds
from ...fileio import atomic_write_bytes, torch_bytes
from ...spec.grid import RunPlan
from ..background import in_background
from ..cadence import Cadence
from ..checkpoint import spec_hash
from ..device import make_generator
from ..progress import epoch_line
from ..outputs import write_outputs
from ..loop import (Extras, Parts, RunContext, RunOutcome, final_confusion, hand_files, model_info, restore,
                    tracking_backends, track_epoch, watch_monitors)
from ..state import EarlyStopping, RunState


class SlotModel:
    """A run's model as its RunState sees it: the slot, read and written as the run's own state dict."""

    def __init__(self, stacked, index: int):
        self.stacked, self.index = stacked, index

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.stacked.unstack(self.index)

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.stacked.load_run(self.index, state_dict)

    def train(self, mode: bool = True) -> "SlotModel":  # the pack's forward sets the mode of all
        return self

    def eval(self) -> "SlotModel":
        return self


class SlotOptimizer:
    """A run's optimizer as its RunState sees it: its state dict is torch's for the run alone; its
    learning rate is the one its scheduler set (the scheduler's stand-in group)."""

    def __init__(self, optimizer, lr_group: torch.optim.Optimizer, index: int, names: list[str]):
        self.optimizer, self.lr_group, self.index, self.names = optimizer, lr_group, index, names

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.lr_group.param_groups

    def state_dict(self) -> dict[str, Any]:
        state = self.optimizer.run_state(self.index, self.names)
        state["param_groups"][0]["lr"] = self.lr_group.param_groups[0]["lr"]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_run_state(self.index, state, self.names)
        self.lr_group.param_groups[0]["lr"] = state["param_groups"][0]["lr"]


@dataclass
class Candidate:
    """A run the vmap executor may pack: its data decoded, its network's shapes and task resolved."""

    plan: RunPlan
    run_dir: Path
    prepared: PreparedData | None  # None while a run with its own data waits for its pack
    shapes: Any  # compile.shapes.NetworkShapes
    task: Task
    checkpoint: dict[str, Any] | None = None  # where a resumed run continues
    data_bytes: int = 0  # the size of its own copy of the data (0: it shares the grid's)


@dataclass
class Member:
    """A run training in a pack."""

    index: int
    run: Candidate
    ctx: RunContext
    feeds: tuple  # (train, val, test)
    monitor: Monitor
    stop: Monitor | None
    plateau: Monitor | None
    state: RunState | None = None
    split_metrics: tuple = (None, None)  # (val, test) MetricSets
    parts: Parts | None = None
    extras: Extras | None = None
    closing: list = field(default_factory=list)  # its final files' Futures
    outcome: RunOutcome | None = None  # set when it ends: finished, pruned, failed or stopped
    module: Callable[[], nn.Module] = lambda: None  # the plain network with this run's weights
    info: Any = None  # artifacts.ModelInfo: what its weights file and export say the model reads
    row_lr: float = 0.0  # the learning rate of the epoch's row, read before its scheduler steps

    @property
    def plan(self) -> RunPlan:
        return self.run.plan

    @property
    def active(self) -> bool:
        return self.outcome is None

    @property
    def epochs(self) -> int:
        return self.plan.spec.train.epochs

    @classmethod
    def open(cls, index: int, run: Candidate, ctx: RunContext) -> "Member":
        """Its feeds (its own data-order generator, seeded as alone) and monitors."""
        spec, device = run.plan.spec, ctx.device
        generator = make_generator(device, spec.seed)
        feeds = make_feeds(run.prepared, spec.data, generator, spec.seed)
        available = {"train"} | {name for name, feed in zip(("val", "test"), feeds[1:]) if feed is not None}
        monitor, stop, plateau = watch_monitors(run.task, spec, available, ctx.log)
        ctx.monitor = monitor
        return cls(index, run, ctx, feeds, monitor, stop, plateau)

    def attach(self, stacked, optimizer, schedules, names: list[str], module: Callable[[], nn.Module],
               loss_fn: nn.Module) -> bool:
        """Its RunState over slot `index`, restored from its checkpoint if it has one (True then), and
        its trackers started."""
        spec, ctx, i = self.plan.spec, self.ctx, self.index
        train = spec.train
        pool = ctx.metric_pool
        self.state = RunState(
            model=SlotModel(stacked, i), optimizer=SlotOptimizer(optimizer, schedules.optimizers[i], i, names),
            scheduler=schedules.schedulers[i], scaler=torch.amp.GradScaler(ctx.device.type, enabled=False),
            stopper=EarlyStopping(self.stop, train.early_stopping.patience, train.early_stopping.min_delta)
            if self.stop else None,
            generator=self.feeds[0].generator, train_metrics=pool.take(self.run.task, ctx.device),
            spec_hash=spec_hash(spec.resolved()))
        self.split_metrics = tuple(pool.take(self.run.task, ctx.device, confusion=True) if feed else None
                                   for feed in self.feeds[1:])
        self.module = module
        restored = False
        if self.run.checkpoint is not None:
            restored = restore(self.state, self.run.run_dir, ctx, self.run.checkpoint)
            if ctx.device.type == "cpu":
                stacked.set_rng_state(i, torch.get_rng_state())  # its dropout draws go on as they were
        trackers = [*tracking_backends(spec, self.run.run_dir, ctx, restored), *ctx.trackers]
        self.parts = Parts(spec, self.run.task, None, None, loss_fn, ctx.device, self.run.run_dir, trackers)
        # `auto` counts the run's own seconds, its share of the pack's time: a run in a pack of 256
        # spends the pack's seconds an epoch, and would otherwise get pictures its run alone never gets.
        self.extras = Extras.of(spec, clock=lambda: self.state.run_seconds)
        for tracker in trackers:
            tracker.start(self.state.epoch if self.run.checkpoint is not None else None, self.state.rows)
        self.info = model_info(self.run.prepared, self.run.task)
        return restored

    # ---- during an epoch

    def first_batch(self, x: torch.Tensor) -> None:
        """What the trackers take from the first batch (the graph, traced on the run's network)."""
        if self.parts.trackers and self.state.epoch == 1 and self.state.batch == 0:
            model = self.module()
            for tracker in self.parts.trackers:
                tracker.first_batch(model, x)

    @contextlib.contextmanager
    def own_rng(self, stacked):
        """torch's global generator as this run's (its dropout stream) while its state is read. On the
        CPU only: there the run alone draws its masks from that generator; on a GPU its stream is
        CUDA's, whose masks a pack does not reproduce (stacked/model.py), and the states differ in kind."""
        if self.ctx.device.type != "cpu":
            yield
            return
        saved = torch.get_rng_state()
        torch.set_rng_state(stacked.rng_state(self.index))
        try:
            yield
        finally:
            torch.set_rng_state(saved)

    def checkpoint(self, stacked) -> tuple[Path, bytes]:
        """Its checkpoint as of now, serialised for the pack to write with its other runs' (pack.py):
        a kill between two runs' files would resume them at different places, and apart."""
        with self.own_rng(stacked):
            snapshot = self.state.state_dict()
        return self.run.run_dir, torch_bytes(snapshot)

    # ---- at the end of an epoch

    def end_epoch(self, values: dict[str, Any], seconds: float, checkpoint_due: bool, stacked, log,
                  outputs: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[Path, bytes] | None:
        """loop.py's epoch end for this run: its row, trackers, early stopping, and its end; its
        checkpoint, where one is due, is returned for the pack to write with the others'. `outputs`:
        its (outputs, targets) of the epoch's evaluation on its monitor's split, where the pack kept
        them (for outputs.csv, should the run end now)."""
        state, spec = self.state, self.plan.spec
        epoch = state.epoch
        state.run_seconds += seconds
        row = {"run": self.plan.name, "epoch": epoch, **values, "current_lr": self.row_lr,
               "epoch_duration": round(seconds, 4), "run_duration": round(state.run_seconds, 4),
               **self.ctx.hparams}
        state.rows.append(row)
        stop_early = state.stopper is not None and state.stopper.should_stop(row)
        if self.ctx.prune is not None and epoch < self.epochs and not stop_early:  # a search's trial
            state.pruned = self.ctx.prune(epoch, row, self.monitor)
        last = epoch == self.epochs or stop_early or bool(state.pruned)
        images = self.extras.images.due(epoch, last)
        if last:
            self.write_results(images, outputs)
        track_epoch(self.parts, self.module, epoch, row, self.split_metrics, self.extras, last, images)
        log(epoch_line(self.plan.name, row, list(values)))
        state.end_epoch()
        every = self.extras.checkpoints.every
        checkpoint = self.checkpoint(stacked) if checkpoint_due or (last and isinstance(every, int)) else None
        if state.pruned:
            self.ctx.log(f"{self.plan.name}: {state.pruned}")
        elif stop_early:
            self.ctx.log(f"{self.plan.name}: early stopping after epoch {epoch}: {state.stopper.monitor.name} has "
                         f"not improved for {state.stopper.patience} epochs")
        if last:
            self.finish()
        return checkpoint

    def write_results(self, picture: bool, outputs: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        """Its final weights, confusion matrix and outputs, written in the background (loop.py:
        write_results). With `outputs` (see end_epoch) its network is not run again: the confusion
        matrix is counted from its monitor split's metrics, outputs.csv made from them."""
        spec, run_dir = self.plan.spec, self.run.run_dir
        self.closing.append(in_background(atomic_write_bytes, run_dir / "weights.pt",
                                          weights_bytes(self.state.model.state_dict(), spec, self.info), False))
        # The pack's one plain network, this run's weights loaded (a millisecond), where it is run.
        parts = self.parts if outputs is not None else dataclasses.replace(self.parts, eval_model=self.module())
        self.closing.append(final_confusion(parts, self.state, self.run.prepared, self.feeds[1:], self.split_metrics,
                                            self.monitor, self.ctx, picture))
        self.closing.append(write_outputs(parts, self.run.prepared, self.feeds[1:], self.monitor, outputs))

    def finish(self) -> None:
        """Trained: trackers closed, the export after the run, its outcome."""
        self._close()
        if self.ctx.export is not None:
            wait(self.closing)  # its model card reads the run's confusion matrix and outputs
            self.ctx.export(copy.deepcopy(self.module()).eval(), self.info)
        files = list(self.closing)
        if not self.ctx.leave_files_writing:
            for future in files:
                future.result()
            files = []
        self.outcome = RunOutcome("pruned" if self.state.pruned else "finished", self.state.rows, self.state.pruned,
                                  monitor=self.monitor, epochs=len(self.state.rows), files=files)
        hand_files(self.parts.trackers, self.run.run_dir, self.closing)

    def end(self, status: str, reason: str) -> None:
        """Failed (a NaN loss) or stopped (Ctrl-C): its trackers closed, its rows kept."""
        self._close()
        self.outcome = RunOutcome(status, self.state.rows if self.state else [], reason, monitor=self.monitor)

    def _close(self) -> None:
        self.ctx.metric_pool.give_back(self.state.train_metrics, *self.split_metrics)
        summary = RunOutcome("", self.state.rows, monitor=self.monitor).summary() if self.state.rows else {}
        for tracker in self.parts.trackers:
            tracker.finish(self.ctx.hparams, summary)


def pack_checkpoints(spec) -> Cadence:
    """One checkpoint cadence for the whole pack: its runs checkpoint at the same epochs, so that a
    resumed pack finds them at one place."""
    return Cadence(spec.train.checkpoint_every, last_under_auto=False)
