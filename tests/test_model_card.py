"""MODEL_CARD.md: written with every export (the CLI's and the one after a run), facts only.

A tiny synthetic run is trained through the CLI, exported through the CLI, and its card checked
against the files it describes: the parameter count `modelspec summary` prints, the run's metrics,
export_report.json's figures, and SHA-256 hashes recomputed here with hashlib.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from _specs import SYNTHETIC, write_spec
from modelspec.cli.main import app
from modelspec.export.card import CARD_FILE, folder_digest

runner = CliRunner()

TINY = SYNTHETIC.replace("epochs: 3", "epochs: 2") + "export:\n  formats: [torch_export]\n"
REGRESSION = """\
name: reg
seed: 3
data:
  dataset: synthetic
  input_shape: [6]
  target_kind: real
  num_targets: 2
  size: 400
  test_size: 100
  batch_size: 50
  val_split: 0.2
  transforms: []
model:
  - linear: {out_features: 16}
  - relu
  - linear: {out_features: 2}
train:
  epochs: 2
  optimizer: {name: adam, lr: 0.01}
  loss: mse
  metrics: [rmse, mae]
  monitor: val_rmse
export:
  formats: [torch_export]
  after_run: true
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train(folder: Path, text: str, *overrides: str) -> Path:
    """Run the spec in `folder` through the CLI; the one run's folder."""
    spec = write_spec(folder, text)
    sets = [arg for item in overrides for arg in ("--set", item)]
    result = runner.invoke(app, ["run", str(spec), "-q", "--set", f"tracking.dir={folder / 'runs'}", *sets])
    assert result.exit_code == 0, result.output
    (run_dir,) = sorted((folder / "runs").glob("*/*/0*_*"))
    return run_dir


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    """(run folder, export folder) of a tiny classification run over a two-value grid, run 00's
    export made by `modelspec export`."""
    folder = tmp_path_factory.mktemp("card")
    write_spec(folder, TINY)
    spec = folder / "spec.yaml"
    result = runner.invoke(app, ["run", str(spec), "-q", "--set", f"tracking.dir={folder / 'runs'}",
                                 "--set", "grid={train.optimizer.lr: [0.01, 0.02]}"])
    assert result.exit_code == 0, result.output
    run_dir = sorted((folder / "runs").glob("*/*/00_*"))[0]
    result = runner.invoke(app, ["export", str(run_dir)])
    assert result.exit_code == 0, result.output
    return run_dir, run_dir / "export"


def card_of(export_dir: Path) -> str:
    path = export_dir / CARD_FILE
    assert path.is_file(), sorted(p.name for p in export_dir.iterdir())
    return path.read_text(encoding="utf-8")


def test_card_holds_the_summary_parameter_count(exported, tmp_path):
    run_dir, export_dir = exported
    card = card_of(export_dir)
    spec = write_spec(tmp_path, TINY)
    summary = runner.invoke(app, ["summary", str(spec)])
    assert summary.exit_code == 0, summary.output
    total = re.search(r"total\s*│[^│]*│\s*([\d,]+)", summary.output).group(1)
    assert f"- parameters: {total}\n" in card
    assert f"|  | total | 5 | {total} |" in card


def test_card_holds_the_run_metrics(exported):
    run_dir, export_dir = exported
    card = card_of(export_dir)
    state = json.loads((run_dir / "run.json").read_text())
    rows = state["rows"]
    best = max(rows, key=lambda r: r["val_accuracy"])
    final = rows[-1]
    for key in ("val_loss", "val_accuracy", "test_loss", "test_accuracy"):
        line = next(line for line in card.splitlines() if line.startswith(f"| `{key}` |"))
        assert line == f"| `{key}` | {best[key]:.6g} | {final[key]:.6g} |"
    assert f"- epochs trained: {len(rows)} of 2" in card
    assert "- seed: 7" in card
    assert '- optimizer: `{"name": "adam", "lr": 0.01}`' in card
    assert "- grid values: `train.optimizer.lr` = `0.01`" in card  # from the grid's results.json


