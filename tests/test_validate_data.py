"""What validate (and run, before any folder exists) reads of the data's files: that they exist, that
the columns a spec names are in a table's header, a table's one-hot width and class count, the class
folders; the column limit; one-class targets; and where each problem is located (issue 20: 2b, 6, 8,
12a-c, 13)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from _data_files import daily_counts_csv, png_folders, titanic_csv
from modelspec.cli.main import app
from modelspec.errors import SpecError
from modelspec.load import load_spec

runner = CliRunner()

TABLE = """\
name: table
data:
  dataset: csv
  path: {csv}
  target: Survived
  target_kind: binary
  features: [Pclass, Sex, Age]
  columns:
    Pclass: categorical
model:
  - linear: {{out_features: 1}}
train:
  epochs: 1
  optimizer: {{name: adam, lr: 0.01}}
  loss: bce_with_logits
"""


def _invoke(*args: str):
    return runner.invoke(app, list(args))


def _line_of(spec: Path, text: str) -> int:
    return next(i for i, line in enumerate(spec.read_text().splitlines(), 1) if text in line)


@pytest.fixture
def table(tmp_path) -> Path:
    csv = titanic_csv(tmp_path / "titanic.csv", rows=60)
    spec = tmp_path / "table.yaml"
    spec.write_text(TABLE.format(csv=csv))
    return spec


def _edit(spec: Path, old: str, new: str) -> Path:
    spec.write_text(spec.read_text().replace(old, new))
    return spec


# --- columns a spec names must be in the file (2b, 12b)


def test_a_treatment_for_a_column_the_file_lacks_is_an_error_at_its_line(table):
    """`columns: {Sexx: ...}` with the default features used to be ignored: Sex got the default."""
    _edit(table, "  features: [Pclass, Sex, Age]\n", "")
    _edit(table, "    Pclass: categorical", "    Sexx: categorical")
    result = _invoke("validate", str(table))
    assert result.exit_code == 2, result.output
    assert f"table.yaml:{_line_of(table, 'Sexx')}:" in result.output
    assert "data.columns.Sexx" in result.output and "has no column 'Sexx'" in result.output
    assert "did you mean 'Sex'?" in result.output


def test_a_missing_feature_is_located_at_features(table):
    _edit(table, "[Pclass, Sex, Age]", "[Pclass, Sex, Agee]")
    result = _invoke("validate", str(table))
    assert result.exit_code == 2
    assert f"table.yaml:{_line_of(table, 'features:')}:" in result.output and "did you mean 'Age'?" in result.output


def test_a_missing_target_is_located_at_target_at_validate_and_at_run_time(table):
    _edit(table, "target: Survived", "target: Survivd")
    result = _invoke("validate", str(table))
    assert result.exit_code == 2
    assert f"table.yaml:{_line_of(table, 'target: Survivd')}:" in result.output
    assert "data.target:" in result.output and "did you mean 'Survived'?" in result.output
    # The reader itself (a run whose file changed after validate) says the same key, not data.path.
    spec = load_spec(table, check_data=False).spec
    with pytest.raises(SpecError) as caught:
        spec.data.open(0)
    assert [issue.path for issue in caught.value.issues] == [("data", "target")]


def test_series_and_text_columns_are_checked_at_their_keys(tmp_path):
    csv = daily_counts_csv(tmp_path / "counts.csv")
    spec = tmp_path / "series.yaml"
    spec.write_text(f"""\
name: series
data:
  dataset: time_series
  path: {csv}
  features: [confirmed, deaths]
  targets: [recoverd]
  window: 5
model:
  - flatten
  - linear: {{out_features: 1}}
train:
  epochs: 1
  loss: mse
""")
    result = _invoke("validate", str(spec))
    assert result.exit_code == 2, result.output
    assert f"series.yaml:{_line_of(spec, 'targets:')}:" in result.output and "did you mean 'recovered'?" in result.output

    texts = tmp_path / "texts.csv"
    texts.write_text("review,label\ngood film,1\nbad film,0\n")
    spec.write_text(f"""\
name: texts
data:
  dataset: text
  path: {texts}
  text_column: reviw
  max_length: 8
model:
  - embedding: {{num_embeddings: 10002, embedding_dim: 4}}
  - flatten
  - linear: {{out_features: 2}}
train:
  epochs: 1
