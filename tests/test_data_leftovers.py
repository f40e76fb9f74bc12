"""Leftovers of #20 in the data readers: a cell of a table that is no finite number (inf) is a data
error located at the file's key with its column and row, as a series' is (11c); a column missing at
run time is located at the key that names it, as validate locates it (12b); a text folder's class
folders are listed at validate time, so that one class is refused before anything runs (13); a key
that takes a file refuses a folder, at the key (13)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from _data_files import review_folders
from modelspec.cli.main import app
from modelspec.readers.files import kind_problem
from modelspec.readers.tabular import encode_columns, read_table
from modelspec.errors import SpecError
from modelspec.readers.raw import read_rows
from modelspec.spec.data import DataSpec
from pydantic import TypeAdapter

runner = CliRunner()


def _data(**keys):
    return TypeAdapter(DataSpec).validate_python(keys)


def _line_of(spec: Path, text: str) -> int:
    return next(i for i, line in enumerate(spec.read_text().splitlines(), 1) if text in line)


def _table(path: Path, cells: dict[tuple[int, str], str] | None = None, rows: int = 40) -> Path:
    """x (numbers), c (a category), y (a 0/1 label), r (a real target); `cells`: (row, column) -> text,
    rows counted from 1 after the header."""
    table = [{"x": str(i % 7), "c": "ab"[i % 2], "y": str((i // 3) % 2), "r": f"{i * 0.5}"} for i in range(rows)]
    for (row, column), text in (cells or {}).items():
        table[row - 1][column] = text
    path.write_text("x,c,y,r\n" + "".join(",".join(r.values()) + "\n" for r in table))
    return path


TABLE_SPEC = """\
name: t
data:
  dataset: csv
  path: {path}
  target: {target}
  target_kind: {kind}
  features: [x, c]
model:
  - linear: {{out_features: 1}}
train:
  epochs: 1
  loss: {loss}
