"""Measure a trained model on labelled data: a split of its spec's data set, or new data in the same
format. The metrics are computed by the runner's own evaluation code, so they equal what the run
recorded for the same split at its last epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..artifacts import TrainedModel
from ..compile.shapes import infer_shapes
from ..compile.task import Targets, Task, resolve_task
from ..errors import SpecError

SPLITS = ("test", "val", "train")


@dataclass
class Evaluation:
    split: str  # test, val, train, or the --data path
    samples: int
    metrics: dict[str, float]
    class_names: list[str]
    confusion: torch.Tensor | None  # (true, predicted) counts, classification only

    def per_class(self) -> list[dict[str, Any]] | None:
        """Precision, recall, F1 and support of each class, from the confusion counts."""
        if self.confusion is None:
            return None
        counts = self.confusion.double()
        rows = []
        for i, name in enumerate(self.class_names):
            tp, predicted, support = counts[i, i].item(), counts[:, i].sum().item(), counts[i].sum().item()
            precision = tp / predicted if predicted else 0.0
            recall = tp / support if support else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            rows.append({"class": name, "precision": precision, "recall": recall, "f1": f1, "support": int(support)})
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "samples": self.samples, "metrics": self.metrics,
                "per_class": self.per_class(), "class_names": self.class_names,
                "confusion_matrix": self.confusion.tolist() if self.confusion is not None else None}


def _task(trained: TrainedModel, targets: Targets) -> Task:
    spec, info = trained.spec, trained.info
    shapes = infer_shapes(spec.layers, tuple(info.input_shape), info.num_classes, tokens=info.input_dtype == "int64")
    last = shapes.layers[-1]
    return resolve_task(spec.train, shapes.output_shape, targets, spec.network_path(spec.network_name) + (last.index, last.layer.type))


def measure(trained: TrainedModel, x: torch.Tensor, y: torch.Tensor, split: str, targets: Targets) -> Evaluation:
    """Loss, metrics and confusion counts of the model on (x, y), batched as the run evaluated."""
    from ..data import TensorFeed
    from ..runner.loop import Parts, evaluate
    from ..runner.metrics import MetricSet

    spec, device = trained.spec, torch.device("cpu")
    task = _task(trained, targets)
    metrics = MetricSet(task, device, confusion=True)
    parts = Parts(spec, task, trained.model, trained.model, spec.train.loss.build(), device, Path("."), [])
    batch_size = spec.data.evaluation_batch_size
    values = evaluate(parts, trained.model, TensorFeed(x, y, batch_size, False, False, None), metrics)
    trained.model.eval()
    return Evaluation(split, len(y), values, task.class_names, metrics.confusion_counts())


def evaluate_split(trained: TrainedModel, split: str) -> Evaluation:
    """A split of the spec's own data set, prepared as the run prepared it."""
    from ..data import prepare_data
    from ..runner.loop import data_targets

    spec = trained.spec
    prepared = prepare_data(spec.data, spec.seed, torch.device("cpu"), log=lambda _: None)
    data = {"test": prepared.test, "val": prepared.val, "train": prepared.train}[split]
    if data is None:
        why = {"val": "the spec has no val_split", "test": "the data set has no test split",
               "train": "the training split goes through a DataLoader (random transforms)"}[split]
        raise SpecError(f"no {split} split to evaluate: {why}", hint="choose another with --split, or give --data")
    return measure(trained, data.x, data.y, split, data_targets(spec, prepared))


def evaluate_data(trained: TrainedModel, path: Path, preprocessing: dict[str, Any]) -> Evaluation:
    """New labelled data in the spec's format, read by its data kind (`read_labelled`: an image
    folder with a folder per class, a table with the target columns, texts with labels, a series
    whose every window with its target row in the file counts), encoded with what training fitted:
    unseen categories and words take the missing or unknown slot. A series' metrics are in the
    data's units, as the run's are."""
    from ..compile.task import targets_of, units_of

    info, data = trained.info, trained.spec.data
    x, y = data.read_labelled(path, preprocessing, info.class_names)
    real = (y.shape[1] if y.ndim == 2 else 1) if data.target_kind == "real" else None
    targets = targets_of(data.target_kind, info.num_classes, real, info.class_names, info.target_names,
                         units_of(preprocessing.get("data")))
    return measure(trained, x, y, str(path), targets)
