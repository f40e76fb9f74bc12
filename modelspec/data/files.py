"""What validate reads of a data kind's files: that each file a key names is there, and that each
table's header holds the columns the spec names. Cheap by design (a `stat` and a header line per
file), so that `validate` stays quick and `run` finds these problems before a grid folder exists."""

from __future__ import annotations

from pathlib import Path as FilePath

from ..errors import SpecError, SpecIssue
from .columns import check_spec_columns, read_header

# The keys whose file holds the rows the columns are named in (a tokenizer file holds no columns).
TABLE_KEYS = ("path", "test_path")


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


def check_named_files(data) -> None:
    """Every file a `file_keys` key names is a file (a folder where `folder_keys` has the key);
    every table among them has the named columns. All problems are raised together, each at its key."""
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
        separator = data.table_separator(file) if key in TABLE_KEYS else None
        if separator is None:
            continue
        try:
            header = read_header(file, separator, key)
            check_spec_columns(data, header, file, key)
        except SpecError as exc:
            issues += exc.issues
    if issues:
        raise SpecError(issues)
