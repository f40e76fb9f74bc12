"""Graphs and blocks in the spec language: `name`/`from` wiring, merges, named blocks used with
`repeat`; their errors are located (inside a block: at the block's definition, naming the use
site); a plain list still compiles to the nn.Sequential it always did; graphs export and verify."""

from __future__ import annotations

import json
from textwrap import dedent

import pytest
import torch
import yaml
from torch import nn
from typer.testing import CliRunner

from modelspec.artifacts import ModelInfo, TrainedModel
from modelspec.cli.main import app
from modelspec.compile import build_model, count_parameters, infer_shapes
from modelspec.errors import SpecError, format_path
from modelspec.export import export_trained
from modelspec.load import loads_spec
from modelspec.spec.data import static_shape
from modelspec.spec.validate import validate_data
from modelspec.spec.yaml_source import SourceMap

HEAD = "name: g\ndata: {dataset: synthetic, input_shape: [4, 8, 8], num_classes: 3}\n"
BLOCKS = """\
blocks:
  residual:
    params: {channels: null, kernel: 3}
    layers:
      - conv: {out_channels: $channels, kernel_size: $kernel, padding: 1}
      - relu
      - conv: {out_channels: $channels, kernel_size: 3, padding: 1, name: body}
      - add: {from: [body, input]}
"""
NETWORK = """\
model:
  - residual: {channels: 4, repeat: 3}
  - global_pool
  - linear: {out_features: num_classes}
"""


def load(text: str):
    return loads_spec(dedent(text), "bad.yaml")


def issue_of(text: str):
    with pytest.raises(SpecError) as caught:
        load(text)
    assert len(caught.value.issues) == 1, caught.value
    return caught.value.issues[0]


def test_a_plain_list_still_compiles_to_the_same_sequential():
    spec = load(HEAD + "model: [{conv: {out_channels: 2, kernel_size: 3}}, relu, flatten, "
                       "{linear: {out_features: num_classes}}]\n").spec
    model = build_model(spec.layers, (4, 8, 8), 3)
    assert type(model) is nn.Sequential
    assert list(model.state_dict()) == ["0.weight", "0.bias", "3.weight", "3.bias"]


def test_a_block_used_with_repeat_is_its_body_n_times():
    spec = load(HEAD + BLOCKS + NETWORK).spec
    shapes = infer_shapes(spec.layers, (4, 8, 8), 3)
    use = shapes.layers[0]
    per_block = 2 * (4 * 4 * 9 + 4)
    assert len(use.repeats) == 3 and use.parameters == 3 * per_block
    model = build_model(spec.layers, (4, 8, 8), 3)
    assert count_parameters(model) == shapes.parameters == 3 * per_block + 4 * 3 + 3
    # The residual really adds its input: with the convs zeroed, each block is the identity.
    with torch.no_grad():
        for p in model[0].parameters():
            p.zero_()
        x = torch.randn(2, 4, 8, 8)
        torch.testing.assert_close(model[0](x), x)
        assert sorted(model[0][0].state_dict()) == ["0.bias", "0.weight", "body.bias", "body.weight"]


def test_the_resolved_spec_validates_back_to_the_same_networks():
    spec = load(HEAD + BLOCKS + NETWORK).spec
    again = validate_data(spec.resolved(), SourceMap("<resolved>"))
    assert again.layers == spec.layers
    assert [layer.model_dump() for layer in again.layers[0].body] == [layer.model_dump() for layer in spec.layers[0].body]


def test_a_layer_output_may_feed_several_layers_and_embedding_may_read_input():
    text = """\
        name: g
        data: {dataset: synthetic, input_shape: [6], num_classes: 3, vocab_size: 20}
        model:
          - embedding: {num_embeddings: 20, embedding_dim: 4, name: tokens}
          - transpose: {name: channels}
          - conv: {out_channels: 4, kernel_size: 3, padding: 1, name: a}
          - conv: {out_channels: 4, kernel_size: 1, from: channels, name: b}
          - concat: {from: [a, b, channels], dim: 1}
          - global_pool: {kind: max}
          - linear: {out_features: num_classes}
        """
    spec = load(text).spec
    shapes = infer_shapes(spec.layers, (6,), 3, tokens=True)
    assert shapes.layers[4].output_shape == (12, 6) and shapes.layers[4].sources == (2, 3, 1)
    model = build_model(spec.layers, (6,), 3, tokens=True)
    assert tuple(model(torch.randint(0, 20, (2, 6))).shape) == (2, 3)


