"""`--unset PATH` removes a key so that its default applies, on every command that takes --set
(issue 20, item 15); a path that holds nothing is a located error, never a silent no-op."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from _data_files import png_folders
from modelspec.cli.main import app
from modelspec.load import load_spec

runner = CliRunner()

SPEC = """\
name: unset
data:
  dataset: fashion_mnist
  download: true
  transforms: [to_tensor]
model:
  - flatten
  - linear: {out_features: num_classes, bias: false}
train:
  epochs: 1
  scheduler: {name: step, step_size: 1}
"""


@pytest.fixture
def spec(tmp_path) -> Path:
    path = tmp_path / "unset.yaml"
    path.write_text(SPEC)
    return path


def test_unset_removes_a_key_that_another_kind_refuses(spec, tmp_path):
    """Switching fashion_mnist to an image folder leaves `download`, which image_folder refuses."""
    root = png_folders(tmp_path / "images" / "train", ["a", "b"], per_class=1).parent
    switch = ["--set", "data.dataset=image_folder", "--set", f"data.root={root}"]
    refused = runner.invoke(app, ["validate", str(spec), *switch])
    assert refused.exit_code == 2 and "'download' only applies to dataset" in refused.output
    result = runner.invoke(app, ["validate", str(spec), *switch, "--unset", "data.download"])
    assert result.exit_code == 0, result.output


def test_unset_of_a_path_that_holds_nothing_is_located_with_a_suggestion(spec):
    result = runner.invoke(app, ["validate", str(spec), "--unset", "data.downlaod"])
    assert result.exit_code == 2
    assert "--unset data.downlaod data.downlaod: nothing to unset" in result.output
    assert "did you mean 'download'?" in result.output
    result = runner.invoke(app, ["validate", str(spec), "--unset", "model[7]"])
    assert result.exit_code == 2 and "model is a list of 2 item(s)" in result.output


def test_what_an_unset_leaves_wrong_is_located_at_the_unset(spec):
    result = runner.invoke(app, ["validate", str(spec), "--unset", "data.dataset"])
    assert result.exit_code == 2
    assert "--unset data.dataset data.dataset: missing required key 'dataset'" in result.output


def test_unset_comes_before_set_and_edits_layers_and_lists(spec):
    loaded = load_spec(spec, ["train.scheduler.name=cosine", "train.scheduler.T_max=3"], unset=["train.scheduler"])
    assert loaded.raw["train"]["scheduler"] == {"name": "cosine", "T_max": 3}  # step_size is gone
    loaded = load_spec(spec, unset=["model[1].bias", "data.transforms"])
    assert loaded.raw["model"][1] == {"linear": {"out_features": "num_classes"}} and "transforms" not in loaded.raw["data"]
    assert yaml.safe_load(spec.read_text())["data"]["download"] is True  # the file is not touched


@pytest.mark.parametrize("command", [["validate"], ["summary"], ["run", "--list"]])
def test_every_spec_command_takes_unset(spec, command):
    result = runner.invoke(app, [command[0], str(spec), *command[1:], "--unset", "data.download"])
    assert result.exit_code == 0, result.output
    bad = runner.invoke(app, [command[0], str(spec), *command[1:], "--unset", "nope"])
    assert bad.exit_code == 2 and "--unset nope" in bad.output


def test_export_and_resume_take_unset(spec, tmp_path):
    result = runner.invoke(app, ["export", str(spec), "--weights", str(tmp_path / "w.pt"), "--unset", "nope"])
    assert result.exit_code == 2 and "--unset nope" in result.output
    grid = tmp_path / "grid"
    grid.mkdir()
    (grid / "spec.yaml").write_text(SPEC)
    result = runner.invoke(app, ["resume", str(grid), "--unset", "train.epochs"])
    assert result.exit_code == 2 and "--unset train.epochs" in result.output and "cannot change on resume" in result.output
