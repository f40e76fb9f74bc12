"""ONNX: torch's dynamo exporter, or its TorchScript-based one as fallback. Runs in onnxruntime.

Both write named input and output ("input", "output") with a dynamic batch axis (and sequence axis
for a sequence model), the preprocessing in the model's metadata_props (one JSON value per key), and
pass onnx.checker. onnx and onnxruntime are the `modelspec[onnx]` extra, imported only here.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ...errors import SpecError
from ..format import Format, Runner
from ..inputs import INPUT_NAME, OUTPUT_NAME
from ..plan import ExportPlan
from .torch_export import dynamic_shapes

INSTALL_HINT = "pip install 'modelspec[onnx]'"


def require() -> None:
    """Fail early, and say what to install, when the ONNX extra is missing."""
    missing = []
    for module in ("onnx", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise SpecError(
            f"ONNX export needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed",
            hint=f"install the ONNX extra: {INSTALL_HINT}; or leave onnx out of --format",
        )


def _common(plan: ExportPlan) -> dict[str, Any]:
    """What both exporters are given alike: names and opset."""
    return dict(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=plan.opset)


def dynamo(model: nn.Module, plan: ExportPlan, path: Path) -> dict[str, Any]:
    torch.onnx.export(
        model,
        (plan.example,),
        str(path),
        **_common(plan),
        dynamo=True,
        dynamic_shapes=dynamic_shapes(plan),
        external_data=False,  # one self-contained file; modelspec models are far below 2 GB
        verbose=False,
    )
    return _finish(path, plan)


def torchscript_based(model: nn.Module, plan: ExportPlan, path: Path) -> dict[str, Any]:
    with _stdout_silenced():
        torch.onnx.export(
            model,
            (plan.example,),
            str(path),
            **_common(plan),
            dynamo=False,
            dynamic_axes={INPUT_NAME: plan.axes.input, OUTPUT_NAME: plan.axes.output},
        )
    return _finish(path, plan)


@contextlib.contextmanager
def _stdout_silenced() -> Iterator[None]:
    """This exporter prints its whole graph from C++ when it fails; the exception says the same."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _finish(path: Path, plan: ExportPlan) -> dict[str, Any]:
    """Write the preprocessing into the model's metadata, then check the file."""
    import onnx

    model = onnx.load(str(path))
    props = {key: json.dumps(value) for key, value in plan.metadata.items()}
    props.update(plan.files)  # e.g. tokenizer.json, under its file name
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path), full_check=True)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if plan.opset is not None and opset != plan.opset:  # the dynamo exporter writes 18 at least
        raise ValueError(f"the exporter wrote opset {opset}, but the spec asks for opset {plan.opset}")
    return {"opset": opset}


def load(path: Path) -> Runner:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: its optimiser's notes are not the user's concern
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> torch.Tensor:
        (output,) = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})
        return torch.from_numpy(output)

    return run


ONNX = Format("onnx", "model.onnx", (("dynamo", dynamo), ("torchscript-based", torchscript_based)), load, require)
