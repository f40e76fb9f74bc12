"""export_trained as a library: fallbacks, dynamic axes, inputs, the report; no CLI."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from modelspec.errors import SpecError
from modelspec.export import FORMATS, check_formats, export_trained
from modelspec.export.inputs import cases, dynamic_axes, random_inputs
from modelspec.spec.export import ExportFormat
from test_export_layers import trained_example

QUIET = {"log": lambda _: None}


def test_formats_are_the_spec_formats():
    assert set(FORMATS) == set(ExportFormat.__args__)


def test_check_formats_dedupes_and_refuses_unknown_names():
    assert check_formats(["torchscript", "torch_export", "torchscript"]) == ["torchscript", "torch_export"]
    with pytest.raises(SpecError, match="did you mean 'torch_export'"):
        check_formats(["torch-export"])
    with pytest.raises(SpecError, match="no export format"):
        check_formats([])


def test_default_formats_come_from_the_spec(tmp_path):
    trained = trained_example("relu")
    trained.spec = trained.spec.model_copy(update={"export": trained.spec.export.model_copy(
        update={"formats": ["torch_export"], "verify_batch_size": 3})})
    report = export_trained(trained, tmp_path, **QUIET)
    assert report.passed and [f.format for f in report.formats] == ["torch_export"]
    assert [c.case for c in report.formats[0].checks] == ["batch 1", "batch 3"]
    assert (tmp_path / "model.pt2").is_file() and not (tmp_path / "model.onnx").exists()


def test_real_inputs_are_used_and_checked(tmp_path):
    trained = trained_example("linear")
    real = torch.randn(5, 6)
    report = export_trained(trained, tmp_path, ["torchscript"], real, **QUIET)
    assert report.passed and report.inputs == "5 sample(s) of the run's data"
    with pytest.raises(SpecError, match=r"do not fit the model's input \(N, 6\)"):
        export_trained(trained, tmp_path, ["torchscript"], torch.randn(5, 7), **QUIET)


def test_sequence_axes():
    lstm = trained_example("lstm")  # (7, 4) floats -> lstm (last) -> linear
    axes = dynamic_axes(lstm.spec.layers, lstm.info)
    assert axes.input == {0: "batch", 1: "sequence"} and axes.output == {0: "batch"}
    assert axes.lengths == (7, 3)
    gru = trained_example("gru")  # tokens -> embedding -> gru (all) -> linear: (N, T, classes)
    axes = dynamic_axes(gru.spec.layers, gru.info)
    assert axes.output == {0: "batch", 1: "sequence"} and axes.lengths == (9, 4)
    x = random_inputs(gru.spec, gru.info, 8)
    assert x.dtype == torch.int64 and 0 <= int(x.min()) and int(x.max()) < 20
    assert [tuple(c.x.shape) for c in cases(x, 8, axes)] == [(1, 9), (8, 9), (1, 4), (8, 4)]
    conv = trained_example("conv")
    assert dynamic_axes(conv.spec.layers, conv.info).lengths is None


def test_onnx_falls_back_to_the_torchscript_based_exporter(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    onnx_format = FORMATS["onnx"]

    def broken(model, plan, path):
        raise RuntimeError("dynamo could not")

    methods = (("dynamo", broken), onnx_format.methods[1])
    monkeypatch.setitem(FORMATS, "onnx", dataclasses.replace(onnx_format, methods=methods))
    lines = []
    report = export_trained(trained_example("lstm"), tmp_path, ["onnx"], log=lines.append)
    assert report.passed, report.failures
    result = report.to_dict()["formats"]["onnx"]
    assert result["method"] == "torchscript-based" and result["opset"] > 0
    assert result["attempts"][0] == {"method": "dynamo", "failure": "export failed: RuntimeError: dynamo could not"}
    assert len(result["checks"]) == 4  # the fallback keeps the sequence axis dynamic
    assert any("dynamo: export failed" in line for line in lines)

    import onnx

    meta = {p.key: json.loads(p.value) for p in onnx.load(tmp_path / "model.onnx").metadata_props}
    assert meta["input_layout"] == ["batch", "sequence", 4] and meta["normalize"] is None


def test_an_export_that_raises_fails_the_format_not_the_call(tmp_path, monkeypatch):
    def broken(model, plan, path):
        raise RuntimeError("no")

    fmt = dataclasses.replace(FORMATS["torch_export"], methods=(("torch.export", broken),))
    monkeypatch.setitem(FORMATS, "torch_export", fmt)
    report = export_trained(trained_example("relu"), tmp_path, ["torch_export", "torchscript"], **QUIET)
    assert not report.passed
    assert report.failures == ["torch_export: export failed: RuntimeError: no"]
    written = json.loads((tmp_path / "export_report.json").read_text())
    assert written["formats"]["torch_export"]["file"] is None and written["formats"]["torchscript"]["passed"]


def test_an_opset_the_dynamo_exporter_cannot_write_falls_back(tmp_path):
    pytest.importorskip("onnxruntime")
    trained = trained_example("relu")
    trained.spec = trained.spec.model_copy(update={"export": trained.spec.export.model_copy(update={"opset": 13})})
    report = export_trained(trained, tmp_path, ["onnx"], **QUIET).to_dict()["formats"]["onnx"]
    assert report["passed"] and report["opset"] == 13 and report["method"] == "torchscript-based"
    assert "spec asks for opset 13" in report["attempts"][0]["failure"]
