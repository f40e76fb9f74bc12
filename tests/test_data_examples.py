"""The notes' examples as specs: each one's data section prepares on small files in the real formats,
each trains and exports through `modelspec run` (those needing binary/regression losses once the tasks
issue lands), and the exported preprocessing, applied without modelspec, reproduces the eager model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from _data_files import cifar10_batches, daily_counts_csv, png_folders, review_folders, titanic_csv
from _specs import NEEDS_TASKS, loss_accepted, spec_loss
from modelspec.artifacts import load_trained
from modelspec.cli.main import app
from modelspec.data import prepare_data
from modelspec.load import load_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"


@pytest.fixture
def files(tmp_path, monkeypatch) -> Path:
    """Every example's data under tmp_path/data, in the layout its spec names."""
    import torchvision

    monkeypatch.setenv("MODELSPEC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    data = tmp_path / "data"
    titanic_csv(data / "titanic" / "train.csv")
    for split, seed in (("train", 0), ("test", 1)):
        png_folders(data / "cifar2" / split, ["airplane", "automobile"], size=32, seed=seed)
        review_folders(data / "aclImdb" / split, seed=seed)
    daily_counts_csv(data / "covid" / "daily.csv")
    cifar10_batches(data)
    monkeypatch.chdir(tmp_path)  # the specs' paths are relative: data/...
    return data


EXPECTED = {  # spec -> (input shape, outputs, y dtype, y shape per sample)
    "titanic.yaml": ((15,), 1, torch.float32, ()),
    "cifar2.yaml": ((3, 32, 32), 1, torch.float32, ()),
    "imdb_lstm.yaml": ((200,), 2, torch.int64, ()),
    "covid_lstm.yaml": ((8, 3), None, torch.float32, (6,)),  # 3 changes, then the 3 levels they start from
    "cifar10_cnn.yaml": ((3, 32, 32), 10, torch.int64, ()),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_example_data_sections_prepare(files, name):
    data = _data_section(SPECS / name)
    prepared = prepare_data(data, 0, torch.device("cpu"), log=lambda _: None)
    shape, outputs, dtype, per_sample = EXPECTED[name]
    assert prepared.input_shape == shape and prepared.num_classes == outputs
    assert prepared.train.y.dtype == dtype and tuple(prepared.train.y.shape[1:]) == per_sample
    json.dumps(prepared.preprocessing)  # plain JSON data


def _data_section(path: Path):
    """The spec's data section, validated alone (the whole spec may need losses not here yet)."""
    import yaml
    from pydantic import TypeAdapter

    from modelspec.spec.data import DataSpec

    raw = yaml.safe_load(path.read_text())["data"]
    raw.pop("download", None)
    return TypeAdapter(DataSpec).validate_python(raw)


def run_example(name: str, *overrides: str) -> Path:
    """`modelspec run` one epoch with the export after it; the run folder."""
    sets = [arg for o in ("train.epochs=1", "tracking.dir=runs", "export.after_run=true", "grid={}", *overrides)
            for arg in ("--set", o)]
    result = CliRunner().invoke(app, ["run", str(SPECS / name), "--quiet", *sets])
    assert result.exit_code == 0, result.output
    (weights,) = Path("runs").glob("*/*/*/weights.pt")
    return weights.parent


@pytest.mark.slow
@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.skipif(not loss_accepted(spec_loss(SPECS / n)), reason=NEEDS_TASKS))
    for n in sorted(EXPECTED)
])
def test_every_example_trains_and_exports(files, name):
    overrides = ["data.download=false"] if name == "cifar10_cnn.yaml" else []
    run = run_example(name, *overrides, "export.formats=[onnx]")
    report = json.loads((run / "export" / "export_report.json").read_text())
    assert report["passed"] and list(report["formats"]) == ["onnx"], report
    stored = json.loads((run / "export" / "preprocessing.json").read_text())
    assert stored["data"]["dataset"] == load_spec(SPECS / name).spec.data.dataset


# --------------------------------------------------------------------------------------------------
# round trips: preprocessing.json (+ tokenizer.json) applied without modelspec, then onnxruntime, as
# docs/export.md ("Using a trained model on raw data") shows it


def readme_block(marker: str) -> str:
    """The export guide's Python block that contains `marker`, to run verbatim."""
    import re

    guide = (SPECS.parent / "docs" / "export.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", guide, flags=re.S) if marker in b]
    return block


def run_readme_block(marker: str, export: Path) -> dict:
    """Run it where `exported/` is the export folder; its variables."""
    import shutil

    shutil.copytree(export, "exported", dirs_exist_ok=True)
    namespace: dict = {"print": lambda *a: None}
    exec(compile(readme_block(marker), "docs/export.md", "exec"), namespace)
    return namespace


CLASSES_TABLE = """\
name: classes_table
data:
  dataset: csv
  path: data/titanic/train.csv
  target: Pclass              # class labels 1, 2, 3
  features: [Sex, Age, Fare, Cabin, Embarked]
  columns:
    Age: {numeric: {fill: median, null_column: true, standardize: true}}
    Fare: {numeric: {standardize: true}}
    Cabin: null_indicator
    Embarked: {categorical: {missing_column: true}}
  test_split: 0.25
model:
  - linear: {out_features: 16}
  - relu
  - linear: {out_features: num_classes}
export:
  formats: [onnx]
"""


