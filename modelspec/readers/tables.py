"""Table files in any of their formats: CSV, TSV and Parquet, chosen by suffix or named.

A table's format is the one a spec names (`format: csv|tsv|parquet`), else its suffix's (in any
case: .csv, .tsv, .parquet or .pq), else CSV. Its header is read by itself first, bounded: a CSV's
first line (`columns.read_header`), a Parquet file's schema (pyarrow reads the footer, no data), so
that validate checks the named columns without reading rows. A file whose bytes say another format
than the one it is read as (a Parquet file named in `format: csv`, a CSV in `format: parquet`) is
one error saying so, not a parser's complaint about byte 0.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Any

from ..errors import Path, SpecError
from .columns import MAX_COLUMNS, read_header
from .extras import optional_import

FORMATS = ("csv", "tsv", "parquet")
SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}
PARQUET_MAGIC = b"PAR1"  # the first (and last) four bytes of every Parquet file


def format_of(path: str | FilePath, format: str | None = None) -> str:
    """The format a table file is read as: `format` where given, else its suffix's, else csv."""
    return format or SUFFIXES.get(FilePath(path).suffix.lower(), "csv")


def separator_of(format: str, separator: str | None = None) -> str:
    """The separator of a text table: the one given, else a tab for TSV and a comma for CSV."""
    return separator or ("\t" if format == "tsv" else ",")


def _where(key: str | None) -> Path:
    return ("data", key) if key else ()


def check_format(path: str | FilePath, format: str, key: str | None = "path", at: Path | None = None) -> None:
    """The file's first bytes agree with `format`: Parquet files start with PAR1, text tables do not.
    `at`: where a mismatch is located (the spec's `format` key where it named one)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(PARQUET_MAGIC))
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror or exc}", path=_where(key)) from None
    is_parquet = head == PARQUET_MAGIC
    if format == "parquet" and not is_parquet:
        raise SpecError(f"{path} is read as Parquet, but it is no Parquet file (it does not start with PAR1)",
                        path=at or _where(key), hint="name its format (format: csv or tsv), or give the .parquet file")
    if format != "parquet" and is_parquet:
        raise SpecError(f"{path} is a Parquet file, but it is read as {format.upper()} text",
                        path=at or _where(key), hint="use format: parquet, or leave format out: the suffix decides")


def _parquet():
    """pyarrow.parquet; pyarrow missing is one message naming the extra."""
    optional_import("pyarrow")
    return optional_import("pyarrow.parquet")


def table_header(path: str | FilePath, format: str, separator: str = ",", key: str | None = "path",
                 at: Path | None = None) -> list[str]:
    """A table's column names without its rows: a CSV's header line, a Parquet file's schema."""
    check_format(path, format, key, at)
    if format != "parquet":
        return read_header(path, separator, key or "path")
    pq = _parquet()
    try:
        names = [str(name) for name in pq.read_schema(str(path)).names]
    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError: cut short, damaged
        raise SpecError(f"cannot read {path} as Parquet: {str(exc).splitlines()[0][:200]}", path=_where(key)) from None
    if len(names) > MAX_COLUMNS:
        raise SpecError(f"{path} has {len(names):,} columns; modelspec refuses more than {MAX_COLUMNS:,}",
                        path=_where(key), hint="is this the right file? select the columns you need first")
    return [name for name in names if not name.startswith("__index_level_")]  # pandas' saved index


def read_frame(path: str | FilePath, format: str, separator: str = ",", key: str | None = "path",
               at: Path | None = None):
    """A table as a pandas DataFrame of typed values (numbers parsed), numbered from 0; its header
    is read first, by itself, so that a table past the column limit is refused before any row."""
    pd = optional_import("pandas")
    table_header(path, format, separator, key, at)
    what = "Parquet" if format == "parquet" else format.upper()
    try:
        if format == "parquet":
            return pd.read_parquet(path).reset_index(drop=True)
        return pd.read_csv(path, sep=separator)
    except (ValueError, OSError, UnicodeDecodeError) as exc:  # pandas' ParserError and ArrowInvalid are ValueErrors
        raise SpecError(f"cannot read {path} as {what}: {str(exc).splitlines()[0][:200]}", path=_where(key)) from None


def plain(value: Any) -> Any:
    """A cell as a plain Python value (numpy scalars unwrapped, NaN as None): JSON-ready."""
    if hasattr(value, "item") and not isinstance(value, (list, dict)):
        value = value.item()
    return None if isinstance(value, float) and value != value else value


def records(frame) -> list[dict[str, Any]]:
    """A typed frame's rows as plain values, for output beside the predictions."""
    return [{str(k): plain(v) for k, v in row.items()} for row in frame.to_dict("records")]
