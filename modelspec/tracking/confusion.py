"""Confusion matrices as a person reads them: CSV tables and a picture with the class names.

Rows are the true classes, columns the predicted ones, as deeplizard plots it; the picture shows the
counts beside the row-normalised matrix (each row sums to 1: the recall of each class on the diagonal).
It is drawn with Pillow (torchvision's own dependency), so no plotting library is needed.
"""

from __future__ import annotations

import csv
import functools
import io
from concurrent.futures import Future
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..artifacts import atomic_write_bytes, atomic_write_text

CELL = 34  # pixels per matrix cell
WHITE, BLACK = (255, 255, 255), (0, 0, 0)


def normalized(counts: torch.Tensor) -> torch.Tensor:
    """Each row divided by its sum (a class with no samples stays 0)."""
    counts = counts.double()
    return counts / counts.sum(1, keepdim=True).clamp_min(1)


def _csv(matrix: torch.Tensor, names: list[str], fmt) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["true \\ predicted", *names])
    for name, row in zip(names, matrix.tolist()):
        writer.writerow([name, *(fmt(v) for v in row)])
    return out.getvalue()


def _margin(names: tuple[str, ...]) -> int:
    return 12 + 7 * max(len(n) for n in names)


@functools.lru_cache(maxsize=16)
def _panel_frame(names: tuple[str, ...], title: str) -> np.ndarray:
    """A panel without its cells: the title and the class names on white, drawn once per grid (the
    runs of a grid share their class names, and drawing the text was half of the picture's time)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    k, margin = len(names), _margin(names)
    image = Image.new("RGB", (margin + k * CELL + 10, 40 + k * CELL + margin), "white")
    draw = ImageDraw.Draw(image)
    draw.text((margin, 6), title, fill="black", font=font)
    draw.text((4, 6), "true ↓", fill="gray", font=font)
    for i, name in enumerate(names):
        draw.text((4, 30 + i * CELL + CELL // 3), name, fill="black", font=font)
    # Column names, written downwards below the matrix.
    for j, name in enumerate(names):
        label = Image.new("RGB", (margin, 12), "white")
        ImageDraw.Draw(label).text((0, 0), name, fill="black", font=font)
        image.paste(label.rotate(-90, expand=True), (margin + j * CELL + CELL // 3, 32 + k * CELL))
    frame = np.asarray(image)
    frame.flags.writeable = False
    return frame


def _panel(matrix: np.ndarray, labels: list[list[str]], names: list[str], title: str):
    from PIL import Image

    k, margin = len(names), _margin(tuple(names))
    pixels = _panel_frame(tuple(names), title).copy()
    # Each cell white to blue by its value, with a white line round it; then its label on it.
    colour = (255 - matrix[..., None] * (255 - np.array([31, 78, 160], dtype=np.float64))).astype(np.uint8)
    cells = np.repeat(np.repeat(colour, CELL, axis=0), CELL, axis=1)
    cells[::CELL], cells[CELL - 1 :: CELL], cells[:, ::CELL], cells[:, CELL - 1 :: CELL] = 255, 255, 255, 255
    pixels[30 : 30 + k * CELL, margin : margin + k * CELL] = cells
    image = Image.fromarray(pixels)
    for i in range(k):
        for j in range(k):
            mask = _text_mask(labels[i][j])
            x, y = margin + j * CELL + 3, 30 + i * CELL + CELL // 3
            # The ink as a tuple and the box with its four corners: Pillow's shortest path (200 of
            # these are most of the picture's time).
            image.paste(WHITE if matrix[i, j] > 0.5 else BLACK, (x, y, x + mask.width, y + mask.height), mask)
    return image


@functools.lru_cache(maxsize=4096)
def _text_mask(text: str):
    """A cell's label as an antialiased mask, drawn once per distinct text: the cells repeat a few
    labels ("0", "0.00"), and drawing each anew was most of the picture's 13 ms."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    left, top, right, bottom = font.getbbox(text)
    mask = Image.new("L", (max(right, 1), max(bottom, 1)), 0)
    ImageDraw.Draw(mask).text((0, 0), text, fill=255, font=font)
    return mask


