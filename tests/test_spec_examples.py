"""The example specs: every one validates, and fashion_bn.yaml compiles to the networks a person
would write by hand in PyTorch (same parameters, same state_dict, same output)."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest
import torch
from torch import nn

from modelspec.compile import build_model, count_parameters, infer_shapes
from modelspec.compile.task import resolve_task, targets_of
from modelspec.load import load_spec, loads_spec
from modelspec.spec.data import static_shape
from modelspec.spec.root import Spec

from _specs import example_specs

SPECS = example_specs()
# Shapes only the data knows (an image folder's size, a table's one-hot width): checked at run time.
STAND_IN_SHAPES = {"titanic.yaml": (15,)}


@pytest.mark.parametrize("path", SPECS)
def test_every_example_spec_validates_and_compiles(path):
    loaded = load_spec(path)
    input_shape, num_classes = static_shape(loaded.spec.data)
    input_shape = input_shape or STAND_IN_SHAPES[path.name]
    tokens = loaded.spec.data.tokens
    for run in loaded.runs():
        model = build_model(run.spec.layers, input_shape, num_classes, tokens=tokens)
        shapes = infer_shapes(run.spec.layers, input_shape, num_classes, tokens=tokens)
        assert count_parameters(model) == shapes.parameters
        # The head fits the task the loss and the data make (one score per class, one logit, ...).
        targets = targets_of(run.spec.data.target_kind, num_classes, run.spec.data.target_count)
        task = resolve_task(run.spec.train, shapes.output_shape, targets, ("model",))
        assert shapes.output_shape == (task.outputs,)


def hand_written(batch_norm: bool) -> nn.Sequential:
    """fashion_bn.yaml's networks as they would be written without modelspec."""
    norm_2d = [nn.BatchNorm2d(6)] if batch_norm else []
    norm_1d = [nn.BatchNorm1d(120)] if batch_norm else []
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5), nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2),
        *norm_2d,
        nn.Conv2d(6, 12, kernel_size=5), nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(12 * 4 * 4, 120), nn.ReLU(),
        *norm_1d,
        nn.Linear(120, 60), nn.ReLU(),
        nn.Linear(60, 10),
    )


@pytest.mark.parametrize("network, batch_norm", [("no_batch_norm", False), ("batch_norm", True)])
def test_fashion_bn_compiles_to_the_hand_written_network(fashion_spec, network, batch_norm):
    spec = load_spec(fashion_spec).spec
    input_shape, num_classes = static_shape(spec.data)
    assert (input_shape, num_classes) == ((1, 28, 28), 10)

    torch.manual_seed(0)
    compiled = build_model(spec.all_networks[network], input_shape, num_classes)
    expected = hand_written(batch_norm)

    assert count_parameters(compiled) == count_parameters(expected)
    assert infer_shapes(spec.all_networks[network], input_shape, num_classes).parameters == count_parameters(expected)
    assert {k: v.shape for k, v in compiled.state_dict().items()} == {
        k: v.shape for k, v in expected.state_dict().items()
    }
    # Same modules in the same order, so the hand-written weights load into the compiled network
    # and both compute the same function.
    compiled.load_state_dict(expected.state_dict())
    batch = torch.randn(4, 1, 28, 28)
    compiled.eval(), expected.eval()
    with torch.no_grad():
        out = compiled(batch)
        assert out.shape == (4, 10)
        torch.testing.assert_close(out, expected(batch))


def test_fashion_bn_parameter_counts_are_the_known_ones(fashion_spec):
    # The numbers `modelspec summary` prints; by hand: conv 156 + 1,812, linear 23,160 + 7,260 + 610,
    # and batch norm's weight and bias: 2×6 + 2×120.
    spec = load_spec(fashion_spec).spec
    counts = {name: infer_shapes(layers, (1, 28, 28), 10).parameters for name, layers in spec.all_networks.items()}
    assert counts == {"no_batch_norm": 32_998, "batch_norm": 33_250}


def test_fashion_bn_grid_expands_to_named_runs(fashion_spec):
    runs = load_spec(fashion_spec).runs()
    assert len(runs) == 8
    assert runs[0].name == "network=no_batch_norm,lr=0.01,batch_size=1000"
    assert runs[-1].values == {"train.network": "batch_norm", "train.optimizer.lr": 0.001, "data.batch_size": 2000}
    last = runs[-1].spec
    assert (last.network_name, last.train.optimizer.lr, last.data.batch_size) == ("batch_norm", 0.001, 2000)
    assert all(run.spec.grid == {} for run in runs)  # a run is one point of the grid


def test_an_image_folder_without_a_class_count_validates_with_a_note():
    text = dedent("""\
        name: folder
        data:
          dataset: image_folder
          root: images
          transforms: [{resize: {size: [8, 8]}}, to_tensor]
        model: [flatten, {linear: {out_features: num_classes}}]
        """)
    loaded = loads_spec(text)
    assert loaded.notes == [
        "num_classes is known only from the data: shapes are checked with 2 classes "
        "and `num_classes` sizes are resolved at run time"
    ]


@pytest.mark.parametrize("path", SPECS)
def test_a_resolved_spec_validates_back_to_itself(path):
    """Runs and weights files store `Spec.resolved()`; export and resume rebuild from it."""
    for run in load_spec(path).runs():
        assert Spec.model_validate(run.spec.resolved()) == run.spec
