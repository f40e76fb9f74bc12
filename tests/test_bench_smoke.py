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
