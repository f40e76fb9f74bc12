"""`modelspec serve` as a user runs it: a real uvicorn server in its own process, on 127.0.0.1 at a
free port, called over HTTP. For each data kind /predict answers what `modelspec predict` prints for
the same inputs; every bad input is a 4xx naming the field or file and the server lives on;
/metadata and /openapi.json name a table's columns; concurrent requests share model calls; SIGTERM
answers the requests in flight and exits 0."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from _data_files import daily_counts_csv, review_folders, titanic_csv
from modelspec.cli.main import app

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("multipart")


SPECS = Path(__file__).resolve().parents[1] / "specs"
runner = CliRunner()
COLOURS = {"red": (200, 30, 40), "green": (30, 190, 60), "blue": (40, 50, 210)}
IMAGE_SPEC = """\
name: colours
seed: 1
data:
  dataset: image_folder
  root: {root}
  transforms: [to_tensor, {{resize: {{size: [8, 8]}}}}, {{normalize: {{mean: auto, std: auto}}}}]
  batch_size: 6
model: [flatten, {{linear: {{out_features: 16}}}}, relu, {{linear: {{out_features: num_classes}}}}]
train: {{epochs: 2, optimizer: {{name: adam, lr: 0.05}}}}
tracking: {{dir: {runs}}}
"""
TIMEOUT = 30  # seconds, for any one HTTP call


# --------------------------------------------------------------------------------------------------
# HTTP and the server process


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _call(url: str, data: bytes | None = None, content_type: str | None = None, headers: dict | None = None):
    """(status, JSON answer) of a GET (no data) or POST; a 4xx/5xx is returned, not raised."""
    request = urllib.request.Request(url, data=data, headers={**({"Content-Type": content_type} if content_type else {}),
                                                                **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def post_json(base: str, body) -> tuple[int, dict]:
    return _call(f"{base}/predict", json.dumps(body).encode(), "application/json")


def post_files(base: str, files: list[tuple[str, bytes]], field: str = "files") -> tuple[int, dict]:
    """A multipart/form-data upload, as `curl -F files=@a.png -F files=@b.png` sends it."""
    boundary = uuid.uuid4().hex
    parts = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
             f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n" for name, content in files]
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return _call(f"{base}/predict", body, f"multipart/form-data; boundary={boundary}")


@contextmanager
def served(model: Path, *options: str):
    """`modelspec serve MODEL` in a process of its own; yields (base URL, process). Stopped with
    SIGTERM at the end, which must end it with exit 0."""
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "modelspec", "serve", str(model), "--port", str(port), *options],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                if _call(f"{base}/health")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, "the server did not start within 90 s"
            time.sleep(0.2)
        yield base, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, process.stdout.read()


def predicted(model: Path, *args: str) -> list[dict]:
    """What `modelspec predict` writes for these arguments (--out JSON)."""
    out = Path(f"{model}-{uuid.uuid4().hex}.json")
    result = runner.invoke(app, ["predict", str(model), *args, "--out", str(out)])
    assert result.exit_code in (0, 1), result.output
    return json.loads(out.read_text())


def same_predictions(served_rows: list[dict], predicted_rows: list[dict], keys: list[str]) -> None:
    assert len(served_rows) == len(predicted_rows)
    for ours, theirs in zip(served_rows, predicted_rows):
        for key in keys:
            if isinstance(theirs[key], float):
                assert ours[key] == pytest.approx(theirs[key], rel=1e-5, abs=1e-6), key
            else:
                assert ours[key] == theirs[key], key


# --------------------------------------------------------------------------------------------------
# tiny models, trained once


def _train(spec: Path, runs: Path, *overrides: str) -> Path:
    sets = [a for o in ("train.epochs=2", f"tracking.dir={runs}", *overrides) for a in ("--set", o)]
    result = runner.invoke(app, ["run", str(spec), "--quiet", *sets])
    assert result.exit_code == 0, result.output
    (weights,) = runs.glob("*/*/*/weights.pt")
    return weights.parent


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("colours")
    for split, count in (("train", 8), ("test", 3)):
        for label, colour in COLOURS.items():
            folder = root / "images" / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                pixel = tuple(max(0, min(255, c + 9 * i - 30)) for c in colour)
                Image.new("RGB", (12 + i % 4, 12), pixel).save(folder / f"{i}.png")
    spec = root / "colours.yaml"
    spec.write_text(IMAGE_SPEC.format(root=root / "images", runs=root / "runs"))
    result = runner.invoke(app, ["run", str(spec), "--quiet"])
    assert result.exit_code == 0, result.output
    (weights,) = (root / "runs").glob("*/*/*/weights.pt")
    return weights.parent


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("titanic")
    csv_path = titanic_csv(root / "train.csv")
    return _train(SPECS / "titanic.yaml", root / "runs", f"data.path={csv_path}")


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("imdb")
    for split, seed in (("train", 0), ("test", 1)):
        review_folders(root / split, per_class=12, seed=seed)
    return _train(SPECS / "imdb_lstm.yaml", root / "runs", f"data.path={root / 'train'}",
                  f"data.test_path={root / 'test'}", "data.max_length=30")


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("covid")
    return _train(SPECS / "covid_lstm.yaml", root / "runs", f"data.path={daily_counts_csv(root / 'daily.csv')}")


TITANIC_ROWS = [
    {"Pclass": 1, "Sex": "female", "Embarked": "S", "Age": 29, "Cabin": "C85", "SibSp": 0, "Parch": 0, "Fare": 71.3},
    {"Pclass": 3, "Sex": "male", "Embarked": None, "Age": None, "Cabin": None, "SibSp": 1, "Parch": 2, "Fare": 7.25},
    {"Pclass": "2", "Sex": "male", "Embarked": "Q", "Age": 61.5, "Cabin": None, "SibSp": 0, "Parch": 0, "Fare": 13},
]


def _png(colour: tuple[int, int, int], size: tuple[int, int] = (12, 12)) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------------
# each data kind: the same answers as `modelspec predict`


@pytest.mark.slow  # trains (once per module) and starts a server: seconds
def test_images_as_uploads_answer_what_predict_prints(images, tmp_path):
    files = [(f"{name}.png", _png(colour)) for name, colour in COLOURS.items()]
    for name, content in files:
        (tmp_path / name).write_bytes(content)
    expected = predicted(images, *(str(tmp_path / name) for name, _ in files))
    with served(images) as (base, _):
        status, answer = post_files(base, files)
        assert status == 200, answer
        assert [r["input"] for r in answer["predictions"]] == [name for name, _ in files]
        same_predictions(answer["predictions"], expected, ["class", "probability", "top_k"])
        status, one = post_files(base, files[:1])  # one file is a list of one
        assert status == 200 and one["predictions"][0]["class"] == expected[0]["class"]


@pytest.mark.slow  # trains (once per module) and starts a server: seconds
def test_an_onnx_export_folder_answers_what_predict_prints(images, tmp_path):
    pytest.importorskip("onnxruntime")
    exported = tmp_path / "exported"
    result = runner.invoke(app, ["export", str(images), "--out", str(exported), "-f", "onnx"])
    assert result.exit_code == 0, result.output
    (tmp_path / "red.png").write_bytes(_png(COLOURS["red"]))
    expected = predicted(exported, str(tmp_path / "red.png"), "--engine", "onnx")
    with served(exported, "--engine", "onnx") as (base, _):
        status, answer = post_files(base, [("red.png", _png(COLOURS["red"]))])
        assert status == 200, answer
        same_predictions(answer["predictions"], expected, ["class", "probability"])
        status, meta = _call(f"{base}/metadata")
        assert meta["engine"] == "onnx" and meta["export_report"] is not None
        if (exported / "MODEL_CARD.md").is_file():
            assert meta["model_card"] == (exported / "MODEL_CARD.md").read_text(encoding="utf-8")


@pytest.mark.slow  # trains (once per module) and starts a server: seconds
def test_table_rows_as_json_answer_what_predict_prints(table, tmp_path):
    import csv

    with open(tmp_path / "rows.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(TITANIC_ROWS[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in TITANIC_ROWS)
    expected = predicted(table, str(tmp_path / "rows.csv"))
    with served(table) as (base, _):
        status, answer = post_json(base, {"rows": [{**row, "Note": i} for i, row in enumerate(TITANIC_ROWS)]})
        assert status == 200, answer
        same_predictions(answer["predictions"], expected, ["class", "p_Survived", "decision"])
        assert [r["Note"] for r in answer["predictions"]] == [0, 1, 2]  # other columns come back


@pytest.mark.slow  # trains (once per module) and starts a server: seconds
def test_texts_as_json_answer_what_predict_prints(texts, tmp_path):
    reviews = ["A great wonderful film, loved it.", "Awful boring plot, a waste.", "zyzzyva never seen"]
    (tmp_path / "reviews.txt").write_text("\n".join(reviews) + "\n")
    expected = predicted(texts, str(tmp_path / "reviews.txt"))
    with served(texts) as (base, _):
        status, answer = post_json(base, {"texts": reviews})
        assert status == 200, answer
        same_predictions(answer["predictions"], expected, ["class", *[k for k in expected[0] if k.startswith("p")]])


@pytest.mark.slow  # trains (once per module) and starts a server: seconds
def test_a_series_answers_what_predict_prints(series, tmp_path):
    import csv

    with open(series.parents[3] / "daily.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    recent = [{k: (v if k == "date" else float(v)) for k, v in row.items()} for row in rows[-20:]]
    with open(tmp_path / "recent.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows[-20:])
    latest, every = predicted(series, str(tmp_path / "recent.csv"), "--last"), predicted(series, str(tmp_path / "recent.csv"))
    targets = ["confirmed", "deaths", "recovered"]
    with served(series) as (base, _):
        status, answer = post_json(base, {"rows": recent})
        assert status == 200, answer
        same_predictions(answer["predictions"], latest, ["input", "for_row", *targets])
        status, answer = post_json(base, {"rows": recent, "last": False})
        assert status == 200, answer
        same_predictions(answer["predictions"], every, ["input", "for_row", *targets])
        status, short = post_json(base, {"rows": recent[:3]})
        assert status == 422 and "rows" in short["detail"] and "window" in short["detail"]


# --------------------------------------------------------------------------------------------------
# bad input: a 4xx naming the field or file, and the server lives on


@pytest.mark.slow  # trains (once per module) and starts a server: seconds
def test_bad_images_are_4xx_naming_the_file(images):
    with served(images, "--max-pixels", "10000", "--max-body-mb", "0.5") as (base, _):
        status, answer = post_json(base, {"files": []})
        assert status == 415 and "multipart/form-data" in answer["detail"]
        status, answer = post_files(base, [("ok.png", _png(COLOURS["red"])), ("notes.png", b"not an image")])
        assert status == 422 and answer["detail"].startswith("notes.png: cannot read the image")
        assert "ok.png" not in answer["detail"] and "modelspec-serve" not in answer["detail"]  # no temporary path
        status, answer = post_files(base, [("huge.png", _png(COLOURS["red"], (200, 100)))])
        assert status == 413 and "huge.png" in answer["detail"] and "20,000 pixels" in answer["detail"]
        status, answer = post_files(base, [("big.png", os.urandom(600_000))])
        assert status == 413 and "MiB" in answer["detail"]
        status, answer = post_files(base, [("red.png", _png(COLOURS["red"]))], field="image")
        assert status == 422 and "files" in answer["detail"]
        assert post_files(base, [("red.png", _png(COLOURS["red"]))])[0] == 200  # still serving


@pytest.mark.slow  # trains (once per module) and starts a server: seconds
def test_bad_rows_and_texts_are_4xx_naming_the_field(table, texts):
    with served(table, "--max-body-mb", "0.01") as (base, _):
        missing = {k: v for k, v in TITANIC_ROWS[0].items() if k != "Age"}
        status, answer = post_json(base, {"rows": [TITANIC_ROWS[0], missing]})
        assert status == 422 and answer["detail"].startswith("rows[1].Age: missing")
        status, answer = post_json(base, {"rows": [{**TITANIC_ROWS[0], "Fare": "cheap"}]})
        assert status == 422 and "rows[0].Fare" in answer["detail"] and "'cheap'" in answer["detail"]
        status, answer = post_json(base, {"rows": [{**TITANIC_ROWS[0], "Fare": "inf"}]})
        assert status == 422 and "rows[0]" in answer["detail"] and "Fare" in answer["detail"]
        status, answer = post_json(base, {"rows": []})
        assert status == 422 and answer["detail"].startswith("rows:")
        status, answer = _call(f"{base}/predict", b'{"rows": [', "application/json")
        assert status == 422 and "not valid JSON" in answer["detail"]
        status, answer = _call(f"{base}/predict", b"Pclass,Sex\n1,male\n", "text/csv")
        assert status == 415 and "application/json" in answer["detail"]
        status, answer = post_json(base, {"rows": [TITANIC_ROWS[0]] * 200})  # ~20 kB
        assert status == 413 and "0.01 MiB" in answer["detail"]
        chunked = _call(f"{base}/predict", iter([json.dumps({"rows": [TITANIC_ROWS[0]] * 200}).encode()]),
                        "application/json", {"Transfer-Encoding": "chunked"})
        assert chunked[0] == 413
        assert post_json(base, {"rows": TITANIC_ROWS})[0] == 200  # still serving
    with served(texts) as (base, _):
        status, answer = post_json(base, {"texts": ["loved it", "   "]})
        assert status == 422 and answer["detail"] == "texts[1]: the text is empty"
        status, answer = post_json(base, {"texts": ["fine", 3]})
        assert status == 422 and answer["detail"].startswith("texts[1]:")


def test_startup_errors_are_one_line_and_exit_2(tmp_path, monkeypatch):
    result = runner.invoke(app, ["serve", str(tmp_path)])
    assert result.exit_code == 2 and result.output.startswith("error: ") and "Traceback" not in result.output
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the serve extra were not installed
    result = runner.invoke(app, ["serve", str(tmp_path)])
    assert result.exit_code == 2 and "pip install 'modelspec[serve]'" in result.output


# --------------------------------------------------------------------------------------------------
# metadata, the OpenAPI page, batching, and stopping


@pytest.mark.slow  # trains (once per module) and starts a server: seconds
def test_metadata_and_openapi_name_the_tables_columns(table):
    columns = ["Pclass", "Sex", "Embarked", "Age", "Cabin", "SibSp", "Parch", "Fare"]
    with served(table) as (base, _):
        status, meta = _call(f"{base}/metadata")
        assert status == 200 and meta["input_kind"] == "table" and meta["target_names"] == ["Survived"]
        row = meta["input_schema"]["$defs"]["TableRow"]
        assert list(row["properties"]) == columns and set(row["required"]) == set(columns)
        assert {"val_accuracy", "test_accuracy"} <= set(meta["metrics"])
        status, openapi = _call(f"{base}/openapi.json")
        properties = openapi["components"]["schemas"]["TableRow"]["properties"]
        assert list(properties) == columns and {"type": "number"} in properties["Age"]["anyOf"]
        assert _call(f"{base}/health")[1]["status"] == "ok"


def _load(base: str, requests: int, concurrency: int) -> list[int]:
    statuses: list[int] = []

    def one(n: int) -> None:
        for _ in range(n):
            statuses.append(post_json(base, {"rows": TITANIC_ROWS[:1]})[0])

    threads = [threading.Thread(target=one, args=(requests // concurrency,)) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return statuses


@pytest.mark.slow  # trains (once per module) and starts a server: seconds
def test_concurrent_requests_share_model_calls_unless_batching_is_off(table):
    with served(table, "--max-wait-ms", "20") as (base, _):
        assert _load(base, 64, 16) == [200] * 64
        health = _call(f"{base}/health")[1]
        assert health["inputs"] == 64 and health["model_calls"] < 64
    with served(table, "--max-batch", "1") as (base, _):
        assert _load(base, 32, 8) == [200] * 32
        assert _call(f"{base}/health")[1]["model_calls"] == 32


@pytest.mark.slow  # trains (once per module) and starts a server: seconds
def test_sigterm_answers_the_requests_in_flight_and_exits_0(table):
    answers: list[int] = []
    with served(table, "--max-wait-ms", "500") as (base, process):  # requests wait half a second in their batch
        threads = [threading.Thread(target=lambda: answers.append(post_json(base, {"rows": TITANIC_ROWS})[0]))
                   for _ in range(6)]
        for thread in threads:
            thread.start()
        time.sleep(0.25)
        process.send_signal(signal.SIGTERM)  # `served` then checks the exit code is 0
        for thread in threads:
            thread.join(timeout=60)
    assert answers == [200] * 6


def test_the_batcher_gathers_requests_and_keeps_their_failures_apart():
    """Without a server: concurrent requests share one call (each gets its own rows back), a
    request whose reading fails gets its own error, and max_batch=1 calls once per request."""
    import asyncio

    import torch

    from modelspec.predict.inputs import Item
    from modelspec.serve.batching import Batcher
    from modelspec.serve.requests import BadInput

    calls: list[int] = []

    def run(items):
        calls.append(len(items))
        return [{"input": item.name} for item in items]

    def reading(name: str, count: int):
        def read():
            if name == "bad":
                raise BadInput(422, "bad: unreadable")
            return [Item(f"{name}{i}", torch.zeros(1)) for i in range(count)]
        return read

    async def scenario(max_batch: int):
        batcher = Batcher(run, max_batch, max_wait=0.05)
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.predict(reading(n, c), c) for n, c in (("a", 2), ("bad", 1), ("b", 3))),
                                        return_exceptions=True)
        finally:
            await batcher.stop()

    a, bad, b = asyncio.run(scenario(64))
    assert a == [{"input": "a0"}, {"input": "a1"}] and [r["input"] for r in b] == ["b0", "b1", "b2"]
    assert isinstance(bad, BadInput) and calls == [5]
    calls.clear()
    asyncio.run(scenario(1))
    assert calls == [2, 3]  # each request alone (the bad one never reaches the model)


def test_the_batcher_closes_a_batch_when_full_or_when_its_wait_is_over():
    """A request that would overfill the batch opens the next one (ahead of those behind it); one
    arriving after the batch's wait goes into a later call; a request over max_batch runs alone."""
    import asyncio

    import torch

    from modelspec.predict.inputs import Item
    from modelspec.serve.batching import Batcher

    calls: list[list[str]] = []

    def run(items):
        calls.append([item.name for item in items])
        return [{} for _ in items]

    def reading(name: str, count: int):
        return lambda: [Item(f"{name}{i}", torch.zeros(1)) for i in range(count)]

    async def scenario():
        batcher = Batcher(run, max_batch=4, max_wait=0.05)
        await batcher.start()
        try:
            at_once = [batcher.predict(reading(n, c), c) for n, c in (("a", 2), ("b", 1), ("c", 3), ("d", 1))]
            first = asyncio.gather(*at_once)
            await asyncio.sleep(0.3)  # well after both batches' waits
            await asyncio.gather(first, batcher.predict(reading("e", 1), 1), batcher.predict(reading("f", 6), 6))
        finally:
            await batcher.stop()

    asyncio.run(scenario())
    assert calls == [["a0", "a1", "b0"], ["c0", "c1", "c2", "d0"], ["e0"], [f"f{i}" for i in range(6)]]

    async def alone_each(waits: int):
        # Each request alone, so each batch ends by its wait: a wait whose timer the loop runs a
        # little early must still end (an answer that never comes hangs its client).
        batcher = Batcher(run, max_batch=4, max_wait=0.0005)
        await batcher.start()
        try:
            for i in range(waits):
                await asyncio.wait_for(batcher.predict(reading(f"g{i}_", 1), 1), timeout=5)
        finally:
            await batcher.stop()

    calls.clear()
    asyncio.run(alone_each(300))
    assert calls == [[f"g{i}_0"] for i in range(300)]
