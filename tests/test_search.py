"""`search:` specs: the space is checked at validate time, each point is an ordinary run, bad trials are
pruned, unbuildable points are recorded, and a search killed with SIGKILL resumes to the same trials."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("optuna", reason="the search extra (optuna) is not installed")

from modelspec import api  # noqa: E402
from modelspec.errors import SpecError  # noqa: E402

SEARCH = """\
name: srch
seed: 3
data: {dataset: synthetic, size: 384, test_size: 64, input_shape: [8], num_classes: 3, val_split: 0.25,
       batch_size: 32}
model:
  - linear: {out_features: 16}
  - relu
  - linear: {out_features: num_classes}
train: {epochs: 4, optimizer: {name: sgd, lr: 0.01}, checkpoint_every: 1}
tracking: {dir: RUNS}
search:
  space:
    train.optimizer.lr: {log_uniform: [1.0e-4, 0.5]}
    model[0].linear.out_features: {int: [4, 32], log: true}
    data.batch_size: {choice: [16, 32]}
  trials: 8
  sampler: {tpe: {startup_trials: 3}}
  pruner: {median: {warmup_epochs: 1, startup_trials: 2}}
  seed: 11
"""


def _spec(tmp_path: Path, text: str = SEARCH, **replace: str) -> Path:
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "search.yaml"
    path.write_text(text.replace("RUNS", str(tmp_path / "runs")))
    return path


def _search(spec: Path):
    return api.run_grid(api.load_spec(spec))


def _trials(folder: Path) -> list[tuple]:
    """(run, state, value, epochs) of each trial, in order, from search.json."""
    summary = json.loads((folder / "search.json").read_text())
    return [(t["run"], t["state"], t["value"], t["epochs"]) for t in summary["trials"]]


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelspec", *args], capture_output=True, text=True, timeout=timeout)


# ---- the space at validate time


@pytest.mark.parametrize("axis, where, says", [
    ("train.optimizer.lr: {log_uniform: [0.0, 0.5]}", "search.space.train.optimizer.lr.log_uniform[0]",
     "a log scale needs positive bounds"),
    ("train.optimizer.lr: {uniform: [0.5, 0.1]}", "search.space.train.optimizer.lr.uniform", "empty or reversed"),
    ("train.optimizer.lr: {choice: []}", "search.space.train.optimizer.lr.choice", "at least 1 item"),
    ("train.optimizer.lr: [0.1, 0.01]", "search.space.train.optimizer.lr", "not a bare list"),
    ("train.optimizer.lr: {chioce: [0.1]}", "search.space.train.optimizer.lr", "did you mean 'choice'"),
    ("train.optimiser.lr: {choice: [0.1]}", "search.space.train.optimiser.lr", "names no spec path"),
    ("model[2].linear.out_features: {int: [0, 8]}", "search.space.model[2].linear.out_features.int[0]",
     "must be greater than 0"),
    ("train.optimizer.momentum: {uniform: [0.0, 0.9]}", "search.space.train.optimizer.momentum.uniform[0]", None),
    ("name: {choice: [a, b]}", "search.space.name", "cannot be a search axis"),
])
def test_a_bad_space_is_a_located_error_at_its_line(tmp_path, axis, where, says):
    text = SEARCH.replace("optimizer: {name: sgd, lr: 0.01}", "optimizer: {name: adam, lr: 0.01}") \
        if "momentum" in axis else SEARCH
    spec = _spec(tmp_path, text, **{"train.optimizer.lr: {log_uniform: [1.0e-4, 0.5]}": axis})
    line = 1 + spec.read_text().splitlines().index("    " + axis)
    with pytest.raises(SpecError) as caught:
        api.load_spec(spec)
    issue = next(i for i in caught.value.issues if where in str(i))
    assert issue.line == line, str(issue)
    if says:
        assert says in str(issue), str(issue)


def test_validate_says_where_a_bad_axis_is_with_exit_code_2(tmp_path):
    spec = _spec(tmp_path, **{"{int: [4, 32], log: true}": "{int: [4, 32], log: true, step: 2}"})
    result = _cli("validate", str(spec))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = 1 + next(i for i, text in enumerate(spec.read_text().splitlines()) if "step: 2" in text)
    assert f"search.yaml:{line}:" in result.stderr and "`log` and `step` do not go together" in result.stderr


def test_grid_and_search_together_is_an_error(tmp_path):
    spec = _spec(tmp_path, SEARCH + "grid: {seed: [1, 2]}\n")
    with pytest.raises(SpecError, match="give `grid` or `search`, not both"):
        api.load_spec(spec)


# ---- a search


def test_a_search_trains_its_trials_prunes_and_names_the_best(tmp_path):
    result = _search(_spec(tmp_path))
    trials = _trials(result.folder)
    assert len(trials) == 8
    states = [state for _, state, _, _ in trials]
    assert states.count("pruned") >= 1 and states.count("finished") >= 3, trials
    for run, state, value, epochs in trials:
        outcome = result.outcomes[run]
        assert outcome.status == state
        if state == "pruned":  # ended before its last epoch, with the reason
            assert epochs < 4 and outcome.reason.startswith(f"pruned after epoch {epochs}:")
        if state == "finished":
            assert epochs == 4 and value == max(r["val_accuracy"] for r in outcome.rows)
    # Every trial is an ordinary run: its folder, rows, weights and run.json with its state.
    folders = sorted(p for p in result.folder.iterdir() if p.is_dir())
    assert [p.name[:3] for p in folders] == [f"{i:02d}_" for i in range(8)]
    for folder, (run, state, _, epochs) in zip(folders, trials):
        stored = json.loads((folder / "run.json").read_text())
        assert stored["status"] == state and len(stored["rows"]) == epochs
        assert (folder / "weights.pt").is_file()
    # results.json: the best trial first, with the options that retrain it; every run's state.
    document = json.loads((result.folder / "results.json").read_text())
    assert next(iter(document)) == "best"
    finished = [(value, run) for run, state, value, _ in trials if state == "finished"]
    assert document["best"]["run"] == max(finished)[1]
    assert {r["run"]: r["status"] for r in document["runs"]} == {run: state for run, state, _, _ in trials}
    assert document["best"]["set"][0] == "--unset search"


@pytest.mark.slow
def test_the_best_trials_set_lines_retrain_it(tmp_path):
    spec = _spec(tmp_path)
    result = _search(spec)
    best = json.loads((result.folder / "search.json").read_text())["best"]
    again = _cli("run", str(spec), "-q", *" ".join(best["set"]).replace("'", "").split())
    assert again.returncode == 0, again.stderr
    folder = sorted((tmp_path / "runs" / "srch").iterdir())[-1]
    rows = json.loads((folder / "results.json").read_text())["rows"]
    assert max(r["val_accuracy"] for r in rows) == best["value"]
    assert "search.journal" not in os.listdir(folder)  # a plain run, not a search


@pytest.mark.slow
def test_the_same_seed_asks_the_same_points_and_another_seed_others(tmp_path):
    def search(folder: str, **replace: str) -> list[tuple]:
        (tmp_path / folder).mkdir()
        return _trials(_search(_spec(tmp_path / folder, **replace)).folder)

    first = search("a")
    assert search("b") == first
    other = search("c", **{"  seed: 11": "  seed: 12"})
    assert [run for run, *_ in other] != [run for run, *_ in first]


def test_pruning_none_trains_every_epoch(tmp_path):
    spec = _spec(tmp_path, **{"pruner: {median: {warmup_epochs: 1, startup_trials: 2}}": "pruner: none"})
    trials = _trials(_search(spec).folder)
    assert {state for _, state, _, _ in trials} == {"finished"} and {e for *_, e in trials} == {4}


def test_an_unbuildable_point_is_recorded_and_the_search_goes_on(tmp_path):
    # A kernel of 5 on 4x4 images fits no point where it is 5: the shape pass refuses it on the data.
    text = SEARCH.replace("input_shape: [8]", "input_shape: [1, 4, 4]").replace(
        "  - linear: {out_features: 16}\n", "  - conv: {out_channels: 4, kernel_size: 3}\n  - flatten\n"
        "  - linear: {out_features: 16}\n").replace(
        "model[0].linear.out_features: {int: [4, 32], log: true}", "model[0].conv.kernel_size: {choice: [3, 5]}")
    result = _search(_spec(tmp_path, text, **{"pruner: {median: {warmup_epochs: 1, startup_trials: 2}}": "pruner: none"}))
    trials = _trials(result.folder)
    failed = [run for run, state, _, _ in trials if state == "failed"]
    assert failed and all("kernel_size=5" in run for run in failed)
    assert all(state == "finished" for run, state, _, _ in trials if "kernel_size=3" in run)
    reason = result.outcomes[failed[0]].reason
    assert "kernel" in reason and "Traceback" not in reason
    import optuna  # the study itself: the failed trials are FAIL, with their reason
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    study = optuna.load_study(study_name="search",
                              storage=JournalStorage(JournalFileBackend(str(result.folder / "search.journal"))))
    fails = [t for t in study.trials if t.state.name == "FAIL"]
    assert len(fails) == len(failed) and all("kernel" in t.user_attrs["reason"] for t in fails)


def test_a_trial_whose_point_is_half_asked_is_no_run_and_a_resume_tells_it_failed(tmp_path):
    """Optuna writes a point to the journal one parameter at a time: a Ray task that reads the journal
    while the driver asks (or a resume after a kill mid-ask) sees a trial without all its values."""
    from modelspec.runner.search import Search

    loaded = api.load_spec(_spec(tmp_path))
    search = Search(loaded, tmp_path, None)
    whole = search.ask()
    half = search.study.ask()
    half.suggest_float("train.optimizer.lr", 1e-4, 0.5, log=True)  # the other two not asked yet
    reader = Search(loaded, tmp_path, None)  # a task's view, while the driver asks
    assert [plan.name for plan in reader.known_runs()] == [whole.name]
    assert search.study.get_trials()[1].state.name == "RUNNING"  # the task left it to the driver
    resumed = Search(loaded, tmp_path, None)
    assert [plan.name for plan in resumed.known_runs(settle_partial=True)] == [whole.name]
    settled = resumed.study.get_trials()[1]
    assert settled.state.name == "FAIL" and "being asked when the search was killed" in settled.user_attrs["reason"]


def test_a_search_refuses_nproc(tmp_path):
    result = _cli("run", str(_spec(tmp_path)), "--nproc", "2")
    assert result.returncode == 2 and "a search does not run under --nproc" in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="the ray extra is not installed")
def test_on_ray_trials_stream_are_pruned_in_their_tasks_and_resume_asks_more(tmp_path):
    spec = _spec(tmp_path)
    result = _cli("run", str(spec), "-q", "--executor", "ray")
    assert result.returncode == 0, result.stderr  # a trial that diverged (lr up to 0.5) is a result, not an error
    assert "Ray started on this machine" in result.stdout + result.stderr
    folder = next((tmp_path / "runs" / "srch").iterdir())
    trials = _trials(folder)
    assert len(trials) == 8 and {state for _, state, _, _ in trials} <= {"finished", "pruned", "failed"}
    # Each task reported its trial's epochs to the pruner, through the journal the driver's study
    # reads (whether one is pruned depends on the order trials end in: not asserted).
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    study = optuna.load_study(study_name="search",
                              storage=JournalStorage(JournalFileBackend(str(folder / "search.journal"))))
    reported = {t.user_attrs["run"]: sorted(t.intermediate_values) for t in study.trials}
    for run, state, value, epochs in trials:
        if state != "failed":
            assert reported[run] == list(range(1, min(epochs, 3) + 1)), (run, reported[run])
    for run, state, value, epochs in trials:
        stored = json.loads(next(folder.glob(f"*_{run}/run.json")).read_text())
        assert stored["status"] == state and len(stored["rows"]) == epochs
        if state == "pruned":
            assert stored["reason"].startswith(f"pruned after epoch {epochs}:")
        if state == "failed":
            assert "the training loss became" in stored["reason"]
    more = _cli("resume", str(folder), "-q", "--set", "search.trials=10")  # on Ray again: grid.json says so
    assert more.returncode == 0, more.stderr
    assert len(_trials(folder)) == 10 and _trials(folder)[:8] == trials


def test_under_vmap_a_rounds_points_train_in_one_pack_each_as_alone(tmp_path):
    """Rounds of --pack-size points, asked together (TPE's constant liar keeps them apart), trained
    as one pack, pruned and told: each trial's rows are the rows of its point trained alone."""
    spec = _spec(tmp_path, **{"    model[0].linear.out_features: {int: [4, 32], log: true}\n": "",
                              "    data.batch_size: {choice: [16, 32]}\n": ""})
    logs: list[str] = []
    result = api.run_grid(api.load_spec(spec), executor="vmap", pack_size=4, log=logs.append)
    trials = _trials(result.folder)
    assert len(trials) == 8 and sum("packing 4 runs" in line for line in logs) == 2, logs
    assert {state for _, state, _, _ in trials} <= {"finished", "pruned"}
    assert any(state == "pruned" for _, state, _, _ in trials)
    summary = json.loads((result.folder / "search.json").read_text())
    for trial in summary["trials"][4:6]:  # the second round's first two, after the pruner has history
        alone = api.run_grid(api.load_spec(spec, [f"{k}={json.dumps(v)}" for k, v in trial["values"].items()],
                                           ["search"]))
        rows = alone.outcomes["run"].rows
        packed = result.outcomes[trial["run"]].rows
        assert len(packed) <= len(rows)  # a pruned trial stopped early
        for mine, theirs in zip(packed, rows):
            assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5)
            assert mine["val_accuracy"] == theirs["val_accuracy"]


