"""The data-kind registry (issue #21): a kind is one module of modelspec/spec/data/, discovered there;
it owns its whole life through its hooks, and the runtime (predict, evaluate, the data
orchestration, the runner, the CLI) looks kinds up in the registry and calls those hooks, never
naming a kind. The readers (modelspec/readers) know nothing of the spec's classes."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import sys
from pathlib import Path

import pytest
import torch
from pydantic import TypeAdapter

import modelspec.spec.data as data_package
from modelspec.errors import SpecError
from modelspec.predict.inputs import read_inputs, unscale
from modelspec.predict.model import read_preprocessing
from modelspec.readers.sources import Item
from modelspec.spec.data import (DATA_KINDS, DATASET_NAMES, DATASET_NAMES_OF, LOADER_KEYS, CsvData, DataBase,
                                 DataSpec, LoaderSettings, SyntheticData, kind_of, reads_inputs)
from modelspec.spec.data.tabular import TREATMENT_KINDS

PACKAGE = Path(__file__).resolve().parents[1] / "modelspec"
HOOKS = ("static_shape", "check_files", "open", "read_inputs", "read_labelled", "unscale", "stored_keys")


def _defined_kinds() -> list[type]:
    """Every class with a `dataset` Literal defined in a module of the package, found by reading
    the modules themselves."""
    found = []
    for info in sorted(pkgutil.iter_modules(data_package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"modelspec.spec.data.{info.name}")
        found += [cls for _, cls in inspect.getmembers(module, inspect.isclass)
                  if cls.__module__ == module.__name__ and "dataset" in getattr(cls, "model_fields", {})]
    return found


def test_every_kind_of_the_package_is_discovered_once_in_module_order():
    assert set(DATA_KINDS) == set(_defined_kinds())
    assert len(DATA_KINDS) == len(set(DATA_KINDS)) and len(DATASET_NAMES) == len(set(DATASET_NAMES))
    modules = [kind.__module__ for kind in DATA_KINDS]
    assert modules == sorted(modules)  # deterministic: by module name, then as each module defines them
    assert {"fashion_mnist", "image_folder", "synthetic", "csv", "text", "time_series"} <= set(DATASET_NAMES)
    for kind in DATA_KINDS:
        for name in DATASET_NAMES_OF[kind]:
            assert kind_of(name) is kind
    assert kind_of("parquet") is None


TOY_KIND = """
from typing import Literal

from modelspec.spec.data._base import DataBase


class ToyData(DataBase):
    dataset: Literal["toy"]
    \"\"\"A kind added as one module.\"\"\"

    def static_shape(self):
        return (3,), 2
