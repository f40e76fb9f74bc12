"""`modelspec run`: grids, results table, TensorBoard events, feeding paths, failing runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from modelspec.cli.main import app
from modelspec.load import load_spec, loads_spec
from modelspec.runner import run_grid

from _specs import FASHION_ROOT, HAVE_FASHION, NO_FASHION, REPO, SYNTHETIC, write_spec

runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Runs land in tmp_path; normalisation statistics are cached there, not in shared data."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODELSPEC_CACHE", str(tmp_path / "cache"))


def _grid_folder(tmp_path: Path, name: str) -> Path:
    (folder,) = (tmp_path / "runs" / name).iterdir()
    return folder


def _scalar_tags(run_dir: Path) -> dict[str, list[int]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    steps = {tag: [e.step for e in events.Scalars(tag)] for tag in tags["scalars"]}
    steps["_histograms"] = tags["histograms"]
    steps["_images"] = tags["images"]
    steps["_graph"] = tags["graph"]
    return steps


def test_fashion_grid_expands_to_the_expected_runs():
    loaded = load_spec(REPO / "specs" / "fashion_bn.yaml")
    names = [run.name for run in loaded.runs()]
    assert len(names) == 8
    assert names[0] == "network=no_batch_norm,lr=0.01,batch_size=1000"
    assert names[-1] == "network=batch_norm,lr=0.001,batch_size=2000"
    run = loaded.runs()[-1]
    assert run.spec.train.network == "batch_norm"
    assert run.spec.train.optimizer.lr == 0.001 and run.spec.data.batch_size == 2000
    assert run.spec.grid == {}


def test_set_overrides_reach_grid_axes():
    loaded = load_spec(REPO / "specs" / "fashion_bn.yaml", ["grid.data.batch_size=[500]", "grid.train.optimizer.lr=[0.1]"])
    assert [r.name for r in loaded.runs()] == [
        "network=no_batch_norm,lr=0.1,batch_size=500", "network=batch_norm,lr=0.1,batch_size=500"]
    result = runner.invoke(app, ["run", str(REPO / "specs" / "fashion_bn.yaml"), "--list",
                                 "--set", "grid.train.network=[batch_norm]"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"network=batch_norm,lr={lr},batch_size={bs}" for lr in ("0.01", "0.001") for bs in (1000, 2000)]


@pytest.mark.skipif(not HAVE_FASHION, reason=NO_FASHION)
def test_real_fashion_run_learns_and_leaves_results_and_events(tmp_path):
    spec = REPO / "specs" / "fashion_bn.yaml"
    result = runner.invoke(app, [
        "run", str(spec), "--quiet", "--set", f"data.root={FASHION_ROOT}", "--set", "data.download=false",
        "--set", "train.epochs=4", "--set", "data.batch_size=128", "--set", "grid.data.batch_size=[128]",
        "--set", "grid.train.optimizer.lr=[0.01]",
        # at the end of the run: by default (auto) a run of seconds logs none (test_cadence.py)
        "--set", "tracking.histograms={every: 4}", "--set", "tracking.images={every: 4}",
    ])
    assert result.exit_code == 0, result.output
    folder = _grid_folder(tmp_path, "fashion_bn")
    rows = list(csv.DictReader(open(folder / "results.csv")))
    assert len(rows) == 2 * 4  # two networks × four epochs
    assert {"run", "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "epoch_duration",
            "run_duration", "network", "lr", "batch_size"} <= set(rows[0])
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4] * 2
    assert rows[-1]["network"] == "batch_norm" and float(rows[-1]["lr"]) == 0.01
    final = [float(r["val_accuracy"]) for r in rows if r["epoch"] == "4"]
    assert min(final) > 0.5, final  # chance is 0.1
    document = json.loads((folder / "results.json").read_text())
    assert len(document["rows"]) == 8 and len(document["runs"]) == 2
    assert all(run["status"] == "finished" for run in document["runs"])
    run_dir = folder / document["runs"][1]["dir"]
    assert (run_dir / "weights.pt").is_file()
    tags = _scalar_tags(run_dir)
    for tag in ("loss/train", "accuracy/train", "loss/val", "accuracy/val", "loss/test", "accuracy/test"):
        assert tags[tag] == [1, 2, 3, 4], tag
    assert "params/0.weight" in tags["_histograms"] and "grads/0.weight" in tags["_histograms"]
    assert sorted(tags["_images"]) == ["confusion_matrix/test", "confusion_matrix/val", "images/first_batch"]
    assert tags["_graph"]
    assert (run_dir / "confusion_matrix.csv").is_file() and (run_dir / "confusion_matrix.png").is_file()
    # HParams says which value is the best epoch's (by the monitor) and which the last epoch's.
    assert {"hparam/best_val_accuracy", "hparam/final_val_accuracy", "hparam/final_loss"} <= set(tags)
    assert "results (" in result.stdout and "network=batch_norm,lr=0.01,batch_size=128" in result.stdout


def test_device_resident_and_dataloader_paths_give_the_same_losses(tmp_path):
    text = SYNTHETIC + "grid:\n  data.loader: [device, dataloader]\n"
    result = run_grid(loads_spec(text, "syn.yaml"), quiet=True)
    device, loader = result.outcomes["loader=device"], result.outcomes["loader=dataloader"]
    assert device.status == loader.status == "finished"
    for a, b in zip(device.rows, loader.rows):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "test_loss"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-7), key


def test_a_diverging_run_is_marked_failed_and_the_grid_goes_on(tmp_path):
    diverging = SYNTHETIC.replace("epochs: 3", "epochs: 2").replace("name: adam", "name: sgd")
    spec = write_spec(tmp_path, diverging + "grid:\n  train.optimizer.lr: [1.0e+30, 0.01]\n")
    result = runner.invoke(app, ["run", str(spec), "--quiet"])
    assert result.exit_code == 1
    assert "1 run(s) failed: lr=1e+30" in result.stderr
    document = json.loads((_grid_folder(tmp_path, "syn") / "results.json").read_text())
    status = {run["run"]: (run["status"], run["reason"]) for run in document["runs"]}
    assert status["lr=1e+30"][0] == "failed" and "nan" in status["lr=1e+30"][1]
    assert status["lr=0.01"] == ("finished", None)
    assert "Traceback" not in result.output


def test_fail_fast_stops_at_the_first_failure(tmp_path):
    spec = write_spec(tmp_path, SYNTHETIC + "grid:\n  train.optimizer.lr: [1.0e+38, 0.01]\n")
    result = runner.invoke(app, ["run", str(spec), "--quiet", "--fail-fast"])
    assert result.exit_code == 1
    document = json.loads((_grid_folder(tmp_path, "syn") / "results.json").read_text())
    assert [run["run"] for run in document["runs"]] == ["lr=1e+38"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_missing_gpu_is_a_located_spec_error(tmp_path):
    spec = write_spec(tmp_path, SYNTHETIC.replace("deterministic: true", "deterministic: true\n  device: cuda"))
    result = runner.invoke(app, ["run", str(spec)])
    assert result.exit_code == 2
    assert "spec.yaml:25:11 train.device: device 'cuda' is asked for, but this machine has no CUDA GPU" in result.stderr
    assert "Traceback" not in result.output


def test_missing_data_is_one_clear_message(tmp_path):
    result = runner.invoke(app, ["run", str(REPO / "specs" / "fashion_bn.yaml"), "--set", "data.download=false",
                                 "--set", f"data.root={tmp_path / 'nothing'}"])
    assert result.exit_code == 2
    assert "fashion_mnist is not in" in result.stderr and "data.download: true" in result.stderr
    assert "Traceback" not in result.output


def test_random_transforms_take_the_dataloader_path_and_train(tmp_path):
    """A random rotation before a resize cannot run batched on decoded tensors: per-sample
    augmentation through the DataLoader."""
    from PIL import Image

    for split, count in (("train", 12), ("test", 4)):
        for label in ("cat", "dog"):
            folder = tmp_path / "images" / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                value = 40 if label == "cat" else 210
                Image.new("RGB", (10 + i % 3, 12), (value, value // 2, 255 - value)).save(folder / f"{i}.png")
    text = f"""
