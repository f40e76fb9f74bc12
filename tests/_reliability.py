"""A tiny deterministic grid and the helpers the reliability and CLI fuzz tests share."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

TINY = """\
name: tiny
seed: 3
data:
  dataset: synthetic
  input_shape: [6]
  num_classes: 3
  size: 240
  test_size: 40
  batch_size: 8
  val_split: 0.25
  transforms: []
model:
  - linear: {out_features: 16}
  - relu
  - linear: {out_features: num_classes}
train:
  epochs: 2
  optimizer: {name: sgd, lr: 0.05}
  deterministic: true
tracking: {histograms: false, graph: false, images: false}
grid:
  train.optimizer.lr: [0.05, 0.02]
"""

# The CLI in a child process, as a user runs it (`main()`: signal handlers, stdout guard).
CHILD = "import sys; from modelspec.cli.main import main; sys.argv = ['modelspec'] + sys.argv[1:]; main()"
REPO = Path(__file__).resolve().parents[1]


def child(args: list[str], cwd: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "MODELSPEC_CACHE": str(cwd / "cache"), "PYTHONPATH": str(REPO), **kwargs.pop("env", {})}
    return subprocess.Popen([sys.executable, "-c", CHILD, *args], cwd=cwd, env=env, text=True,
                            stdout=kwargs.pop("stdout", subprocess.PIPE), stderr=subprocess.PIPE, **kwargs)


def finish(args: list[str], cwd: Path, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    process = child(args, cwd, **kwargs)
    out, err = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(args, process.returncode, out, err)


def grid_folder(tracking_dir: Path, name: str = "tiny") -> Path:
    (folder,) = [p for p in (tracking_dir / name).iterdir() if not p.name.startswith(".")]
    return folder


def outcome(folder: Path) -> tuple[list[dict], dict[str, dict[str, torch.Tensor]]]:
    """The rows (without timings) and the final weights of a grid folder."""
    rows = json.loads((folder / "results.json").read_text())["rows"]
    rows = [{k: v for k, v in row.items() if "duration" not in k} for row in rows]
    weights = {p.parent.name: torch.load(p, weights_only=True)["state_dict"] for p in folder.glob("*/weights.pt")}
    return rows, weights


def same(a, b) -> bool:
    rows_a, weights_a = a
    rows_b, weights_b = b
    return rows_a == rows_b and weights_a.keys() == weights_b.keys() and all(
        torch.equal(weights_a[run][k], weights_b[run][k]) for run in weights_a for k in weights_a[run])
