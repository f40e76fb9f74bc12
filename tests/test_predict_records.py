"""`modelspec predict` on tables, texts and series: raw rows through the fitted preprocessing give
the model's outputs on what training prepared; bad rows and empty texts are reported one by one; a
series' forecasts come back in the file's units; the export folder predicts the same."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from _data_files import daily_counts_csv, review_folders, titanic_csv
from modelspec.artifacts import load_trained
from modelspec.cli.main import app
from modelspec.data import prepare_data
from modelspec.readers.sources import carve

SPECS = Path(__file__).resolve().parents[1] / "specs"
runner = CliRunner()


def _train(spec: str, *overrides: str) -> Path:
    sets = [a for o in ("train.epochs=2", "tracking.dir=runs", *overrides) for a in ("--set", o)]
    result = runner.invoke(app, ["run", str(SPECS / spec), "--quiet", *sets])
    assert result.exit_code == 0, result.output
    (weights,) = Path("runs").glob(f"{spec[:-5]}/*/*/weights.pt")
    return weights.parent


@pytest.fixture
def here(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MODELSPEC_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # the example specs read data/...
    return tmp_path


@pytest.mark.slow
def test_a_table_predicts_its_rows_with_their_columns_kept(here):
    titanic_csv(here / "data" / "titanic" / "train.csv")
    run = _train("titanic.yaml")
    with open(here / "data" / "titanic" / "train.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    _, held_out = carve(len(rows), 0.2, 0)  # the spec's test rows
    passengers = [{**rows[i], "Note": f"p{i}"} for i in held_out.tolist()]
    passengers.append({**rows[0], "Age": "old", "Note": "bad"})  # not a number: reported alone
    with open("passengers.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(passengers[0]))
        writer.writeheader()
        writer.writerows(passengers)
    result = runner.invoke(app, ["predict", str(run), "passengers.csv", "--out", "out.csv"])
    assert result.exit_code == 1 and f"row {len(passengers)}:" in result.stderr and "Traceback" not in result.output
    out = list(csv.DictReader(open("out.csv")))
    assert [r["Note"] for r in out] == [p["Note"] for p in passengers]  # every column comes back
    trained = load_trained(run)
    prepared = prepare_data(trained.spec.data, trained.spec.seed, torch.device("cpu"), log=lambda _: None)
    with torch.no_grad():
        expected = trained.model(prepared.test.x).view(-1)  # ends in sigmoid: probabilities
    assert [float(r["p_Survived"]) for r in out[:-1]] == pytest.approx(expected.tolist(), abs=1e-6)
    assert [int(r["decision"]) for r in out[:-1]] == (expected >= 0.5).long().tolist()
    assert out[-1]["error"] and not out[-1]["p_Survived"]
    # The same held-out rows as new labelled data: evaluate gives what the spec's test split gives.
    with open("labelled.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([rows[i] for i in held_out.tolist()])
    for args, folder in ((["--data", "labelled.csv"], "new"), ([], "split")):
        evaluated = runner.invoke(app, ["evaluate", str(run), *args, "--out", folder])
        assert evaluated.exit_code == 0, evaluated.output
    new, split = (json.loads(Path(f, "evaluation.json").read_text()) for f in ("new", "split"))
    assert new["samples"] == split["samples"] == len(held_out)
    assert new["metrics"] == pytest.approx(split["metrics"]) and new["confusion_matrix"] == split["confusion_matrix"]


@pytest.mark.slow
def test_texts_predict_one_per_line_through_the_tokenizer(here):
    for split, seed in (("train", 0), ("test", 1)):
        review_folders(here / "data" / "aclImdb" / split, seed=seed)
    run = _train("imdb_lstm.yaml", "data.max_length=40", "export.formats=[onnx, torchscript]")
    texts = [p.read_text().replace("\n", " ") for p in sorted((here / "data" / "aclImdb" / "test" / "pos").glob("*.txt"))[:5]]
    Path("reviews.txt").write_text("\n".join([*texts, "", "zyzzyva never seen"]) + "\n")
    result = runner.invoke(app, ["predict", str(run), "reviews.txt", "--out", "eager.json"])
    assert result.exit_code == 1 and "line 6: the text is empty" in result.stderr
    eager = json.loads(Path("eager.json").read_text())
    assert len(eager) == 7 and eager[-1]["class"] in ("neg", "pos")
    trained = load_trained(run)
    prepared = prepare_data(trained.spec.data, trained.spec.seed, torch.device("cpu"), log=lambda _: None)
    pos = trained.info.class_names.index("pos")
    positions = [i for i, y in enumerate(prepared.test.y.tolist()) if y == pos][:5]
    with torch.no_grad():
        probabilities = trained.model(prepared.test.x[positions]).softmax(1)
    assert [r["p_pos"] for r in eager[:5]] == pytest.approx(probabilities[:, pos].tolist(), abs=1e-6)
    assert runner.invoke(app, ["export", str(run), "--out", "exported", "-f", "onnx"]).exit_code == 0
    onnx = runner.invoke(app, ["predict", "exported", "reviews.txt", "--engine", "onnx", "--out", "onnx.json"])
    assert onnx.exit_code == 1  # the same empty line
    assert [r.get("class") for r in json.loads(Path("onnx.json").read_text())] == [r.get("class") for r in eager]


@pytest.mark.slow
def test_a_series_forecasts_each_window_in_the_files_units(here):
    daily_counts_csv(here / "data" / "covid" / "daily.csv")
    run = _train("covid_lstm.yaml")
    result = runner.invoke(app, ["predict", str(run), "data/covid/daily.csv", "--out", "all.json"])
    assert result.exit_code == 0, result.output
    forecasts = json.loads(Path("all.json").read_text())
    steps = sum(1 for _ in open("data/covid/daily.csv")) - 1
    assert len(forecasts) == steps - 1 - 8 + 1  # every complete window of first differences
    last = runner.invoke(app, ["predict", str(run), "data/covid/daily.csv", "--last", "--out", "last.json"])
    (only,) = json.loads(Path("last.json").read_text())
    assert only["input"] == forecasts[-1]["input"] and set(only) >= {"confirmed", "deaths", "recovered"}
    assert [only[c] for c in ("confirmed", "deaths", "recovered")] == pytest.approx(
        [forecasts[-1][c] for c in ("confirmed", "deaths", "recovered")], rel=1e-6)  # batched alike but for rounding
    # Back in the file's units: the model's scaled difference, unscaled, plus the last known total.
    trained = load_trained(run)
    data = trained.info.preprocessing
    rows = list(csv.DictReader(open("data/covid/daily.csv")))
    totals = torch.tensor([[float(r[c]) for c in data["columns"]] for r in rows], dtype=torch.float64)
    scaled = (totals.diff(dim=0) - torch.tensor(data["scaler"]["offset"])) / torch.tensor(data["scaler"]["scale"])
    with torch.no_grad():
        out = trained.model(scaled[-8:].float()[None])[0].double()
    expected = out * torch.tensor(data["scaler"]["scale"]) + torch.tensor(data["scaler"]["offset"]) + totals[-1]
    assert [only[c] for c in data["targets"]] == pytest.approx(expected.tolist(), rel=1e-5)


def test_the_stored_tokenizer_is_made_once_and_again_when_its_file_changes(tmp_path):
    """A server reads every text request through predict's reader: the tokenizer (30 ms to make for a
    20,000-word vocabulary) is made once for the same stored preprocessing, and afresh for a
    tokenizer.json exported again in its place."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    from modelspec.readers.raw import tokenizer_of

    def vocabulary(words: list[str]) -> Tokenizer:
        tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(["<pad>", "<unk>", *words])},
                                               unk_token="<unk>"))
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
        return tokenizer

    inline = {"tokenizer": json.loads(vocabulary(["good", "bad"]).to_str()), "max_length": 4}
    first = tokenizer_of(inline, None)
    assert tokenizer_of(inline, None) is first
    assert first.encode("bad good").ids == [3, 2, 0, 0]
    copied = {"tokenizer": json.loads(json.dumps(inline["tokenizer"])), "max_length": 4}
    assert tokenizer_of(copied, None) is not first  # another dict may be another vocabulary
    path = tmp_path / "tokenizer.json"
    vocabulary(["good", "bad"]).save(str(path))
    on_disk = {"tokenizer": "tokenizer.json", "max_length": 4}
    assert tokenizer_of(on_disk, tmp_path) is tokenizer_of(on_disk, tmp_path)
    vocabulary(["bad", "good", "fine"]).save(str(path))  # exported again: another size, another tokenizer
    assert tokenizer_of(on_disk, tmp_path).encode("bad good").ids == [2, 3, 0, 0]
