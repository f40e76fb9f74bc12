"""The `modelspec` command: each command lives in its own file and is wired here."""

from __future__ import annotations

import typer

from .export import export
from .run import resume, run
from .schema import schema
from .summary import summary
from .validate import validate

app = typer.Typer(
    name="modelspec",
    help="Declarative model specs for PyTorch: validate, summarise, train over grids, export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(validate)
app.command()(summary)
app.command()(schema)
app.command()(run)
app.command()(resume)
app.command()(export)


def main() -> None:
    app()