""")
    result = _invoke("validate", str(spec))
    assert result.exit_code == 2, result.output
    assert f"series.yaml:{_line_of(spec, 'text_column:')}:" in result.output and "did you mean 'review'?" in result.output


# --- validate reads the data that is cheap to read (13)


def test_a_missing_data_file_fails_validate_at_its_line_and_no_data_skips_the_check(table, tmp_path):
    _edit(table, str(tmp_path / "titanic.csv"), str(tmp_path / "gone.csv"))
    result = _invoke("validate", str(table))
    assert result.exit_code == 2
    assert f"table.yaml:{_line_of(table, 'gone.csv')}:" in result.output and "no file or folder" in result.output
    assert _invoke("validate", str(table), "--no-data").exit_code == 0


def test_a_one_hot_width_that_does_not_fit_the_first_layer_fails_validate_at_the_layer(table):
    _edit(table, "  - linear: {out_features: 1}", "  - linear: {in_features: 7, out_features: 1}")
    result = _invoke("validate", str(table))
    assert result.exit_code == 2, result.output
    # Pclass one-hot (3) + Sex one-hot (2) + Age (1): the width the run would fit, known at validate.
    assert "in_features=7, but the input here has 6 features" in result.output
    assert f"table.yaml:{_line_of(table, 'in_features')}:" in result.output


def test_run_refuses_a_bad_table_before_any_grid_folder_is_made_or_announced(table, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _edit(table, "target: Survived", "target: Survivd")
    result = _invoke("run", str(table), "--quiet")
    assert result.exit_code == 2
    assert "data.target" in result.output and "run(s) ->" not in result.output
    assert not (tmp_path / "runs").exists()


def test_a_bad_test_path_given_by_set_is_located_at_the_set(table):
    result = _invoke("validate", str(table), "--set", "data.test_path=nowhere.csv")
    assert result.exit_code == 2
    assert "--set data.test_path=nowhere.csv data.test_path: no file or folder at nowhere.csv" in result.output


def test_a_test_file_without_a_named_column_is_located_at_test_path(table, tmp_path):
    test = tmp_path / "test.csv"
    test.write_text("PassengerId,Pclass,Sex,Age\n1,3,male,22\n")
    _edit(table, "  target_kind", f"  test_path: {test}\n  target_kind")
    result = _invoke("validate", str(table))
    assert result.exit_code == 2
    assert f"table.yaml:{_line_of(table, 'test_path')}:" in result.output
    assert "has no column 'Survived' (named by data.target)" in result.output


def test_a_grid_over_data_paths_checks_each_and_locates_the_bad_value_in_the_grid(table, tmp_path):
    good = tmp_path / "titanic.csv"
    table.write_text(table.read_text() + f"grid:\n  data.path: [{good}, {tmp_path / 'gone.csv'}]\n"
                     "  model[0].linear.bias: [true, false]\n  data.batch_size: [8, 16]\n")
    result = _invoke("validate", str(table))
    assert result.exit_code == 2
    assert f"table.yaml:{_line_of(table, 'gone.csv')}:" in result.output and "grid.data.path[1]" in result.output
    assert result.output.count("no file or folder") == 1  # one data problem, said once for its runs


def test_image_folder_classes_are_counted_at_validate(tmp_path):
    png_folders(tmp_path / "images" / "train", ["cat", "dog", "owl"], per_class=1)
    spec = tmp_path / "images.yaml"
    spec.write_text(f"""\
name: images
data:
  dataset: image_folder
  root: {tmp_path / 'images'}
  transforms: [{{resize: {{size: [8, 8]}}}}, to_tensor]
model:
  - flatten
  - linear: {{out_features: 2}}
train:
  epochs: 1
