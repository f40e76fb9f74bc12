"""`modelspec export` end to end on fashion_bn run folders, and every way it can be misused.

The run folders are made here as the runner makes them (weights.pt per run, results.json per grid),
from untrained networks: export needs weights, not good ones.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from modelspec.artifacts import ModelInfo, save_weights
from modelspec.cli.main import app
from modelspec.compile import build_model
from modelspec.export import FORMATS
from modelspec.load import load_spec

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "specs" / "fashion_bn.yaml"
SHARED_DATA = REPO.parent / "shared" / "data"  # a real Fashion-MNIST subset, where CI has it
INFO = ModelInfo([1, 28, 28], "float32", 10, {"mean": [0.286], "std": [0.353]})

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, ["export", *map(str, args)])


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Path:
    """runs/fashion_bn/<timestamp>/ with a batch_norm run (the best), a no_batch_norm run, a failed one."""
    folder = tmp_path_factory.mktemp("runs") / "fashion_bn" / "2026-01-01_12-00-00"
    root = SHARED_DATA if (SHARED_DATA / "FashionMNIST").is_dir() else folder / "no-data"
    loaded = load_spec(SPEC, [f"data.root={root}", "data.download=false"])
    plans = {}
    for plan in loaded.runs():
        plans.setdefault(plan.spec.network_name, plan)
    runs = []
    for index, (network, accuracy) in enumerate([("no_batch_norm", 0.81), ("batch_norm", 0.86)]):
        plan = plans[network]
        name = f"{index:02d}_{network}"
        torch.manual_seed(index)
        model = build_model(plan.spec.layers, (1, 28, 28), 10)
        save_weights(folder / name / "weights.pt", model, plan.spec, INFO)
        runs.append({"run": plan.name, "dir": name, "status": "finished", "reason": None, "values": plan.values,
                     "best_val_accuracy": accuracy, "final_val_accuracy": accuracy - 0.01, "epochs": 1})
    (folder / "02_crashed").mkdir()
    runs.append({"run": "crashed", "dir": "02_crashed", "status": "failed", "reason": "loss is NaN",
                 "values": {}, "best_val_accuracy": 0.99, "final_val_accuracy": None, "epochs": 1})
    (folder / "results.json").write_text(json.dumps({"rows": [], "runs": runs}))
    return folder


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_best_run_every_format(grid, tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "exported"
    result = invoke(grid, "--best", "--format", "onnx", "-f", "torchscript", "-f", "torch_export", "--out", out)
    assert result.exit_code == 0, result.output
    assert "01_batch_norm" in result.output  # the best finished run, not the failed one
    assert "atol 0.0001, rtol 0.001" in result.output
    report = json.loads((out / "export_report.json").read_text())
    assert report["passed"] and report["network"] == "batch_norm"
    assert list(report["formats"]) == ["onnx", "torchscript", "torch_export"]
    for name, fmt in report["formats"].items():
        assert fmt["passed"] and (out / fmt["file"]).stat().st_size == fmt["bytes"]
        assert [c["input_shape"][0] for c in fmt["checks"]] == [1, 8], name
        assert all(c["max_abs_error"] <= 1e-4 for c in fmt["checks"])
    assert report["formats"]["onnx"]["method"] in ("dynamo", "torchscript-based")
    assert report["formats"]["torchscript"]["method"] in ("script", "trace")
    if (SHARED_DATA / "FashionMNIST").is_dir():
        assert "sample(s) of the run's data" in report["inputs"]

    # The files load without modelspec: docs/export.md's five lines for onnxruntime, then the others.
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(out / "model.onnx"))
    norm = json.loads(session.get_modelmeta().custom_metadata_map["normalize"])  # what training applied
    x = (np.random.rand(4, 1, 28, 28) - np.reshape(norm["mean"], (1, -1, 1, 1))) / np.reshape(norm["std"], (1, -1, 1, 1))
    logits = session.run(["output"], {"input": x.astype(np.float32)})[0]
    assert logits.shape == (4, 10) and norm == INFO.normalize
    assert [i.shape[0] for i in session.get_inputs()] == ["batch"]

    extra = {"preprocessing.json": ""}
    scripted = torch.jit.load(str(out / "model.torchscript.pt"), _extra_files=extra)
    program = torch.export.load(str(out / "model.pt2")).module()
    x = torch.from_numpy(x.astype(np.float32))
    assert torch.allclose(scripted(x), torch.from_numpy(logits), atol=1e-4)
    assert torch.allclose(program(x), torch.from_numpy(logits), atol=1e-4)
    preprocessing = json.loads(extra["preprocessing.json"])
    assert preprocessing == json.loads((out / "preprocessing.json").read_text())
    assert preprocessing["input_layout"] == ["batch", 1, 28, 28] and preprocessing["input_dtype"] == "float32"


def test_run_folder_with_the_spec_formats(grid):
    pytest.importorskip("onnxruntime")
    run = grid / "00_no_batch_norm"
    result = invoke(run)
    assert result.exit_code == 0, result.output
    out = run / "export"  # the default
    assert sorted(p.name for p in out.iterdir()) == [
        "MODEL_CARD.md", "export_report.json", "model.onnx", "model.torchscript.pt", "preprocessing.json",
    ]
    assert "--format torch_export" in result.output  # offered beside the spec's two


def test_spec_with_weights(grid, tmp_path):
    weights = grid / "01_batch_norm" / "weights.pt"
    result = invoke(SPEC, "--weights", weights, "--format", "torchscript", "--out", tmp_path,
                    "--set", f"data.root={tmp_path / 'no-data'}", "--set", "data.download=false")
    assert result.exit_code == 0, result.output
    assert "verifying on a random batch" in result.output
    assert json.loads((tmp_path / "export_report.json").read_text())["formats"]["torchscript"]["passed"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["{grid}/02_crashed"], "holds no weights.pt"),
        (["{grid}/02_crashed"], "this run failed: loss is NaN"),
        (["{grid}"], "grid folder with 3 runs"),
        (["{grid}/nothing"], "no such run folder"),
        (["{spec}", "--weights", "{grid}/00_no_batch_norm/weights.pt"],
         "do not fit the spec's network 'batch_norm'"),
        (["{spec}"], "--weights PATH"),
        (["{grid}", "--best", "--format", "onx"], "unknown export format 'onx'"),
        (["{grid}", "--best", "--format", "onx"], "did you mean 'onnx'?"),
        (["{grid}/00_no_batch_norm", "--best"], "--best picks among the runs"),
    ],
)
def test_user_errors_exit_2_with_a_message(grid, args, message):
    result = invoke(*[a.format(grid=grid, spec=SPEC) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_weights_that_are_not_weights(tmp_path):
    (tmp_path / "weights.pt").write_bytes(b"not a checkpoint")
    result = invoke(tmp_path)
    assert result.exit_code == 2 and "not a readable weights file" in result.output


def test_failed_verification_exits_1_and_keeps_the_file(grid, tmp_path, monkeypatch):
    scripted = FORMATS["torchscript"]

    def off_by_a_bit(path):
        model = scripted.load(path)
        return lambda x: model(x) + 1e-2

    monkeypatch.setitem(FORMATS, "torchscript", dataclasses.replace(scripted, load=off_by_a_bit))
    run = grid / "01_batch_norm"
    result = invoke(run, "--format", "torchscript", "--out", tmp_path)
    assert result.exit_code == 1, result.output
    assert "export failed verification" in result.output and "torchscript: batch 1" in result.output
    report = json.loads((tmp_path / "export_report.json").read_text())
    fmt = report["formats"]["torchscript"]
    assert not report["passed"] and not fmt["passed"]
    assert [a["method"] for a in fmt["attempts"]] == ["script", "trace"]  # tried both, both failed
    assert (tmp_path / fmt["file"]).is_file()  # kept, marked failed
    assert all(abs(c["max_abs_error"] - 1e-2) < 1e-3 for c in fmt["checks"])


def test_missing_onnx_names_the_extra(grid, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    result = invoke(grid, "--best", "--format", "onnx")
    assert result.exit_code == 2, result.output
    assert "pip install 'modelspec[onnx]'" in result.output and "onnxruntime" in result.output


def test_core_import_needs_no_onnx():
    code = "import sys, modelspec.export, modelspec.cli.main; assert 'onnx' not in sys.modules, 'onnx imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
