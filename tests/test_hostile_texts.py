"""Hostile text inputs, for training, evaluate and predict: a row without a label is a located data
error (never a class named `nan`), file kinds are told by suffix in any case, a file that is not
UTF-8 is one message naming the file and the byte offset, and a max_length too large to hold is
refused with its memory estimate: at validate time per text, at run time for the whole data set."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import pytest
import torch
from pydantic import TypeAdapter
from typer.testing import CliRunner

from modelspec.cli.main import app
from modelspec.data import prepare_data
from modelspec.readers.text import check_token_memory, encode_texts, fit_tokenizer
from modelspec.errors import SpecError
from modelspec.load import loads_spec
from modelspec.spec.data import DataSpec

runner = CliRunner()
LATIN1 = "caf\xe9 cr\xe8me,pos\n".encode("latin-1")


def prepared(**keys):
    return prepare_data(TypeAdapter(DataSpec).validate_python({"dataset": "text", **keys}), 0,
                        torch.device("cpu"), log=lambda _: None)


def _error(**keys) -> str:
    with pytest.raises(SpecError) as caught:
        prepared(**keys)
    return str(caught.value)


# --------------------------------------------------------------------------------------------------
# labels


@pytest.mark.parametrize("name, content, where", [
    ("t.jsonl", '{"text": "good", "label": "pos"}\n{"text": "bad"}\n{"text": "ok", "label": "neg"}\n', "line 2"),
    ("t.jsonl", '{"text": "good", "label": "pos"}\n\n{"text": "bad", "label": null}\n{"text": "x", "label": "neg"}\n',
     "line 3"),
    ("t.csv", "text,label\ngood,pos\nbad,\nok,neg\n", "row 2"),
    ("t.csv", "text,label\ngood,1\nbad,  \nok,0\n", "row 2"),
    ("t.tsv", "text\tlabel\ngood\tpos\nok\tneg\nbad\n", "row 3"),
])
def test_a_text_without_a_label_is_a_located_data_error(tmp_path, name, content, where):
    (tmp_path / name).write_text(content)
    message = _error(path=str(tmp_path / name), max_length=4)
    assert str(tmp_path / name) in message and "without a label in column 'label'" in message
    assert message.split("column 'label': ")[1].startswith(where + "\n") and "nan" not in message


def test_na_is_a_label_as_written_not_a_missing_one(tmp_path):
    (tmp_path / "t.csv").write_text("text,label\nin toronto,NA\nin paris,EU\n")
    assert prepared(path=str(tmp_path / "t.csv"), max_length=4).preprocessing["target"]["classes"] == ["EU", "NA"]


def test_a_test_file_without_a_label_is_refused_not_an_unseen_class(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\ngood,pos\nbad,neg\n")
    (tmp_path / "test.jsonl").write_text('{"text": "fine", "label": "pos"}\n{"text": "fine"}\n')
    message = _error(path=str(tmp_path / "train.csv"), test_path=str(tmp_path / "test.jsonl"), max_length=4)
    assert "test.jsonl has 1 sample(s) without a label in column 'label': line 2" in message


def test_a_tables_test_file_without_a_label_is_refused(tmp_path):
    (tmp_path / "train.csv").write_text("x,y\n1,a\n2,b\n3,a\n")
    (tmp_path / "test.csv").write_text("x,y\n1,a\n2,\n")
    with pytest.raises(SpecError, match=r"test.csv has 1 sample\(s\) without a label"):
        prepare_data(TypeAdapter(DataSpec).validate_python(
            {"dataset": "csv", "path": str(tmp_path / "train.csv"), "test_path": str(tmp_path / "test.csv"),
             "target": "y"}), 0, torch.device("cpu"), log=lambda _: None)


def test_run_refuses_a_missing_label_with_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("t.jsonl").write_text('{"text": "good", "label": "pos"}\n{"text": "bad"}\n')
    Path("s.yaml").write_text(dedent("""\
        name: t
        data: {dataset: text, path: t.jsonl, max_length: 4}
        model: [{embedding: {num_embeddings: 10002, embedding_dim: 2}}, flatten,
                {linear: {out_features: num_classes}}]
        train: {epochs: 1}
        """))
    result = runner.invoke(app, ["run", "s.yaml", "--quiet", "--set", "tracking.dir=runs"])
    assert result.exit_code == 2
    assert "t.jsonl has 1 sample(s) without a label in column 'label': line 2" in result.output
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------------------------------
# suffixes in any case


@pytest.mark.parametrize("name, content", [
    ("T.JSONL", '{"text": "good, fine", "label": "pos"}\n{"text": "bad", "label": "neg"}\n'),
    ("T.CSV", 'text,label\n"good, fine",pos\nbad,neg\n'),
    ("T.Tsv", "text\tlabel\ngood, fine\tpos\nbad\tneg\n"),
])
def test_upper_case_suffixes_are_the_same_kinds(tmp_path, name, content):
    (tmp_path / name).write_text(content)
    data = prepared(path=str(tmp_path / name), max_length=3)
    assert data.preprocessing["target"]["classes"] == ["neg", "pos"] and data.train.x.shape == (2, 3)


def test_a_text_folder_reads_upper_case_txt_files(tmp_path):
    for label in ("neg", "pos"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "A.TXT").write_text(f"{label} words")
        (tmp_path / label / "b.txt").write_text(f"{label} more")
    assert len(prepared(path=str(tmp_path), max_length=3).train.x) == 4


# --------------------------------------------------------------------------------------------------
# not UTF-8


@pytest.mark.parametrize("name, content, offset", [
    ("t.csv", b"text,label\n" + LATIN1 + b"bad,neg\n", "offset 14 (line 2)"),
    ("t.jsonl", b'{"text": "ok", "label": "neg"}\n{"text": "caf\xe9", "label": "pos"}\n', "offset 44 (line 2)"),
])
def test_a_training_file_that_is_not_utf8_names_the_byte(tmp_path, name, content, offset):
    (tmp_path / name).write_bytes(content)
    message = _error(path=str(tmp_path / name), max_length=4)
    assert f"{tmp_path / name} is not UTF-8 text: byte 0xe9 at {offset}" in message and "data.path" in message


def test_a_text_folder_file_that_is_not_utf8_names_the_file(tmp_path):
    for label in ("neg", "pos"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "0.txt").write_text(f"{label} words")
    (tmp_path / "pos" / "1.txt").write_bytes(b"tr\xe8s bien")
    message = _error(path=str(tmp_path), max_length=4)
    assert f"{tmp_path / 'pos' / '1.txt'} is not UTF-8 text: byte 0xe8 at offset 2 (line 1)" in message


# --------------------------------------------------------------------------------------------------
# max_length


def test_a_huge_max_length_is_refused_at_validate_time_with_the_estimate():
    text = dedent("""\
        name: t
        data: {dataset: text, path: nowhere.csv, max_words: 100, max_length: 100000000, num_classes: 2}
        model: [{embedding: {num_embeddings: 102, embedding_dim: 8}}, flatten, {linear: {out_features: 2}}]
        """)
    with pytest.raises(SpecError) as caught:
        loads_spec(text, "bad.yaml")
    message = str(caught.value)
    assert "bad.yaml:2:" in message and "data.max_length" in message
    assert "max_length=100,000,000 tokens" in message and "GB" in message and "refuses more than 1,000,000" in message


def test_a_data_set_whose_token_ids_exceed_memory_is_refused_before_allocating():
    with pytest.raises(SpecError, match=r"25,000 texts of max_length=100,000 tokens are 20.0 GB of int64 token ids, "
                                        r"more than half this machine's memory \(16.0 GB\)"):
        check_token_memory(25_000, 100_000, memory=16 * 10**9)
    check_token_memory(25_000, 200, memory=16 * 10**9)  # IMDB at its usual length: 40 MB


def test_opening_texts_checks_the_whole_data_sets_token_ids_first(tmp_path, monkeypatch):
    import modelspec.readers.text as text

    (tmp_path / "t.csv").write_text("text,label\n" + "".join(f"w{i},{i % 2}\n" for i in range(10)))
    encoded = []
    monkeypatch.setattr(text, "physical_memory", lambda: 2 * 10 * 1000 * 8 - 1)  # 10 texts of 1,000 ids: 80 kB
    monkeypatch.setattr(text, "encode_texts", lambda *a: encoded.append(a))
    message = _error(path=str(tmp_path / "t.csv"), max_length=1000, test_split=0.3)
    assert "10 texts of max_length=1,000 tokens are 0.0 GB of int64 token ids" in message
    assert "data.max_length" in message and not encoded


def test_texts_are_encoded_in_bounded_chunks_to_the_same_ids(monkeypatch):
    import modelspec.readers.text as text

    data = TypeAdapter(DataSpec).validate_python({"dataset": "text", "path": "x.csv", "max_length": 5})
    texts = [f"word{i % 7} and more word{i % 3}" for i in range(50)] + [""]
    tokenizer = text._fixed_length(fit_tokenizer(data, texts), 5)
    whole = torch.tensor([e.ids for e in tokenizer.encode_batch(texts)], dtype=torch.long)
    monkeypatch.setattr(text, "ENCODE_TOKENS", 12)  # two texts a chunk
    assert torch.equal(encode_texts(tokenizer, texts), whole)


# --------------------------------------------------------------------------------------------------
# predict and evaluate on a trained text model

SPEC = """\
name: reviews
seed: 0
data: {{dataset: text, path: {path}, max_length: 6, batch_size: 8}}
model: [{{embedding: {{num_embeddings: 10002, embedding_dim: 4}}}}, flatten,
        {{linear: {{out_features: num_classes}}}}]
