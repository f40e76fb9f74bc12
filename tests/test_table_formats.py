"""Table files in any format (issue #21): a table is read as CSV, TSV or Parquet by its suffix or the
spec's `format` key, for training, validate, `modelspec predict` and `modelspec evaluate` alike. The
same table in Parquet trains to the same tensors as in CSV; validate checks a Parquet file's columns
from its schema alone; a format the file's bytes contradict, and a missing pyarrow, are one clear
error each."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from pydantic import TypeAdapter
from typer.testing import CliRunner

from _data_files import daily_counts_csv, titanic_csv
from modelspec.cli.main import app
from modelspec.data import prepare_data
from modelspec.errors import SpecError
from modelspec.spec.data import DataSpec

SPECS = Path(__file__).resolve().parents[1] / "specs"
runner = CliRunner()
CPU = torch.device("cpu")


@pytest.fixture
def here(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MODELSPEC_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _copies(csv: Path) -> dict[str, Path]:
    """The table as written, as TSV and as Parquet (the typed frame pandas reads from the CSV)."""
    frame = pd.read_csv(csv)
    tsv, parquet = csv.with_suffix(".tsv"), csv.with_suffix(".parquet")
    frame.to_csv(tsv, sep="\t", index=False)
    frame.to_parquet(parquet, index=False)
    return {"csv": csv, "tsv": tsv, "parquet": parquet}


def _prepared(**keys):
    data = TypeAdapter(DataSpec).validate_python(keys)
    return prepare_data(data, 0, CPU, log=lambda _: None)


def _same(a, b) -> None:
    for split in ("train", "val", "test"):
        x, y = getattr(a, split), getattr(b, split)
        assert (x is None) == (y is None), split
        assert x is None or (torch.equal(x.x, y.x) and torch.equal(x.y, y.y)), split
    assert a.preprocessing == b.preprocessing  # what was fitted (categories, fills, scalers)


TITANIC = dict(dataset="csv", target="Survived", target_kind="binary", test_split=0.2, val_split=0.1,
               features=["Pclass", "Sex", "Embarked", "Age", "Cabin", "Fare"],
               columns={"Pclass": "categorical", "Embarked": {"categorical": {"missing_column": True}},
                        "Age": {"numeric": {"fill": 0, "null_column": True}}, "Cabin": "null_indicator"})


def test_a_parquet_or_tsv_table_trains_to_the_same_tensors_as_its_csv(tmp_path):
    files = _copies(titanic_csv(tmp_path / "train.csv"))
    as_csv = _prepared(path=str(files["csv"]), **TITANIC)
    assert as_csv.train.x.shape[1] == 3 + 2 + 4 + 2 + 1 + 1  # one-hot and indicator columns
    for name in ("tsv", "parquet"):
        _same(as_csv, _prepared(path=str(files[name]), **TITANIC))
    # A file named otherwise is read as its `format` key says.
    (tmp_path / "rows.bin").write_bytes(files["parquet"].read_bytes())
    _same(as_csv, _prepared(path=str(tmp_path / "rows.bin"), format="parquet", **TITANIC))


def test_a_parquet_series_and_a_parquet_table_of_texts_read_as_their_csv(tmp_path):
    files = _copies(daily_counts_csv(tmp_path / "daily.csv"))
    series = dict(dataset="time_series", features=["confirmed", "deaths"], targets=["confirmed"], window=5,
                  difference=True, scale="minmax", val_split=0.1, test_split=0.1)
    _same(_prepared(path=str(files["csv"]), **series), _prepared(path=str(files["parquet"]), **series))
    texts = pd.DataFrame({"text": [f"{'good fine' if i % 2 else 'bad poor'} film {i}" for i in range(40)],
                          "label": ["pos" if i % 2 else "neg" for i in range(40)]})
    texts.to_csv(tmp_path / "texts.csv", index=False)
    texts.to_parquet(tmp_path / "texts.pq", index=False)
    text = dict(dataset="text", max_length=6, test_split=0.25, val_split=0.2)
    _same(_prepared(path=str(tmp_path / "texts.csv"), **text), _prepared(path=str(tmp_path / "texts.pq"), **text))


TABLE_SPEC = """\
name: t
data:
  dataset: csv
  path: {path}
  {format}
  target: Survived
  target_kind: binary
  features: [Pclass, Sexx, Age]
model:
  - linear: {{out_features: 1}}
train:
  epochs: 1
  loss: bce_with_logits
