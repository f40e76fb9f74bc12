"""The training benchmark still runs (bench/bench_train.py --smoke). No timing is asserted here:
speed is measured by running the benchmark itself, never by a test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_train_smoke(tmp_path):
    # An empty --source-root: the benchmark writes synthetic images, so the test needs no data set.
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_train.py"), "--smoke", "--source-root", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "synthetic" in done.stdout
    for line in ("c/a = ", "c/b = "):
        assert line in done.stdout, done.stdout


@pytest.mark.slow
def test_bench_grid_smoke(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "bench" / "bench_grid.py"), "--smoke"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ratio" in done.stdout and done.stdout.strip().splitlines()[-1].split()[0] == "2", done.stdout


@pytest.mark.slow
def test_bench_stacked_optim_smoke(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "bench" / "bench_stacked_optim.py"), "--smoke"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("ratio to stacked") == 6, done.stdout  # two kinds, three ways each


@pytest.mark.slow
def test_bench_grid_smoke_with_the_vmap_executor_and_per_run(tmp_path):
    bench = str(REPO / "bench" / "bench_grid.py")
    done = subprocess.run([sys.executable, bench, "--smoke", "--executor", "vmap"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "modelspec's executor: vmap" in done.stdout and done.stdout.strip().splitlines()[-1].split()[0] == "2"
    done = subprocess.run([sys.executable, bench, "--smoke", "--per-run"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "modelspec, 2 runs: median ms per run" in done.stdout, done.stdout
    done = subprocess.run([sys.executable, bench, "--smoke", "--per-run", "--executor", "vmap"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "--per-run times the runs of a sequential grid" in done.stderr, done.stderr


@pytest.mark.slow
def test_bench_vmap_smoke_times_both_grids(tmp_path):
    # The smoke's Fashion-MNIST images are synthetic, written to a temporary folder: no data set needed.
    done = subprocess.run([sys.executable, str(REPO / "bench" / "bench_vmap.py"), "--smoke"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["runs"])
    assert [line.split()[0] for line in lines[header + 1 : header + 3]] == ["1", "3"], done.stdout
    assert all(len(line.split()) == 12 for line in lines[header + 1 : header + 3]), done.stdout
    assert "synthetic images" in done.stdout and "s/v wall" in done.stdout, done.stdout


@pytest.mark.slow
def test_bench_vmap_refuses_to_time_runs_that_did_not_pack(tmp_path):
    # Runs under mixed precision train alone: a benchmark of them would not measure packing at all.
    done = subprocess.run([sys.executable, str(REPO / "bench" / "bench_vmap.py"), "--smoke", "--only", "tiny",
                           "--set", "train.amp=bf16"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "expected all 3 runs packed, 0 were" in done.stderr
    assert "3 run(s) train one at a time: mixed precision (train.amp)" in done.stderr


@pytest.mark.slow
def test_bench_search_smoke_prints_both_sides_and_the_aim(tmp_path):
    pytest.importorskip("optuna", reason="the search extra (optuna) is not installed")
    # An empty --data-root: synthetic images in a temporary folder, so the test needs no data set.
    done = subprocess.run([sys.executable, str(REPO / "bench" / "bench_search.py"), "--smoke", "--data-root",
                           str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "synthetic images" in lines[0], done.stdout
    sides = {words[0]: words for words in map(str.split, lines)
             if words[:1] in (["search"], ["grid"]) and len(words) >= 9 and words[1].isdigit()}
    assert sides["search"][1:3] == ["3", "3/0/0"] and sides["grid"][1:3] == ["2", "2/0/0"], done.stdout
    assert sides["search"][5] == "6" and sides["grid"][5] == "4", done.stdout  # epochs: 3 x 2 and 2 x 2
    assert "search / grid: epochs 1.500" in done.stdout and "best val_accuracy search - grid" in done.stdout
    assert "aim (the grid's best value or better at a third of its epochs or less): not met" in done.stdout
