"""`--executor vmap`: the grid's runs trained in packs, each pack one stacked model (runner/stacked/).

Runs share a pack when one batched step computes what each computes alone: the same network on data
of the same shape, kept on the device (the tensor path, not a DataLoader), the same batch size, the
same optimizer kind with the same branches (nesterov, amsgrad, ...), the same fine-tuning start, and
the same place in their training (a resumed grid). Anything that is only a number may differ: the
seed, the learning rate and the optimizer's other numbers, the scheduler, the loss's arguments,
the epochs, early stopping, the gradient clipping's norm. A run that cannot share a pack, or that
would be alone in one, trains as the sequential grid trains it, and one line says why.

A pack holds as many runs as memory allows (`pack_size`, else an estimate of what a run's weights,
optimizer state and activations take against the free memory of its device). A pack that fails as a
whole (out of memory in its batched step) gives its runs back to the sequential grid, which continues
each from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from ..errors import SpecError
from ..fileio import is_disk_full
from ..spec.grid import RunPlan
from .checkpoint import load_checkpoint
from .grid import Grid, check_training_split, locate_run_error
from .loop import Interrupted, RunOutcome, resolve_run
from .stacked.kinds import KINDS
from .stacked.member import Candidate, Member
from .stacked.model import unpackable_reason
from .stacked.optim import Unpackable, split_arguments

MEMORY_SHARE = 0.5  # of the device's free memory, that a pack may take by the estimate
KEEP_BYTES = 64 << 20  # a run's own copy of the data up to this size is kept from grouping to training


@dataclass(frozen=True)
class VmapExecutor:
    """`--executor vmap` and its setting; kept in grid.json so that a resume packs too."""

    pack_size: int | None = None  # runs per pack at most; None: as many as memory allows

    def __post_init__(self):
        if self.pack_size is not None and self.pack_size < 1:
            raise SpecError(f"--pack-size {self.pack_size}: a pack holds one run or more", hint="e.g. --pack-size 16")

    def as_json(self) -> dict[str, Any]:
        return {"kind": "vmap", "pack_size": self.pack_size}

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> "VmapExecutor":
        size = stored.get("pack_size")
        return cls(int(size) if isinstance(size, int) else None)

    runs_here: ClassVar[bool] = True  # in this process: devices are checked here, files overlap the next pack
    OPTIONS: ClassVar[tuple[str, ...]] = ("pack_size",)
    # A search's round when no --pack-size is given: trials are asked before their memory is known.
    SEARCH_ROUND: ClassVar[int] = 8

    @property
    def search_round(self) -> int:
        """A search asks this many trials at once and trains them in packs (those that share a pack)."""
        return self.pack_size or self.SEARCH_ROUND

    @classmethod
    def from_options(cls, stored: dict[str, Any], pack_size: int | None = None) -> "VmapExecutor":
        return cls(pack_size if pack_size is not None else cls.from_json(stored).pack_size)

    def run(self, grid: Grid, todo: list[tuple[RunPlan, Path]]) -> None:
        _Packer(self, grid).run(todo)


class _Packer:
    def __init__(self, executor: VmapExecutor, grid: Grid):
        self.executor, self.grid = executor, grid
        self.networks: dict[int, tuple[Any, _Network]] = {}

    def run(self, todo: list[tuple[RunPlan, Path]]) -> None:
        grid = self.grid
        groups, alone = self._group(todo)
        packs = [pack for group in groups.values() for pack in self._split(group)]
        single = [(pack[0].plan, pack[0].run_dir, "no other run shares its network, data and optimizer kind")
                  for pack in packs if len(pack) == 1]
        _say_alone(grid.log, alone + single)
        order = {plan.name: i for i, (plan, _) in enumerate(todo)}
        work = sorted([(order[p.name], "alone", (p, d)) for p, d, _ in alone + single] +
                      [(order[pack[0].plan.name], "pack", pack) for pack in packs if len(pack) > 1],
                      key=lambda item: item[0])
        for _, kind, item in work:
            if grid.stop.requested:
                grid.result.interrupted = True
                return
            done = grid.run_one(item[0], item[1], grid.resuming) if kind == "alone" else self._train_pack(item)
            if done is None or grid.result.interrupted or grid.result.disk_full or (
                    grid.fail_fast and any(o.status == "failed" for o in grid.result.outcomes.values())):
                return

    def _group(self, todo: list[tuple[RunPlan, Path]]) -> tuple[dict[str, list[Candidate]], list[tuple]]:
        """The runs by what they must share to be packed, and those that train alone (with why)."""
        groups: dict[str, list[Candidate]] = {}
        alone: list[tuple[RunPlan, Path, str]] = []
        shared = None  # the data most runs read (a grid over the seed with val_split carves its own per run)
        for plan, run_dir in todo:
            run = self._candidate(plan, run_dir)
            key, reason = pack_key(run, self.grid.devices[plan.name], self._network(run.shapes))
            shared = shared or run.prepared
            if run.prepared is not shared:
                run.data_bytes = data_bytes(run.prepared)
                if run.data_bytes > KEEP_BYTES:  # decoded again when its pack trains: one copy at a time till then
                    run.prepared = None
            if reason is not None:
                alone.append((plan, run_dir, reason))
            else:
                groups.setdefault(key, []).append(run)
        return groups, alone

    def _network(self, shapes) -> _Network:
        """Each network once: a grid's runs of one network share its shapes object (loop.py: resolve_run)."""
        if id(shapes) not in self.networks:
            self.networks[id(shapes)] = (shapes, _Network.of(shapes))  # the shapes kept: their id stays theirs
        return self.networks[id(shapes)][1]

    def _candidate(self, plan: RunPlan, run_dir: Path) -> Candidate:
        grid = self.grid
        try:
            prepared = grid.prepared_data(plan)
            check_training_split(prepared, plan)
            shapes, task = resolve_run(plan, prepared)
            checkpoint = load_checkpoint(run_dir) if grid.resuming else None
        except SpecError as exc:
            raise locate_run_error(exc, grid.loaded, plan) from None
        return Candidate(plan, run_dir, prepared, shapes, task, checkpoint)

    def _split(self, group: list[Candidate]) -> list[list[Candidate]]:
        """The group in packs of at most the pack size (the option's, else memory's)."""
        size = self.executor.pack_size or fitting_runs(group[0], len(group), self.grid.devices[group[0].plan.name])
        return [group[i : i + size] for i in range(0, len(group), max(1, size))]

    def _train_pack(self, runs: list[Candidate]) -> RunOutcome | bool | None:
        """One pack; True when the grid goes on, None when a full disk stops it."""
        from .stacked.pack import Pack, Repack

        grid = self.grid
        names = [run.plan.name for run in runs]
        grid.log(f"packing {len(runs)} runs: {', '.join(names[:4])}{' ...' if len(runs) > 4 else ''}")
        grid.progress.start_run(f"pack of {len(runs)}", max(run.plan.spec.train.epochs for run in runs))
        grid.trained = True
        for run in runs:
            run.prepared = run.prepared or grid.prepared_data(run.plan)
        contexts = [grid.context(run.plan, run.run_dir) for run in runs]
        for run in runs:
            run.run_dir.mkdir(parents=True, exist_ok=True)
        pack, repack = None, None
        grid.stop.graceful = True
        try:
            # Epoch lines and failures go where a run alone says them: the progress (off with --quiet).
            pack = Pack(runs, contexts, log=grid.progress.log,
                        on_batch=grid.progress.batch, stop_requested=lambda: grid.stop.requested,
                        on_end=lambda m: self._record(m))
            pack.train()
        except Repack as exc:
            repack = exc.runs
        except Interrupted as exc:
            grid.result.interrupted = True
            self._end_all(pack, "stopped", str(exc))
        except SpecError as exc:
            raise locate_run_error(exc, grid.loaded, runs[0].plan) from None
        except Exception as exc:
            if is_disk_full(exc):
                self._end_all(pack, None, "")
                grid.disk_full(runs[0].plan, exc)
                return None
            return self._fall_back(pack, runs, exc)
        finally:
            grid.stop.graceful = False
            for run in runs:
                run.prepared = None if run.data_bytes else run.prepared  # its own copy: freed with the pack
        grid.settle()
        if repack is not None and not grid.result.disk_full:
            return self._repack(repack)
        return None if grid.result.disk_full else True

    def _repack(self, runs: list[Candidate]) -> RunOutcome | bool | None:
        """The runs a sparse pack handed back, packed anew from the checkpoints it just wrote."""
        if len(runs) == 1:
            self.grid.log(f"{runs[0].plan.name} still trains, the rest of its pack has ended: it goes on alone")
            return self.grid.run_one(runs[0].plan, runs[0].run_dir, True)
        self.grid.log(f"{len(runs)} of the pack's runs still train: packing them anew")
        return self._train_pack([dataclasses.replace(run, checkpoint=load_checkpoint(run.run_dir)) for run in runs])

    def _record(self, member: Member) -> None:
        self.grid.record(member.plan, member.run.run_dir, member.outcome, write_state=True)

    def _end_all(self, pack, status: str | None, reason: str) -> None:
        """Every run of the pack still training, ended (recorded as `status` unless None)."""
        for member in (pack.active() if pack is not None else []):
            member.end(status or "stopped", reason)
            if status is not None:
                self._record(member)

    def _fall_back(self, pack, runs: list[Candidate], exc: Exception) -> bool:
        """The pack failed as a whole: its unfinished runs go on one at a time, from their checkpoints."""
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.grid.log(f"the pack could not go on ({type(exc).__name__}: {reason[:200]}); its runs train one at a time")
        ended = {m.plan.name for m in pack.members if not m.active} if pack is not None else set()
        self._end_all(pack, None, "")
        for run in runs:
            if run.plan.name not in ended:
                if self.grid.run_one(run.plan, run.run_dir, True) is None or self.grid.result.interrupted:
                    return False
        return True


