"""The metrics of `train.metrics`: one small class each, built on torchmetrics.

A metric knows the tasks it applies to, whether higher is better (the direction that `train.monitor`,
early stopping, the plateau scheduler and `--best` follow: never guessed from a name) and how to
build its torchmetrics object for a task. torchmetrics is imported when a metric is built, so
`modelspec validate` does not pay for it. Adding a metric is one class here plus its test.

Every metric reads what `modelspec.compile.task` hands it: class probabilities (N, K) and indices (N,)
for multi-class; the positive class's probability (N,) and 0/1 targets (N,) for binary; (N, L)
probabilities and 0/1 targets for multi-label; (N, T) values for regression.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Literal, Optional


from ._forms import tagged_union
from .base import PositiveInt, SpecModel

TaskKind = Literal["multiclass", "binary", "multilabel", "regression"]
CLASSIFICATION: tuple[TaskKind, ...] = ("multiclass", "binary", "multilabel")


class MetricSpec(SpecModel):
    """Base of every metric. `key` names its column (`val_<key>` on the validation split)."""

    name: str
    higher_is_better: ClassVar[bool] = True
    tasks: ClassVar[tuple[TaskKind, ...]] = CLASSIFICATION

    @property
    def key(self) -> str:
        return self.name

    @property
    def per_label(self) -> bool:
        """A vector, one value per class or label (columns `<key>_<name>`), not one number."""
        return False

    def build(self, kind: TaskKind, size: int, threshold: float) -> Any:
        """The torchmetrics object; `size` is the class, label or target count."""
        raise NotImplementedError

    def batched(self, kind: TaskKind, size: int, threshold: float) -> Callable[[Any, Any], Any] | None:
        """The metric of R runs' outputs at once, for a grid's runs trained as one stacked model
        (`--executor vmap`): preds (R, N, ...) and targets (R, N, ...), each run's as the task hands
        them to the torchmetrics object, to the R values (R,) that R such objects compute, bit for
        bit ((R, size) for a `per_label` metric; spec/batched_metrics.py). None (the default): each
        run's torchmetrics object computes its own."""
        return None


def _classification(metric: str, kind: TaskKind, size: int, threshold: float, **kwargs) -> Any:
    """torchmetrics' class for `metric` and the task: BinaryF1Score, MulticlassAccuracy, ..."""
    import torch
    from torchmetrics import classification

    if kind == "binary" and kwargs.get("average") == "none":
        return _binary_per_class(metric, threshold)
    below = _below(threshold)
    prefix = {"binary": "Binary", "multiclass": "Multiclass", "multilabel": "Multilabel"}[kind]
    cls = getattr(classification, prefix + metric)
    if kind == "binary":
        kwargs.pop("average", None)
        kwargs.pop("top_k", None)
        if metric != "AUROC":
            kwargs["threshold"] = below
    elif kind == "multiclass":
        kwargs["num_classes"] = size
    else:
        kwargs["num_labels"] = size
        if metric != "AUROC":
            kwargs["threshold"] = below
    # validate_args=False: the checks read values back from the device on every batch.
    return cls(validate_args=False, **kwargs)


def _below(threshold: float) -> float:
    """torchmetrics decides 1 where p > threshold; `train.threshold` (the confusion matrix, predict)
    where p >= threshold: the float32 just below it agrees with that on the float32 probabilities."""
    import torch

    return torch.nextafter(torch.tensor(threshold, dtype=torch.float32), torch.tensor(0.0)).item()


def _binary_per_class(metric: str, threshold: float) -> Any:
    """`average: none` on a binary task: one value per class (class 0, then class 1), as the runner
    names its columns, from the positive class's probability decided at `threshold`."""
    from torchmetrics import classification

    base = getattr(classification, "Multiclass" + metric)

    class PerClass(base):
        def update(self, preds, target):
            super().update((preds >= threshold).long(), target)

    return PerClass(num_classes=2, average="none", validate_args=False)


Average = Literal["macro", "micro", "weighted", "none"]


