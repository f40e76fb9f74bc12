"""The FastAPI app: POST /predict, GET /metadata, GET /health, and FastAPI's /docs and /openapi.json.

`create_app(predictor, options)` takes a model already opened (so that a bad folder is the command's
one-line error, before any port is bound) and serves it: each request's inputs are read as
`modelspec predict` reads them (`requests`), the inputs of concurrent requests go through the model
together (`batching`), and the answer holds the rows predict prints (`prediction_rows`). A request the
model cannot take is a 4xx whose `detail` names the field or file; nothing a client sends is a 500.
"""

import gc
import json
import math
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..export.report import REPORT_FILE
from ..predict.model import Predictor
from ..predict.rows import prediction_rows
from .batching import Batcher
from .requests import IMAGES, BadInput, ImageReader, input_kind, read_json, refuse_errors, request_model

MODEL_CARD_FILE = "MODEL_CARD.md"


@dataclass(frozen=True)
class ServeOptions:
    top_k: int = 3  # classes listed per input, as predict's --top-k
    max_batch: int = 64  # inputs per model call; 1 turns batching off
    max_wait_ms: float = 5.0  # how long a batch waits for more requests: latency traded for throughput
    max_body_bytes: int = 16 * 2**20  # a request body over this is refused (413) before it is read whole
    max_pixels: int = 40_000_000  # an image over this (by its header) is refused (413) before decoding


# --------------------------------------------------------------------------------------------------
# request guard: the content type and the body's size, before FastAPI reads the body


class RequestGuard:
    """An ASGI middleware: POST /predict must come as `content_type` and within `max_bytes` (by its
    Content-Length; a chunked body is read here, counted, up to the limit); else 415 or 413, before
    FastAPI reads or parses anything."""

    def __init__(self, app, content_type: str, max_bytes: int):
        self.app, self.content_type, self.max_bytes = app, content_type, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/predict" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        received = headers.get("content-type", "").split(";")[0].strip().lower()
        if received != self.content_type:
            how = ("image files as multipart/form-data in the field 'files' (curl -F files=@photo.png)"
                   if self.content_type.startswith("multipart") else "a JSON body (Content-Type: application/json)")
            return await _send(send, 415, f"POST /predict takes {how}; received Content-Type "
                                          f"'{received or 'none'}'")
        limit = f"over this server's limit of {self.max_bytes:,} bytes ({self.max_bytes / 2**20:.3g} MiB, --max-body-mb)"
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            await _drain(receive)
            return await _send(send, 413, f"the request body is {int(length):,} bytes, {limit}")
        if length.isdigit():  # uvicorn reads no more than the length says
            return await self.app(scope, receive, send)
        body, more = [], True  # chunked: read it here, counting, up to the limit, then hand it on
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            body.append(message.get("body", b""))
            more = message.get("more_body", False)
            if sum(map(len, body)) > self.max_bytes:
                if more:
                    await _drain(receive)
                return await _send(send, 413, f"the request body is {limit}")
        whole, replayed = b"".join(body), False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()  # the client's disconnect, when it comes
            replayed = True
            return {"type": "http.request", "body": whole, "more_body": False}

        await self.app(scope, replay, send)


async def _drain(receive, most: int = 256 * 2**20) -> None:
    """Read (and drop) the rest of a refused body, so that a client that sends its whole body before
    it reads the answer gets the 413 rather than a broken pipe; at most `most` bytes."""
    read = 0
    while read <= most:
        message = await receive()
        read += len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


