"""A pack: R runs of one network trained at once, as loop.py trains each of them alone.

Every batch, each active run draws its own batch from its own data-order generator (as its feed
would), the R batches go through the stacked network in one vmapped forward, each run's loss is its
own (R,), one backward gives every run its own gradient, and `StackedOptimizer` steps each with its
own hyper-parameters and its scheduler's rate. Each epoch ends as a run alone's does (member.py):
metrics, evaluation (stacked too), the row, trackers, early stopping, checkpoints, and the run's end.

A run that has ended (finished, stopped early, its loss NaN) is masked out of the optimizer step: its
slot is still computed (the stacked tensors keep their shape) but never read again. The runs of a
pack are always at the same batch of their epochs (same data size, batch size and drop_last; a
resumed pack is made of runs checkpointed at one place), so their epochs end together.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.func import vmap

from ...compile import build_from_shapes
from ...compile.finetune import prepare_finetuning
from ...compile.task import split_of
from ..checkpoint import save_checkpoints_together
from ..loop import Interrupted, RunContext
from ..metrics import CHUNK, MetricSet
from ..outputs import MAX_ROWS
from .member import Candidate, Member, pack_checkpoints
from .model import StackedModel
from .optim import StackedOptimizer
from .schedule import StackedSchedules


STACKED_DATA_BYTES = 256 << 20  # runs' own copies of the data are stacked for one gather up to this size
REPACK_SHARE = 0.5  # a pack with at most this share of its runs still training is packed anew
KEPT_OUTPUT_BYTES = 64 << 20  # an evaluation's outputs are kept for the runs' outputs.csv up to this size


class Repack(Exception):
    """The runs still training, checkpointed, to be packed anew (their checkpoints are plain runs')."""

    def __init__(self, runs: list[Candidate]):
        super().__init__(f"{len(runs)} run(s) to pack anew")
        self.runs = runs


class Pack:
    def __init__(self, runs: list[Candidate], contexts: list[RunContext], *, log: Callable[[str], None],
                 on_batch: Callable[[int, int], None], stop_requested: Callable[[], bool],
                 on_end: Callable[[Member], None]):
        self.log, self.on_batch, self.stop_requested, self.on_end = log, on_batch, stop_requested, on_end
        self.members = [Member.open(i, run, ctx) for i, (run, ctx) in enumerate(zip(runs, contexts))]
        first = runs[0].plan.spec
        self.device = contexts[0].device
        self.task = runs[0].task
        self.stacked = _stacked_model(runs, self.device)
        names = [name for name, p in self.stacked.params.items() if p.requires_grad]
        train_specs = [run.plan.spec.train for run in runs]
        self.optimizer = StackedOptimizer({n: self.stacked.params[n] for n in names}, first.train.optimizer.name,
                                          [{"lr": t.optimizer.lr, **t.optimizer.kwargs} for t in train_specs])
        self.schedules = StackedSchedules(
            [t.scheduler for t in train_specs], [t.optimizer.lr for t in train_specs],
            epochs=[t.epochs for t in train_specs], steps_per_epoch=len(self.members[0].feeds[0]),
            higher_is_better=[m.plateau.higher_is_better if m.plateau else False for m in self.members])
        self.per_batch = any(t.scheduler is not None and t.scheduler.per_batch for t in train_specs)
        clip = [t.grad_clip for t in train_specs]
        self.max_norm = torch.tensor(clip, device=self.device) if clip[0] is not None else None
        self.loss = _Losses([t.loss for t in train_specs], self.task, self.device)
        plain = _plain_network(runs[0].shapes, self.device)

        def module_of(i: int) -> nn.Module:
            plain.load_state_dict(self.stacked.unstack(i))
            return plain.train()

        for m in self.members:
            m.attach(self.stacked, self.optimizer, self.schedules, names, lambda i=m.index: module_of(i),
                     self.loss.fns[m.index])
        self.optimizer.set_lr(self.schedules.lrs())  # the rates the runs' schedulers start at (or resumed at)
        self.checkpoints = pack_checkpoints(first)
        self.shared = all(run.prepared is runs[0].prepared for run in runs)
        self.own_data = None if self.shared else _stacked_data(runs)
        self.active_mask = torch.ones(len(runs), dtype=torch.bool, device=self.device)
        self.all_active = True
        self.kept: dict[int, tuple[Tensor, Tensor]] = {}  # split -> the epoch's evaluation outputs (R, N, ...)

    def active(self) -> list[Member]:
        return [m for m in self.members if m.active]

    def _update_mask(self) -> None:
        self.active_mask = torch.tensor([m.active for m in self.members], device=self.device)
        self.all_active = all(m.active for m in self.members)

    def _ended(self, member: Member) -> None:
        self._update_mask()
        self.on_end(member)

    # ---- the loop

    def train(self) -> None:
        """Every run's epochs still to train; on a stop request, checkpoint every run mid-epoch and
        raise Interrupted (the runs still active are the caller's to mark stopped)."""
        for m in self.active():
            if m.state.stopper is not None and m.state.stopper.stopped or m.state.epoch > m.epochs or m.state.pruned:
                raise AssertionError("a run with nothing left to train was packed")  # vmap_grid.py keeps them out
        n = len(self.members[0].feeds[0])
        while active := self.active():
            start, epoch = time.perf_counter(), active[0].state.epoch
            for m in active:
                m.state.begin_epoch()
            drawn = {m.index: m.feeds[0].draw_epoch() for m in active}
            orders = self._epoch_orders(drawn, active)
            self.sums = _Sums([m.state.train_metrics if m.active else None for m in self.members])
            self.stacked.train()
            for b in range(active[0].state.batch, n):
                x, y = self._train_batch(b, drawn, orders, active)
                if b == 0:  # the trackers take the run's first batch (first_batch says which epoch)
                    for m in active:
                        m.first_batch(x[m.index])
                self._step(x, y, active)
                self.on_batch(b + 1, n)
                if self.stop_requested() and b + 1 < n:
                    self.sums.hand_over()
                    save_checkpoints_together([m.checkpoint(self.stacked) for m in active], durable=True)
                    raise Interrupted(f"stopped at epoch {epoch}, batch {b + 1}")
            self.sums.hand_over()
            # Each run's share of the pack's time: its rows' durations, and what `auto` cadences count.
            self._end_epoch(active, epoch, (time.perf_counter() - start) / len(active))
            self._repack_if_sparse()

    def _repack_if_sparse(self) -> None:
        """When at most REPACK_SHARE of the pack still trains (the others stopped early, or their epochs
        were fewer), the ended runs' slots would go on costing their compute: checkpoint the runs still
        training and hand them back (Repack) to be packed anew from those checkpoints."""
        still = self.active()
        if still and len(self.members) > 1 and len(still) <= REPACK_SHARE * len(self.members):
            save_checkpoints_together([m.checkpoint(self.stacked) for m in still], durable=False)
            for m in still:
                m.end("stopped", "repacked")
            raise Repack([m.run for m in still])

    def _step(self, x: Tensor, y: Tensor, active: list[Member]) -> None:
        out = self.stacked(x)
        losses = self.loss(out, y)
        self.stacked.zero_grad()
        losses.sum().backward()  # each run's loss reaches only its own slot
        if self.max_norm is not None:
            self._clip()
        # None while every run trains: no mask to apply, and no read of it back from a GPU each step.
        self.optimizer.step(None if self.all_active else self.active_mask)
        if self.per_batch:
            self.schedules.step_batch([m.active for m in self.members])
            self.optimizer.set_lr(self.schedules.lrs())
        self.sums.add(out, y, losses)
        for m in active:
            m.state.batch += 1

    @torch.no_grad()
    def _clip(self) -> None:
        """torch's clip_grad_norm_, each run over its own gradients with its own max norm."""
        grads = [p.grad for p in self.optimizer.params.values() if p.grad is not None]
        norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), 2, dim=1) for g in grads])  # (P, R)
        coef = torch.clamp(self.max_norm / (torch.linalg.vector_norm(norms, 2, dim=0) + 1e-6), max=1.0)
        for g in grads:
            g.mul_(coef.view(-1, *[1] * (g.dim() - 1)))

    def _epoch_orders(self, drawn: dict[int, Any], active: list[Member]) -> Tensor | None:
        """Every run's sample order of the epoch (R, size) as rows of the pack's training data (the
        shared tensors, or the runs' own copies one after another), sliced a batch at a time as its
        feed's `batch_indices` slices it (an ended run's slot takes the first active run's); None
        where the runs' batches are drawn apart (random transforms, data not stackable)."""
        feed = active[0].feeds[0]
        if feed.augment is not None or not (self.shared or self.own_data is not None):
            return None
        in_order = torch.arange(feed.size, device=feed.x.device)
        orders = {m.index: in_order if drawn[m.index][0] is None else drawn[m.index][0] for m in active}
        orders = torch.stack([orders.get(m.index, orders[active[0].index]) for m in self.members])
        if not self.shared:  # run i's copy starts at row i * size of the stacked copies
            orders += torch.arange(len(self.members), device=orders.device).unsqueeze(1) * feed.size
        return orders

    def _train_batch(self, b: int, drawn: dict[int, Any], orders: Tensor | None,
                     active: list[Member]) -> tuple[Tensor, Tensor]:
        """Each run's batch b of its epoch (R, N, ...); an ended run's slot takes the first active run's."""
        first = active[0]
        if orders is not None:
            # One index_select for the pack (advanced indexing gathers 5 times slower from a cold cache).
            bs = first.feeds[0].batch_size
            rows = orders[:, b * bs : (b + 1) * bs]
            x, y = (first.feeds[0].x, first.feeds[0].y) if self.shared else self.own_data[0]
            if not self.shared:
                x, y = x.flatten(0, 1), y.flatten(0, 1)
            flat = rows.reshape(-1)
            return (x.index_select(0, flat).view(*rows.shape, *x.shape[1:]),
                    y.index_select(0, flat).view(*rows.shape, *y.shape[1:]))
        batches = {m.index: m.feeds[0].batch_at(b, drawn[m.index]) for m in active}
        picked = [batches.get(m.index, batches[first.index]) for m in self.members]
        return torch.stack([x for x, _ in picked]), torch.stack([y for _, y in picked])

    # ---- the end of an epoch

    def _end_epoch(self, active: list[Member], epoch: int, seconds: float) -> None:
        self.kept = {}
        values = dict(zip([m.index for m in active],
                          MetricSet.compute_together([m.state.train_metrics for m in active])))
        for m in active:
            loss = values[m.index]["loss"]
            if loss != loss or loss in (float("inf"), float("-inf")):
                reason = f"the training loss became {loss} in epoch {epoch}"
                self.log(f"run {m.plan.name} failed: {reason}")
                m.end("failed", reason)
                self._ended(m)
        active = [m for m in active if m.active]
        for split, name in enumerate(("val", "test")):
            evaluating = [m for m in active if m.feeds[1 + split] is not None]
            if evaluating:
                for index, split_values in self._evaluate(split, evaluating).items():
                    values[index].update({f"{name}_{k}": v for k, v in split_values.items()})
        for m in active:
            m.row_lr = m.state.optimizer.param_groups[0]["lr"]  # the epoch's rate, before its scheduler steps
        monitored = [values[m.index].get(m.plateau.name) if m.active and m.plateau else None for m in self.members]
        self.schedules.step_epoch(monitored, [m.active for m in self.members])
        self.optimizer.set_lr(self.schedules.lrs())
        checkpoint_due = self.checkpoints.due(epoch, False)
        checkpoints = []
        for m in active:
            checkpoints.append(m.end_epoch(values[m.index], seconds, checkpoint_due, self.stacked, self.log,
                                           self._kept_outputs(m)))
            if not m.active:
                self._ended(m)
        self.kept = {}
        save_checkpoints_together([c for c in checkpoints if c is not None], durable=False)
        if checkpoint_due:
            self.checkpoints.restart()

    def _kept_outputs(self, m: Member) -> tuple[Tensor, Tensor] | None:
        """Run m's outputs and targets of this epoch's evaluation on its monitor's split, if kept."""
        kept = self.kept.get({"val": 0, "test": 1}.get(split_of(m.monitor.name)))
        return None if kept is None else (kept[0][m.index], kept[1][m.index])

    def _outputs_to_keep(self, split: int, evaluating: list[Member], feed) -> int:
        """How many samples' outputs of this evaluation to keep: those outputs.csv holds, where a run
        monitored on this split may end this epoch (its last, or one early stopping or a search may
        end); then it is not run again to write them (a millisecond a run of a tiny grid)."""
        name = ("val", "test")[split]
        if not any(split_of(m.monitor.name) == name and (m.state.epoch >= m.epochs or m.state.stopper is not None
                                                         or m.ctx.prune is not None) for m in evaluating):
            return 0
        return min(feed.size, MAX_ROWS)

    @torch.no_grad()
    def _evaluate(self, split: int, evaluating: list[Member]) -> dict[int, dict[str, float]]:
        """Loss and metrics of every run over its `split` (0: val, 1: test), in eval mode."""
        feeds = [m.feeds[1 + split] for m in self.members]
        first = next(f for f in feeds if f is not None)
        for m in evaluating:
            m.split_metrics[split].reset()
        chosen = {m.index for m in evaluating}
        sums = _Sums([m.split_metrics[split] if m.index in chosen else None for m in self.members],
                     keep=self._outputs_to_keep(split, evaluating, first))
        self.stacked.eval()
        for b in range(len(first)):
            x, y = self._eval_batch(b, feeds, first, split)
            out = self.stacked(x)
            sums.add(out, y, self.loss(out, y))
        sums.hand_over()
        self.stacked.train()
        if (kept := sums.kept()) is not None:
            self.kept[split] = kept
        return dict(zip([m.index for m in evaluating],
                        MetricSet.compute_together([m.split_metrics[split] for m in evaluating])))

    def _eval_batch(self, b: int, feeds: list, first, split: int) -> tuple[Tensor, Tensor]:
        bs, R = first.batch_size, len(self.members)
        if self.shared:  # the same samples for every run: a view, no copy
            x, y = first.x[b * bs : (b + 1) * bs], first.y[b * bs : (b + 1) * bs]
            return x.expand(R, *x.shape), y.expand(R, *y.shape)
        if self.own_data is not None and self.own_data[1 + split] is not None:
            x, y = self.own_data[1 + split]
            return x[:, b * bs : (b + 1) * bs], y[:, b * bs : (b + 1) * bs]
        sources = [feed or first for feed in feeds]  # a run without this split computes the first's
        return (torch.stack([f.x[b * bs : (b + 1) * bs] for f in sources]),
                torch.stack([f.y[b * bs : (b + 1) * bs] for f in sources]))