@pytest.mark.slow
def test_a_table_round_trips_through_preprocessing_json_and_onnx(files, tmp_path):
    import onnxruntime as ort

    (SPECS_TMP := tmp_path / "classes_table.yaml").write_text(CLASSES_TABLE)
    result = CliRunner().invoke(app, ["run", str(SPECS_TMP), "--quiet", "--set", "train.epochs=2",
                                      "--set", "tracking.dir=runs", "--set", "export.after_run=true"])
    assert result.exit_code == 0, result.output
    (run,) = [w.parent for w in Path("runs").glob("*/*/*/weights.pt")]
    preprocessing = json.loads((run / "export" / "preprocessing.json").read_text())
    assert preprocessing["class_names"] == ["1", "2", "3"]
    with open(files / "titanic" / "train.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open("new_passengers.csv", "w", newline="") as handle:  # every row, then one all unseen/missing
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows + [{**rows[0], "Sex": "unknown", "Age": "", "Fare": "", "Cabin": "", "Embarked": "X"}])
    readme = run_readme_block("new_passengers.csv", run / "export")  # the guide's encoder, no modelspec
    x = readme["x"]
    assert x[-1].tolist()[:2] == [0.0, 0.0] and x[-1].tolist()[-1] == 1.0  # unknown sex: no column; Embarked_nan

    trained = load_trained(run)  # weights.pt, read with weights_only=True, holds the same fitted columns
    assert trained.info.preprocessing["columns"] == preprocessing["data"]["columns"]
    assert trained.info.class_names == ["1", "2", "3"] and trained.info.target_names == ["Pclass"]
    prepared = prepare_data(trained.spec.data, trained.spec.seed, torch.device("cpu"), log=lambda _: None)
    from modelspec.readers.sources import carve

    _, held_out = carve(len(rows), 0.25, trained.spec.seed)
    np.testing.assert_allclose(x[held_out.numpy()], prepared.test.x.numpy(), rtol=1e-6, atol=1e-6)
    with torch.no_grad():
        eager = trained.model(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(str(run / "export" / "model.onnx"))
    np.testing.assert_allclose(session.run(["output"], {"input": x})[0], eager, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_text_round_trips_through_tokenizer_json_and_onnx(files):
    import onnxruntime as ort
    from tokenizers import Tokenizer

    run = run_example("imdb_lstm.yaml", "export.formats=[onnx, torchscript]", "data.max_length=40")
    tokenizer = Tokenizer.from_file(str(run / "export" / "tokenizer.json"))
    preprocessing = json.loads((run / "export" / "preprocessing.json").read_text())
    assert preprocessing["data"]["tokenizer"] == "tokenizer.json" and preprocessing["class_names"] == ["neg", "pos"]
    texts = [p.read_text() for label in ("neg", "pos") for p in sorted((files / "aclImdb" / "test" / label).glob("*.txt"))]
    texts.append("Zyzzyva, a word no review has!")
    ids = np.array([e.ids for e in tokenizer.encode_batch(texts)], dtype=np.int64)
    assert ids.shape == (len(texts), 40) and ids[-1, 0] == 0  # the unknown word

    trained = load_trained(run)
    assert trained.info.preprocessing["tokenizer"] == json.loads((run / "export" / "tokenizer.json").read_text())
    prepared = prepare_data(trained.spec.data, trained.spec.seed, torch.device("cpu"), log=lambda _: None)
    assert np.array_equal(ids[:-1], prepared.test.x.numpy())  # the ids modelspec trained and tested on
    with torch.no_grad():
        eager = trained.model(torch.from_numpy(ids)).numpy()
    session = ort.InferenceSession(str(run / "export" / "model.onnx"))
    np.testing.assert_allclose(session.run(["output"], {"input": ids})[0], eager, rtol=1e-4, atol=1e-5)
    assert json.loads(session.get_modelmeta().custom_metadata_map["tokenizer.json"])["model"]["type"] == "WordLevel"
    readme = run_readme_block("tokenizer.json", run / "export")
    with torch.no_grad():
        expected = trained.model(torch.from_numpy(readme["ids"])).argmax(1).tolist()
    assert readme["ids"].shape == (2, 40) and [["neg", "pos"][i] for i in expected] == [
        readme["classes"][i] for i in readme["scores"].argmax(1)]


@pytest.mark.slow
def test_a_grid_tokenises_once(files, monkeypatch):
    from modelspec.readers import text

    fits = []
    real_fit = text.fit_tokenizer
    monkeypatch.setattr(text, "fit_tokenizer", lambda data, texts: fits.append(1) or real_fit(data, texts))
    result = CliRunner().invoke(app, ["run", str(SPECS / "imdb_lstm.yaml"), "--quiet", "--set", "train.epochs=1",
                                      "--set", "tracking.dir=runs", "--set", "data.max_length=20",
                                      "--set", "grid={train.optimizer.lr: [0.01, 0.001], data.batch_size: [8, 16]}",
                                      "--set", "export.after_run=true", "--set", "export.formats=[torchscript]"])
    assert result.exit_code == 0, result.output
    assert len(list(Path("runs").glob("*/*/*/export/model.torchscript.pt"))) == 4
    assert len(fits) == 2  # once for training, once for the exports' verification samples: not per run
