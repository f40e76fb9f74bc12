"""torch.export: an ExportedProgram saved as .pt2, the format PyTorch recommends over TorchScript.

Loads with `torch.export.load(path).module()`. An LSTM or GRU is exported through torch's while-loop
decompositions so that its sequence length stays dynamic; without them torch.export fixes it to the
traced length.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ..format import Format, Runner
from ..plan import ExportPlan


@contextlib.contextmanager
def rnn_while_loops() -> Iterator[None]:
    """LSTM/GRU as while loops, where this torch has them (torch.export._patches, torch 2.9+)."""
    try:
        from torch.export._patches import (
            register_gru_while_loop_decomposition,
            register_lstm_while_loop_decomposition,
        )
    except ImportError:  # an older torch: the sequence length is fixed and verification says so
        yield
        return
    # The helpers swap the ops' Python kernels without dropping the kernels the dispatcher cached, so a
    # cache filled earlier (by an ONNX export, say) would bypass them: drop it on the way in and out.
    ops = (torch.ops.aten.lstm.input, torch.ops.aten.gru.input)
    _drop_dispatch_cache(ops)
    try:
        with register_lstm_while_loop_decomposition(), register_gru_while_loop_decomposition():
            _drop_dispatch_cache(ops)
            yield
    finally:
        _drop_dispatch_cache(ops)


def _drop_dispatch_cache(ops) -> None:
    for op in ops:
        cache = getattr(op, "_dispatch_cache", None)
        if isinstance(cache, dict):
            cache.clear()


def dynamic_shapes(plan: ExportPlan) -> tuple[dict[int, torch.export.Dim]]:
    return ({index: torch.export.Dim(name) for index, name in plan.axes.input.items()},)


def export_program(model: nn.Module, plan: ExportPlan, path: Path) -> dict[str, Any]:
    with rnn_while_loops():
        program = torch.export.export(model, (plan.example,), dynamic_shapes=dynamic_shapes(plan))
    torch.export.save(program, str(path), extra_files=plan.extra_files)
    return {}


def load(path: Path) -> Runner:
    # Loading a program with while loops warns about unused size symbols; it is harmless noise.
    serde = logging.getLogger("torch._export.serde.serialize")
    level = serde.level
    serde.setLevel(logging.ERROR)
    try:
        return torch.export.load(str(path)).module()
    finally:
        serde.setLevel(level)


TORCH_EXPORT = Format("torch_export", "model.pt2", (("torch.export", export_program),), load)
