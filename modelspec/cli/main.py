"""The `modelspec` command: each command lives in its own file and is wired here."""

from __future__ import annotations

import errno
import os
import signal
import sys
from typing import Annotated

import typer

from ..errors import Terminated
from ..runner.stops import QuietDiskFullThreads
from ._common import EXIT_FAILED
from .evaluate import evaluate
from .export import export
from .predict import predict
from .run import resume, run
from .schema import schema
from .summary import summary
from .validate import validate

app = typer.Typer(
    name="modelspec",
    help="Declarative model specs for PyTorch: validate, summarise, train over grids, export, predict, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def version_text() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"modelspec {version('modelspec')}"
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "modelspec (not installed: version unknown)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(version_text())
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Declarative model specs for PyTorch: validate, summarise, train over grids, export."""


app.command()(validate)
app.command()(summary)
app.command()(schema)
app.command()(run)
app.command()(resume)
app.command()(export)
app.command()(predict)
app.command()(evaluate)


# Every command leaves without the interpreter's teardown, once its output is flushed: after
# `import torch` the teardown costs 0.5-1.1 s (a quarter of a `validate`), every file a command writes
# is already complete on disk (atomic writes, closed TensorBoard writers), and during the teardown
# Python has given SIGTERM back its default action, so a `kill` landing then would end the process
# with no message instead of exit 143.


class StdoutError(Exception):
    """Standard output cannot be written (closed, a full disk, a pipe whose reader left)."""


class _GuardedStdout:
    """sys.stdout, with its write errors told apart from every other OSError."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise StdoutError(exc.strerror or str(exc)) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise StdoutError(exc.strerror or str(exc)) from None

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _terminate(signum, frame) -> None:
    raise Terminated()  # the grid runner replaces this with a graceful stop while runs train


def _leave(code: int) -> None:
    """Exit without the interpreter's teardown (see above), its output flushed where it can be."""
    try:
        sys.stdout.flush()
    except (StdoutError, OSError, ValueError):
        pass  # already said; exit with the code
    try:
        sys.stderr.flush()
    finally:
        os._exit(code)


def main() -> None:
    if sys.stdout is None or not _writable(1):
        print("error: standard output is closed; redirect it (e.g. > /dev/null) instead", file=sys.stderr)
        _leave(EXIT_FAILED)
    sys.stdout = _GuardedStdout(sys.stdout)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C is KeyboardInterrupt again (see __init__)
    QuietDiskFullThreads().__enter__()  # for the whole process: TensorBoard's threads may flush late
    try:
        try:
            app()
        finally:
            sys.stdout.flush()
    except StdoutError as exc:
        print(f"error: cannot write to standard output: {exc}", file=sys.stderr)
        _leave(EXIT_FAILED)
    except SystemExit as done:
        code = done.code
        _leave(code if isinstance(code, int) else (0 if code is None else 1))


def _writable(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError as exc:
        return exc.errno != errno.EBADF
