"""Runs that survive: SIGKILL at random moments (and mid-checkpoint), Ctrl-C, exact resume.

Each trial trains the same small deterministic grid in a child process, kills it, resumes it, and
compares the final weights and results rows with a run left alone: they must be identical.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from modelspec.cli.main import app

from _specs import SYNTHETIC, write_spec

TRIALS = int(os.environ.get("MODELSPEC_KILL_TRIALS", "3"))
# Checkpointed after every epoch: the signals land once a run's first checkpoint is there, and a
# kill mid-grid must find one to resume from (`auto` writes one only at the end of runs this short).
GRID = (SYNTHETIC.replace("size: 1200", "size: 600").replace("  deterministic: true\n", "  deterministic: true\n  checkpoint_every: 1\n")
        + "grid:\n  train.optimizer.lr: [0.01, 0.003]\n")
runner = CliRunner()

# The child process: the CLI, optionally made to die halfway through writing the file of torch.save's
# Nth call (serialised in memory, then written by os.write), so that the kill lands inside a
# checkpoint write.
CHILD = """
import os, signal, sys, io, torch
die_at = int(os.environ.get("DIE_IN_SAVE", "0"))
if die_at:
    real_save, real_write, calls = torch.save, os.write, [0]
    def counted_save(obj, f, *a, **k):
        calls[0] += 1
        return real_save(obj, f, *a, **k)
    def torn_write(fd, data):
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if calls[0] < die_at or not (name.startswith(".") and name.endswith(".tmp")):
            return real_write(fd, data)
        real_write(fd, bytes(data[: len(data) // 2])); os.fsync(fd)
        os.kill(os.getpid(), signal.SIGKILL)
    torch.save, os.write = counted_save, torn_write
from modelspec.cli.main import main
sys.argv = ["modelspec"] + sys.argv[1:]
main()
"""


def _child(args: list[str], cwd: Path, **env) -> subprocess.Popen:
    environment = {**os.environ, "MODELSPEC_CACHE": str(cwd / "cache"), **env}
    return subprocess.Popen([sys.executable, "-c", CHILD, *args], cwd=cwd, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    process = _child(args, cwd)
    out, err = process.communicate(timeout=300)
    return subprocess.CompletedProcess(args, process.returncode, out, err)


def _outcome(tracking_dir: Path) -> tuple[list[dict], dict[str, dict[str, torch.Tensor]]]:
    (folder,) = (tracking_dir / "syn").iterdir()
    rows = json.loads((folder / "results.json").read_text())["rows"]
    rows = [{k: v for k, v in row.items() if "duration" not in k} for row in rows]
    weights = {p.parent.name: torch.load(p, weights_only=True)["state_dict"] for p in folder.glob("*/weights.pt")}
    return rows, weights


def _train_loss_steps(run_dir: Path) -> list[int]:
    """The steps TensorBoard shows for loss/train: each epoch once, whatever the kill left behind."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [event.step for event in events.Scalars("loss/train")]


def _same(a, b) -> bool:
    rows_a, weights_a = a
    rows_b, weights_b = b
    return rows_a == rows_b and weights_a.keys() == weights_b.keys() and all(
        all(torch.equal(weights_a[run][k], weights_b[run][k]) for k in weights_a[run]) for run in weights_a)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The grid left alone, and how long it took."""
    folder = tmp_path_factory.mktemp("reference")
    spec = write_spec(folder, GRID)
    start = time.perf_counter()
    done = _finish(["run", str(spec), "-q", "--set", "tracking.dir=ref"], folder)
    assert done.returncode == 0, done.stderr
    return _outcome(folder / "ref"), time.perf_counter() - start


@pytest.mark.slow  # over 10 s even on a quiet 2-core machine
def test_sigkill_at_random_moments_then_resume_is_exact(reference, tmp_path):
    expected, seconds = reference
    rng = random.Random(1234)
    matched = 0
    for trial in range(TRIALS):
        folder = tmp_path / f"trial{trial}"
        folder.mkdir()
        spec = write_spec(folder, GRID)
        args = ["run", str(spec), "-q", "--set", "tracking.dir=out"]
        process = _child(args, folder)
        # The kill lands at a random moment after the grid folder appears: start-up (importing
        # torch) takes seconds more on a loaded machine, and a kill before it tests nothing.
        deadline = time.time() + 120
        while not list((folder / "out").glob("syn/*/spec.json")) and process.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.5) * seconds)
        process.send_signal(signal.SIGKILL)
        process.wait()
        if not list((folder / "out").glob("syn/*/spec.json")):  # killed before the grid began
            continue
        resumed = _finish(args + ["--resume"], folder)
        assert resumed.returncode == 0, resumed.stderr
        assert _same(_outcome(folder / "out"), expected), f"trial {trial} differs after resume"
        for run_dir in (folder / "out" / "syn").glob("*/0*"):
            assert _train_loss_steps(run_dir) == [1, 2, 3], f"trial {trial}: TensorBoard steps of {run_dir.name}"
        matched += 1
    print(f"\n{matched} of {TRIALS} kill-and-resume trials resumed and matched the run left alone")
    assert matched >= 1, "every kill landed before the grid folder existed; the trials tested nothing"


@pytest.mark.slow  # over 10 s even on a quiet 2-core machine
@pytest.mark.parametrize("die_at_save", [2, 5])
def test_a_kill_during_a_checkpoint_write_leaves_the_previous_one(reference, tmp_path, die_at_save):
    expected, _ = reference
    spec = write_spec(tmp_path, GRID)
    # GRID checkpoints after every epoch: the 2nd and 5th saves are checkpoints replacing an earlier one.
    args = ["run", str(spec), "-q", "--set", "tracking.dir=out"]
    process = _child(args, tmp_path, DIE_IN_SAVE=str(die_at_save))
    process.communicate(timeout=300)
    assert process.returncode == -signal.SIGKILL
    resumed = _finish(args + ["--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert _same(_outcome(tmp_path / "out"), expected)
    # The killed process had logged the epoch whose checkpoint it was writing; the resumed one
    # logs it again, and TensorBoard must show it once.
    for run_dir in (tmp_path / "out" / "syn").glob("*/0*"):
        assert _train_loss_steps(run_dir) == [1, 2, 3], run_dir.name


@pytest.mark.slow  # over 10 s even on a quiet 2-core machine
@pytest.mark.parametrize("loader", ["device", "dataloader"])
def test_ctrl_c_checkpoints_mid_epoch_and_resume_is_exact(reference, tmp_path, loader):
    # Both feeding paths draw the same batches, so both must end as the reference does; the
    # checkpoint holds the epoch's metric sums so far, so the resumed epoch's row is exact too.
    expected, _ = reference
    spec = write_spec(tmp_path, GRID.replace("transforms: []", f"transforms: []\n  loader: {loader}"))
    process = _child(["run", str(spec), "--set", "tracking.dir=out"], tmp_path)
    deadline = time.time() + 120
    while not list((tmp_path / "out").glob("syn/*/00_*/checkpoint.pt")) and time.time() < deadline:
        time.sleep(0.05)  # wait until the first epoch is done, so that Ctrl-C lands mid-run
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "continue with: modelspec resume" in err
    (folder,) = (tmp_path / "out" / "syn").iterdir()
    resumed = _finish(["resume", str(folder), "-q"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert _same(_outcome(tmp_path / "out"), expected)


def _finished_grid(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODELSPEC_CACHE", str(tmp_path / "cache"))
    spec = write_spec(tmp_path, GRID.replace("epochs: 3", "epochs: 1"))
    assert runner.invoke(app, ["run", str(spec), "-q"]).exit_code == 0
    (folder,) = (tmp_path / "runs" / "syn").iterdir()
    return spec, folder


def test_resume_refuses_a_changed_spec(tmp_path, monkeypatch):
    spec, _ = _finished_grid(tmp_path, monkeypatch)
    result = runner.invoke(app, ["run", str(spec), "--resume", "--set", "train.epochs=2"])
    assert result.exit_code == 2
    assert "the spec changed since" in result.stderr and ": train" in result.stderr


def test_finished_runs_are_skipped_on_resume(tmp_path, monkeypatch):
    spec, folder = _finished_grid(tmp_path, monkeypatch)
    before = (folder / "results.csv").read_text()
    result = runner.invoke(app, ["run", str(spec), "--resume", "-q"])
    assert result.exit_code == 0, result.output
    assert (folder / "results.csv").read_text() == before


def _reopen_first_run(folder: Path) -> Path:
    run_dir = next(folder.glob("00_*"))
    state = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**state, "status": "stopped"}))
    return run_dir / "checkpoint.pt"


def test_a_truncated_checkpoint_is_a_clear_error(tmp_path, monkeypatch):
    spec, folder = _finished_grid(tmp_path, monkeypatch)
    checkpoint = _reopen_first_run(folder)
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    result = runner.invoke(app, ["run", str(spec), "--resume"])
    assert result.exit_code == 2
    assert f"{checkpoint.relative_to(tmp_path)} is not a readable checkpoint (corrupt or truncated?)" in result.stderr
    assert "Traceback" not in result.output


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_checkpoints_load_weights_only_and_never_run_code(tmp_path, monkeypatch):
    spec, folder = _finished_grid(tmp_path, monkeypatch)
    checkpoint = _reopen_first_run(folder)
    torch.save({"model": _Payload()}, checkpoint)
    result = runner.invoke(app, ["run", str(spec), "--resume"])
    assert result.exit_code == 2 and "not a readable checkpoint" in result.stderr
    assert not (tmp_path / "pwned").exists()
