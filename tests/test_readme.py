"""The README and the guides in docs/ are the user's manual: the README's example spec is the real
file, and the commands and code of both work."""

from __future__ import annotations

import re
import shlex

from typer.testing import CliRunner

from modelspec.cli.main import app

from _specs import REPO

README = (REPO / "README.md").read_text()
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, flags=re.S)
# The guides (not the generated reference, whose usage lines are no commands to run).
GUIDES = {path.name: path.read_text() for path in sorted((REPO / "docs").glob("*.md"))}
MANUAL = "\n".join([README, *GUIDES.values()])
ALL_BLOCKS = re.findall(r"```(\w*)\n(.*?)```", MANUAL, flags=re.S)
runner = CliRunner()


def test_the_first_example_is_specs_fashion_bn():
    yaml_blocks = [body for lang, body in BLOCKS if lang == "yaml"]
    assert yaml_blocks[0] == (REPO / "specs" / "fashion_bn.yaml").read_text()


def test_ci_installs_and_tests_as_the_readme_says():
    ci = (REPO / ".ci" / "run").read_text()
    assert 'pip install -e ".[dev]"' in README and 'pip install -e ".[dev]"' in ci
    assert "pytest -q" in README and "pytest -q" in ci


def test_the_manual_commands_that_need_no_data_run(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)
    commands = [line.split("#")[0].split(">")[0].strip() for _, body in ALL_BLOCKS for line in body.splitlines()]
    checked = 0
    for command in commands:
        if not command.startswith("modelspec "):
            continue
        words = shlex.split(command)
        if words[1] not in ("validate", "summary", "schema"):
            continue
        result = runner.invoke(app, words[1:])
        assert result.exit_code == 0, (command, result.output)
        checked += 1
    assert checked >= 5


def test_the_onnxruntime_lines_run_verbatim_on_an_exported_model(monkeypatch, tmp_path):
    """Export an (untrained) fashion_bn network the export guide's way, then run its Python block as is."""
    import pytest

    pytest.importorskip("onnxruntime")
    from modelspec.artifacts import ModelInfo, save_weights
    from modelspec.compile import build_model
    from modelspec.load import load_spec

    spec = load_spec(REPO / "specs" / "fashion_bn.yaml").runs()[-1].spec
    info = ModelInfo([1, 28, 28], "float32", 10, {"mean": [0.28], "std": [0.35]})
    save_weights(tmp_path / "weights.pt", build_model(spec.layers, (1, 28, 28), 10), spec, info)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["export", "weights.pt", "--format", "onnx", "--out", "exported"])
    assert result.exit_code == 0, result.output
    guide = re.findall(r"```(\w*)\n(.*?)```", GUIDES["export.md"], flags=re.S)
    (python,) = [body for lang, body in guide if lang == "python" and "28, 28" in body]
    printed = []
    exec(compile(python, "docs/export.md", "exec"), {"print": printed.append})
    assert printed[0].shape == (4,) and all(0 <= c < 10 for c in printed[0])


def test_sample_output_names_run_folders_as_a_run_names_them():
    """Run folders are `NN_<run name>`: the manual's samples use the real names of its grid."""
    from modelspec.load import load_spec
    from modelspec.runner.grid import run_folder_name

    runs = load_spec(REPO / "specs" / "fashion_bn.yaml").runs()
    real = {run_folder_name(i, run.name) for i, run in enumerate(runs)}
    named = re.findall(r"runs/fashion_bn/\d{8}-\d{6}/([^/\s`]+)/", MANUAL)
    named += re.findall(r"--restart-run (\S+)", MANUAL)
    assert named and set(named) <= real, set(named) - real
