"""`modelspec summary SPEC`: one table per network: layer, output shape, parameters."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ..errors import SpecError
from ..load import check_shapes, load_spec
from ..spec.layers import fmt_shape
from ._common import SetOpt, SpecArg, command


@command
def summary(spec: SpecArg, set_: SetOpt = None) -> None:
    """Print each network's layers with their output shapes and parameter counts."""
    loaded = load_spec(spec, set_ or [])
    shapes, notes = check_shapes(loaded.spec, loaded.source)
    if not shapes:
        raise SpecError("; ".join(notes))
    console = Console()
    for name, network in shapes.items():
        table = Table(title=f"{name}  (input {fmt_shape(network.input_shape)})", title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("layer")
        table.add_column("output shape")
        table.add_column("parameters", justify="right")
        for row in network.layers:
            table.add_row(str(row.index), row.layer.label, fmt_shape(row.output_shape), f"{row.parameters:,}")
        table.add_section()
        table.add_row("", "total", fmt_shape(network.output_shape), f"{network.parameters:,}")
        console.print(table)
    for note in notes:
        console.print(f"note: {note}")
