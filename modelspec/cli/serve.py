"""`modelspec serve MODEL`: the model behind an HTTP API (FastAPI and uvicorn, the `serve` extra)."""

from __future__ import annotations

import ipaddress
import signal
import socket
from typing import Annotated

import typer

from ..errors import SpecError
from ..predict import open_model
from ._common import command


def _imports():
    try:
        import fastapi  # noqa: F401
        import multipart  # noqa: F401 - python-multipart, which FastAPI's file uploads need
        import uvicorn
    except ImportError as exc:
        raise SpecError(f"modelspec serve needs FastAPI, uvicorn and python-multipart ({exc.name} is missing)",
                        hint="pip install 'modelspec[serve]'") from None
    from ..serve import ServeOptions, create_app

    return uvicorn, ServeOptions, create_app


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a port in use is one line and exit 2."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise SpecError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                        hint="choose another --port, or stop what listens there") from None
    sock.set_inheritable(True)
    return sock


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _drained(signum, frame) -> None:
    """What SIGTERM and Ctrl-C do once uvicorn has drained the requests in flight: nothing, so the
    command ends with exit 0 (uvicorn raises the signal it caught again, once it has stopped)."""


@command
def serve(
    model: Annotated[str, typer.Argument(help="A run folder, a grid folder with --best, or an export folder.",
                                         metavar="MODEL")],
    best: Annotated[bool, typer.Option("--best", help="The grid's best run by its monitor.")] = False,
    host: Annotated[str, typer.Option("--host", help="The address to listen on; 0.0.0.0 for every interface.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="The port to listen on.")] = 8000,
    engine: Annotated[str, typer.Option("--engine", help="torch (eager or TorchScript) or onnx (onnxruntime), as predict.")] = "torch",
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Classes listed per input (multi-class).")] = 3,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, help="Inputs per model call, gathered from concurrent requests; 1: no batching.")] = 64,
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", min=0, help="How long a batch waits for more requests.")] = 5.0,
    max_body_mb: Annotated[float, typer.Option("--max-body-mb", min=0.001, help="Largest request body, in MiB.")] = 16.0,
    max_pixels: Annotated[int, typer.Option("--max-pixels", min=1, help="Largest image, in pixels (width x height).")] = 40_000_000,
) -> None:
    """Serve a trained model over HTTP: POST /predict, GET /metadata, GET /health, /docs."""
    if engine not in ("torch", "onnx"):
        raise SpecError(f"--engine {engine}: expected torch or onnx")
    uvicorn, ServeOptions, create_app = _imports()
    predictor = open_model(model, best, engine)  # type: ignore[arg-type]
    options = ServeOptions(top_k, max_batch, max_wait_ms, int(max_body_mb * 2**20), max_pixels)
    app = create_app(predictor, options)
    sock = _bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"serving {predictor.source} ({predictor.engine}) on http://{shown}:{sock.getsockname()[1]} "
               f"(docs at /docs); Ctrl-C or SIGTERM stops it once the requests in flight are answered")
    if not _is_loopback(host):
        typer.echo(f"note: --host {host} listens beyond this machine: anyone who reaches it can call the model")
    signal.signal(signal.SIGTERM, _drained)
    signal.signal(signal.SIGINT, _drained)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                           timeout_graceful_shutdown=None))
    server.run(sockets=[sock])
    typer.echo("stopped")
