"""The loss and metrics of one split over one epoch, accumulated on the device.

Training batches and evaluation share this one object: `update` after every batch (no `.item()`, so
the GPU never waits), `compute` once per epoch. Outputs wait in a small buffer on the device and reach
the torchmetrics objects in chunks of about CHUNK samples: one metric update costs a fraction of a
millisecond whatever its size, as much as a tiny model's whole batch. The confusion matrix is read
only now and then (an image epoch, the run's end, a checkpoint), so its labels are counted when it
is read, not every epoch. The chunk boundaries depend only
on the batch sizes, and the buffer goes into `state_dict` with the sums, so an epoch resumed halfway
from a checkpoint reports exactly what an uninterrupted one would.

The loss is the model's own (as training minimises it); the metrics read what the task's
`metric_inputs` makes of outputs and targets: for real values, the data's own units (`Task.units`:
a series' scaled changes become the levels it forecasts), so that rmse is in the data's units and
mape and r2 mean what they say.

Under torchrun each process holds the sums of its own samples; `compute` reads them over every process
(torchmetrics all-gathers its states itself when torch.distributed is initialised; the loss sum and
count are all-reduced here), so every rank gets the same values, and must call it at the same point.
"""

from __future__ import annotations

import re
from typing import Any

import torch
import torch.distributed as dist

from ..compile.task import Task


CHUNK = 4096  # samples of outputs buffered before the metrics see them


