"""What POST /predict takes, built from the model's own inputs, and how a request becomes the inputs
`modelspec predict` reads.

Table rows, a series' rows and texts are written, in a temporary folder, as the very file predict
reads (a CSV; JSON lines) and read there by predict's `read_inputs`; uploaded images are read by
predict's image reader through predict's image pipeline. One code path, so a served answer is
predict's answer on the same inputs, through the same fitted preprocessing, with the same checks.
The JSON bodies are pydantic models made from what training fitted (a table's columns, a series'
columns), so /docs and /openapi.json name every column with its type, and a row missing a column or
with a word in a number column is refused by name before anything is read.
"""

import csv
import io
import json
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from ..errors import SpecError
from ..predict.inputs import Item, read_inputs, reading_kind

IMAGES, TABLE, TEXT, SERIES = "images", "table", "text", "time_series"


class BadInput(Exception):
    """A request the model cannot take: its HTTP status and a message naming the field or file."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def input_kind(preprocessing: dict[str, Any]) -> str:
    """images, table, text or time_series: what the stored preprocessing reads (a SpecError where
    predict reads no raw inputs for its data)."""
    reading_kind(preprocessing)
    data = preprocessing.get("data")
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if kind in (TABLE, TEXT, SERIES) else IMAGES


# --------------------------------------------------------------------------------------------------
# request models


class _Row(BaseModel):
    # Columns the model does not read come back with the row's prediction, as predict echoes them.
    model_config = ConfigDict(extra="allow", populate_by_name=False)


def _column_field(column: dict[str, Any]) -> tuple[Any, Any]:
    """A fitted table column as a required field under its own name (null: a missing value)."""
    name, kind = column["name"], column["type"]
    if kind == "numeric":
        fill = "the training rows' fill" if column.get("fill") is None else f"{column['fill']:g}"
        return float | None, Field(alias=name, description=f"A number; null is missing (filled with {fill}).")
    if kind == "categorical":
        shown = ", ".join(map(str, column["categories"][:20])) + (", ..." if len(column["categories"]) > 20 else "")
        return str | int | float | None, Field(
            alias=name, description=f"A category ({shown}); null or an unseen one takes the missing slot.")
    return Any, Field(alias=name, description="Only whether it is missing (null) counts.")


def request_model(preprocessing: dict[str, Any]) -> type[BaseModel] | None:
    """The JSON body POST /predict takes (None for images: multipart uploads, field `files`)."""
    body = BODIES.get(input_kind(preprocessing))
    return body.model(preprocessing.get("data") or {}) if body is not None else None


# --------------------------------------------------------------------------------------------------
# requests to predict's inputs


def _spec_message(exc: SpecError, path: Path, what: str) -> str:
    """A reader's error about the temporary file, about the request instead."""
    issue = exc.issues[0]
    text = issue.message.replace(str(path), what) + (f" ({issue.hint})" if issue.hint else "")
    return text


def _read_file(path: Path, preprocessing: dict[str, Any], folder: Path, what: str, **options: Any) -> list[Item]:
    try:
        return read_inputs([str(path)], preprocessing, folder=folder, **options)
    except SpecError as exc:
        raise BadInput(422, _spec_message(exc, path, what)) from None


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)


def read_json(body: BaseModel, preprocessing: dict[str, Any], folder: Path) -> list[Item]:
    """A table's rows, a series' rows or texts as predict's items (one per row, window or text)."""
    with tempfile.TemporaryDirectory(prefix="modelspec-serve-") as tmp:
        return BODIES[input_kind(preprocessing)].read(body, preprocessing, folder, Path(tmp))


# --------------------------------------------------------------------------------------------------
# the JSON bodies, one class per data kind that takes one


class _Body:
    """One data kind's JSON body: its request model, and how it becomes predict's items."""

    def model(self, data: dict[str, Any]) -> type[BaseModel]:
        raise NotImplementedError

    def read(self, body: BaseModel, preprocessing: dict[str, Any], folder: Path, tmp: Path) -> list[Item]:
        raise NotImplementedError


