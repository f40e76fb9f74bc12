"""The MLflow backend end to end, read back with MLflow's own client: params (the spec and the grid
values), one metric value per epoch, the run's files, and a resumed run that continues the same
MLflow run without logging a step twice."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from modelspec.cli.main import app
from modelspec.load import loads_spec
from modelspec.runner import run_grid
from modelspec.tracking.mlflow import RUN_FILE, MlflowTracker

pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

SPEC = """\
name: mlt
seed: 3
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
  epochs: 3
tracking:
  backends: [tensorboard, mlflow]
"""


@pytest.fixture
def store(tmp_path, monkeypatch) -> MlflowClient:
    """A client of the default store: `mlruns/` beside the `runs/` folder of the working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 refuses a file store without it
    monkeypatch.setenv("MODELSPEC_CACHE", str(tmp_path / "cache"))
    return MlflowClient((tmp_path / "mlruns").as_uri())


def _runs(client: MlflowClient, experiment: str = "mlt") -> dict[str, object]:
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r}"
    return {run.info.run_name: run for run in client.search_runs([found.experiment_id])}


def _steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(metric.step for metric in client.get_metric_history(run_id, key))


def test_a_grid_logs_params_metrics_per_epoch_and_files(tmp_path, store):
    # A grid over a layer's setting: the layer list is flattened by index.
    spec = SPEC.replace("model:\n", "model:\n  - dropout: {p: 0.1}\n")
    (tmp_path / "spec.yaml").write_text(spec + "grid:\n  train.optimizer.lr: [0.01, 0.003]\n  model[0].dropout.p: [0.2]\n")
    result = CliRunner().invoke(app, ["run", "spec.yaml", "-q"])
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "runs" / "mlt").iterdir()
    table = json.loads((folder / "results.json").read_text())
    runs = _runs(store)
    assert sorted(runs) == sorted(p.name for p in folder.iterdir() if p.is_dir())  # one per run, by folder
    assert {run.data.params["lr"] for run in runs.values()} == {"0.01", "0.003"}  # the grid values
    for name, run in runs.items():
        params, run_id = run.data.params, run.info.run_id
        assert params["train.optimizer.lr"] == params["lr"] and params["data.dataset"] == "synthetic"
        assert params["p"] == "0.2" and params["model.0.p"] == "0.2" and params["model.0.type"] == "dropout"
        assert run.data.tags["modelspec.grid"] == str(folder.resolve()) and run.info.status == "FINISHED"
        plan = json.loads((folder / name / "run.json").read_text())["run"]
        rows = [row for row in table["rows"] if row["run"] == plan]
        for key in ("loss", "val_loss", "val_accuracy", "current_lr", "epoch_duration"):
            history = sorted(store.get_metric_history(run_id, key), key=lambda m: m.step)
            assert [m.step for m in history] == [1, 2, 3], key
            assert [m.value for m in history] == pytest.approx([row[key] for row in rows]), key
        files = {item.path for item in store.list_artifacts(run_id)}
        assert {"spec.yaml", "weights.pt", "confusion_matrix.csv"} <= files, files
        assert list((folder / name).glob("events.out.tfevents.*")), "TensorBoard wrote nothing beside MLflow"
        assert json.loads((folder / name / RUN_FILE).read_text())["run_id"] == run_id


def test_settings_pick_the_store_and_the_experiment_and_exports_are_files_too(tmp_path, store):
    uri = (tmp_path / "elsewhere").as_uri()
    (tmp_path / "spec.yaml").write_text(SPEC)
    result = CliRunner().invoke(app, ["run", "spec.yaml", "-q", "--set", f"tracking.mlflow.uri={uri}",
                                      "--set", "tracking.mlflow.experiment=mine", "--set", "train.epochs=1",
                                      "--set", "export.after_run=true", "--set", "export.formats=[torch_export]"])
    assert result.exit_code == 0, result.output
    assert store.get_experiment_by_name("mlt") is None and store.get_experiment_by_name("mine") is None
    client = MlflowClient(uri)
    (run,) = _runs(client, "mine").values()
    exported = {item.path for item in client.list_artifacts(run.info.run_id, "export")}
    assert "export/model.pt2" in exported, exported


class Killed(BaseException):
    """The process dying after MLflow has an epoch the checkpoint does not (no handler catches it)."""


def test_a_resumed_run_continues_the_same_mlflow_run_without_a_step_twice(tmp_path, store, monkeypatch):
    real_log = MlflowTracker.log

    def log_then_die(self, step, row):
        real_log(self, step, row)
        if step == 3:
            raise Killed  # checkpoints come every 2 epochs: the checkpoint has epoch 2, MLflow has 3

    monkeypatch.setattr(MlflowTracker, "log", log_then_die)
    loaded = loads_spec(SPEC, "mlt.yaml", ["train.epochs=5", "train.checkpoint_every=2"])
    with pytest.raises(Killed):
        run_grid(loaded, quiet=True, log=lambda _: None)
    (folder,) = (tmp_path / "runs" / "mlt").iterdir()
    (before,) = _runs(store).values()
    assert _steps(store, before.info.run_id, "loss") == [1, 2, 3] and before.info.status == "KILLED"

    monkeypatch.setattr(MlflowTracker, "log", real_log)
    result = run_grid(loaded, resume_folder=folder, quiet=True, log=lambda _: None)
    assert not result.failed and not result.interrupted
    (after,) = _runs(store).values()  # the same MLflow run, not a second one
    assert after.info.run_id == before.info.run_id and after.info.status == "FINISHED"
    rows = json.loads((folder / "results.json").read_text())["rows"]
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4, 5]
    for key in ("loss", "val_accuracy", "run_duration"):
        assert _steps(store, after.info.run_id, key) == [1, 2, 3, 4, 5], key
    for key in after.data.metrics:  # every metric, the best_* summary too: no step twice
        steps = _steps(store, after.info.run_id, key)
        assert len(steps) == len(set(steps)), (key, steps)


def test_a_failing_store_is_said_and_the_run_still_finishes(tmp_path, store):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the store's folder would be")
    lines: list[str] = []
    loaded = loads_spec(SPEC, "mlt.yaml", [f"tracking.mlflow.uri={blocked.as_uri()}", "train.epochs=2"])
    result = run_grid(loaded, quiet=True, log=lines.append)
    assert not result.failed
    assert any(line.startswith("tracking: mlflow failed (start)") for line in lines), lines
    (folder,) = (tmp_path / "runs" / "mlt").iterdir()
    assert len(json.loads((folder / "results.json").read_text())["rows"]) == 2  # the table has every epoch


def test_param_names_are_names_mlflow_takes():
    from modelspec.tracking.mlflow import flatten, mlflow_key

    assert mlflow_key("networks.cnn[0].out_channels") == "networks.cnn_0_.out_channels"
    assert flatten({"data": {"input_shape": [1, 28, 28]}, "model": [{"type": "relu"}], "grid": {}}) == {
        "data.input_shape": "[1, 28, 28]", "model.0.type": "relu", "grid": "{}"}
