"""Grids on Ray (`--executor ray`): a real local Ray instance on this machine's 2 CPUs.

The grid on Ray must end as the sequential grid does (rows and weights bit for bit, with the same
thread count), survive a killed task (Ray runs it again from its checkpoint), a killed driver (resume
continues on Ray) and Ctrl-C (every task checkpoints; resume finishes).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelspec.cli.main import app

from _reliability import TINY, child, finish, grid_folder, outcome, same

# Four runs, long enough (10 epochs of 750 small steps) to be caught mid-run, checkpointed after every
# epoch (the tests wait for a run's first checkpoint; `auto` may write none before a run ends).
RAY_SPEC = (TINY.replace("size: 240", "size: 4000").replace("batch_size: 8", "batch_size: 4")
            .replace("epochs: 2", "epochs: 10\n  checkpoint_every: 1")
            .replace("lr: [0.05, 0.02]", "lr: [0.05, 0.02, 0.01, 0.005]"))
# Threads change float sums: the sequential reference uses one, as each Ray task of 1 CPU does.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
RAY = ["--executor", "ray", "--cpus-per-run", "1", "-q"]

needs_ray = pytest.mark.skipif(
    __import__("importlib").util.find_spec("ray") is None,
    reason="Ray is not installed: pip install 'modelspec[ray]' (CI installs it)")


def _write_spec(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.yaml").write_text(RAY_SPEC)
    return folder


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """The grid run one run after another in one process: what Ray must reproduce."""
    cwd = _write_spec(tmp_path_factory.mktemp("sequential"))
    done = finish(["run", "spec.yaml", "-q"], cwd, env=ONE_THREAD)
    assert done.returncode == 0, done.stderr
    return outcome(grid_folder(cwd / "runs"))


def _wait(condition, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _runs(cwd: Path) -> list[Path]:
    base = cwd / "runs" / "tiny"
    return sorted(p for grid in base.glob("[!.]*") for p in grid.iterdir() if p.is_dir()) if base.is_dir() else []


def _mid_run(cwd: Path) -> Path | None:
    """A run that has saved a checkpoint after its first epoch and is not finished."""
    for run in _runs(cwd):
        rows = run / "rows.jsonl"
        if (run / "checkpoint.pt").exists() and rows.exists() and rows.read_text().count("\n") >= 1 \
                and not (run / "run.json").exists():
            return run
    return None


def _pids(run: Path) -> list[int]:
    """The worker processes that ran this run, as its log.txt names them."""
    return [int(line.rsplit("pid ", 1)[1]) for line in (run / "log.txt").read_text().splitlines() if ", pid " in line]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
@needs_ray
def test_a_grid_on_ray_gives_the_rows_and_weights_of_the_sequential_grid(tmp_path, sequential):
    cwd = _write_spec(tmp_path)
    done = finish(["run", "spec.yaml", *RAY], cwd)
    assert done.returncode == 0, done.stderr
    assert "Ray started on this machine" in done.stdout
    folder = grid_folder(cwd / "runs")
    assert same(outcome(folder), sequential)
    assert json.loads((folder / "grid.json").read_text())["executor"] == {
        "kind": "ray", "address": None, "cpus_per_run": 1.0, "gpus_per_run": 0.0}
    # Every run trained once, in a Ray worker, which logged where.
    assert len(_runs(cwd)) == 4 and all(len(_pids(run)) == 1 for run in _runs(cwd))


@pytest.mark.slow
@needs_ray
def test_a_task_whose_worker_is_killed_is_retried_from_its_checkpoint_and_ends_identical(tmp_path, sequential):
    cwd = _write_spec(tmp_path)
    driver = child(["run", "spec.yaml", *RAY], cwd)
    try:
        _wait(lambda: _mid_run(cwd) is not None, what="a run past its first checkpoint")
        victim = _mid_run(cwd)
        (pid,) = _pids(victim)
        os.kill(pid, signal.SIGKILL)
        out, err = driver.communicate(timeout=300)
    finally:
        driver.kill()
    assert driver.returncode == 0, err
    assert len(_pids(victim)) == 2  # Ray ran the task again, in another worker
    assert "resuming at epoch" in (victim / "log.txt").read_text()  # from the checkpoint, not from scratch
    assert same(outcome(grid_folder(cwd / "runs")), sequential)


def _kill_driver_mid_grid(cwd: Path) -> list[Path]:
    """Start the grid on Ray and SIGKILL its driver's whole process group once one run has finished
    and another is mid-run; the runs finished by then."""
    # Its own session: killing the group kills the driver and the Ray instance it started, as a
    # crash of the machine's login session would.
    driver = child(["run", "spec.yaml", *RAY], cwd, start_new_session=True)
    try:
        def one_done_one_going() -> bool:
            done = [r for r in _runs(cwd) if '"finished"' in _read(r / "run.json")]
            return bool(done) and _mid_run(cwd) is not None

        _wait(one_done_one_going, what="one run finished and another mid-run")
        finished_before = [r for r in _runs(cwd) if '"finished"' in _read(r / "run.json")]
        workers = [pid for run in _runs(cwd) if (run / "log.txt").exists() for pid in _pids(run)]
        os.killpg(driver.pid, signal.SIGKILL)
        driver.communicate(timeout=60)
        _wait(lambda: all(_gone(pid) for pid in workers), timeout=30, what="the workers to end with their driver")
    finally:
        _kill_group(driver)
    return finished_before


@pytest.mark.slow
@needs_ray
def test_a_killed_driver_resumes_on_ray_and_loses_nothing(tmp_path, sequential):
    for attempt in range(3):
        cwd = _write_spec(tmp_path / f"attempt{attempt}")
        finished_before = _kill_driver_mid_grid(cwd)
        if sum('"finished"' in _read(run / "run.json") for run in _runs(cwd)) < 4:  # of the 4 runs
            break
        # On a loaded machine the kill can land after the last run ended (runs take seconds): then
        # it tested nothing, and the grid starts again in a fresh folder.
    else:
        pytest.fail("in three tries the kill never landed before the grid ended")
    folder = grid_folder(cwd / "runs")
    resumed = finish(["resume", str(folder), "-q"], cwd)
    assert resumed.returncode == 0, resumed.stderr
    assert "Ray started on this machine" in resumed.stdout  # as the grid was started
    assert same(outcome(folder), sequential)
    for run in finished_before:  # not trained again
        assert len(_pids(run)) == 1


@pytest.mark.slow
@needs_ray
def test_ctrl_c_stops_every_task_at_a_checkpoint_and_resume_finishes_the_grid(tmp_path, sequential):
    cwd = _write_spec(tmp_path)
    # The terminal's Ctrl-C reaches the driver's whole process group, Ray's own processes included.
    driver = child(["run", "spec.yaml", *RAY], cwd, start_new_session=True)
    try:
        _wait(lambda: _mid_run(cwd) is not None, what="a run past its first checkpoint")
        os.killpg(driver.pid, signal.SIGINT)
        out, err = driver.communicate(timeout=120)
    finally:
        _kill_group(driver)
    assert driver.returncode == 130, err
    folder = grid_folder(cwd / "runs")
    assert f"continue with: modelspec resume {folder.relative_to(cwd)}" in err
    states = [json.loads(_read(run / "run.json")) for run in _runs(cwd) if (run / "run.json").exists()]
    assert any(state["status"] == "stopped" for state in states)
    assert not any(state["status"] == "failed" for state in states)
    assert not (folder / ".stop").exists()
    resumed = finish(["resume", str(folder), "-q"], cwd)
    assert resumed.returncode == 0, resumed.stderr
    assert same(outcome(folder), sequential)


@pytest.mark.slow
@needs_ray
def test_fail_fast_on_ray_ends_as_a_failed_grid_not_a_stopped_one(tmp_path):
    # The first run diverges at once; --fail-fast stops the others (at a checkpoint, or before they
    # start) and the grid ends as the sequential one does: exit 1, the failure named, no Ctrl-C exit.
    cwd = tmp_path
    (cwd / "spec.yaml").write_text(RAY_SPEC.replace("lr: [0.05, 0.02, 0.01, 0.005]", "lr: [1.0e+30, 0.05, 0.02, 0.01]"))
    done = finish(["run", "spec.yaml", *RAY, "--fail-fast"], cwd)
    assert done.returncode == 1, done.stderr
    assert "1 run(s) failed" in done.stderr and "continue with" not in done.stderr
    statuses = {run.name[:2]: json.loads(_read(run / "run.json"))["status"]
                for run in _runs(cwd) if (run / "run.json").exists()}
    assert statuses["00"] == "failed"
    assert all(statuses.get(i) != "finished" for i in ("02", "03"))  # stopped before they finished
    assert not (grid_folder(cwd / "runs") / ".stop").exists()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------------------------------
# the options: one clear message and exit 2, before anything starts


@pytest.mark.parametrize("args, message", [
    (["--address", "auto"], "--address goes with --executor ray"),
    (["--cpus-per-run", "2"], "--cpus-per-run goes with --executor ray"),
    (["--executor", "dask"], "--executor dask: no such executor"),
    (["--executor", "ray", "--gpus-per-run", "1.5"], "--gpus-per-run 1.5: Ray shares a GPU by fractions below 1"),
    (["--executor", "ray", "--cpus-per-run", "0"], "--cpus-per-run 0: a run needs some CPU"),
    (["--executor", "ray", "--nproc", "2"], "--executor ray trains runs its own way; it does not go with"),
])
@needs_ray
def test_ray_options_that_cannot_work_are_usage_errors(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(_write_spec(tmp_path))
    spec = tmp_path / "spec.yaml"
    result = CliRunner().invoke(app, ["run", str(spec), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "runs").exists()


def test_without_ray_installed_the_executor_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    monkeypatch.chdir(_write_spec(tmp_path))
    spec = tmp_path / "spec.yaml"
    result = CliRunner().invoke(app, ["run", str(spec), "--executor", "ray"])
    assert result.exit_code == 2, result.output
    assert "--executor ray needs Ray, which is not installed" in result.output
    assert "pip install 'modelspec[ray]'" in result.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
@needs_ray
def test_runs_that_ask_for_more_than_this_machine_has_are_refused_not_queued_forever(tmp_path, monkeypatch):
    monkeypatch.chdir(_write_spec(tmp_path))
    result = CliRunner().invoke(app, ["run", "spec.yaml", "--executor", "ray", "--cpus-per-run", "64", "-q"])
    assert result.exit_code == 2, result.output
    assert "a run asks for 64 CPU and 0 GPU, and this machine has" in result.output
    assert not (tmp_path / "runs").exists()  # nothing trained: the grid folder is gone


@needs_ray
def test_address_auto_without_a_running_cluster_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(_write_spec(tmp_path))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    result = CliRunner().invoke(app, ["run", "spec.yaml", "--executor", "ray", "--address", "auto", "-q"])
    assert result.exit_code == 2, result.output
    assert "--address auto: cannot join the Ray cluster" in result.output
    assert "hint: start it with `ray start --head`" in result.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
@needs_ray
def test_a_grid_joins_a_running_cluster_with_address_auto(tmp_path, sequential):
    cwd = _write_spec(tmp_path)
    ray_cli = [str(Path(sys.executable).parent / "ray")]
    started = subprocess.run([*ray_cli, "start", "--head", "--num-cpus", "2", "--include-dashboard", "false"],
                             capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    try:
        done = finish(["run", "spec.yaml", *RAY, "--address", "auto"], cwd)
    finally:
        subprocess.run([*ray_cli, "stop", "--force"], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Ray joined auto" in done.stdout
    assert same(outcome(grid_folder(cwd / "runs")), sequential)


# --------------------------------------------------------------------------------------------------
# the task itself, called in this process (no Ray needed): what a worker does with the runs it gets


def _job(tmp_path: Path):
    from modelspec.load import loads_spec
    from modelspec.runner.folder import create_grid_folder
    from modelspec.runner.ray_grid import _Job

    loaded = loads_spec(TINY, "spec.yaml", [f"tracking.dir={tmp_path / 'runs'}"])
    folder = create_grid_folder(loaded, lambda staging: None).folder
    return _Job(loaded, loaded.runs(), str(folder), set(), {}, None, 1.0), folder


def test_a_worker_decodes_the_data_once_for_the_runs_it_gets(tmp_path, monkeypatch):
    import modelspec.data as data
    from modelspec.runner import ray_grid

    decoded = []
    real = data.prepare_data
    monkeypatch.setattr(data, "prepare_data", lambda *a, **k: decoded.append(1) or real(*a, **k))
    monkeypatch.setattr(ray_grid, "_PREPARED", {})
    job, folder = _job(tmp_path)
    reports = [ray_grid._run_task(job, index) for index in (0, 1)]
    assert [r.status for r in reports] == ["finished", "finished"] and all(r.wrote_state for r in reports)
    assert len(decoded) == 1  # the second run reads the same data: the worker's copy serves
    assert all(json.loads((run / "run.json").read_text())["status"] == "finished" for run in _task_runs(folder))
    # Run again (as Ray does after a worker died once the run had ended): nothing is trained again.
    again = ray_grid._run_task(job, 0)
    assert again.status == "finished" and len(decoded) == 1


def test_a_task_given_after_the_stop_request_returns_without_starting(tmp_path):
    from modelspec.runner import ray_grid

    job, folder = _job(tmp_path)
    (folder / ray_grid.STOP_FILE).write_text("stop\n")
    report = ray_grid._run_task(job, 0)
    assert report.status == "stopped" and report.reason == "stopped before it started"
    assert not report.trained and not report.wrote_state
    assert not (_task_runs(folder)[0] / "checkpoint.pt").exists()


def test_a_task_that_cannot_see_the_grid_folder_says_so(tmp_path):
    from modelspec.runner import ray_grid

    job, folder = _job(tmp_path)
    (folder / "spec.json").unlink()  # as a node without the shared mount sees it
    report = ray_grid._run_task(job, 0)
    assert report.storage and "cannot see the grid folder" in report.storage and str(folder) in report.storage


def _task_runs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir())
