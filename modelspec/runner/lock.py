"""One process at a time per grid folder: a lock file naming its owner (pid and host).

Two `modelspec resume` of one grid would train the same runs twice and write duplicate TensorBoard
steps. The lock is an `flock` on `<grid>/.lock`, which the kernel drops when its process dies, so a
lock left by a killed process is taken over without asking; the file's text names the owner for the
message a second process prints. Where `flock` is missing (Windows) the owner's pid is checked instead.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from ..errors import SpecError
from ..fileio import LOCK_FILE

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


def _owner_text() -> str:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname()})


def _read_owner(path: Path) -> dict:
    try:
        owner = json.loads(path.read_text(encoding="utf-8"))
        return owner if isinstance(owner, dict) else {}
    except (OSError, ValueError):
        return {}


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class GridLock:
    """Held while a grid trains; `release()` (or the process's death) frees it."""

    def __init__(self, folder: Path):
        self.path = folder / LOCK_FILE
        self.fd: int | None = None

    def acquire(self, log=print) -> "GridLock":
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    raise self._busy(_read_owner(self.path)) from None
                try:
                    if os.fstat(fd).st_ino != os.stat(self.path).st_ino:
                        os.close(fd)  # the holder released (unlinked) it between our open and flock
                        continue
                except FileNotFoundError:
                    os.close(fd)
                    continue
            previous = _read_owner(self.path)
            if fcntl is None and previous.get("host") == socket.gethostname() and _alive(previous.get("pid")) \
                    and previous.get("pid") != os.getpid():
                os.close(fd)
                raise self._busy(previous)
            if previous.get("pid") not in (None, os.getpid()):
                log(f"taking over the lock of process {previous.get('pid')} on {previous.get('host')}, "
                    "which has ended")
            os.ftruncate(fd, 0)
            os.write(fd, _owner_text().encode())
            os.fsync(fd)
            self.fd = fd
            return self

    def _busy(self, owner: dict) -> SpecError:
        who = f"process {owner.get('pid', '?')} on {owner.get('host', '?')}"
        return SpecError(
            f"{self.path.parent} is in use by {who}: two processes would train the same runs",
            hint=f"wait for it to end (or stop it); if no modelspec is running there, delete {self.path}",
        )

    def moved_to(self, folder: Path) -> None:
        """The folder was renamed while held (a new grid is made aside, then renamed into place)."""
        self.path = folder / LOCK_FILE

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)  # before unlocking: a waiter then finds the file gone and retries
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None
