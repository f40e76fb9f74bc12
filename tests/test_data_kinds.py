"""Data beyond torchvision images: tables, texts, time series and image folders, on small files in
the real formats; what is fitted comes from the training split only and travels with the model."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import numpy as np
import pytest
import torch
from pydantic import TypeAdapter

from _data_files import daily_counts_csv, png_folders, review_folders, titanic_csv
from modelspec.data import prepare_data
from modelspec.errors import SpecError
from modelspec.load import loads_spec
from modelspec.spec.data import DataSpec

CPU = torch.device("cpu")
QUIET = dict(log=lambda _: None)


def data_spec(**keys) -> DataSpec:
    return TypeAdapter(DataSpec).validate_python(keys)


def prepared(seed: int = 0, **keys):
    return prepare_data(data_spec(**keys), seed, CPU, **QUIET)


def write_csv(path: Path, header: str, rows: list[str]) -> str:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return str(path)


# --------------------------------------------------------------------------------------------------
# tables


TITANIC_COLUMNS = {
    "Pclass": "categorical", "Sex": "categorical",
    "Embarked": {"categorical": {"missing_column": True}},
    "Age": {"numeric": {"fill": 0, "null_column": True}}, "Cabin": "null_indicator",
    "SibSp": {"numeric": {"fill": 0}}, "Parch": {"numeric": {"fill": 0}}, "Fare": {"numeric": {"fill": 0}},
}


def test_titanic_preprocessing_gives_the_notes_15_features(tmp_path):
    path = titanic_csv(tmp_path / "train.csv")
    data = prepared(dataset="csv", path=str(path), target="Survived", target_kind="binary",
                    features=list(TITANIC_COLUMNS), columns=TITANIC_COLUMNS, test_split=0.2)
    assert data.input_shape == (15,)
    assert data.preprocessing["features"] == [
        "Pclass_1", "Pclass_2", "Pclass_3", "Sex_female", "Sex_male", "Embarked_C", "Embarked_Q", "Embarked_S",
        "Embarked_nan", "Age", "Age_null", "Cabin_null", "SibSp", "Parch", "Fare"]
    assert data.train.y.dtype == torch.float32 and data.train.y.shape == (160,)
    assert set(data.train.y.unique().tolist()) == {0.0, 1.0}
    assert data.num_classes == 1 and data.target_names == ["Survived"]
    # Against pandas, the way the notes wrote it, on the same rows.
    import pandas as pd

    frame = pd.read_csv(path)
    train_rows = frame.iloc[_kept_rows(len(frame), 0.2, 0)]
    expected = pd.concat([
        pd.get_dummies(train_rows["Pclass"], prefix="Pclass"), pd.get_dummies(train_rows["Sex"], prefix="Sex"),
        pd.get_dummies(train_rows["Embarked"], prefix="Embarked", dummy_na=True),
        train_rows["Age"].fillna(0), train_rows["Age"].isna().rename("Age_null"),
        train_rows["Cabin"].isna().rename("Cabin_null"), train_rows[["SibSp", "Parch", "Fare"]]], axis=1)
    np.testing.assert_array_equal(data.train.x.numpy(), expected.to_numpy(dtype=np.float32))


def _kept_rows(n: int, fraction: float, seed: int) -> np.ndarray:
    from modelspec.readers.sources import carve

    return carve(n, fraction, seed)[0].numpy()


def test_fitted_statistics_come_from_the_training_rows_only(tmp_path):
    train = write_csv(tmp_path / "train.csv", "x,color,y", ["1,red,a", "2,blue,b", "3,,a", ",red,b"])
    test = write_csv(tmp_path / "test.csv", "x,color,y", ["1000,green,a", "2000,blue,b"])
    data = prepared(dataset="csv", path=train, test_path=test, target="y",
                    columns={"x": {"numeric": {"fill": "mean", "standardize": True, "null_column": True}},
                             "color": {"categorical": {"missing_column": True}}})
    x_column, color = data.preprocessing["columns"]
    assert x_column["fill"] == 2.0  # mean of 1, 2, 3: the test's 1000 and 2000 play no part
    filled = np.array([1, 2, 3, 2.0])
    assert x_column["mean"] == pytest.approx(filled.mean()) and x_column["std"] == pytest.approx(filled.std())
    assert color["categories"] == ["blue", "red"]  # sorted; the test's green is unknown
    assert data.preprocessing["features"] == ["x", "x_null", "color_blue", "color_red", "color_nan"]
    # green (never seen in training) lands in the missing slot, like a missing value
    assert data.test.x[0, 2:].tolist() == [0, 0, 1] and data.test.x[1, 2:].tolist() == [1, 0, 0]
    assert data.train.y.dtype == torch.int64 and data.class_names == ["a", "b"]


def test_validation_rows_are_not_fitted_either(tmp_path):
    rows = [f"{i},{i % 2}" for i in range(100)]
    path = write_csv(tmp_path / "t.csv", "x,y", rows)
    data = prepared(dataset="csv", path=path, target="y", val_split=0.5)
    kept = data.train_indices.numpy()
    assert data.preprocessing["columns"][0]["fill"] == pytest.approx(np.arange(100)[kept].mean())


def test_category_and_label_order_is_numeric_for_numbers_and_deterministic(tmp_path):
    path = write_csv(tmp_path / "t.csv", "level,y", ["10,2", "9,10", "10,1", "1,2"])
    data = prepared(dataset="csv", path=path, target="y", columns={"level": "categorical"})
    assert data.preprocessing["columns"][0]["categories"] == ["1", "9", "10"]
    assert data.class_names == ["1", "2", "10"] and data.num_classes == 3
    again = prepared(dataset="csv", path=path, target="y", columns={"level": "categorical"})
    assert again.preprocessing == data.preprocessing


def test_several_real_targets_are_float_columns(tmp_path):
    path = write_csv(tmp_path / "t.csv", "a,b,c", ["1,2.5,3", "4,5.5,6"])
    data = prepared(dataset="csv", path=path, target=["b", "c"], target_kind="real")
    assert data.train.y.dtype == torch.float32 and data.train.y.tolist() == [[2.5, 3.0], [5.5, 6.0]]
    assert data.num_classes is None and data.input_shape == (1,)


@pytest.mark.parametrize("keys, message", [
    ({"target": "nope"}, "has no column 'nope'"),
    ({"target": "y", "target_kind": "binary"}, "holds values other than 0 and 1: 2"),
    ({"target": "y", "features": ["x"], "columns": {"x": "numeric"}, "test_path": "missing.csv"}, "no file or folder at missing.csv"),
])
def test_table_mistakes_are_spec_errors(tmp_path, keys, message):
    path = write_csv(tmp_path / "t.csv", "x,y", ["1,2", "2,1", "3,0"])
    with pytest.raises(SpecError, match=message):
        prepared(dataset="csv", path=path, **keys)


def test_a_numeric_column_of_words_names_the_column(tmp_path):
    path = write_csv(tmp_path / "t.csv", "x,y", ["a,1", "b,0"])
    with pytest.raises(SpecError, match="column 'x' is numeric"):
        prepared(dataset="csv", path=path, target="y", columns={"x": "numeric"})


# --------------------------------------------------------------------------------------------------
# texts


def test_text_folders_tokenise_on_training_texts_only(tmp_path):
    review_folders(tmp_path / "train")
    (tmp_path / "test" / "pos").mkdir(parents=True)
    (tmp_path / "test" / "neg").mkdir(parents=True)
    (tmp_path / "test" / "pos" / "0.txt").write_text("Great zyzzyva WONDERFUL")
    (tmp_path / "test" / "neg" / "0.txt").write_text(" ".join(["awful"] * 30))
    data = prepared(dataset="text", path=str(tmp_path / "train"), test_path=str(tmp_path / "test"),
                    class_folders=["neg", "pos"], max_words=8, max_length=12)
    vocab = data.preprocessing["tokenizer"]["model"]["vocab"]
    assert vocab["<unk>"] == 0 and vocab["<pad>"] == 1 and len(vocab) == 10  # 8 words + 2 specials
    assert "zyzzyva" not in vocab
    assert data.class_names == ["neg", "pos"] and data.train.y.dtype == torch.int64
    first = data.test.x[data.test.y.tolist().index(1)].tolist()  # "great zyzzyva wonderful", lower-cased
    great = vocab.get("great", 0)
    assert first[:3] == [great, 0, vocab.get("wonderful", 0)] and first[3:] == [1] * 9  # unknown 0, padding 1
    assert data.test.x.shape == (2, 12) and data.input_shape == (12,)


def test_text_vocabulary_is_the_most_frequent_words_in_a_fixed_order(tmp_path):
    rows = ["text,label"] + ["b a c a b a,x"] + ["d d,y"]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    data = prepared(dataset="text", path=str(tmp_path / "t.csv"), max_words=3, max_length=4)
    vocab = data.preprocessing["tokenizer"]["model"]["vocab"]
    assert sorted(vocab, key=vocab.get) == ["<unk>", "<pad>", "a", "b", "d"]  # counts 3, 2, 2: ties by word
    assert data.train.x.tolist() == [[3, 2, 0, 2], [4, 4, 1, 1]]


def test_a_given_tokenizer_is_used_as_it_is(tmp_path):
    rows = ["text,label", "hello world,1", "hello there,0"]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    first = prepared(dataset="text", path=str(tmp_path / "t.csv"), max_length=3)
    (tmp_path / "tokenizer.json").write_text(json.dumps(first.preprocessing["tokenizer"]))
    again = prepared(dataset="text", path=str(tmp_path / "t.csv"), max_length=3,
                     tokenizer=str(tmp_path / "tokenizer.json"))
    assert torch.equal(first.train.x, again.train.x)


def test_binary_text_labels_are_float_with_the_second_label_as_one(tmp_path):
    (tmp_path / "t.jsonl").write_text('{"text": "good", "label": "pos"}\n{"text": "bad", "label": "neg"}\n')
    data = prepared(dataset="text", path=str(tmp_path / "t.jsonl"), target_kind="binary", max_length=2)
    assert data.train.y.tolist() == [1.0, 0.0] and data.num_classes == 1


# --------------------------------------------------------------------------------------------------
# time series


def test_time_series_windows_stay_inside_their_chronological_span(tmp_path):
    rows = [f"{t},{10 * t}" for t in range(40)]
    path = write_csv(tmp_path / "s.csv", "a,b", rows)
    data = prepared(dataset="time_series", path=path, features=["a", "b"], targets=["a"], window=4, horizon=2,
                    val_split=0.25, test_split=0.25, scale="minmax")
    # spans: test the last 10 steps (30..39), validation round(30 × 0.25) = 8 before it (22..29),
    # training 0..21; minmax fitted on training: a in [0, 21]
    assert data.preprocessing["scaler"]["offset"] == [0.0, 0.0] and data.preprocessing["scaler"]["scale"] == [21.0, 210.0]
    unscale = lambda v: v * 21.0  # noqa: E731
    train_last = unscale(data.train.x[:, -1, 0]).round()
    assert train_last.max() == 21 - 2  # the last window's target (step 21) is still in the span
    assert unscale(data.train.y).round().tolist() == [float(s + 3 + 2) for s in range(len(data.train.y))]
    assert unscale(data.val.x[:, 0, 0]).round().tolist() == [22.0, 23.0, 24.0]  # 8 steps: 3 windows of 4 + 2
    assert unscale(data.test.x[:, 0, 0]).round().tolist() == [30.0, 31.0, 32.0, 33.0, 34.0]
    assert data.input_shape == (4, 2) and data.train.y.shape == (len(data.train.y),)


def test_time_series_differences_and_several_targets(tmp_path):
    path = daily_counts_csv(tmp_path / "daily.csv", days=60)
    data = prepared(dataset="time_series", path=str(path), features=["confirmed", "deaths", "recovered"],
                    targets=["confirmed", "deaths", "recovered"], difference=True, window=8)
    import pandas as pd

    totals = pd.read_csv(path)[["confirmed", "deaths", "recovered"]].to_numpy()
    new = totals[1:] - totals[:-1]
    assert torch.equal(data.train.x[0], torch.tensor(new[:8], dtype=torch.float32))
    # The change after the last known total (row 8), then that total: the base of the forecast.
    assert torch.equal(data.train.y[0], torch.tensor([*new[8], *totals[8]], dtype=torch.float32))
    assert data.train.y.shape == (59 - 8, 3 + 3) and data.num_classes is None


# --------------------------------------------------------------------------------------------------
# image folders


def test_image_folder_test_classes_must_match_training(tmp_path):
    png_folders(tmp_path / "train", ["cat", "dog"])
    png_folders(tmp_path / "test", ["cat", "cow", "eel"])
    with pytest.raises(SpecError, match="extra cow, eel; missing dog"):
        prepared(dataset="image_folder", root=str(tmp_path))


def test_image_folder_num_classes_must_match(tmp_path):
    png_folders(tmp_path / "train", ["cat", "dog"])
    with pytest.raises(SpecError, match="num_classes=3, but .* has 2 class folders: cat, dog"):
        prepared(dataset="image_folder", root=str(tmp_path), num_classes=3)


def test_image_folder_binary_targets(tmp_path):
    png_folders(tmp_path / "train", ["airplane", "automobile"])
    data = prepared(dataset="image_folder", root=str(tmp_path))  # no test folder: no test split
    binary = prepared(dataset="image_folder", root=str(tmp_path), target_kind="binary")
    assert data.train.y.dtype == torch.int64 and binary.train.y.dtype == torch.float32
    assert torch.equal(binary.train.y, data.train.y.float()) and binary.num_classes == 1
    assert binary.class_names == ["airplane", "automobile"] and binary.test is None


def test_to_tensor_is_torchvisions_to_tensor_bit_for_bit_on_both_paths(tmp_path):
    from torchvision import datasets, transforms

    png_folders(tmp_path / "train", ["a", "b"], per_class=4, size=16)
    reference = datasets.ImageFolder(str(tmp_path / "train"), transform=transforms.ToTensor())
    expected = torch.stack([reference[i][0] for i in range(len(reference))])
    device_path = prepared(dataset="image_folder", root=str(tmp_path))
    assert torch.equal(device_path.train.x, expected)
    from modelspec.data import make_feeds

    spec = data_spec(dataset="image_folder", root=str(tmp_path), loader="dataloader", shuffle=False, batch_size=100)
    loader_path = prepare_data(spec, 0, CPU, **QUIET)
    train, _, _ = make_feeds(loader_path, spec, None)
    x, _ = next(train.batches())
    assert loader_path.path == "dataloader" and torch.equal(x, expected)


def test_num_workers_on_the_device_path_is_said(tmp_path):
    from modelspec.data import describe

    png_folders(tmp_path / "train", ["a", "b"])
    spec = data_spec(dataset="image_folder", root=str(tmp_path), num_workers=2)
    assert "num_workers=2 unused" in describe(prepare_data(spec, 0, CPU, **QUIET), spec)


# --------------------------------------------------------------------------------------------------
# torchvision sets


def test_a_missing_cifar10_names_the_folder_torchvision_reads(tmp_path):
    with pytest.raises(SpecError) as caught:
        prepared(dataset="cifar10", root=str(tmp_path))
    assert f"cifar10 is not in {tmp_path / 'cifar-10-batches-py'}/" in str(caught.value)


def test_a_failed_download_says_why(tmp_path, monkeypatch):
    import torchvision

    def refuse(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://x/, got:\n"
                           "<urlopen error [Errno -3] Temporary failure in name resolution>\n")

    monkeypatch.setattr(torchvision.datasets, "MNIST", refuse)
    with pytest.raises(SpecError, match=r"failed: Error downloading train-images-idx3-ubyte.gz: <urlopen error"):
        prepared(dataset="mnist", root=str(tmp_path), download=True)


# --------------------------------------------------------------------------------------------------
# the spec


@pytest.mark.parametrize("text, message", [
    ("{dataset: mnist, train_dir: x}", "data.train_dir: 'train_dir' only applies to dataset image_folder, not mnist"),
    ("{dataset: csv, path: a.csv, target: y, columns: {a: categorcal}}", "unknown column treatment 'categorcal'"),
    ("{dataset: csv, path: a.csv, target: [a, b]}", "class labels come from one target column"),
    ("{dataset: csv, path: a.csv, target: y, features: [a], columns: {b: numeric}}", "'b' has a treatment but is not in features"),
    ("{dataset: text, path: a.csv, target_kind: real}", "data.target_kind: expected 'classes' or 'binary'"),
    ("{dataset: time_series, path: a.csv, features: [a], targets: [a]}", "data.window: missing required key 'window'"),
    ("{dataset: image_folder, target_kind: binary, num_classes: 2}", "num_classes means nothing for binary targets"),
])
def test_data_kinds_refuse_keys_that_are_not_theirs(text, message):
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        loads_spec(f"name: t\ndata: {text}\nmodel: [flatten]\n", "bad.yaml")


def test_text_shapes_and_vocabulary_are_checked_before_any_data_is_read():
    text = dedent("""\
        name: t
        data: {dataset: text, path: nowhere.csv, max_words: 100, max_length: 20, num_classes: 2}
        model:
          - embedding: {num_embeddings: 50, embedding_dim: 8}
          - lstm: {hidden_size: 4}
          - linear: {out_features: num_classes}
        """)
    with pytest.raises(SpecError, match="vocabulary of 102 tokens"):
        loads_spec(text, "bad.yaml")


def test_a_num_classes_that_disagrees_with_the_labels_is_an_error(tmp_path):
    path = write_csv(tmp_path / "t.csv", "x,y", ["1,a", "2,b"])
    with pytest.raises(SpecError, match="num_classes=3, but .* has 2 labels: a, b"):
        prepared(dataset="csv", path=path, target="y", num_classes=3)


def test_a_grid_may_vary_a_column_treatment():
    text = dedent("""\
        name: t
        data:
          dataset: csv
          path: t.csv
          target: y
          features: [age]
          columns: {age: {numeric: {fill: 0}}}
        model: [{linear: {out_features: num_classes}}]
        grid: {data.columns.age.fill: [0, median]}
        """)
    runs = loads_spec(text).runs()
    assert [run.spec.data.columns["age"].fill for run in runs] == [0, "median"]


def test_a_spec_stored_before_the_data_kinds_still_loads():
    """Weights files hold the resolved spec; the old flat data section had every kind's keys."""
    flat = {"dataset": "fashion_mnist", "root": "data", "download": False, "transforms": [{"type": "to_tensor"}],
            "batch_size": 64, "eval_batch_size": None, "shuffle": True, "num_workers": 0, "pin_memory": False,
            "drop_last": False, "val_split": 0.0, "loader": "auto", "input_shape": None, "num_classes": None,
            "train_dir": "train", "test_dir": "test", "size": 1024, "test_size": 256, "vocab_size": None, "seed": 0}
    assert data_spec(**flat) == data_spec(dataset="fashion_mnist")
    with pytest.raises(ValueError, match="fashion_mnist.train_dir"):
        data_spec(**{**flat, "train_dir": "elsewhere"})


@pytest.mark.parametrize("setting, expected", [(None, 16), (5, 5)])
def test_validation_and_test_batches_are_twice_the_training_batch_unless_set(setting, expected):
    from modelspec.data import make_feeds

    text = dedent("""\
        name: t
        data: {dataset: synthetic, input_shape: [4], num_classes: 2, size: 64, test_size: 40, batch_size: 8, val_split: 0.25}
        model: [{linear: {out_features: num_classes}}]
        """)
    spec = loads_spec(text, "t.yaml", [f"data.eval_batch_size={setting}"] if setting else []).spec
    train, val, test = make_feeds(prepare_data(spec.data, 0, torch.device("cpu"), log=lambda _: None), spec.data, None)
    assert train.batch_size == 8 and val.batch_size == test.batch_size == expected
    assert [len(y) for _, y in val.batches()] == ([16] if setting is None else [5, 5, 5, 1])  # 16 samples
