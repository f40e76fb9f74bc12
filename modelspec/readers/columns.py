"""A table's header, read by itself and bounded, and the spec keys that name its columns checked
against it.

Validate reads only this much of a CSV (no pandas, no rows), and the readers call `read_header`
before pandas parses anything, so that a header of a million columns is refused in a moment with
its count instead of parsing for minutes.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path as FilePath
from typing import Mapping, Sequence

from ..errors import Path, SpecError, SpecIssue, did_you_mean, format_path

# Like the limits on layers and parameters: past this a table is no table of features (50,000 columns
# took pandas 84 s to parse and one-hot encode); 10,000 is far beyond any hand-made feature list.
MAX_COLUMNS = 10_000
# A header line longer than this is refused unread past it (10,000 names of 400 characters fit).
MAX_HEADER_BYTES = 4 * 2**20
_CHUNK = 2**16


def _too_many(file: str, count: int, key: str, at_least: bool) -> SpecError:
    counted = f"at least {count:,}" if at_least else f"{count:,}"
    return SpecError(f"{file} has {counted} columns; modelspec refuses more than {MAX_COLUMNS:,}",
                     path=("data", key), hint="is this the right file (and separator)? select the columns "
                                              "you need into a smaller CSV first")


def _first_line(file: str, separator: str, key: str) -> bytes:
    """The bytes of the first line, counting separators as they come: a header past the limits is
    refused as soon as that is known, without reading the rest."""
    sep, seen, columns, chunks = separator.encode("utf-8"), 0, 1, []
    try:
        with open(file, "rb") as handle:
            while True:
                chunk = handle.read(_CHUNK)
                end = chunk.find(b"\n")
                chunks.append(chunk if end < 0 else chunk[:end])
                seen += len(chunk)
                columns += chunks[-1].count(sep)
                if len(sep) == 1 and columns > MAX_COLUMNS:
                    at_least = end < 0 and len(chunk) == _CHUNK
                    raise _too_many(file, columns, key, at_least)
                if end >= 0 or len(chunk) < _CHUNK:
                    return b"".join(chunks)
                if seen > MAX_HEADER_BYTES:
                    raise SpecError(f"the first line of {file} is longer than {MAX_HEADER_BYTES:,} bytes",
                                    path=("data", key), hint="a CSV starts with a header row of column names")
    except OSError as exc:
        raise SpecError(f"cannot read {file}: {exc.strerror or exc}", path=("data", key)) from None


def read_header(file: str | FilePath, separator: str = ",", key: str = "path") -> list[str]:
    """The column names of a CSV's header row, as pandas names them (one-character separators are
    read as the csv module does; longer ones are regular expressions, as pandas takes them)."""
    file = str(file)
    line = _first_line(file, separator, key)
    try:
        text = line.decode("utf-8-sig").rstrip("\r")
    except UnicodeDecodeError as exc:
        raise SpecError(f"the header of {file} is not UTF-8 text (byte {exc.start})", path=("data", key)) from None
    if not text.strip():
        raise SpecError(f"{file} has no header row", path=("data", key),
                        hint="a CSV starts with a row of column names")
    if len(separator) == 1:
        names = next(csv.reader([text], delimiter=separator))
    else:
        names = re.split(separator, text)
    if len(names) > MAX_COLUMNS:
        raise _too_many(file, len(names), key, False)
    return names


def check_columns(header: Sequence[str], named: Mapping[Path, Sequence[str]], file: str,
                  at: Path | None = None) -> None:
    """Every column a spec key names (`named`: spec path -> the names it gives) is in `header`.
    One issue per key, at that key (or at `at`: a test file the names must also be in), with the
    closest column of the file."""
    columns = set(header)
    issues = []
    for path, names in named.items():
        missing = [name for name in names if name not in columns]
        if not missing:
            continue
        hint = did_you_mean(missing[0], header) or "its columns: " + ", ".join(header[:20]) + (
            ", ..." if len(header) > 20 else "")
        which = ", ".join(repr(m) for m in missing[:5]) + (", ..." if len(missing) > 5 else "")
        named_by = f" (named by {format_path(path)})" if at is not None else ""
        issues.append(SpecIssue(f"{file} has no column {which}{named_by}", at or path, hint))
    if issues:
        raise SpecError(issues)


def check_spec_columns(data, header: Sequence[str], file: str, key: str = "path") -> None:
    """The columns the spec's keys name (`data.named_columns()`) are in `header`, the header of the
    file at `data.<key>`: validate's check and the readers' at run time, located alike. A training
    file's missing columns go to the keys that name them; a test file's to its own key (the spec is
    right for the training file, the test file differs)."""
    check_columns(header, data.named_columns(), file, at=None if key == "path" else ("data", key))
