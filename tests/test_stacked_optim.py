"""The stacked optimizer step against torch's own optimizers, run by run.

Each case trains R=4 runs with different numbers per run on random gradients: the stacked optimizer
on stacked tensors, and R torch optimizers (foreach=False) on plain copies, fed the same gradients.
Midway every run's lr changes (as a scheduler would) and one run stops (its gradients turn to NaN, as
a failed run's would); each run must match torch exactly and the stopped run must not move.
"""

from __future__ import annotations

import pytest
import torch

from modelspec.runner.stacked import StackedOptimizer, Unpackable
from modelspec.runner.stacked.kinds import KINDS
from modelspec.spec.train import OPTIMIZERS

R, STEPS, LR_CHANGE, STOP, STOPPED = 4, 20, 10, 7, 2
SHAPES = {"w": (6, 5), "b": (5,), "k": (2, 3, 4), "s": (1,)}
TORCH = {name: getattr(torch.optim, kind.torch_name) for name, kind in KINDS.items()}


def _per_run(**values):
    """R runs' kwargs: a list value gives each run its own, a scalar is shared."""
    return [{k: (v[i] if isinstance(v, list) else v) for k, v in values.items()} for i in range(R)]


LRS = [0.1, 0.03, 0.01, 0.2]
WDS = [0.0, 1e-2, 0.1, 0.5]  # weight decays, one run without
EPS = [1e-8, 1e-6, 1e-3, 1e-10]
CASES = {
    "sgd-plain": ("sgd", _per_run(lr=LRS)),
    "sgd-momentum": ("sgd", _per_run(lr=LRS, momentum=[0.9, 0.5, 0.99, 0.0])),
    "sgd-nesterov": ("sgd", _per_run(lr=LRS, momentum=[0.9, 0.5, 0.99, 0.8], nesterov=True)),
    "sgd-dampening": ("sgd", _per_run(lr=LRS, momentum=[0.9, 0.0, 0.5, 0.7], dampening=[0.1, 0.5, 0.0, 0.9])),
    "sgd-weight-decay": ("sgd", _per_run(lr=LRS, momentum=0.9, weight_decay=WDS)),
    "sgd-maximize": ("sgd", _per_run(lr=LRS, momentum=0.9, maximize=True)),
    "adam-defaults": ("adam", _per_run(lr=[1e-3, 3e-3, 1e-2, 3e-4])),
    "adam-betas": ("adam", _per_run(lr=LRS, betas=[(0.9, 0.999), (0.5, 0.9), (0.0, 0.99), (0.95, 0.9999)])),
    "adam-weight-decay": ("adam", _per_run(lr=LRS, weight_decay=WDS, eps=EPS)),
    "adam-amsgrad": ("adam", _per_run(lr=LRS, betas=[(0.9, 0.999), (0.5, 0.9)] * 2, amsgrad=True)),
    "adam-maximize": ("adam", _per_run(lr=LRS, maximize=True, weight_decay=1e-2)),
    "adamw-defaults": ("adamw", _per_run(lr=LRS)),
    "adamw-weight-decay": ("adamw", _per_run(lr=LRS, weight_decay=WDS, betas=(0.9, 0.99))),
    "adamw-amsgrad": ("adamw", _per_run(lr=LRS, weight_decay=WDS, amsgrad=True)),
    "rmsprop-plain": ("rmsprop", _per_run(lr=[1e-2, 3e-3, 1e-3, 3e-2], alpha=[0.99, 0.9, 0.5, 0.999])),
    "rmsprop-momentum": ("rmsprop", _per_run(lr=LRS, momentum=[0.9, 0.5, 0.99, 0.1], weight_decay=WDS)),
    "rmsprop-centered": ("rmsprop", _per_run(lr=LRS, centered=True, eps=[1e-8, 1e-6, 1e-3, 1e-8])),
    "rmsprop-centered-momentum": ("rmsprop", _per_run(lr=LRS, centered=True, momentum=[0.9, 0.5, 0.99, 0.1])),
    "adagrad": ("adagrad", _per_run(lr=LRS, lr_decay=WDS, initial_accumulator_value=[0, 0.1, 1, 0])),
    "adagrad-weight-decay": ("adagrad", _per_run(lr=LRS, weight_decay=WDS, eps=EPS)),
    "adadelta": ("adadelta", _per_run(lr=[1.0, 0.5, 0.1, 2.0], rho=[0.9, 0.5, 0.99, 0.0])),
    "adadelta-weight-decay": ("adadelta", _per_run(lr=LRS, weight_decay=WDS, eps=EPS)),
    "nadam": ("nadam", _per_run(lr=LRS, momentum_decay=[4e-3, 1e-2, 0.1, 0.0])),
    "nadam-betas-decay": ("nadam", _per_run(lr=LRS, betas=[(0.9, 0.999), (0.5, 0.9)] * 2, weight_decay=WDS)),
    "nadam-decoupled": ("nadam", _per_run(lr=LRS, weight_decay=WDS, decoupled_weight_decay=True)),
    # beta2 decides when a run leaves RAdam's warm-up (rho_t > 5): at step 6, 7, 10 and never.
    "radam": ("radam", _per_run(lr=LRS, betas=[(0.9, 0.999), (0.5, 0.8), (0.9, 0.7), (0.0, 0.6)])),
    "radam-weight-decay": ("radam", _per_run(lr=LRS, weight_decay=WDS)),
    "radam-decoupled": ("radam", _per_run(lr=LRS, weight_decay=WDS, decoupled_weight_decay=True)),
}


