"""What validate reads of a data kind's files: that each file a key names is there, and that each
table's header holds the columns the spec names. Cheap by design (a `stat` and a header line per
file), so that `validate` stays quick and `run` finds these problems before a grid folder exists."""

from __future__ import annotations

from pathlib import Path as FilePath

from ..errors import SpecError, SpecIssue
from .columns import check_spec_columns
from .tables import table_header


def kind_problem(file: str, takes_file: bool = True, takes_folder: bool = False) -> str | None:
    """What is wrong with the path `file` for a key that takes a file, a folder or either: nothing
    there, or the other kind (a folder where a CSV is expected would fail later as "cannot read"),
    or None."""
    where = FilePath(file)
    if where.is_dir():
        return None if takes_folder else f"{file} is a folder, not a file"
    if where.is_file():
        return None if takes_file else f"{file} is a file, not a folder"
    return f"no file or folder at {file}"  # nothing, or nothing to read (a pipe, a device)


def format_key(data) -> tuple[str, str] | None:
    """Where a table's format mismatch is located: at `data.format` where the spec names one."""
    return ("data", "format") if getattr(data, "format", None) else None


def _table(data, key: str, file: str) -> tuple[str, str] | None:
    """(format, separator) of a file at a key whose file holds the named columns in a header; None
    where there is no header to check (a folder, JSON lines, a tokenizer)."""
    where = FilePath(file)
    if key not in data.table_keys or not where.is_file():
        return None
    if where.suffix.lower() == ".jsonl" and not getattr(data, "format", None):
        return None
    return data.table_format(file)


def check_named_files(data) -> None:
    """Every file a `file_keys` key names is a file (a folder where `folder_keys` has the key);
    every table among them has the named columns (`data.table_format(file)`: its format and
    separator, or None for a file without a header to check). All problems are raised together,
    each at its key."""
    issues: list[SpecIssue] = []
    for key in dict.fromkeys(data.file_keys + data.folder_keys):
        file = getattr(data, key, None)
        if file is None:
            continue
        problem = kind_problem(file, key in data.file_keys, key in data.folder_keys)
        if problem is not None:
            issues.append(SpecIssue(problem, ("data", key),
                                    "check the path (relative paths start at the working folder)"))
            continue
        table = _table(data, key, file)
        if table is None:
            continue
        try:
            header = table_header(file, *table, key, format_key(data))
            check_spec_columns(data, header, file, key)
        except SpecError as exc:
            issues += exc.issues
    if issues:
        raise SpecError(issues)
