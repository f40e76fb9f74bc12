"""The command as a process: its start-up (what it imports, how fast), its standard streams, its
signals and exit codes while it starts torchrun or joins Ray, and where it caches what it computes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelspec.errors import SpecError, format_path
from modelspec.load import loads_spec

from _reliability import TINY, child, finish
from _specs import REPO

needs_ray = pytest.mark.skipif(
    __import__("importlib").util.find_spec("ray") is None,
    reason="Ray is not installed: pip install 'modelspec[ray]' (CI installs it)")


def _spec(folder: Path, text: str = TINY) -> Path:
    (folder / "spec.yaml").write_text(text)
    return folder


# ---- start-up: what a command that builds no model imports


def _imported(args: list[str], cwd: Path) -> set[str]:
    """The top-level packages `modelspec ARGS` imports, from `python -X importtime`."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "modelspec", *args], cwd=cwd, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in done.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


@pytest.mark.parametrize("args", [["--version"], ["schema"]])
def test_version_and_schema_do_not_import_torch(tmp_path, args):
    imported = _imported(args, tmp_path)
    assert "modelspec" in imported
    assert not imported & {"torch", "torchvision", "torchmetrics", "numpy", "tensorboard"}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_command_imports_is_one_line_and_its_code(tmp_path, signum):
    _spec(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "modelspec", "validate", "spec.yaml"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)  # importing the command's modules (torch) takes seconds
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, err
    assert err in ("stopped while starting; nothing was written\n", "terminated\n", "interrupted\n")


# ---- standard output closed at start (`modelspec validate spec.yaml >&-`)


