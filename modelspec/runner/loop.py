"""One run: re-seed, build a fresh model and optimizer, train `epochs`, evaluate, checkpoint.

Reads top to bottom like a hand-written loop. Metrics accumulate on the device and are read once
per epoch (no per-batch `.item()`, which would stall the GPU every step); the loss is weighted by
the real batch size, so a short last batch counts for what it is.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..artifacts import ModelInfo, save_weights
from ..compile import build_from_shapes
from ..compile.shapes import check_classifier_output, infer_shapes
from ..data import PreparedData, make_feeds
from ..spec.grid import RunPlan
from ..spec.train import TrainSpec, metric_mode
from ..tracking import TensorBoardTracker
from .checkpoint import load_checkpoint, save_checkpoint, spec_hash
from .device import make_generator, rng_states, seed_everything, set_rng_states


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
    on_epoch: Callable[[list[dict[str, Any]]], None] = lambda rows: None
    on_batch: Callable[[int, int], None] = lambda done, total: None  # progress
    hparams: dict[str, Any] = field(default_factory=dict)  # grid values, for rows and HParams
    export: Callable[[nn.Module, ModelInfo], None] | None = None  # export after the run


@dataclass
class RunOutcome:
    status: str  # finished | failed | stopped
    rows: list[dict[str, Any]]
    reason: str | None = None
    epochs: int = 0

    def metric(self, name: str, best: bool) -> float | None:
        return row_metric(self.rows, name, best)


def row_metric(rows: list[dict[str, Any]], name: str, best: bool) -> float | None:
    """The best (largest) or the last value of a metric over a run's rows; None if never measured."""
    values = [row[name] for row in rows if row.get(name) is not None]
    if not values:
        return None
    return max(values) if best else values[-1]


# --------------------------------------------------------------------------------------------------
# small helpers


def make_optimizer(train: TrainSpec, model: nn.Module) -> torch.optim.Optimizer:
    return train.optimizer.torch_class(model.parameters(), lr=train.optimizer.lr, **train.optimizer.kwargs)


def make_scheduler(train: TrainSpec, optimizer, steps_per_epoch: int):
    spec = train.scheduler
    if spec is None:
        return None
    kwargs = spec.kwargs
    if spec.name == "cosine":
        kwargs.setdefault("T_max", train.epochs)
    elif spec.name == "onecycle":
        kwargs.setdefault("max_lr", train.optimizer.lr)
        if "total_steps" not in kwargs:
            kwargs.setdefault("epochs", train.epochs)
            kwargs.setdefault("steps_per_epoch", max(1, steps_per_epoch))
    elif spec.name == "plateau":
        kwargs.setdefault("mode", metric_mode(spec.monitor))
    return spec.torch_class(optimizer, **kwargs)


def memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """Image batches (N, C, H, W) in channels-last layout when the spec asks for it."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x


def autocast(device: torch.device, amp: str | None):
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


@torch.no_grad()
def evaluate(model: nn.Module, feed, loss_fn, device: torch.device, amp: str | None,
             channels_last: bool) -> tuple[float, float]:
    """Mean loss and accuracy over a split, in eval mode; back to train mode after."""
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    count = 0
    for x, y in feed.batches():
        x = memory_format(x, channels_last)
        with autocast(device, amp):
            out = model(x)
            loss = loss_fn(out.float(), y)
        loss_sum += loss * len(y)
        correct += (out.argmax(1) == y).sum()
        count += len(y)
    model.train()
    return (loss_sum / count).item(), (correct.double() / count).item()  # one sync per split


class EarlyStopping:
    def __init__(self, monitor: str, patience: int, min_delta: float):
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.sign = 1.0 if metric_mode(monitor) == "max" else -1.0
        self.best: float | None = None
        self.bad_epochs = 0

    def should_stop(self, row: dict[str, Any]) -> bool:
        value = row.get(self.monitor)
        if value is None:
            return False
        if self.best is None or self.sign * (value - self.best) > self.min_delta:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def state(self) -> dict:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load(self, state: dict) -> None:
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]


# --------------------------------------------------------------------------------------------------
# the run


def train_run(plan: RunPlan, run_dir: Path, prepared: PreparedData, ctx: RunContext,
              resume: bool = False) -> RunOutcome:
    spec, train = plan.spec, plan.spec.train
    device, amp = ctx.device, train.amp
    run_dir.mkdir(parents=True, exist_ok=True)
    if train.deterministic != torch.are_deterministic_algorithms_enabled():  # the call imports inductor: 3 s
        torch.use_deterministic_algorithms(train.deterministic, warn_only=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not train.deterministic

    # ---- a fresh, re-seeded network (the NetworkFactory of hand-written studies)
    seed_everything(spec.seed)
    # The shape pass again, now with the data's real shape and class count (validate may not have
    # known them); its errors are spec errors, located at the layer.
    network_path = spec.network_path(spec.network_name)
    shapes = infer_shapes(spec.layers, prepared.input_shape, prepared.num_classes, tokens=prepared.tokens,
                          path=network_path)
    check_classifier_output(shapes, prepared.num_classes, train.loss.name, network_path)
    model = build_from_shapes(shapes).to(device)
    if train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if train.compile else model
    optimizer = make_optimizer(train, model)
    loss_fn = train.loss.torch_class(**train.loss.kwargs)
    generator = make_generator(device, spec.seed)
    train_feed, val_feed, test_feed = make_feeds(prepared, spec.data, generator, spec.seed)
    scheduler = make_scheduler(train, optimizer, len(train_feed))
    scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None
    stopper = (EarlyStopping(**train.early_stopping.model_dump()) if train.early_stopping else None)
    info = ModelInfo(
        list(prepared.input_shape), "int64" if prepared.tokens else "float32", prepared.num_classes,
        {"mean": prepared.stats[0], "std": prepared.stats[1]} if prepared.stats else None,
    )

    # ---- resume: every state as it was at the checkpoint
    rows: list[dict[str, Any]] = []
    start_epoch, skip_batches, partial = 1, 0, None
    run_seconds = 0.0
    resolved_hash = spec_hash(spec.resolved())
    checkpoint = load_checkpoint(run_dir) if resume else None
    if checkpoint is not None:
        if checkpoint["spec_hash"] != resolved_hash:
            raise RunFailed("the checkpoint was written by a different spec")
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if scheduler is not None and checkpoint.get("scheduler") is not None:
            scheduler.load_state_dict(checkpoint["scheduler"])
        if scaler is not None and checkpoint.get("scaler") is not None:
            scaler.load_state_dict(checkpoint["scaler"])
        if stopper is not None and checkpoint.get("early_stopping") is not None:
            stopper.load(checkpoint["early_stopping"])
        rows = list(checkpoint["rows"])
        start_epoch, skip_batches = checkpoint["epoch"], checkpoint["batch"]
        partial = checkpoint.get("partial")
        run_seconds = checkpoint["run_seconds"]
        set_rng_states(checkpoint["rng"], generator)
        ctx.log(f"resuming at epoch {start_epoch}" + (f", batch {skip_batches}" if skip_batches else ""))
    # On resume TensorBoard drops what the stopped process logged from `start_epoch` on.
    tracker = TensorBoardTracker(run_dir, spec.tracking, purge_step=start_epoch if resume else None,
                                 first_batch_logged=checkpoint is not None)

    def checkpoint_state(epoch: int, batch: int, epoch_rng: dict | None, acc=None) -> dict:
        return {
            "spec_hash": resolved_hash, "epoch": epoch, "batch": batch,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None,
            "early_stopping": stopper.state() if stopper is not None else None,
            # Mid-epoch: the RNG states at the epoch's start redraw its order; `partial` holds the
            # batches done and the metric sums so far.
            "rng": epoch_rng if epoch_rng is not None else rng_states(generator),
            "partial": acc, "rows": rows, "run_seconds": run_seconds,
        }

    # ---- the epochs
    try:
        for epoch in range(start_epoch, train.epochs + 1):
            epoch_start = time.perf_counter()
            epoch_rng = rng_states(generator) if skip_batches == 0 else checkpoint["rng"]
            model.train()
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), dtype=torch.long, device=device)
            count = 0
            if partial is not None:  # a resumed mid-epoch: the sums of the batches already done
                loss_sum += partial["loss_sum"]
                correct += partial["correct"]
                count = partial["count"]
                set_rng_states(partial["rng_now"], None)
                partial = None
            batch = skip_batches
            for x, y in train_feed.batches(skip=skip_batches):
                x = memory_format(x, train.channels_last)
                if epoch == 1 and batch == 0:
                    tracker.first_batch(model, x)
                with autocast(device, amp):
                    out = step_model(x)
                    loss = loss_fn(out.float(), y)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                if train.grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                if scheduler is not None and train.scheduler.per_batch:
                    scheduler.step()
                loss_sum += loss.detach() * len(y)
                correct += (out.argmax(1) == y).sum()
                count += len(y)
                batch += 1
                ctx.on_batch(batch, len(train_feed))
                if ctx.stop_requested() and batch < len(train_feed):
                    acc = {"loss_sum": loss_sum.cpu(), "correct": correct.cpu(), "count": count,
                           "rng_now": rng_states(None)}
                    save_checkpoint(run_dir, checkpoint_state(epoch, batch, epoch_rng, acc))
                    raise Interrupted(f"stopped at epoch {epoch}, batch {batch}")
            skip_batches = 0

            # ---- once per epoch: read the sums, evaluate, log, checkpoint
            if count == 0:
                raise RunFailed("the training split gave no batch (drop_last with batch_size > samples?)")
            train_loss = (loss_sum / count).item()
            if not math.isfinite(train_loss):
                raise RunFailed(f"the training loss became {train_loss} in epoch {epoch}")
            row: dict[str, Any] = {"run": plan.name, "epoch": epoch, "loss": train_loss,
                                   "accuracy": (correct.double() / count).item()}
            for split, feed in (("val", val_feed), ("test", test_feed)):
                split_loss, split_acc = evaluate(step_model, feed, loss_fn, device, amp, train.channels_last) if feed else (None, None)
                row[f"{split}_loss"], row[f"{split}_accuracy"] = split_loss, split_acc
            row["current_lr"] = optimizer.param_groups[0]["lr"]  # moves with a scheduler
            if scheduler is not None and not train.scheduler.per_batch:
                if train.scheduler.name == "plateau":
                    monitored = row.get(train.scheduler.monitor)
                    scheduler.step(monitored if monitored is not None else train_loss)
                else:
                    scheduler.step()
            epoch_seconds = time.perf_counter() - epoch_start
            run_seconds += epoch_seconds
            row.update(epoch_duration=round(epoch_seconds, 4), run_duration=round(run_seconds, 4), **ctx.hparams)
            rows.append(row)
            tracker.epoch(epoch, {k: row[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy",
                                                     "test_loss", "test_accuracy", "current_lr")}, model)
            ctx.on_epoch(rows)
            stop_early = stopper is not None and stopper.should_stop(row)
            last = epoch == train.epochs or stop_early
            if train.checkpoint_every and (epoch % train.checkpoint_every == 0 or last):
                save_checkpoint(run_dir, checkpoint_state(epoch + 1, 0, None))
            if stop_early:
                ctx.log(f"early stopping after epoch {epoch}: {stopper.monitor} has not improved "
                        f"for {stopper.patience} epochs")
                break
    except torch.cuda.OutOfMemoryError as exc:
        raise RunFailed(f"out of memory: {str(exc).splitlines()[0]}") from None
    finally:
        if rows:
            tracker.hparams(ctx.hparams, {"val_accuracy": row_metric(rows, "val_accuracy", best=True),
                                          "val_loss": rows[-1]["val_loss"], "accuracy": rows[-1]["accuracy"],
                                          "loss": rows[-1]["loss"]})
        tracker.close()

    # ---- the run's result: final weights with the resolved spec, and the export if asked
    save_weights(run_dir / "weights.pt", model, spec, info)
    if ctx.export is not None:
        ctx.export(model.eval(), info)
    return RunOutcome("finished", rows, epochs=len(rows))


