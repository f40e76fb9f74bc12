"""Time series in the data's own units: with `difference` and horizon h the model learns x[t+h] - x[t]
from the last known level x[t], so that training, metrics and predict all reconstruct x[t+h]; metrics
(rows, evaluate) are measured on those levels, the loss stays in the model's units; predict names the
row each forecast is for; a window over a row without a finite number, a split too short for one
window and an `inf` in the training file are each reported where they are."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import TypeAdapter
from typer.testing import CliRunner

from modelspec.cli.main import app
from modelspec.compile.task import DataUnits, Targets, resolve_task, units_of
from modelspec.data import prepare_data
from modelspec.errors import SpecError
from modelspec.spec.data import DataSpec
from modelspec.spec.train import TrainSpec

runner = CliRunner()
CPU = torch.device("cpu")
ROWS = 60


def level(t):
    """The series: a parabola, so that every h-step change differs and the right answer is known."""
    return 5.0 + 0.1 * np.asarray(t, dtype=np.float64) ** 2


def series_csv(path: Path, rows: int = ROWS, cells: dict[int, str] | None = None) -> Path:
    """date,a,b: `a` the parabola, `b` a second column; `cells` puts raw text into `a` at 0-based rows."""
    lines = ["date,a,b"]
    for t in range(rows):
        a = (cells or {}).get(t, repr(float(level(t))))
        lines.append(f"d{t:03d},{a},{t % 7}")
    path.write_text("\n".join(lines) + "\n")
    return path


def data_spec(path: Path, **keys) -> DataSpec:
    base = dict(dataset="time_series", path=str(path), features=["a", "b"], targets=["a"], difference=True,
                scale="standard", window=4, horizon=3, val_split=0.2, test_split=0.2)
    return TypeAdapter(DataSpec).validate_python({**base, **keys})


SPEC = """\
name: lin
seed: 0
data:
  dataset: time_series
  path: series.csv
  features: [a, b]
  targets: [a]
  difference: true
  scale: standard
  window: 4
  horizon: 3
  val_split: 0.2
  test_split: 0.2
  batch_size: 8
model:
  - flatten
  - linear: {out_features: 1}
train:
  epochs: 2
  optimizer: {name: adam, lr: 0.01}
  loss: mse
