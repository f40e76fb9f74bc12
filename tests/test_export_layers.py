"""Every layer kind exports to every format and verifies: one small network per kind.

The examples are keyed by layer type; a kind added to the registry without an example fails here.
"""

from __future__ import annotations

import json

import pytest
import torch

from modelspec.artifacts import ModelInfo, TrainedModel
from modelspec.compile import build_model
from modelspec.errors import SpecError
from modelspec.export import FORMATS, export_trained
from modelspec.spec.data import static_shape
from modelspec.spec.layers import LAYER_TYPES
from modelspec.spec.validate import validate_data
from modelspec.spec.yaml_source import SourceMap

IMAGE = {"dataset": "synthetic", "input_shape": [2, 6, 6], "num_classes": 3}
VECTOR = {"dataset": "synthetic", "input_shape": [6], "num_classes": 3}
SEQUENCE = {"dataset": "synthetic", "input_shape": [7, 4], "num_classes": 3}  # (T, F) floats
TOKENS = {"dataset": "synthetic", "input_shape": [9], "num_classes": 3, "vocab_size": 20}
HEAD = [{"linear": {"out_features": "num_classes"}}]


def _around(activation) -> tuple[dict, list]:
    return VECTOR, [{"linear": {"out_features": 5}}, activation, *HEAD]


EXAMPLES: dict[str, tuple[dict, list]] = {
    "conv": (IMAGE, [{"conv": {"out_channels": 4, "kernel_size": 3, "padding": 1}}, "flatten", *HEAD]),
    # Adaptive pooling exports to ONNX only where the output size divides the input size (4 -> 2).
    "pool": ({**IMAGE, "input_shape": [2, 8, 8]},
             [{"pool": {"kind": "avg", "kernel_size": 2}}, {"pool": {"output_size": 2}}, "flatten", *HEAD]),
    "flatten": (IMAGE, ["flatten", *HEAD]),
    "linear": (VECTOR, [{"linear": {"out_features": 4}}, *HEAD]),
    "batchnorm": (IMAGE, ["batchnorm", "flatten", {"linear": {"out_features": 5}}, "batchnorm", *HEAD]),
    "layernorm": (VECTOR, ["layernorm", *HEAD]),
    "dropout": (VECTOR, [{"dropout": {"p": 0.5}}, *HEAD]),
    "dropout2d": (IMAGE, [{"dropout2d": {"p": 0.5}}, "flatten", *HEAD]),
    "lstm": (SEQUENCE, [{"lstm": {"hidden_size": 6, "num_layers": 2}}, *HEAD]),
    "gru": (TOKENS, [{"embedding": {"num_embeddings": 20, "embedding_dim": 5}},
                     {"gru": {"hidden_size": 6, "bidirectional": True, "output": "all"}}, *HEAD]),
    "embedding": (TOKENS, [{"embedding": {"num_embeddings": 20, "embedding_dim": 4, "padding_idx": 0}},
                           "flatten", *HEAD]),
    "relu": _around("relu"),
    "leaky_relu": _around({"leaky_relu": {"negative_slope": 0.2}}),
    "gelu": _around({"gelu": {"approximate": "tanh"}}),
    "elu": _around("elu"),
    "tanh": _around("tanh"),
    "sigmoid": _around("sigmoid"),
    "softmax": (VECTOR, [*HEAD, "softmax"]),
    "log_softmax": (VECTOR, [*HEAD, "log_softmax"]),
    "conv_transpose": (IMAGE, [{"conv_transpose": {"out_channels": 3, "kernel_size": 3, "stride": 2,
                                                   "padding": 1, "output_padding": 1}}, "flatten", *HEAD]),
    "global_pool": (IMAGE, [{"conv": {"out_channels": 4, "kernel_size": 3}}, {"global_pool": {"kind": "max"}},
                            *HEAD]),
    "group_norm": (IMAGE, [{"conv": {"out_channels": 4, "kernel_size": 3}}, {"group_norm": {"num_groups": 2}},
                           "flatten", *HEAD]),
    "instance_norm": (IMAGE, [{"instance_norm": {"affine": True}}, "flatten", *HEAD]),
    "permute": (IMAGE, [{"permute": {"dims": [0, 2, 3, 1]}}, {"linear": {"out_features": 4}}, "flatten", *HEAD]),
    "transpose": (SEQUENCE, [{"transpose": {}}, {"conv": {"out_channels": 4, "kernel_size": 3}}, "flatten", *HEAD]),
    "reshape": (VECTOR, [{"reshape": {"shape": [2, -1]}}, {"linear": {"out_features": 4}}, "flatten", *HEAD]),
    "unsqueeze": (VECTOR, [{"unsqueeze": {"dim": 1}}, {"conv": {"out_channels": 2, "kernel_size": 3}}, "flatten",
                           *HEAD]),
    "squeeze": (IMAGE, [{"conv": {"out_channels": 1, "kernel_size": 3}}, {"squeeze": {"dim": 1}}, "flatten", *HEAD]),
    "select": (SEQUENCE, [{"select": {"dim": 1, "index": -1}}, *HEAD]),
    "identity": (VECTOR, ["identity", *HEAD]),
    "upsample": (IMAGE, [{"upsample": {"scale_factor": 2}}, {"upsample": {"mode": "bilinear", "size": 9}},
                         "flatten", *HEAD]),
    "pad": (IMAGE, [{"pad": {"padding": 1, "mode": "reflect"}}, {"pad": {"padding": [0, 1], "value": 1.0}},
                    "flatten", *HEAD]),
    "pixel_shuffle": (IMAGE, [{"conv": {"out_channels": 8, "kernel_size": 3}}, {"pixel_shuffle": {"upscale_factor": 2}},
                              "flatten", *HEAD]),
    # A graph: the merges read named layers and the input.
    "add": (VECTOR, [{"linear": {"out_features": 6}}, {"relu": {"name": "a"}}, {"add": {"from": ["input", "a"]}},
                     *HEAD]),
    "multiply": (VECTOR, [{"linear": {"out_features": 6}}, {"sigmoid": {"name": "gate"}},
                          {"multiply": {"from": ["gate", "input"]}}, *HEAD]),
    "concat": (IMAGE, [{"conv": {"out_channels": 3, "kernel_size": 3, "padding": 1, "name": "c"}},
                       {"concat": {"from": ["c", "input"]}}, "flatten", *HEAD]),
    "torchvision": ({**IMAGE, "input_shape": [3, 32, 32]}, [{"torchvision": {"name": "resnet18"}}]),
    "silu": _around("silu"),
    "mish": _around("mish"),
    "softplus": _around({"softplus": {"beta": 2.0}}),
    "hardswish": _around("hardswish"),
    "prelu": (IMAGE, [{"prelu": {"num_parameters": 2}}, "flatten", *HEAD]),
    "scale": _around({"scale": {"multiply": 2.0, "add": 1.0}}),
}


