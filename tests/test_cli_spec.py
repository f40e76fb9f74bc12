"""The spec commands as a user runs them: validate, summary, schema and --set, through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from _specs import example_specs
from modelspec.cli.main import app
from modelspec.spec.yaml_source import load_yaml

REPO = Path(__file__).resolve().parents[1]


def run(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def bad_spec(tmp_path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text("name: t\ndata: {dataset: fashion_mnist}\nmodel:\n  - flatten\n  - linear: {out_feature: 10}\n")
    return path


def test_validate_accepts_fashion_bn(fashion_spec):
    result = run("validate", str(fashion_spec))
    assert result.exit_code == 0, result.output
    assert "valid — 8 run(s), network(s): no_batch_norm, batch_norm" in result.stdout


def test_validate_refuses_a_bad_spec_with_exit_2_and_the_located_message(bad_spec):
    result = run("validate", str(bad_spec))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"{bad_spec}:5:27 model[1].linear.out_feature: unknown key 'out_feature'" in result.stderr
    assert "did you mean 'out_features'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_reports_a_missing_file_without_a_traceback(tmp_path):
    result = run("validate", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {tmp_path / 'missing.yaml'}: no such spec file")


def test_summary_prints_a_table_per_network(fashion_spec):
    result = run("summary", str(fashion_spec))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "no_batch_norm  (input 1×28×28)" in out and "batch_norm  (input 1×28×28)" in out
    assert "12×4×4" in out and "max pool k=2" in out
    assert "32,998" in out and "33,250" in out  # the totals of the two networks


def test_summary_refuses_a_bad_spec(bad_spec):
    result = run("summary", str(bad_spec))
    assert result.exit_code == 2
    assert "unknown key 'out_feature'" in result.stderr


def test_set_overrides_a_value(fashion_spec):
    result = run("summary", str(fashion_spec), "--set", "networks.batch_norm[8].linear.out_features=100")
    assert result.exit_code == 0, result.output
    assert "linear 100" in result.stdout


def test_set_replaces_and_adds_grid_axes(fashion_spec):
    # 2 networks × 2 batch sizes with the lr axis cut to one value; then a new axis on top.
    assert "valid — 4 run(s)" in run("validate", str(fashion_spec), "--set", "grid.train.optimizer.lr=[0.1]").stdout
    result = run("validate", str(fashion_spec), "--set", "grid.seed=[1, 2, 3]", "--set", "train.epochs=2")
    assert "valid — 24 run(s)" in result.stdout


def test_a_bad_set_value_is_located_at_the_option(fashion_spec):
    result = run("validate", str(fashion_spec), "--set", "train.epochs=zero")
    assert result.exit_code == 2
    assert "error: --set train.epochs=zero train.epochs: must be a valid integer; received 'zero'" in result.stderr


def test_a_set_value_of_the_wrong_type_in_a_grid_is_located_at_the_option(fashion_spec):
    result = run("validate", str(fashion_spec), "--set", "grid.train.optimizer.lr=[fast]")
    assert result.exit_code == 2
    assert "--set grid.train.optimizer.lr=[fast] grid.train.optimizer.lr[0]" in result.stderr


@pytest.fixture(scope="module")
def schema() -> dict:
    result = run("schema")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    jsonschema.validators.validator_for(document).check_schema(document)
    return document


@pytest.mark.parametrize("path", example_specs())
def test_schema_accepts_every_example_spec(schema, path):
    raw, _ = load_yaml(path.read_text())
    jsonschema.validate(raw, schema)


@pytest.mark.parametrize(
    "raw",
    [
        {"name": "t", "data": {"dataset": "mnist"}, "model": ["flatten"], "modle": []},  # unknown key
        {"name": "t", "data": {"dataset": "mnst"}, "model": ["flatten"]},  # unknown data set
        {"name": "t", "data": {"dataset": "mnist"}, "model": [{"conv": {"out_channels": "six"}}]},
    ],
)
def test_schema_refuses_what_validate_refuses(schema, raw):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(raw, schema)


def test_python_m_modelspec_validates(fashion_spec):
    result = subprocess.run(
        [sys.executable, "-m", "modelspec", "validate", str(fashion_spec)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "valid — 8 run(s)" in result.stdout