"""


# --------------------------------------------------------------------------------------------------
# what the model learns with difference and horizon h (2f)


def test_with_difference_the_target_is_the_change_after_the_last_known_level(tmp_path):
    path = series_csv(tmp_path / "s.csv")
    prepared = prepare_data(data_spec(path), 0, CPU, log=lambda _: None)
    # 59 first changes: test the last round(59 × 0.2) = 12, validation round(47 × 0.2) = 9 before
    # them, training the first 38; each span holds (length - window - horizon + 1) samples.
    assert (len(prepared.train.y), len(prepared.val.y), len(prepared.test.y)) == (32, 3, 6)
    units = units_of(prepared.preprocessing)
    assert units.base and prepared.train.y.shape == (32, 2)  # (scaled change, base level x[t])
    # The targets' scaler: mean and std of the 3-step changes inside the training span (rows 0..38).
    changes = level(np.arange(3, 39)) - level(np.arange(0, 36))
    assert units.offset == pytest.approx([changes.mean()]) and units.scale == pytest.approx([changes.std()])
    t = np.arange(32) + 4  # sample s reads changes s..s+3: rows s..s+4, the last known level is row s+4
    y = prepared.train.y
    assert y[:, 1].tolist() == pytest.approx(level(t).tolist(), rel=1e-6)
    forecast = units(y[:, :1].double(), y[:, 1:].double())[:, 0]  # change * scale + offset + x[t]
    assert forecast.tolist() == pytest.approx(level(t + 3).tolist(), rel=1e-5)  # x[t + h], not x[t] + a 1-step change
    # With horizon 1 the targets' scaler is the inputs' own (the one-step changes of the same span).
    one = prepare_data(data_spec(path, horizon=1), 0, CPU, log=lambda _: None).preprocessing
    assert one["units"]["scale"] == pytest.approx([one["scaler"]["scale"][0]])


def test_without_difference_the_target_is_the_level_scaled_like_its_column(tmp_path):
    prepared = prepare_data(data_spec(series_csv(tmp_path / "s.csv"), difference=False, horizon=2), 0, CPU,
                            log=lambda _: None)
    units, scaler = units_of(prepared.preprocessing), prepared.preprocessing["scaler"]
    assert not units.base and prepared.train.y.shape == (len(prepared.train.y),)  # no base levels to carry
    assert (units.scale, units.offset) == ((scaler["scale"][0],), (scaler["offset"][0],))
    t = np.arange(len(prepared.train.y)) + 3  # the window's last row
    y = prepared.train.y[:, None].double()
    levels = units(y, y[:, :0])[:, 0]
    assert levels.tolist() == pytest.approx(level(t + 2).tolist(), rel=1e-5)


def test_predict_reconstructs_x_t_plus_h_and_names_the_row_it_is_for(tmp_path):
    """Fed the very change the data holds, predict answers x[t+h] exactly, for row t+h+1."""
    from modelspec.predict.readout import readout
    from modelspec.readers.raw import read_series, unscale

    path = series_csv(tmp_path / "s.csv")
    prepared = prepare_data(data_spec(path), 0, CPU, log=lambda _: None)
    preprocessing = {"data": prepared.preprocessing}
    items = read_series([str(path)], preprocessing)
    assert len(items) == 59 - 4 + 1  # every complete window, the last ones forecasting past the file
    # Training and predict agree: the same windows, scaled alike.
    assert torch.equal(torch.stack([i.x for i in items[:32]]), prepared.train.x)
    units = prepared.preprocessing["units"]
    t = np.arange(len(items)) + 4
    truth = level(t + 3)  # the parabola goes on past the file's last row
    changes = (truth - level(t) - units["offset"][0]) / units["scale"][0]
    rows = readout(torch.tensor(changes)[:, None], {"kind": "regression", "loss": "mse"}, None, target_names=["a"])
    unscale(rows, items, preprocessing)
    assert [r["a"] for r in rows] == pytest.approx(truth.tolist(), rel=1e-6)  # readout is float32
    assert [i.extra["for_row"] for i in items] == (t + 3 + 1).tolist()  # 1-based data rows
    assert items[0].name == "rows 1-5" and items[0].extra["for_date"] == "d007"
    assert items[-1].extra["for_row"] == ROWS + 3 and "for_date" not in items[-1].extra  # past the end
    assert all("_base" not in i.extra for i in items)  # used, not shown


def test_a_window_over_a_row_without_a_number_is_reported_with_its_rows(tmp_path):
    from modelspec.readers.raw import read_series

    prepared = prepare_data(data_spec(series_csv(tmp_path / "s.csv")), 0, CPU, log=lambda _: None)
    bad = series_csv(tmp_path / "bad.csv", cells={10: "", 30: "inf", 31: "abc"})
    items = read_series([str(bad)], {"data": prepared.preprocessing})
    failed = {i.name: i.error for i in items if i.x is None}
    # Row 11 (1-based) is read by the windows over rows 7-11 .. 11-15; rows 31, 32 by 27-31 .. 32-36.
    assert sorted(failed, key=lambda n: int(n.split()[1].split("-")[0])) == [
        f"rows {s}-{s + 4}" for s in [*range(7, 12), *range(27, 33)]]
    assert failed["rows 9-13"] == "no number to read: row 11: a is empty"
    assert failed["rows 28-32"] == "no number to read: row 31: a is inf; row 32: a holds 'abc', no number"
    good = [i for i in items if i.x is not None]
    assert len(good) == len(items) - 11 and all(torch.isfinite(i.x).all() for i in good)


# --------------------------------------------------------------------------------------------------
# metrics in the data's units (3)


def test_metrics_read_levels_in_data_units_and_the_loss_model_units():
    from modelspec.runner.metrics import MetricSet

    units = DataUnits(scale=(2.0,), offset=(10.0,), base=True)
    task = resolve_task(TrainSpec.model_validate({"loss": "mse"}), (1,), Targets("real", 1, ["a"], units),
                        ("model", 0, "linear"))
    assert task.units == units
    # Two samples: bases 100 and 200, scaled changes 1 and 2: true levels 112 and 214; the outputs
    # 1.5 and 1.0 forecast 113 and 212: errors +1 and -2 in the data's units.
    y = torch.tensor([[1.0, 100.0], [2.0, 200.0]])
    out = torch.tensor([[1.5], [1.0]])
    loss = torch.nn.functional.mse_loss(out, task.loss_target(y))
    metrics = MetricSet(task, CPU)
    metrics.update(out, y, loss)
    values = metrics.compute()
    assert values["loss"] == pytest.approx((0.5**2 + 1.0**2) / 2)  # model units
    assert values["rmse"] == pytest.approx(math.sqrt((1 + 4) / 2))
    assert values["mae"] == pytest.approx(1.5)
    assert values["mape"] == pytest.approx((1 / 112 + 2 / 214) / 2)
    assert values["r2"] == pytest.approx(1 - 5 / (51**2 + 51**2))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One run of the spec above on the parabola (2 epochs of a linear model)."""
    here = tmp_path_factory.mktemp("series")
    series_csv(here / "series.csv")
    (here / "spec.yaml").write_text(SPEC)
    cwd = Path.cwd()
    import os

    os.chdir(here)
    try:
        result = runner.invoke(app, ["run", "spec.yaml", "--quiet", "--set", "tracking.dir=runs"])
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    (weights,) = here.glob("runs/lin/*/*/weights.pt")
    return here, weights.parent


