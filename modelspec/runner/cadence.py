"""When a run's periodic extras happen: checkpoints, parameter histograms, confusion images.

Each is due every N epochs (`{every: N}` in the spec, or `checkpoint_every: N`) or, by default
(`auto`), after the first epoch that ends AUTO_SECONDS or more after the last time (or the run's
start). A model whose epoch takes a minute then gets them after every epoch; a tiny one, whose epoch
is shorter than writing a checkpoint, does not pay for them every few milliseconds. Every N epochs
also means after the run's last epoch. Under `auto`, histograms and images come after the last epoch
of a run that has trained AUTO_SECONDS or more (its final state is worth seeing, and costs little
next to its training; a run of a few seconds, one of a grid of hundreds, would spend a tenth of its
time on them; the picture of its final confusion matrix in the run folder follows the images), and
checkpoints never do: a finished run's checkpoint is never read (its weights and run.json are what
it leaves), and one killed before it counts as finished loses AUTO_SECONDS of training at most. The numbers a run computes do not depend on any of it: a run resumes exactly from
whichever checkpoint it has.
"""

from __future__ import annotations

import time
from typing import Callable, Literal, Union

AUTO_SECONDS = 10.0  # the most training an `auto` extra lets pass without it (a kill loses at most this)

Setting = Union[int, Literal["auto"], None]  # epochs between two, `auto`, or None: never


class Cadence:
    def __init__(self, setting: Setting, seconds: float | None = None, last_under_auto: bool = True,
                 clock: Callable[[], float] | None = None):
        self.every = None if setting in (None, 0) else setting
        self.seconds = AUTO_SECONDS if seconds is None else seconds
        self.last_under_auto = last_under_auto
        # The seconds it counts: the wall clock's (looked up at each call), or a packed run's share of its pack's.
        self.clock = clock or (lambda: time.monotonic())
        self._start = self._since = self.clock()

    def due(self, epoch: int, last: bool) -> bool:
        """Whether it is due after `epoch` (`last`: the run's last epoch, early stopping's included)."""
        if self.every is None:
            return False
        if self.every == "auto":
            now = self.clock()
            long_run = now - self._start >= self.seconds
            return (last and self.last_under_auto and long_run) or now - self._since >= self.seconds
        return last or epoch % self.every == 0

    def due_at_end(self, run_seconds: float) -> bool:
        """Whether it is due after the last epoch of a run that trained `run_seconds` in all: what `due`
        says at that epoch, for a run resumed after it (its clock started again with the process)."""
        if self.every is None:
            return False
        return self.last_under_auto and run_seconds >= self.seconds if self.every == "auto" else True

    def restart(self) -> None:
        """It was done: `auto` counts its seconds from now."""
        self._since = self.clock()