@pytest.mark.parametrize(
    "text, where, path, phrase",
    [
        (HEAD + "model:\n  - conv: {out_channels: 4, kernel_size: 3, name: a}\n  - add: {from: [a, inptu]}\n",
         "bad.yaml:5", "model[1].add.from", "did you mean 'input'?"),
        (HEAD + "model:\n  - conv: {out_channels: 2, kernel_size: 3, name: a}\n  - add: {from: [a, input]}\n",
         "bad.yaml:5", "model[1].add.from", "received a 2×6×6, input 4×8×8"),
        (HEAD + "model:\n  - relu: {name: a}\n  - relu: {name: a}\n", "bad.yaml:5", "model[1].relu.name",
         "the name 'a' is taken by layer 0"),
        (HEAD + "model:\n  - relu: {name: input}\n", "bad.yaml:4", "model[0].relu.name", "by the network's input"),
        (HEAD + "model:\n  - relu: {name: a}\n  - relu: {from: [input, a]}\n", "bad.yaml:5", "model[1].relu.from",
         "relu takes one input; received 2"),
        (HEAD + "model:\n  - add: {from: [input]}\n", "bad.yaml:4", "model[0].add.from", "merges two or more"),
    ],
)
def test_graph_errors_are_located(text, where, path, phrase):
    issue = issue_of(text)
    assert f"{issue.file}:{issue.line}" == where and format_path(issue.path) == path, str(issue)
    assert phrase in f"{issue.message}\n{issue.hint}", str(issue)


@pytest.mark.parametrize(
    "use, where, path, phrase",
    [
        # An error inside the body: located at the block's definition, naming the use site.
        ("  - residual: {channels: 4, kernel: 5}\n", "bad.yaml:10", "blocks.residual.layers[3].add.from",
         "in block 'residual' used at model[0] (input 4×8×8): add needs inputs of one shape"),
        ("  - residual: {channels: 4, repeat: 2}\n  - residual: {channels: 5}\n", "bad.yaml:10",
         "blocks.residual.layers[3].add.from", "used at model[1] (input 4×8×8)"),
        ("  - residual: {chanels: 4}\n", "bad.yaml:12", "model[0].with.chanels", "did you mean 'channels'?"),
        ("  - residual: {kernel: 3}\n", "bad.yaml:12", "model[0]", "block 'residual' needs channels"),
        ("  - residul: {channels: 4}\n", "bad.yaml:12", "model[0].block", "did you mean 'residual'?"),
        ("  - residual: {channels: four}\n", "bad.yaml:7", "blocks.residual.layers[0].conv.out_channels",
         "in block 'residual' used at model[0]: must be a valid integer"),
    ],
)
def test_block_errors_name_the_block_the_use_and_the_definition(use, where, path, phrase):
    issue = issue_of(HEAD + BLOCKS + "model:\n" + use)
    assert f"{issue.file}:{issue.line}" == where and format_path(issue.path) == path, str(issue)
    assert phrase in f"{issue.message}\n{issue.hint}", str(issue)


def test_blocks_may_use_blocks_but_not_themselves():
    nested = BLOCKS + "  twice:\n    params: {channels: 4}\n    layers:\n      - residual: {channels: $channels, repeat: 2}\n"
    spec = load(HEAD + nested + "model:\n  - twice\n  - flatten\n  - linear: {out_features: num_classes}\n").spec
    assert infer_shapes(spec.layers, (4, 8, 8), 3).layers[0].parameters == 2 * 2 * (4 * 4 * 9 + 4)
    looping = BLOCKS + "  loop:\n    layers:\n      - loop\n"
    assert "block 'loop' uses itself (loop -> loop)" in issue_of(HEAD + looping + "model: [loop]\n").message
    clash = "blocks:\n  relu:\n    layers: [relu]\n"
    assert "it is a layer kind" in issue_of(HEAD + clash + "model: [flatten]\n").message


