"""The stacked forms of the metrics (`MetricSpec.batched`): R runs' preds and targets (R, N, ...) to the
R values that R torchmetrics objects, each updated once with its run's, compute, bit for bit. A packed
grid computes its runs' metrics with them (runner/metrics.py: compute_together): a torchmetrics object
costs a tenth of a millisecond a call whatever its size, R times what one run's share of a step costs.

Each form does what torchmetrics (1.x) does for one run, with the run as the leading dimension: it counts
in integers where torchmetrics counts (exact in any order), sums floats along a row where it sums a run's
(on the CPU a row's sum is the 1-D sum's, bit for bit; a GPU's reductions may round apart), and
divides as it divides.
tests/test_metrics_registry.py checks every form against torchmetrics itself.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

Counts = tuple[Tensor, Tensor, Tensor, Tensor]  # tp, fp, tn, fn


def safe_divide(num: Tensor, denom: Tensor) -> Tensor:
    """torchmetrics' _safe_divide with zero_division 0: floats divided, 0 where the denominator is 0."""
    num = num if num.is_floating_point() else num.float()
    denom = denom if denom.is_floating_point() else denom.float()
    return torch.where(denom != 0, num / denom, torch.zeros((), dtype=num.dtype, device=num.device))


def _rows(t: Tensor) -> Tensor:
    return t.reshape(len(t), -1)


def probabilities(preds: Tensor) -> Tensor:
    """torchmetrics' normalize_logits_if_needed (sigmoid), run by run: a run whose scores are not all
    in [0, 1] gave logits."""
    inside = ((preds >= 0) & (preds <= 1)).reshape(len(preds), -1).all(1)
    if bool(inside.all()):
        return preds
    return torch.where(inside.view(-1, *[1] * (preds.dim() - 1)), preds, preds.sigmoid())


def binary_counts(preds: Tensor, target: Tensor, threshold: float) -> Counts:
    """BinaryStatScores' (tp, fp, tn, fn), each (R,): decided 1 where the probability is above
    `threshold` (metrics.py passes the float32 just below `train.threshold`, as to torchmetrics)."""
    return _stat_counts(_rows(probabilities(preds) > threshold), _rows(target))


def _stat_counts(decided: Tensor, target: Tensor) -> Counts:
    """(tp, fp, tn, fn) over the samples (dim 1), as torchmetrics' stat scores count 0/1 decisions."""
    right, positive, negative = target == decided, target == 1, target == 0
    return ((right & positive).sum(1), (~right & negative).sum(1), (right & negative).sum(1),
            (~right & positive).sum(1))


def multiclass_counts(preds: Tensor, target: Tensor, size: int, average: str) -> Counts:
    """MulticlassStatScores' (tp, fp, tn, fn) of one class a sample (the first highest score): (R,)
    each for `micro`, else (R, K) from each run's confusion matrix."""
    labels = preds.argmax(2) if preds.dim() == target.dim() + 1 else preds
    labels, target = _rows(labels).long(), _rows(target).long()
    runs, n = labels.shape
    if average == "micro":
        tp = (labels == target).sum(1)
        wrong = (labels != target).sum(1)
        return tp, wrong, size * n - (wrong + wrong + tp), wrong
    offsets = torch.arange(runs, device=labels.device).unsqueeze(1) * size * size
    bins = torch.bincount((target * size + labels + offsets).reshape(-1), minlength=runs * size * size)
    confusion = bins.view(runs, size, size)
    tp = confusion.diagonal(dim1=1, dim2=2)
    fp, fn = confusion.sum(1) - tp, confusion.sum(2) - tp
    return tp, fp, confusion.sum((1, 2)).unsqueeze(1) - (fp + fn + tp), fn


def multilabel_counts(preds: Tensor, target: Tensor, threshold: float) -> Counts:
    """MultilabelStatScores' (tp, fp, tn, fn), each (R, L): a label decided 1 where its probability
    is above `threshold`."""
    return _stat_counts(probabilities(preds) > threshold, target)


