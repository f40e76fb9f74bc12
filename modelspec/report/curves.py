"""The numbers behind a run's plots, from its confusion counts and outputs.csv: numpy only.

Curves are thinned to at most MAX_POINTS points and scatters to MAX_SCATTER samples, so that a page
of a 20,000-row outputs.csv stays a few megabytes and draws at once.
"""

from __future__ import annotations

import numpy as np

MAX_POINTS = 1000
MAX_SCATTER = 5000
CALIBRATION_BINS = 10


def per_class(counts: list[list[int]]) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support of each class from a confusion matrix (rows true); 0 where
    a class was never predicted or never occurs (as scikit-learn's zero_division=0)."""
    matrix = np.asarray(counts, dtype=float)
    hits, predicted, support = np.diag(matrix), matrix.sum(0), matrix.sum(1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def row_normalised(counts: list[list[int]]) -> np.ndarray:
    matrix = np.asarray(counts, dtype=float)
    return matrix / np.maximum(matrix.sum(1, keepdims=True), 1)


def _ranked(target: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative true and false positives at each distinct score, highest score first."""
    order = np.argsort(-score, kind="stable")
    score, target = score[order], target[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]
    tp = np.cumsum(target)[last_of_each]
    return tp, (last_of_each + 1) - tp


def roc(target: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(false positive rates, true positive rates, area under the curve)."""
    tp, fp = _ranked(target, score)
    tpr = np.r_[0, tp / max(tp[-1], 1)]
    fpr = np.r_[0, fp / max(fp[-1], 1)]
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))  # the trapezoids under the curve
    return (*thin(fpr, tpr), area)


def precision_recall(target: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(recalls, precisions, average precision: the precisions weighted by each step of recall)."""
    tp, fp = _ranked(target, score)
    precision = tp / (tp + fp)
    recall = tp / max(tp[-1], 1)
    average = float(np.sum(np.diff(np.r_[0, recall]) * precision))
    return (*thin(np.r_[0, recall], np.r_[1, precision]), average)


def calibration(target: np.ndarray, probability: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean predicted probability, observed frequency, samples) per bin of equal width that has samples."""
    bins = np.minimum((probability * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    samples = np.bincount(bins, minlength=CALIBRATION_BINS)
    filled = samples > 0
    mean = np.bincount(bins, probability, CALIBRATION_BINS)[filled] / samples[filled]
    observed = np.bincount(bins, target, CALIBRATION_BINS)[filled] / samples[filled]
    return mean, observed, samples[filled]


def thin(x: np.ndarray, y: np.ndarray, most: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Every k-th point of a curve (its last one kept), at most `most` points."""
    if len(x) <= most:
        return x, y
    keep = np.unique(np.r_[np.linspace(0, len(x) - 1, most).astype(int), len(x) - 1])
    return x[keep], y[keep]


def sample(n: int, most: int = MAX_SCATTER) -> np.ndarray:
    """Indices of at most `most` of n samples, evenly spread (the same ones on every page)."""
    return np.arange(n) if n <= most else np.linspace(0, n - 1, most).astype(int)