class _Sums:
    """The loss sums and outputs of every run of a pack over part of a pass, handed to each run's
    MetricSet in chunks rather than batch by batch (a metric update per run per batch cost a packed
    tiny grid a quarter of its time). The sums start from the sets' own and add each batch's losses
    as each set's `update` would, in float32 element by element: the same numbers. With `keep`, the
    outputs and targets of the pass's first `keep` samples are also kept, up to KEPT_OUTPUT_BYTES."""

    def __init__(self, sets: list[MetricSet | None], keep: int = 0):
        self.sets = sets
        zero = next(s for s in sets if s is not None).loss_sum.new_zeros(())
        self.loss_sums = torch.stack([s.loss_sum if s is not None else zero for s in sets])
        self.outs: list[Tensor] = []
        self.targets: list[Tensor] = []
        self.count = 0
        self.keep = keep  # samples still to keep
        self.kept_outs: list[Tensor] = []
        self.kept_targets: list[Tensor] = []

    def add(self, out: Tensor, y: Tensor, losses: Tensor) -> None:
        out = out.detach().float()
        self.loss_sums += losses.detach() * y.shape[1]
        self.outs.append(out)
        self.targets.append(y.detach())
        self.count += y.shape[1]
        if self.keep > 0:
            self._keep(out, y.detach())
        if self.count >= CHUNK:
            self.hand_over()

    def _keep(self, out: Tensor, y: Tensor) -> None:
        if not self.kept_outs and self.keep * out[:, :1].numel() * out.element_size() > KEPT_OUTPUT_BYTES:
            self.keep = 0  # too large to hold: the runs compute their own
            return
        self.kept_outs.append(out[:, : self.keep])
        self.kept_targets.append(y[:, : self.keep])
        self.keep -= min(self.keep, y.shape[1])

    def kept(self) -> tuple[Tensor, Tensor] | None:
        """(outputs (R, keep, ...), targets (R, keep, ...)) once all `keep` samples have passed."""
        if not self.kept_outs or self.keep > 0:
            return None
        return torch.cat(self.kept_outs, 1), torch.cat(self.kept_targets, 1)

    def hand_over(self) -> None:
        if not self.outs:
            return
        outs, targets = torch.cat(self.outs, 1), torch.cat(self.targets, 1)
        for i, metrics in enumerate(self.sets):
            if metrics is not None:
                metrics.loss_sum.copy_(self.loss_sums[i])
                metrics.take(outs[i], targets[i])
        self.outs, self.targets, self.count = [], [], 0


