"""Writing files so that nothing is lost: atomically (temporary file, fsync, rename), with the
permissions a plain open() gives, and a full disk told apart from a path that cannot be written.

The bottom layer: every module that writes a file a user relies on (weights, results, run states,
tracker files, fitted statistics) writes it through here, and every torch file is read back through
`safe_load`; it imports nothing else of modelspec's but its errors.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

from .errors import RunError, SpecError

# The files of a grid folder, named here (this module imports no torch) for the runner that writes
# them and for the readers that must start fast (`modelspec runs`, `compare`, `report`).
WEIGHTS_FILE = "weights.pt"
GRID_FILE = "grid.json"  # in a grid folder: where it was started from, and how it runs
RESULTS_FILE = "results.json"  # in a grid folder: every run's rows and summary
RUN_FILE = "run.json"  # in a run folder: how the run ended, and its rows
CHECKPOINT_FILE = "checkpoint.pt"  # in a run folder: where a stopped run resumes
LOCK_FILE = ".lock"  # in a grid folder: the process that trains it
OUTPUTS_FILE = "outputs.csv"  # in a run folder: its final model's outputs (runner/outputs.py)
SEARCH_FILE = "search.json"  # in a search's grid folder: its trials, best and importances (runner/search.py)
SEARCH_JOURNAL = "search.journal"  # in a search's grid folder: the Optuna study (runner/search.py)


def current_umask() -> int:
    """The process umask, read without changing it where Linux says it (/proc), else set and reset."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def shared_mode(directory: bool = False) -> int:
    """The mode a plain open()/mkdir() would give: tempfile makes 0600 files and 0700 folders, which a
    shared TensorBoard or a teammate could not read."""
    return (0o777 if directory else 0o666) & ~current_umask()


DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def disk_full_error(exc: BaseException) -> OSError | None:
    """The write's OSError that says no space is left (or over quota, or past the file-size limit),
    wherever it is in the chain: torch's C++ writers raise their own RuntimeError ("unexpected pos
    ...") with the OSError as its context. Told by the error number, never by the message."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def is_disk_full(exc: BaseException) -> bool:
    """No space left where something was written: freeing space lets the run go on."""
    return disk_full_error(exc) is not None


def _write_all(fd: int, data: bytes, path: Path) -> None:
    """os.write until every byte is written: a write that takes none means the disk is full."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        view = view[written:]


def _write_atomically(path: Path, data: bytes, durable: bool = True, sync_folder: bool = True) -> None:
    """`data` into a temporary file in the same folder, then rename over `path`; with `durable`,
    fsync the file first and the folder after, so that it also survives a crash of the machine.

    A kill of the process at any instant leaves the old file or the new one, never a torn one; a
    failed write (a full disk) leaves the old file and no temporary behind, and raises an OSError
    with its error number (`is_disk_full` tells it). `sync_folder=False` leaves the rename to a later
    durable write into the same folder (one folder sync commits every rename before it: a run's
    files, then its run.json).
    """
    _rename_over(_temporary_with(path, data, durable), path, durable and sync_folder)


JOURNAL_PREFIX = ".together."  # `atomic_write_together`'s record of renames under way: ".together.<random>.json"


def atomic_write_together(files: list[tuple[Path, bytes]], folder: Path, durable: bool = True) -> None:
    """Several files that belong together (the checkpoints of a pack's runs), each as
    `_write_atomically` writes it, committed as one: a kill at any instant leaves all the old files
    or, once `finish_writes_together(folder)` has run, all the new ones.

    Every file is written to its temporary first; then a journal in `folder` (a folder above them
    all) lists the renames still to make, and is the commit; then the renames, then the journal goes.
    A kill before the journal is whole leaves the old files (and temporaries that nothing reads); a
    kill within the renames leaves the journal, which `finish_writes_together` completes. An error
    within the renames (not a kill) discards what is left, journal included, as one file's failed
    write does: the files named before it are new, the rest old.
    """
    written: list[tuple[str, Path]] = []
    try:
        for path, data in files:
            written.append((_temporary_with(path, data, durable), path))
        journal = _journal(written, folder, durable) if len(written) > 1 else None
    except BaseException:
        for tmp, _ in written:
            os.unlink(tmp)
        raise
    for i, (tmp, path) in enumerate(written):
        try:
            _rename_over(tmp, path, durable)
        except BaseException:
            for rest, _ in written[i + 1:]:
                os.unlink(rest)
            if journal is not None:
                journal.unlink(missing_ok=True)
            raise
    if journal is not None:
        journal.unlink()  # not synced: a journal back after a crash names temporaries already renamed


