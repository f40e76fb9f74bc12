"""What `modelspec predict` prints and writes for tables and binary tasks: every input column comes
back exactly as the file has it (38 stays 38, an empty cell stays empty, NA stays NA), in the printed
table and in --out CSV and JSON alike; a binary model's probability is named by the class it is of,
so that it is never read as the chosen class's."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from modelspec.cli.main import app
from modelspec.load import loads_spec
from modelspec.predict.readout import readout
from modelspec.runner import run_grid

runner = CliRunner()

TABLE = """\
name: people
seed: 0
data: {{dataset: csv, path: {path}, target: survived, target_kind: binary, features: [age, sex],
        columns: {{age: {{numeric: {{fill: 0}}}}, sex: categorical}}, batch_size: 8}}
model: [{{linear: {{out_features: 4}}}}, relu, {{linear: {{out_features: 1}}}}, sigmoid]
train: {{epochs: 1, optimizer: {{name: adam, lr: 0.01}}, loss: bce}}
"""

TEXTS = """\
name: reviews
seed: 0
data: {{dataset: text, path: {path}, target_kind: binary, max_length: 6, batch_size: 8}}
model: [{{embedding: {{num_embeddings: 10002, embedding_dim: 4}}}}, flatten, {{linear: {{out_features: 1}}}}]
train: {{epochs: 1, optimizer: {{name: adam, lr: 0.01}}, loss: bce_with_logits}}
"""

# Cells as a user writes them: an integer age, one with a trailing zero, a leading zero, an empty
# cell, NA, a quoted comma, spaces.
PASSENGERS = ('age,sex,name,note\n38,male,"Doe, J",007\n38.50,female,Roe,\n,male, Moe ,NA\n'
              "2,female,Zoe,1e3\n")
WRITTEN = [{"age": "38", "sex": "male", "name": "Doe, J", "note": "007"},
           {"age": "38.50", "sex": "female", "name": "Roe", "note": ""},
           {"age": "", "sex": "male", "name": " Moe ", "note": "NA"},
           {"age": "2", "sex": "female", "name": "Zoe", "note": "1e3"}]


def _run(folder: Path, spec: str, data: Path) -> Path:
    loaded = loads_spec(spec.format(path=data), "spec.yaml", [f"tracking.dir={folder / 'runs'}"])
    result = run_grid(loaded, quiet=True, log=lambda _: None)
    assert not result.failed
    return result.folder / "00_run"


@pytest.fixture(scope="module")
def table_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("table")
    rows = ["age,sex,survived"] + [f"{20 + i},{'female' if i % 2 else 'male'},{i % 2}" for i in range(24)]
    (folder / "train.csv").write_text("\n".join(rows) + "\n")
    return _run(folder, TABLE, folder / "train.csv")


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("texts")
    rows = ["text,label"] + [f"{'great fun' if i % 2 else 'dull waste'} film,{'pos' if i % 2 else 'neg'}"
                             for i in range(24)]
    (folder / "train.csv").write_text("\n".join(rows) + "\n")
    return _run(folder, TEXTS, folder / "train.csv")


def test_a_tables_columns_come_back_as_the_file_has_them(table_run, tmp_path):
    (tmp_path / "p.csv").write_text(PASSENGERS)
    for out in ("out.csv", "out.json"):
        result = runner.invoke(app, ["predict", str(table_run), str(tmp_path / "p.csv"), "--out", str(tmp_path / out)])
        assert result.exit_code == 0, result.output
    with open(tmp_path / "out.csv", newline="") as handle:
        written = list(csv.DictReader(handle))
    as_json = json.loads((tmp_path / "out.json").read_text())
    for rows in (written, as_json):
        assert [{k: r[k] for k in WRITTEN[0]} for r in rows] == WRITTEN


def test_the_printed_table_shows_the_cells_as_written(table_run, tmp_path):
    (tmp_path / "p.csv").write_text(PASSENGERS)
    result = runner.invoke(app, ["predict", str(table_run), str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    row = next(line for line in lines if "Doe, J" in line)
    assert "│ 38 " in row and "007" in row and "38.0" not in result.stdout
    assert "None" not in result.stdout and "nan" not in result.stdout.lower()
    assert any("NA" in line and "Moe" in line for line in lines)


def test_a_binary_tables_probability_is_named_by_its_target(table_run, tmp_path):
    (tmp_path / "p.csv").write_text(PASSENGERS)
    result = runner.invoke(app, ["predict", str(table_run), str(tmp_path / "p.csv"), "--out", str(tmp_path / "o.json")])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "o.json").read_text())
    assert "probability" not in rows[0] and {"class", "p_survived", "decision"} <= set(rows[0])
    for row in rows:
        assert row["decision"] == int(row["p_survived"] >= 0.5) and row["class"] == str(row["decision"])
    printed = runner.invoke(app, ["predict", str(table_run), str(tmp_path / "p.csv")])
    assert "p_survived" in printed.stdout and "probability" not in printed.stdout


def test_a_binary_texts_probability_is_named_by_its_positive_class(text_run, tmp_path):
    (tmp_path / "r.txt").write_text("great fun\ndull waste\n")
    for out in ("o.json", "o.csv"):
        result = runner.invoke(app, ["predict", str(text_run), str(tmp_path / "r.txt"), "--out", str(tmp_path / out)])
        assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "o.json").read_text())
    assert [set(r) for r in rows] == [{"input", "text", "class", "p_pos", "decision"}] * 2
    for row in rows:  # the class decided is "neg" exactly when p_pos is under the threshold
        assert row["class"] == ("pos" if row["p_pos"] >= 0.5 else "neg")
    with open(tmp_path / "o.csv", newline="") as handle:
        assert next(csv.reader(handle)) == ["input", "text", "class", "p_pos", "decision"]


@pytest.mark.parametrize("outputs, loss", [([[2.0], [-1.0]], "bce_with_logits"),
                                           ([[0.2, 0.8], [3.0, 0.0]], "cross_entropy")])
def test_binary_readout_names_the_probability_by_the_positive_class(outputs, loss):
    rows = readout(torch.tensor(outputs), {"kind": "binary", "loss": loss}, ["cat", "dog"])
    assert [set(r) for r in rows] == [{"class", "p_dog", "decision"}] * 2
    assert rows[1]["class"] == "cat" and rows[1]["p_dog"] < 0.5 and rows[1]["decision"] == 0
    assert readout(torch.tensor([[0.0]]), {"kind": "binary", "loss": "bce_with_logits"}, None,
                   target_names=["Survived"])[0].keys() >= {"p_Survived"}


def test_a_table_that_is_not_utf8_is_reported_and_exits_1(table_run, tmp_path):
    (tmp_path / "p.csv").write_bytes(b"age,sex\n38,m\xe4nnlich\n")
    result = runner.invoke(app, ["predict", str(table_run), str(tmp_path / "p.csv")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"error: {tmp_path / 'p.csv'}: is not UTF-8 text: byte 0xe4 at offset 12 (line 2)" in result.stderr


def test_printed_texts_are_never_read_as_markup_and_json_values_print_as_written(text_run, tmp_path):
    (tmp_path / "r.jsonl").write_text('{"text": "great [/bold] fun [red]", "score": 2.5, "note": null}\n')
    result = runner.invoke(app, ["predict", str(text_run), str(tmp_path / "r.jsonl")])
    assert result.exit_code == 0, result.output
    assert "great [/bold] fun [red]" in result.stdout and "│ 2.5 " in result.stdout
    assert "2.5000" not in result.stdout and "None" not in result.stdout
