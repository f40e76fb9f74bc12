"""What stops a grid from outside: Ctrl-C and SIGTERM, and a full disk seen by a writer thread.

The per-batch loop (runner/loop.py) asks `stop_requested()` after each batch and checkpoints before
it stops; `StopFlag` is what that question reads.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from ..fileio import is_disk_full
from ..errors import Terminated


class QuietDiskFullThreads:
    """A full disk fails TensorBoard's writer thread too, which would print its own traceback; the
    main thread meets the same error at the next flush and stops the grid with one message."""

    def __enter__(self):
        self.previous = threading.excepthook

        def hook(args):
            if not is_disk_full(args.exc_value):
                self.previous(args)

        threading.excepthook = hook
        return self

    def __exit__(self, *exc):
        threading.excepthook = self.previous


class StopFlag:
    """Ctrl-C or SIGTERM while a run trains: finish the batch, checkpoint and stop; a second signal
    stops at once. Outside a run's training (data preparation, a download) there is nothing to
    checkpoint, so a signal stops at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.signum: int | None = None
        self.graceful = False
        self.previous: dict[int, Any] = {}

    def __enter__(self):
        try:
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handle)
        except ValueError:  # not the main thread: signals are the caller's business
            self.previous = {}
        return self

    def _handle(self, signum, frame):
        already, self.requested, self.signum = self.requested, True, self.signum or signum
        if already or not self.graceful:
            raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
