"""One optimizer step for R runs whose parameters are stacked along a new first dim (R, *shape).

torch's optimizers take one learning rate (one momentum, one weight decay) per parameter group, so a
stacked tensor whose slices belong to different runs cannot go through them. `StackedOptimizer` does
the update of torch's single-tensor algorithm (`foreach=False`) with every number held per run, a
tensor (R,) viewed as (R, 1, 1, ...) against each stacked tensor (the updates are in kinds.py).

Within a pack the numbers may differ (lr, momentum, dampening, weight_decay, betas, eps, ...); what
picks a branch of the algorithm (nesterov, amsgrad, centered, maximize; RMSprop's momentum being 0)
must be equal, and what changes how torch computes (capturable, differentiable, fused) must be off:
otherwise `Unpackable` says why. `foreach` is accepted whatever its value: it changes torch's
rounding order, not the algorithm, and the step here rounds as `foreach=False` does.

A run that has stopped (early stopping, a NaN loss) is masked out of `step(active)`: its parameters
and its state stay as they were, bit for bit. `run_state(i, names)` is run i's state as the state
dict of torch's optimizer for that run alone, so its checkpoint is a plain run's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .kinds import KINDS, Kind, Numbers, mask


class Unpackable(NotImplementedError):
    """Runs that cannot share one stacked step; the message is the reason the grid prints."""


# Keys that change how torch computes rather than what: only their off value can be matched.
_OFF_ONLY = {"capturable": False, "differentiable": False, "fused": None}


class StackedOptimizer:
    """torch's optimizer `kind` for R runs at once, each with its own hyper-parameters.

    `params` maps a name to a stacked leaf (R, *shape), as `torch.func.stack_module_state` gives
    them; `runs[i]` is run i's keyword arguments of the torch class (`lr` included), as
    `OptimizerSpec` passes them. Unset keys take the torch class's defaults."""

    def __init__(self, params: dict[str, Tensor], kind: str, runs: list[dict[str, Any]]):
        if kind not in KINDS:
            raise Unpackable(f"optimizer {kind!r}: the stacked step has no update for it "
                             f"(it has {', '.join(KINDS)}); these runs train one at a time")
        self.name, self.kind, self.params, self.R = kind, KINDS[kind], params, len(runs)
        self.flags, numbers = split_arguments(self.kind, runs)
        device = next(iter(params.values())).device
        # Per-run numbers in float64: torch computes with them as Python floats.
        self.hyper = {k: torch.tensor(v, dtype=torch.float64, device=device) for k, v in numbers.items()}
        self.state = {name: self.kind.fresh(p.detach(), self.flags, self.hyper) for name, p in params.items()}
        self._numbers_changed()

    def _numbers_changed(self) -> None:
        """After the state or the hyper-parameters were set (not by a step): whether any run decays
        its weights, and whether every parameter's state numbers (its step count, ...) are equal, so
        that one step's numbers serve them all (they stay so while every parameter steps)."""
        decay = self.hyper.get("weight_decay")
        self.decays = decay is not None and bool((decay != 0).any())
        first = next(iter(self.state.values()), {})
        self.in_step = all(torch.equal(st[k], first[k]) for st in self.state.values() for k in self.kind.SCALARS)

    def set_lr(self, lrs: Tensor) -> None:
        """Each run's learning rate (R,), as its scheduler has set it. Pass float64: torch's Adam
        divides the Python float lr by its bias correction before rounding to float32."""
        self.hyper["lr"] = torch.as_tensor(lrs, dtype=torch.float64).to(self.hyper["lr"].device).clone()

    @property
    def lrs(self) -> Tensor:
        return self.hyper["lr"].clone()

    @torch.no_grad()
    def step(self, active: Tensor | None = None) -> None:
        """One update of every active run; inactive runs (R,) keep params and state unchanged."""
        if active is not None and bool(active.all()):
            active = None  # the common case needs no masking
        elif active is not None:
            active = active.to(self.hyper["lr"].device)
        stepping = [(name, p) for name, p in self.params.items() if p.grad is not None]
        if len(stepping) < len(self.params):
            self.in_step = False  # torch skips a parameter without a gradient, its step count too
        shared = None
        for name, p in stepping:
            st = self.state[name]
            if shared is None or not self.in_step:
                step = st["step"] + (1 if active is None else active.to(st["step"].dtype))  # (R,)
                # The update reads the count as torch's Python float: float64.
                scalars = {k: st[k] for k in self.kind.SCALARS}
                shared = step, Numbers(self.kind.numbers(self.hyper, scalars, step.double()), self.decays)
            step, numbers = shared
            new = self.kind.apply(p.detach(), p.grad, st, numbers, self.flags)
            new["step"] = step.clone() if self.in_step else step  # a tensor of each parameter's own
            for k in self.kind.SCALARS[1:]:
                new[k] = new[k].clone() if self.in_step else new[k]
            if active is not None:
                old = st | {"param": p.detach()}
                new = {k: torch.where(mask(active, v), v, old[k]) for k, v in new.items()}
            p.copy_(new.pop("param"))
            st.update(new)

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    # -- checkpoints ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors: the per-run numbers and each parameter's stacked state."""
        return {
            "kind": self.name,
            "flags": dict(self.flags),
            "hyper": {k: v.clone() for k, v in self.hyper.items()},
            "state": {n: {k: v.clone() for k, v in st.items()} for n, st in self.state.items()},
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        if sd["kind"] != self.name or sd["flags"] != self.flags:
            raise ValueError(
                f"a state of {sd['kind']} {sd['flags']}; this optimizer is {self.name} {self.flags}"
            )
        self.hyper = {k: v.clone().to(self.hyper[k].device) for k, v in sd["hyper"].items()}
        for n, st in sd["state"].items():
            self.state[n] = {k: v.clone().to(self.params[n].device) for k, v in st.items()}
        self._numbers_changed()

    def run_kwargs(self, i: int) -> dict[str, Any]:
        """Run i's keyword arguments of the torch class, with its current lr."""
        nums = {k: (tuple(v[i].tolist()) if v.dim() > 1 else v[i].item()) for k, v in self.hyper.items()}
        return nums | self.flags

    def run_state(self, i: int, names: list[str]) -> dict[str, Any]:
        """Run i alone as torch's `optimizer.state_dict()`, its parameters in the order of `names`."""
        template = getattr(torch.optim, self.kind.torch_name)([torch.zeros(1)], **self.run_kwargs(i))
        group = template.state_dict()["param_groups"][0] | {"params": list(range(len(names)))}
        state = {j: self.kind.torch_state(self.state[n], i, self.hyper) for j, n in enumerate(names)}
        return {"state": {j: s for j, s in state.items() if s}, "param_groups": [group]}

    @torch.no_grad()
    def load_run_state(self, i: int, sd: dict[str, Any], names: list[str]) -> None:
        """The reverse of `run_state`: run i's numbers and slot from a torch optimizer's state dict."""
        (group,) = sd["param_groups"]
        flags, numbers = split_arguments(self.kind, [{k: group[k] for k in self.run_kwargs(i) if k in group}])
        if flags != self.flags:
            raise Unpackable(f"run {i}'s optimizer has {flags}; the pack has {self.flags}")
        for k, v in numbers.items():
            self.hyper[k][i] = torch.tensor(v[0], dtype=torch.float64)
        for j, n in enumerate(names):
            st = self.state[n]
            fresh = self.kind.fresh(self.params[n].detach()[i : i + 1], self.flags, self.hyper)
            slot = self.kind.from_torch(sd["state"].get(j, {}), {k: v[0] for k, v in fresh.items()})
            for k, v in slot.items():
                st[k][i] = v
        self._numbers_changed()


def split_arguments(kind: type[Kind], runs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, list]]:
    """Each run's arguments over the torch defaults, split into the pack's flags (equal in every run)
    and the per-run numbers (lists of R values)."""
    defaults = kind.defaults()
    for r in runs:
        for key in set(r) - set(defaults):
            raise TypeError(f"torch.optim.{kind.torch_name} takes no argument {key!r}")
    full = [defaults | dict(r) for r in runs]
    for r in full:
        for key, off in _OFF_ONLY.items():
            if r.get(key, off) not in (off, False, None):
                raise Unpackable(f"{key}={r[key]!r}: the stacked step computes as torch does with it off")
    flags: dict[str, Any] = {}
    numbers: dict[str, list] = {}
    for key in (k for k in defaults if k not in _OFF_ONLY and k != "foreach"):
        values = [r[key] for r in full]
        if key in kind.FLAGS:
            if any(v != values[0] for v in values):
                raise Unpackable(f"{key} differs between runs ({values}): it picks a branch of the update")
            flags[key] = values[0]
            continue
        if key in kind.ZERO_BRANCHES and len({v == 0 for v in values}) > 1:
            raise Unpackable(f"{key} is 0 in some runs only ({values}): 0 picks another branch of the update")
        numbers[key] = [list(v) if isinstance(v, (tuple, list)) else float(v) for v in values]
    return flags, numbers
