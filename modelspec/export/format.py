"""The contract of an export format: its file name, its ways of exporting, and how to load it back.

A format tries its `methods` in order (TorchScript: script, then trace; ONNX: the dynamo exporter,
then the TorchScript-based one) and keeps the first whose file passes verification. `load` reads the
file the way a deployment would, without modelspec, and returns a function from input to output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .plan import ExportPlan

# Writes the model to the path; returns details worth reporting (e.g. {"opset": 20}).
ExportFn = Callable[[nn.Module, ExportPlan, Path], dict[str, Any]]
Runner = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Format:
    name: str
    file: str  # the file name in the export folder
    methods: tuple[tuple[str, ExportFn], ...]  # (method name, export function), preferred first
    load: Callable[[Path], Runner]
    require: Callable[[], None] = lambda: None  # raises SpecError when an optional package is missing
