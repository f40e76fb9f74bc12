"""Nothing lost, no traceback, no hang: the cases of issue 14, each as a user or an operator meets it.

Every test here failed before its fix. Grids are tiny (synthetic, two runs of two epochs), trained
in-process through the CLI runner where signals and stdout do not matter, in a child process where
they do.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from modelspec.cli.main import app
from modelspec.errors import SpecError
from modelspec.load import load_spec, loads_spec
from modelspec.runner import run_grid
from modelspec.runner.lock import GridLock

from _reliability import REPO, TINY, child, finish, grid_folder, outcome, same

# A run of seconds draws no picture of its confusion matrix by default (tracking.images: auto); the
# tests of the closing files want every file there is.
PICTURES = "tracking.images={every: 10}"

runner = CliRunner()


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODELSPEC_CACHE", str(tmp_path / "cache"))
    (tmp_path / "tiny.yaml").write_text(TINY)
    return tmp_path


def _run(*args):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    return result


@pytest.fixture
def finished(here):
    """A finished grid: its folder, and its rows and weights."""
    assert _run("run", "tiny.yaml", "-q").exit_code == 0
    folder = grid_folder(here / "runs")
    return folder, outcome(folder)


# ---- results lost or mislabelled


def test_a_repeated_grid_value_is_refused_at_the_repeat(spec_issues):
    (issue,) = spec_issues(TINY, "grid.train.optimizer.lr=[0.1, 0.1]")
    assert issue.path == ("grid", "train.optimizer.lr", 1) and "repeats" in issue.message
    assert issue.file == "--set grid.train.optimizer.lr=[0.1, 0.1]"
    (issue,) = spec_issues(TINY.replace("[0.05, 0.02]", "[0.05, 0.02, 0.05]"))
    assert (issue.file, issue.line, issue.column) == ("bad.yaml", 22, 36)


def test_values_that_read_the_same_in_a_run_name_are_refused(spec_issues):
    (issue,) = spec_issues(TINY, "grid.train.optimizer={name: sgd, lr: 0.1}", "grid={train.optimizer: "
                           "[{name: sgd, lr: 0.1}, {lr: 0.1, name: sgd}]}")
    assert issue.path == ("grid", "train.optimizer", 1)


def test_overlapping_grid_axes_are_refused(spec_issues):
    (issue,) = spec_issues(TINY, "grid={train.optimizer.lr: [0.1], train.optimizer: [{name: adam, lr: 0.01}]}")
    assert "overlap" in issue.message and issue.path == ("grid", "train.optimizer")
    (issue,) = spec_issues(TINY, "grid={\"model[0].linear.out_features\": [4], \"model[0].out_features\": [5]}")
    assert "overlap" in issue.message


@pytest.mark.parametrize("axis", ["tracking.dir", "tracking.histograms", "export.formats", "name"])
def test_axes_that_cannot_differ_within_a_grid_are_refused_with_the_reason(spec_issues, axis):
    value = {"tracking.dir": "[a, b]", "tracking.histograms": "[true, false]",
             "export.formats": "[[onnx], [torchscript]]", "name": "[a, b]"}[axis]
    (issue,) = spec_issues(TINY, f"grid={{{axis}: {value}}}")
    assert "cannot be a grid axis:" in issue.message and issue.path == ("grid", axis)


@pytest.mark.parametrize("name", ["..", ".", "a/b", "../up"])
def test_a_name_is_one_folder_name(spec_issues, name):
    (issue,) = spec_issues(TINY, f"name={name}")
    assert issue.path == ("name",) and issue.file == f"--set name={name}" and "cannot name a folder" in issue.message


def test_a_network_axis_names_the_network_of_every_other_axis():
    text = TINY.replace("model:\n", "networks:\n  a:\n").replace("  - ", "    - ")
    text = text.replace("grid:\n", "grid:\n  train.network: [a, b]\n") + "  seed: [1, 2]\n"
    text = text.replace("networks:\n", "networks:\n  b: [{linear: {out_features: num_classes}}]\n")
    loaded = loads_spec(text, "two.yaml")
    assert [run.spec.network_name for run in loaded.runs()][::4] == ["a", "b"]


def test_resume_never_drops_the_rows_it_had(finished):
    folder, before = finished
    (next(folder.glob("00_*")) / "run.json").unlink()
    assert _run("resume", str(folder), "-q").exit_code == 0
    assert same(outcome(folder), before)
    assert len(json.loads((folder / "results.json").read_text())["runs"]) == 2


def test_a_live_lock_refuses_a_second_process_and_a_dead_ones_is_taken_over(finished):
    folder, before = finished
    lock = GridLock(folder).acquire()
    try:
        result = _run("resume", str(folder), "-q")
        assert result.exit_code == 2
        assert f"in use by process {os.getpid()} on {socket.gethostname()}" in result.stderr
    finally:
        lock.release()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (folder / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    result = _run("resume", str(folder))
    assert result.exit_code == 0, result.output
    assert f"taking over the lock of process {dead.pid}" in result.output
    assert not (folder / ".lock").exists() and same(outcome(folder), before)


# ---- tracebacks that become one message


def test_tracking_dir_that_is_a_file_is_a_located_error(here):
    (here / "afile").write_text("")
    result = _run("run", "tiny.yaml", "--set", "tracking.dir=afile")
    assert result.exit_code == 2
    assert "--set tracking.dir=afile tracking.dir: cannot create the grid folder under afile/tiny" in result.stderr


def test_a_read_only_tracking_dir_is_a_clear_error(here, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(here / "runs"))

    monkeypatch.setattr("modelspec.runner.folder.tempfile.mkdtemp", read_only)
    result = _run("run", "tiny.yaml")
    assert result.exit_code == 2 and "Read-only file system" in result.stderr and "tiny.yaml" in result.stderr


def test_export_to_a_file_or_under_one_is_a_clear_error(finished, here):
    folder, _ = finished
    (here / "afile").write_text("")
    for out in ("afile", "afile/sub"):
        result = _run("export", str(next(folder.glob("00_*"))), "--format", "torchscript", "--out", out)
        assert result.exit_code == 2 and f"--out {out}: cannot write there: the file afile is in the way" in result.stderr


@pytest.mark.parametrize("text", ["garbage{", "[]", "{}", '{"status": "finished", "rows": 3}'])
def test_a_damaged_run_state_is_read_as_missing(finished, text):
    folder, before = finished
    state = next(folder.glob("01_*")) / "run.json"
    state.write_text(text)
    result = _run("resume", str(folder))
    assert result.exit_code == 0
    assert f"{state.relative_to(Path.cwd())} is unreadable" in result.output
    assert same(outcome(folder), before)


def test_a_damaged_results_file_is_rebuilt(finished):
    folder, before = finished
    (folder / "results.json").write_text('{"rows": 1')
    assert _run("resume", str(folder), "-q").exit_code == 0
    assert same(outcome(folder), before)


def _no_debris(folder: Path) -> None:
    assert not list(folder.rglob("*.tmp")), "a temporary file was left behind"
    assert all(p.stat().st_size for p in folder.rglob("results.*")), "an empty results file"
    assert all(p.stat().st_size for p in folder.rglob("events.out.tfevents.*")), "an empty TensorBoard file"


@pytest.mark.parametrize("full_at", [3, 4])  # the third file's write, the journal's
def test_files_written_together_are_all_new_or_all_old_when_one_fails(tmp_path, monkeypatch, full_at):
    """fileio.atomic_write_together (a pack's checkpoints): every file goes to its temporary, then the
    journal, before the first rename, so a full disk on the third file or on the journal leaves the
    three old files, and no temporary or journal behind."""
    from modelspec import fileio

    paths = [tmp_path / f"run{i}" / "checkpoint.pt" for i in range(3)]
    fileio.atomic_write_together([(path, b"old") for path in paths], tmp_path)
    assert [path.read_bytes() for path in paths] == [b"old"] * 3
    real, writes = fileio._write_all, []

    def full_disk(fd, data, path):
        writes.append(path)
        if len(writes) == full_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data, path)

    monkeypatch.setattr(fileio, "_write_all", full_disk)
    with pytest.raises(OSError) as caught:
        fileio.atomic_write_together([(path, b"new") for path in paths], tmp_path)
    assert fileio.is_disk_full(caught.value)
    assert [path.read_bytes() for path in paths] == [b"old"] * 3
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["checkpoint.pt"] * 3 + ["run0", "run1", "run2"]
    monkeypatch.setattr(fileio, "_write_all", real)
    fileio.atomic_write_together([(path, b"new") for path in paths], tmp_path, durable=False)
    assert [path.read_bytes() for path in paths] == [b"new"] * 3
    assert fileio.finish_writes_together(tmp_path) == 0


KILLED_IN_THE_RENAMES = """
import os, sys
from pathlib import Path
from modelspec import fileio
renames = [0]
real = fileio._rename_over
def rename(tmp, path, sync_folder):
    renames[0] += 1
    if renames[0] == int(sys.argv[2]):
        os._exit(9)  # as kill -9 would: no handler runs
    real(tmp, path, sync_folder)
fileio._rename_over = rename
folder = Path(sys.argv[1])
fileio.atomic_write_together([(folder / f"run{i}" / "checkpoint.pt", b"new") for i in range(3)], folder)
"""


@pytest.mark.parametrize("killed_at", [1, 2, 3, 4])  # the journal's rename, then each file's
def test_files_written_together_and_killed_are_all_old_or_all_new_once_finished(tmp_path, killed_at):
    """A kill before the journal is in place leaves the old files; one after it, a mix of old and new,
    which what a resume runs first (`finish_writes_together`) completes from the journal: all new."""
    from modelspec import fileio

    paths = [tmp_path / f"run{i}" / "checkpoint.pt" for i in range(3)]
    fileio.atomic_write_together([(path, b"old") for path in paths], tmp_path)
    killed = subprocess.run([sys.executable, "-c", KILLED_IN_THE_RENAMES, str(tmp_path), str(killed_at)],
                            env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert killed.returncode == 9, killed.stderr
    renamed = max(killed_at - 2, 0)
    assert [path.read_bytes() for path in paths] == [b"new"] * renamed + [b"old"] * (3 - renamed)
    assert len(list(tmp_path.glob(".together.*.json"))) == (killed_at > 1)
    assert fileio.finish_writes_together(tmp_path) == (3 - renamed if killed_at > 1 else 0)
    assert [path.read_bytes() for path in paths] == [b"new" if killed_at > 1 else b"old"] * 3
    assert not list(tmp_path.glob(".together.*.json"))


def test_an_unreadable_journal_of_checkpoints_is_one_clear_error_of_resume(finished):
    """A pack's journal (`.together.*.json`) is written atomically; one edited by hand cannot be
    completed, and resume says which file and what to do, exit 2, before it touches anything."""
    folder, _ = finished
    (folder / ".together.0a1b2c.json").write_text("{not json")
    result = _run("resume", str(folder), "-q")
    assert result.exit_code == 2, result.output
    assert ".together.0a1b2c.json cannot be read" in result.output and "remove it" in result.output
    (folder / ".together.0a1b2c.json").unlink()
    assert _run("resume", str(folder), "-q").exit_code == 0


def test_a_full_disk_stops_cleanly_and_resume_finishes_the_grid(finished, here, monkeypatch):
    """Simulated: torch.save fails with ENOSPC from its 5th call on (mid-grid: a checkpoint each epoch)."""
    _, expected = finished
    real_save, calls = torch.save, [0]

    def full_disk_save(obj, handle, *args, **kwargs):
        calls[0] += 1
        if calls[0] >= 5:
            handle.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk_save)
    result = _run("run", "tiny.yaml", "-q", "--set", "tracking.dir=full", "--set", "train.checkpoint_every=1")
    folder = grid_folder(here / "full")
    assert result.exit_code == 1
    assert f"no space left on the disk" in result.stderr and f"modelspec resume {folder.relative_to(here)}" in result.stderr
    _no_debris(folder)
    monkeypatch.setattr(torch, "save", real_save)  # space is freed
    assert _run("resume", str(folder), "-q").exit_code == 0
    assert same(outcome(folder), expected)


@pytest.mark.slow
def test_a_full_tmpfs_stops_cleanly_and_resume_gives_the_undisturbed_result(tmp_path):
    """A real full disk: a 200 kB tmpfs as tracking.dir (needs root to mount; skipped otherwise). The
    grid writes about 320 kB (histograms each epoch), so its second run meets the full disk."""
    text = TINY.replace("histograms: false", "histograms: {every: 1}").replace("epochs: 2", "epochs: 8")
    (tmp_path / "tiny.yaml").write_text(text)
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(small)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here; the simulated test covers the runner")
    try:
        done = finish(["run", "tiny.yaml", "--set", "tracking.dir=small"], tmp_path)
        assert done.returncode == 1, done.stderr
        assert "no space left on the disk" in done.stderr and "Traceback" not in done.stderr, done.stderr
        folder = grid_folder(small)
        assert f"continue with: modelspec resume {folder.relative_to(tmp_path)}" in done.stderr
        _no_debris(folder)
        subprocess.run(["mount", "-o", "remount,size=20m", str(small)], check=True)
        assert finish(["resume", str(folder), "-q"], tmp_path).returncode == 0
        assert finish(["run", "tiny.yaml", "-q", "--set", "tracking.dir=ref"], tmp_path).returncode == 0
        assert same(outcome(folder), outcome(grid_folder(tmp_path / "ref")))
    finally:
        subprocess.run(["umount", str(small)], check=False)


def _stdout_case(tmp_path, args, **redirect):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    from _reliability import CHILD

    return subprocess.run([sys.executable, "-c", CHILD, *args], cwd=tmp_path, env=env, text=True,
                          stderr=subprocess.PIPE, timeout=120, **redirect)


def test_stdout_full_or_closed_is_one_line_and_exit_1(here):
    with open("/dev/full", "w") as full:
        done = _stdout_case(here, ["schema"], stdout=full)
    assert done.returncode == 1 and done.stderr == "error: cannot write to standard output: No space left on device\n"
    fd = os.dup(1)  # `>&-`: the child starts with file descriptor 1 closed
    done = subprocess.run(
        [sys.executable, "-c", "import os, subprocess, sys; os.close(1); sys.exit(subprocess.call(sys.argv[1:], "
         "close_fds=False))", sys.executable, "-c",
         "import sys; from modelspec.cli.main import main; sys.argv = ['modelspec', 'validate', 'tiny.yaml']; main()"],
        cwd=here, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(fd)
    assert done.returncode == 1 and done.stderr.startswith("error: standard output is closed"), done.stderr


# ---- hangs and memory blow-ups


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/urandom"])
def test_devices_are_refused_unread(path):
    with pytest.raises(SpecError, match="not a regular file"):
        load_spec(path)


def test_a_huge_sparse_file_is_refused_by_its_size(tmp_path, monkeypatch):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as handle:
        handle.truncate(1 << 30)
    monkeypatch.setattr("pathlib.Path.read_text", lambda *a, **k: pytest.fail("read the whole file"))
    with pytest.raises(SpecError, match="larger than 64,000 bytes"):
        load_spec(big)


def test_a_fifo_with_no_writer_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    done = _stdout_case(tmp_path, ["validate", "fifo.yaml"], stdout=subprocess.PIPE)
    assert done.returncode == 2 and "not a regular file" in done.stderr


@pytest.mark.slow
def test_sigterm_checkpoints_mid_epoch_exits_143_and_resumes_exactly(tmp_path):
    slow = TINY.replace("size: 240", "size: 4000").replace("epochs: 2", "epochs: 3")
    (tmp_path / "tiny.yaml").write_text(slow)
    assert finish(["run", "tiny.yaml", "-q", "--set", "tracking.dir=ref"], tmp_path).returncode == 0
    expected = outcome(grid_folder(tmp_path / "ref"))
    process = child(["run", "tiny.yaml", "--set", "tracking.dir=out", "--set", "train.checkpoint_every=1"], tmp_path)
    deadline = time.time() + 120
    while not list((tmp_path / "out").glob("tiny/*/00_*/checkpoint.pt")) and time.time() < deadline:
        time.sleep(0.02)  # the first epoch is done: SIGTERM lands mid-run
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    folder = grid_folder(tmp_path / "out")
    assert f"continue with: modelspec resume {folder.relative_to(tmp_path)}" in err and "Traceback" not in err
    assert finish(["resume", str(folder), "-q"], tmp_path).returncode == 0
    assert same(outcome(folder), expected)


def test_a_signal_before_any_run_trains_stops_at_once_and_leaves_no_folder(tmp_path):
    """Ctrl-C while the data downloads (here: a data preparation that never ends)."""
    (tmp_path / "tiny.yaml").write_text(TINY)
    script = ("import sys, time, modelspec.data as d; d.prepare_data = lambda *a, **k: time.sleep(600); "
              "from modelspec.cli.main import main; sys.argv = ['modelspec', 'run', 'tiny.yaml']; main()")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (tmp_path / "runs" / "tiny").is_dir() and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)  # not the 600 s the "download" would take
    assert process.returncode == 130 and err.strip().endswith("interrupted"), err
    assert not (tmp_path / "runs").exists()


# ---- messages that mislead


def test_run_time_errors_are_located_at_the_spec_line_or_the_override(here):
    text = TINY.replace("dataset: synthetic", "dataset: fashion_mnist\n  root: nowhere").replace(
        "  input_shape: [6]\n  num_classes: 3\n  size: 240\n  test_size: 40\n", "")
    (here / "fm.yaml").write_text(text.replace("linear: {out_features: 16}", "flatten"))
    result = _run("run", "fm.yaml")
    assert result.exit_code == 2 and "fm.yaml:5:9 data.root: run lr=0.05: fashion_mnist is not in" in result.stderr
    result = _run("run", "fm.yaml", "--set", "data.root=elsewhere")
    assert result.exit_code == 2 and "--set data.root=elsewhere data.root:" in result.stderr
    assert not (here / "runs").exists()  # a start that fails before any run trains leaves nothing
    announced = next(line for line in result.stdout.splitlines() if "run(s) ->" in line)
    folder = announced.split("-> ")[1]
    assert f"no run started: {folder} removed" in result.stdout  # the path printed is not left a lie


def test_an_empty_training_split_says_so(here):
    result = _run("run", "tiny.yaml", "--set", "data.val_split=0.999")
    assert result.exit_code == 2
    assert "val_split=0.999 leaves no training sample" in result.stderr and "--set data.val_split" in result.stderr
    assert not (here / "runs").exists()


def test_a_full_disk_while_the_confusion_files_are_written_in_the_background_stops_the_grid(here, monkeypatch):
    """The final confusion matrix files are written by a background thread; the run waits for them
    before it counts as finished, and their error is the run's: a full disk, resumable."""
    from modelspec.tracking import confusion

    real_write, calls = confusion._write_files, [0]

    def full_disk_write(folder, tables, picture, sync_folder):
        calls[0] += 1
        if calls[0] == 2:  # the second run's
            raise OSError(errno.ENOSPC, "No space left on device", str(folder / "confusion_matrix.csv"))
        real_write(folder, tables, picture, sync_folder)

    monkeypatch.setattr(confusion, "_write_files", full_disk_write)
    result = _run("run", "tiny.yaml", "-q", "--set", PICTURES)
    folder = grid_folder(here / "runs")
    assert result.exit_code == 1 and "no space left on the disk writing" in result.stderr
    first, second = sorted(p for p in folder.iterdir() if p.is_dir())
    assert json.loads((first / "run.json").read_text())["status"] == "finished"
    assert not (second / "run.json").exists()  # not finished: resume trains it again
    monkeypatch.setattr(confusion, "_write_files", real_write)
    assert _run("resume", str(folder), "-q").exit_code == 0
    assert (second / "confusion_matrix.png").is_file()
    assert json.loads((second / "run.json").read_text())["status"] == "finished"


def test_the_next_run_trains_while_a_runs_files_are_written_and_its_run_json_follows_them(here, monkeypatch):
    """The grid does not wait for a run's closing files: the next run starts while they are written,
    and the run's run.json is written once they are."""
    import threading

    from modelspec import artifacts
    from modelspec.runner import loop

    second_run_trains, seen = threading.Event(), {}
    real_write, real_epoch = artifacts.atomic_write_bytes, loop.train_epoch

    def slow_weights(path, data, sync_folder=True):
        if Path(path).name == "weights.pt" and not seen:  # the first run's: held until the next one trains
            seen["next run trained first"] = second_run_trains.wait(timeout=30)
            seen["run.json before its weights"] = (Path(path).parent / "run.json").exists()
        real_write(path, data, sync_folder)

    def epoch(state, parts, feed, ctx):
        if parts.run_dir.name.startswith("01_"):
            second_run_trains.set()
        return real_epoch(state, parts, feed, ctx)

    monkeypatch.setattr(loop, "atomic_write_bytes", slow_weights)
    monkeypatch.setattr(loop, "train_epoch", epoch)
    assert _run("run", "tiny.yaml", "-q").exit_code == 0
    assert seen == {"next run trained first": True, "run.json before its weights": False}
    for run_dir in (p for p in grid_folder(here / "runs").iterdir() if p.is_dir()):
        assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
        assert (run_dir / "weights.pt").is_file()


def test_a_full_disk_met_by_a_runs_files_while_the_next_run_trains_stops_the_grid_there(here, monkeypatch):
    """The second run's weights meet a full disk in the background while the third run trains: the
    grid stops after the third with the second resumable (no run.json, not finished in the table),
    and a resume finishes it with the numbers of a grid that never stopped."""
    from modelspec import artifacts
    from modelspec.runner import loop

    (here / "tiny.yaml").write_text(TINY.replace("lr: [0.05, 0.02]", "lr: [0.05, 0.02, 0.01, 0.03]"))
    real_write, calls = artifacts.atomic_write_bytes, [0]

    def full_disk_once(path, data, sync_folder=True):
        if Path(path).name == "weights.pt":
            calls[0] += 1
            if calls[0] == 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(path, data, sync_folder)

    monkeypatch.setattr(loop, "atomic_write_bytes", full_disk_once)
    result = _run("run", "tiny.yaml", "-q")
    assert result.exit_code == 1 and "no space left on the disk writing" in result.stderr
    folder = grid_folder(here / "runs")
    runs = sorted(p for p in folder.iterdir() if p.is_dir())
    assert [(run / "run.json").exists() for run in runs] == [True, False, True]  # the fourth never started
    assert json.loads((folder / "results.json").read_text())["runs"][1]["status"] != "finished"
    monkeypatch.setattr(loop, "atomic_write_bytes", real_write)
    assert _run("resume", str(folder), "-q").exit_code == 0
    assert all(json.loads((run / "run.json").read_text())["status"] == "finished"
               for run in sorted(p for p in folder.iterdir() if p.is_dir()))
    assert _run("run", "tiny.yaml", "-q", "--set", "tracking.dir=again").exit_code == 0
    assert same(outcome(folder), outcome(grid_folder(here / "again")))


def test_a_runs_files_that_cannot_be_written_fail_that_run_and_the_grid_goes_on(here, monkeypatch):
    """Another error than a full disk, met by a run's files in the background, fails that run with
    its reason, as it did when the run waited for them, and the next runs go on."""
    from modelspec import artifacts
    from modelspec.runner import loop

    real_write = artifacts.atomic_write_bytes

    def refused(path, data, sync_folder=True):
        if Path(path).name == "weights.pt" and Path(path).parent.name.startswith("00_"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        real_write(path, data, sync_folder)

    monkeypatch.setattr(loop, "atomic_write_bytes", refused)
    result = _run("run", "tiny.yaml", "-q")
    assert result.exit_code == 1
    first, second = sorted(p for p in grid_folder(here / "runs").iterdir() if p.is_dir())
    state = json.loads((first / "run.json").read_text())
    assert state["status"] == "failed" and state["reason"].startswith("PermissionError:")
    assert json.loads((second / "run.json").read_text())["status"] == "finished"
    summaries = json.loads((first.parent / "results.json").read_text())["runs"]
    assert [summary["status"] for summary in summaries] == ["failed", "finished"]


def test_a_finished_runs_files_reach_the_disk_before_its_run_json_says_so(here, monkeypatch):
    """Each of a run's closing files is synced, and its folder is synced once, by run.json's write,
    after every one of them is renamed into place: a crash of the machine never leaves a finished
    run.json beside missing weights. (One folder sync per run, not one per file: fsyncs were a third
    of a tiny run's closing cost.)"""
    from modelspec import fileio

    events, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd):
        events.append(("sync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        real_replace(src, dst)
        events.append(("rename", os.path.realpath(dst)))

    monkeypatch.setattr(fileio.os, "fsync", fsync)
    monkeypatch.setattr(fileio.os, "replace", replace)
    assert _run("run", "tiny.yaml", "-q", "--set", "grid={}", "--set", PICTURES).exit_code == 0
    run_dir = Path(os.path.realpath(next(p for p in grid_folder(here / "runs").iterdir() if p.is_dir())))
    closing = ["weights.pt", "confusion_matrix.csv", "confusion_matrix_normalized.csv", "confusion_matrix.png"]
    renamed = {Path(path).name: i for i, (what, path) in enumerate(events) if what == "rename" and Path(path).parent == run_dir}
    assert set(closing + ["run.json"]) <= set(renamed)
    for name in closing:  # its data synced before its rename
        synced = [i for i, (what, path) in enumerate(events) if what == "sync" and f"/.{name}." in path]
        assert synced and synced[0] < renamed[name], name
    folder_syncs = [i for i, (what, path) in enumerate(events) if what == "sync" and path == str(run_dir)]
    assert folder_syncs == [i for i in folder_syncs if i > renamed["run.json"]] and len(folder_syncs) == 1
    assert all(renamed[name] < renamed["run.json"] for name in closing)


def test_a_run_killed_after_its_last_checkpoint_writes_its_results_on_resume(here):
    """Killed between the checkpoint after the last epoch and run.json: the resume has no epoch left
    to train and must still write the weights and the confusion matrix before the run counts as done."""
    assert _run("run", "tiny.yaml", "-q", "--set", "train.checkpoint_every=1", "--set", PICTURES).exit_code == 0
    folder = grid_folder(here / "runs")
    run_dir = next(folder.glob("00_*"))
    weights = torch.load(run_dir / "weights.pt", weights_only=True)["state_dict"]
    for name in ("run.json", "weights.pt", "confusion_matrix.csv", "confusion_matrix.png"):
        (run_dir / name).unlink()
    assert _run("resume", str(folder), "-q").exit_code == 0
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    again = torch.load(run_dir / "weights.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(weights[key], again[key]) for key in weights)
    assert (run_dir / "confusion_matrix.csv").is_file() and (run_dir / "confusion_matrix.png").is_file()


def test_a_run_that_stopped_early_resumes_to_no_more_epochs(here):
    """Killed after the checkpoint of the epoch that stopped it early, before run.json: the resume
    must not train one more epoch (the run left alone had stopped)."""
    stop = ["--set", "train.checkpoint_every=1", "--set", "train.early_stopping={monitor: val_loss, patience: 1, "
            "min_delta: 10}", "--set", "train.epochs=5", "--set", "grid.train.optimizer.lr=[0.05]"]
    assert _run("run", "tiny.yaml", "-q", *stop).exit_code == 0
    folder = grid_folder(here / "runs")
    run_dir = next(folder.glob("00_*"))
    before = json.loads((run_dir / "run.json").read_text())["rows"]
    weights = torch.load(run_dir / "weights.pt", weights_only=True)["state_dict"]
    assert len(before) == 2  # no gain of 10: stopped after its second epoch
    (run_dir / "run.json").unlink()
    assert _run("resume", str(folder), "-q").exit_code == 0
    assert json.loads((run_dir / "run.json").read_text())["rows"] == before
    again = torch.load(run_dir / "weights.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(weights[key], again[key]) for key in weights)


def test_a_truncated_checkpoint_says_how_to_start_the_run_over(finished):
    folder, before = finished
    run_dir = next(folder.glob("00_*"))
    (run_dir / "run.json").unlink()
    # (a run this short writes no checkpoint of its own: `auto`; a cut-off torch file stands for one)
    (run_dir / "checkpoint.pt").write_bytes((run_dir / "weights.pt").read_bytes()[:100])
    result = _run("resume", str(folder))
    assert result.exit_code == 2
    assert f"--restart-run {run_dir.name}" in result.stderr and "resume the run to write it" not in result.stderr
    result = _run("resume", str(folder), "-q", "--restart-run", run_dir.name)
    assert result.exit_code == 0, result.output
    assert same(outcome(folder), before)


def test_an_override_that_creates_an_unknown_key_is_located_at_the_override(spec_issues):
    (issue,) = spec_issues(TINY, "train.optimizer.foo.bar=1")
    assert issue.file == "--set train.optimizer.foo.bar=1"
    (issue,) = spec_issues(TINY, "data.foo.x=1")
    assert issue.file == "--set data.foo.x=1"


def test_a_failed_export_after_training_leaves_the_run_finished(here):
    def failing(plan, run_dir, model, info):
        raise RuntimeError("export failed its verification")

    text = TINY.replace("tracking:", "export: {after_run: true}\ntracking:")
    result = run_grid(loads_spec(text, "tiny.yaml"), quiet=True, log=lambda _: None, exporter=failing)
    assert {o.status for o in result.outcomes.values()} == {"finished"}
    assert set(result.export_failed) == {"lr=0.05", "lr=0.02"}
    runs = json.loads((result.folder / "results.json").read_text())["runs"]
    assert {r["export"] for r in runs} == {"failed: export failed its verification"}
    from modelspec.export.locate import best_run

    assert best_run(result.folder)["status"] == "finished"


# ---- things users expect


def test_resume_from_another_directory_with_a_relative_data_root(here, monkeypatch):
    from PIL import Image

    for label in ("a", "b"):
        (here / "images" / "train" / label).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (4, 4), (60 * i, 0, 0)).save(here / "images" / "train" / label / f"{i}.png")
    text = ("name: imgs\ndata: {dataset: image_folder, root: images, batch_size: 4, transforms: [to_tensor]}\n"
            "model: [flatten, {linear: {out_features: num_classes}}]\ntrain: {epochs: 1}\n")
    (here / "imgs.yaml").write_text(text)
    assert _run("run", "imgs.yaml", "-q").exit_code == 0
    folder = grid_folder(here / "runs", "imgs")
    (next(folder.glob("00_*")) / "run.json").unlink()
    elsewhere = here / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = _run("resume", str(folder), "-q", "--set", "data.num_workers=0")
    assert result.exit_code == 0, result.output
    result = _run("resume", str(folder), "--set", "train.epochs=3")
    assert result.exit_code == 2 and "train.epochs cannot change on resume" in result.stderr


def test_epoch_lines_are_not_wrapped_in_a_log(here):
    result = _run("run", "tiny.yaml", "--set", "grid.train.optimizer.lr=[0.0500000000000001234]")
    lines = [line for line in result.output.splitlines() if " epoch 1: loss " in line]
    assert lines and all(line.rstrip().endswith("s)") for line in lines), result.output


def test_files_respect_the_umask(here):
    old = os.umask(0o022)
    try:
        assert _run("run", "tiny.yaml", "-q", "--set", "train.checkpoint_every=1").exit_code == 0
    finally:
        os.umask(old)
    folder = grid_folder(here / "runs")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    for name in ("results.json", "spec.yaml"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o644
    run_dir = next(folder.glob("00_*"))
    for name in ("weights.pt", "checkpoint.pt", "run.json"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o644


def test_version():
    from importlib.metadata import version

    result = _run("--version")
    assert result.exit_code == 0 and result.output == f"modelspec {version('modelspec')}\n"


def test_a_failed_download_leaves_no_empty_data_folders(tmp_path, monkeypatch):
    """torchvision makes <root>/FashionMNIST/raw before it downloads; a failed download removes what
    it made and left empty, and says why it failed."""
    from urllib.error import URLError

    import torchvision.datasets.mnist as mnist

    from modelspec.errors import SpecError
    from modelspec.data import prepare_data

    def offline(*args, **kwargs):
        raise URLError("no route to host")

    monkeypatch.setattr(mnist, "download_and_extract_archive", offline)
    (tmp_path / "keep").mkdir()
    spec = loads_spec(f"name: t\ndata: {{dataset: fashion_mnist, root: {tmp_path / 'keep' / 'data'}, download: true}}\n"
                      "model: [flatten, {linear: {out_features: 10}}]\n", "t.yaml").spec
    with pytest.raises(SpecError, match="downloading fashion_mnist .* failed: .*no route to host"):
        prepare_data(spec.data, 0, torch.device("cpu"), log=lambda _: None)
    assert list((tmp_path / "keep").iterdir()) == []  # data/, FashionMNIST/ and raw/ are gone again
