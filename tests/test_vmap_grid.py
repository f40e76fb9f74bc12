"""`--executor vmap`: a grid's runs trained in packs compute what the sequential grid computes.

Each test runs one grid twice, one run after another and packed, and compares run by run: every
row's losses and metrics within 1e-5 relative, accuracies equal, final weights (weights.pt, loaded
as a plain run's) within 1e-5, confusion matrices equal, outputs.csv within 1e-4 (printed to 7
digits), and the same files in every run folder.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modelspec.load import loads_spec
from modelspec.runner import run_grid
from modelspec.runner.vmap_grid import VmapExecutor

BASE = """\
name: pack
seed: 3
data:
  dataset: synthetic
  input_shape: [12]
  num_classes: 4
  size: 360
  test_size: 60
  batch_size: 32
  val_split: 0.2
  transforms: []
model:
  - linear: {{out_features: 24}}
  - relu
{extra}  - linear: {{out_features: num_classes}}
train:
  epochs: {epochs}
  optimizer: {optimizer}
{train}tracking: {{histograms: false, images: false}}
grid:
{grid}"""


def _spec(*, optimizer="{name: sgd, lr: 0.05, momentum: 0.9}", grid="  seed: [1, 2, 3]\n", extra="", train="",
          epochs=3) -> str:
    return BASE.format(optimizer=optimizer, grid=grid, extra=extra, train=train, epochs=epochs)


def _both(tmp_path: Path, text: str, **vmap) -> tuple:
    """The grid run one after another, then packed: (sequential result, packed result, packed log)."""
    lines: list[str] = []
    sequential = run_grid(loads_spec(text, "pack.yaml", [f"tracking.dir={tmp_path / 'seq'}"]), quiet=True,
                          log=lambda _: None)
    packed = run_grid(loads_spec(text, "pack.yaml", [f"tracking.dir={tmp_path / 'vmap'}"]), quiet=True,
                      log=lines.append, executor=VmapExecutor(**vmap))
    return sequential, packed, lines


def _close(a, b, rel=1e-5) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b)) or abs(a - b) <= rel * max(abs(a), abs(b), 1e-3)
    return a == b


def assert_same_runs(sequential, packed) -> None:
    assert sorted(sequential.outcomes) == sorted(packed.outcomes)
    for name, alone in sequential.outcomes.items():
        stacked = packed.outcomes[name]
        assert (stacked.status, stacked.reason) == (alone.status, alone.reason), name
        assert len(stacked.rows) == len(alone.rows), name
        for row_alone, row_packed in zip(alone.rows, stacked.rows):
            assert set(row_alone) == set(row_packed)
            for key, value in row_alone.items():
                if key.endswith("_duration"):
                    continue
                if "accuracy" in key:
                    assert row_packed[key] == value, (name, key)
                assert _close(value, row_packed[key]), (name, row_alone["epoch"], key, value, row_packed[key])
        if alone.status == "finished":
            weights_alone = torch.load(sequential.run_dirs[name] / "weights.pt", weights_only=True)["state_dict"]
            weights_packed = torch.load(packed.run_dirs[name] / "weights.pt", weights_only=True)["state_dict"]
            assert weights_alone.keys() == weights_packed.keys()
            for key, tensor in weights_alone.items():
                torch.testing.assert_close(weights_packed[key], tensor, rtol=1e-5, atol=1e-6)
            assert_same_final_files(sequential.run_dirs[name], packed.run_dirs[name])


def assert_same_final_files(alone: Path, packed: Path) -> None:
    """The final model's confusion matrix (equal counts) and outputs.csv (the same samples, in order)."""
    assert (packed / "confusion_matrix.csv").exists() == (alone / "confusion_matrix.csv").exists()
    if (alone / "confusion_matrix.csv").exists():
        assert (packed / "confusion_matrix.csv").read_text() == (alone / "confusion_matrix.csv").read_text()
    assert (packed / "outputs.csv").exists() == (alone / "outputs.csv").exists()
    if not (alone / "outputs.csv").exists():  # a multi-label run writes none
        return
    table_alone, table_packed = ((folder / "outputs.csv").read_text().splitlines() for folder in (alone, packed))
    assert table_packed[0] == table_alone[0] and len(table_packed) == len(table_alone) > 1
    numbers = lambda table: torch.tensor([[float(v) for v in line.split(",")] for line in table[1:]])  # noqa: E731
    torch.testing.assert_close(numbers(table_packed), numbers(table_alone), rtol=1e-4, atol=1e-6)


