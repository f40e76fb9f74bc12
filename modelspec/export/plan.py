"""What every exporter is handed: the traced example, the dynamic axes, the opset, the metadata.

The metadata is the preprocessing the model expects (input shape and dtype, the normalisation it was
trained with), so that a user of the exported file needs neither modelspec nor the spec to feed it.
It goes into each file (ONNX metadata_props, TorchScript and .pt2 extra files) and into
`preprocessing.json` beside them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..artifacts import TrainedModel
from .inputs import INPUT_NAME, OUTPUT_NAME, Axes

PREPROCESSING_FILE = "preprocessing.json"


@dataclass(frozen=True)
class ExportPlan:
    example: torch.Tensor  # (2, *input_shape): what exporters trace with
    axes: Axes
    opset: int | None  # None: the exporter's default
    metadata: dict[str, Any]

    @property
    def metadata_json(self) -> str:
        return json.dumps(self.metadata, indent=2) + "\n"


def preprocessing(trained: TrainedModel, axes: Axes, output_shape: Sequence[int]) -> dict[str, Any]:
    """The preprocessing JSON: what a caller must do to raw data before the model sees it.

    output_shape: the model's output for one sample, with the batch dim (1, ...).
    """
    info = trained.info
    return {
        "spec": trained.spec.name,
        "network": trained.spec.network_name,
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "input_dtype": info.input_dtype,
        "input_shape": list(info.input_shape),  # per sample, after the spec's transforms
        # The whole input and output; named axes are dynamic ("batch", "sequence").
        "input_layout": _layout([1, *info.input_shape], axes.input),
        "output_layout": _layout(output_shape, axes.output),
        "num_classes": info.num_classes,
        # Applied to the data before the model, per channel: x = (x - mean) / std, after to_tensor
        # has scaled pixels to [0, 1]. None: the model takes the transformed data as they are.
        "normalize": info.normalize,
        "transforms": [t.model_dump(mode="json") for t in trained.spec.data.transforms],
        "extra": dict(info.extra),
    }


def _layout(shape: Sequence[int], names: dict[int, str]) -> list[int | str]:
    return [names.get(index, size) for index, size in enumerate(shape)]