def test_every_optimizer_of_the_spec_has_a_stacked_step():
    assert {k: v.torch_name for k, v in KINDS.items()} == OPTIMIZERS


class Pair:
    """A stacked optimizer and R torch optimizers on plain copies of the same parameters."""

    def __init__(self, kind, runs, seed=0):
        gen = torch.Generator().manual_seed(seed)
        start = {n: torch.randn(R, *s, generator=gen) for n, s in SHAPES.items()}
        self.stacked = {n: p.clone().requires_grad_() for n, p in start.items()}
        self.opt = StackedOptimizer(self.stacked, kind, runs)
        self.plain = [[torch.nn.Parameter(start[n][i].clone()) for n in SHAPES] for i in range(R)]
        self.torch = [TORCH[kind](ps, foreach=False, **runs[i]) for i, ps in enumerate(self.plain)]
        self.active = torch.ones(R, dtype=torch.bool)
        self.gen = torch.Generator().manual_seed(seed + 1)

    def step(self, without: tuple[str, ...] = ()):
        """One step of both, every parameter but those `without` given a gradient."""
        grads = {n: torch.randn(R, *s, generator=self.gen) for n, s in SHAPES.items()}
        for n, p in self.stacked.items():
            # A stopped run's gradients are NaN (as a failed run's are): they must not leak.
            p.grad = None if n in without else torch.where(self.active.view(-1, *[1] * len(SHAPES[n])),
                                                           grads[n], float("nan"))
        self.opt.step(self.active)
        for i in range(R):
            if self.active[i]:
                for p, n in zip(self.plain[i], SHAPES):
                    p.grad = None if n in without else grads[n][i].clone()
                self.torch[i].step()

    def set_lrs(self, lrs):
        self.opt.set_lr(torch.tensor(lrs, dtype=torch.float64))  # a scheduler's Python floats
        for opt, lr in zip(self.torch, lrs):
            opt.param_groups[0]["lr"] = lr

    def assert_equal(self):
        for i in range(R):
            for p, n in zip(self.plain[i], SHAPES):
                # Exact: every operation rounds as torch's single-tensor step does.
                assert torch.equal(self.stacked[n][i], p), (i, n, (self.stacked[n][i] - p).abs().max())


@pytest.mark.parametrize("case", CASES)
def test_matches_torch_run_by_run(case):
    pair = Pair(*CASES[case])
    for t in range(STEPS):
        if t == LR_CHANGE:
            pair.set_lrs([lr * 0.5 ** (i + 1) for i, lr in enumerate(pair.opt.lrs.tolist())])
        if t == STOP:
            pair.active[STOPPED] = False
            frozen = {n: p[STOPPED].clone() for n, p in pair.stacked.items()}
            frozen_state = {n: {k: v.clone() for k, v in st.items()} for n, st in pair.opt.state.items()}
        pair.step()
        pair.assert_equal()
    for n, p in pair.stacked.items():
        assert torch.equal(p[STOPPED], frozen[n])
        for k, v in pair.opt.state[n].items():
            assert torch.equal(v[STOPPED], frozen_state[n][k][STOPPED]), (n, k)