def test_a_closed_standard_output_is_one_message_and_exit_1(tmp_path):
    _spec(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for redirect in (">&-", ">&- 2>/dev/null"):
        done = subprocess.run(f"exec {sys.executable} -m modelspec validate spec.yaml {redirect}", shell=True,
                              cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True, timeout=120)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
    assert done.stderr == ""
    done = subprocess.run(f"exec {sys.executable} -m modelspec validate spec.yaml >&-", shell=True,
                          cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.stderr.strip() == "error: standard output is closed; redirect it (e.g. > /dev/null) instead"


# ---- train.freeze: refused at validate time when it leaves nothing to train


def test_freezing_every_parameter_is_a_located_spec_error_at_validate_time():
    text = TINY.replace("  deterministic: true\n", "  deterministic: true\n  freeze: ['0', '2']\n")
    with pytest.raises(SpecError) as caught:
        loads_spec(text, "spec.yaml")
    (issue,) = caught.value.issues
    line = text.splitlines().index("  freeze: ['0', '2']") + 1
    assert (issue.file, issue.line, format_path(issue.path)) == ("spec.yaml", line, "train.freeze")
    assert "freezes every parameter of the network" in issue.message and "head" in issue.hint

    loads_spec(text.replace("['0', '2']", "['0']"), "spec.yaml")  # the head trains on
    with pytest.raises(SpecError) as caught:  # a name with no layer: now, not after the data is read
        loads_spec(text.replace("['0', '2']", "['0', '3']"), "spec.yaml")
    assert format_path(caught.value.issues[0].path) == "train.freeze[1]"
    with pytest.raises(SpecError, match="freezes every parameter"):  # given by --set: located there
        loads_spec(TINY, "spec.yaml", ["train.freeze=['0', '2']"])


def test_a_grid_over_freeze_checks_each_run():
    text = TINY.replace("  train.optimizer.lr: [0.05, 0.02]", "  train.freeze: [['0'], ['0', '2']]")
    with pytest.raises(SpecError, match="freezes every parameter"):
        loads_spec(text, "spec.yaml")


# ---- the statistics cache (normalize: auto): in the user's cache folder, never beside the data


def test_the_statistics_cache_is_the_users_not_the_data_folders(tmp_path, monkeypatch):
    from modelspec.data.stats import cache_folder, cached_stats

    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o555)  # a shared, read-only data folder
    monkeypatch.delenv("MODELSPEC_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(sys, "platform", "linux")
    assert cache_folder() == tmp_path / "xdg" / "modelspec"
    logs = []
    key = {"root": str(data), "test": str(tmp_path)}
    assert cached_stats(key, lambda: ([0.5], [0.25]), logs.append) == ([0.5], [0.25])
    (written,) = (tmp_path / "xdg" / "modelspec").glob("stats-*.json")
    assert json.loads(written.read_text())["mean"] == [0.5] and "not cached" not in logs[0]
    assert not list(data.iterdir())

    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_folder() == tmp_path / "home" / ".cache" / "modelspec"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert cache_folder() == tmp_path / "home" / "Library" / "Caches" / "modelspec"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert cache_folder() == tmp_path / "local" / "modelspec"
    monkeypatch.setenv("MODELSPEC_CACHE", str(tmp_path / "mine"))
    assert cache_folder() == tmp_path / "mine"


def test_the_test_suite_caches_in_a_temporary_folder(tmp_path_factory):
    assert Path(os.environ["MODELSPEC_CACHE"]).is_relative_to(tmp_path_factory.getbasetemp())


# ---- --nproc N: what the spec is refused for is said before torchrun starts, once


def test_a_batch_that_does_not_split_over_nproc_is_one_message_before_torchrun(tmp_path):
    _spec(tmp_path, TINY.replace("batch_size: 8", "batch_size: 9"))
    started = time.monotonic()
    done = finish(["run", "spec.yaml", "--nproc", "2", "-q"], tmp_path, timeout=180)
    assert done.returncode == 2, done.stderr
    line = TINY.splitlines().index("  batch_size: 8") + 1
    assert done.stderr.splitlines() == [
        f"error: spec.yaml:{line}:15 data.batch_size: batch_size 9 is the global batch and must split evenly over 2 processes",
        "    hint: use a multiple of 2"]
    assert not (tmp_path / "runs").exists()  # no rank started, no grid folder
    assert time.monotonic() - started < 120


@pytest.mark.slow
def test_a_rank_killed_by_a_signal_is_a_failure_not_a_ctrl_c(tmp_path):
    long = (TINY.replace("size: 240", "size: 8000").replace("batch_size: 8", "batch_size: 4")
            .replace("epochs: 2", "epochs: 20\n  checkpoint_every: 1").replace("  train.optimizer.lr: [0.05, 0.02]\n", "")
            .replace("grid:\n", ""))
    _spec(tmp_path, long)
    process = child(["run", "spec.yaml", "--nproc", "2", "-q"], tmp_path, env={"OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 240
    while not list(tmp_path.glob("runs/tiny/*/*/checkpoint.pt")):
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.1)
    (rank1,) = [int(pid) for pid in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
                if b"RANK=1" in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")]
    os.kill(rank1, signal.SIGKILL)
    out, err = process.communicate(timeout=180)
    assert process.returncode == 1, err
    assert f"error: process 1 of 2 was killed by signal SIGKILL (pid {rank1})" in err
    assert "torch/distributed" not in err and "exitcode" not in err  # the launcher's own log lines


def test_a_killed_rank_outweighs_the_codes_of_the_ranks_stopped_after_it(capsys):
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    from modelspec.runner.distributed import _failure_code

    def failure(rank, code):
        return ProcessFailure(local_rank=rank, pid=100 + rank, exitcode=code, error_file="/nonexistent")

    assert _failure_code({0: failure(0, 143), 1: failure(1, -9)}, 2) == 1
    assert "process 1 of 2 was killed by signal SIGKILL (pid 101)" in capsys.readouterr().err
    assert _failure_code({0: failure(0, 2)}, 2) == 2  # rank 0's own code: a spec error
    assert _failure_code({0: failure(0, 130), 1: failure(1, 130)}, 2) == 130  # a Ctrl-C of the ranks


# ---- --executor ray --address: joining a cluster is bounded and honours signals


def _silent_listener() -> socket.socket:
    """A port that accepts TCP connections (the kernel's backlog) but never answers: not Ray."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    return listener


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


RAY_ARGS = ["run", "spec.yaml", "-q", "--executor", "ray", "--address"]


@needs_ray
@pytest.mark.slow
def test_an_address_where_nothing_listens_is_refused_at_once(tmp_path):
    _spec(tmp_path)
    done = finish([*RAY_ARGS, f"127.0.0.1:{_closed_port()}"], tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "cannot join the Ray cluster: Connection refused" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()  # refused before the grid folder is made


@needs_ray
@pytest.mark.slow
def test_an_address_that_never_answers_times_out_with_exit_2(tmp_path):
    _spec(tmp_path)
    with _silent_listener() as listener:
        address = "127.0.0.1:%d" % listener.getsockname()[1]
        done = finish([*RAY_ARGS, address], tmp_path, timeout=150, env={"MODELSPEC_RAY_CONNECT_TIMEOUT": "5"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[0] == (
        f"error: --address {address}: cannot join the Ray cluster: no answer within 5 s")


@needs_ray
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_joining_ray_ends_the_command(tmp_path, signum):
    _spec(tmp_path)
    with _silent_listener() as listener:
        process = child([*RAY_ARGS, "127.0.0.1:%d" % listener.getsockname()[1]], tmp_path,
                        env={"MODELSPEC_RAY_CONNECT_TIMEOUT": "300"})
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("runs/tiny/*")):
            assert time.monotonic() < deadline and process.poll() is None, process.communicate()
            time.sleep(0.1)
        time.sleep(4)  # the grid folder is made: Ray is importing, then retrying in ray.init
        process.send_signal(signum)
        try:
            out, err = process.communicate(timeout=30)
        finally:
            process.kill()
    assert process.returncode == 128 + signum, err
    assert "Traceback" not in err


# ---- export: torch.export and ONNX by default, TorchScript on request; .pt2 loaded first


@pytest.fixture(scope="module")
def one_run(tmp_path_factory) -> Path:
    from modelspec.runner import run_grid

    folder = tmp_path_factory.mktemp("one_run")
    text = TINY.replace("epochs: 2", "epochs: 1").replace("grid:\n  train.optimizer.lr: [0.05, 0.02]\n", "")
    loaded = loads_spec(text, "spec.yaml", [f"tracking.dir={folder / 'runs'}"])
    result = run_grid(loaded, quiet=True, log=lambda _: None)
    assert not result.failed
    return result.folder / "00_run"


def test_the_default_export_is_torch_export_and_onnx_and_prints_no_deprecation(one_run, tmp_path):
    from typer.testing import CliRunner

    from modelspec.cli.main import app
    from modelspec.spec.export import ExportSpec

    assert ExportSpec().formats == ["torch_export", "onnx"]
    pytest.importorskip("onnxruntime")
    result = CliRunner().invoke(app, ["export", str(one_run), "--out", str(tmp_path / "export")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == [
        "MODEL_CARD.md", "export_report.json", "model.onnx", "model.pt2", "preprocessing.json"]
    assert "deprecated" not in result.output


def test_predict_loads_the_pt2_of_an_export_folder_first_without_warnings(one_run, tmp_path):
    import warnings

    import torch
    from typer.testing import CliRunner

    from modelspec.cli.main import app
    from modelspec.predict import open_model

    out = tmp_path / "export"
    result = CliRunner().invoke(app, ["export", str(one_run), "-f", "torchscript", "-f", "torch_export", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation (nor any other warning) reaches the user
        predictor = open_model(out)
        outputs = predictor.predict(torch.randn(3, 6))
    assert not isinstance(predictor.forward, torch.jit.ScriptModule) and outputs.shape == (3, 3)
    (out / "model.pt2").unlink()  # TorchScript alone: still read, quietly
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(open_model(out).forward, torch.jit.ScriptModule)
