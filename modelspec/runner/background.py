"""The thread that writes a run's closing files (weights, confusion matrix, then its run.json) while
the training thread goes on: to the run's last logs, and in a grid to the next run.

One thread, so jobs run in the order they were handed over: a job handed over after others finds them
done, which is how a run.json is written only once its run's files are (`after`). Encoding a PNG,
compressing and syncing files release the GIL, so they cost the training thread little; work that
holds the GIL would slow it down instead: keep that out.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable

DONE: Future = Future()  # nothing to write
DONE.set_result(None)

_THREAD: ThreadPoolExecutor | None = None


def in_background(write: Callable[..., Any], *args) -> Future:
    """`write(*args)` on the files thread; its Future says when it is done, or why it failed."""
    global _THREAD
    if _THREAD is None:
        _THREAD = ThreadPoolExecutor(1, thread_name_prefix="modelspec-files")
    return _THREAD.submit(write, *args)


def after(futures: Iterable[Future], write: Callable[..., Any], *args) -> Future:
    """`write(*args)` on the files thread once every one of `futures` (handed over before) has
    succeeded; the first one's error instead, and `write` is not called."""
    futures = list(futures)

    def when_written() -> Any:
        for future in futures:
            future.result()
        return write(*args)

    return in_background(when_written)