"""


def test_a_new_kind_is_one_module_of_the_package(tmp_path, monkeypatch):
    (tmp_path / "zz_toy.py").write_text(TOY_KIND)
    monkeypatch.setattr(data_package, "__path__", [*data_package.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "modelspec.spec.data.zz_toy", raising=False)
    try:
        kinds = data_package._discover()
    finally:
        sys.modules.pop("modelspec.spec.data.zz_toy", None)
    assert [k.__name__ for k in kinds] == [k.__name__ for k in DATA_KINDS] + ["ToyData"]
    assert data_package._names(kinds[-1]) == ("toy",)


@pytest.mark.parametrize("kind", DATA_KINDS, ids=lambda k: k.__name__)
def test_every_kind_has_the_hooks_and_opens_its_own_splits(kind):
    for hook in HOOKS:
        assert hasattr(kind, hook), hook
    assert kind.open is not DataBase.open and kind.static_shape is not DataBase.static_shape
    assert all(isinstance(key, str) for key in kind.stored_keys)
    for name, field in kind.model_fields.items():  # `modelspec schema` shows each one
        assert field.description, f"{kind.__name__}.{name} has no description"


def test_every_treatment_field_has_a_description_and_fits_itself():
    for treatment in TREATMENT_KINDS:
        assert treatment.fit is not TREATMENT_KINDS[0].__mro__[1].fit, treatment
        for name, field in treatment.model_fields.items():
            assert field.description, f"{treatment.__name__}.{name}"


def test_predict_asks_the_kind_the_registry_names(monkeypatch):
    calls = []

    def fake(cls, arguments, preprocessing, **options):
        calls.append((cls, list(arguments), options))
        return [Item("row 1", torch.zeros(2))]

    monkeypatch.setattr(CsvData, "read_inputs", classmethod(fake))
    items = read_inputs(["rows.parquet"], {"dataset": "csv"}, last=True)
    assert [i.name for i in items] == ["row 1"] and calls == [(CsvData, ["rows.parquet"], {"last": True})]


def test_a_kind_that_reads_no_raw_inputs_is_named_with_the_kinds_that_do():
    assert not reads_inputs(SyntheticData) and reads_inputs(CsvData)
    readers = sorted(name for kind in DATA_KINDS if reads_inputs(kind) for name in DATASET_NAMES_OF[kind])
    for dataset in ("synthetic", "no_such_data"):
        with pytest.raises(SpecError, match=f"does not read raw inputs for {dataset} data") as caught:
            read_inputs(["x.csv"], {"dataset": dataset})
        assert caught.value.issues[0].hint == "kinds it reads: " + ", ".join(readers)
    rows = [{"y": 1.0}]
    unscale(rows, [], {"dataset": "synthetic"})  # a kind in its data's units leaves the rows alone
    assert rows == [{"y": 1.0}]


def test_evaluate_data_refuses_a_kind_without_labelled_files():
    data = TypeAdapter(DataSpec).validate_python({"dataset": "synthetic", "input_shape": [4], "num_classes": 2})
    with pytest.raises(SpecError, match="this model was trained on synthetic data"):
        data.read_labelled(Path("new.csv"), {}, None)


@pytest.mark.parametrize("dataset, lacks", [("mnist", "transforms"), ("image_folder", "normalize"),
                                            ("csv", "data"), ("time_series", "data")])
def test_an_exports_preprocessing_is_checked_for_what_its_kind_reads(tmp_path, dataset, lacks):
    stored = {"dataset": dataset, "input_shape": [1, 4, 4], "input_dtype": "float32", "task": {},
              "transforms": [], "normalize": None, "data": {}}
    del stored[lacks]
    path = tmp_path / "preprocessing.json"
    path.write_text(json.dumps(stored))
    with pytest.raises(SpecError, match=f"lacks the key '{lacks}'"):
        read_preprocessing(path)
    stored[lacks] = {} if lacks != "transforms" else []
    path.write_text(json.dumps(stored))
    assert read_preprocessing(path)["dataset"] == dataset


def test_the_loader_keys_are_read_off_their_class_and_left_out_of_the_datas_identity():
    assert LOADER_KEYS == set(LoaderSettings.model_fields) >= {"batch_size", "shuffle", "num_workers"}
    a = TypeAdapter(DataSpec).validate_python({"dataset": "synthetic", "input_shape": [4], "num_classes": 2})
    b = a.model_copy(update={"batch_size": 7, "num_workers": 2})
    assert a.identity() == b.identity() and not LOADER_KEYS & set(a.identity())
    assert a.model_copy(update={"size": 99}).identity() != a.identity()
    assert "val_split" not in a.identity("val_split")


def test_an_old_flat_data_section_loses_the_other_kinds_defaults_only():
    old = {"dataset": "csv", "path": "t.csv", "target": "y", "root": "data", "download": False,
           "transforms": [{"type": "to_tensor"}], "train_dir": "train", "size": 1024, "seed": 0,
           "vocab_size": None, "max_length": 200}
    data = TypeAdapter(DataSpec).validate_python(old)
    assert isinstance(data, CsvData) and data.path == "t.csv"
    with pytest.raises(ValueError, match="root"):  # not a default of any kind: a real mistake
        TypeAdapter(DataSpec).validate_python({**old, "root": "elsewhere"})


# --- the runtime names no kind; the readers import no spec class


def _strings(folder: Path):
    for file in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                yield file, node.lineno, node.value


@pytest.mark.parametrize("package", ["predict", "data", "runner", "cli"])
def test_no_runtime_module_names_a_dataset(package):
    named = [f"{f.relative_to(PACKAGE.parent)}:{line}: {value!r}" for f, line, value in _strings(PACKAGE / package)
             if value in DATASET_NAMES]
    assert not named, "dispatch by the registry, not by name:\n" + "\n".join(named)


def test_the_readers_import_only_the_lowest_layer():
    allowed = {"errors", "fileio", "spec.base"}
    for file in sorted((PACKAGE / "readers").rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:  # out of modelspec.readers
                assert (node.module or "") in allowed, f"{file.name} imports ..{node.module}"
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("modelspec"):
                assert node.module.removeprefix("modelspec.") in allowed, f"{file.name} imports {node.module}"