async def _send(send, status: int, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------------------------------
# metadata


def _near(source: Path, name: str) -> Path | None:
    """A file of the model's folder, or of its run's export folder, or of the export's run."""
    for folder in (source, source / "export", source.parent):
        if (folder / name).is_file():
            return folder / name
    return None


def _run_metrics(source: Path) -> dict[str, float] | None:
    """The run's last validation and test figures (run.json), where the folder is a run's or its export's."""
    path = _near(source, "run.json")
    if path is None:
        return None
    try:
        rows = json.loads(path.read_text(encoding="utf-8")).get("rows") or []
    except (OSError, ValueError):
        return None
    last = rows[-1] if rows else {}
    return {k: v for k, v in last.items() if k.startswith(("val_", "test_")) and isinstance(v, (int, float))} or None


def _shown_preprocessing(preprocessing: dict[str, Any]) -> dict[str, Any]:
    """The stored preprocessing, with a run's inline tokenizer (megabytes of vocabulary) summarised."""
    data = preprocessing.get("data")
    if isinstance(data, dict) and isinstance(data.get("tokenizer"), dict):
        vocab = ((data["tokenizer"].get("model") or {}).get("vocab")) or {}
        data = {**data, "tokenizer": f"inline in the run's weights ({len(vocab)} tokens)"}
        return {**preprocessing, "data": data}
    return preprocessing


def metadata(predictor: Predictor, body_model) -> dict[str, Any]:
    source, preprocessing = predictor.source, predictor.preprocessing
    report, card = _near(source, REPORT_FILE), _near(source, MODEL_CARD_FILE)
    kind = input_kind(preprocessing)
    schema = (body_model.model_json_schema(by_alias=True) if body_model is not None else
              {"multipart/form-data": {"files": "one or more image files"}})
    return {
        "model": str(source),
        "engine": predictor.engine,
        "input_kind": kind,
        "input_schema": schema,
        "input_shape": preprocessing.get("input_shape"),
        "class_names": predictor.class_names,
        "target_names": preprocessing.get("target_names"),
        "task": preprocessing.get("task"),
        "preprocessing": _shown_preprocessing(preprocessing),
        "metrics": _run_metrics(source),
        "export_report": json.loads(report.read_text(encoding="utf-8")) if report else None,
        "model_card": card.read_text(encoding="utf-8") if card else None,
    }


# --------------------------------------------------------------------------------------------------
# the app


def _where(loc: tuple) -> str:
    """FastAPI's error location as a client writes it: rows[0].Age."""
    text = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _error(error: dict[str, Any]) -> dict[str, str]:
    """One of FastAPI's validation errors as the field and a message that says what was received."""
    loc, kind = tuple(error.get("loc", ())), error.get("type", "")
    if kind == "json_invalid":  # FastAPI puts the character position where a field would be
        where = f" at character {loc[1]}" if len(loc) > 1 else ""
        return {"field": "body", "message": f"not valid JSON{where}: {error.get('ctx', {}).get('error', '')}".rstrip(": ")}
    if kind == "missing":
        return {"field": _where(loc), "message": "missing (a required field)"}
    return {"field": _where(loc), "message": f"{error.get('msg', '')}; received {repr(error.get('input'))[:80]}"}


def _inputs(body) -> int:
    """How many inputs a JSON body brings, as far as is known before reading it: its texts or rows
    (a series' latest window: one)."""
    if hasattr(body, "texts"):
        return len(body.texts)
    return 1 if getattr(body, "last", False) else len(body.rows)


def create_app(predictor: Predictor, options: ServeOptions = ServeOptions()) -> FastAPI:
    """The app serving `predictor`: its batcher starts and stops with the app's lifespan."""
    kind = input_kind(predictor.preprocessing)
    body_model = request_model(predictor.preprocessing)
    batcher = Batcher(lambda items: prediction_rows(predictor, items, options.top_k), options.max_batch,
                      options.max_wait_ms / 1000)
    info = metadata(predictor, body_model)
    read_images = ImageReader(predictor.preprocessing) if body_model is None else None

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await batcher.start()
        # torch, the engine and the app are some 400,000 objects that live as long as the server; a
        # full collection walks them all (0.2 s on a 2-core machine), stalling every request in
        # flight. Frozen, the collector only looks at what requests make (p99 300 -> 40-70 ms,
        # bench/bench_serve.py).
        gc.collect()
        gc.freeze()
        yield
        await batcher.stop()

    app = FastAPI(title=f"modelspec serve: {predictor.preprocessing.get('spec', predictor.source.name)}",
                  description=f"A {kind} model ({predictor.source}), through the preprocessing it was trained with.",
                  lifespan=lifespan)

    @app.exception_handler(BadInput)
    async def bad_input(_: Request, exc: BadInput):
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError):
        errors = [_error(e) for e in exc.errors()]
        text = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return JSONResponse({"detail": text, "errors": errors}, status_code=422)

    def checked(read: Callable[[], list]) -> Callable[[], list]:
        """A request's reading, refused (422) where an input cannot be read."""
        def read_checked():
            items = read()
            refuse_errors(items)
            return items

        return read_checked

    if body_model is None:
        from fastapi import File, UploadFile

        async def predict_images(files: list[UploadFile] = File(..., description="Image files, one or more.")):
            uploads = [(f.filename or f"files[{i}]", await f.read()) for i, f in enumerate(files)]
            rows = await batcher.predict(checked(lambda: read_images(uploads, options.max_pixels)), len(uploads))
            return _answer(rows)

        endpoint = predict_images
    else:
        async def predict_json(body: body_model):  # type: ignore[valid-type]
            read = checked(lambda: read_json(body, predictor.preprocessing, predictor.source))
            rows = await batcher.predict(read, _inputs(body))
            return _answer(rows)

        endpoint = predict_json
    app.post("/predict", summary="Predict raw inputs, as `modelspec predict` does")(endpoint)

    @app.get("/metadata", summary="What the model takes and gives, its preprocessing, metrics and card")
    async def get_metadata() -> dict[str, Any]:
        return info

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model_calls": batcher.calls, "inputs": batcher.inputs}

    content_type = "multipart/form-data" if kind == IMAGES else "application/json"
    app.add_middleware(RequestGuard, content_type=content_type, max_bytes=options.max_body_bytes)
    return app


def _answer(rows: list[dict[str, Any]]) -> JSONResponse:
    """The predictions as JSON, straight: the rows hold only JSON's types already, and FastAPI's
    encoder, which would walk them again, took a fifth of a request's time on the event loop."""
    return JSONResponse({"predictions": _finite(rows)})


def _finite(value: Any) -> Any:
    """The answer with NaN and infinities as null: JSON has no such numbers (a model that outputs
    them would otherwise end its request in a 500)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value