@pytest.mark.parametrize("case", ["sgd-nesterov", "adam-amsgrad", "adamw-weight-decay", "nadam", "adagrad"])
def test_state_dict_round_trip_continues_identically(case):
    pair = Pair(*CASES[case])
    for _ in range(STEPS // 2):
        pair.step()
    saved = pair.opt.state_dict()
    # A fresh optimizer over the same parameters, its numbers and state loaded from the snapshot.
    kind, runs = CASES[case]
    restored = StackedOptimizer(pair.stacked, kind, [dict(r, lr=1.0) for r in runs])
    restored.load_state_dict(saved)
    pair.opt = restored
    for _ in range(STEPS // 2):
        pair.step()
        pair.assert_equal()


@pytest.mark.parametrize("case", [
    "sgd-momentum", "sgd-dampening", "adam-amsgrad", "adamw-defaults", "rmsprop-centered-momentum",
    "adagrad", "adadelta", "nadam-decoupled", "radam",
])
def test_run_state_is_a_plain_runs_state(case):
    kind, runs = CASES[case]
    pair = Pair(kind, runs)
    for _ in range(STEPS // 2):
        pair.step()
    names = list(SHAPES)
    for i in range(R):
        # Run i's converted state in a fresh torch optimizer over fresh copies of its parameters.
        pair.plain[i] = [torch.nn.Parameter(pair.stacked[n][i].detach().clone()) for n in names]
        pair.torch[i] = TORCH[kind](pair.plain[i], foreach=False, **runs[i])
        pair.torch[i].load_state_dict(pair.opt.run_state(i, names))
    # And the reverse: a fresh stacked optimizer filled run by run from torch's state dicts.
    opt = StackedOptimizer(pair.stacked, kind, [dict(r, lr=9.0) for r in runs])
    for i in range(R):
        opt.load_run_state(i, pair.torch[i].state_dict(), names)
    pair.opt = opt
    for _ in range(STEPS // 2):
        pair.step()
        pair.assert_equal()


@pytest.mark.parametrize("case", ["sgd-momentum", "adam-weight-decay", "nadam", "adagrad", "radam"])
def test_a_parameter_without_a_gradient_keeps_its_own_count(case):
    """torch skips a parameter without a gradient, its step count too: from then on the parameters'
    counts differ, and each steps with its own bias corrections (not the one step's numbers the
    parameters share while they step together), through a checkpoint and its run-by-run states."""
    pair = Pair(*CASES[case])
    for t in range(STEPS):
        pair.step(without=("s",) if t in (3, 4, 9) else ())
        pair.assert_equal()
    counts = {n: pair.opt.state[n]["step"] for n in SHAPES}
    assert not torch.equal(counts["s"], counts["w"]) and torch.equal(counts["w"], counts["b"])
    kind, runs = CASES[case]
    restored = StackedOptimizer(pair.stacked, kind, [dict(r, lr=1.0) for r in runs])
    restored.load_state_dict(pair.opt.state_dict())
    pair.opt = restored
    for _ in range(3):
        pair.step()
        pair.assert_equal()


def test_run_state_before_any_step_is_empty():
    pair = Pair(*CASES["adam-defaults"])
    sd = pair.opt.run_state(0, list(SHAPES))
    assert sd["state"] == {} and sd["param_groups"][0]["lr"] == 1e-3


@pytest.mark.parametrize(
    "kind, runs, reason",
    [
        ("sgd", _per_run(lr=0.1, momentum=0.9, nesterov=[True, False, True, True]), "nesterov differs"),
        ("adam", _per_run(lr=0.1, amsgrad=[True, False, False, False]), "amsgrad differs"),
        ("adam", _per_run(lr=0.1, fused=True), "fused=True"),
        ("sgd", _per_run(lr=0.1, differentiable=True), "differentiable=True"),
        ("rmsprop", _per_run(lr=0.1, momentum=[0.9, 0.0, 0.9, 0.9]), "momentum is 0 in some runs only"),
        ("lbfgs", _per_run(lr=0.1), "optimizer 'lbfgs'"),  # not the spec's; the refusal names it
    ],
)
def test_what_cannot_pack_says_why(kind, runs, reason):
    stacked = {"w": torch.zeros(R, 3, requires_grad=True)}
    with pytest.raises(Unpackable, match=reason):
        StackedOptimizer(stacked, kind, runs)


def test_an_unknown_argument_is_refused():
    with pytest.raises(TypeError, match="takes no argument 'beta'"):
        StackedOptimizer({"w": torch.zeros(R, 3, requires_grad=True)}, "adam", _per_run(beta=0.9))
