"""What the commands share: the spec arguments, and turning errors into exit codes.

Exit codes: 0 success, 1 a run or export that failed, 2 a bad spec or bad usage, 130 Ctrl-C, 143
SIGTERM. A `SpecError` prints its located message on stderr; no traceback reaches the user.
"""

from __future__ import annotations

import functools
import sys
from typing import Annotated, Callable, Optional

import typer

from ..errors import RunError, SpecError, Terminated

EXIT_FAILED = 1
EXIT_SPEC = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM

SpecArg = Annotated[str, typer.Argument(help="Path to the spec YAML file.", metavar="SPEC")]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set",
        help="Override a spec value: PATH=VALUE (VALUE is YAML), e.g. --set train.epochs=2. Repeatable.",
        metavar="PATH=VALUE",
    ),
]
UnsetOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--unset",
        help="Remove a key of the spec, so that its default applies, e.g. --unset data.download. "
             "Applied before --set. Repeatable.",
        metavar="PATH",
    ),
]


def fail(message: str, code: int) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def command(func: Callable) -> Callable:
    """Wrap a command so that user errors end in a message and an exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except SpecError as exc:
            raise fail(f"error: {exc}", EXIT_SPEC) from None
        except RunError as exc:
            raise fail(f"error: {exc}", EXIT_FAILED) from None
        except Terminated:
            raise fail("terminated", EXIT_TERMINATED) from None
        except KeyboardInterrupt:
            raise fail("interrupted", EXIT_INTERRUPTED) from None

    return wrapper


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()
