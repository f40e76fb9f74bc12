"""Keep freed memory in the process while training (glibc only), and keep the collector off what
lived before a grid started.

glibc's malloc hands large freed blocks back to the OS, so every training step faults its
activations in afresh: about 20,000 page faults per step for the fashion_bn network at batch size
1000, which slowed CPU epochs from 4.1 s to 5.4-7.5 s in bench/bench_train.py. With no mmap and a
1 GiB trim threshold, freed blocks stay in the heap and are reused by the next step. The memory a run
has freed is then kept until the process ends, which is what a training process wants; set
MODELSPEC_MALLOC=default to leave glibc as it is.

Python's cycle collector walks every object it tracks in a full collection: with torch, TensorBoard
and the spec loaded, some 400,000 objects and 0.2 s on a 2-core machine, which a grid of small runs
(or a pack of them) triggers once or twice as it makes rows and modules. What existed before the grid
lives as long as it does: frozen (`frozen_heap`), it is left out of every collection until the grid
ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # from glibc's malloc.h


def steady_allocator() -> str:
    """Apply the setting where it can be; say what was done (for the log)."""
    if os.environ.get("MODELSPEC_MALLOC") == "default":
        return "glibc defaults (MODELSPEC_MALLOC=default)"
    if not sys.platform.startswith("linux"):
        return "system allocator"
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return "not glibc: left as is"
    if mallopt(M_MMAP_MAX, 0) != 1 or mallopt(M_TRIM_THRESHOLD, 1 << 30) != 1:
        return "glibc refused mallopt: left as is"
    return "glibc, freed memory kept for reuse (mallopt M_MMAP_MAX=0, M_TRIM_THRESHOLD=1 GiB)"


@contextlib.contextmanager
def frozen_heap():
    """The objects alive now left out of the cycle collector's walks until the block ends (gc.freeze).
    Inside a block that froze already (a search's grids, a server), what that froze stays frozen."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