class _Losses:
    """Each run's loss (R,) of the stacked outputs: runs with the same loss spec share one batched loss,
    the loss kind's own (`LossSpec.batched`) or its module under vmap."""

    def __init__(self, specs: list, task, device: torch.device):
        self.task = task
        built: dict[str, nn.Module] = {}
        self.batched: dict[int, Callable | None] = {}  # by the module's id: None once vmap has failed it
        self.fns = []
        for spec in specs:
            key = json.dumps(spec.model_dump(mode="json"), sort_keys=True)
            if key not in built:
                fn = built[key] = spec.build().to(device)
                own = spec.batched()
                self.batched[id(fn)] = (self._kinds_own(own) if own is not None else
                                        vmap(lambda o, t, fn=fn: fn(o, task.loss_target(t))))
            self.fns.append(built[key])
        self.groups = [(fn, torch.tensor([i for i, f in enumerate(self.fns) if f is fn], device=device))
                       for fn in built.values()]

    def _kinds_own(self, losses: Callable) -> Callable:
        def call(out: Tensor, y: Tensor) -> Tensor:
            target = self.task.loss_target(y.flatten(0, 1))  # made for one batch: the R batches as one
            return losses(out, target.view(*y.shape[:2], *target.shape[1:]))
        return call

    def __call__(self, out: Tensor, y: Tensor) -> Tensor:
        out = out.float()
        if len(self.groups) == 1:
            return self._of(self.groups[0][0], out, y)
        losses = out.new_empty(out.shape[0])
        for fn, index in self.groups:
            losses = losses.index_put((index,), self._of(fn, out[index], y[index]))
        return losses

    def _of(self, fn: nn.Module, out: Tensor, y: Tensor) -> Tensor:
        batched = self.batched.get(id(fn))
        if batched is not None:
            try:
                return batched(out, y)
            except RuntimeError:  # a loss vmap has no rule for: the runs one by one (same numbers)
                self.batched[id(fn)] = None
        return torch.stack([fn(o, self.task.loss_target(t)) for o, t in zip(out, y)])