def _journal(renames: list[tuple[str, Path]], folder: Path, durable: bool) -> Path:
    """The record of renames to make, written atomically in `folder`, with paths relative to it."""
    import json
    import secrets

    journal = folder / f"{JOURNAL_PREFIX}{secrets.token_hex(6)}.json"
    pairs = [[os.path.relpath(tmp, folder), os.path.relpath(path, folder)] for tmp, path in renames]
    _write_atomically(journal, json.dumps({"renames": pairs}).encode(), durable)
    return journal


def finish_writes_together(folder: Path) -> int:
    """Completes the renames of every `atomic_write_together` a kill interrupted in `folder`; the
    number of files it put in place. Run before anything reads those files again (a resume)."""
    import json

    done = 0
    for journal in sorted(Path(folder).glob(f"{JOURNAL_PREFIX}*.json")):
        try:
            pairs = json.loads(journal.read_text())["renames"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SpecError(f"{journal} cannot be read ({exc}): the checkpoints it names may be a mix of old and new",
                            hint="remove it: each run then resumes from its own checkpoint, those of one pack "
                                 "perhaps an epoch apart (equal to training on to rounding, not bit for bit)") from None
        for tmp, path in pairs:
            if os.path.exists(folder / tmp):  # else renamed before the kill
                _rename_over(str(folder / tmp), folder / path, sync_folder=True)
                done += 1
        journal.unlink()
    return done


def _temporary_with(path: Path, data: bytes, durable: bool) -> str:
    """A new temporary file beside `path` holding `data` (synced with `durable`); none on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            os.fchmod(fd, shared_mode())
            _write_all(fd, data, path)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _rename_over(tmp: str, path: Path, sync_folder: bool) -> None:
    """The temporary in place of `path`; with `sync_folder`, the rename synced to the disk too."""
    try:
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if sync_folder:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself must reach the disk too
        finally:
            os.close(dir_fd)


def torch_bytes(obj: Any) -> bytes:
    """torch.save into memory: its C++ zip writer never meets the disk, whose errors it would hide
    behind its own ("unexpected pos ..."); the bytes are written by `_write_atomically`."""
    import torch  # here: the bottom layer imports no engine until it writes a tensor

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def atomic_save(obj: Any, path: str | Path, durable: bool = True) -> None:
    """torch.save, atomically (see `_write_atomically`)."""
    _write_atomically(Path(path), torch_bytes(obj), durable)


def atomic_write_bytes(path: str | Path, data: bytes, sync_folder: bool = True) -> None:
    """Bytes (a serialised model), atomically and durably (see `_write_atomically`)."""
    _write_atomically(Path(path), data, sync_folder=sync_folder)


def atomic_write_text(path: str | Path, text: str, sync_folder: bool = True) -> None:
    """Text files that others read back (results, run states): never seen half-written."""
    _write_atomically(Path(path), text.encode("utf-8"), sync_folder=sync_folder)


def table_json(document: dict[str, Any]) -> str:
    """A document of tables (results.json, run.json) as JSON to read by eye: one key a line, and the
    rows of a list of rows (dicts) one a line, each compact. Each goes through json's C encoder, which
    `indent` turns off: indented, 640 rows took 2.4 times as long (9 ms a save of a 64-run grid's table)."""
    lines = []
    for key, value in document.items():
        head = f" {json.dumps(key)}: "
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            items = ",\n".join(f"  {json.dumps(item, default=str)}" for item in value)
            lines.append(f"{head}[\n{items}\n ]")
        else:
            lines.append(head + json.dumps(value, default=str))
    return "{\n" + ",\n".join(lines) + "\n}" if lines else "{}"


def output_error(exc: OSError, path: Path, option: str) -> Exception:
    """What a failed write to a path the user gave ends as: a full disk is a command that failed
    (RunError, exit 1); any other reason, a path that cannot be written (SpecError, exit 2)."""
    if is_disk_full(exc):
        return RunError(f"cannot write {path}: {exc.strerror or 'no space left on the disk'}; free some space "
                        "and run the command again")
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if isinstance(exc, (FileExistsError, NotADirectoryError)) and blocker is not None:
        reason = f"the file {blocker} is in the way of a folder"
    elif isinstance(exc, IsADirectoryError):
        reason = "it is a folder"
    else:
        reason = exc.strerror or str(exc)
    return SpecError(f"{option} {path}: cannot write there: {reason}", hint=f"give {option} a path you can write to")


def check_output(path: Path, option: str, folder: bool = False) -> None:
    """Before the work that fills it: `path` (a file, or with `folder` a folder) can be written. Its
    folder is made and must take a new file; see `output_error` for what a failure ends as."""
    target = path if folder else path.parent
    try:
        target.mkdir(parents=True, exist_ok=True)
        if not folder and path.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        with tempfile.TemporaryFile(dir=target):
            pass
    except OSError as exc:
        raise output_error(exc, path, option) from None


# --------------------------------------------------------------------------------------------------
# Reading torch files back: what a foreign, corrupt or truncated file is, in a user's words


def restart_hint(run_dir: Path) -> str:
    """How to start one run of a grid over: the command, or by hand."""
    return (f"start this run over: `modelspec resume {run_dir.parent} --restart-run {run_dir.name}` "
            f"(or delete {run_dir} and resume)")


def _weights_hint(path: Path) -> str:
    """What to do about an unreadable weights file: a grid's run is started over; any other file is
    replaced by one torch wrote."""
    if path.name == WEIGHTS_FILE and (path.parent.parent / GRID_FILE).is_file():
        return restart_hint(path.parent)
    return "give a file that torch.save wrote, such as a run's weights.pt (`modelspec run SPEC` writes one)"


def _why_unreadable(path: Path, exc: Exception) -> str:
    """What is wrong with a file torch.load refused, from its first bytes: torch's own words for a
    foreign file ("pop from empty list", "101") say nothing to a user."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as error:
        return error.strerror or str(error)
    if not head:
        return "the file is empty"
    if not (head.startswith(b"PK") or head.startswith(b"\x80")):  # torch.save's zip, or its older pickle
        return f"not a file torch.save wrote (it begins with {head!r})"
    text = re.sub(r"^\[enforce fail at [^\]]*\][ .]*", "", " ".join(str(exc).split()))  # torch's C++ prefix
    return text.split(". ")[0][:200] or type(exc).__name__


def safe_load(path: str | Path, what: str = "file", hint: str | None = None) -> Any:
    """torch.load with weights_only=True; a missing, foreign, corrupt or truncated file is a clear error.

    `hint` says what the caller can do about it (a resume cannot "resume the run to write it again");
    by default, how to write the weights again.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"no {what} at {path}", hint="check the path; runs keep weights in <run>/weights.pt")
    import torch  # here, as in torch_bytes: the bottom layer imports no engine until it reads one

    try:
        with warnings.catch_warnings():  # the unpickler's notes on a foreign file's pickle protocol
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - bytes that are not torch's fail with any type (IndexError, KeyError, ...)
        raise SpecError(
            f"{path} is not a readable {what} (corrupt or truncated?): {_why_unreadable(path, exc)}",
            hint=hint or _weights_hint(path),
        ) from None