"""


def _table_spec(tmp_path: Path, path: Path, real: bool = False) -> Path:
    spec = tmp_path / "t.yaml"
    keys = dict(target="r", kind="real", loss="mse") if real else dict(target="y", kind="binary",
                                                                         loss="bce_with_logits")
    spec.write_text(TABLE_SPEC.format(path=path, **keys))
    return spec


# --- 1. a table's cell that is no finite number: a located data error, never a loss of inf


@pytest.mark.parametrize("column, real", [("x", False), ("r", True)])
@pytest.mark.parametrize("cell", ["inf", "-inf"])
def test_an_infinite_cell_of_a_table_is_a_data_error_at_validate_and_run(tmp_path, monkeypatch, column, real, cell):
    monkeypatch.chdir(tmp_path)
    path = _table(tmp_path / "t.csv", {(7, column): cell})
    spec = _table_spec(tmp_path, path, real)
    line = _line_of(spec, "path:")
    for command in (["validate", str(spec)], ["run", str(spec), "--quiet", "--set", "tracking.dir=runs"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert "loss became" not in result.output and "Traceback" not in result.output
        assert f"t.yaml:{line}:" in result.output and "data.path" in result.output
        assert f"column '{column}' is numeric" in result.output and f"row 7: {column} is {cell}" in result.output
    assert not Path("runs").exists()


def test_an_infinite_cell_of_a_test_file_is_located_at_test_path(tmp_path):
    train, test = _table(tmp_path / "train.csv"), _table(tmp_path / "test.csv", {(3, "x"): "inf"}, rows=10)
    data = _data(dataset="csv", path=str(train), test_path=str(test), target="y", target_kind="binary")
    for check in (data.check_files, data.open):
        with pytest.raises(SpecError) as caught:
            check(0)
        (issue,) = caught.value.issues
        assert issue.path == ("data", "test_path") and f"{test}: column 'x'" in issue.message
        assert "row 3: x is inf" in issue.message


def test_an_infinite_cell_carved_into_the_test_split_is_located_at_path(tmp_path):
    """Every row of the file is read, whichever split it falls in."""
    path = _table(tmp_path / "t.csv", {(r, "r"): "inf" for r in range(1, 41, 4)})
    data = _data(dataset="csv", path=str(path), target="r", target_kind="real", test_split=0.3, features=["x"])
    with pytest.raises(SpecError) as caught:
        data.open(0)
    assert caught.value.issues[0].path == ("data", "path") and "column 'r' is numeric" in str(caught.value)


def test_words_in_a_real_target_are_a_data_error_not_a_traceback(tmp_path):
    path = _table(tmp_path / "t.csv", {(5, "r"): "many"})
    data = _data(dataset="csv", path=str(path), target="r", target_kind="real", features=["x"])
    with pytest.raises(SpecError, match="row 5: r holds 'many', no number"):
        data.open(0)


FITTED = {"data": {"kind": "table", "columns": [
    {"name": "x", "type": "numeric", "fill": 0.0, "null_column": False, "mean": None, "std": None}]}}


def test_predict_reports_a_row_that_is_inf_and_predicts_the_others(tmp_path):
    path = _table(tmp_path / "new.csv", {(2, "x"): "inf", (4, "x"): ""}, rows=5)
    items = read_rows([str(path)], FITTED)
    assert [i.name for i in items] == [f"row {n}" for n in range(1, 6)]
    assert [i.x is None for i in items] == [False, True, False, False, False]  # empty: filled, as in training
    assert items[1].error == "column 'x' is numeric, but 1 row(s) hold no finite number: row 2: x is inf"
    assert items[1].extra["x"] == "inf"


def test_evaluate_data_with_an_inf_names_the_file_column_and_row(tmp_path):
    path = _table(tmp_path / "new.csv", {(4, "x"): "inf"}, rows=5)
    with pytest.raises(SpecError, match=f"{path}: column 'x' is numeric, but 1 row.*row 4: x is inf"):
        encode_columns(FITTED["data"]["columns"], read_table(str(path), ","), str(path))


# --- 2. a column missing at run time is located at the key that names it


SERIES = "t,a,b\n" + "".join(f"{i},{i},{2 * i}\n" for i in range(30))


@pytest.mark.parametrize("keys, at", [
    (dict(dataset="time_series", features=["a"], targets=["bb"], window=3), ("data", "targets")),
    (dict(dataset="time_series", features=["aa", "b"], targets=["b"], window=3), ("data", "features")),
])
def test_a_series_column_missing_at_run_time_is_at_its_key(tmp_path, keys, at):
    (tmp_path / "s.csv").write_text(SERIES)
    data = _data(path=str(tmp_path / "s.csv"), **keys)
    with pytest.raises(SpecError) as caught:
        data.open(0)
    assert [issue.path for issue in caught.value.issues] == [at]
    assert "did you mean" in caught.value.issues[0].hint


def test_a_text_column_missing_at_run_time_is_at_its_key_and_a_test_files_at_test_path(tmp_path):
    (tmp_path / "train.csv").write_text("review,label\ngood film,1\nbad film,0\n")
    (tmp_path / "test.csv").write_text("review,class\ngood,1\n")
    data = _data(dataset="text", path=str(tmp_path / "train.csv"), text_column="reviw", max_length=4)
    with pytest.raises(SpecError) as caught:
        data.open(0)
    assert [issue.path for issue in caught.value.issues] == [("data", "text_column")]
    data = _data(dataset="text", path=str(tmp_path / "train.csv"), test_path=str(tmp_path / "test.csv"),
                 text_column="review", max_length=4)
    with pytest.raises(SpecError) as caught:
        data.open(0)
    assert [issue.path for issue in caught.value.issues] == [("data", "test_path")]
    assert "no column 'label' (named by data.label_column)" in caught.value.issues[0].message


# --- 3. a text folder's class folders at validate time


TEXT_SPEC = """\
name: texts
data:
  dataset: text
  path: {path}
  max_length: 8
model:
  - embedding: {{num_embeddings: 10002, embedding_dim: 4}}
  - flatten
  - linear: {{out_features: num_classes}}
train:
  epochs: 1