"""


def _spec(tmp_path: Path, path: Path, format: str = "", features: str = "[Pclass, Sexx, Age]") -> Path:
    spec = tmp_path / "t.yaml"
    text = TABLE_SPEC.format(path=path, format=f"format: {format}" if format else "")
    spec.write_text(text.replace("[Pclass, Sexx, Age]", features))
    return spec


def test_a_misspelt_column_of_a_parquet_file_is_located_from_its_schema_alone(tmp_path, monkeypatch):
    files = _copies(titanic_csv(tmp_path / "train.csv"))

    def no_rows(*_, **__):
        raise AssertionError("validate read the rows of the Parquet file")

    monkeypatch.setattr(pd, "read_parquet", no_rows)
    result = runner.invoke(app, ["validate", str(_spec(tmp_path, files["parquet"]))])
    assert result.exit_code == 2, result.output
    assert "t.yaml:8:" in result.output and "data.features" in result.output
    assert "has no column 'Sexx'" in result.output and "did you mean 'Sex'?" in result.output


def test_a_format_the_file_contradicts_is_one_error_at_the_format_key(tmp_path):
    files = _copies(titanic_csv(tmp_path / "train.csv"))
    for path, format, says in ((files["csv"], "parquet", "is no Parquet file"),
                               (files["parquet"], "csv", "is a Parquet file, but it is read as CSV text")):
        result = runner.invoke(app, ["validate", str(_spec(tmp_path, path, format, "[Pclass, Sex, Age]"))])
        assert result.exit_code == 2, result.output
        assert "t.yaml:5:" in result.output and "data.format" in result.output and says in result.output
        assert "Traceback" not in result.output
    # Named by its suffix, a Parquet file's bytes still say what it is (a run's reader checks too).
    wrong = tmp_path / "really.csv"
    wrong.write_bytes(files["parquet"].read_bytes())
    with pytest.raises(SpecError, match="is a Parquet file, but it is read as CSV text"):
        _prepared(path=str(wrong), **TITANIC)


def test_without_pyarrow_a_parquet_file_is_one_error_naming_the_extra(tmp_path, monkeypatch):
    files = _copies(titanic_csv(tmp_path / "train.csv"))
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    result = runner.invoke(app, ["validate", str(_spec(tmp_path, files["parquet"], "", "[Pclass, Sex, Age]"))])
    assert result.exit_code == 2, result.output
    assert "needs the Python package 'pyarrow'" in result.output and "pip install 'modelspec[data]'" in result.output


def test_predict_and_evaluate_read_a_parquet_file_as_its_csv(here):
    train = titanic_csv(here / "data" / "titanic" / "train.csv")
    result = runner.invoke(app, ["run", str(SPECS / "titanic.yaml"), "--quiet", "--set", "train.epochs=1",
                                 "--set", "tracking.dir=runs"])
    assert result.exit_code == 0, result.output
    (weights,) = Path("runs").glob("titanic/*/*/weights.pt")
    rows = pd.read_csv(train).iloc[:40]
    rows.to_csv("new.csv", index=False)
    rows.to_parquet("new.parquet", index=False)
    outputs = {}
    for name in ("new.csv", "new.parquet"):
        predicted = runner.invoke(app, ["predict", str(weights.parent), name, "--out", f"{name}.json"])
        assert predicted.exit_code == 0, predicted.output
        outputs[name] = json.loads(Path(f"{name}.json").read_text())
    csv_rows, parquet_rows = outputs["new.csv"], outputs["new.parquet"]
    assert len(csv_rows) == len(parquet_rows) == 40
    for a, b in zip(csv_rows, parquet_rows):
        assert a["input"] == b["input"] and a["decision"] == b["decision"]
        assert a["p_Survived"] == pytest.approx(b["p_Survived"], abs=1e-7)
        assert b["Name"] == a["Name"] and b["Sex"] == a["Sex"]  # the file's own columns come back
    for name in ("new.csv", "new.parquet"):
        evaluated = runner.invoke(app, ["evaluate", str(weights.parent), "--data", name, "--out", f"{name}.eval"])
        assert evaluated.exit_code == 0, evaluated.output
    a, b = (json.loads(Path(f"{n}.eval", "evaluation.json").read_text()) for n in ("new.csv", "new.parquet"))
    assert a["samples"] == b["samples"] == 40
    assert a["metrics"] == pytest.approx(b["metrics"]) and a["confusion_matrix"] == b["confusion_matrix"]