def test_card_holds_the_confusion_matrix(exported):
    run_dir, export_dir = exported
    card = card_of(export_dir)
    lines = (run_dir / "confusion_matrix.csv").read_text().splitlines()
    names = lines[0].split(",")[1:]
    total = 0
    for line in lines[1:]:
        name, *counts = line.split(",")
        total += sum(map(int, counts))
        assert f"| **{name}** | " + " | ".join(counts) + " |" in card
    assert "| true \\ predicted | " + " | ".join(names) + " |" in card
    assert f"val split, {total:,} samples" in card


def test_card_holds_the_export_report_figures(exported):
    _, export_dir = exported
    card = card_of(export_dir)
    report = json.loads((export_dir / "export_report.json").read_text())
    assert f"atol {report['tolerance']['atol']:g}, rtol {report['tolerance']['rtol']:g}" in card
    for name, fmt in report["formats"].items():
        for check in fmt["checks"]:
            assert (f"| {name} | {fmt['file']} | {fmt['method']} | {check['case']} | {check['input_shape']} | "
                    f"{check['max_abs_error']:.3e} | ok |") in card
    assert "Verdict: every check passed." in card


def test_card_hashes_equal_hashlib(exported):
    run_dir, export_dir = exported
    card = card_of(export_dir)
    report = json.loads((export_dir / "export_report.json").read_text())
    files = [fmt["file"] for fmt in report["formats"].values()] + ["preprocessing.json", "export_report.json"]
    for name in files:
        assert f"| exported file | `{name}` | `{sha256(export_dir / name)}` |" in card
    grid = run_dir.parent
    assert f"`{sha256(grid / 'spec.yaml')}`" in card  # the stored spec
    assert f"`{sha256(run_dir / 'weights.pt')}`" in card


def test_folder_digest_is_over_names_and_sizes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"123")
    (tmp_path / "b.txt").write_bytes(b"hello")
    listing = "a/x.png\t3\nb.txt\t5\n"
    assert folder_digest(tmp_path) == (2, hashlib.sha256(listing.encode()).hexdigest())


def test_bare_weights_export_says_unknown(exported, tmp_path):
    """A weights file exported with its spec, away from its run: what the files do not hold is unknown."""
    run_dir, _ = exported
    spec = write_spec(tmp_path, TINY)
    weights = tmp_path / "w" / "model_weights.pt"
    weights.parent.mkdir()
    weights.write_bytes((run_dir / "weights.pt").read_bytes())
    result = runner.invoke(app, ["export", str(spec), "--weights", str(weights), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    card = card_of(tmp_path / "out")
    assert "- epochs trained: unknown" in card and "Validation and test metrics: unknown" in card
    assert f"| exported file | `model.pt2` | `{sha256(tmp_path / 'out' / 'model.pt2')}` |" in card


def test_export_after_run_writes_a_regression_card(tmp_path):
    run_dir = train(tmp_path, REGRESSION)
    card = card_of(run_dir / "export")
    assert "### Regression errors (final model, val split" in card
    assert re.search(r"\| y0 \| [\d.e-]+ \| [\d.e-]+ \| [\d.e-]+ \|", card)
    rows = json.loads((run_dir / "run.json").read_text())["rows"]
    final = rows[-1]
    assert f"| `val_rmse` | {min(r['val_rmse'] for r in rows):.6g} | {final['val_rmse']:.6g} |" in card
    assert "Monitor `val_rmse` (lower is better)" in card
    assert f"`{sha256(run_dir / 'export' / 'model.pt2')}`" in card


def test_export_after_run_writes_a_classification_card(tmp_path):
    run_dir = train(tmp_path, TINY, "export.after_run=true", "grid={train.optimizer.lr: [0.01]}")
    card = card_of(run_dir / "export")
    assert "### Confusion matrix (final model, val split" in card
    assert "- grid values: `train.optimizer.lr` = `0.01`" in card  # given by the runner's plan
    assert f"`{sha256(run_dir / 'export' / 'model.pt2')}`" in card
