"""Fine-tuning: `train.init_from` starts a network from earlier weights (checked parameter by
parameter, the first mismatch named), `train.freeze` keeps layers as they are: frozen parameters get
no gradient and stay out of the optimizer; the summary shows both counts. Also the torchvision layer's
weights: a local file (read with weights_only=True) and a weights name without internet."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision
from pydantic import TypeAdapter
from torch import nn
from typer.testing import CliRunner

from modelspec.cli.main import app
from modelspec.compile import build_model
from modelspec.compile.finetune import freeze, load_init, parameter_counts, trainable_parameters
from modelspec.errors import SpecError, format_path
from modelspec.spec.layers import Layer

from _specs import SYNTHETIC, write_spec

LAYERS = TypeAdapter(list[Layer])
runner = CliRunner()
NET = [{"conv": {"out_channels": 4, "kernel_size": 3, "name": "stem"}}, "relu", "flatten",
       {"linear": {"out_features": 8, "name": "hidden"}}, "relu", {"linear": {"out_features": 3, "name": "head"}}]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODELSPEC_CACHE", str(tmp_path / "cache"))


def network(layers=NET) -> nn.Module:
    return build_model(LAYERS.validate_python(layers), (1, 6, 6), 3)


def test_init_from_copies_every_weight(tmp_path):
    torch.manual_seed(1)
    source = network()
    torch.save(source.state_dict(), tmp_path / "w.pt")
    torch.manual_seed(2)
    target = network()
    load_init(target, str(tmp_path / "w.pt"))
    for (key, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        assert torch.equal(a, b), key


def test_init_from_names_the_first_layer_that_does_not_fit(tmp_path):
    torch.save(network().state_dict(), tmp_path / "w.pt")
    wider = [*NET[:3], {"linear": {"out_features": 9, "name": "hidden"}}, *NET[4:]]
    with pytest.raises(SpecError) as caught:
        load_init(network(wider), str(tmp_path / "w.pt"))
    issue = caught.value.issues[0]
    assert format_path(issue.path) == "train.init_from"
    assert "'hidden.weight' is 9×64 in the network but 8×64 in" in issue.message
    with pytest.raises(SpecError, match="no weights file at"):
        load_init(network(), str(tmp_path / "missing"))


def test_a_new_head_under_a_new_name_starts_fresh(tmp_path):
    torch.manual_seed(1)
    source = network()
    torch.save(source.state_dict(), tmp_path / "w.pt")
    five_classes = [*NET[:5], {"linear": {"out_features": 5, "name": "new_head"}}]
    torch.manual_seed(2)
    target = network(five_classes)
    fresh_head = target.new_head.weight.clone()
    assert load_init(target, str(tmp_path / "w.pt")) == (["new_head"], ["head"])
    assert torch.equal(target.hidden.weight, source.hidden.weight) and torch.equal(target.stem.bias, source.stem.bias)
    assert torch.equal(target.new_head.weight, fresh_head)
    unrelated = [{"linear": {"out_features": 3, "name": "other"}}]
    with pytest.raises(SpecError, match="share no layer with the network"):
        load_init(build_model(LAYERS.validate_python(unrelated), (4,), 3), str(tmp_path / "w.pt"))


def test_frozen_layers_get_no_gradient_and_stay_out_of_the_optimizer():
    model = network()
    trainable, frozen = freeze(model, ["stem", "hidden"])
    assert frozen == (4 * 9 + 4) + (64 * 8 + 8) and trainable == 8 * 3 + 3 == parameter_counts(model)[0]
    params = trainable_parameters(model)
    assert [p.shape for p in params] == [torch.Size([3, 8]), torch.Size([3])]
    model(torch.randn(2, 1, 6, 6)).sum().backward()
    assert model.stem.weight.grad is None and model.head.weight.grad is not None
    with pytest.raises(SpecError) as caught:
        freeze(network(), ["hiden"])
    assert "did you mean 'hidden'?" in str(caught.value) and format_path(caught.value.issues[0].path) == "train.freeze[0]"


def _run(tmp_path: Path, *sets: str):
    spec = write_spec(tmp_path)
    args = ["run", str(spec), "--quiet", "--set", "train.epochs=1", *[a for s in sets for a in ("--set", s)]]
    return runner.invoke(app, args)


def _weights(tmp_path: Path) -> list[dict]:
    folders = sorted((tmp_path / "runs" / "syn").iterdir())
    return [torch.load(f / "00_run" / "weights.pt", weights_only=True)["state_dict"] for f in folders]


def test_a_run_starts_from_another_runs_weights_and_keeps_frozen_layers(tmp_path):
    assert _run(tmp_path).exit_code == 0
    (first,) = _weights(tmp_path)
    (run_dir,) = (tmp_path / "runs" / "syn").iterdir()
    result = _run(tmp_path, f"train.init_from={run_dir / '00_run'}", "train.freeze=['0', '4']")
    assert result.exit_code == 0, result.output
    second = _weights(tmp_path)[1]
    for key in ("0.weight", "0.bias", "4.weight", "4.bias"):  # frozen: the first run's values
        assert torch.equal(first[key], second[key]), key
    assert not torch.equal(first["7.weight"], second["7.weight"])  # trained on from there


def test_a_mismatched_init_from_is_a_spec_error_exit_2(tmp_path):
    torch.save({"0.weight": torch.zeros(1)}, tmp_path / "w.pt")
    result = _run(tmp_path, f"train.init_from={tmp_path / 'w.pt'}")
    assert result.exit_code == 2, result.output
    assert "train.init_from: '0.weight' is 8×1×3×3 in the network but 1 in" in result.output


def test_summary_shows_trainable_and_frozen_counts(tmp_path):
    spec = write_spec(tmp_path)
    result = runner.invoke(app, ["summary", str(spec), "--set", "train.freeze=['0']"])
    assert result.exit_code == 0, result.output
    assert "frozen: 80" in result.stdout  # conv 8×1×3×3 + 8


# ---- the torchvision layer's weights


def test_torchvision_weights_from_a_local_file_load_with_weights_only(tmp_path):
    torch.manual_seed(3)
    reference = torchvision.models.resnet18()
    torch.save(reference.state_dict(), tmp_path / "resnet18.pt")
    layers = [{"torchvision": {"name": "resnet18", "weights": str(tmp_path / "resnet18.pt")}}]
    ours = build_model(LAYERS.validate_python(layers), (3, 32, 32), 10)
    trunk = {k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    for key, value in trunk.items():
        assert torch.equal(ours[0].state_dict()[key], value), key
    assert ours[0].fc.out_features == 10  # the head resized after loading
    # A file with anything but tensors is refused by weights_only=True, with a clear message.
    torch.save({"fc.weight": Path("x")}, tmp_path / "bad.pt")
    bad = [{"torchvision": {"name": "resnet18", "weights": str(tmp_path / "bad.pt")}}]
    with pytest.raises(SpecError, match="not a readable weights file"):
        build_model(LAYERS.validate_python(bad), (3, 32, 32), 10)


def test_torchvision_weights_name_without_internet_is_a_spec_error_exit_2(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    text = SYNTHETIC.replace("input_shape: [1, 12, 12]", "input_shape: [3, 32, 32]").split("model:")[0] + (
        "model:\n  - torchvision: {name: resnet18, weights: IMAGENET1K_V1}\ntrain:\n  epochs: 1\n")
    spec = write_spec(tmp_path, text)
    assert runner.invoke(app, ["validate", str(spec)]).exit_code == 0  # validate never downloads
    result = runner.invoke(app, ["run", str(spec), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "cannot download the weights ResNet18_Weights.IMAGENET1K_V1 for resnet18" in result.output
    assert "give a local weights file" in result.output
    bad = runner.invoke(app, ["validate", str(write_spec(tmp_path, text.replace("IMAGENET1K_V1", "IMAGENET_V1")))])
    assert bad.exit_code == 2 and "did you mean 'IMAGENET1K_V1'?" in bad.output
