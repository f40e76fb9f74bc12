"""A text grid and a tabular grid through `modelspec run`, against the notes' hand-written loop.

The hand-written loop is what the notes do: preprocess once (pandas one-hot / a word vocabulary),
wrap the tensors in a TensorDataset, and for every run of the grid build a DataLoader over it and
train with `.item()` per batch. modelspec parses and tokenises once per grid and feeds batches as index
slices of tensors on the device. Both train the same networks, the same epochs, on the same files.

    python bench/bench_data.py [--rows 20000] [--texts 2000] [--epochs 3] [--repeat 2] [--threads 1]

The machine this project shares is loaded by others, so each side runs `--repeat` times, alternating,
and the figures are the fastest of each (wall and process CPU seconds).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _data_files import review_folders, titanic_csv  # noqa: E402

GRID = [(lr, bs) for lr in (0.01, 0.001) for bs in (64, 128)]


def hand_written_table(path: Path, epochs: int) -> None:
    import pandas as pd

    frame = pd.read_csv(path)
    frame["Age_null"] = frame["Age"].isna().astype(float)
    frame["Cabin_null"] = frame["Cabin"].isna().astype(float)
    frame["Age"] = frame["Age"].fillna(0)
    dummies = [pd.get_dummies(frame["Pclass"], prefix="Pclass"), pd.get_dummies(frame["Sex"], prefix="Sex"),
               pd.get_dummies(frame["Embarked"], prefix="Embarked", dummy_na=True)]
    x = pd.concat(dummies + [frame[["Age", "Age_null", "Cabin_null", "SibSp", "Parch", "Fare"]]], axis=1)
    dataset = TensorDataset(torch.tensor(x.to_numpy(dtype="float32")), torch.tensor(frame["Survived"].to_numpy()))
    for lr, bs in GRID:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(15, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 2))
        _train(model, DataLoader(dataset, batch_size=bs, shuffle=True), lr, epochs)


def hand_written_text(folder: Path, epochs: int, max_words: int, length: int) -> None:
    import collections
    import re

    texts, labels = [], []
    for label, name in enumerate(("neg", "pos")):
        for file in sorted((folder / name).glob("*.txt")):
            texts.append(re.findall(r"\w+|[^\w\s]+", file.read_text().lower()))
            labels.append(label)
    counts = collections.Counter(w for t in texts for w in t)
    vocab = {w: i + 2 for i, (w, _) in enumerate(counts.most_common(max_words))}
    ids = [[vocab.get(w, 0) for w in t[:length]] + [1] * max(0, length - len(t)) for t in texts]
    dataset = TensorDataset(torch.tensor(ids), torch.tensor(labels))
    for lr, bs in GRID:
        torch.manual_seed(0)
        model = _TextNet(max_words + 2)
        _train(model, DataLoader(dataset, batch_size=bs, shuffle=True), lr, epochs)


class _TextNet(nn.Module):
    def __init__(self, vocab: int):
        super().__init__()
        self.embedding, self.lstm, self.out = nn.Embedding(vocab, 32, padding_idx=1), nn.LSTM(32, 32, batch_first=True), nn.Linear(32, 2)

    def forward(self, x):
        return self.out(self.lstm(self.embedding(x))[1][0][-1])


def _train(model, loader, lr, epochs):
    optimizer, loss_fn = torch.optim.Adam(model.parameters(), lr=lr), nn.CrossEntropyLoss()
    for _ in range(epochs):
        for x, y in loader:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()


TABLE_SPEC = """\
name: bench_table
data:
  dataset: csv
  path: {path}
  target: Survived            # two classes, for cross_entropy
  features: [Pclass, Sex, Embarked, Age, Cabin, SibSp, Parch, Fare]
  columns:
    Pclass: categorical
    Sex: categorical
    Embarked: {{categorical: {{missing_column: true}}}}
    Age: {{numeric: {{fill: 0, null_column: true}}}}
    Cabin: null_indicator
model: [{{linear: {{out_features: 32}}}}, relu, {{linear: {{out_features: 16}}}}, relu, {{linear: {{out_features: num_classes}}}}]
train: {{epochs: {epochs}, device: cpu}}
tracking: {{dir: {runs}, histograms: false, images: false, graph: false}}
grid: {{train.optimizer.lr: [0.01, 0.001], data.batch_size: [64, 128]}}
"""

TEXT_SPEC = """\
name: bench_text
data: {{dataset: text, path: {path}, max_words: {max_words}, max_length: {length}, num_classes: 2}}
model:
  - embedding: {{num_embeddings: {vocab}, embedding_dim: 32, padding_idx: 1}}
  - lstm: {{hidden_size: 32, output: hidden}}
  - linear: {{out_features: num_classes}}
train: {{epochs: {epochs}, device: cpu}}
tracking: {{dir: {runs}, histograms: false, images: false, graph: false}}
grid: {{train.optimizer.lr: [0.01, 0.001], data.batch_size: [64, 128]}}
"""


def modelspec_run(text: str) -> None:
    from modelspec.load import loads_spec
    from modelspec.runner.grid import run_grid

    result = run_grid(loads_spec(text), quiet=True, log=lambda _: None)
    assert all(o.status == "finished" for o in result.outcomes.values())


def fastest(repeat: int, *jobs) -> list[tuple[float, float]]:
    """(wall, cpu) seconds of each job, the fastest of `repeat` alternating rounds."""
    best = [(float("inf"), float("inf"))] * len(jobs)
    for _ in range(repeat):
        for i, job in enumerate(jobs):
            wall, cpu = time.perf_counter(), time.process_time()
            job()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[i] = (min(best[i][0], wall), min(best[i][1], cpu))
    return best


def report(what: str, figures: list[tuple[float, float]]) -> None:
    (hw, hc), (mw, mc) = figures
    print(f"{what}: hand-written {hw:.2f} s wall / {hc:.2f} s cpu, modelspec {mw:.2f} s / {mc:.2f} s; "
          f"modelspec/hand-written = {mw / hw:.2f} wall, {mc / hc:.2f} cpu")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--texts", type=int, default=2000, help="reviews per class")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads for both sides; 0: torch's default "
                        "(on a loaded machine, 1 spares both sides the spinning of oversubscribed threads)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        table = titanic_csv(tmp / "titanic.csv", rows=args.rows)
        reviews = review_folders(tmp / "reviews", per_class=args.texts)
        (reviews / "unsup").rename(tmp / "unsup")
        runs = tmp / "runs"
        table_spec = TABLE_SPEC.format(path=table, epochs=args.epochs, runs=runs)
        report(f"table ({args.rows} rows, 4 runs × {args.epochs} epochs)",
               fastest(args.repeat, lambda: hand_written_table(table, args.epochs), lambda: modelspec_run(table_spec)))
        text_spec = TEXT_SPEC.format(path=reviews, max_words=5000, length=64, vocab=5002, epochs=args.epochs, runs=runs)
        report(f"text ({2 * args.texts} reviews, 4 runs × {args.epochs} epochs)",
               fastest(args.repeat, lambda: hand_written_text(reviews, args.epochs, 5000, 64),
                       lambda: modelspec_run(text_spec)))


if __name__ == "__main__":
    main()
