"""One run on several processes: torchrun's ranks, DDP, and what the ranks must agree on.

`torchrun --nproc_per_node=N -m modelspec run SPEC` starts N copies of the command; each reads its
rank from torchrun's environment (`session`) and trains every run of the grid with the others:

- the data: every rank draws the single-process order and keeps its part of each global batch
  (`data.feeds.Shard`); a rank's loss is weighted by its share, so the averaged gradient is the
  global batch's even when a short last batch splits unevenly;
- the model: DistributedDataParallel (gradients averaged in backward), batch norms synchronised
  when `train.sync_batchnorm` asks;
- the decisions: metrics are reduced before they are read (`MetricSet`), so every rank computes the
  same row, early stopping and NaN check; a Ctrl-C on any rank stops all of them at the same batch;
- the files: only rank 0 writes (the grid folder, results, TensorBoard, checkpoints, weights,
  exports); a checkpoint holds every rank's random states and metric sums, so a resumed run is exact.

With one process (`SINGLE`) every helper here is a pass-through, and the runner is what it was.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from ..data.feeds import Shard
from ..errors import SpecError, SpecIssue
from .checkpoint import save_checkpoint

T = TypeVar("T")

# Checkpoint keys that differ between ranks (each rank's random states and its metric sums); the
# rest (model, optimizer, scheduler, rows) is the same on every rank and stored once.
PER_RANK = ("rng", "metrics")
# How long a rank waits in a collective for the others before it gives up (a stuck, not dead, peer).
TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class Ranks:
    """This process among those that train each run together; one process when not under torchrun."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes files and prints."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def shard(self) -> Shard:
        return Shard(self.rank, self.world)

    # ---- the device and the data

    def place(self, device: torch.device) -> torch.device:
        """The device of this rank: its own GPU (`cuda:LOCAL_RANK`) when the spec asks for cuda."""
        if not self.active:
            return device
        if device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        if device.type != "cpu":
            raise SpecError(f"several processes train on CUDA GPUs or the CPU; device '{device}' cannot",
                            path=("train", "device"), hint="use device: cuda or cpu under torchrun")
        return device

    def shard_feeds(self, feeds: tuple) -> tuple:
        """Each feed cut to this rank's part of every global batch."""
        if not self.active:
            return feeds
        train = feeds[0]
        last = train.global_batch(len(train) - 1) if len(train) else 0
        if 0 < last < self.world:
            raise SpecError(
                f"the last training batch has {last} sample(s), fewer than the {self.world} processes",
                path=("data", "drop_last"),
                hint=f"set drop_last: true, or a batch_size that leaves a last batch of at least {self.world}")
        return tuple(feed.sharded(self.shard) if feed is not None else None for feed in feeds)

    def loss_for_gradient(self, loss: torch.Tensor, feed, batch: int) -> torch.Tensor:
        """The loss this rank back-propagates: its mean loss weighted by its share of the batch."""
        return loss * feed.share(batch) if self.active else loss

    # ---- the model

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The model that trains: DDP's wrapper, which averages gradients across ranks in backward."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def diverge_rng(self, seed: int) -> None:
        """After the (identical) network is built: each rank its own dropout and augmentation stream."""
        if self.active:
            from .device import seed_everything

            seed_everything(seed * 1009 + self.rank)

    # ---- agreeing

    def any(self, flag: bool) -> bool:
        """True on every rank when it is True on one (a Ctrl-C that reached only some)."""
        if not self.active:
            return flag
        value = torch.tensor([int(flag)])
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def from_main(self, make: Callable[[], T]) -> T:
        """Rank 0 makes it (a folder, say); every rank gets rank 0's value."""
        if not self.active:
            return make()
        box = [make() if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    # ---- checkpoints

    def save_checkpoint(self, run_dir: Path, state, durable: bool = True) -> None:
        """Every rank's part gathered; rank 0 writes the one file (`durable`: also synced to disk)."""
        snapshot = state.state_dict()
        if not self.active:
            save_checkpoint(run_dir, snapshot, durable)
            return
        parts = [None] * self.world
        dist.all_gather_object(parts, _to_cpu({key: snapshot[key] for key in PER_RANK}))
        if self.main:
            save_checkpoint(run_dir, {**snapshot, "world": self.world, "ranks": parts}, durable)

    def local_checkpoint(self, checkpoint: dict[str, Any] | None) -> dict[str, Any] | None:
        """The checkpoint as this rank wrote it: its own random states and metric sums."""
        if checkpoint is None:
            return None
        written_by = checkpoint.get("world", 1)
        if written_by != self.world:
            raise SpecError(
                f"this run's checkpoint was written by {written_by} process(es); it resumes exactly "
                f"only with as many, not {self.world}",
                hint=f"resume with --nproc {written_by}" if written_by > 1 else "resume without torchrun")
        if not self.active:
            return checkpoint
        return {**checkpoint, **checkpoint["ranks"][self.rank]}


SINGLE = Ranks()


def _to_cpu(value):
    """Tensors moved to the CPU, through dicts, lists and tuples (what rank 0 unpickles)."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


# --------------------------------------------------------------------------------------------------
# the process group


def launched_by_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or ("RANK" in os.environ and "WORLD_SIZE" in os.environ)


@contextlib.contextmanager
def session() -> Iterator[Ranks]:
    """The process group for the command's lifetime: NCCL for GPU tensors, gloo for CPU ones."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if not launched_by_torchrun() or world == 1:
        yield SINGLE
        return
    ranks = Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(ranks.local_rank)
        backend = "cpu:gloo,cuda:nccl"  # small agreements on the CPU need not wait for the GPU
    dist.init_process_group(backend, timeout=TIMEOUT)
    try:
        yield ranks
        # Every process reaches the end before any closes its connections: gloo aborts a peer
        # whose pair is torn down under it ("terminate called without an active exception").
        with contextlib.suppress(Exception):
            dist.barrier()
    finally:
        with contextlib.suppress(Exception):  # a peer may be gone already
            dist.destroy_process_group()


def check_batch_sizes(loaded, ranks: Ranks) -> None:
    """`data.batch_size` is the global batch: every run's must split evenly over the processes."""
    if not ranks.active:
        return
    for plan in loaded.runs():
        size = plan.spec.data.batch_size
        if size % ranks.world:
            key = "data.batch_size"
            path = ("grid", key, loaded.spec.grid[key].index(size)) if key in loaded.spec.grid else ("data", "batch_size")
            raise SpecError([loaded.source.issue(SpecIssue(
                f"batch_size {size} is the global batch and must split evenly over {ranks.world} processes",
                path, f"use a multiple of {ranks.world}"))])


# --------------------------------------------------------------------------------------------------
# `modelspec run --nproc N`: torchrun's launcher, started for the user


# torchrun's c10d rendezvous on port 0 binds a free port itself: no port picked here can be taken
# by another program before the launcher binds it.
RENDEZVOUS = ["--nnodes=1", "--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:0"]


def launch(nproc: int, args: list[str]) -> int:
    """Run `modelspec ARGS` in `nproc` processes under torchrun's launcher, in this process (which
    has imported torch already: a second interpreter would pay that again); the exit code.

    Ctrl-C reaches the launcher, which passes it to every rank: they stop at the same batch with a
    checkpoint, and rank 0 prints how to resume.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    options = get_args_parser().parse_args([*RENDEZVOUS, f"--nproc-per-node={nproc}", "-m", "modelspec", *args])
    # The launcher's own log lines (its OMP_NUM_THREADS notice, "failed (exitcode: 2) local_rank: 0
    # ...", "Sending process ... closing signal") would surround the one message rank 0 prints.
    for name in ("torch.distributed.run", "torch.distributed.elastic"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        run(options)
    except ChildFailedError as failed:
        return _failure_code(failed.failures, nproc)
    except SignalException as stopped:  # a Ctrl-C or SIGTERM of the launcher, passed on to every rank
        return 128 + int(stopped.sigval)
    return 0


def _failure_code(failures: dict, nproc: int) -> int:
    """The exit code when ranks failed. A rank killed by a signal (the kernel's OOM killer, a `kill
    -9`) is the cause, whatever the others did after it: the launcher stops them with SIGTERM, and
    their 143 (or a 130) would say that the user stopped the grid. Otherwise rank 0's code says what
    happened (2 spec, 1 failed, 130/143 stopped by a signal sent to the ranks themselves)."""
    for rank, failure in sorted(failures.items()):
        if failure.exitcode < 0:
            name = failure.signal_name()
            sys.stderr.write(f"error: process {rank} of {nproc} was killed by signal {name} (pid {failure.pid}); "
                             "the others stopped with it\n")
            return 1
    first = failures.get(0) or next(iter(failures.values()))
    return first.exitcode if first.exitcode > 0 else 1
