"""Every layer kind exports to every format and verifies: one small network per kind.

The examples are the kinds' own (`LayerSpec.export_example`); a kind whose class declares none fails here.
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


def declared(kind: str):
    """The export example the kind's own class declares (a kind derived from another declares its own)."""
    return vars(LAYER_TYPES[kind]).get("export_example")


def trained_example(kind: str, seed: int = 0) -> TrainedModel:
    example = declared(kind)
    data, layers = example.data, example.network
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
    missing = sorted(kind for kind in LAYER_TYPES if declared(kind) is None)
    assert not missing, f"declare `export_example` on the class of the layer kind(s) {missing}"
    for kind in LAYER_TYPES:  # each example really holds its kind
        assert kind in {layer.type for layer in trained_example(kind).spec.layers}, kind


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(LAYER_TYPES))
def test_layer_kind_exports_and_verifies(kind, tmp_path):
    if declared(kind) is None:
        pytest.fail(f"the class of layer kind '{kind}' declares no `export_example`")
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
