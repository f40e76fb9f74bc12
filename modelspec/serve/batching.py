"""Concurrent requests gathered into one model call: the first waiting request opens a batch, which
takes whatever else arrives within `max_wait` seconds, up to `max_batch` inputs, and then runs in one
worker thread while the event loop keeps accepting. A request larger than `max_batch` runs alone;
`max_batch=1` runs every request alone (no batching).

A request brings its reading (`read() -> items`), not its items: the worker reads every request of
the batch and then calls the model once, so a request costs one hand-over to a thread, not two. A
request whose reading fails gets that failure (a `BadInput` becomes its 4xx); the others go on.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..predict.inputs import Item

Rows = list[dict[str, Any]]


@dataclass
class _Waiting:
    read: Callable[[], list[Item]]
    size: int  # inputs it brings, as far as is known before reading (files, rows, texts)
    answer: asyncio.Future


class Batcher:
    """`run(items) -> rows` (one row per item, in order) called on the items of several requests at once."""

    def __init__(self, run: Callable[[list[Item]], Rows], max_batch: int, max_wait: float):
        self.run, self.max_batch, self.max_wait = run, max_batch, max_wait
        self.calls = 0  # model calls so far, and the inputs they took (for /health)
        self.inputs = 0
        # The waiting requests, and an event set when one arrives (or a batch's wait is over): no
        # asyncio.Queue, whose timed get makes a task and a timer for every request that arrives.
        self._waiting: deque[_Waiting] = deque()
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._serve())

    async def stop(self) -> None:
        """After the server has answered its last request (uvicorn drains connections first)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def predict(self, read: Callable[[], list[Item]], size: int) -> Rows:
        """The rows of the items `read()` gives, read and predicted in the worker with others' items."""
        assert self._arrived is not None, "Batcher.start() runs in the app's lifespan"
        waiting = _Waiting(read, size, asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        self._arrived.set()
        return await waiting.answer

    async def _next_arrival(self) -> None:
        self._arrived.clear()
        await self._arrived.wait()

    async def _gather(self) -> list[_Waiting]:
        """The next batch: the first request, and those arriving within max_wait up to max_batch inputs."""
        while not self._waiting:
            await self._next_arrival()
        batch = [self._waiting.popleft()]
        size, loop = batch[0].size, asyncio.get_running_loop()
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            self._arrived.set()

        # One timer a batch wakes the wait below. The loop may run it up to its clock's resolution
        # early, so that its having run, not the clock, says that the wait is over.
        timer = loop.call_later(self.max_wait, expire)
        try:
            while size < self.max_batch:
                if not self._waiting:
                    if expired:
                        break
                    await self._next_arrival()
                    continue
                if size + self._waiting[0].size > self.max_batch:
                    break  # it opens the next batch, before those behind it
                nxt = self._waiting.popleft()
                batch.append(nxt)
                size += nxt.size
        finally:
            timer.cancel()
        return batch

    def _work(self, batch: list[_Waiting]) -> list[tuple[_Waiting, Rows | BaseException]]:
        """In the worker thread: read each request, then one model call on every item read."""
        read: list[tuple[_Waiting, list[Item]]] = []
        outcomes: list[tuple[_Waiting, Rows | BaseException]] = []
        for waiting in batch:
            try:
                read.append((waiting, waiting.read()))
            except Exception as exc:  # noqa: BLE001 - that request's failure (a BadInput: its 4xx)
                outcomes.append((waiting, exc))
        items = [item for _, its in read for item in its]
        try:
            rows = self.run(items) if items else []
        except Exception as exc:  # noqa: BLE001 - each request of the batch gets the model's failure
            return outcomes + [(waiting, exc) for waiting, _ in read]
        self.calls += bool(items)
        self.inputs += len(items)
        start = 0
        for waiting, its in read:
            outcomes.append((waiting, rows[start : start + len(its)]))
            start += len(its)
        return outcomes

    async def _serve(self) -> None:
        while True:
            batch = await self._gather()
            for waiting, outcome in await asyncio.to_thread(self._work, batch):
                if waiting.answer.done():  # its client has gone
                    continue
                if isinstance(outcome, BaseException):
                    waiting.answer.set_exception(outcome)
                else:
                    waiting.answer.set_result(outcome)