def _scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """What TensorBoard shows of a run: every scalar tag's (step, value) pairs, and the HParams run."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    tags = events.Tags()["scalars"]
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in tags}


def _files(run_dir: Path) -> set[str]:
    return {p.name if not p.name.startswith("events.") else "events" for p in run_dir.iterdir()}


def test_sgd_momentum_with_a_schedule_over_seed_and_lr_packs_and_computes_what_each_run_does(tmp_path):
    text = _spec(grid="  seed: [1, 2]\n  train.optimizer.lr: [0.05, 0.1]\n",
                 train="  scheduler: {name: step, step_size: 1, gamma: 0.7}\n")
    sequential, packed, lines = _both(tmp_path, text)
    assert any(line.startswith("packing 4 runs") for line in lines), lines
    assert_same_runs(sequential, packed)
    rows = {name: o.rows for name, o in packed.outcomes.items()}
    assert len({r[-1]["loss"] for r in rows.values()}) == 4  # four different runs, not one copied
    assert [r[1]["current_lr"] / r[0]["current_lr"] for r in rows.values()] == pytest.approx([0.7] * 4)
    for name, run_dir in packed.run_dirs.items():
        assert _files(run_dir) == _files(sequential.run_dirs[name])
        state = json.loads((run_dir / "run.json").read_text())
        assert state["status"] == "finished" and len(state["rows"]) == 3
        assert {"loss/train", "accuracy/val", "lr"} <= _scalars(run_dir).keys()
        assert _scalars(run_dir).keys() == _scalars(sequential.run_dirs[name]).keys()
        for tag, values in _scalars(sequential.run_dirs[name]).items():
            if "duration" not in tag:
                packed_values = _scalars(run_dir)[tag]
                assert [step for step, _ in packed_values] == [step for step, _ in values], (name, tag)
                assert [v for _, v in packed_values] == pytest.approx([v for _, v in values], rel=1e-5), (name, tag)
    table_alone = json.loads((sequential.folder / "results.json").read_text())
    table_packed = json.loads((packed.folder / "results.json").read_text())
    assert [r["run"] for r in table_packed["rows"]] == [r["run"] for r in table_alone["rows"]]
    assert json.loads((packed.folder / "grid.json").read_text())["executor"] == {"kind": "vmap", "pack_size": None}


@pytest.mark.parametrize("split, kept", [("val", True), ("test", True), ("train", False), ("val_too_large", False)])
def test_a_pack_writes_its_runs_outputs_from_its_last_evaluation(tmp_path, monkeypatch, split, kept):
    """The outputs.csv and confusion matrix of a run monitored on val or test come from the pack's last
    evaluation (no pass of each run's network); on the training split, or outputs past
    KEPT_OUTPUT_BYTES, each run computes its own: the files are the sequential grid's either way."""
    from modelspec.runner import outputs
    from modelspec.runner.stacked import pack

    text = _spec(grid="  seed: [1, 2, 3]\n", epochs=2)
    if split == "test":
        text = text.replace("val_split: 0.2", "val_split: 0.0")
    if split == "train":
        text = text.replace("val_split: 0.2", "val_split: 0.0").replace("test_size: 60", "test_size: 0")
    if split == "val_too_large":
        monkeypatch.setattr(pack, "KEPT_OUTPUT_BYTES", 3 * 72 * 4 * 4 - 1)  # 3 runs, 72 samples, 4 classes
    sequential = run_grid(loads_spec(text, "pack.yaml", [f"tracking.dir={tmp_path / 'seq'}"]), quiet=True,
                          log=lambda _: None)
    passes, real = [], outputs._outputs
    monkeypatch.setattr(outputs, "_outputs", lambda parts, feed: passes.append(feed) or real(parts, feed))
    packed = run_grid(loads_spec(text, "pack.yaml", [f"tracking.dir={tmp_path / 'vmap'}"]), quiet=True,
                      log=lambda _: None, executor=VmapExecutor())
    assert len(passes) == (0 if kept else 3)
    monitor = next(iter(packed.outcomes.values())).monitor.name
    assert monitor.split("_")[0] == {"val_too_large": "val", "train": "accuracy"}.get(split, split), monitor
    assert_same_runs(sequential, packed)  # outputs.csv and confusion matrices included


@pytest.mark.parametrize("task", ["binary", "regression", "multilabel", "multiclass_f1"])
def test_packs_of_every_task_compute_their_default_metrics_together(tmp_path, monkeypatch, task):
    """A binary task's accuracy, auroc and f1, a regression's rmse, mae, r2 and mape, a multi-label
    one's f1, accuracy and per-label f1, a multi-class f1 and weighted precision: each run's values as
    its torchmetrics objects give them alone, computed for the pack at once (no torchmetrics object
    is built in the pack)."""
    from modelspec.runner.metrics import MetricSet

    text = _spec(grid="  seed: [1, 2, 3]\n  train.optimizer.lr: [0.05, 0.02]\n", epochs=3)
    head = "  - linear: {out_features: num_classes}\n"
    if task == "binary":
        text = text.replace("num_classes: 4", "num_classes: 2").replace(head, "  - linear: {out_features: 1}\n")
        text = text.replace("train:\n", "train:\n  loss: bce_with_logits\n")
    elif task == "multilabel":
        text = text.replace("num_classes: 4", "target_kind: binary\n  num_classes: 4")
        text = text.replace("train:\n", "train:\n  loss: bce_with_logits\n")
    elif task == "regression":
        text = text.replace("num_classes: 4", "target_kind: real\n  num_targets: 2")
        text = text.replace(head, "  - linear: {out_features: 2}\n").replace("train:\n", "train:\n  loss: mse\n")
    else:
        text = text.replace("train:\n", "train:\n  metrics: [accuracy, f1, {name: precision, average: weighted}]\n")
    sequential = run_grid(loads_spec(text, "pack.yaml", [f"tracking.dir={tmp_path / 'seq'}"]), quiet=True,
                          log=lambda _: None)
    built, real = [], MetricSet._build_metrics
    monkeypatch.setattr(MetricSet, "_build_metrics", lambda self: built.append(self) or real(self))
    packed = run_grid(loads_spec(text, "pack.yaml", [f"tracking.dir={tmp_path / 'vmap'}"]), quiet=True,
                      log=lambda _: None, executor=VmapExecutor())
    assert built == []
    assert_same_runs(sequential, packed)
    row = next(iter(packed.outcomes.values())).rows[-1]
    expected = {"binary": ["val_accuracy", "val_auroc", "val_f1"], "regression": ["val_rmse", "val_mae", "val_r2", "val_mape"],
                "multilabel": ["val_f1", "val_accuracy", "val_f1_label3"], "multiclass_f1": ["val_accuracy", "val_f1", "val_precision"]}[task]
    assert set(expected) <= set(row), row


def test_adam_and_adamw_runs_stopping_early_at_different_epochs(tmp_path):
    text = _spec(optimizer="{name: adamw, lr: 0.02, weight_decay: 0.05}", epochs=12,
                 grid="  seed: [1, 2, 3, 4]\n  train.optimizer.name: [adam, adamw]\n",
                 train="  early_stopping: {monitor: val_loss, patience: 1, min_delta: 0.002}\n")
    sequential, packed, lines = _both(tmp_path, text)
    assert sum(line.startswith("packing 4 runs") for line in lines) == 2, lines  # one pack per optimizer
    assert_same_runs(sequential, packed)
    epochs = {len(o.rows) for o in packed.outcomes.values()}
    assert len(epochs) > 1 and max(epochs) < 12, epochs  # stopped early, not all at once
    # Once half a pack had stopped, the rest were packed anew from their checkpoints.
    assert any(line.endswith("still train: packing them anew") for line in lines), lines
    for name, run_dir in packed.run_dirs.items():
        assert [step for step, _ in _scalars(run_dir)["loss/train"]] == list(range(1, len(packed.outcomes[name].rows) + 1))


def test_a_run_whose_loss_becomes_nan_fails_alone_and_the_others_finish(tmp_path):
    text = _spec(optimizer="{name: sgd, lr: 0.05}", grid="  train.optimizer.lr: [0.05, 1.0e+30, 0.1]\n")
    sequential, packed, _ = _both(tmp_path, text)
    statuses = {name: o.status for name, o in packed.outcomes.items()}
    assert sorted(statuses.values()) == ["failed", "finished", "finished"], statuses
    assert_same_runs(sequential, packed)
    failed = next(o for o in packed.outcomes.values() if o.status == "failed")
    assert "the training loss became nan" in failed.reason


def test_dropout_runs_draw_their_own_masks_as_alone(tmp_path):
    text = _spec(optimizer="{name: adam, lr: 0.01}", extra="  - dropout: {p: 0.3}\n",
                 grid="  seed: [1, 2, 3]\n  train.optimizer.lr: [0.01, 0.003]\n")
    sequential, packed, lines = _both(tmp_path, text)
    assert any(line.startswith("packing 6 runs") for line in lines), lines
    assert_same_runs(sequential, packed)


@pytest.mark.parametrize("run_by_run", [False, True])
def test_a_cnn_with_batch_norm_clipping_and_a_one_cycle_schedule(tmp_path, monkeypatch, run_by_run):
    """Stacked under vmap (the test's small batches), and run by run through the network, as a CPU
    pack takes batches of RUN_BY_RUN_ELEMENTS input numbers or more (stacked/model.py)."""
    from modelspec.runner.stacked import model

    if run_by_run:
        monkeypatch.setattr(model, "RUN_BY_RUN_ELEMENTS", 1)
    calls, real = [], model.StackedModel._run_by_run
    monkeypatch.setattr(model.StackedModel, "_run_by_run", lambda self, *a: calls.append(1) or real(self, *a))
    text = (_spec(optimizer="{name: sgd, lr: 0.1, momentum: 0.9, nesterov: true}",
                  grid="  seed: [1, 2]\n  train.grad_clip: [0.5, 5.0]\n",
                  train="  grad_clip: 1.0\n  scheduler: {name: onecycle, cycle_momentum: false}\n")
            .replace("input_shape: [12]", "input_shape: [1, 6, 6]")
            .replace("  - linear: {out_features: 24}\n  - relu\n",
                     "  - conv: {out_channels: 4, kernel_size: 3}\n  - batchnorm\n  - relu\n  - flatten\n"))
    sequential, packed, lines = _both(tmp_path, text)
    assert any(line.startswith("packing 4 runs") for line in lines), lines
    assert_same_runs(sequential, packed)
    rows = next(iter(packed.outcomes.values())).rows
    assert rows[0]["current_lr"] != rows[1]["current_lr"]  # one-cycle moved the rate within the run
    assert bool(calls) == run_by_run


def test_runs_with_different_loss_arguments_share_a_pack_each_with_its_own_loss(tmp_path):
    text = _spec(grid="  seed: [1, 2]\n  train.loss.label_smoothing: [0.0, 0.2]\n",
                 train="  loss: {name: cross_entropy}\n", epochs=2)
    sequential, packed, lines = _both(tmp_path, text)
    assert any(line.startswith("packing 4 runs") for line in lines), lines
    assert_same_runs(sequential, packed)


def test_pack_size_follows_the_memory_estimate(tmp_path, monkeypatch):
    from modelspec.runner import vmap_grid

    per_run = {}
    real = vmap_grid.fitting_runs

    def spy(run, wanted, device):
        per_run["free_for_one"] = 4 * (4 * run.shapes.parameters + 2 * 32 * (24 + 24 + 4)) / vmap_grid.MEMORY_SHARE
        return real(run, wanted, device)

    monkeypatch.setattr(vmap_grid, "fitting_runs", spy)
    monkeypatch.setattr(vmap_grid, "_free_memory", lambda device: int(2.5 * per_run["free_for_one"]))
    text = _spec(grid="  seed: [1, 2, 3, 4, 5]\n", epochs=1)
    lines: list[str] = []
    run_grid(loads_spec(text, "pack.yaml", [f"tracking.dir={tmp_path}"]), quiet=True, log=lines.append,
             executor=VmapExecutor())
    assert [line.split(":")[0] for line in lines if line.startswith("packing")] == ["packing 2 runs"] * 2


def test_runs_with_their_own_data_hold_it_only_while_their_pack_trains(tmp_path, monkeypatch):
    """A grid over the seed with val_split carves each run its own split: above KEEP_BYTES a run's copy is
    let go after grouping and decoded again for its pack, and the numbers are the same."""
    from modelspec.runner import grid as grid_module, vmap_grid

    decoded = []
    real = grid_module.Grid.prepared_data
    monkeypatch.setattr(grid_module.Grid, "prepared_data", lambda self, plan: decoded.append(plan.name) or real(self, plan))
    monkeypatch.setattr(vmap_grid, "KEEP_BYTES", 0)
    sequential, packed, _ = _both(tmp_path, _spec(epochs=2))
    assert_same_runs(sequential, packed)
    assert decoded == ["seed=1", "seed=2", "seed=3"] * 2 + ["seed=2", "seed=3"]  # both grids, then the pack


def test_pack_size_splits_the_grid_into_packs(tmp_path):
    text = _spec(grid="  seed: [1, 2, 3, 4, 5]\n", epochs=2)
    sequential, packed, lines = _both(tmp_path, text, pack_size=2)
    assert [line.split(":")[0] for line in lines if line.startswith("packing")] == ["packing 2 runs"] * 2
    assert "1 run(s) train one at a time: no other run shares its network, data and optimizer kind (seed=5)" in lines
    assert_same_runs(sequential, packed)


def test_what_cannot_be_packed_trains_alone_with_the_reason(tmp_path):
    text = _spec(grid="  seed: [1, 2]\n", train="  amp: bf16\n  device: cpu\n", epochs=1)
    lines: list[str] = []
    result = run_grid(loads_spec(text, "pack.yaml", [f"tracking.dir={tmp_path}"]), quiet=True, log=lines.append,
                      executor=VmapExecutor())
    assert all(o.status == "finished" for o in result.outcomes.values())
    assert "2 run(s) train one at a time: mixed precision (train.amp) is not computed stacked (seed=1, seed=2)" in lines


# --------------------------------------------------------------------------------------------------
# stops and resume: a pack killed, stopped or handed to the other executor continues exactly

KILLED = _spec(grid="  seed: [1, 2, 3]\n  train.optimizer.lr: [0.05]\n", epochs=8, extra="  - dropout: {p: 0.2}\n",
               train="  checkpoint_every: 1\n").replace("size: 360", "size: 3000")


def _cli(args: list[str], cwd: Path):
    from _reliability import finish

    return finish(args, cwd)


def test_a_packs_checkpoints_are_all_written_before_the_first_replaces_its_old_one(tmp_path, monkeypatch):
    """A kill between two runs' checkpoint files would leave the pack's runs at different places, to be
    resumed apart (and so not bit for bit as the pack): each epoch's checkpoints are written to their
    temporaries first, then renamed in a row (fileio.atomic_write_together)."""
    from modelspec import fileio

    events, real_write, real_rename = [], fileio._temporary_with, fileio._rename_over

    def write(path, data, durable):
        if path.name == "checkpoint.pt":
            events.append(("write", path.parent.name))
        return real_write(path, data, durable)

    def rename(tmp, path, sync_folder):
        if path.name == "checkpoint.pt":
            events.append(("rename", path.parent.name))
        return real_rename(tmp, path, sync_folder)

    monkeypatch.setattr(fileio, "_temporary_with", write)
    monkeypatch.setattr(fileio, "_rename_over", rename)
    text = _spec(grid="  seed: [1, 2, 3]\n", epochs=2, train="  checkpoint_every: 1\n")
    run_grid(loads_spec(text, "pack.yaml", [f"tracking.dir={tmp_path}"]), quiet=True, log=lambda _: None,
             executor=VmapExecutor())
    runs = sorted({name for _, name in events})
    assert len(runs) == 3
    commits = [events[i:i + 6] for i in range(0, len(events), 6)]
    assert len(commits) == 2 and len(events) == 12  # one checkpoint of each run after each epoch
    for commit in commits:
        assert [kind for kind, _ in commit] == ["write"] * 3 + ["rename"] * 3, commit
        assert sorted(name for _, name in commit[:3]) == runs == sorted(name for _, name in commit[3:])


@pytest.fixture(scope="module")
def left_alone(tmp_path_factory):
    """The KILLED grid trained as a pack from start to end: (rows, weights)."""
    from _reliability import grid_folder, outcome

    here = tmp_path_factory.mktemp("left_alone")
    (here / "pack.yaml").write_text(KILLED)
    done = _cli(["run", "pack.yaml", "-q", "--executor", "vmap"], here)
    assert done.returncode == 0, done.stderr
    return outcome(grid_folder(here / "runs", "pack"))


@pytest.mark.slow  # a child process trains the grid twice over
def test_a_pack_killed_mid_grid_resumes_to_what_it_computes_left_alone(tmp_path, left_alone):
    import signal
    import time

    from _reliability import child, grid_folder, outcome, same

    (tmp_path / "pack.yaml").write_text(KILLED)
    process = child(["run", "pack.yaml", "-q", "--executor", "vmap", "--set", "tracking.dir=killed"], tmp_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((tmp_path / "killed").glob("pack/*/*/checkpoint.pt"))) < 3:
        time.sleep(0.05)
    time.sleep(0.3)  # somewhere in the epochs after the first checkpoint
    process.send_signal(signal.SIGKILL)
    process.communicate()
    folder = grid_folder(tmp_path / "killed", "pack")
    assert not list(folder.glob("*/run.json")), "the grid finished before the kill: the test tested nothing"
    resumed = _cli(["resume", str(folder), "-q"], tmp_path)  # grid.json says vmap: the resume packs too
    assert resumed.returncode == 0, resumed.stderr
    assert same(outcome(folder), left_alone)  # bit for bit


# The CLI in a child process that dies (as kill -9 makes it) between the 2nd and 3rd runs' checkpoint
# renames of the pack's third epoch.
KILLED_IN_THE_RENAMES = """
import os, sys
from modelspec import fileio
from modelspec.cli.main import main
renames, real = [0], fileio._rename_over
def rename(tmp, path, sync_folder):
    renames[0] += path.name == "checkpoint.pt"
    if renames[0] == 3 * 2 + 3:
        os._exit(137)
    real(tmp, path, sync_folder)
fileio._rename_over = rename
sys.argv = ["modelspec"] + sys.argv[1:]
main()
"""


@pytest.mark.slow  # a child process trains the grid twice over
def test_a_pack_killed_within_its_checkpoint_renames_resumes_to_what_it_computes_left_alone(tmp_path, left_alone):
    """Killed with two runs' new checkpoints in place and the third's not: the resume completes the
    commit from its journal, so the three resume together, as one pack, and end bit for bit as the
    pack left alone (resumed at two places, they would pack apart and differ by rounding)."""
    from _reliability import REPO, grid_folder, outcome, same

    (tmp_path / "pack.yaml").write_text(KILLED)
    killed = subprocess.run([sys.executable, "-c", KILLED_IN_THE_RENAMES, "run", "pack.yaml", "-q", "--executor",
                             "vmap"], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO), "MODELSPEC_CACHE": str(tmp_path / "cache")})
    assert killed.returncode == 137, killed.stderr
    folder = grid_folder(tmp_path / "runs", "pack")
    epochs = sorted(torch.load(p, weights_only=True)["epoch"] for p in folder.glob("*/checkpoint.pt"))
    assert len(epochs) == 3 and epochs[0] + 1 == epochs[1] == epochs[2], \
        f"the kill did not fall between the renames ({epochs}): the test tested nothing"
    resumed = _cli(["resume", str(folder)], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "completed 1 checkpoint(s) that a kill left half-committed" in resumed.stdout + resumed.stderr
    assert same(outcome(folder), left_alone)  # bit for bit


def test_ctrl_c_in_a_pack_checkpoints_every_run_and_the_sequential_executor_finishes_them(tmp_path, monkeypatch):
    """Stopped mid-epoch, each run's checkpoint is a plain run's: resumed one after another, the runs
    end as the pack would have ended them (to rounding)."""
    from modelspec.runner.stacked import pack

    text = _spec(grid="  seed: [1, 2]\n", epochs=3)
    packed = run_grid(loads_spec(text, "pack.yaml", [f"tracking.dir={tmp_path / 'whole'}"]), quiet=True,
                      log=lambda _: None, executor=VmapExecutor())
    real_init = pack.Pack.__init__

    def init(self, *args, stop_requested, **kwargs):  # Ctrl-C during the 12th batch
        calls = [0]

        def requested():
            calls[0] += 1
            return calls[0] >= 12

        real_init(self, *args, stop_requested=requested, **kwargs)

    monkeypatch.setattr(pack.Pack, "__init__", init)
    loaded = loads_spec(text, "pack.yaml", [f"tracking.dir={tmp_path / 'stopped'}"])
    stopped = run_grid(loaded, quiet=True, log=lambda _: None, executor=VmapExecutor())
    assert stopped.interrupted and {o.status for o in stopped.outcomes.values()} == {"stopped"}
    for run_dir in stopped.run_dirs.values():
        checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)
        assert (checkpoint["epoch"], checkpoint["batch"]) == (2, 3)  # 9 batches an epoch: stopped after the 12th
    monkeypatch.setattr(pack.Pack, "__init__", real_init)
    resumed = run_grid(loaded, resume_folder=stopped.folder, quiet=True, log=lambda _: None)  # sequential
    assert_same_runs(packed, resumed)


