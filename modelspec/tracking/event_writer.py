"""A SummaryWriter whose events are written on the training thread, with no writer thread.

TensorBoard's EventFileWriter hands every event to a thread of its own, which wakes for each one and
takes the GIL from the training thread to write a few dozen bytes. One run pays that once per
scalar; a pack of 64 runs (`--executor vmap`) holds 64 such threads, and their hand-offs took a
quarter of the packed grid's time (bench/bench_vmap.py). Serialising an event and its checksum (in
C, `use_fast_checksums`) costs microseconds, so the writes are made where the events are added,
each record one write to the OS (a killed run keeps what it logged): the same file, name and records
as TensorBoard's writer makes, which TensorBoard reads as its own.

It leans on two things of torch's SummaryWriter that are not public: `_get_file_writer`, which it
replaces to make its file writer, and the attributes that method reads. Where they are not as
expected, it makes torch's own writer (a thread per run again, nothing lost).
"""

from __future__ import annotations

import functools
import itertools
import os
import socket
import threading
import time
from typing import Any

# torch and tensorboard are imported where a writer is made: this package's trackers are found by
# importing its modules, which `modelspec schema` does without torch.
_OWN_UIDS = itertools.count()


def _next_uid() -> int:
    """TensorBoard's own counter where it has one, so that no two writers of this process share a name."""
    from tensorboard.summary.writer import event_file_writer

    uids = getattr(event_file_writer, "_global_uid", None)
    return uids.get() if uids is not None else next(_OWN_UIDS)


def _stamp(logdir: str) -> int:
    """The file name's time: now, or past the newest event file already in `logdir`. TensorBoard
    reads a run's event files in name order, so the file of a run resumed within the second its
    last file was opened (a pack's runs packed anew) must sort after it, not by its counter's digits
    ('<pid>.10' sorts before '<pid>.9')."""
    stamp = int(time.time())
    for name in os.listdir(logdir):
        if name.startswith("events.out.tfevents."):
            field = name[len("events.out.tfevents."):].split(".", 1)[0]
            if field.isdigit():
                stamp = max(stamp, int(field) + 1)
    return stamp


class _WholeWrites:
    """An unbuffered file whose write writes all it is given (a raw write may write less)."""

    def __init__(self, raw):
        self.raw = raw

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self.raw.write(view):]

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.raw.close()


class _EventFile:
    """EventFileWriter's interface, writing on the caller's thread."""

    def __init__(self, logdir: str, filename_suffix: str = ""):
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        os.makedirs(logdir, exist_ok=True)
        self._logdir = logdir
        name = "events.out.tfevents.%010d.%s.%s.%s" % (_stamp(logdir), socket.gethostname(), os.getpid(), _next_uid())
        # Unbuffered: each record is one write to the OS, as TensorBoard's writer makes it (which
        # opens the file for each), so that a killed run keeps every event it had logged.
        raw = open(os.path.join(logdir, name + filename_suffix), "wb", buffering=0)  # noqa: SIM115 - closed by close()
        self._records = RecordWriter(_WholeWrites(raw))
        self._lock = threading.Lock()  # a background tracker call and the training thread
        self._closed = False
        self.add_event(event_pb2.Event(
            wall_time=time.time(), file_version="brain.Event:2",
            source_metadata=event_pb2.SourceMetadata(writer="tensorboard.summary.writer.event_file_writer")))

    def get_logdir(self) -> str:
        return self._logdir

    def add_event(self, event: Any) -> None:
        with self._lock:
            if self._closed:
                raise OSError("Writer is closed")
            self._records.write(event.SerializeToString())

    def flush(self) -> None:
        pass  # each record went to the OS as it was written

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._records.close()

    def reopen(self) -> None:  # torch's FileWriter.reopen; nothing here reopens a closed writer
        raise OSError("Writer is closed")


def caller_thread_writer(log_dir: str, purge_step: int | None = None):
    """torch's SummaryWriter for `log_dir`, its events written by the thread that adds them."""
    return _writer_class()(log_dir, purge_step=purge_step)


@functools.cache
def _writer_class() -> type:
    from tensorboard.compat.proto import event_pb2
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.writer import FileWriter

    class _FileWriter(FileWriter):
        def __init__(self, log_dir: str, filename_suffix: str = ""):  # noqa: D107 - not super's
            self.event_writer = _EventFile(str(log_dir), filename_suffix)

    class CallerThreadSummaryWriter(SummaryWriter):
        def _get_file_writer(self):
            try:
                if self.all_writers is None or self.file_writer is None:
                    purge_step = self.purge_step
                    self.file_writer = _FileWriter(self.log_dir, self.filename_suffix)
                    self.all_writers = {self.file_writer.get_logdir(): self.file_writer}
                    if purge_step is not None:
                        # What SummaryWriter writes first on a resume: TensorBoard drops the events
                        # past this step that the interrupted process had written.
                        self.file_writer.add_event(event_pb2.Event(step=purge_step, file_version="brain.Event:2"))
                        self.file_writer.add_event(event_pb2.Event(
                            step=purge_step, session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))
                        self.purge_step = None
                return self.file_writer
            except AttributeError:  # a torch whose SummaryWriter is made otherwise: its own writer
                return super()._get_file_writer()

    return CallerThreadSummaryWriter
