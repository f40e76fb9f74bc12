"""Trackers are plug-ins: found in modelspec/tracking/, chosen by `tracking.backends`, each with its
settings at `tracking.<name>`; the results table is always written."""

from __future__ import annotations

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from modelspec.cli.main import app
from modelspec.load import loads_spec
from modelspec.runner import run_grid
from modelspec.spec.export import TrackingSpec
from modelspec.tracking import TRACKERS, TensorBoardTracker, Tracker

SPEC = """\
name: trk
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
  epochs: 2
"""


def _grid(tmp_path, *overrides: str, log=lambda _: None):
    loaded = loads_spec(SPEC, "trk.yaml", [f"tracking.dir={tmp_path}", *overrides])
    result = run_grid(loaded, quiet=True, log=log)
    (folder,) = (tmp_path / "trk").iterdir()
    return result, folder


def test_the_registry_holds_every_tracker_module_with_its_name():
    assert {"tensorboard", "mlflow"} <= set(TRACKERS)
    for name, tracker in TRACKERS.items():
        assert issubclass(tracker, Tracker) and tracker.name == name
        assert tracker.__module__ == f"modelspec.tracking.{name}"  # one module per tracker
        if tracker.Options is not None:  # its settings are a field of the tracking section, documented
            assert TrackingSpec.model_fields[name].annotation is tracker.Options
            assert all(field.description for field in tracker.Options.model_fields.values()), name


@pytest.mark.parametrize("name", sorted(TRACKERS))
def test_every_tracker_is_a_name_in_backends(name):
    loaded = loads_spec(SPEC, "trk.yaml", [f"tracking.backends=[{name}]"])
    assert loaded.spec.tracking.backends == [name]


def test_old_specs_default_to_tensorboard(tmp_path):
    loaded = loads_spec(SPEC, "trk.yaml", [])
    assert loaded.spec.tracking.backends == ["tensorboard"]
    result, folder = _grid(tmp_path)
    assert not result.failed and list(folder.glob("*/events.out.tfevents.*"))


def test_no_backends_still_writes_the_results_table(tmp_path):
    result, folder = _grid(tmp_path, "tracking.backends=[]")
    assert not result.failed
    assert not list(folder.glob("**/events.out.tfevents.*"))
    assert [row["epoch"] for row in json.loads((folder / "results.json").read_text())["rows"]] == [1, 2]
    assert (folder / "results.csv").read_text().startswith("run,epoch,loss,")


def test_an_unknown_backend_is_a_located_error_with_a_suggestion(tmp_path):
    text = SPEC + "tracking:\n  backends: [tensorboard, mlfow]\n"
    (tmp_path / "bad.yaml").write_text(text)
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 2
    assert "bad.yaml:15:" in result.stderr and "tracking.backends[1]" in result.stderr, result.stderr
    assert "unknown tracking backend 'mlfow'" in result.stderr and "did you mean 'mlflow'?" in result.stderr


def test_a_backend_listed_twice_and_an_unknown_setting_are_refused(spec_issues):
    (issue,) = spec_issues(SPEC, "tracking.backends=[tensorboard, tensorboard]")
    assert issue.path == ("tracking", "backends", 1) and "listed twice" in issue.message
    (issue,) = spec_issues(SPEC, "tracking.mlflow.urі=x")
    assert issue.path[:2] == ("tracking", "mlflow")


def test_a_missing_package_is_one_error_naming_the_extra(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    (tmp_path / "spec.yaml").write_text(SPEC + f"tracking:\n  dir: {tmp_path / 'runs'}\n  backends: [mlflow]\n")
    result = CliRunner().invoke(app, ["run", str(tmp_path / "spec.yaml"), "-q"])
    assert result.exit_code == 2, result.output
    assert "pip install 'modelspec[mlflow]'" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "runs" / "trk").exists() or not any((tmp_path / "runs" / "trk").iterdir())


def test_a_backend_that_fails_is_said_once_and_the_run_goes_on(tmp_path, monkeypatch):
    def broken(self, step, row):
        raise RuntimeError("the events folder went away")

    monkeypatch.setattr(TensorBoardTracker, "log", broken)
    lines: list[str] = []
    result, folder = _grid(tmp_path, log=lines.append)
    assert not result.failed
    said = [line for line in lines if line.startswith("tracking: tensorboard failed (log)")]
    assert len(said) == 1 and "the events folder went away" in said[0], lines
    assert len(json.loads((folder / "results.json").read_text())["rows"]) == 2
