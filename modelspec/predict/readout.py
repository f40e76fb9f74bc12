"""Model outputs read by the task the model was trained for.

multiclass: the class name, its probability and the top-k; binary: the class decided, the positive
class's probability as `p_<positive class>` (`p_<target>` for a 0/1 column) and the 0/1 decision at the
stored threshold; multi-label: each label's probability as `p_<label>` and the labels chosen;
regression: the values under their target names.
"""

from __future__ import annotations

from typing import Any

import torch

from ..spec.losses import LOSSES


def _names(names: list[str] | None, count: int, prefix: str) -> list[str]:
    return list(names) if names and len(names) == count else [f"{prefix}{i}" for i in range(count)]


def _positive(class_names: list[str] | None, target_names: list[str] | None) -> str:
    """What a binary model's one probability is of: its second class (the one numbered 1), else its
    target column being 1. Named in the column, so that a reader never takes it for the chosen
    class's probability (which it is not when the decision is 0)."""
    if class_names and len(class_names) == 2:
        return class_names[1]
    return target_names[0] if target_names and len(target_names) == 1 else "1"


def readout(out: torch.Tensor, task: dict[str, Any], class_names: list[str] | None, top_k: int = 3,
            target_names: list[str] | None = None) -> list[dict[str, Any]]:
    """One dict of prediction columns per sample."""
    out = out.float().reshape(len(out), -1)
    kind, probabilities = task["kind"], LOSSES[task["loss"]].probabilities
    if kind == "regression":
        names = _names(target_names or class_names, out.shape[1], "y")
        return [dict(zip(names, row)) for row in out.tolist()]
    if kind == "binary":
        names = _names(class_names, 2, "")
        column = f"p_{_positive(class_names, target_names)}"
        p = probabilities(out, 1)[:, 1] if out.shape[1] == 2 else probabilities(out, None)[:, 0]
        threshold = task.get("threshold", 0.5)
        return [{"class": names[int(v >= threshold)], column: v, "decision": int(v >= threshold)}
                for v in p.tolist()]
    if kind == "multilabel":
        names = _names(target_names if target_names and len(target_names) == out.shape[1] else class_names,
                       out.shape[1], "label")
        threshold = task.get("threshold", 0.5)
        rows = []
        for row in probabilities(out, None).tolist():
            chosen = [n for n, v in zip(names, row) if v >= threshold]
            rows.append({"labels": ";".join(chosen), **{f"p_{n}": v for n, v in zip(names, row)}})
        return rows
    names = _names(class_names, out.shape[1], "")
    probabilities = probabilities(out, 1)
    k = min(top_k, out.shape[1])
    values, indices = probabilities.topk(k, dim=1)
    return [{"class": names[i[0]], "probability": v[0],
             "top_k": "; ".join(f"{names[j]} {p:.4f}" for j, p in zip(i, v))}
            for v, i in zip(values.tolist(), indices.tolist())]