class _TableRows(_Body):
    def model(self, data: dict[str, Any]) -> type[BaseModel]:
        fields = {f"column_{i}": _column_field(c) for i, c in enumerate(data["columns"])}
        row = create_model("TableRow", __base__=_Row, **fields)
        return create_model("TableRequest", rows=(list[row], Field(
            min_length=1, description="Rows keyed by column name, as a table file of predict holds them.")))

    def read(self, body: BaseModel, preprocessing: dict[str, Any], folder: Path, tmp: Path) -> list[Item]:
        rows = [row.model_dump(by_alias=True) for row in body.rows]
        path = tmp / "rows.csv"
        _write_csv(path, rows)
        items = _read_file(path, preprocessing, folder, "rows")
        for i, (item, row) in enumerate(zip(items, rows)):
            item.name, item.extra = f"rows[{i}]", row  # the row as sent, not as the CSV's text
        return items


class _SeriesRows(_Body):
    def model(self, data: dict[str, Any]) -> type[BaseModel]:
        fields = {f"column_{i}": (float, Field(alias=name, description="A number of the series."))
                  for i, name in enumerate(data["columns"])}
        row = create_model("SeriesRow", __base__=_Row, **fields)
        window = data["window"] + (1 if data["difference"] else 0)
        return create_model("SeriesRequest", rows=(list[row], Field(
            min_length=1, description=f"The series' rows, oldest first (at least {window}).")),
            last=(bool, Field(True, description="Forecast from the latest window only (predict --last); "
                                                "false: from every complete window.")))

    def read(self, body: BaseModel, preprocessing: dict[str, Any], folder: Path, tmp: Path) -> list[Item]:
        path = tmp / "rows.csv"
        _write_csv(path, [row.model_dump(by_alias=True) for row in body.rows])
        return _read_file(path, preprocessing, folder, "rows", last=body.last)


class _Texts(_Body):
    def model(self, data: dict[str, Any]) -> type[BaseModel]:
        return create_model("TextRequest", texts=(list[str], Field(min_length=1, description="The texts to classify.")))

    def read(self, body: BaseModel, preprocessing: dict[str, Any], folder: Path, tmp: Path) -> list[Item]:
        path = tmp / "texts.jsonl"
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in body.texts), encoding="utf-8")
        items = _read_file(path, preprocessing, folder, "texts")
        for i, (item, text) in enumerate(zip(items, body.texts)):
            item.name, item.extra = f"texts[{i}]", {"text": text[:80]}
        return items


# Data kind -> its JSON body; images (not here) come as multipart uploads, read by ImageReader.
BODIES: dict[str, _Body] = {TABLE: _TableRows(), SERIES: _SeriesRows(), TEXT: _Texts()}


class ImageReader:
    """`reader(uploads, max_pixels) -> items`: uploaded image files as predict's items, each named
    by its file name: predict's own image reading (`read_image`) through predict's own pipeline
    (`image_pipeline`: the mode, the deterministic transforms, the stored statistics), built once
    for the server. Each upload is read from memory and opened once; an image whose header claims
    more than `max_pixels` is refused (413) before it is decoded."""

    def __init__(self, preprocessing: dict[str, Any]):
        from ..spec.data.images import image_pipeline

        self.prepare = image_pipeline(preprocessing)

    def __call__(self, uploads: list[tuple[str, bytes]], max_pixels: int) -> list[Item]:
        from ..readers.images import read_image

        items = []
        for i, (name, content) in enumerate(uploads):
            def check(image, what=f"files[{i}] '{name}'") -> None:
                width, height = image.size
                if width * height > max_pixels:
                    raise BadInput(413, f"{what} is {width}x{height} = {width * height:,} pixels, over this "
                                        f"server's limit of {max_pixels:,} (--max-pixels)")

            items.append(read_image(_Upload(content, name), name, self.prepare, check))
        return items


class _Upload(io.BytesIO):
    """An upload's bytes, which Pillow's messages name by the upload's file name."""

    def __init__(self, content: bytes, name: str):
        super().__init__(content)
        self.label = name

    def __repr__(self) -> str:
        return repr(self.label)


def refuse_errors(items: list[Item]) -> None:
    """Any input that could not be read refuses the request (422), naming each: a client learns
    what to fix rather than receiving a partial answer."""
    bad = [f"{item.name}: {item.error}" for item in items if item.x is None]
    if bad:
        raise BadInput(422, "; ".join(bad))