def _say_alone(log, alone: list[tuple[RunPlan, Path, str]]) -> None:
    """One line per reason: which runs train one at a time, and why."""
    by_reason: dict[str, list[str]] = {}
    for plan, _, reason in alone:
        by_reason.setdefault(reason, []).append(plan.name)
    for reason, names in by_reason.items():
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        log(f"{len(names)} run(s) train one at a time: {reason} ({shown})")


def pack_key(run: Candidate, device: torch.device, network: _Network) -> tuple[str | None, str | None]:
    """(what a run must share with the others of its pack, None) or (None, why it trains alone)."""
    spec, train = run.plan.spec, run.plan.spec.train
    if run.prepared.train is None:
        return None, "its training data goes through a DataLoader (kept on the device, it could be packed)"
    for flag, what in ((train.amp, "mixed precision (train.amp)"), (train.compile, "train.compile"),
                       (train.channels_last, "train.channels_last")):
        if flag:
            return None, f"{what} is not computed stacked"
    scheduler = train.scheduler
    if scheduler is not None and scheduler.name == "onecycle" and scheduler.kwargs.get("cycle_momentum", True):
        return None, "onecycle cycles the momentum (cycle_momentum), which the stacked step holds per run"
    if train.optimizer.name not in KINDS:
        return None, f"the stacked step has no update for the optimizer {train.optimizer.name!r}"
    try:
        flags, numbers = split_arguments(KINDS[train.optimizer.name], [{"lr": train.optimizer.lr, **train.optimizer.kwargs}])
    except (Unpackable, TypeError) as exc:
        return None, str(exc)
    if network.unpackable is not None:
        return None, network.unpackable
    position = None
    if run.checkpoint is not None:
        stopper = run.checkpoint.get("early_stopping") or {}
        if run.checkpoint["epoch"] > train.epochs or run.checkpoint.get("pruned") or (
                train.early_stopping and stopper.get("bad_epochs", 0) >= train.early_stopping.patience):
            return None, "resumed after its last epoch"
        position = [run.checkpoint["epoch"], run.checkpoint["batch"]]
    zeros = {k: numbers[k][0] == 0 for k in KINDS[train.optimizer.name].ZERO_BRANCHES}
    data, prepared = spec.data, run.prepared
    key = {
        "network": spec.model_dump(mode="json", include={"model", "networks", "blocks"}), "name": spec.network_name,
        "shapes": [list(prepared.input_shape), prepared.num_classes, prepared.tokens],
        "data": [data.batch_size, data.drop_last, data.shuffle, data.evaluation_batch_size,
                 [len(split.y) if split is not None else None for split in (prepared.train, prepared.val, prepared.test)]],
        "device": str(device), "optimizer": [train.optimizer.name, flags, zeros],
        "clip": train.grad_clip is None, "finetune": [train.init_from, list(train.freeze)],
        "deterministic": train.deterministic, "position": position,
        "task": [run.task.kind, run.task.size],
    }
    return json.dumps(key, sort_keys=True, default=str), None


