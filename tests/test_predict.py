"""`modelspec predict` and `modelspec evaluate` on a run trained here: predictions equal the model on
the run's own prepared data, both engines agree, bad inputs are reported one by one, and evaluate
reproduces what the run recorded."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from modelspec.artifacts import load_trained
from modelspec.cli.main import app
from modelspec.data import prepare_data
from modelspec.load import loads_spec
from modelspec.runner import run_grid

runner = CliRunner()
COLOURS = {"red": (200, 30, 40), "green": (30, 190, 60), "blue": (40, 50, 210)}


def _images(root: Path) -> None:
    """Three colour classes of small RGB images, of mixed sizes, with noise."""
    generator = torch.Generator().manual_seed(0)
    for split, count in (("train", 10), ("test", 5)):
        for label, colour in COLOURS.items():
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                noise = torch.randint(-40, 40, (3,), generator=generator).tolist()
                pixel = tuple(max(0, min(255, c + n)) for c, n in zip(colour, noise))
                Image.new("RGB", (12 + i % 4, 12), pixel).save(folder / f"{i}.png")


SPEC = """\
name: colours
seed: 1
data:
  dataset: image_folder
  root: {root}
  transforms: [to_tensor, {{resize: {{size: [8, 8]}}}}, {{normalize: {{mean: auto, std: auto}}}}]
  batch_size: 6
