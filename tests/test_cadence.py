"""How often a run checkpoints and logs histograms and confusion images (runner/cadence.py)."""

from __future__ import annotations

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from modelspec.load import loads_spec
from modelspec.runner import cadence, distributed, run_grid
from modelspec.runner.cadence import Cadence

SPEC = """\
name: cad
data:
  dataset: synthetic
  input_shape: [6]
  num_classes: 3
  size: 96
  test_size: 0
  batch_size: 32
  val_split: 0.25
model:
  - linear: {out_features: num_classes}
train:
  epochs: 6
"""


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_every_n_epochs_and_always_the_last():
    every = Cadence(4, last_under_auto=False)  # (only `auto` leaves the last out)
    assert [epoch for epoch in range(1, 11) if every.due(epoch, last=epoch == 10)] == [4, 8, 10]
    assert not Cadence(0).due(10, last=True) and not Cadence(None).due(10, last=True)  # off: not even the last


def test_auto_is_due_once_its_seconds_have_passed_since_it_was_last_done(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(cadence.time, "monotonic", clock)
    auto = Cadence("auto", seconds=10)
    clock.now += 9.9
    assert not auto.due(1, last=False)
    assert not auto.due(1, last=True)  # a run shorter than the seconds: not even after its last epoch
    clock.now += 0.1
    assert auto.due(2, last=False)
    auto.restart()
    clock.now += 5
    assert not auto.due(3, last=False)
    assert auto.due(3, last=True)  # the last epoch of a run that has trained the seconds
    checkpoints = Cadence("auto", seconds=10, last_under_auto=False)
    assert not checkpoints.due(3, last=True)  # a run that ends before its seconds: no checkpoint
    clock.now += 10
    assert checkpoints.due(4, last=True)


def test_due_at_the_end_of_a_run_resumed_after_its_last_epoch_is_what_due_said_there():
    assert Cadence("auto", seconds=10).due_at_end(10.0) and not Cadence("auto", seconds=10).due_at_end(9.9)
    assert not Cadence("auto", seconds=10, last_under_auto=False).due_at_end(60.0)
    assert Cadence(4).due_at_end(0.1) and not Cadence(None).due_at_end(60.0)


def _run(tmp_path, *overrides: str):
    loaded = loads_spec(SPEC, "cad.yaml", [f"tracking.dir={tmp_path}", *overrides])
    result = run_grid(loaded, quiet=True, log=lambda _: None)
    assert not result.failed
    return result.folder / "00_run"


@pytest.fixture
def checkpointed(monkeypatch) -> list[int]:
    """The epoch each checkpoint written by the runner was taken after."""
    epochs: list[int] = []
    real = distributed.save_checkpoint

    def spy(run_dir, state, durable=True):
        epochs.append(state["epoch"] - 1)  # the state holds the next epoch to train
        real(run_dir, state, durable)

    monkeypatch.setattr(distributed, "save_checkpoint", spy)
    return epochs


@pytest.mark.parametrize("setting, expected", [
    (None, []),  # the default, auto: a run far shorter than its 10 s gets none (a kill loses < 10 s)
    ("2", [2, 4, 6]),
    ("4", [4, 6]),
    ("0", []),
])
def test_checkpoints_come_as_often_as_checkpoint_every_says(tmp_path, checkpointed, setting, expected):
    run_dir = _run(tmp_path, *([f"train.checkpoint_every={setting}"] if setting else []))
    assert checkpointed == expected
    assert (run_dir / "checkpoint.pt").exists() == bool(expected)


def test_auto_checkpoints_after_every_epoch_once_an_epoch_takes_its_seconds(tmp_path, checkpointed, monkeypatch):
    monkeypatch.setattr(cadence, "AUTO_SECONDS", 0.0)  # as if each epoch took longer than the interval
    _run(tmp_path)
    assert checkpointed == [1, 2, 3, 4, 5, 6]


def _steps(run_dir, kind: str, tag: str) -> list[int]:
    events = EventAccumulator(str(run_dir), size_guidance={kind: 0})
    events.Reload()
    if tag not in events.Tags()[kind]:
        return []
    return [event.step for event in (events.Histograms(tag) if kind == "histograms" else events.Images(tag))]


@pytest.mark.parametrize("setting, expected", [
    ("true", []),  # the default, auto: none in a run this short (seconds), not even at its end
    ("{every: 1}", [1, 2, 3, 4, 5, 6]),
    ("{every: 4}", [4, 6]),
    ("false", []),
])
def test_histograms_and_confusion_images_come_as_often_as_tracking_says(tmp_path, setting, expected):
    run_dir = _run(tmp_path, f"tracking.histograms={setting}", f"tracking.images={setting}")
    assert _steps(run_dir, "histograms", "params/0.weight") == expected
    assert _steps(run_dir, "images", "confusion_matrix/val") == expected


def test_auto_histograms_follow_the_clock(tmp_path, monkeypatch):
    monkeypatch.setattr(cadence, "AUTO_SECONDS", 0.0)
    run_dir = _run(tmp_path)
    assert _steps(run_dir, "histograms", "params/0.weight") == [1, 2, 3, 4, 5, 6]
    # A run that trained the seconds: the picture of its final confusion matrix comes with the images
    # (test_tasks.py has the short run's, without).
    assert (run_dir / "confusion_matrix.png").is_file()


def test_a_run_resumes_with_another_checkpoint_cadence(tmp_path):
    """checkpoint_every changes no number a run computes: a resume may change it."""
    from modelspec.runner.checkpoint import spec_hash

    one = loads_spec(SPEC, "cad.yaml", ["train.checkpoint_every=1"]).spec.resolved()
    auto = loads_spec(SPEC, "cad.yaml").spec.resolved()
    assert spec_hash(one) == spec_hash(auto)
    assert spec_hash(loads_spec(SPEC, "cad.yaml", ["train.epochs=7"]).spec.resolved()) != spec_hash(auto)