class Accuracy(MetricSpec):
    """Accuracy: the fraction of samples predicted right (multi-class, binary); for multi-label, the mean of
    the per-label accuracies. Higher is better."""

    name: Literal["accuracy"] = "accuracy"

    def build(self, kind, size, threshold):
        # micro for one class per sample: correct / samples, as a hand-written loop counts it;
        # macro over the labels of a multi-label task (the mean of per-label accuracies).
        average = "micro" if kind == "multiclass" else "macro"
        return _classification("Accuracy", kind, size, threshold, average=average)

    def batched(self, kind, size, threshold):
        from . import batched_metrics as B

        if kind == "binary":
            return lambda preds, target: B.accuracy(B.binary_counts(preds, target, _below(threshold)))
        if kind == "multilabel":  # the mean of the labels' accuracies
            return lambda preds, target: B.averaged(B.accuracy, B.multilabel_counts(preds, target, _below(threshold)),
                                                    "macro", multilabel=True)
        if kind != "multiclass":
            return None

        def accuracy(preds, target):
            # As MulticlassAccuracy counts (the first highest score along the class dim is the class)
            # and divides: float32 right over float32 counted, a tensor by a tensor (a division by a
            # Python number may multiply by its reciprocal instead, a bit apart).
            labels = preds.argmax(2) if preds.dim() == target.dim() + 1 else preds
            right = (labels == target).flatten(1).sum(1).float()
            return right / right.new_full(right.shape, float(target[0].numel()))

        return accuracy


class TopKAccuracy(MetricSpec):
    """Top-k accuracy (multi-class): the fraction of samples whose true class is among the k highest scores;
    its column is `top<k>_accuracy`. Higher is better."""

    name: Literal["top_k_accuracy"] = "top_k_accuracy"
    tasks: ClassVar[tuple[TaskKind, ...]] = ("multiclass",)
    k: PositiveInt = 5
    """How many of the highest-scoring classes count as right (default 5; capped at the class count)."""

    @property
    def key(self) -> str:
        return f"top{self.k}_accuracy"

    def build(self, kind, size, threshold):
        return _classification("Accuracy", kind, size, threshold, average="micro", top_k=min(self.k, size))

    def batched(self, kind, size, threshold):
        from torchmetrics.functional import classification as F

        from .batched_metrics import run_by_run

        k = min(self.k, size)  # as built: torchmetrics' own function on each run's (its ties rule is its own)
        return run_by_run(lambda p, t: F.multiclass_accuracy(p, t, size, average="micro", top_k=k, validate_args=False))


class _Averaged(MetricSpec):
    """Precision, recall and F1: per class (or label), averaged as `average` says."""

    average: Average = "macro"
    """How per-class (or per-label) values combine: `macro` (default, plain mean), `micro` (over all
    decisions), `weighted` (by support) or `none` (one column per class or label). Binary tasks ignore it
    but for `none`."""
    TORCHMETRICS: ClassVar[str]

    @property
    def key(self) -> str:
        return f"{self.name}_per_label" if self.per_label else self.name

    @property
    def per_label(self) -> bool:
        return self.average == "none"

    def build(self, kind, size, threshold):
        return _classification(self.TORCHMETRICS, kind, size, threshold, average=self.average)

    def batched(self, kind, size, threshold):
        from . import batched_metrics as B

        score, average = getattr(B, self.name), self.average
        if kind == "binary" and self.per_label:  # _binary_per_class: two classes, decided at the threshold
            return lambda preds, target: score(B.multiclass_counts((preds >= threshold).long(), target, 2, "none"))
        if kind == "binary":  # the positive class's, whatever `average` says
            return lambda preds, target: score(B.binary_counts(preds, target, _below(threshold)))
        if kind == "multilabel":
            return lambda preds, target: B.averaged(score, B.multilabel_counts(preds, target, _below(threshold)),
                                                    average, multilabel=True)
        return lambda preds, target: B.averaged(score, B.multiclass_counts(preds, target, size, average), average)


class Precision(_Averaged):
    """Precision: of the samples predicted positive, the fraction that are; per class or label, averaged as
    `average` says. Higher is better."""

    name: Literal["precision"] = "precision"
    TORCHMETRICS: ClassVar[str] = "Precision"


class Recall(_Averaged):
    """Recall: of the positive samples, the fraction predicted positive; per class or label, averaged as
    `average` says. Higher is better."""

    name: Literal["recall"] = "recall"
    TORCHMETRICS: ClassVar[str] = "Recall"


class F1(_Averaged):
    """F1 score: the harmonic mean of precision and recall, per class or label, averaged as `average` says.
    Higher is better."""

    name: Literal["f1"] = "f1"
    TORCHMETRICS: ClassVar[str] = "F1Score"


