"""Grids: how axes expand into runs, how a run's spec is made, and what validate checks of them."""

from __future__ import annotations

from textwrap import dedent

from modelspec.load import loads_spec
from modelspec.spec.paths import parse_path, set_path

SPEC = dedent("""\
    name: g
    data: {dataset: synthetic, input_shape: [6], num_classes: 3}
    model:
      - linear: {out_features: 8}
      - relu
      - linear: {out_features: num_classes}
    grid:
      model[0].linear.out_features: [4, 8]
      train.optimizer: [sgd, {adam: {lr: 0.01}}]
    """)


def test_runs_are_the_product_of_the_axes_last_axis_fastest():
    runs = loads_spec(SPEC).runs()
    assert [run.name for run in runs] == [
        "out_features=4,optimizer=sgd",
        "out_features=4,optimizer={'adam': {'lr': 0.01}}",
        "out_features=8,optimizer=sgd",
        "out_features=8,optimizer={'adam': {'lr': 0.01}}",
    ]
    assert [run.spec.layers[0].out_features for run in runs] == [4, 4, 8, 8]
    assert [run.spec.train.optimizer.name for run in runs] == ["sgd", "adam", "sgd", "adam"]


def test_a_grid_key_reaches_through_the_one_key_layer_form():
    # `model[0].out_features` and `model[0].linear.out_features` name the same value.
    short = SPEC.replace("model[0].linear.out_features", "model[0].out_features")
    assert [r.spec.layers[0].out_features for r in loads_spec(short).runs()] == [4, 4, 8, 8]


def test_set_path_leaves_the_original_data_as_it_was():
    raw = {"model": [{"linear": {"out_features": 8}}], "train": {"epochs": 3}}
    changed = set_path(raw, parse_path("model[0].out_features"), 5)
    assert changed == {"model": [{"linear": {"out_features": 5}}], "train": {"epochs": 3}}
    assert raw == {"model": [{"linear": {"out_features": 8}}], "train": {"epochs": 3}}
    assert set_path(raw, ("train", "optimizer", "lr"), 0.1)["train"] == {"epochs": 3, "optimizer": {"lr": 0.1}}


def test_the_grid_key_after_grid_dot_is_one_key():
    loaded = loads_spec(SPEC, overrides=["grid.train.epochs=[1, 2, 3]"])
    assert loaded.spec.grid["train.epochs"] == [1, 2, 3]
    assert len(loaded.runs()) == 12


def test_a_grid_of_many_architectures_is_shape_checked_within_a_budget():
    widths = ", ".join(str(w) for w in range(1, 301))
    text = dedent(f"""\
        name: wide
        data: {{dataset: synthetic, input_shape: [6], num_classes: 3}}
        model: [&l {{linear: {{out_features: 8}}}}, {", ".join(["*l"] * 20)}, {{linear: {{out_features: 3}}}}]
        grid:
          model[0].linear.out_features: [{widths}]
        """)
    loaded = loads_spec(text)
    assert len(loaded.runs()) == 300
    assert "the others are checked as they run" in loaded.notes[-1]
