"""The threads that write a run's closing files (weights, confusion matrix, then its run.json) while
the training thread goes on: to the run's last logs, and in a grid to the next run.

A few threads, because most of a closing file's time is its fsync, which waits on the disk: when a
pack's runs end together, hundreds of files are synced at once, and syncs in flight together cost
the disk little more than one (a 256-run pack's end took 10 % less with four threads than with one).
Jobs may therefore end in any order: what must follow another says so (`after`: a run.json waits
for its run's files; the results table waits for its last save). Encoding a PNG, compressing and
syncing files release the GIL, so they cost the training thread little; work that holds the GIL
would slow it down instead: keep that out.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable

DONE: Future = Future()  # nothing to write
DONE.set_result(None)

FILE_THREADS = 4
_THREAD: ThreadPoolExecutor | None = None


def in_background(write: Callable[..., Any], *args) -> Future:
    """`write(*args)` on a files thread; its Future says when it is done, or why it failed."""
    global _THREAD
    if _THREAD is None:
        _THREAD = ThreadPoolExecutor(FILE_THREADS, thread_name_prefix="modelspec-files")
    return _THREAD.submit(write, *args)


def after(futures: Iterable[Future], write: Callable[..., Any], *args) -> Future:
    """`write(*args)` on a files thread once every one of `futures` (handed over before) has
    succeeded; the first one's error instead, and `write` is not called. It waits there: those
    futures, handed over first, are running or done on the other threads, never queued behind it."""
    futures = list(futures)

    def when_written() -> Any:
        for future in futures:
            future.result()
        return write(*args)

    return in_background(when_written)