train: {{epochs: 1, optimizer: {{name: adam, lr: 0.01}}}}
"""


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    from modelspec.runner import run_grid

    folder = tmp_path_factory.mktemp("texts")
    words, labels = ("great fun", "dull waste", "so so"), ("pos", "neg", "meh")
    rows = ["text,label"] + [f"{words[i % 3]} film,{labels[i % 3]}" for i in range(24)]
    (folder / "train.csv").write_text("\n".join(rows) + "\n")
    loaded = loads_spec(SPEC.format(path=folder / "train.csv"), "spec.yaml", [f"tracking.dir={folder / 'runs'}"])
    result = run_grid(loaded, quiet=True, log=lambda _: None)
    assert not result.failed
    return result.folder / "00_run"


@pytest.mark.parametrize("name, content, names", [
    ("R.CSV", 'id,text\n7,"great, fun"\n8,dull\n', ["row 1", "row 2"]),
    ("R.JSONL", '{"id": 7, "text": "great fun"}\n\n{"id": 8, "text": "dull"}\n', ["line 1", "line 3"]),
    ("R.Tsv", "id\ttext\n7\tgreat, fun\n8\tdull\n", ["row 1", "row 2"]),
])
def test_predict_reads_upper_case_suffixes_as_tables(text_run, tmp_path, name, content, names):
    (tmp_path / name).write_text(content)
    result = runner.invoke(app, ["predict", str(text_run), str(tmp_path / name), "--out", str(tmp_path / "o.json")])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "o.json").read_text())
    assert [r["input"] for r in rows] == names and [str(r["id"]) for r in rows] == ["7", "8"]


@pytest.mark.parametrize("name, content, where", [
    ("r.txt", b"great fun\ncaf\xe9 film\n", "byte 0xe9 at offset 13 (line 2)"),
    ("r.csv", b"text\ngreat\ncaf\xe9\n", "byte 0xe9 at offset 14 (line 3)"),
    ("r.jsonl", b'{"text": "caf\xe9"}\n', "byte 0xe9 at offset 13 (line 1)"),
])
def test_predict_reports_a_file_that_is_not_utf8_and_exits_1(text_run, tmp_path, name, content, where):
    (tmp_path / name).write_bytes(content)
    result = runner.invoke(app, ["predict", str(text_run), str(tmp_path / name)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"error: {tmp_path / name}: is not UTF-8 text: {where}" in result.stderr


def test_predict_splits_a_txt_file_at_newlines_only(text_run, tmp_path):
    (tmp_path / "r.txt").write_text("great\u2028fun\r\ndull\x0cfilm\n")
    result = runner.invoke(app, ["predict", str(text_run), str(tmp_path / "r.txt"), "--out", str(tmp_path / "o.json")])
    assert result.exit_code == 0, result.output
    assert [r["input"] for r in json.loads((tmp_path / "o.json").read_text())] == ["line 1", "line 2"]


@pytest.mark.parametrize("content, message", [
    (b"text,label\ngreat fun,pos\ncaf\xe9,neg\n", "is not UTF-8 text: byte 0xe9 at offset 28 (line 3)"),
    (b"text,label\ngreat fun,pos\ndull,\n", "has 1 sample(s) without a label in column 'label': row 2"),
])
def test_evaluate_refuses_bad_labelled_texts_with_exit_2(text_run, tmp_path, content, message):
    (tmp_path / "new.csv").write_bytes(content)
    result = runner.invoke(app, ["evaluate", str(text_run), "--data", str(tmp_path / "new.csv"),
                                 "--out", str(tmp_path / "e")])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_other_file_kinds_are_told_by_suffix_in_any_case(tmp_path):
    from modelspec.spec.layers.torchvision import _is_file

    assert _is_file("RESNET18.PTH") and _is_file("weights.Pt") and not _is_file("IMAGENET1K_V1")
    (tmp_path / "S.YAML").write_text("name: s\n")
    result = runner.invoke(app, ["export", str(tmp_path / "S.YAML"), "--out", str(tmp_path / "e")])
    assert result.exit_code == 2 and "is a spec; give the weights to export with --weights" in result.output