name: pets
data:
  dataset: image_folder
  root: {tmp_path / 'images'}
  transforms: [to_tensor, {{random_rotation: {{degrees: 10}}}}, {{resize: {{size: [8, 8]}}}}, {{normalize: {{mean: auto, std: auto}}}}]
  batch_size: 8
model: [flatten, {{linear: {{out_features: num_classes}}}}]
train: {{epochs: 2, optimizer: {{name: sgd, lr: 0.5}}}}
"""
    logs = []
    result = run_grid(loads_spec(text, "pets.yaml"), quiet=True, log=logs.append)
    outcome = result.outcomes["run"]
    assert outcome.status == "finished", outcome.reason
    assert any("DataLoader" in line and "random transforms" in line for line in logs), logs
    assert outcome.rows[-1]["test_accuracy"] == 1.0  # the two colours are trivially separable



def test_out_of_memory_and_unreadable_data_fail_their_run_only(tmp_path, monkeypatch):
    from torch import nn

    import modelspec.runner.loop as loop

    class OutOfMemory(nn.Linear):
        def __init__(self):
            super().__init__(1, 1)

        def forward(self, x):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    real_build = loop.build_from_shapes
    builds = iter([lambda shapes: nn.Sequential(OutOfMemory()), real_build])
    monkeypatch.setattr(loop, "build_from_shapes", lambda shapes: next(builds)(shapes))
    text = SYNTHETIC.replace("epochs: 3", "epochs: 1") + "grid:\n  seed: [1, 2]\n"
    result = run_grid(loads_spec(text, "syn.yaml"), quiet=True)
    assert result.outcomes["seed=1"].status == "failed"
    assert result.outcomes["seed=1"].reason.startswith("out of memory: CUDA out of memory")
    assert result.outcomes["seed=2"].status == "finished"


def test_a_corrupt_image_fails_the_run_with_its_reason(tmp_path):
    from PIL import Image

    for label in ("a", "b"):
        folder = tmp_path / "images" / "train" / label
        folder.mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(folder / "ok.png")
    (tmp_path / "images" / "train" / "b" / "broken.png").write_bytes(b"not a png")
    text = f"""
name: broken
data: {{dataset: image_folder, root: {tmp_path / 'images'}, transforms: [to_tensor]}}
model: [flatten, {{linear: {{out_features: num_classes}}}}]
train: {{epochs: 1}}
"""
    outcome = run_grid(loads_spec(text, "broken.yaml"), quiet=True).outcomes["run"]
    assert outcome.status == "failed" and "cannot identify image file" in outcome.reason, outcome.reason
    assert str(tmp_path / "images" / "train" / "b" / "broken.png") in outcome.reason