"""


def test_a_text_folder_of_one_class_is_refused_by_validate_and_before_a_run_starts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    review_folders(tmp_path / "reviews", per_class=3)
    for name in ("neg", "unsup"):
        for file in (tmp_path / "reviews" / name).iterdir():
            file.unlink()
    spec = tmp_path / "texts.yaml"
    spec.write_text(TEXT_SPEC.format(path=tmp_path / "reviews"))
    for command in (["validate", str(spec)], ["run", str(spec), "--quiet", "--set", "tracking.dir=runs"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert f"texts.yaml:{_line_of(spec, 'path:')}:" in result.output and "data.path" in result.output
        assert "one label: pos" in result.output and "two classes or more" in result.output
    assert not Path("runs").exists()


def test_a_text_folder_is_counted_and_checked_at_validate(tmp_path):
    folder = review_folders(tmp_path / "reviews", per_class=2)
    data = _data(dataset="text", path=str(folder), max_length=8)
    assert data.check_files(0)[1] == 3  # neg, pos and unsup: every folder of .txt files
    data = _data(dataset="text", path=str(folder), class_folders=["neg", "pos"], max_length=8)
    assert data.check_files(0)[1] == 2
    for keys, at, says in [
        (dict(class_folders=["neg", "positive"]), ("data", "class_folders"), "no class folder positive"),
        (dict(num_classes=2), ("data", "num_classes"), "num_classes=2, but"),
        (dict(target_kind="binary"), ("data", "target_kind"), "binary targets need two"),
    ]:
        with pytest.raises(SpecError) as caught:
            _data(dataset="text", path=str(folder), max_length=8, **keys).check_files(0)
        assert caught.value.issues[0].path == at and says in str(caught.value)


def test_a_test_folder_with_a_class_training_lacks_is_refused_at_validate(tmp_path):
    train = review_folders(tmp_path / "train", per_class=2)
    test = review_folders(tmp_path / "test", per_class=2)
    (test / "other").mkdir()
    (test / "other" / "1.txt").write_text("a text")
    data = _data(dataset="text", path=str(train), test_path=str(test), max_length=8)
    with pytest.raises(SpecError) as caught:
        data.check_files(0)
    assert caught.value.issues[0].path == ("data", "test_path") and "never saw: other" in str(caught.value)


# --- 4. a folder where a file is expected


@pytest.mark.parametrize("data, key", [
    ("{{dataset: csv, path: {folder}, target: y}}", "data.path"),
    ("{{dataset: time_series, path: {folder}, features: [a], targets: [a], window: 2}}", "data.path"),
    ("{{dataset: text, path: {file}, tokenizer: {folder}}}", "data.tokenizer"),
])
def test_a_folder_where_a_file_is_expected_is_refused_at_its_key(tmp_path, data, key):
    (tmp_path / "somedir").mkdir()
    (tmp_path / "t.csv").write_text("text,label\na,1\nb,0\n")
    spec = tmp_path / "f.yaml"
    spec.write_text("name: f\ndata: " + data.format(folder=tmp_path / "somedir", file=tmp_path / "t.csv")
                    + "\nmodel:\n  - flatten\n  - linear: {out_features: 1}\n")
    result = runner.invoke(app, ["validate", str(spec)])
    assert result.exit_code == 2, result.output
    assert "f.yaml:2:" in result.output and key in result.output
    assert f"{tmp_path / 'somedir'} is a folder, not a file" in result.output


def test_a_table_reader_refuses_a_folder_and_a_folder_key_refuses_a_file(tmp_path):
    with pytest.raises(SpecError, match="is a folder, not a file"):
        read_table(str(tmp_path), ",")
    (tmp_path / "t.csv").write_text("a\n1\n")
    folder_only = dict(takes_file=False, takes_folder=True)
    assert kind_problem(str(tmp_path / "t.csv"), **folder_only) == f"{tmp_path / 't.csv'} is a file, not a folder"
    assert kind_problem(str(tmp_path / "none"), **folder_only) == f"no file or folder at {tmp_path / 'none'}"
    assert kind_problem(str(tmp_path), takes_file=True, takes_folder=True) is None
