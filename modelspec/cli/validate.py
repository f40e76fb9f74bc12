"""`modelspec validate SPEC`: check a spec without a GPU, reading only what is cheap of its data."""

from __future__ import annotations

from typing import Annotated

import typer

from ..load import load_spec
from ._common import SetOpt, SpecArg, UnsetOpt, command

NoDataOpt = Annotated[bool, typer.Option(
    "--no-data", help="Do not look at the data's files (where they are not on this machine).")]


@command
def validate(spec: SpecArg, set_: SetOpt = None, unset: UnsetOpt = None, no_data: NoDataOpt = False) -> None:
    """Check a spec: YAML, keys, types, names, grid, every network's shapes, and what is cheap to read
    of the data's files (that they exist, a table's header and width, the class folders)."""
    loaded = load_spec(spec, set_ or [], unset=unset or [], check_data=not no_data)
    loaded.spec.tracking.check()  # a listed backend whose package is missing fails here, not at run
    search = loaded.spec.search
    runs = f"a search of {search.trials} trials over {len(search.space)} axes" if search else f"{len(loaded.runs())} run(s)"
    networks = ", ".join(loaded.spec.all_networks)
    typer.echo(f"{loaded.file}: valid — {runs}, network(s): {networks}")
    for note in loaded.notes:
        typer.echo(f"note: {note}")