def test_summary_shows_the_from_column_and_each_block_uses_parameters(tmp_path):
    text = HEAD + BLOCKS + """\
model:
  - conv: {out_channels: 4, kernel_size: 3, padding: 1, name: stem}
  - residual: {channels: 4, repeat: 2, name: stage}
  - add: {from: [stage, stem]}
  - global_pool
  - linear: {out_features: num_classes}
"""
    spec = tmp_path / "g.yaml"
    spec.write_text(text)
    result = CliRunner().invoke(app, ["summary", str(spec)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any("from" in line and "output shape" in line for line in lines)
    stage = next(line for line in lines if "stage: residual(channels=4) ×2" in line)
    assert "stem" in stage and f"{2 * 2 * (4 * 4 * 9 + 4):,}" in stage
    merge = next(line for line in lines if "│ add" in line)
    assert "stage, stem" in merge
    assert "trainable parameters: 755; frozen: 0" in result.stdout


@pytest.mark.slow
def test_a_graph_with_blocks_exports_to_every_format_and_verifies(tmp_path):
    text = HEAD + BLOCKS + """\
model:
  - conv: {out_channels: 4, kernel_size: 3, padding: 1, name: stem}
  - residual: {channels: 4, repeat: 2, name: stage}
  - concat: {from: [stage, stem]}
  - global_pool
  - linear: {out_features: num_classes}
"""
    spec = validate_data(yaml.safe_load(text), SourceMap("<graph>"))
    shape, classes = static_shape(spec.data)
    torch.manual_seed(0)
    model = build_model(spec.layers, shape, classes).eval()
    trained = TrainedModel(spec, ModelInfo(list(shape), "float32", classes), model)
    from test_export_layers import available_formats

    formats = available_formats()
    report = export_trained(trained, tmp_path, formats, log=lambda _: None)
    assert report.passed, report.failures
    written = json.loads((tmp_path / "export_report.json").read_text())
    assert set(written["formats"]) == set(formats)


@pytest.mark.slow
def test_the_residual_example_trains_on_fashion_mnist(tmp_path, monkeypatch):
    from _specs import FASHION_ROOT, HAVE_FASHION, NO_FASHION, REPO

    if not HAVE_FASHION:
        pytest.skip(NO_FASHION)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODELSPEC_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(app, [
        "run", str(REPO / "specs" / "resnet_fashion.yaml"), "--quiet", "--set", f"data.root={FASHION_ROOT}",
        "--set", "data.download=false", "--set", "train.epochs=2", "--set", "data.batch_size=64",
    ])
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "runs" / "resnet_fashion").iterdir()
    document = json.loads((folder / "results.json").read_text())
    assert document["runs"][0]["status"] == "finished"
    accuracy = [row["val_accuracy"] for row in document["rows"]]
    assert accuracy[-1] > 0.3, accuracy  # chance is 0.1 (one epoch gave 0.28 with torch 2.14.1)


def test_repeats_count_towards_the_layer_limit():
    deep = BLOCKS + "  ten:\n    layers:\n      - residual: {channels: 4, repeat: 50}\n"
    issue = issue_of(HEAD + deep + "model:\n  - ten: {repeat: 20}\n")
    assert "has 4,000 layers; modelspec builds at most 1,000" in issue.message


def test_the_schema_knows_named_layers_blocks_and_the_new_kinds():
    import jsonschema

    result = CliRunner().invoke(app, ["schema"])
    schema = json.loads(result.stdout)
    data = {"dataset": "mnist"}
    good = {"name": "t", "data": data, "blocks": {"b": {"params": {"c": None}, "layers": [{"conv": {"out_channels": "$c"}}]}},
            "model": [{"upsample": {"scale_factor": 2, "name": "up"}}, {"b": {"c": 4, "repeat": 2}},
                      {"concat": {"from": ["up", "input"]}}, {"torchvision": {"name": "resnet18"}}]}
    jsonschema.validate(good, schema)
    for bad in (
        {"name": "t", "data": data, "model": [{"upsample": {"scale_factr": 2}}]},  # misspelled key
        {"name": "t", "data": data, "model": [{"relu": {"form": "input"}}]},  # `from` misspelled
        {"name": "t", "data": data, "model": [{"relu": {"name": "3rd"}}]},  # not an identifier
        {"name": "t", "data": data, "blocks": {"b": {"layer": []}}, "model": ["relu"]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