def trained_example(kind: str, seed: int = 0) -> TrainedModel:
    data, layers = EXAMPLES[kind]
    spec = validate_data({"name": f"kind_{kind}", "data": data, "model": layers}, SourceMap(f"<{kind}>"))
    shape, classes = static_shape(spec.data)
    tokens = spec.data.tokens
    torch.manual_seed(seed)
    model = build_model(spec.layers, shape, classes, tokens=tokens)
    with torch.no_grad():  # batch norm's running statistics away from (0, 1), so eval mode matters
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.uniform_(-0.5, 0.5)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0)
    info = ModelInfo(list(shape), "int64" if tokens else "float32", classes)
    return TrainedModel(spec, info, model.eval())


def available_formats() -> list[str]:
    try:
        FORMATS["onnx"].require()
    except SpecError:  # no onnx extra: the other formats still export and verify
        return [f for f in FORMATS if f != "onnx"]
    return list(FORMATS)


def test_every_layer_kind_has_an_example():
    missing = sorted(set(LAYER_TYPES) - set(EXAMPLES))
    assert not missing, f"add an export example for the layer kind(s) {missing}"
    for kind in EXAMPLES:  # each example really holds its kind
        assert kind in {layer.type for layer in trained_example(kind).spec.layers}, kind


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(LAYER_TYPES))
def test_layer_kind_exports_and_verifies(kind, tmp_path):
    if kind not in EXAMPLES:
        pytest.fail(f"layer kind '{kind}' has no export example")
    trained = trained_example(kind)
    formats = available_formats()
    report = export_trained(trained, tmp_path, formats, log=lambda _: None)
    assert report.passed, report.failures
    written = json.loads((tmp_path / "export_report.json").read_text())
    assert written["passed"] and set(written["formats"]) == set(formats)
    sequence = kind in ("lstm", "gru")
    for name, result in written["formats"].items():
        assert (tmp_path / result["file"]).stat().st_size == result["bytes"] > 0
        assert len(result["checks"]) == (4 if sequence else 2), name
        assert all(c["max_abs_error"] <= 1e-4 for c in result["checks"])
    if sequence:  # both sequence lengths really ran, at batch 1 and 8
        shapes = {tuple(c["input_shape"][:2]) for c in written["formats"]["torchscript"]["checks"]}
        assert shapes == {(1, 7), (8, 7), (1, 3), (8, 3)} or shapes == {(1, 9), (8, 9), (1, 4), (8, 4)}
