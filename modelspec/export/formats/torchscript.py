"""TorchScript: torch.jit.script, or torch.jit.trace where scripting fails. Loads with torch.jit.load.

Exported only when a spec or `--format torchscript` asks for it: the torch modelspec runs on
deprecates TorchScript in favour of torch.export, the default (with ONNX).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..format import Format, Runner
from ..plan import ExportPlan


def _save(module: torch.jit.ScriptModule, plan: ExportPlan, path: Path) -> None:
    torch.jit.save(module, str(path), _extra_files=plan.extra_files)


def script(model: nn.Module, plan: ExportPlan, path: Path) -> dict[str, Any]:
    _save(torch.jit.script(model), plan, path)
    return {}


def trace(model: nn.Module, plan: ExportPlan, path: Path) -> dict[str, Any]:
    # A trace records one path through the model: fine for modelspec's layers, which branch on
    # configuration only, never on data.
    _save(torch.jit.trace(model, plan.example), plan, path)
    return {}


def load(path: Path) -> Runner:
    with warnings.catch_warnings():  # its deprecation notice: the user asked for this format by name
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


TORCHSCRIPT = Format("torchscript", "model.torchscript.pt", (("script", script), ("trace", trace)), load)