# --------------------------------------------------------------------------------------------------
# the command line


@pytest.mark.parametrize("args, message", [
    (["--pack-size", "4"], "--pack-size goes with --executor vmap"),
    (["--executor", "ray", "--pack-size", "4"], "--pack-size goes with --executor vmap"),
    (["--executor", "vmap", "--address", "auto"], "--address goes with --executor ray"),
    (["--executor", "vmap", "--nproc", "2"], "--executor vmap trains runs its own way; it does not go with torchrun"),
    (["--executor", "vmap", "--pack-size", "0"], "--pack-size"),
])
def test_options_that_do_not_go_with_the_executor_are_usage_errors(tmp_path, monkeypatch, args, message):
    from typer.testing import CliRunner

    from modelspec.cli.main import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "pack.yaml").write_text(_spec(epochs=1))
    result = CliRunner().invoke(app, ["run", "pack.yaml", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "runs").exists()


def test_the_command_line_packs_and_says_so(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from modelspec.cli.main import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "pack.yaml").write_text(_spec(epochs=1))
    result = CliRunner().invoke(app, ["run", "pack.yaml", "--executor", "vmap", "--pack-size", "2"])
    assert result.exit_code == 0, result.output
    assert "packing 2 runs" in result.output and "train one at a time" in result.output  # the third: alone
    (folder,) = (tmp_path / "runs" / "pack").iterdir()
    assert json.loads((folder / "grid.json").read_text())["executor"] == {"kind": "vmap", "pack_size": 2}


def test_the_python_api_takes_the_executor_by_name(tmp_path):
    import modelspec

    loaded = modelspec.loads_spec(_spec(epochs=1), set=[f"tracking.dir={tmp_path}"])
    lines: list[str] = []
    result = modelspec.run_grid(loaded, executor="vmap", pack_size=3, log=lines.append)
    assert any(line.startswith("packing 3 runs") for line in lines)
    assert {o.status for o in result.outcomes.values()} == {"finished"}
    with pytest.raises(modelspec.SpecError, match="--pack-size goes with --executor vmap"):
        modelspec.run_grid(loaded, pack_size=3)


def test_each_packed_run_exports_after_training_and_predicts_as_its_weights_say(tmp_path):
    """`export.after_run`: every run of a pack writes its own verified export, of its own weights."""
    from typer.testing import CliRunner

    from modelspec.cli.main import app
    from modelspec.artifacts import load_trained
    from modelspec.export.pipeline import export_after_run

    text = _spec(grid="  seed: [1, 2]\n", epochs=1) + "export: {formats: [torchscript], after_run: true}\n"
    result = run_grid(loads_spec(text, "pack.yaml", [f"tracking.dir={tmp_path}"]), quiet=True, log=lambda _: None,
                      executor=VmapExecutor(), exporter=export_after_run)
    assert not result.export_failed
    x = torch.randn(5, 12)
    outputs = []
    for run_dir in result.run_dirs.values():
        assert json.loads((run_dir / "run.json").read_text())["export"] == "ok"
        (scripted,) = (run_dir / "export").glob("*.pt")
        outputs.append(torch.jit.load(str(scripted))(x))
        with torch.no_grad():
            torch.testing.assert_close(outputs[-1], load_trained(run_dir).model(x))  # the run's own weights
        evaluated = CliRunner().invoke(app, ["evaluate", str(run_dir)])
        assert evaluated.exit_code == 0, evaluated.output
    assert not torch.allclose(outputs[0], outputs[1])  # each run's own network, not one of them twice