def _stacked_data(runs: list[Candidate]) -> list[tuple[Tensor, Tensor] | None] | None:
    """Each run's own copy of its splits (train, val, test) stacked (R, N, ...), for one gather a
    batch, when the runs carve their own splits (a grid over the seed with val_split) of equal sizes
    and the copies are small; else None (each run's batch is then gathered apart)."""
    stacked, total = [], 0
    for name in ("train", "val", "test"):
        splits = [getattr(run.prepared, name) for run in runs]
        if all(split is None for split in splits):
            stacked.append(None)
            continue
        if any(split is None or split.x.shape != splits[0].x.shape for split in splits):
            return None
        total += sum(split.x.numel() * split.x.element_size() for split in splits)
        stacked.append(splits)
    if total > STACKED_DATA_BYTES:
        return None
    return [(torch.stack([s.x for s in splits]), torch.stack([s.y for s in splits])) if splits else None
            for splits in stacked]


def _stacked_model(runs: list[Candidate], device: torch.device) -> StackedModel:
    """The runs' networks, each built as alone (its seed, then init_from and freeze: equal in a pack)."""
    train = runs[0].plan.spec.train
    prepare = None
    if train.init_from is not None or train.freeze:
        prepare = lambda model: prepare_finetuning(model, train.init_from, train.freeze)  # noqa: E731
    return StackedModel(runs[0].shapes, [run.plan.spec.seed for run in runs], device, prepare=prepare)


def _plain_network(shapes, device: torch.device) -> nn.Module:
    """One plain network of the pack's kind, for what reads a run as a module (its weights are loaded
    before each use); built aside from every run's random stream."""
    with torch.random.fork_rng(devices=[]):
        return build_from_shapes(shapes).to(device)