""")
    result = _invoke("validate", str(spec))
    assert result.exit_code == 2, result.output
    assert "model[1].linear" in result.output and "3" in result.output  # 3 class folders, 2 outputs
    _edit(spec, "out_features: 2", "out_features: num_classes")
    result = _invoke("validate", str(spec))
    assert result.exit_code == 0, result.output
    assert "num_classes is known only from the data" not in result.output


def test_validate_of_a_regression_spec_says_nothing_about_num_classes(tmp_path):
    spec = tmp_path / "real.yaml"
    spec.write_text("name: r\ndata: {dataset: synthetic, input_shape: [4], target_kind: real}\n"
                    "model:\n  - linear: {out_features: 1}\ntrain: {epochs: 1, loss: mse}\n")
    result = _invoke("validate", str(spec))
    assert result.exit_code == 0, result.output
    assert "num_classes" not in result.output


# --- one class is no classification (6)


def test_a_target_with_one_class_is_a_located_error(table, tmp_path):
    one = tmp_path / "one.csv"
    one.write_text("x,y\n" + "".join(f"{i},7\n" for i in range(10)))
    _edit(table, str(tmp_path / "titanic.csv"), str(one))
    _edit(table, "target: Survived", "target: y")
    _edit(table, "  target_kind: binary\n  features: [Pclass, Sex, Age]\n  columns:\n    Pclass: categorical\n", "")
    _edit(table, "out_features: 1", "out_features: num_classes")
    _edit(table, "loss: bce_with_logits", "loss: cross_entropy")
    result = _invoke("validate", str(table))
    assert result.exit_code == 2, result.output
    assert f"table.yaml:{_line_of(table, 'target: y')}:" in result.output
    assert "one label: 7" in result.output and "two classes or more" in result.output


@pytest.mark.parametrize("data", [
    "{dataset: synthetic, input_shape: [4], num_classes: 1}",
    "{dataset: csv, path: t.csv, target: y, num_classes: 1}",
    "{dataset: image_folder, num_classes: 1}",
])
def test_num_classes_one_is_refused_at_its_line(tmp_path, data):
    spec = tmp_path / "one.yaml"
    spec.write_text(f"name: one\ndata: {data}\nmodel:\n  - flatten\n  - linear: {{out_features: 1}}\n")
    result = _invoke("validate", str(spec), "--no-data")
    assert result.exit_code == 2
    assert "one.yaml:2:" in result.output and "data.num_classes" in result.output
    assert "nothing to tell apart" in result.output


def test_a_folder_of_one_class_is_refused(tmp_path):
    png_folders(tmp_path / "images" / "train", ["cat"], per_class=1)
    spec = tmp_path / "images.yaml"
    spec.write_text(f"name: i\ndata: {{dataset: image_folder, root: {tmp_path / 'images'}}}\n"
                    "model:\n  - flatten\n  - linear: {out_features: num_classes}\n")
    result = _invoke("validate", str(spec))
    assert result.exit_code == 2
    assert "1 class folder(s): cat" in result.output and "data.root" in result.output


# --- a table of too many columns is refused up front (8)


def test_a_header_of_a_million_columns_is_refused_at_once_with_its_count(table, tmp_path):
    wide = tmp_path / "wide.csv"
    with open(wide, "w") as handle:
        handle.write(",".join(f"c{i}" for i in range(1_000_000)) + "\n")
        handle.write(",".join("1" for _ in range(1_000_000)) + "\n")
    _edit(table, str(tmp_path / "titanic.csv"), str(wide))
    start = time.perf_counter()
    result = _invoke("validate", str(table))
    assert result.exit_code == 2
    assert "columns; modelspec refuses more than 10,000" in result.output
    assert f"table.yaml:{_line_of(table, 'wide.csv')}:" in result.output
    # The reader a run uses refuses it the same way, before pandas parses a row.
    from modelspec.readers.tabular import read_table

    with pytest.raises(SpecError, match="refuses more than 10,000"):
        read_table(str(wide), ",")
    assert time.perf_counter() - start < 10


def test_a_header_within_the_limit_is_read_as_pandas_names_it(tmp_path):
    from modelspec.readers.columns import read_header

    path = tmp_path / "h.csv"
    path.write_bytes('\ufeffa,"b, c",d\r\n1,2,3\r\n'.encode("utf-8"))
    assert read_header(path) == ["a", "b, c", "d"]
    path.write_text("a;b\n1;2\n")
    assert read_header(path, ";") == ["a", "b"]


# --- build-time errors are located at the layer (12a)


def test_offline_torchvision_weights_are_located_at_the_layer(tmp_path, monkeypatch):
    import torchvision

    from modelspec.compile import build_from_shapes, infer_shapes

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    spec = tmp_path / "tv.yaml"
    spec.write_text("name: tv\ndata: {dataset: cifar10}\nmodel:\n  - torchvision: {name: resnet18, weights: IMAGENET1K_V1}\n")
    loaded = load_spec(spec)
    shapes = infer_shapes(loaded.spec.layers, (3, 32, 32), 10, path=("model",))
    with pytest.raises(SpecError) as caught:
        build_from_shapes(shapes)
    issue = loaded.source.issue(caught.value.issues[0])
    assert issue.path == ("model", 0, "torchvision", "weights") and issue.line == 4


def test_test_labels_training_never_saw_are_located_at_the_test_file_given_by_set(table, tmp_path):
    """Found at validate (the table is small), and at the `--set` that named the test file."""
    test = tmp_path / "test.csv"
    test.write_text("PassengerId,Survived,Pclass,Sex,Age\n1,0,3,male,22\n2,4,1,female,30\n")
    _edit(table, "target_kind: binary", "target_kind: classes")
    _edit(table, "out_features: 1", "out_features: num_classes")
    _edit(table, "loss: bce_with_logits", "loss: cross_entropy")
    result = _invoke("validate", str(table), "--set", f"data.test_path={test}")
    assert result.exit_code == 2, result.output
    assert f"--set data.test_path={test} data.test_path:" in result.output
    assert "labels that training never saw: 4" in result.output