model: [flatten, {{linear: {{out_features: 16}}}}, relu, {{linear: {{out_features: num_classes}}}}]
train: {{epochs: 3, optimizer: {{name: adam, lr: 0.05}}}}
export: {{formats: [torchscript, onnx]}}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished run of the colour classifier, and its spec."""
    root = tmp_path_factory.mktemp("colours")
    _images(root / "images")
    import os

    os.environ["MODELSPEC_CACHE"] = str(root / "cache")
    loaded = loads_spec(SPEC.format(root=root / "images"), "colours.yaml", [f"tracking.dir={root / 'runs'}"])
    result = run_grid(loaded, quiet=True, log=lambda _: None)
    assert not result.failed
    return root, result.folder / "00_run", result.outcomes["run"]


def test_predict_gives_the_model_on_the_runs_own_preprocessing(trained):
    root, run_dir, _ = trained
    result = runner.invoke(app, ["predict", str(run_dir), str(root / "images" / "test"), "--out", str(root / "p.csv")])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(root / "p.csv")))
    assert len(rows) == 15 and set(rows[0]) >= {"input", "class", "probability", "top_k"}
    # The same files through the run's own data path (ImageFolder order), then the model.
    model = load_trained(run_dir)
    prepared = prepare_data(model.spec.data, model.spec.seed, torch.device("cpu"), log=lambda _: None)
    with torch.no_grad():
        probabilities = model.model(prepared.test.x).softmax(1)
    by_file = {Path(r["input"]).relative_to(root / "images" / "test").as_posix(): r for r in rows}
    names = model.info.class_names
    for (path, _), p in zip(sorted(by_file.items()), probabilities):
        assert by_file[path]["class"] == names[int(p.argmax())]
        assert float(by_file[path]["probability"]) == pytest.approx(p.max().item(), abs=1e-6)
    assert sum(Path(r["input"]).parent.name == r["class"] for r in rows) >= 13  # it did learn the colours


def test_one_photo_of_any_size_and_mode(trained, tmp_path):
    root, run_dir, _ = trained
    Image.new("L", (100, 60), 128).save(tmp_path / "grey.jpg")
    Image.new("RGBA", (40, 40), (*COLOURS["red"], 255)).save(tmp_path / "red.png")
    result = runner.invoke(app, ["predict", str(run_dir), str(tmp_path / "grey.jpg"), str(tmp_path / "red.png"),
                                 "--out", str(tmp_path / "p.json")])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "p.json").read_text())
    assert [Path(r["input"]).name for r in rows] == ["grey.jpg", "red.png"]
    assert rows[1]["class"] == "red"


def test_a_bad_input_is_reported_and_the_others_predicted(trained, tmp_path):
    root, run_dir, _ = trained
    (tmp_path / "broken.png").write_bytes(b"not an image")
    Image.new("RGB", (12, 12), COLOURS["blue"]).save(tmp_path / "blue.png")
    result = runner.invoke(app, ["predict", str(run_dir), str(tmp_path / "broken.png"), str(tmp_path / "blue.png")])
    assert result.exit_code == 1
    assert "broken.png: cannot read the image" in result.stderr and "Traceback" not in result.output
    assert "blue" in result.stdout


def test_onnx_and_torch_engines_predict_the_same(trained, tmp_path):
    root, run_dir, _ = trained
    exported = runner.invoke(app, ["export", str(run_dir), "--out", str(tmp_path / "export")])
    assert exported.exit_code == 0, exported.output
    images = str(root / "images" / "test")
    outputs = {}
    for engine, model in (("torch", run_dir), ("onnx", tmp_path / "export"), ("script", tmp_path / "export")):
        out = tmp_path / f"{engine}.json"
        args = ["predict", str(model), images, "--out", str(out)] + (["--engine", engine] if engine == "onnx" else [])
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        outputs[engine] = json.loads(out.read_text())
    for engine in ("onnx", "script"):
        assert [r["class"] for r in outputs[engine]] == [r["class"] for r in outputs["torch"]]
        assert [r["probability"] for r in outputs[engine]] == pytest.approx(
            [r["probability"] for r in outputs["torch"]], abs=1e-5)


def test_evaluate_reproduces_the_runs_last_test_epoch(trained, tmp_path):
    root, run_dir, outcome = trained
    result = runner.invoke(app, ["evaluate", str(run_dir), "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    evaluation = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    last = outcome.rows[-1]
    assert evaluation["metrics"]["accuracy"] == last["test_accuracy"]
    assert evaluation["metrics"]["loss"] == last["test_loss"]
    counts = evaluation["confusion_matrix"]
    assert sum(map(sum, counts)) == evaluation["samples"] == 15
    per_class = {row["class"]: row for row in evaluation["per_class"]}
    i = evaluation["class_names"].index("red")
    assert per_class["red"]["support"] == sum(counts[i])
    assert per_class["red"]["recall"] == pytest.approx(counts[i][i] / sum(counts[i]))
    assert (tmp_path / "eval" / "confusion_matrix.png").is_file()
    assert "per class" in result.stdout and "red" in result.stdout


def test_evaluate_on_new_labelled_images(trained, tmp_path):
    root, run_dir, _ = trained
    for label in ("red", "blue"):  # a subset of the classes is fine
        (tmp_path / "new" / label).mkdir(parents=True)
        Image.new("RGB", (20, 20), COLOURS[label]).save(tmp_path / "new" / label / "x.png")
    result = runner.invoke(app, ["evaluate", str(run_dir), "--data", str(tmp_path / "new"), "--out", str(tmp_path / "e")])
    assert result.exit_code == 0, result.output
    evaluation = json.loads((tmp_path / "e" / "evaluation.json").read_text())
    assert evaluation["samples"] == 2 and evaluation["metrics"]["accuracy"] == 1.0
    (tmp_path / "odd" / "purple").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "odd" / "purple" / "x.png")
    refused = runner.invoke(app, ["evaluate", str(run_dir), "--data", str(tmp_path / "odd")])
    assert refused.exit_code == 2 and "classes the model was not trained on: purple" in refused.stderr


@pytest.mark.parametrize("args, message", [
    (["predict", "nowhere", "x.png"], "no such run folder"),
    (["evaluate", "nowhere"], "no such run folder"),
])
def test_user_errors_are_one_message_and_exit_2(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output


def test_an_export_folder_without_preprocessing_is_refused(trained, tmp_path):
    _, run_dir, _ = trained
    (tmp_path / "export").mkdir()
    result = runner.invoke(app, ["predict", str(tmp_path / "export"), "x.png"])
    assert result.exit_code == 2 and "preprocessing.json" in result.stderr
