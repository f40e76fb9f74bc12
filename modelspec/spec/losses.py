"""The losses: one small typed class each, joined in a discriminated union on `name`.

A loss knows what its targets must be (class indices, 0/1 values, real values), what the network's
output means to it (logits, log-probabilities, probabilities, values), and so which task it trains;
`modelspec.compile.task` reads that to check the network's head and pick the metrics. Lists in the
spec (`weight`, `pos_weight`) become tensors when the loss is built.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable, ClassVar, Literal, Optional, Union

from pydantic import Field

from ._forms import tagged_union
from ._torch import F, nn, torch
from .base import Int, SpecModel

# What the network's output is, to the loss: metrics turn it into probabilities or values.
Output = Literal["logits", "log_probs", "probs", "scores", "values"]
# The targets a loss trains on: class indices (0..K-1), K 0/1 labels per sample, or real values.
TargetKind = Literal["classes", "multi_label", "real"]

PositiveNumber = Annotated[float, Field(gt=0)]


class LossSpec(SpecModel):
    """Base of every loss: `name` is the tag; the class attributes say what the loss needs."""

    name: str
    output: ClassVar[Output]
    targets: ClassVar[tuple[TargetKind, ...]]
    torch_class: ClassVar[str]  # the name of its class in torch.nn

    def torch_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of the torch class: every field but `name`, lists as tensors."""
        kwargs = self.model_dump(exclude={"name"})
        return {k: torch.tensor(v, dtype=torch.float32) if isinstance(v, list) else v
                for k, v in kwargs.items() if v is not None}

    def build(self) -> nn.Module:
        return getattr(nn, self.torch_class)(**self.torch_kwargs())

    def class_weights(self) -> tuple[str, list[float]] | None:
        """(key, values) of a per-class list, whose length must be the class count."""
        return None

    def batched(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
        """The losses of R batches at once, for a grid's runs trained as one stacked model
        (`--executor vmap`): outputs (R, N, ...) and targets (R, N, ...) to each batch's loss (R,), as
        R calls of the built module compute them up to rounding. None (the default): the runner calls
        the module under vmap."""
        return None

    @classmethod
    def probabilities(cls, out: torch.Tensor, dim: int | None) -> torch.Tensor:
        """The network's output as probabilities: softmax over `dim` (sigmoid when None) of logits or
        scores, exp of log-probabilities, probabilities as they are."""
        if cls.output == "probs":
            return out
        if cls.output == "log_probs":
            return out.exp()
        return out.softmax(dim) if dim is not None else out.sigmoid()


class CrossEntropy(LossSpec):
    """Cross-entropy on logits, `nn.CrossEntropyLoss`: multi-class classification with class-index targets;
    the network ends in a linear layer (no softmax)."""

    name: Literal["cross_entropy"] = "cross_entropy"
    output: ClassVar[Output] = "logits"
    targets: ClassVar[tuple[TargetKind, ...]] = ("classes",)
    torch_class: ClassVar[str] = "CrossEntropyLoss"
    weight: Optional[list[PositiveNumber]] = None
    """A weight per class (one positive number each), so rare classes count more; omitted, all weigh 1."""
    label_smoothing: float = Field(0.0, ge=0.0, le=1.0)
    """How much of the target's probability to spread over the other classes, 0 to 1 (default 0.0)."""
    ignore_index: Int = -100
    """A target with this value adds nothing to the loss (default -100)."""

    def class_weights(self):
        return ("weight", self.weight) if self.weight is not None else None

    def batched(self):
        if self.weight is not None:
            return None  # each batch's mean is weighted by its own targets' classes: the module, under vmap

        def losses(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            # The classes moved to dim 1, each run's samples becoming a dimension of its own: torch's CPU
            # log_softmax over a short last dim (10 classes) costs 6 times as much, forward and backward.
            each = F.cross_entropy(out.movedim(2, 1), target, reduction="none", ignore_index=self.ignore_index,
                                   label_smoothing=self.label_smoothing)
            return each.flatten(1).sum(1) / (target != self.ignore_index).flatten(1).sum(1)  # the mean over counted ones

        return losses


class NLL(LossSpec):
    """Negative log-likelihood, `nn.NLLLoss`: multi-class classification on log-probabilities, so the network
    ends in `log_softmax`."""

    name: Literal["nll"] = "nll"
    output: ClassVar[Output] = "log_probs"
    targets: ClassVar[tuple[TargetKind, ...]] = ("classes",)
    torch_class: ClassVar[str] = "NLLLoss"
    weight: Optional[list[PositiveNumber]] = None
    """A weight per class (one positive number each), so rare classes count more; omitted, all weigh 1."""
    ignore_index: Int = -100
    """A target with this value adds nothing to the loss (default -100)."""

    def class_weights(self):
        return ("weight", self.weight) if self.weight is not None else None


class MultiMargin(LossSpec):
    """Multi-class hinge loss, `nn.MultiMarginLoss`, on class scores (an SVM-style head)."""

    name: Literal["multi_margin"] = "multi_margin"
    output: ClassVar[Output] = "scores"
    targets: ClassVar[tuple[TargetKind, ...]] = ("classes",)
    torch_class: ClassVar[str] = "MultiMarginLoss"
    p: Literal[1, 2] = 1
    """The norm of the hinge: 1 (default) or 2 (squared)."""
    margin: float = 1.0
    """The margin the true class's score must beat the others by (default 1.0)."""
    weight: Optional[list[PositiveNumber]] = None
    """A weight per class (one positive number each); omitted, all weigh 1."""

    def class_weights(self):
        return ("weight", self.weight) if self.weight is not None else None


class BCEWithLogits(LossSpec):
    """Binary cross-entropy on logits, `nn.BCEWithLogitsLoss`: binary (one output) or multi-label (one output
    per label) with 0/1 targets; no sigmoid layer."""

    name: Literal["bce_with_logits"] = "bce_with_logits"
    output: ClassVar[Output] = "logits"
    targets: ClassVar[tuple[TargetKind, ...]] = ("classes", "multi_label")
    torch_class: ClassVar[str] = "BCEWithLogitsLoss"
    pos_weight: Optional[Union[PositiveNumber, list[PositiveNumber]]] = None
    """Weight of the positive class: one number, or one per label (negatives / positives is usual); omitted,
    1."""

    def torch_kwargs(self):
        kwargs = super().torch_kwargs()
        if isinstance(kwargs.get("pos_weight"), float):
            kwargs["pos_weight"] = torch.tensor([kwargs["pos_weight"]])
        return kwargs

    def class_weights(self):
        return ("pos_weight", self.pos_weight) if isinstance(self.pos_weight, list) else None


class BCE(LossSpec):
    """Binary cross-entropy on probabilities, `nn.BCELoss`: binary or multi-label with 0/1 targets; the
    network ends in `sigmoid`."""

    name: Literal["bce"] = "bce"
    output: ClassVar[Output] = "probs"
    targets: ClassVar[tuple[TargetKind, ...]] = ("classes", "multi_label")
    torch_class: ClassVar[str] = "BCELoss"


class MSE(LossSpec):
    """Mean squared error, `nn.MSELoss`: regression on real-valued targets."""

    name: Literal["mse"] = "mse"
    output: ClassVar[Output] = "values"
    targets: ClassVar[tuple[TargetKind, ...]] = ("real",)
    torch_class: ClassVar[str] = "MSELoss"


class L1(LossSpec):
    """Mean absolute error, `nn.L1Loss`: regression on real-valued targets, robust to outliers."""

    name: Literal["l1"] = "l1"
    output: ClassVar[Output] = "values"
    targets: ClassVar[tuple[TargetKind, ...]] = ("real",)
    torch_class: ClassVar[str] = "L1Loss"


class SmoothL1(LossSpec):
    """Smooth L1, `nn.SmoothL1Loss`: regression, quadratic for small errors and linear beyond `beta`."""

    name: Literal["smooth_l1"] = "smooth_l1"
    output: ClassVar[Output] = "values"
    targets: ClassVar[tuple[TargetKind, ...]] = ("real",)
    torch_class: ClassVar[str] = "SmoothL1Loss"
    beta: float = Field(1.0, ge=0.0)
    """The error below which the loss is quadratic (default 1.0); 0 makes it the L1 loss."""


class Huber(LossSpec):
    """Huber loss, `nn.HuberLoss`: regression, quadratic for errors below `delta` and linear beyond."""

    name: Literal["huber"] = "huber"
    output: ClassVar[Output] = "values"
    targets: ClassVar[tuple[TargetKind, ...]] = ("real",)
    torch_class: ClassVar[str] = "HuberLoss"
    delta: PositiveNumber = 1.0
    """The error where the loss turns from quadratic to linear (default 1.0)."""


LOSS_KINDS: tuple[type[LossSpec], ...] = (CrossEntropy, NLL, MultiMargin, BCEWithLogits, BCE, MSE, L1, SmoothL1, Huber)
LOSSES: dict[str, type[LossSpec]] = {cls.model_fields["name"].default: cls for cls in LOSS_KINDS}


Loss = tagged_union(LOSS_KINDS, "loss", tag="name")
