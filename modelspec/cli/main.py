"""The `modelspec` command: each command lives in its own file and is wired here."""

from __future__ import annotations

import os
import sys

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


# Commands that only read and print. Interpreter teardown after `import torch` costs about half a
# second, a quarter of a `validate`; these commands have nothing left to flush or close, so they
# leave without it.
READ_ONLY = {"validate", "summary", "schema"}


def main() -> None:
    try:
        app()
    except SystemExit as done:
        if len(sys.argv) > 1 and sys.argv[1] in READ_ONLY:
            sys.stdout.flush()
            sys.stderr.flush()
            code = done.code
            os._exit(code if isinstance(code, int) else (0 if code is None else 1))
        raise