class AUROC(MetricSpec):
    """Area under the ROC curve, exact (every score kept until the epoch ends)."""

    name: Literal["auroc"] = "auroc"

    def build(self, kind, size, threshold):
        return _classification("AUROC", kind, size, threshold, **({} if kind == "binary" else {"average": "macro"}))

    def batched(self, kind, size, threshold):
        from torchmetrics.functional import classification as F

        from .batched_metrics import run_by_run

        if kind == "binary":
            return run_by_run(lambda p, t: F.binary_auroc(p, t, validate_args=False))
        if kind == "multiclass":
            return run_by_run(lambda p, t: F.multiclass_auroc(p, t, size, average="macro", validate_args=False))
        return run_by_run(lambda p, t: F.multilabel_auroc(p, t, size, average="macro", validate_args=False))


class _Regression(MetricSpec):
    tasks: ClassVar[tuple[TaskKind, ...]] = ("regression",)
    higher_is_better: ClassVar[bool] = False


class MAE(_Regression):
    """Mean absolute error (regression). Lower is better."""

    name: Literal["mae"] = "mae"

    def build(self, kind, size, threshold):
        from torchmetrics.regression import MeanAbsoluteError

        return MeanAbsoluteError()

    def batched(self, kind, size, threshold):
        from .batched_metrics import count, flat_sum

        return lambda preds, target: flat_sum((preds - target).abs()) / count(target)


class MSE(_Regression):
    """Mean squared error (regression). Lower is better."""

    name: Literal["mse"] = "mse"

    def build(self, kind, size, threshold):
        from torchmetrics.regression import MeanSquaredError

        return MeanSquaredError()

    def batched(self, kind, size, threshold):
        from .batched_metrics import mean_squared_error

        return mean_squared_error


class RMSE(_Regression):
    """Root mean squared error (regression), in the targets' unit. Lower is better."""

    name: Literal["rmse"] = "rmse"

    def build(self, kind, size, threshold):
        from torchmetrics.regression import MeanSquaredError

        return MeanSquaredError(squared=False)

    def batched(self, kind, size, threshold):
        import torch

        from .batched_metrics import mean_squared_error

        return lambda preds, target: torch.sqrt(mean_squared_error(preds, target))


class R2(_Regression):
    """Coefficient of determination, averaged over the targets: 1 is perfect, 0 is the mean's."""

    name: Literal["r2"] = "r2"
    higher_is_better: ClassVar[bool] = True

    def build(self, kind, size, threshold):
        from torchmetrics.regression import R2Score

        return R2Score(multioutput="uniform_average")

    def batched(self, kind, size, threshold):
        from .batched_metrics import r2

        return r2


class MAPE(_Regression):
    """Mean absolute percentage error, as a fraction (0.05 is 5 %); targets near 0 blow it up."""

    name: Literal["mape"] = "mape"

    def build(self, kind, size, threshold):
        from torchmetrics.regression import MeanAbsolutePercentageError

        return MeanAbsolutePercentageError()

    def batched(self, kind, size, threshold):
        import torch

        from .batched_metrics import count, flat_sum

        def mape(preds, target):
            errors = (preds - target).abs() / torch.clamp(target.abs(), min=1.17e-06)  # torchmetrics' epsilon
            return flat_sum(errors) / count(target)

        return mape


METRIC_KINDS: tuple[type[MetricSpec], ...] = (
    Accuracy, TopKAccuracy, Precision, Recall, F1, AUROC, MAE, MSE, RMSE, R2, MAPE,
)
METRICS: dict[str, type[MetricSpec]] = {cls.model_fields["name"].default: cls for cls in METRIC_KINDS}

# The metrics a task logs when `train.metrics` is not given; the first is the default monitor.
DEFAULT_METRICS: dict[TaskKind, tuple[MetricSpec, ...]] = {
    "multiclass": (Accuracy(),),
    "binary": (Accuracy(), AUROC(), F1()),
    "multilabel": (F1(), Accuracy(), F1(average="none")),
    "regression": (RMSE(), MAE(), R2(), MAPE()),
}


Metric = tagged_union(METRIC_KINDS, "metric", tag="name")


def metric_direction(key: str, metrics: tuple[MetricSpec, ...]) -> Optional[bool]:
    """Whether higher is better for a row key without its split prefix; None if no metric has it."""
    if key == "loss":
        return False
    for metric in metrics:
        if metric.key == key and not metric.per_label:
            return metric.higher_is_better
    return None