def _column(name: str) -> str:
    """A class or label name as part of a column name and a TensorBoard tag."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "_"


def _several_processes() -> bool:
    return dist.is_initialized() and dist.get_world_size() > 1


class MetricSet:
    def __init__(self, task: Task, device: torch.device, confusion: bool = False):
        self.task, self.device = task, device
        self.kind = MetricSet.kind_of(task, device, confusion)
        self.counts_confusion = bool(confusion and task.confusion)
        # The torchmetrics objects, built when first used: a pack computing its runs' sets together
        # never uses most of them.
        self._metrics: dict[str, tuple[Any, Any]] | None = None
        # Each metric's batched form (`MetricSpec.batched`), for `compute_together`; None unless all have one.
        batched = [(spec, spec.batched(task.kind, task.size, task.threshold)) for spec in task.metrics]
        self.batched = batched if all(fn is not None for _, fn in batched) else None
        self.updated = False  # whether the torchmetrics objects may hold counts (since the last reset)
        self.values: dict[str, float] | None = None  # what `compute_together` computed, till the next reset
        self._named: tuple[Task, list[str]] | None = None  # (the task, the names of its values): `_names`
        self.labels: list[tuple[torch.Tensor, torch.Tensor]] = []  # (predicted, true) not yet in `confusion`
        # The (true, predicted) counts, as torchmetrics' MulticlassConfusionMatrix counts them (one
        # bincount), kept here: building that object cost a packed run's end a millisecond.
        self.confusion: torch.Tensor | None = None  # None till labels are counted
        self.reduced: torch.Tensor | None = None  # `confusion` over every process, till it changes
        self.loss_sum = torch.zeros((), device=device)
        self.count = 0
        self.pending: list[tuple[torch.Tensor, torch.Tensor]] = []  # (outputs, targets) not yet counted
        self.pending_count = 0

    def _build_metrics(self) -> dict[str, tuple[Any, Any]]:
        built = {}
        for spec in self.task.metrics:
            metric = spec.build(self.task.kind, self.task.size, self.task.threshold).to(self.device)
            metric.persistent(True)  # its running sums go into checkpoints
            built[spec.key] = (spec, metric)
        return built

    @property
    def metrics(self) -> dict[str, tuple[Any, Any]]:
        """Each metric's key to (its spec, its torchmetrics object)."""
        if self._metrics is None:
            self._metrics = self._build_metrics()
        return self._metrics

    @staticmethod
    def kind_of(task: Task, device: torch.device, confusion: bool) -> tuple:
        """What makes two sets interchangeable: the same metrics, built alike, on the same device."""
        return (task.kind, task.size, task.threshold, tuple(m.model_dump_json() for m in task.metrics),
                str(device), confusion and task.confusion)

    def update(self, out: torch.Tensor, y: torch.Tensor, loss: torch.Tensor) -> None:
        self.loss_sum += loss.detach() * len(y)  # weighted by the real batch size: a short batch counts less
        self.take(out.detach().float(), y.detach())

    def take(self, out: torch.Tensor, y: torch.Tensor) -> None:
        """Outputs and targets whose loss is in `loss_sum` already (a pack sums its runs' losses at
        once, runner/stacked/pack.py, and hands each run its outputs in chunks)."""
        self.count += len(y)
        self.values = None
        self.pending.append((out, y))
        self.pending_count += len(y)
        if self.pending_count >= CHUNK:
            self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        out = torch.cat([o for o, _ in self.pending])
        y = torch.cat([t for _, t in self.pending])
        self.pending, self.pending_count = [], 0
        preds, target = self.task.metric_inputs(out, y)
        for _, metric in self.metrics.values():
            metric.update(preds, target)
        self.updated = True
        self._keep_labels(out, y)

    def _keep_labels(self, out: torch.Tensor, y: torch.Tensor) -> None:
        if self.counts_confusion:
            self.labels.append((self.task.labels(out), y.long().view(-1)))

    def _count_labels(self) -> None:
        """The labels kept since the last count into the confusion matrix, at once."""
        if not self.labels:
            return
        size = self.task.size
        predicted, true = torch.cat([p for p, _ in self.labels]), torch.cat([t for _, t in self.labels])
        counts = torch.bincount(true * size + predicted, minlength=size * size).view(size, size)
        self.confusion = counts if self.confusion is None else self.confusion + counts
        self.labels, self.reduced = [], None

    def _own_confusion(self) -> torch.Tensor:
        """This process's counts (zeros before any)."""
        self._count_labels()
        if self.confusion is None:
            size = self.task.size
            return torch.zeros(size, size, dtype=torch.long, device=self.device)
        return self.confusion

    def _reduced_confusion(self) -> torch.Tensor:
        """Every process's counts summed (a collective under torchrun: every rank calls it at the same
        point, and a later read by rank 0 alone finds them here)."""
        counts = self._own_confusion()
        if self.reduced is None:
            if _several_processes():
                counts = counts.clone()
                dist.all_reduce(counts)
            self.reduced = counts
        return self.reduced

    def compute(self) -> dict[str, float]:
        """Every value of the epoch: `loss`, then each metric's key (per-label ones as `<name>_<label>`)."""
        if self.values is not None:
            return dict(self.values)
        self._flush()
        loss_sum, count = self._loss_totals()
        values = [loss_sum / max(count, 1)]
        if self.counts_confusion and _several_processes():
            self._reduced_confusion()  # reduced now, with every rank; rank 0 alone reads it later
        for spec, metric in self.metrics.values():
            value = metric.compute()
            values += list(value.reshape(-1).float().unbind()) if spec.per_label else [value.reshape(()).float()]
        # One read from the device for the lot.
        return dict(zip(self._names(), torch.stack([v.to(self.loss_sum.device).float() for v in values]).tolist()))

    @staticmethod
    def compute_together(sets: list[MetricSet]) -> list[dict[str, float]]:
        """Each set's `compute()`, for the runs of a pack (runner/stacked/pack.py): at once where every
        metric has a batched form and each set holds only the outputs of its epoch (a tiny model's
        epoch is less than a chunk), as many of the same shapes; else set by set. A torchmetrics
        object costs a tenth of a millisecond an update and a compute, whatever its size: R times
        what one run's share of the pack's step costs."""
        outputs = MetricSet._pending_together(sets)
        if outputs is None:
            return [metrics.compute() for metrics in sets]
        first = sets[0]
        inputs = [first.task.metric_inputs(out, y) for out, y in outputs]
        preds, targets = torch.stack([p for p, _ in inputs]), torch.stack([t for _, t in inputs])
        columns = [torch.stack([metrics.loss_sum for metrics in sets]) / max(first.count, 1)]
        for spec, fn in first.batched:
            values = fn(preds, targets).float()
            columns += list(values.unbind(1)) if spec.per_label else [values]
        labels = MetricSet._labels_together(first, outputs)
        together = []
        for i, (metrics, (_, y), values) in enumerate(zip(sets, outputs, torch.stack(columns, 1).tolist())):
            if labels is not None:
                metrics.labels.append((labels[i], y.long().view(-1)))
            metrics.values = dict(zip(metrics._names(), values))
            together.append(dict(metrics.values))
        return together

    def _names(self) -> list[str]:
        """The names of `compute`'s values, in its order; made once for the set's task (a pack asks
        for them every epoch of every run, and a per-label metric names a column a class)."""
        if self._named is None or self._named[0] is not self.task:
            names = ["loss"]
            for spec in self.task.metrics:
                names += ([f"{spec.name}_{_column(label)}" for label in self.task.class_names] if spec.per_label
                          else [spec.key])
            self._named = (self.task, names)
        return self._named[1]

    @staticmethod
    def _labels_together(first: MetricSet, outputs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor | None:
        """Each set's predicted classes (R, N) for its confusion matrix, in one call: a task's labels
        are decided sample by sample (an argmax, a threshold), so the R runs' samples go as one batch."""
        if not first.counts_confusion:
            return None
        out = torch.stack([o for o, _ in outputs])
        return first.task.labels(out.flatten(0, 1)).view(len(outputs), -1)

    @staticmethod
    def _pending_together(sets: list[MetricSet]) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        """Each set's (outputs, targets) not yet counted, taken out of it, where `compute_together`
        can compute them at once; None (and the sets untouched) where it cannot."""
        first = sets[0]
        if (len(sets) < 2 or first.batched is None or _several_processes()
                or any(m.kind != first.kind or m.updated or m.values is not None or not m.pending
                       or m.count != first.count for m in sets)):
            return None
        outputs = [(torch.cat([o for o, _ in m.pending]), torch.cat([t for _, t in m.pending])) for m in sets]
        if any(out.shape != outputs[0][0].shape or y.shape != outputs[0][1].shape for out, y in outputs):
            return None
        for metrics in sets:
            metrics.pending, metrics.pending_count = [], 0
        return outputs

    def _loss_totals(self) -> tuple[torch.Tensor, int]:
        """The loss sum and sample count over every process; with one, this process's."""
        if not _several_processes():
            return self.loss_sum, self.count
        totals = torch.stack([self.loss_sum.double(), torch.tensor(float(self.count), device=self.device).double()])
        dist.all_reduce(totals)
        return totals[0].float(), int(totals[1].item())

    def confusion_counts(self) -> torch.Tensor | None:
        """(true, predicted) counts, on the CPU."""
        self._flush()
        if not self.counts_confusion:
            return None
        return self._reduced_confusion().cpu()

    def reset(self) -> None:
        self.loss_sum.zero_()
        self.count = 0
        self.pending, self.pending_count = [], 0
        self.values = None
        if self.updated:  # a reset costs as much as an update: none where nothing was counted
            for _, metric in self.metrics.values():
                metric.reset()
            self.updated = False
        self.labels, self.confusion, self.reduced = [], None, None

    def state_dict(self) -> dict[str, Any]:
        return {  # the checkpoint holds the counts; the outputs still pending stay outputs
            "loss_sum": self.loss_sum.detach().cpu(), "count": self.count,
            "pending": [(o.cpu(), t.cpu()) for o, t in self.pending],
            "metrics": {key: metric.state_dict() for key, (_, metric) in self.metrics.items()},
            # torchmetrics' own state_dict: checkpoints written when it counted load alike
            "confusion": {"confmat": self._own_confusion().cpu()} if self.counts_confusion else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loss_sum.copy_(state["loss_sum"])
        self.count = state["count"]
        self.pending = [(o.to(self.device), t.to(self.device)) for o, t in state.get("pending", [])]
        self.pending_count = sum(len(t) for _, t in self.pending)
        for key, (_, metric) in self.metrics.items():
            metric.load_state_dict(state["metrics"][key])
            metric.to(self.device)  # loaded on the CPU
        self.updated, self.values = True, None
        self.labels, self.reduced = [], None
        saved = state.get("confusion") if self.counts_confusion else None
        self.confusion = saved["confmat"].to(self.device) if saved is not None else None


class MetricPool:
    """The metric sets of a grid's finished runs, taken up again (reset) by its next runs of the same
    task: a torchmetrics object costs more to build (0.1-0.2 ms) than a tiny model's epoch spends
    updating it, and a run builds two or three sets."""

    def __init__(self):
        self._free: dict[tuple, list[MetricSet]] = {}

    def take(self, task: Task, device: torch.device, confusion: bool = False) -> MetricSet:
        kind = MetricSet.kind_of(task, device, confusion)
        free = self._free.get(kind)
        if free:
            metrics = free.pop()
            metrics.reset()
        else:
            metrics = MetricSet(task, device, confusion)
        metrics.task = task  # an equal one: its class names, for the per-label columns
        return metrics

    def give_back(self, *sets: MetricSet | None) -> None:
        """Sets no longer used by their run (at its end, whatever the end)."""
        for metrics in sets:
            if metrics is not None:
                self._free.setdefault(metrics.kind, []).append(metrics)
