"""`modelspec validate SPEC`: check a spec without data or a GPU."""

from __future__ import annotations

import typer

from ..load import load_spec
from ._common import SetOpt, SpecArg, command


@command
def validate(spec: SpecArg, set_: SetOpt = None) -> None:
    """Check a spec: YAML, keys, types, names, grid and every network's shapes."""
    loaded = load_spec(spec, set_ or [])
    runs = loaded.runs()
    networks = ", ".join(loaded.spec.all_networks)
    typer.echo(f"{loaded.file}: valid — {len(runs)} run(s), network(s): {networks}")
    for note in loaded.notes:
        typer.echo(f"note: {note}")
