"""`modelspec summary SPEC`: one table per network: layer, output shape, parameters.

A graph gets a "from" column (the layers each one reads); a block use is one row with the
parameters of all its repeats. The trained network's trainable and frozen counts (train.freeze)
come from building it on the meta device, so nothing is allocated.
"""

from __future__ import annotations

import torch
from rich.console import Console
from rich.table import Table

from ..compile import build_from_shapes
from ..compile.finetune import freeze
from ..compile.shapes import INPUT_INDEX, LayerShape, NetworkShapes
from ..errors import SpecError
from ..load import check_shapes, load_spec
from ..spec.layers import INPUT, fmt_shape
from ._common import SetOpt, SpecArg, UnsetOpt, command


def _source_names(row: LayerShape, network: NetworkShapes) -> str:
    return ", ".join(INPUT if s == INPUT_INDEX else network.layers[s].key for s in row.sources)


def _table(name: str, network: NetworkShapes) -> Table:
    graph = not network.is_stack
    table = Table(title=f"{name}  (input {fmt_shape(network.input_shape)})", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("layer")
    if graph:
        table.add_column("from")
    table.add_column("output shape")
    table.add_column("parameters", justify="right")
    for row in network.layers:
        label = row.layer.label
        if row.layer.name is not None and row.layer.name not in label.split():  # torchvision: named by its model
            label = f"{row.layer.name}: {label}"
        sources = [_source_names(row, network)] if graph else []
        table.add_row(str(row.index), label, *sources, fmt_shape(row.output_shape), f"{row.parameters:,}")
    table.add_section()
    table.add_row("", "total", *([""] if graph else []), fmt_shape(network.output_shape), f"{network.parameters:,}")
    return table


@command
def summary(spec: SpecArg, set_: SetOpt = None, unset: UnsetOpt = None) -> None:
    """Print each network's layers with their output shapes and parameter counts."""
    loaded = load_spec(spec, set_ or [], unset=unset or [])
    shapes, notes = check_shapes(loaded.spec, loaded.source)
    if not shapes:
        raise SpecError("; ".join(notes))
    console = Console()
    for name, network in shapes.items():
        console.print(_table(name, network))
        if name == loaded.spec.network_name:
            with torch.device("meta"):  # counts only: no memory
                trainable, frozen = freeze(build_from_shapes(network), loaded.spec.train.freeze)
            console.print(f"trainable parameters: {trainable:,}; frozen: {frozen:,}")
    for note in notes:
        console.print(f"note: {note}")
