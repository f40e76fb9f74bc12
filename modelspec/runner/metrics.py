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

import copy
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
        from torchmetrics.classification import MulticlassConfusionMatrix

        self.task, self.device = task, device
        self.kind = MetricSet.kind_of(task, device, confusion)
        self.metrics = {}
        for spec in task.metrics:
            metric = spec.build(task.kind, task.size, task.threshold).to(device)
            metric.persistent(True)  # its running sums go into checkpoints
            self.metrics[spec.key] = (spec, metric)
        self.confusion = None
        self.labels: list[tuple[torch.Tensor, torch.Tensor]] = []  # (predicted, true) not yet in `confusion`
        self.confusion_counted = False  # whether `confusion` has counts since its last reset
        if confusion and task.confusion:
            self.confusion = MulticlassConfusionMatrix(task.size, validate_args=False).to(device)
            self.confusion.persistent(True)
        self.loss_sum = torch.zeros((), device=device)
        self.count = 0
        self.pending: list[tuple[torch.Tensor, torch.Tensor]] = []  # (outputs, targets) not yet counted
        self.pending_count = 0

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
        if self.confusion is not None:
            self.labels.append((self.task.labels(out), y.long().view(-1)))

    def _count_labels(self) -> None:
        """The labels kept since the last count into the confusion matrix, at once."""
        if self.labels:
            self.confusion.update(torch.cat([p for p, _ in self.labels]), torch.cat([t for _, t in self.labels]))
            self.labels = []
            self.confusion_counted = True

    def compute(self) -> dict[str, float]:
        """Every value of the epoch: `loss`, then each metric's key (per-label ones as `<name>_<label>`)."""
        self._flush()
        loss_sum, count = self._loss_totals()
        names, values = ["loss"], [loss_sum / max(count, 1)]
        if self.confusion is not None and _several_processes():
            self._count_labels()
            self.confusion.compute()  # reduced now, with every rank; rank 0 alone reads it later (cached)
        for key, (spec, metric) in self.metrics.items():
            value = metric.compute()
            if spec.per_label:
                labels = self.task.class_names
                names += [f"{spec.name}_{_column(label)}" for label in labels]
                values += list(value.reshape(-1).float().unbind())
            else:
                names.append(key)
                values.append(value.reshape(()).float())
        # One read from the device for the lot.
        return dict(zip(names, torch.stack([v.to(self.loss_sum.device).float() for v in values]).tolist()))

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
        if self.confusion is None:
            return None
        self._count_labels()
        return self.confusion.compute().cpu()

    def reset(self) -> None:
        self.loss_sum.zero_()
        self.count = 0
        self.pending, self.pending_count = [], 0
        for _, metric in self.metrics.values():
            metric.reset()
        self.labels = []
        if self.confusion_counted:  # a reset costs as much as an update: none where nothing was counted
            self.confusion.reset()
            self.confusion_counted = False

    def state_dict(self) -> dict[str, Any]:
        if self.confusion is not None:
            self._count_labels()  # the checkpoint holds the counts; the outputs still pending stay outputs
        return {
            "loss_sum": self.loss_sum.detach().cpu(), "count": self.count,
            "pending": [(o.cpu(), t.cpu()) for o, t in self.pending],
            "metrics": {key: metric.state_dict() for key, (_, metric) in self.metrics.items()},
            "confusion": self.confusion.state_dict() if self.confusion is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loss_sum.copy_(state["loss_sum"])
        self.count = state["count"]
        self.pending = [(o.to(self.device), t.to(self.device)) for o, t in state.get("pending", [])]
        self.pending_count = sum(len(t) for _, t in self.pending)
        for key, (_, metric) in self.metrics.items():
            metric.load_state_dict(state["metrics"][key])
            metric.to(self.device)  # loaded on the CPU
        self.labels = []
        if self.confusion is not None and state.get("confusion") is not None:
            self.confusion.load_state_dict(state["confusion"])
            self.confusion.to(self.device)
            self.confusion_counted = True


class MetricPool:
    """The metric sets of a grid's finished runs, taken up again (reset) by its next runs of the same
    task: a torchmetrics object costs more to build (0.1-0.2 ms) than a tiny model's epoch spends
    updating it, and a run builds two or three sets."""

    def __init__(self):
        self._free: dict[tuple, list[MetricSet]] = {}
        # A fresh set of each kind: copying it costs a sixth of building one (torchmetrics' constructors
        # inspect signatures), which a pack taking dozens of sets at once pays for each.
        self._fresh: dict[tuple, MetricSet] = {}

    def take(self, task: Task, device: torch.device, confusion: bool = False) -> MetricSet:
        kind = MetricSet.kind_of(task, device, confusion)
        free = self._free.get(kind)
        if free:
            metrics = free.pop()
            metrics.reset()
        elif kind in self._fresh:
            fresh = self._fresh[kind]
            metrics = copy.deepcopy(fresh, {id(fresh.task): task})  # the task is shared, not copied
        else:
            metrics = MetricSet(task, device, confusion)
            self._fresh[kind] = copy.deepcopy(metrics)
        metrics.task = task  # an equal one: its class names, for the per-label columns
        return metrics

    def give_back(self, *sets: MetricSet | None) -> None:
        """Sets no longer used by their run (at its end, whatever the end)."""
        for metrics in sets:
            if metrics is not None:
                self._free.setdefault(metrics.kind, []).append(metrics)
