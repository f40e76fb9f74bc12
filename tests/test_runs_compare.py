"""`modelspec runs` and `modelspec compare` on real grids, through the CLI: counts, best runs, spec
differences, metric differences, bad paths, and no torch import."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelspec.cli.main import app
from modelspec.tracking.overview import ABSENT, spec_diff

from _specs import SYNTHETIC

runner = CliRunner()

# Small enough that two grids (four runs) train in a few seconds; sgd at lr 1e30 fails in epoch 1.
TINY = SYNTHETIC.replace("epochs: 3", "epochs: 2").replace("size: 1200", "size: 200").replace("name: adam", "name: sgd")
SYN = TINY + "grid:\n  train.optimizer.lr: [1.0e+30, 0.01, 0.05]\n"
WIDE = (TINY.replace("name: syn", "name: wide").replace("out_channels: 8", "out_channels: 16")
        .replace("name: sgd, lr: 0.01", "name: adam, lr: 0.003"))


@pytest.fixture(scope="module")
def grids(tmp_path_factory) -> dict[str, Path]:
    """Two real grids under one runs folder: syn (3 runs, one failed) and wide (1 run)."""
    root = tmp_path_factory.mktemp("grids")
    found = {}
    for name, text in (("syn", SYN), ("wide", WIDE)):
        spec = root / f"{name}.yaml"
        spec.write_text(text)
        result = runner.invoke(app, ["run", str(spec), "--quiet", "--set", f"tracking.dir={root / 'runs'}",
                                     "--set", "tracking.backends=[]"])  # TensorBoard's files are not read here
        assert result.exit_code in (0, 1), result.output  # 1: syn's failed run
        (found[name],) = (root / "runs" / name).iterdir()
    found["root"] = root / "runs"
    return found


def _summaries(grid: Path) -> dict[str, dict]:
    return {run["run"]: run for run in json.loads((grid / "results.json").read_text())["runs"]}


def _invoke(*args: str):
    result = runner.invoke(app, [str(arg) for arg in args])
    assert "Traceback" not in result.output, result.output
    return result


def _records(folder: Path) -> dict[str, dict]:
    result = _invoke("runs", folder, "--json")
    assert result.exit_code == 0, result.output
    return {record["name"]: record for record in json.loads(result.stdout)}


# --------------------------------------------------------------------------------------------------
# runs


def test_runs_counts_each_grid_and_names_its_best_run(grids):
    records = _records(grids["root"])
    assert set(records) == {"syn", "wide"}
    syn = records["syn"]
    assert syn["counts"] == {"failed": 1, "finished": 2} and syn["runs"] == 3
    summaries = _summaries(grids["syn"])
    best = max(("lr=0.01", "lr=0.05"), key=lambda run: summaries[run]["best_val_accuracy"])  # first of equals
    assert (syn["best_run"], syn["best"], syn["monitor"]) == (best, summaries[best]["best_val_accuracy"], "val_accuracy")
    assert syn["folder"] == str(grids["syn"]) and syn["started"].startswith(grids["syn"].name[:4])
    assert records["wide"]["counts"] == {"finished": 1} and records["wide"]["best_run"] == "run"


def test_runs_prints_a_table_of_the_grids(grids):
    result = _invoke("runs", grids["root"])
    assert result.exit_code == 0
    header = next(line for line in result.stdout.splitlines() if "started" in line)
    for column in ("name", "finished", "failed", "pruned", "stopped", "running", "best run", "folder"):
        assert column in header
    syn_line = next(line for line in result.stdout.splitlines() if str(grids["syn"]) in line)
    cells = [cell.strip() for cell in syn_line.split("│")[1:-1]]
    assert cells[0] == "syn" and cells[2:7] == ["2", "1", "0", "0", "0"]
    assert cells[7].startswith("val_accuracy 0.")


def test_runs_of_one_grid_folder_or_one_spec_folder(grids):
    assert set(_records(grids["syn"])) == {"syn"}
    assert set(_records(grids["syn"].parent)) == {"syn"}


def _edited_copy(grids, tmp_path: Path) -> Path:
    """syn's grid copied, then edited as a killed, a resumed and a searching grid would leave it:
    a pruned run, a run whose summary is not in results.json yet (its run.json is), a run folder
    with a checkpoint and one without, and one run the grid never reached."""
    grid = tmp_path / "runs" / "syn" / grids["syn"].name
    shutil.copytree(grids["syn"], grid)
    document = json.loads((grid / "results.json").read_text())
    failed, _ended, second = document["runs"]
    second["status"] = "pruned"
    document["runs"] = [failed, second]  # the other has ended: its run.json says so
    (grid / "results.json").write_text(json.dumps(document))
    (grid / "03_lr=0.1").mkdir()
    (grid / "03_lr=0.1" / "checkpoint.pt").write_bytes(b"")
    (grid / "04_lr=0.2").mkdir()
    spec = json.loads((grid / "spec.json").read_text())
    spec["grid"]["train.optimizer.lr"] += [0.1, 0.2, 0.3]
    (grid / "spec.json").write_text(json.dumps(spec))
    return grid


def test_statuses_come_from_summaries_run_files_and_run_folders(grids, tmp_path):
    grid = _edited_copy(grids, tmp_path)
    record = _records(grid)["syn"]
    assert record["counts"] == {"failed": 1, "pruned": 1, "finished": 1, "stopped": 1, "not started": 2}
    # A pruned run is not a best run, and lr=0.01's value is in no summary yet.
    assert record["runs"] == 6 and record["best_run"] is None
    table = _invoke("runs", grid).stdout
    assert "not started" in table.splitlines()[1]  # a status beyond the usual five gets its column


def test_a_search_expects_its_trials(grids, tmp_path):
    grid = _edited_copy(grids, tmp_path)
    spec = json.loads((grid / "spec.json").read_text())
    spec["search"] = {"trials": 9, "space": {"train.optimizer.lr": {"low": 0.001, "high": 0.1}}}
    del spec["grid"]
    (grid / "spec.json").write_text(json.dumps(spec))
    assert _records(grid)["syn"]["counts"]["not started"] == 1 + (9 - 5)  # 04_lr=0.2, then four never asked


def test_run_folders_of_a_grid_being_trained_are_running(grids, tmp_path):
    grid = _edited_copy(grids, tmp_path)
    (grid / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    assert _records(grid)["syn"]["counts"] == {"failed": 1, "pruned": 1, "finished": 1, "running": 2,
                                               "not started": 1}
    # A lock its killed owner left behind is no training.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    (grid / ".lock").write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    assert "running" not in _records(grid)["syn"]["counts"]


def test_an_unreadable_results_file_is_said_and_the_run_folders_count(grids, tmp_path):
    grid = tmp_path / "syn" / grids["syn"].name
    shutil.copytree(grids["syn"], grid)
    (grid / "results.json").write_text('{"runs": [')
    result = _invoke("runs", grid, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)[0]["counts"] == {"failed": 1, "finished": 2}
    assert f"note: {grid / 'results.json'} is unreadable" in result.stderr


def test_runs_in_an_empty_folder_says_so(tmp_path):
    result = _invoke("runs", tmp_path)
    assert (result.exit_code, result.stdout.strip()) == (0, f"no grids under {tmp_path}")
    result = _invoke("runs", tmp_path, "--json")
    assert (result.exit_code, json.loads(result.stdout)) == (0, [])


@pytest.mark.parametrize("where", ["missing", "file"])
def test_runs_of_a_bad_path_is_one_message_and_exit_2(tmp_path, where):
    path = tmp_path / "nothing"
    if where == "file":
        path.write_text("x")
    result = _invoke("runs", path)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and str(path) in result.stderr and "hint:" in result.stderr


# --------------------------------------------------------------------------------------------------
# compare


def _lines(result) -> list[str]:
    return result.stdout.splitlines()


def _metric_cells(result, name: str) -> list[str]:
    line = next(line for line in _lines(result) if line.startswith(f"│ {name} "))
    return [cell.strip() for cell in line.split("│")[1:-1]]


def test_compare_two_runs_of_a_grid(grids):
    a, b = grids["syn"] / "01_lr=0.01", grids["syn"] / "02_lr=0.05"
    result = _invoke("compare", a, b)
    assert result.exit_code == 0, result.output
    lines = _lines(result)
    assert lines[0] == f"A: {a}: lr=0.01, finished" and lines[1] == f"B: {b}: lr=0.05, finished"
    assert lines[2:4] == ["spec (A -> B):", "  train.optimizer.lr: 0.01 -> 0.05"]
    summaries = _summaries(grids["syn"])
    for metric in ("best_val_accuracy", "final_val_loss", "final_test_accuracy"):
        mine, theirs = summaries["lr=0.01"][metric], summaries["lr=0.05"][metric]
        assert _metric_cells(result, metric) == [metric, f"{mine:.4f}", f"{theirs:.4f}", f"{theirs - mine:+.4f}"]
    assert _metric_cells(result, "epochs") == ["epochs", "2", "2", "+0"]


def test_compare_grid_folders_takes_their_best_runs(grids):
    result = _invoke("compare", grids["syn"], grids["wide"])
    assert result.exit_code == 0, result.output
    best = _records(grids["root"])["syn"]["best_dir"]
    assert _lines(result)[0].startswith(f"A: {grids['syn'] / best}: ")
    assert _lines(result)[0].endswith(f"(the best run of {grids['syn']} by val_accuracy)")
    differences = _lines(result)[_lines(result).index("spec (A -> B):") + 1:]
    lr = _summaries(grids["syn"])[_records(grids["root"])["syn"]["best_run"]]["values"]["train.optimizer.lr"]
    for line in ("name: syn -> wide", "model[0].conv.out_channels: 8 -> 16", "train.optimizer.name: sgd -> adam",
                 f"train.optimizer.lr: {lr} -> 0.003"):
        assert f"  {line}" in differences
    assert not any(line.startswith("  grid") for line in differences)  # each run's values are in its spec


def test_compare_with_a_failed_run_shows_its_reason_and_blank_metrics(grids):
    result = _invoke("compare", grids["syn"] / "02_lr=0.05", grids["syn"] / "00_lr=1e+30")
    assert result.exit_code == 0, result.output
    assert _lines(result)[1].startswith(f"B: {grids['syn'] / '00_lr=1e+30'}: lr=1e+30, failed: the training loss")
    assert "  train.optimizer.lr: 0.05 -> 1e+30" in _lines(result)
    assert _metric_cells(result, "epochs") == ["epochs", "2", "0", "-2"]
    assert _metric_cells(result, "best_val_accuracy")[2:] == ["", ""]


def test_compare_a_run_with_itself_finds_no_difference(grids):
    result = _invoke("compare", grids["wide"], grids["wide"] / "00_run")
    assert result.exit_code == 0 and "spec (A -> B): the same" in _lines(result)


def test_compare_bad_paths_are_one_message_and_exit_2(grids, tmp_path):
    no_finished = tmp_path / "runs" / "syn" / grids["syn"].name
    shutil.copytree(grids["syn"], no_finished)
    document = json.loads((no_finished / "results.json").read_text())
    document["runs"] = document["runs"][:1]  # only the failed run has ended
    (no_finished / "results.json").write_text(json.dumps(document))
    cases = {
        tmp_path / "missing": "no such folder",
        grids["syn"] / "results.json": "is a file, not a folder",
        grids["root"] / "syn": "hint: it holds grids: give one of them, e.g.",
        no_finished: "has no finished run with a monitored value in its results.json (1 failed, 2 finished)",
        no_finished / "01_lr=0.01": "run lr=0.01 (finished) has no summary in",
    }
    for path, message in cases.items():
        result = _invoke("compare", path, grids["wide"])
        assert result.exit_code == 2, (path, result.output)
        assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr


def test_spec_diff_compares_lists_of_equal_length_item_by_item():
    a = {"train": {"lr": 0.1, "shuffle": True}, "model": [{"conv": 8}, "relu"], "data": {"transforms": []}}
    b = {"train": {"lr": 0.1, "shuffle": 1}, "model": [{"conv": 16}, "relu"], "data": {"transforms": ["to_tensor"]},
         "seed": 3}
    assert spec_diff(a, b) == [(("train", "shuffle"), True, 1), (("model", 0, "conv"), 8, 16),
                               (("data", "transforms"), [], ["to_tensor"]), (("seed",), ABSENT, 3)]


# --------------------------------------------------------------------------------------------------
# no torch


def _imported(args: list[str]) -> tuple[subprocess.CompletedProcess, set[str]]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "modelspec", *args],
                          capture_output=True, text=True, timeout=60, check=False)
    modules = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    return done, modules


@pytest.mark.parametrize("command", ["runs", "compare"])
def test_runs_and_compare_never_import_torch(grids, command):
    args = ["runs", str(grids["root"])] if command == "runs" else ["compare", str(grids["syn"]), str(grids["wide"])]
    done, modules = _imported(args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "syn" in done.stdout
    assert not {m for m in modules if m == "torch" or m.startswith("torch.")}


def test_a_grid_folder_renamed_by_hand_started_when_its_spec_was_written_to_the_second(grids, tmp_path):
    grid = tmp_path / "runs" / "syn" / "baseline"  # not a timestamp: the spec file's time
    shutil.copytree(grids["syn"], grid)
    os.utime(grid / "spec.json", (1796666400.75, 1796666400.75))
    started = _records(grid)["syn"]["started"]
    assert started.startswith("2026-") and "." not in started and started.endswith(":00"), started
