"""Parameter and gradient histograms in TensorBoard: what they count, and how often."""

from __future__ import annotations

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from modelspec.spec.export import TrackingSpec
from modelspec.tracking.tensorboard import HISTOGRAM_BINS, TensorBoardTracker


def _histograms(folder) -> EventAccumulator:
    events = EventAccumulator(str(folder), size_guidance={"histograms": 0})
    events.Reload()
    return events


def _logged(tmp_path, model: nn.Module, steps: list[int], last: int, **settings) -> EventAccumulator:
    tracker = TensorBoardTracker(tmp_path, TrackingSpec(**settings), {})
    tracker.start(None, [])
    for step in steps:
        tracker.model_state(step, model, last=step == last)
    tracker.finish({}, {})
    return _histograms(tmp_path)


def test_a_histogram_counts_every_value_of_the_parameter_and_its_gradient(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(32, 10)
    model(torch.randn(4, 32)).sum().backward()
    events = _logged(tmp_path, model, [5], last=5)
    weight = events.Histograms("params/weight")[0].histogram_value
    assert weight.num == 320 and sum(weight.bucket) == 320 and len(weight.bucket) <= HISTOGRAM_BINS + 1
    assert weight.min == pytest.approx(model.weight.min().item()) and weight.max == pytest.approx(model.weight.max().item())
    assert weight.sum == pytest.approx(model.weight.sum().item(), abs=1e-4)
    grad = events.Histograms("grads/bias")[0].histogram_value
    assert grad.num == 10 and grad.sum == pytest.approx(model.bias.grad.sum().item(), abs=1e-4)


def test_a_parameter_gone_to_nan_is_drawn_from_its_finite_values(tmp_path):
    model = nn.Linear(4, 3)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
        model.weight[1, 1] = float("inf")
    events = _logged(tmp_path, model, [5], last=5)
    assert events.Histograms("params/weight")[0].histogram_value.num == 10


@pytest.mark.parametrize("histograms, steps", [(True, [5, 10, 12]), ({"every": 4}, [4, 8, 12]), (False, [])])
def test_histograms_come_as_often_as_tracking_histograms_says_and_at_the_last_epoch(tmp_path, histograms, steps):
    events = _logged(tmp_path, nn.Linear(2, 2), list(range(1, 13)), last=12, histograms=histograms)
    if not steps:
        assert not events.Tags()["histograms"]
    else:
        assert [e.step for e in events.Histograms("params/weight")] == steps