@dataclass(frozen=True)
class _Network:
    """What the executor reads of a network built once on the meta device (no weights)."""

    unpackable: str | None  # why a stacked forward cannot compute it as each run does, or None

    @classmethod
    def of(cls, shapes) -> "_Network":
        from ..compile import build_from_shapes

        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            model = build_from_shapes(shapes)
        return cls(unpackable_reason(model))


def fitting_runs(run: Candidate, wanted: int, device: torch.device) -> int:
    """How many runs of this kind fit in MEMORY_SHARE of the device's free memory, by an estimate: each
    run's weights, gradients and optimizer state (four copies of its parameters), its activations
    (every layer's output for a batch, kept for the backward pass, twice for their gradients), and its
    data where it has its own copy."""
    shapes, data = run.shapes, run.plan.spec.data
    activations = sum(_numel(layer.output_shape) for layer in shapes.layers) * data.batch_size
    per_run = 4 * (4 * shapes.parameters + 2 * activations) + run.data_bytes
    free = _free_memory(device)
    return max(1, min(wanted, int(MEMORY_SHARE * free // max(per_run, 1))))


def data_bytes(prepared) -> int:
    """What a prepared data set holds on its device."""
    splits = [split for split in (prepared.train, prepared.val, prepared.test) if split is not None]
    return sum(t.numel() * t.element_size() for split in splits for t in (split.x, split.y))


def _numel(shape) -> int:
    n = 1
    for dim in shape:
        n *= int(dim) if isinstance(dim, int) else 1
    return n


def _free_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as info:
            fields = dict(line.split(":", 1) for line in info)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 4 << 30  # unknown (not Linux): assume a few GiB