def test_run_rows_and_evaluate_measure_the_levels(trained, monkeypatch):
    """The run's test_rmse, `evaluate --split test` and `evaluate --data` on the test rows are all
    the rmse of the forecast levels x[t+h] against the file's, computed here by hand."""
    from modelspec.artifacts import load_trained

    here, run = trained
    monkeypatch.chdir(here)
    model = load_trained(run)
    data = model.info.preprocessing
    prepared = prepare_data(model.spec.data, 0, CPU, log=lambda _: None)
    with torch.no_grad():
        out = model.model(prepared.test.x)[:, 0].double()
    forecast = out * data["units"]["scale"][0] + data["units"]["offset"][0] + prepared.test.y[:, 1].double()
    t = np.arange(47, 47 + 6) + 4  # the test span starts at change 47: its first window ends at row 51
    error = forecast.numpy() - level(t + 3)
    rmse, mape = math.sqrt((error**2).mean()), (np.abs(error) / level(t + 3)).mean()
    row = json.loads((run / "run.json").read_text())["rows"][-1]
    assert row["test_rmse"] == pytest.approx(rmse, rel=1e-4) and row["test_mape"] == pytest.approx(mape, rel=1e-3)
    # The loss stays in the model's (scaled) units.
    scaled = (level(t + 3) - level(t) - data["units"]["offset"][0]) / data["units"]["scale"][0]
    assert row["test_loss"] == pytest.approx(((out.numpy() - scaled) ** 2).mean(), rel=1e-4)
    lines = (here / "series.csv").read_text().splitlines()
    Path("test_rows.csv").write_text("\n".join([lines[0], *lines[1 + 47 :]]) + "\n")  # rows 47.. of the file
    for args, folder in ((["--split", "test"], "split"), (["--data", "test_rows.csv"], "new")):
        result = runner.invoke(app, ["evaluate", str(run), *args, "--out", folder])
        assert result.exit_code == 0, result.output
        evaluation = json.loads(Path(folder, "evaluation.json").read_text())
        assert evaluation["samples"] == 6
        assert evaluation["metrics"]["rmse"] == pytest.approx(rmse, rel=1e-4)


def test_predict_on_a_series_with_bad_rows_exits_1_and_predicts_the_rest(trained, monkeypatch):
    here, run = trained
    monkeypatch.chdir(here)
    series_csv(Path("bad.csv"), cells={10: "", 30: "-inf"})
    result = runner.invoke(app, ["predict", str(run), "bad.csv", "--out", "out.json"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "rows 7-11: no number to read: row 11: a is empty" in result.stderr
    assert "row 31: a is -inf" in result.stderr
    rows = json.loads(Path("out.json").read_text())
    good = [r for r in rows if "error" not in r]
    assert len(good) == len(rows) - 10 and all(math.isfinite(r["a"]) for r in good)
    assert good[-1]["for_row"] == ROWS + 3 and good[0]["for_date"] == "d007"


# --------------------------------------------------------------------------------------------------
# a split too short for one window (2e), a value that is no finite number in training (11c)


@pytest.mark.parametrize("key, value, message", [
    ("test_split", 0.05, "test_split 0.05 of series.csv's 59 steps (the first changes of its rows) is a span of 3 "
                         "step(s); one window needs window + horizon = 4 + 3 = 7 steps"),
    ("val_split", 0.1, "val_split 0.1 of the 47 steps before the test span is a span of 5 step(s); one window "
                       "needs window + horizon = 4 + 3 = 7 steps"),
])
def test_a_split_too_short_for_one_window_is_an_error_at_its_key(tmp_path, monkeypatch, key, value, message):
    monkeypatch.chdir(tmp_path)
    series_csv(Path("series.csv"))
    Path("spec.yaml").write_text(SPEC.replace(f"  {key}: 0.2", f"  {key}: {value}"))
    line = 1 + SPEC.splitlines().index(f"  {key}: 0.2")
    spec = data_spec(Path("series.csv"), **{key: value})
    for check in (spec.check_files, spec.open):  # from the row count alone, before anything runs; at run time
        with pytest.raises(SpecError) as caught:
            check(0)
        assert message in str(caught.value) and caught.value.issues[0].path == ("data", key)
    for command in (["validate", "spec.yaml"], ["run", "spec.yaml", "--quiet", "--set", "tracking.dir=runs"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert f"spec.yaml:{line}:" in result.output and message in result.output
    assert not Path("runs").exists()


@pytest.mark.parametrize("cell, says", [("inf", "row 21: a is inf"), ("", "row 21: a is empty"),
                                        ("many", "row 21: a holds 'many', no number")])
def test_a_training_series_with_no_finite_number_in_a_row_is_a_data_error(tmp_path, monkeypatch, cell, says):
    monkeypatch.chdir(tmp_path)
    series_csv(Path("series.csv"), cells={20: cell})
    Path("spec.yaml").write_text(SPEC)
    result = runner.invoke(app, ["run", "spec.yaml", "--quiet", "--set", "tracking.dir=runs"])
    assert result.exit_code == 2 and "Traceback" not in result.output and "loss became" not in result.output
    assert says in result.output and "data.path" in result.output
