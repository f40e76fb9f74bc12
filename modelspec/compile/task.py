"""The task a run trains: it follows from the loss, the data's targets and the network's head.

| loss                              | targets                 | head      | task        |
| --------------------------------- | ----------------------- | --------- | ----------- |
| cross_entropy, nll, multi_margin  | K classes               | K outputs | multiclass (binary when K = 2) |
| bce_with_logits, bce              | 2 classes (0/1)         | 1 output  | binary      |
| bce_with_logits, bce              | L labels, 0/1 each      | L outputs | multilabel  |
| mse, l1, smooth_l1, huber         | T real values           | T outputs | regression  |

`resolve_task` checks that table with the numbers (a located spec error otherwise), then the metrics
and the monitor against the task. A `Task` then tells the runner how to shape targets for the loss and
what the metrics read (probabilities, labels, values): the batch loop itself knows no task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..errors import Path, SpecError, did_you_mean
from ..spec.layers import Shape, fmt_shape
from ..spec.losses import LossSpec, TargetKind
from ..spec.metrics import DEFAULT_METRICS, MetricSpec, TaskKind, metric_direction
from ..spec.train import TrainSpec

SPLIT_PREFIXES = ("val_", "test_", "")


@dataclass(frozen=True)
class DataUnits:
    """How real-valued targets, and the outputs that predict them, go back to the data's own units:
    `value * scale + offset` per target, plus the sample's base level where the model learns a change
    from a level known with the input (a series with `difference`). The base levels come with the
    targets, as T more columns after the T that the loss reads. Fitted from the data (its
    preprocessing's `units`), so that metrics mean what the data means."""

    scale: tuple[float, ...]
    offset: tuple[float, ...]
    base: bool = False

    @property
    def count(self) -> int:
        return len(self.scale)

    def __call__(self, values: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """(N, T) values in model units -> data units; `known` holds the base levels (N, T) if any."""
        scale, offset = (torch.tensor(v, dtype=values.dtype, device=values.device) for v in (self.scale, self.offset))
        values = values * scale + offset
        return values + known if self.base else values


def units_of(preprocessing: dict | None) -> DataUnits | None:
    """The data's fitted way back to its units (`preprocessing["units"]`), if it has one."""
    units = (preprocessing or {}).get("units")
    return DataUnits(tuple(units["scale"]), tuple(units["offset"]), bool(units["base"])) if units else None


@dataclass(frozen=True)
class Targets:
    """What the data's targets are: their kind, how many (classes, labels, values), and their names."""

    kind: TargetKind
    count: int | None  # None where only the data can tell (an image folder's classes)
    names: list[str] | None = None
    units: DataUnits | None = None  # real values: the way back to the data's units, if they were transformed


def targets_of(kind: str, num_classes: int | None, real_count: int | None, class_names: list[str] | None = None,
               target_names: list[str] | None = None, units: DataUnits | None = None) -> Targets:
    """The data's `target_kind` in the task's terms: `binary` data are 0/1 values, one output each
    (`num_classes` of them): two classes when there is one, multi-label when there are several.
    `real_count` counts the target columns; with `units` they include the base levels after them."""
    if kind == "binary":
        if num_classes in (None, 1):
            names = class_names if class_names and len(class_names) == 2 else None
            return Targets("classes", 2, names)
        names = target_names if target_names and len(target_names) == num_classes else class_names
        return Targets("multi_label", num_classes, names)
    if kind == "real":
        count = units.count if units is not None else real_count
        return Targets("real", count, target_names or class_names, units)
    return Targets("classes", num_classes, class_names)


@dataclass(frozen=True)
class Monitor:
    """A row key to watch, and its direction."""

    name: str  # e.g. val_accuracy, val_rmse, loss
    higher_is_better: bool

    def better(self, value: float, best: float | None, min_delta: float = 0.0) -> bool:
        if best is None:
            return True
        return value - best > min_delta if self.higher_is_better else best - value > min_delta

    def on_split(self, available: set[str]) -> "Monitor":
        """Itself where the run has its split; else the same metric on the first split the run has:
        val, else test, else train."""
        if split_of(self.name) in available:
            return self
        key = strip_split(self.name)
        for prefix, split in (("val_", "val"), ("test_", "test"), ("", "train")):
            if split in available:
                return Monitor(prefix + key, self.higher_is_better)
        return self


def split_of(name: str) -> str:
    """`val_rmse` -> val, `test_f1` -> test, `loss` -> train."""
    return "val" if name.startswith("val_") else "test" if name.startswith("test_") else "train"


def strip_split(name: str) -> str:
    for prefix in ("val_", "test_"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


@dataclass(frozen=True)
class Task:
    """Base of the four tasks; `size` counts classes, labels or real targets."""

    kind: TaskKind
    loss: LossSpec
    size: int
    outputs: int
    metrics: tuple[MetricSpec, ...]
    monitor: Monitor
    threshold: float = 0.5
    names: list[str] | None = None
    units: DataUnits | None = None  # regression: how values go back to the data's units
    confusion: ClassVar[bool] = False  # a confusion matrix makes sense (one class per sample)

    @property
    def class_names(self) -> list[str]:
        return list(self.names) if self.names else [str(i) for i in range(self.size)]

    def loss_target(self, y: torch.Tensor) -> torch.Tensor:
        """Targets as the loss takes them."""
        raise NotImplementedError

    def metric_inputs(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(preds, target) as every metric of the task reads them."""
        raise NotImplementedError

    def labels(self, out: torch.Tensor) -> torch.Tensor:
        """Predicted class indices (N,), for the confusion matrix."""
        raise NotImplementedError


class MultiClassTask(Task):
    confusion: ClassVar[bool] = True
    def loss_target(self, y):
        return y.long()

    def metric_inputs(self, out, y):
        return out, y.long()  # scores as they are: argmax needs no softmax; auroc applies its own

    def labels(self, out):
        return out.argmax(1)


class BinaryTask(Task):
    """One output (bce, bce_with_logits) or two class scores (cross_entropy with 2 classes)."""

    confusion: ClassVar[bool] = True

    def loss_target(self, y):
        return y.long() if self.outputs == 2 else y.to(torch.float32).view(-1, 1)

    def positive_probability(self, out: torch.Tensor) -> torch.Tensor:
        if self.outputs == 2:
            return self.loss.probabilities(out, 1)[:, 1]
        return self.loss.probabilities(out, None).view(-1)

    def metric_inputs(self, out, y):
        return self.positive_probability(out), y.long().view(-1)

    def labels(self, out):
        return (self.positive_probability(out) >= self.threshold).long()


class MultiLabelTask(Task):
    def loss_target(self, y):
        return y.to(torch.float32)

    def metric_inputs(self, out, y):
        return self.loss.probabilities(out, None), y.long()


class RegressionTask(Task):
    """The loss reads values in the model's units; the metrics read them in the data's (`units`)."""

    def _columns(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(targets (N, T), what else each sample carries: base levels (N, T) or nothing (N, 0))."""
        y = y.to(torch.float32).view(len(y), -1)
        return y[:, : self.size], y[:, self.size :]

    def loss_target(self, y):
        return self._columns(y)[0]

    def metric_inputs(self, out, y):
        target, known = self._columns(y)
        preds = out.float().view(len(out), -1)
        if self.units is None:
            return preds, target
        return self.units(preds, known), self.units(target, known)


TASKS: dict[TaskKind, type[Task]] = {
    "multiclass": MultiClassTask, "binary": BinaryTask, "multilabel": MultiLabelTask, "regression": RegressionTask,
}


# --------------------------------------------------------------------------------------------------
# resolving and checking


def _kind_and_outputs(loss: LossSpec, targets: Targets, output: Shape, head: Path) -> tuple[TaskKind, int]:
    """The task kind and the outputs per sample it needs; a located error if the head disagrees."""
    what = {"classes": "class labels", "multi_label": "0/1 labels (multi-label)", "real": "real values"}
    if targets.kind not in loss.targets:
        wanted = " or ".join(what[k] for k in loss.targets)
        hint = {"classes": "for class labels use cross_entropy (or bce_with_logits with 2 classes)",
                "multi_label": "for multi-label targets use bce_with_logits",
                "real": "for real-valued targets use mse, l1, smooth_l1 or huber"}[targets.kind]
        raise SpecError(f"{loss.name} trains on {wanted}, but the data's targets are {what[targets.kind]}",
                        path=("train", "loss"), hint=hint)
    n = targets.count
    if len(output) != 1:
        raise SpecError(f"the network's output is {fmt_shape(output)} per sample; {loss.name} needs one "
                        f"value per {'class' if loss.output != 'values' else 'target'}",
                        path=head, hint="add `flatten` before the last linear")
    (width,) = output
    if loss.targets == ("classes",):  # one score per class: cross_entropy, nll, multi_margin
        if n is not None and width != n:
            raise SpecError(f"the network's output is {fmt_shape(output)} per sample, but {loss.name} needs "
                            f"{n} class scores ({n} classes)",
                            path=head, hint="end the network with `linear: {out_features: num_classes}`")
        return ("binary" if width == 2 else "multiclass"), width
    if targets.kind == "classes":  # bce / bce_with_logits on two classes: one output
        if n is not None and n != 2:
            raise SpecError(f"{loss.name} is binary or multi-label, but the data has {n} classes",
                            path=("train", "loss"), hint="use cross_entropy for more than two classes")
        if width != 1:
            raise SpecError(f"{loss.name} needs 1 output per sample (binary) or one per label; the network "
                            f"ends in {width}", path=head, hint="end the network with `linear: {out_features: 1}`")
        return "binary", 1
    if n is not None and width != n:
        per = "label" if targets.kind == "multi_label" else "target"
        raise SpecError(f"{loss.name} needs one output per {per} ({n}); the network ends in {width}", path=head,
                        hint=f"end the network with `linear: {{out_features: {n}}}`")
    return ("multilabel" if targets.kind == "multi_label" else "regression"), width


def _check_weights(loss: LossSpec, outputs: int) -> None:
    """A per-class list has one value per output the loss reads: per class, per label, or the one logit of
    a binary bce (`pos_weight: [3]`, not one per class: torch would broadcast it to a second column)."""
    weights = loss.class_weights()
    if weights is not None and len(weights[1]) != outputs:
        key, values = weights
        raise SpecError(f"{key} has {len(values)} values, but there are {outputs} outputs per sample "
                        f"(one per class or label)", path=("train", "loss", key),
                        hint=f"give one value per output ({outputs})")


def _check_metrics(metrics: tuple[MetricSpec, ...], kind: TaskKind, explicit: bool) -> None:
    for index, metric in enumerate(metrics):
        if kind not in metric.tasks:
            raise SpecError(f"metric {metric.name} is for {' / '.join(metric.tasks)} tasks; this run is {kind}",
                            path=("train", "metrics", index) if explicit else ("train", "metrics"),
                            hint="metrics of this task: " + ", ".join(m.key for m in DEFAULT_METRICS[kind]))


def _monitor(name: str, metrics: tuple[MetricSpec, ...], path: Path) -> Monitor:
    direction = metric_direction(strip_split(name), metrics)
    if direction is None:
        names = [p + k for p in SPLIT_PREFIXES for k in ["loss", *(m.key for m in metrics if not m.per_label)]]
        raise SpecError(f"'{name}' is no metric of this run", path=path,
                        hint=did_you_mean(name, names) or "e.g. " + ", ".join(names[:6]))
    return Monitor(name, direction)


def resolve_task(train: TrainSpec, output: Shape, targets: Targets, head: Path) -> Task:
    """The task of a run, checked against the network's output shape; errors are located spec errors
    (`head` is the path of the network's last layer)."""
    kind, outputs = _kind_and_outputs(train.loss, targets, tuple(output), head)
    size = targets.count if targets.count is not None else (2 if kind == "binary" else outputs)
    _check_weights(train.loss, outputs)
    metrics = tuple(train.metrics) if train.metrics else DEFAULT_METRICS[kind]
    _check_metrics(metrics, kind, explicit=train.metrics is not None)
    scalars = [m.key for m in metrics if not m.per_label]
    monitor = _monitor(train.monitor or "val_" + (scalars[0] if scalars else "loss"), metrics, ("train", "monitor"))
    for path, name in ((("train", "early_stopping", "monitor"), train.early_stopping and train.early_stopping.monitor),
                       (("train", "scheduler", "monitor"), train.scheduler and train.scheduler.monitor)):
        if name:
            _monitor(name, metrics, path)
    return TASKS[kind](kind, train.loss, size, outputs, metrics, monitor, train.threshold, targets.names, targets.units)


def watched(task: Task, name: str | None) -> Monitor:
    """A part of the run's own monitor (early stopping, plateau), else the task's."""
    return _monitor(name, task.metrics, ("train", "monitor")) if name else task.monitor



def monitor_direction(train: TrainSpec) -> bool:
    """Whether higher is better for the run's monitor, from the spec alone (a search fixes its
    direction before any data is read; each point's task is checked against it as it is built):
    the named monitor's metric, else the first scalar metric listed, else the task's default, which
    is a regression's RMSE for a loss on real targets and an accuracy or F1 (higher) otherwise."""
    regression = train.loss.targets == ("real",)
    defaults = DEFAULT_METRICS["regression" if regression else "multiclass"] + DEFAULT_METRICS["multilabel"]
    metrics = tuple(train.metrics or ()) + defaults
    if train.monitor:
        direction = metric_direction(strip_split(train.monitor), metrics)
        return bool(direction)  # validate checked that the monitor is a metric of the run
    scalars = [metric for metric in (train.metrics or defaults[:1]) if not metric.per_label]
    return scalars[0].higher_is_better if scalars else False  # no scalar metric: the loss
