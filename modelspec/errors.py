"""The one error type for what a user can get wrong, and how it reads.

Everything a spec, a data folder or a command line can get wrong ends as a `SpecError`: a list of
located issues (file:line:col, spec path, what was received, what was expected, a hint). The CLI prints
them and exits 2; nothing a user writes may end in a traceback.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable, Sequence

Path = tuple[str | int, ...]  # a spec path: ("networks", "cnn", 5, "linear", "in_features")


def format_path(path: Path) -> str:
    """("networks", "cnn", 5, "linear") -> "networks.cnn[5].linear"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """A Click-style suggestion, or "" when nothing is close."""
    matches = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else ""


@dataclass(frozen=True)
class SpecIssue:
    message: str
    path: Path = ()
    hint: str = ""
    file: str | None = None
    line: int | None = None  # 1-based, as editors count
    column: int | None = None

    def located(self, file: str | None, line: int | None, column: int | None) -> "SpecIssue":
        return SpecIssue(self.message, self.path, self.hint, file, line, column)

    def __str__(self) -> str:
        if self.file is None and self.line is None and not self.path:
            text = self.message  # not about a place in a spec: a missing file, a bad option
        else:
            where = self.file or "<spec>"
            if self.line is not None:
                where += f":{self.line}:{self.column or 1}"
            if self.path:  # a problem with the whole file (YAML syntax, empty) has no spec path
                where += f" {format_path(self.path)}"
            text = f"{where}: {self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


@dataclass
class SpecError(ValueError):
    """One or more things a user got wrong. `str()` is the message the CLI prints."""

    issues: list[SpecIssue] = field(default_factory=list)

    def __init__(self, issues: Sequence[SpecIssue] | str, *, path: Path = (), hint: str = ""):
        if isinstance(issues, str):
            issues = [SpecIssue(issues, path, hint)]
        self.issues = list(issues)
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [str(issue) for issue in self.issues]
        if len(lines) > 1:
            lines.insert(0, f"{len(lines)} problems in the spec:")
        return "\n".join(lines)


class RunError(RuntimeError):
    """A run or an export that failed for a reason outside the spec (exit code 1)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, `docker stop`, `kill`): handled like Ctrl-C, but exits 143, not 130."""


class DiskFull(RunError):
    """No space left where a run writes: the run stopped at its last good checkpoint and resumes
    once space is freed."""
