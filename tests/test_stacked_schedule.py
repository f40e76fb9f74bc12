"""A pack's learning rates: each run's scheduler gives exactly the rates of that run trained alone, and
with the stacked optimizer step the pack's parameters equal the runs' trained one at a time."""

from __future__ import annotations

import pytest
import torch

from modelspec.runner.stacked import StackedOptimizer, Unpackable
from modelspec.runner.stacked.schedule import StackedSchedules
from modelspec.spec.train import OptimizerSpec, SchedulerSpec

EPOCHS, BATCHES = 6, 3
# scheduler settings of three runs (None: no scheduler), their learning rates and epochs
CASES = {
    "step": ([{"name": "step", "step_size": 2, "gamma": 0.5}, {"name": "step", "step_size": 1, "gamma": 0.9}, None],
             [0.1, 0.05, 0.2]),
    "multistep": ([{"name": "multistep", "milestones": [1, 4]}, {"name": "multistep", "milestones": [2], "gamma": 0.3},
                   {"name": "multistep", "milestones": [3]}], [0.1, 0.01, 0.03]),
    "exponential": ([{"name": "exponential", "gamma": g} for g in (0.9, 0.5, 0.99)], [0.1, 0.2, 0.3]),
    "cosine": ([{"name": "cosine"}, {"name": "cosine", "eta_min": 0.001}, {"name": "cosine", "T_max": 3}],
               [0.1, 0.05, 0.02]),
    # one-cycle's momentum cycling is refused (below); its learning rates alone are followed exactly
    "onecycle": ([{"name": "onecycle", "cycle_momentum": False},
                  {"name": "onecycle", "pct_start": 0.5, "cycle_momentum": False},
                  {"name": "onecycle", "max_lr": 0.3, "cycle_momentum": False}], [0.1, 0.05, 0.02]),
    "plateau": ([{"name": "plateau", "patience": 0}, {"name": "plateau", "patience": 1, "factor": 0.5},
                 {"name": "plateau", "patience": 0, "threshold": 0.5}], [0.1, 0.05, 0.02]),
}
MONITORED = [[1.0, 0.9, 0.95, 0.95, 0.8, 0.85], [2.0, 2.0, 1.0, 1.0, 1.0, 0.5], [1.0, 0.6, 0.5, 0.45, 0.44, 0.43]]


def _specs(case: str) -> tuple[list[SchedulerSpec | None], list[float]]:
    settings, lrs = CASES[case]
    return [SchedulerSpec.model_validate(s) if s else None for s in settings], lrs


def _alone(spec: SchedulerSpec | None, lr: float, kind: str, weight: torch.Tensor, **kwargs):
    """One run as the runner trains it: its own optimizer and scheduler."""
    optimizer = OptimizerSpec.model_validate({"name": kind, "lr": lr, "foreach": False, **kwargs}).build([weight])
    scheduler = spec.build(optimizer, epochs=EPOCHS, lr=lr, steps_per_epoch=BATCHES) if spec else None
    return optimizer, scheduler


def _train_alone(spec, lr, kind, start, grads, run, kwargs):
    """The run's parameters after every batch, and its rates, trained alone."""
    weight = start.clone().requires_grad_()
    optimizer, scheduler = _alone(spec, lr, kind, weight, **kwargs)
    rates, weights = [], []
    for epoch in range(EPOCHS):
        for batch in range(BATCHES):
            weight.grad = grads[epoch * BATCHES + batch][run].clone()
            optimizer.step()
            if scheduler is not None and spec.per_batch:
                scheduler.step()
            rates.append(optimizer.param_groups[0]["lr"])
            weights.append(weight.detach().clone())
        if scheduler is not None:
            spec.step_epoch(scheduler, MONITORED[run][epoch])
    return rates, weights


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("kind,kwargs", [("sgd", {"momentum": 0.9}), ("adam", {})])
def test_a_pack_trains_as_its_runs_alone(case, kind, kwargs):
    specs, lrs = _specs(case)
    runs = len(lrs)
    torch.manual_seed(0)
    start = torch.randn(runs, 4, 3)
    grads = [torch.randn(runs, 4, 3) for _ in range(EPOCHS * BATCHES)]

    stacked = {"w": start.clone().requires_grad_()}
    optimizer = StackedOptimizer(stacked, kind, [{"lr": lr, **kwargs} for lr in lrs])
    schedules = StackedSchedules(specs, lrs, epochs=[EPOCHS] * runs, steps_per_epoch=BATCHES,
                                 higher_is_better=[False] * runs)
    rates, weights = [], []
    for epoch in range(EPOCHS):
        for batch in range(BATCHES):
            stacked["w"].grad = grads[epoch * BATCHES + batch].clone()
            optimizer.set_lr(schedules.lrs())
            optimizer.step()
            schedules.step_batch()
            rates.append(schedules.lrs())
            weights.append(stacked["w"].detach().clone())
        schedules.step_epoch([MONITORED[i][epoch] for i in range(runs)])

    for run in range(runs):
        alone_rates, alone_weights = _train_alone(specs[run], lrs[run], kind, start[run], grads, run, kwargs)
        assert [r[run].item() for r in rates] == alone_rates, f"run {run}"
        for step, (pack, alone) in enumerate(zip(weights, alone_weights)):
            assert torch.equal(pack[run], alone), f"run {run}, step {step}"


def test_one_cycle_moving_the_momentum_is_refused_with_its_reason():
    spec = SchedulerSpec.model_validate({"name": "onecycle"})
    with pytest.raises(Unpackable, match="cycle_momentum"):
        StackedSchedules([spec], [0.1], epochs=[EPOCHS], steps_per_epoch=BATCHES, higher_is_better=[False])


def test_a_stopped_run_keeps_its_rate_and_the_others_go_on():
    specs, lrs = _specs("exponential")
    schedules = StackedSchedules(specs, lrs, epochs=[EPOCHS] * 3, steps_per_epoch=BATCHES,
                                 higher_is_better=[False] * 3)
    schedules.step_epoch([None] * 3)
    stopped = schedules.lrs()[1].item()
    for _ in range(3):
        schedules.step_epoch([None] * 3, active=[True, False, True])
    now = schedules.lrs()
    assert now[1].item() == stopped
    assert now[0].item() == pytest.approx(0.1 * 0.9**4) and now[2].item() == pytest.approx(0.3 * 0.99**4)


@pytest.mark.parametrize("case", ["step", "cosine", "plateau"])
def test_the_state_round_trip_continues_identically(case):
    specs, lrs = _specs(case)

    def fresh():
        return StackedSchedules(specs, lrs, epochs=[EPOCHS] * 3, steps_per_epoch=BATCHES, higher_is_better=[False] * 3)

    first = fresh()
    for epoch in range(3):
        first.step_epoch([MONITORED[i][epoch] for i in range(3)])
    second = fresh()
    second.load_state_dict(first.state_dict())
    assert torch.equal(second.lrs(), first.lrs())
    for epoch in range(3, EPOCHS):
        for schedules in (first, second):
            schedules.step_epoch([MONITORED[i][epoch] for i in range(3)])
        assert torch.equal(second.lrs(), first.lrs()), epoch