def confusion_picture(counts: torch.Tensor, names: list[str]):
    """A Pillow image: counts on the left, row-normalised on the right."""
    from PIL import Image

    norm = normalized(counts).numpy()
    peak = max(int(counts.max()), 1)
    left = _panel(counts.numpy() / peak, [[str(int(v)) for v in row] for row in counts.tolist()], names,
                  "counts (rows: true, columns: predicted)")
    right = _panel(norm, [[f"{v:.2f}" for v in row] for row in norm.tolist()], names, "row-normalised")
    image = Image.new("RGB", (left.width + right.width, max(left.height, right.height)), "white")
    image.paste(left, (0, 0))
    image.paste(right, (left.width, 0))
    return image


class HeatmapPainter:
    """The per-epoch TensorBoard picture: row-normalised cells as colours, class names on the axes.

    Cheap enough for every epoch of a tiny model: the name strips are drawn once per run and the cells
    are painted with numpy, no text per cell (the counts are in the CSV and the final PNG)."""

    def __init__(self, names: list[str], cell: int = 10):
        from PIL import Image, ImageDraw, ImageFont

        self.k, self.cell = len(names), cell
        font = ImageFont.load_default()
        self.margin = 8 + 6 * max(len(n) for n in names)
        rows = Image.new("RGB", (self.margin, self.k * cell), "white")
        draw = ImageDraw.Draw(rows)
        for i, name in enumerate(names):
            draw.text((2, i * cell + 1), name, fill="black", font=font)
        self.rows = np.asarray(rows)
        self.columns = np.asarray(rows.rotate(90, expand=True))  # names read upwards under the columns

    def __call__(self, counts: torch.Tensor) -> np.ndarray:
        """(H, W, 3) uint8."""
        k, cell, margin = self.k, self.cell, self.margin
        shade = normalized(counts).numpy()  # (k, k) in [0, 1]
        colour = np.array([31, 78, 160], dtype=np.float64)
        cells = 255 - shade[..., None] * (255 - colour)  # white to blue
        grid = np.repeat(np.repeat(cells, cell, axis=0), cell, axis=1).astype(np.uint8)
        grid[::cell, :] = 255
        grid[:, ::cell] = 255
        image = np.full((k * cell + margin, margin + k * cell, 3), 255, dtype=np.uint8)
        image[: k * cell, :margin] = self.rows
        image[: k * cell, margin:] = grid
        image[k * cell :, margin:] = self.columns
        return image


def write_confusion(folder: Path, counts: torch.Tensor, names: list[str],
                    background: Callable[..., Future] | None = None, sync_folder: bool = True,
                    picture: bool = True) -> Future | None:
    """confusion_matrix.csv (counts), confusion_matrix_normalized.csv and, with `picture`,
    confusion_matrix.png, each atomically and durably (`sync_folder=False`: a later durable write into
    `folder` commits them).

    With `background`, the tables and the picture are made here and handed to it to encode and write
    (PNG encoding and file writes release the GIL; drawing does not), and its Future is returned."""
    tables = {"confusion_matrix.csv": _csv(counts, names, lambda v: str(int(v))),
              "confusion_matrix_normalized.csv": _csv(normalized(counts), names, lambda v: f"{v:.6f}")}
    drawn = confusion_picture(counts, names) if picture else None
    if background is not None:
        return background(_write_files, folder, tables, drawn, sync_folder)
    _write_files(folder, tables, drawn, sync_folder)
    return None


def _write_files(folder: Path, tables: dict[str, str], picture, sync_folder: bool) -> None:
    for name, text in tables.items():
        atomic_write_text(folder / name, text, sync_folder=sync_folder)
    if picture is None:
        return
    png = io.BytesIO()
    picture.save(png, format="PNG", compress_level=1)  # encodes in 60 % of the time
    atomic_write_bytes(folder / "confusion_matrix.png", png.getvalue(), sync_folder=sync_folder)


@functools.lru_cache(maxsize=16)
def heatmap_painter(names: tuple[str, ...]) -> HeatmapPainter:
    """One painter per list of class names: the runs of a grid share theirs."""
    return HeatmapPainter(list(names))
