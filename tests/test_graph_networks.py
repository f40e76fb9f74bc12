"""Networks written by others, rebuilt in the spec language: ResNet-18 (graph + a residual block used
with `repeat`) against torchvision's resnet18, the IMDB text CNN and the COVID model of the PyTorch
notes against their hand-written modules, and `torchvision: {name: vgg16}` against vgg16(). Each
compares parameter counts and, with the weights copied over in order, outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from pydantic import TypeAdapter
from torch import nn

from modelspec.compile import build_model, count_parameters, infer_shapes
from modelspec.errors import SpecError
from modelspec.load import load_spec
from modelspec.spec.layers import Layer

REPO = Path(__file__).resolve().parents[1]
LAYERS = TypeAdapter(list[Layer])


def copy_in_order(source: nn.Module, target: nn.Module) -> None:
    """Every parameter and buffer of `source` into `target`, matched by position and shape."""
    theirs, ours = list(source.state_dict().values()), target.state_dict()
    assert len(theirs) == len(ours)
    with torch.no_grad():
        for (key, mine), value in zip(ours.items(), theirs):
            assert mine.shape == value.shape, key
            mine.copy_(value)


def max_difference(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return (a.eval()(x) - b.eval()(x)).abs().max().item()


@pytest.mark.slow
def test_resnet18_in_the_spec_language_is_torchvisions_resnet18():
    spec = load_spec(REPO / "specs" / "resnet18.yaml").spec
    torch.manual_seed(0)
    ours = build_model(spec.layers, (3, 64, 64), 1000)
    theirs = torchvision.models.resnet18()
    assert count_parameters(ours) == count_parameters(theirs) == 11_689_512
    assert infer_shapes(spec.layers, (3, 64, 64), 1000).parameters == 11_689_512
    with torch.no_grad():  # running statistics away from (0, 1), so that eval mode really uses them
        for name, buffer in theirs.named_buffers():
            if name.endswith("running_mean"):
                buffer.uniform_(-0.2, 0.2)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
    copy_in_order(theirs, ours)
    x = torch.randn(2, 3, 64, 64)
    difference = max_difference(ours, theirs, x)
    print(f"resnet18: {count_parameters(ours):,} parameters, max |difference| {difference:.2e}")
    assert difference <= 1e-5


class IMDBNet(nn.Module):
    """The notes' IMDB text CNN, as written there."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(10_000, 3, padding_idx=1)
        self.conv1 = nn.Conv1d(3, 16, kernel_size=5)
        self.conv2 = nn.Conv1d(16, 128, kernel_size=2)
        self.fc = nn.Linear(128 * 48, 1)

    def forward(self, x):
        x = self.embedding(x).transpose(1, 2)  # (N, T, E) -> (N, E, T): Conv1d runs over time
        x = torch.relu(nn.functional.max_pool1d(self.conv1(x), 2))
        x = torch.relu(nn.functional.max_pool1d(self.conv2(x), 2))
        return torch.sigmoid(self.fc(x.flatten(1)))


IMDB = [
    {"embedding": {"num_embeddings": 10_000, "embedding_dim": 3, "padding_idx": 1}},
    {"transpose": {"dim0": 1, "dim1": 2}},
    {"conv": {"out_channels": 16, "kernel_size": 5}}, {"pool": {"kernel_size": 2}}, "relu",
    {"conv": {"out_channels": 128, "kernel_size": 2}}, {"pool": {"kernel_size": 2}}, "relu",
    "flatten", {"linear": {"out_features": 1}}, "sigmoid",
]