@pytest.mark.slow
@pytest.mark.parametrize("executor", [[], ["--executor", "vmap", "--pack-size", "4"]], ids=["local", "vmap"])
def test_a_search_killed_mid_trial_resumes_to_the_same_trials(tmp_path, executor):
    (tmp_path / "alone").mkdir()
    alone = _cli("run", str(_spec(tmp_path / "alone")), "-q", *executor)
    assert alone.returncode == 0, alone.stderr
    alone_folder = next((tmp_path / "alone" / "runs" / "srch").iterdir())
    expected = _trials(alone_folder)

    spec = _spec(tmp_path)
    process = subprocess.Popen([sys.executable, "-m", "modelspec", "run", str(spec), "-q", *executor],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    # Killed once trial 4 (the second round's first, under vmap) has a checkpoint and no run.json.
    while time.monotonic() < deadline:
        found = list((tmp_path / "runs").glob("srch/*/04_*/checkpoint.pt"))
        if found and not (found[0].parent / "run.json").exists():
            break
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert found, "the search never reached its fifth trial"
    folder = found[0].parent.parent
    assert len(list(folder.glob("*/run.json"))) < 8
    resumed = _cli("resume", str(folder), "-q")  # as it was started: grid.json keeps the executor
    assert resumed.returncode == 0, resumed.stderr
    assert _trials(folder) == expected
    summary = json.loads((folder / "search.json").read_text())
    assert summary["best"] == json.loads((alone_folder / "search.json").read_text())["best"]


@pytest.mark.slow
def test_resume_with_more_trials_asks_the_points_a_longer_search_would_have(tmp_path):
    (tmp_path / "long").mkdir()
    expected = _trials(_search(_spec(tmp_path / "long")).folder)
    short = _search(_spec(tmp_path, **{"trials: 8": "trials: 5"}))
    assert _trials(short.folder) == expected[:5]
    more = _cli("resume", str(short.folder), "-q", "--set", "search.trials=8")
    assert more.returncode == 0, more.stderr
    assert _trials(short.folder) == expected
    changed = _cli("resume", str(short.folder), "-q", "--set", "search.seed=1")
    assert changed.returncode == 2 and "search.seed cannot change on resume" in changed.stderr
