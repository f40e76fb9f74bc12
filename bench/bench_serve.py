"""`modelspec serve` under load, against a hand-written FastAPI + onnxruntime endpoint.

    python bench/bench_serve.py EXPORT_FOLDER [--requests 2000] [--concurrency 32] [--repeat 3]

EXPORT_FOLDER: `modelspec export` of an image classifier with --format onnx (the Fashion-MNIST model
of specs/fashion_bn.yaml). Three servers, one at a time, each in its own process on 127.0.0.1:

- (a) a hand-written endpoint (HAND_WRITTEN below, 20 lines): PIL, the stored mean/std, one
  onnxruntime call per request, the top class;
- (b) `modelspec serve EXPORT --engine onnx --max-batch 1`: no batching;
- (c) `modelspec serve EXPORT --engine onnx`: concurrent requests batched (--max-batch 64, --max-wait-ms 5).

Each gets 100 warm-up requests, then `--requests` uploads of one 28x28 PNG from `--concurrency`
client threads on keep-alive connections; printed: requests per second, p50 and p99 latency, the
server process's CPU time per request (user + system, from /proc), and errors. The servers take
turns for `--repeat` rounds and the best round of each is printed last. The client shares the
machine's cores with the server: compare rows of one run, not absolute figures; the CPU time per
request is what the server itself spent, whatever the client threads took.
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


def _cpu_seconds(pid: int) -> float:
    """The process's user + system CPU time so far (Linux: /proc/PID/stat), to say what a request
    costs the server itself, whatever the client threads took of the shared cores."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(command: list[str], port: int, args, body: bytes, content_type: str) -> tuple[float, ...]:
    """(req/s, p50 ms, p99 ms, server CPU ms a request, errors) of one server under the load."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait(port, process)
        _load(port, body, content_type, 100, min(args.concurrency, 8))  # warm-up
        cpu, start = _cpu_seconds(process.pid), time.perf_counter()
        latencies, errors = _load(port, body, content_type, args.requests, args.concurrency)
        wall, cpu = time.perf_counter() - start, _cpu_seconds(process.pid) - cpu
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    latencies.sort()
    p50, p99 = (latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 for q in (0.5, 0.99))
    return len(latencies) / wall, p50, p99, cpu * 1000 / len(latencies), errors


def _row(label: str, figures: tuple[float, ...]) -> str:
    rate, p50, p99, cpu, errors = figures
    return f"{label:<40} {rate:>7.0f} {p50:>7.1f} {p99:>7.1f} {cpu:>10.2f} {errors:>6}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path, help="an export folder with model.onnx and preprocessing.json")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batching", default="", metavar="OPTIONS",
                        help="(c)'s batching options, e.g. '--max-batch 8 --max-wait-ms 1' (default: serve's own)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, each server once a round, in turn")
    args = parser.parse_args()
    folder = args.export.resolve()
    if not (folder / "model.onnx").is_file():
        raise SystemExit(f"{folder} has no model.onnx: export with --format onnx")
    body, content_type = _multipart(_png())
    print(f"{args.requests} requests, concurrency {args.concurrency}, {os.cpu_count()} CPUs, 127.0.0.1, "
          f"{args.repeat} rounds (the servers in turn; the best round of each last)")
    print(f"{'server':<40} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms/req':>10} {'errors':>6}")
    serve = [sys.executable, "-m", "modelspec", "serve", str(folder), "--engine", "onnx"]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp, "hand_written.py")
        script.write_text(HAND_WRITTEN)
        servers = {
            "(a) hand-written FastAPI+onnxruntime": lambda port: [sys.executable, str(script), str(folder), str(port)],
            "(b) modelspec serve --max-batch 1": lambda port: [*serve, "--port", str(port), "--max-batch", "1"],
            f"(c) modelspec serve (batching{' ' + args.batching if args.batching else ''})":
                lambda port: [*serve, "--port", str(port), *args.batching.split()],
        }
        rounds: dict[str, list[tuple[float, ...]]] = {label: [] for label in servers}
        for _ in range(args.repeat):
            for label, command in servers.items():
                port = _free_port()
                rounds[label].append(_measure(command(port), port, args, body, content_type))
                print(_row(label, rounds[label][-1]), flush=True)
    if args.repeat > 1:
        print("best round of each (highest req/s):")
        for label, figures in rounds.items():
            print(_row(label, max(figures)))
    best = {label: max(figures)[0] for label, figures in rounds.items()}
    hand = next(iter(best.values()))
    print("req/s against (a): " + ", ".join(f"{label[:3]} {rate / hand:.2f}" for label, rate in best.items()))

if __name__ == "__main__":
    main()