def test_imdb_text_cnn_is_the_hand_written_module():
    layers = LAYERS.validate_python(IMDB)
    torch.manual_seed(0)
    ours, theirs = build_model(layers, (200,), tokens=True), IMDBNet()
    assert count_parameters(ours) == count_parameters(theirs) == 30_000 + 256 + 4_224 + 6_145
    copy_in_order(theirs, ours)
    x = torch.randint(0, 10_000, (4, 200))
    difference = max_difference(ours, theirs, x)
    print(f"imdb: {count_parameters(ours):,} parameters, max |difference| {difference:.2e}")
    assert difference <= 1e-6
    shapes = infer_shapes(layers, (200,), tokens=True)
    assert [row.output_shape for row in shapes.layers[:3]] == [(200, 3), (3, 200), (16, 196)]
    # Without the transpose the conv would run over the embedding axis (with embedding_dim 8:
    # 16,016 conv parameters instead of 256), and train silently wrong: the shape pass refuses it.
    forgotten = LAYERS.validate_python([{**IMDB[0], "embedding": {**IMDB[0]["embedding"], "embedding_dim": 8}},
                                        *IMDB[2:]])
    with pytest.raises(SpecError) as caught:
        infer_shapes(forgotten, (200,), tokens=True)
    assert "conv reads the embedding's (T, E) output directly" in str(caught.value)
    assert "put `transpose` (dims 1 and 2) before it" in str(caught.value)


class CovidNet(nn.Module):
    """The notes' COVID model: an LSTM over windows of 8 days × 3 series, a linear layer, and a
    block that scales the input's last day: relu((1 + x) * x_input[:, -1, :])."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 32, num_layers=5, batch_first=True)
        self.linear = nn.Linear(32, 3)

    def forward(self, x_input):
        x, _ = self.lstm(x_input)
        x = self.linear(x[:, -1, :])
        return torch.relu((1 + x) * x_input[:, -1, :])


COVID = [
    {"lstm": {"hidden_size": 32, "num_layers": 5}},  # output: last, the output at the last step
    {"linear": {"out_features": 3}},
    {"scale": {"add": 1.0, "name": "growth"}},
    {"select": {"dim": 1, "index": -1, "from": "input", "name": "last_day"}},
    {"multiply": {"from": ["growth", "last_day"]}},
    "relu",
]


def test_covid_model_feeds_the_input_into_its_last_block():
    layers = LAYERS.validate_python(COVID)
    torch.manual_seed(0)
    ours, theirs = build_model(layers, (8, 3)), CovidNet()
    assert count_parameters(ours) == count_parameters(theirs)
    copy_in_order(theirs, ours)
    x = torch.rand(5, 8, 3)
    difference = max_difference(ours, theirs, x)
    print(f"covid: {count_parameters(ours):,} parameters, max |difference| {difference:.2e}")
    assert difference <= 1e-6
    assert infer_shapes(layers, (8, 3)).output_shape == (3,)


def test_torchvision_vgg16_with_ten_classes_has_the_resized_heads_parameters():
    layers = LAYERS.validate_python([{"torchvision": {"name": "vgg16"}}])
    shapes = infer_shapes(layers, (3, 224, 224), 10)  # on the meta device: nothing allocated
    with torch.device("meta"):
        expected = torchvision.models.vgg16()
        expected.classifier[6] = nn.Linear(4096, 10)
    assert shapes.parameters == count_parameters(expected) == 134_301_514
    assert shapes.output_shape == (10,)


def test_the_guide_networks_are_these_networks():
    """The spec language guide's graph section shows specs/resnet18.yaml's blocks and model, and the
    IMDB and COVID networks tested above."""
    import re

    import yaml

    guide = (REPO / "docs" / "spec-language.md").read_text()
    start = guide.index("\n## Graphs, blocks and backbones\n")
    section = guide[start:guide.index("\n## ", start + 1)]
    blocks = [yaml.safe_load(body) for body in re.findall(r"```yaml\n(.*?)```", section, flags=re.S)]
    resnet = yaml.safe_load((REPO / "specs" / "resnet18.yaml").read_text())
    assert {"blocks": resnet["blocks"], "model": resnet["model"]} in blocks
    assert {"model": IMDB} in blocks and {"model": COVID} in blocks
