"""`modelspec serve` under load, against a hand-written FastAPI + onnxruntime endpoint.

    python bench/bench_serve.py EXPORT_FOLDER [--requests 2000] [--concurrency 32]

EXPORT_FOLDER: `modelspec export` of an image classifier with --format onnx (the Fashion-MNIST model
of specs/fashion_bn.yaml). Three servers, one at a time, each in its own process on 127.0.0.1:

- (a) a hand-written endpoint (HAND_WRITTEN below, 20 lines): PIL, the stored mean/std, one
  onnxruntime call per request, the top class;
- (b) `modelspec serve EXPORT --engine onnx --max-batch 1`: no batching;
- (c) `modelspec serve EXPORT --engine onnx`: concurrent requests batched (--max-batch 64, --max-wait-ms 5).

Each gets 100 warm-up requests, then `--requests` uploads of one 28x28 PNG from `--concurrency`
client threads on keep-alive connections; printed: requests per second, p50 and p99 latency, and
errors. The client shares the machine's cores with the server: compare rows, not absolute figures.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HAND_WRITTEN = '''
import io, json, sys
import numpy as np, onnxruntime
from fastapi import FastAPI, UploadFile
from PIL import Image

folder = sys.argv[1]
pre = json.load(open(f"{folder}/preprocessing.json"))
mean, std = np.float32(pre["normalize"]["mean"][0]), np.float32(pre["normalize"]["std"][0])
session = onnxruntime.InferenceSession(f"{folder}/model.onnx", providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
app = FastAPI()

@app.post("/predict")
def predict(files: list[UploadFile]):
    x = np.stack([np.asarray(Image.open(io.BytesIO(f.file.read())).convert("L"), np.float32)[None] / 255 for f in files])
    p = np.exp(out := session.run(None, {name: (x - mean) / std})[0]) / np.exp(out).sum(1, keepdims=True)
    return {"predictions": [{"class": pre["class_names"][int(i)], "probability": float(r[i])} for r, i in zip(p, p.argmax(1))]}

if __name__ == "__main__":
    import uvicorn
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _png() -> bytes:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").save(buffer, format="PNG")
    return buffer.getvalue()


def _multipart(content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"x.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _wait(port: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server ended with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


def _load(port: int, body: bytes, content_type: str, requests: int, concurrency: int) -> tuple[list[float], int]:
    """Latencies (s) of `requests` POSTs from `concurrency` threads, each on one keep-alive connection."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    counts = [requests // concurrency + (i < requests % concurrency) for i in range(concurrency)]

    def client(n: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        for _ in range(n):
            start = time.perf_counter()
            connection.request("POST", "/predict", body, {"Content-Type": content_type})
            response = connection.getresponse()
            answer = response.read()
            mine.append(time.perf_counter() - start)
            if response.status != 200 or b"class" not in answer:
                with lock:
                    errors[0] += 1
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in counts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors[0]


def _measure(label: str, command: list[str], port: int, args, body: bytes, content_type: str) -> None:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait(port, process)
        _load(port, body, content_type, 100, min(args.concurrency, 8))  # warm-up
        start = time.perf_counter()
        latencies, errors = _load(port, body, content_type, args.requests, args.concurrency)
        wall = time.perf_counter() - start
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    latencies.sort()
    p50, p99 = (latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 for q in (0.5, 0.99))
    print(f"{label:<34} {len(latencies) / wall:>8.0f} {p50:>8.1f} {p99:>8.1f} {errors:>7}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path, help="an export folder with model.onnx and preprocessing.json")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batching", default="", metavar="OPTIONS",
                        help="(c)'s batching options, e.g. '--max-batch 8 --max-wait-ms 1' (default: serve's own)")
    args = parser.parse_args()
    folder = args.export.resolve()
    if not (folder / "model.onnx").is_file():
        raise SystemExit(f"{folder} has no model.onnx: export with --format onnx")
    body, content_type = _multipart(_png())
    print(f"{args.requests} requests, concurrency {args.concurrency}, {os.cpu_count()} CPUs, 127.0.0.1")
    print(f"{'server':<34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp, "hand_written.py")
        script.write_text(HAND_WRITTEN)
        port = _free_port()
        _measure("(a) hand-written FastAPI+onnxruntime", [sys.executable, str(script), str(folder), str(port)],
                 port, args, body, content_type)
    serve = [sys.executable, "-m", "modelspec", "serve", str(folder), "--engine", "onnx"]
    port = _free_port()
    _measure("(b) modelspec serve --max-batch 1", [*serve, "--port", str(port), "--max-batch", "1"],
             port, args, body, content_type)
    port = _free_port()
    _measure(f"(c) modelspec serve (batching{' ' + args.batching if args.batching else ''})",
             [*serve, "--port", str(port), *args.batching.split()], port, args, body, content_type)


if __name__ == "__main__":
    main()
