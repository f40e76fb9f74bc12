"""The optional parts of a run: mixed precision, channels-last, schedulers, clipping, early stop."""

from __future__ import annotations

import pytest

from modelspec.load import loads_spec
from modelspec.runner import run_grid

from _specs import SYNTHETIC

SMALL = SYNTHETIC.replace("size: 1200", "size: 300").replace("deterministic: true", "deterministic: false")


def _run(tmp_path, *overrides: str):
    loaded = loads_spec(SMALL, "syn.yaml", [f"tracking.dir={tmp_path}", *overrides])
    outcome = run_grid(loaded, quiet=True, log=lambda _: None).outcomes["run"]
    assert outcome.status == "finished", outcome.reason
    return outcome.rows


@pytest.mark.parametrize("overrides", [
    ["train.amp=bf16", "train.channels_last=true"],
    ["train.amp=fp16"],
    ["train.grad_clip=0.5"],
], ids=["bf16-channels_last", "fp16", "grad_clip"])
def test_precision_and_memory_format_options_train(tmp_path, overrides):
    rows = _run(tmp_path, *overrides)
    assert len(rows) == 3 and rows[-1]["loss"] < rows[0]["loss"]


def test_onecycle_steps_every_batch(tmp_path):
    rows = _run(tmp_path, "train.scheduler=onecycle")
    lrs = [row["current_lr"] for row in rows]
    assert lrs[0] < 0.01 and lrs[-1] < lrs[0] / 10  # one cycle: down to a tiny lr by the end


def test_cosine_spans_the_epochs(tmp_path):
    rows = _run(tmp_path, "train.scheduler=cosine", "train.epochs=4")
    assert [round(row["current_lr"], 6) for row in rows] == [0.01, 0.008536, 0.005, 0.001464]


def test_plateau_watches_a_validation_metric(tmp_path):
    rows = _run(tmp_path, "train.scheduler={plateau: {monitor: val_loss, patience: 0, threshold: 10}}",
                "train.epochs=3")
    assert [row["current_lr"] for row in rows] == pytest.approx([0.01, 0.001, 0.0001])


def test_early_stopping_ends_the_run(tmp_path):
    rows = _run(tmp_path, "train.epochs=6", "train.early_stopping={monitor: val_accuracy, patience: 2, min_delta: 1.0}")
    assert len(rows) == 3  # the first epoch sets the best; two more without a gain of 1.0 stop it