def averaged(score: Callable[[Counts], Tensor], counts: Counts, average: str, multilabel: bool = False) -> Tensor:
    """`score` of per-class (or per-label) counts (R, K), reduced as torchmetrics reduces it: `micro`
    scores the counts summed over the classes (multi-class counts come summed already), `none` keeps
    one value a class (R, K), `macro` and `weighted` average the classes' scores as
    _adjust_weights_safe_divide does (a class no sample has nor gets counts nothing in a multi-class
    macro average)."""
    if average == "micro":
        return score(tuple(c.sum(-1) for c in counts) if counts[0].dim() > 1 else counts)
    scores = score(counts)
    if average == "none":
        return scores
    tp, fp, _, fn = counts
    if average == "weighted":
        weights = tp + fn
    elif multilabel:
        weights = torch.ones_like(scores)
    else:
        weights = torch.where(tp + fp + fn == 0, 0.0, torch.ones_like(scores))
    return safe_divide(weights * scores, weights.sum(-1, keepdim=True)).sum(-1)


def accuracy(counts: Counts) -> Tensor:
    tp, fp, tn, fn = counts
    return safe_divide(tp + tn, tp + tn + fp + fn)


def precision(counts: Counts) -> Tensor:
    tp, fp, _, _ = counts
    return safe_divide(tp, tp + fp)


def recall(counts: Counts) -> Tensor:
    tp, _, _, fn = counts
    return safe_divide(tp, tp + fn)


def f1(counts: Counts) -> Tensor:
    """F-beta with beta 1, as torchmetrics writes it: (1 + b²) tp / ((1 + b²) tp + b² fn + fp)."""
    tp, fp, _, fn = counts
    return safe_divide((1 + 1.0) * tp, (1 + 1.0) * tp + 1.0 * fn + fp)


def run_by_run(functional: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """A form for a metric whose state is every score (AUROC's ranking): torchmetrics' own functional
    form on each run's, which is what its object computes from one update, without the object."""
    return lambda preds, target: torch.stack([functional(p, t) for p, t in zip(preds, target)])


# ---- regression: preds and targets (R, N, T) in the data's units


def flat_sum(values: Tensor) -> Tensor:
    """A run's sum over all of its elements (R,), added to a state that starts at 0.0 as torchmetrics'
    does (0.0 + -0.0 is 0.0)."""
    return torch.zeros((), dtype=values.dtype, device=values.device) + _rows(values).sum(1)


def count(target: Tensor) -> Tensor:
    """Each run's observations as the integer state torchmetrics divides by."""
    return torch.tensor(_rows(target).shape[1], device=target.device)


def mean_squared_error(preds: Tensor, target: Tensor) -> Tensor:
    diff = preds - target
    return flat_sum(diff * diff) / count(target)


def r2(preds: Tensor, target: Tensor) -> Tensor:
    """R2Score(multioutput="uniform_average"): per target over the samples, then the targets' mean."""
    if preds.dim() == 2:  # one target: (R, N), as torchmetrics reads an (N,) batch
        preds, target = preds.unsqueeze(2), target.unsqueeze(2)
    zero = torch.zeros((), dtype=target.dtype, device=target.device)
    sum_obs, sum_squared_obs = zero + target.sum(1), zero + (target * target).sum(1)
    residual = target - preds
    rss = zero + (residual * residual).sum(1)
    num_obs = torch.tensor(target.shape[1], device=target.device)
    if num_obs < 2:
        raise ValueError("Needs at least two samples to calculate r2 score.")
    mean_obs = sum_obs / num_obs
    tss = sum_squared_obs - sum_obs * mean_obs
    cond_rss = ~torch.isclose(rss, torch.zeros_like(rss), atol=1e-4)
    cond_tss = ~torch.isclose(tss, torch.zeros_like(tss), atol=1e-4)
    raw_scores = torch.where(cond_rss & cond_tss, 1 - (rss / tss), torch.ones_like(rss))
    raw_scores = torch.where(cond_rss & ~cond_tss, torch.zeros_like(rss), raw_scores)
    return torch.mean(raw_scores, dim=1)
