"""What every exporter is handed: the traced example, the dynamic axes, the opset, the metadata.

The metadata is the preprocessing the model expects (input shape and dtype, the normalisation it was
trained with, and under `data` everything fitted on the training data: category lists, fill values,
scalers, window and horizon), so that a user of the exported file needs neither modelspec, nor the
spec, nor the training data to feed it raw rows, texts or series. It goes into each file (ONNX
metadata_props, TorchScript and .pt2 extra files) and into `preprocessing.json` beside them; a fitted
tokenizer goes beside it as `tokenizer.json`, the file any Hugging Face `tokenizers` client loads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from ..artifacts import TrainedModel
from ..fileio import atomic_write_text
from .inputs import INPUT_NAME, OUTPUT_NAME, Axes

PREPROCESSING_FILE = "preprocessing.json"
TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True)
class ExportPlan:
    example: torch.Tensor  # (2, *input_shape): what exporters trace with
    axes: Axes
    opset: int | None  # None: the exporter's default
    metadata: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)  # file name -> text, written beside the model

    @property
    def metadata_json(self) -> str:
        return json.dumps(self.metadata, indent=2) + "\n"

    @property
    def extra_files(self) -> dict[str, str]:
        """What goes inside a model file beside its graph (TorchScript, .pt2): every JSON file."""
        return {PREPROCESSING_FILE: self.metadata_json, **self.files}

    def write_files(self, folder: Path) -> None:
        for name, text in self.extra_files.items():
            atomic_write_text(folder / name, text)


def data_files(preprocessing: dict[str, Any] | None) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The fitted preprocessing with a tokenizer moved out to its own tokenizer.json."""
    if not preprocessing or "tokenizer" not in preprocessing:
        return preprocessing, {}
    tokenizer = json.dumps(preprocessing["tokenizer"], ensure_ascii=False)
    return {**preprocessing, "tokenizer": TOKENIZER_FILE}, {TOKENIZER_FILE: tokenizer}


def preprocessing(trained: TrainedModel, axes: Axes, output_shape: Sequence[int]) -> dict[str, Any]:
    """The preprocessing JSON: what a caller must do to raw data before the model sees it.

    output_shape: the model's output for one sample, with the batch dim (1, ...).
    """
    info = trained.info
    return {
        **trained.describe(),
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        # The whole input and output; named axes are dynamic ("batch", "sequence").
        "input_layout": _layout([1, *info.input_shape], axes.input),
        "output_layout": _layout(output_shape, axes.output),
        "data": data_files(info.preprocessing)[0],  # a tokenizer in its own tokenizer.json beside it
    }


def _layout(shape: Sequence[int], names: dict[int, str]) -> list[int | str]:
    return [names.get(index, size) for index, size in enumerate(shape)]
