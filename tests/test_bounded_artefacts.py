"""A run's artefacts stay bounded whatever the class count (issue #20, item 9): the confusion picture,
TensorBoard's confusion image and `evaluate`'s printed tables. A 1,000-class run was killed at 22.9 GB
drawing every cell's text, and `evaluate` printed a 1,000 × 1,000 table. The CSVs stay complete.

Synthetic matrices, no training: each test first takes a size a little past the labelled limit (60
classes), where the old code made a picture of 4,236 pixels and a 60-column table, then 1,000.
"""

from __future__ import annotations

import csv
import io

import torch
from PIL import Image
from rich.console import Console

from modelspec.cli.evaluate import _tables
from modelspec.predict.evaluate import Evaluation
from modelspec.tracking.confusion import HeatmapPainter, write_confusion

# Whatever the class count: the picture's two panels of at most 1,360 pixels a side with their
# margins, and the list of the largest confusions below them.
MAX_WIDTH, MAX_HEIGHT = 3_400, 2_000


def _counts(k: int) -> torch.Tensor:
    """50 samples a class, mostly right; two planted confusions that must be named first."""
    counts = torch.diag(torch.full((k,), 50))
    counts[0, 1] = 1  # a small one, for the ties below the planted ones
    counts[7, 3], counts[7, 7] = 30, 20  # 30 of class 7's 50 taken for class 3: 60 %
    counts[k - 1, 2], counts[k - 1, k - 1] = 20, 30  # 40 %
    return counts


def _names(k: int) -> list[str]:
    return [f"class_{i:04d}" for i in range(k)]


def test_the_confusion_picture_is_bounded_and_the_csvs_complete(tmp_path):
    for k in (60, 1000):
        folder = tmp_path / str(k)
        folder.mkdir()
        write_confusion(folder, _counts(k), _names(k))
        with Image.open(folder / "confusion_matrix.png") as image:
            assert image.width <= MAX_WIDTH and image.height <= MAX_HEIGHT, (k, image.size)
        for name in ("confusion_matrix.csv", "confusion_matrix_normalized.csv"):
            rows = list(csv.reader(open(folder / name)))
            assert len(rows) == k + 1 and all(len(row) == k + 1 for row in rows), name
        assert list(csv.reader(open(folder / "confusion_matrix.csv")))[8][4] == "30"  # class 7 -> class 3


def test_long_class_names_do_not_widen_the_picture(tmp_path):
    names = ["a" * 1_000, "b"]  # the old picture: 7,000 pixels a side
    write_confusion(tmp_path, torch.tensor([[3, 1], [0, 4]]), names)
    with Image.open(tmp_path / "confusion_matrix.png") as image:
        assert image.width <= 1_000, image.size
    assert next(csv.reader(open(tmp_path / "confusion_matrix.csv")))[1] == names[0]  # whole in the CSV


def test_the_tensorboard_confusion_image_is_bounded():
    for k in (200, 1000, 3000):
        image = HeatmapPainter(_names(k))(_counts(k))
        assert image.shape[0] <= 1_600 and image.shape[1] <= 1_600, (k, image.shape)


def _printed(k: int) -> str:
    counts = _counts(k)
    metrics = {"loss": 0.5, "accuracy": counts.diag().sum().item() / counts.sum().item()}
    evaluation = Evaluation("test", int(counts.sum()), metrics, _names(k), counts)
    out = io.StringIO()
    console = Console(file=out, width=160)
    for table in _tables(evaluation):
        console.print(table)
    return out.getvalue()


def test_evaluate_prints_a_bounded_table_naming_the_largest_confusions():
    for k in (60, 1000):
        text = _printed(k)
        lines = text.splitlines()
        assert len(lines) < 80 and max(map(len, lines)) <= 160, (k, len(lines))
        assert f"the largest confusions of {k} classes" in text
        rows = [line for line in lines if "class_0007" in line and "class_0003" in line]
        assert rows and "30" in rows[0] and "60.0%" in rows[0], rows
        first_two = [line for line in lines if "%" in line][:2]
        assert "class_0007" in first_two[0] and f"class_{k - 1:04d}" in first_two[1] and "40.0%" in first_two[1]


def test_evaluate_prints_the_whole_matrix_of_a_few_classes():
    text = _printed(10)
    assert "confusion matrix (rows: true, columns: predicted)" in text
    assert "largest confusions" not in text
    assert all(f"class_{i:04d}" in text for i in range(10))


# ---- issue #20, item 20: the training thread does not wait on the disk for the results table

TINY_GRID = """\
name: tiny
seed: 0
data: {dataset: synthetic, input_shape: [8], num_classes: 3, size: 64, test_size: 0, transforms: [],
       batch_size: 32, val_split: 0.25}
model:
  - linear: {out_features: num_classes}
train: {epochs: 1, optimizer: {name: adam, lr: 0.01}, device: cpu}
grid: {seed: [0, 1, 2, 3]}
"""


def _grid_writing_results(tmp_path, monkeypatch, write):
    from modelspec.load import loads_spec
    from modelspec.runner import run_grid
    from modelspec.tracking import results

    monkeypatch.setattr(results.ResultsTable, "MIN_SECONDS_BETWEEN_SAVES", 0.0)  # a save after every run
    monkeypatch.setattr(results.ResultsTable, "SAVES_SHARE", 1e9)
    monkeypatch.setattr(results, "atomic_write_text", write)
    loaded = loads_spec(TINY_GRID, "tiny.yaml", [f"tracking.dir={tmp_path}"])
    return run_grid(loaded, quiet=True, log=lambda _: None)


def test_the_results_table_is_written_on_the_files_thread_while_the_grid_runs(tmp_path, monkeypatch):
    """Its fsyncs wait on the disk; a busy disk made the next run wait for them."""
    import threading

    from modelspec.fileio import atomic_write_text

    writers: list[str] = []

    def write(path, text, sync_folder=True):
        if path.name == "results.csv":
            writers.append(threading.current_thread().name)
        atomic_write_text(path, text, sync_folder)

    result = _grid_writing_results(tmp_path, monkeypatch, write)
    assert not result.failed and len(writers) >= 4
    assert all(name.startswith("modelspec-files") for name in writers[:-1]), writers  # the last: the grid's end
    rows = (result.folder / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 4  # every run's row, the final save after the background ones


def test_a_full_disk_met_by_a_results_save_in_the_background_stops_the_grid_resumably(tmp_path, monkeypatch):
    import errno

    from modelspec.fileio import atomic_write_text

    def write(path, text, sync_folder=True):
        if path.name == "results.csv":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        atomic_write_text(path, text, sync_folder)

    result = _grid_writing_results(tmp_path, monkeypatch, write)
    assert result.disk_full and "no space left" in result.disk_full
    finished = [name for name, outcome in result.outcomes.items() if outcome.status == "finished"]
    assert len(finished) < 4  # stopped: a resume trains the rest
