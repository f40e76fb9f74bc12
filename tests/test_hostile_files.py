"""Files a user gives or receives, hostile or damaged (issue 20, items 4, 5, 10, 12): weights-like
files that are no torch file, output paths that cannot be written, images that claim gigapixels,
an export's preprocessing.json cut short, a full disk under a checkpoint, a damaged data set.

Each ends as one message naming the file, with the documented exit code (2: a file or path the user
gave; 1: a full disk or a failed input), never a traceback, and leaves a run resumable.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from modelspec.artifacts import safe_load
from modelspec.fileio import atomic_save, atomic_write_text, is_disk_full
from modelspec.cli.main import app
from modelspec.errors import SpecError
from modelspec.load import loads_spec
from modelspec.runner import run_grid

from _data_files import png_folders
from _reliability import TINY, grid_folder, outcome, same

runner = CliRunner()


def _run(*args) -> object:
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    return result


# ---- weights-like files


def _real_checkpoint() -> bytes:
    buffer = io.BytesIO()
    torch.save({"state_dict": {"w": torch.ones(64, 64)}}, buffer)
    return buffer.getvalue()


def _zip_not_torch() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "not a model")
    return buffer.getvalue()


FOREIGN = {  # name -> content; each is refused by the weights-only unpickler with another exception type
    "text.pt": b"a",  # IndexError: pop from empty list
    "words.pt": b"hello, these are weights\n",  # KeyError
    "empty.pt": b"",  # EOFError
    "random.pt": bytes(range(256)) * 8,  # UnpicklingError
    "notes.zip.pt": _zip_not_torch(),  # RuntimeError from the zip reader
    "truncated.pt": _real_checkpoint()[:300],  # a real one, cut short
}


@pytest.fixture
def foreign(tmp_path) -> dict[str, Path]:
    for name, content in FOREIGN.items():
        (tmp_path / name).write_bytes(content)
    return {name: tmp_path / name for name in FOREIGN}


@pytest.mark.parametrize("name", sorted(FOREIGN))
def test_a_file_that_is_no_torch_file_is_one_error_naming_it(foreign, name):
    with pytest.raises(SpecError) as caught:
        safe_load(foreign[name], "weights file")
    message = str(caught.value)
    assert f"{foreign[name]} is not a readable weights file" in message and "hint:" in message
    if name in ("text.pt", "words.pt", "random.pt"):
        assert "not a file torch.save wrote" in message
    if name == "empty.pt":
        assert "the file is empty" in message


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODELSPEC_CACHE", str(tmp_path / "cache"))
    (tmp_path / "tiny.yaml").write_text(TINY)
    for name, content in FOREIGN.items():
        (tmp_path / name).write_bytes(content)
    return tmp_path


@pytest.mark.parametrize("name", ["text.pt", "notes.zip.pt"])
def test_export_weights_and_init_from_name_the_foreign_file_and_exit_2(here, name):
    result = _run("export", "tiny.yaml", "--weights", name)
    assert result.exit_code == 2 and f"{name} is not a readable weights file" in result.stderr
    result = _run("run", "tiny.yaml", "-q", "--set", f"train.init_from={name}")
    assert result.exit_code == 2 and f"{name} is not a readable weights file" in result.stderr
    assert "train.init_from" in result.stderr


@pytest.fixture
def finished(here):
    assert _run("run", "tiny.yaml", "-q").exit_code == 0
    folder = grid_folder(here / "runs")
    return folder, outcome(folder)


def test_a_foreign_checkpoint_is_said_with_the_restart_hint_and_the_run_stays_resumable(finished):
    """`IndexError: pop from empty list` used to fail the run for good: a resume then skipped it."""
    folder, before = finished
    run_dir = next(folder.glob("00_*"))
    (run_dir / "run.json").unlink()  # the run was stopped after its checkpoint
    (run_dir / "checkpoint.pt").write_bytes(FOREIGN["text.pt"])
    result = _run("resume", str(folder), "-q")
    assert result.exit_code == 2, result.output
    assert f"{run_dir / 'checkpoint.pt'} is not a readable checkpoint" in result.stderr
    assert f"--restart-run {run_dir.name}" in result.stderr
    assert not (run_dir / "run.json").exists()  # not failed: still to be trained
    assert _run("resume", str(folder), "-q", "--restart-run", run_dir.name).exit_code == 0
    assert same(outcome(folder), before)


def test_a_checkpoint_of_another_tool_is_said_with_the_restart_hint(finished):
    folder, _ = finished
    run_dir = next(folder.glob("00_*"))
    (run_dir / "run.json").unlink()
    torch.save({"spec_hash": "x", "model": {}}, run_dir / "checkpoint.pt")
    result = _run("resume", str(folder), "-q")
    assert result.exit_code == 2 and "holds no whole modelspec checkpoint: it lacks epoch" in result.stderr
    assert f"--restart-run {run_dir.name}" in result.stderr


def test_a_damaged_weights_file_of_a_finished_run_says_how_to_train_it_again(finished):
    folder, before = finished
    run_dir = next(folder.glob("00_*"))
    (run_dir / "weights.pt").write_bytes(FOREIGN["text.pt"])
    result = _run("export", str(run_dir), "-f", "torchscript")
    assert result.exit_code == 2 and f"{run_dir / 'weights.pt'} is not a readable weights file" in result.stderr
    assert f"modelspec resume {folder} --restart-run {run_dir.name}" in result.stderr
    assert _run("resume", str(folder), "-q", "--restart-run", run_dir.name).exit_code == 0
    assert same(outcome(folder), before)


# ---- a full disk under an atomic write


def _fd_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def test_a_short_write_is_a_full_disk_and_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    target.write_text("old")
    real_write = os.write

    def short(fd, data):  # the disk takes half, then nothing
        return real_write(fd, bytes(data[: len(data) // 2])) if len(data) > 1 else 0

    monkeypatch.setattr(os, "write", short)
    with pytest.raises(OSError) as caught:
        atomic_write_text(target, "new" * 1000)
    assert is_disk_full(caught.value)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_disk_error_behind_torchs_own_runtime_error_is_a_full_disk():
    """torch's zip writer reports a failed write as `RuntimeError: [enforce fail at
    inline_container.cc:672] . unexpected pos ...`, with the OSError as its context."""
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    except RuntimeError as exc:
        assert is_disk_full(exc)
    assert not is_disk_full(RuntimeError("unexpected pos 704 vs 598"))


@pytest.fixture
def small_disk(tmp_path):
    """A 256 kB tmpfs (needs root to mount; skipped otherwise)."""
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here; the simulated tests cover the writers")
    yield small
    subprocess.run(["umount", str(small)], check=False)


def test_a_checkpoint_larger_than_the_free_space_is_a_full_disk_on_a_real_disk(small_disk):
    with pytest.raises(OSError) as caught:
        atomic_save({"w": torch.ones(256, 1024)}, small_disk / "checkpoint.pt")  # 1 MB
    assert is_disk_full(caught.value)
    assert list(small_disk.iterdir()) == []


def test_a_full_disk_under_a_checkpoint_stops_the_grid_resumably(finished, here, monkeypatch):
    """The disk fills while the second run's checkpoint is written (the write takes none of its bytes):
    the grid stops (exit 1) with that run resumable, and a resume ends as a grid that never stopped."""
    _, expected = finished
    real_write, calls = os.write, [0]

    def full_at_second_checkpoint(fd, data):
        if _fd_path(fd).rsplit("/", 1)[-1].startswith(".checkpoint.pt."):
            calls[0] += 1
            if calls[0] >= 3:
                return 0
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_at_second_checkpoint)
    result = _run("run", "tiny.yaml", "-q", "--set", "tracking.dir=full", "--set", "train.checkpoint_every=1")
    folder = grid_folder(here / "full")
    assert result.exit_code == 1, result.output
    assert "no space left on the disk" in result.stderr
    assert f"modelspec resume {folder.relative_to(here)}" in result.stderr
    assert not list(folder.rglob("*.tmp"))
    states = [json.loads(p.read_text())["status"] for p in folder.glob("*/run.json")]
    assert "failed" not in states
    monkeypatch.setattr(os, "write", real_write)  # space is freed
    assert _run("resume", str(folder), "-q").exit_code == 0
    assert same(outcome(folder), expected)


# ---- a run of images, for predict, evaluate and export


def bomb_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A PNG whose header says width × height pixels, in 60 bytes: Pillow refuses to open it
    (DecompressionBombError) before it allocates anything."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))
                     + chunk(b"IEND", b""))
    return path


IMAGES = """\
name: shades
seed: 1
data:
  dataset: image_folder
  root: {root}
  transforms: [to_tensor, {{resize: {{size: [8, 8]}}}}]
  batch_size: 6
model: [flatten, {{linear: {{out_features: num_classes}}}}]
train: {{epochs: 1}}
tracking: {{histograms: false, graph: false, images: false}}
"""


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A finished image_folder run (one epoch), and a folder of good images."""
    root = tmp_path_factory.mktemp("shades")
    for split in ("train", "test"):
        png_folders(root / "images" / split, ["dark", "light"], per_class=4)
    os.environ["MODELSPEC_CACHE"] = str(root / "cache")
    loaded = loads_spec(IMAGES.format(root=root / "images"), "shades.yaml", [f"tracking.dir={root / 'runs'}"])
    result = run_grid(loaded, quiet=True, log=lambda _: None)
    assert not result.failed
    return root, result.folder / "00_run"


def test_a_decompression_bomb_fails_that_image_and_the_others_are_predicted(image_run, tmp_path):
    root, run_dir = image_run
    bomb = bomb_png(tmp_path / "huge.png")
    good = root / "images" / "test" / "dark" / "0.png"
    result = _run("predict", run_dir, bomb, good, "--out", tmp_path / "p.json")
    assert result.exit_code == 1, result.output
    assert f"{bomb}: cannot read the image: Image size (400000000 pixels) exceeds limit" in result.stderr
    rows = json.loads((tmp_path / "p.json").read_text())
    assert [r["input"] for r in rows] == [str(bomb), str(good)] and "class" in rows[1]


def test_a_decompression_bomb_in_evaluate_data_is_one_error_naming_it(image_run, tmp_path):
    root, run_dir = image_run
    data = tmp_path / "new"
    shutil.copytree(root / "images" / "test", data)
    bomb = bomb_png(data / "light" / "huge.png")
    result = _run("evaluate", run_dir, "--data", data, "--out", tmp_path / "evaluation")
    assert result.exit_code == 2 and f"cannot read the image {bomb}: Image size" in result.stderr


def test_a_decompression_bomb_in_training_data_fails_the_run_with_its_path(tmp_path):
    from modelspec.readers.images import open_image_folder

    png_folders(tmp_path / "train", ["dark", "light"], per_class=2)
    bomb = bomb_png(tmp_path / "train" / "light" / "zz_huge.png")
    spec = loads_spec(IMAGES.format(root=tmp_path), "shades.yaml").spec
    source = open_image_folder(spec.data, 0).train
    index = len(source.targets) - 1  # the last file of the last class
    with pytest.raises(OSError, match=f"cannot read the image {bomb}: Image size"):
        source.dataset[index]


# ---- output paths


def test_predict_out_under_a_file_is_refused_before_the_model_is_opened(image_run, tmp_path):
    root, _ = image_run
    (tmp_path / "file").write_text("in the way")
    result = _run("predict", tmp_path / "no-such-run", root / "images" / "test", "--out", tmp_path / "file" / "p.csv")
    assert result.exit_code == 2, result.output
    assert f"--out {tmp_path / 'file' / 'p.csv'}: cannot write there: the file {tmp_path / 'file'} is in the way" \
        in result.stderr
    result = _run("predict", tmp_path / "no-such-run", root / "images" / "test", "--out", tmp_path / "p.txt")
    assert result.exit_code == 2 and "write .csv or .json" in result.stderr


def test_predict_out_in_a_folder_that_takes_no_file_is_a_usage_error(image_run, tmp_path, monkeypatch):
    """A read-only folder (simulated: the tests may run as root, whom permissions do not stop)."""
    import tempfile

    root, run_dir = image_run

    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(kwargs.get("dir")))

    monkeypatch.setattr(tempfile, "TemporaryFile", refused)
    result = _run("predict", run_dir, root / "images" / "test", "--out", tmp_path / "p.csv")
    assert result.exit_code == 2 and "cannot write there: Permission denied" in result.stderr


def test_predict_out_on_a_full_disk_exits_1_and_leaves_no_temporary(image_run, tmp_path, monkeypatch):
    root, run_dir = image_run
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: 0 if ".p.csv." in _fd_path(fd) else real_write(fd, data))
    result = _run("predict", run_dir, root / "images" / "test", "--out", tmp_path / "p.csv")
    assert result.exit_code == 1, result.output
    assert f"cannot write {tmp_path / 'p.csv'}: No space left on device" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_evaluate_out_under_a_file_is_refused_before_evaluating(image_run, tmp_path):
    _, run_dir = image_run
    (tmp_path / "file").write_text("in the way")
    result = _run("evaluate", tmp_path / "no-such-run", "--out", tmp_path / "file" / "evaluation")
    assert result.exit_code == 2 and "cannot write there: the file" in result.stderr


def test_a_full_disk_under_an_export_exits_1_and_leaves_no_temporary(image_run, tmp_path, monkeypatch):
    """The export report used to leave a 0-byte .export_report.json.tmp behind."""
    _, run_dir = image_run
    out = tmp_path / "export"
    real_write = os.write
    report_fails = lambda fd, data: 0 if "/.export_report.json." in _fd_path(fd) else real_write(fd, data)  # noqa: E731
    monkeypatch.setattr(os, "write", report_fails)
    result = _run("export", run_dir, "-f", "torchscript", "--out", out)
    assert result.exit_code == 1, result.output
    assert "No space left on device" in result.stderr
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


# ---- export folders


def _export_folder(image_run, folder: Path, **changes) -> Path:
    """An export folder's preprocessing.json (as `modelspec export` writes it), with `changes`."""
    from modelspec.artifacts import load_trained

    _, run_dir = image_run
    preprocessing = {**load_trained(run_dir).describe(), **changes}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "preprocessing.json").write_text(json.dumps({k: v for k, v in preprocessing.items() if v != "DROP"}))
    (folder / "model.torchscript.pt").write_bytes(FOREIGN["words.pt"])
    return folder


@pytest.mark.parametrize("key", ["dataset", "input_shape", "input_dtype", "task", "transforms", "normalize"])
def test_a_preprocessing_file_without_a_key_is_one_error_naming_file_and_key(image_run, tmp_path, key):
    root, _ = image_run
    folder = _export_folder(image_run, tmp_path / "exported", **{key: "DROP"})
    result = _run("predict", folder, root / "images" / "test")
    assert result.exit_code == 2, result.output
    assert f"{folder / 'preprocessing.json'} lacks the key '{key}'" in result.stderr


@pytest.mark.parametrize("text, says", [("{", "cannot be read"), ("[1, 2]", "holds a JSON list"),
                                        ('{"dataset": 3}', "'dataset' is 3, not a JSON string")])
def test_a_preprocessing_file_that_is_no_mapping_is_one_error_naming_it(image_run, tmp_path, text, says):
    root, _ = image_run
    folder = _export_folder(image_run, tmp_path / "exported")
    (folder / "preprocessing.json").write_text(text)
    result = _run("predict", folder, root / "images" / "test")
    assert result.exit_code == 2 and f"{folder / 'preprocessing.json'}" in result.stderr and says in result.stderr


def test_a_damaged_exported_model_is_one_error_naming_it(image_run, tmp_path):
    root, _ = image_run
    folder = _export_folder(image_run, tmp_path / "exported")
    result = _run("predict", folder, root / "images" / "test")
    assert result.exit_code == 2 and f"{folder / 'model.torchscript.pt'} cannot be loaded" in result.stderr


def test_an_export_folder_without_its_preprocessing_says_what_is_missing(image_run, tmp_path):
    root, _ = image_run
    folder = _export_folder(image_run, tmp_path / "exported")
    (folder / "preprocessing.json").unlink()
    result = _run("predict", folder, root / "images" / "test")
    assert result.exit_code == 2 and f"{folder} has no preprocessing.json" in result.stderr
    assert "weights.pt" not in result.stderr
    result = _run("export", folder)
    assert result.exit_code == 2 and "this is an export folder" in result.stderr


# ---- data sets


DAMAGED = {  # data set -> (its folder under data.root, its files, the first one a check reaches)
    "cifar10": ("cifar-10-batches-py", [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"],
                "data_batch_1"),
    "mnist": ("MNIST/raw", ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                            "t10k-labels-idx1-ubyte"], "train-images-idx3-ubyte"),
}


@pytest.mark.parametrize("dataset", sorted(DAMAGED))
def test_a_damaged_torchvision_folder_says_which_file_and_how_to_fix_it(tmp_path, dataset):
    """It used to say the data set is not there (CIFAR-10), or fail the run with a bare AssertionError (MNIST)."""
    from modelspec.readers.images import open_torchvision

    sub, names, first = DAMAGED[dataset]
    folder = tmp_path / sub
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_bytes(b"damaged")
    spec = loads_spec(f"name: c\ndata: {{dataset: {dataset}, root: {tmp_path}}}\nmodel: [flatten, "
                      "{linear: {out_features: num_classes}}]\n", "c.yaml").spec
    with pytest.raises(SpecError) as caught:
        open_torchvision(spec.data, 0)
    message = str(caught.value)
    assert f"{dataset} in {folder}/ is damaged: {folder / first}" in message
    assert f"delete {folder} and download it again" in message
