"""The `modelspec` command: each command lives in its own file and is wired here."""

from __future__ import annotations

import errno
import importlib
import os
import signal
import sys
from typing import Annotated

import click
import typer
from typer.core import TyperGroup

from ..errors import Terminated
from ._common import EXIT_FAILED

# Each command, by the module of this package that defines it. A module is imported only when its
# command runs: most import torch (seconds), which `--version` and `schema` never need.
COMMANDS = {"validate": "validate", "summary": "summary", "schema": "schema", "run": "run", "resume": "run",
            "export": "export", "predict": "predict", "evaluate": "evaluate", "runs": "runs", "compare": "compare",
            "report": "report", "serve": "serve"}
WITHOUT_TORCH = {"schema", "runs", "compare", "report"}


class _Commands(TyperGroup):
    """The commands, each imported and built when asked for (to run it, or for --help)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        if name not in self.commands:
            module = importlib.import_module(f".{COMMANDS[name]}", __package__)
            if name not in WITHOUT_TORCH:
                from ..runner.stops import QuietDiskFullThreads

                QuietDiskFullThreads().__enter__()  # for the whole process: TensorBoard's threads may flush late
            one = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
            one.command(name)(getattr(module, name))
            self.commands[name] = typer.main.get_command(one)
        return self.commands[name]


app = typer.Typer(
    name="modelspec",
    cls=_Commands,
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
        _flush(sys.stdout)
        _flush(sys.stderr)
    finally:
        os._exit(code)


def _flush(stream) -> None:
    """Flush a standard stream that may be gone: Python sets it to None when its descriptor was
    closed at start (`>&-`), and a write error was already said (or cannot be)."""
    if stream is None:
        return
    try:
        stream.flush()
    except (StdoutError, OSError, ValueError):
        pass


def main() -> None:
    if sys.stdout is None or not _writable(1):
        print("error: standard output is closed; redirect it (e.g. > /dev/null) instead", file=sys.stderr)
        _leave(EXIT_FAILED)
    sys.stdout = _GuardedStdout(sys.stdout)
    _import_command(sys.argv[1:])  # still under the start-up's signal handling (see __init__)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C is KeyboardInterrupt again (see __init__)
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


def _import_command(args: list[str]) -> None:
    """Import the module of the command named in `args` (its first word that is not an option), the
    seconds of start-up that a signal should end with one line, not as a stop of a running command."""
    name = next((arg for arg in args if not arg.startswith("-")), None)
    if name in COMMANDS:
        importlib.import_module(f".{COMMANDS[name]}", __package__)


def _writable(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError as exc:
        return exc.errno != errno.EBADF
