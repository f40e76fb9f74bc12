"""The Python API (`import modelspec`): each function gives what its command gives, on a real table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import modelspec
from modelspec.errors import SpecError

SPEC = """\
name: api_table
seed: 0
data:
  dataset: csv
  path: {path}
  test_split: 0.25
  target: label
  features: [a, b, colour]
  columns:
    a: {{numeric: {{standardize: true}}}}
    b: numeric
    colour: categorical
  batch_size: 16
model:
  - linear: {{out_features: 8}}
  - relu
  - linear: {{out_features: num_classes}}
train:
  epochs: 2
  optimizer: {{name: adam, lr: 0.05}}
grid:
  train.optimizer.lr: [0.05, 0.01]
tracking:
  histograms: false
  images: false
  graph: false
export:
  formats: [torchscript]
  after_run: true
"""


def _table(path: Path, rows: int = 80) -> None:
    g = torch.Generator().manual_seed(0)
    lines = ["a,b,colour,label"]
    for _ in range(rows):
        a, b = torch.randn(2, generator=g).tolist()
        colour = ["red", "green", "blue"][int(torch.randint(3, (1,), generator=g))]
        lines.append(f"{a:.4f},{b:.4f},{colour},{'yes' if a + (colour == 'red') > 0.3 else 'no'}")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def spec_file(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    _table(tmp_path / "table.csv")
    spec = tmp_path / "api.yaml"
    spec.write_text(SPEC.format(path="table.csv"))
    return spec


def test_import_modelspec_imports_no_torch():
    """The API is loaded on first use: `import modelspec` alone stays cheap."""
    code = "import sys, modelspec; assert 'torch' not in sys.modules; print(sorted(modelspec.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "'run_grid'" in out and "'predict_files'" in out


def test_load_and_build_give_the_specs_network(spec_file):
    loaded = modelspec.load_spec(spec_file, set=["train.epochs=1"])
    assert loaded.spec.train.epochs == 1
    assert [plan.name for plan in loaded.runs()] == ["lr=0.05", "lr=0.01"]
    model = modelspec.build_model(loaded)
    # 2 numeric + 3 one-hot colours = 5 inputs; 2 classes out
    assert sum(p.numel() for p in model.parameters()) == (5 * 8 + 8) + (8 * 2 + 2)
    assert model(torch.zeros(4, 5)).shape == (4, 2)


def test_a_bad_spec_raises_the_located_error(spec_file):
    with pytest.raises(SpecError) as caught:
        modelspec.load_spec(spec_file, set=["train.epochs=0"])
    assert str(caught.value).startswith("--set train.epochs=0 train.epochs: must be greater than 0")
    text = spec_file.read_text().replace("epochs: 2", "epochs: -1")
    with pytest.raises(SpecError) as caught:
        modelspec.loads_spec(text, file="mine.yaml")
    line = text.splitlines().index("  epochs: -1") + 1
    assert str(caught.value).startswith(f"mine.yaml:{line}:")
    with pytest.raises(SpecError, match="no run named"):
        modelspec.build_model(modelspec.load_spec(spec_file), run="lr=9")


def test_run_export_predict_evaluate_end_to_end(spec_file, tmp_path):
    result = modelspec.run_grid(modelspec.load_spec(spec_file), log=lambda message: None)
    assert not result.failed and set(result.outcomes) == {"lr=0.05", "lr=0.01"}
    assert all(len(outcome.rows) == 2 for outcome in result.outcomes.values())
    run_dir = result.run_dirs["lr=0.05"]
    assert (run_dir / "export" / "export_report.json").exists()

    report = modelspec.export_run(run_dir, tmp_path / "out", formats=["torchscript"])
    assert report.passed and (tmp_path / "out" / "export_report.json").exists()

    new = tmp_path / "new.csv"
    new.write_text("a,b,colour\n1.5,0.0,red\n-2.0,0.1,blue\n")
    rows = modelspec.predict_files(tmp_path / "out", [new])
    from_run = modelspec.predict_files(run_dir, [new])
    assert [r["input"] for r in rows] == [r["input"] for r in from_run] and len(rows) == 2
    assert [r["class"] for r in rows] == [r["class"] for r in from_run]

    evaluation = modelspec.evaluate_run(result.folder, best=True)
    last = result.outcomes[evaluation_run(result)].rows[-1]  # the weights are the last epoch's
    assert evaluation.split == "test" and evaluation.samples == 20
    assert evaluation.metrics["accuracy"] == pytest.approx(last["test_accuracy"])
    assert evaluation.metrics["loss"] == pytest.approx(last["test_loss"], rel=1e-5)


def evaluation_run(result) -> str:
    """The run `best=True` picks: the best val/test monitor of the grid (here, the only monitor)."""
    from modelspec.export.locate import find_weights

    return find_weights(result.folder, best=True).parent.name.split("_", 1)[1]
