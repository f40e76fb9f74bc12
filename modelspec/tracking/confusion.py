"""Confusion matrices as a person reads them: CSV tables and a picture with the class names.

Rows are the true classes, columns the predicted ones, as deeplizard plots it; the picture shows the
counts beside the row-normalised matrix (each row sums to 1: the recall of each class on the diagonal).
It is drawn with Pillow (torchvision's own dependency), so no plotting library is needed. Whatever the
class count, the picture and the printed tables stay bounded (LABELLED_CLASSES); the CSVs hold every cell.
"""

from __future__ import annotations

import csv
import functools
import io
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Callable


from ..fileio import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:  # both imported where a matrix is drawn: a spec reads this package's trackers
    import numpy as np
    import torch

CELL = 34  # pixels per matrix cell, with its count written on it
WHITE, BLACK = (255, 255, 255), (0, 0, 0)
BLUE = (31, 78, 160)
# Up to this many classes a matrix is shown whole: each cell's count in the picture and in
# `evaluate`'s table. Past it, a table of 1,000 columns or a picture of 34,000 pixels a side helps
# nobody (a 1,000-class run was killed at 22.9 GB drawing it): the cells become coloured pixels in at
# most PANEL_SIDE pixels a side, and the text names the largest confusions instead. The CSV tables
# always hold every cell.
LABELLED_CLASSES = 40
PANEL_SIDE = LABELLED_CLASSES * CELL  # a panel's matrix, at most, in pixels a side
NAME_PX = 10  # a cell at least this tall gets its class name on the axes
NAME_CHARS = 32  # a longer class name is cut in the pictures (the CSVs have it whole)
TOP_CONFUSIONS = 20


def normalized(counts: torch.Tensor) -> torch.Tensor:
    """Each row divided by its sum (a class with no samples stays 0)."""
    counts = counts.double()
    return counts / counts.sum(1, keepdim=True).clamp_min(1)


def labelled(num_classes: int) -> bool:
    """Whether a matrix this size is shown whole, every cell's count written."""
    return num_classes <= LABELLED_CLASSES


def top_confusions(counts: torch.Tensor, names: list[str], n: int = TOP_CONFUSIONS) -> list[dict]:
    """The `n` largest off-diagonal cells, largest first (ties in row order): the true class, the
    class it was taken for, the count and its share of the true class's samples."""
    import torch

    off = counts.long().clone()
    off.fill_diagonal_(0)
    values, order = torch.sort(off.flatten(), descending=True, stable=True)
    support, k = counts.sum(1).tolist(), counts.shape[1]
    return [{"true": names[i // k], "predicted": names[i % k], "count": int(v), "share": v / support[i // k]}
            for v, i in zip(values[:n].tolist(), order[:n].tolist()) if v > 0]


def _csv(matrix: torch.Tensor, names: list[str], fmt) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["true \\ predicted", *names])
    for name, row in zip(names, matrix.tolist()):
        writer.writerow([name, *(fmt(v) for v in row)])
    return out.getvalue()


def _short(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 2] + ".."


def _cell(k: int) -> int:
    """Pixels a side of one cell: room for its count up to LABELLED_CLASSES, then as many as fit
    PANEL_SIDE (at least 1: past PANEL_SIDE classes, a pixel shows the mean of a block of cells)."""
    return CELL if labelled(k) else max(1, min(CELL, PANEL_SIDE // k))


def _cells(values: np.ndarray, cell: int) -> np.ndarray:
    """(k, k) values in [0, 1] as white-to-blue pixels, `cell` a side each, with a white line round
    each cell where there is room for one; at most PANEL_SIDE a side."""
    import numpy as np

    k = len(values)
    if k * cell > PANEL_SIDE:  # more classes than pixels: block means
        from PIL import Image

        values = np.asarray(Image.fromarray(values.astype(np.float32))  # mode F
                            .resize((PANEL_SIDE, PANEL_SIDE), Image.Resampling.BOX))
    colour = (255 - values[..., None] * (255 - np.array(BLUE, dtype=np.float64))).astype(np.uint8)
    cells = np.repeat(np.repeat(colour, cell, axis=0), cell, axis=1) if cell > 1 else colour
    if cell >= 4:
        cells[::cell], cells[cell - 1 :: cell], cells[:, ::cell], cells[:, cell - 1 :: cell] = 255, 255, 255, 255
    return cells


def _margin(names: tuple[str, ...], cell: int) -> int:
    return 12 + 7 * max(len(n) for n in names) if cell >= NAME_PX else 60


@functools.lru_cache(maxsize=16)
def _panel_frame(names: tuple[str, ...], title: str) -> np.ndarray:
    """A panel without its cells: the title and the class names (where a cell is tall enough) on
    white, drawn once per grid (the runs of a grid share their class names, and drawing the text was
    half of the picture's time)."""
    import numpy as np

    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    k, cell = len(names), _cell(len(names))
    margin, side = _margin(names, cell), min(k * cell, PANEL_SIDE)
    image = Image.new("RGB", (margin + side + 10, 40 + side + margin), "white")
    draw = ImageDraw.Draw(image)
    draw.text((margin, 6), title, fill="black", font=font)
    draw.text((4, 6), "true", fill="gray", font=font)  # the default font has no arrows
    if cell < NAME_PX:  # no room for names: the classes in their order, as in the CSV
        draw.text((4, 30), f"{k}\nclasses,\nin order", fill="gray", font=font)
        draw.text((margin, 34 + side), "predicted", fill="gray", font=font)
    else:
        for i, name in enumerate(names):
            draw.text((4, 30 + i * cell + (cell - NAME_PX) // 2), name, fill="black", font=font)
        # Column names, written downwards below the matrix.
        for j, name in enumerate(names):
            label = Image.new("RGB", (margin, 12), "white")
            ImageDraw.Draw(label).text((0, 0), name, fill="black", font=font)
            image.paste(label.rotate(-90, expand=True), (margin + j * cell + (cell - 12) // 2, 32 + side))
    frame = np.asarray(image)
    frame.flags.writeable = False
    return frame


def _panel(matrix: np.ndarray, labels: list[list[str]] | None, names: list[str], title: str):
    """One matrix with its names; `labels`, each cell's text, only for a labelled size."""
    from PIL import Image

    short = tuple(_short(n) for n in names)
    cell = _cell(len(names))
    margin = _margin(short, cell)
    pixels = _panel_frame(short, title).copy()
    cells = _cells(matrix, cell)
    pixels[30 : 30 + len(cells), margin : margin + len(cells)] = cells
    image = Image.fromarray(pixels)
    for i, row in enumerate(labels or ()):
        for j, text in enumerate(row):
            mask = _text_mask(text)
            x, y = margin + j * cell + 3, 30 + i * cell + cell // 3
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


def _confusions_strip(counts: torch.Tensor, names: list[str], width: int):
    """The largest confusions as lines of text, for a picture whose cells carry none."""
    from PIL import Image, ImageDraw, ImageFont

    lines = [f"the largest confusions, at most {TOP_CONFUSIONS} (true -> predicted: count, share of the true class);"
             " every cell is in confusion_matrix.csv"]
    lines += [f"{_short(c['true'])} -> {_short(c['predicted'])}: {c['count']}, {c['share']:.1%}"
              for c in top_confusions(counts, names)]
    image = Image.new("RGB", (width, 10 + 14 * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((8, 4 + 14 * i), line, fill="black", font=ImageFont.load_default())
    return image


def confusion_picture(counts: torch.Tensor, names: list[str]):
    """A Pillow image: counts on the left, row-normalised on the right; each cell's text up to
    LABELLED_CLASSES classes, the largest confusions below past it. Its size is bounded whatever the
    class count (PANEL_SIDE, NAME_CHARS, TOP_CONFUSIONS)."""
    from PIL import Image

    norm = normalized(counts).numpy()
    peak = max(int(counts.max()), 1)
    whole = labelled(len(names))
    left = _panel(counts.numpy() / peak, [[str(int(v)) for v in row] for row in counts.tolist()] if whole else None,
                  names, "counts (rows: true, columns: predicted)")
    right = _panel(norm, [[f"{v:.2f}" for v in row] for row in norm.tolist()] if whole else None, names,
                   "row-normalised")
    strip = None if whole else _confusions_strip(counts, names, left.width + right.width)
    height = max(left.height, right.height) + (strip.height if strip else 0)
    image = Image.new("RGB", (left.width + right.width, height), "white")
    image.paste(left, (0, 0))
    image.paste(right, (left.width, 0))
    if strip is not None:
        image.paste(strip, (0, max(left.height, right.height)))
    return image


class HeatmapPainter:
    """The per-epoch TensorBoard picture: row-normalised cells as colours, class names on the axes
    where a cell is tall enough for them, at most PANEL_SIDE pixels a side whatever the class count.

    Cheap enough for every epoch of a tiny model: the name strips are drawn once per run and the cells
    are painted with numpy, no text per cell (the counts are in the CSV and the final PNG)."""

    def __init__(self, names: list[str], cell: int = 10):
        import numpy as np

        from PIL import Image, ImageDraw, ImageFont

        self.k = len(names)
        self.cell = max(1, min(cell, PANEL_SIDE // self.k))
        self.side = min(self.k * self.cell, PANEL_SIDE)
        named = self.cell >= NAME_PX
        font = ImageFont.load_default()
        self.margin = 8 + 6 * max(len(_short(n)) for n in names) if named else 0
        rows = Image.new("RGB", (self.margin, self.side), "white")
        draw = ImageDraw.Draw(rows)
        for i, name in enumerate(names if named else ()):
            draw.text((2, i * self.cell + 1), _short(name), fill="black", font=font)
        self.rows = np.asarray(rows)
        self.columns = np.asarray(rows.rotate(90, expand=True))  # names read upwards under the columns

    def __call__(self, counts: torch.Tensor) -> np.ndarray:
        """(H, W, 3) uint8."""
        import numpy as np

        side, margin = self.side, self.margin
        grid = _cells(normalized(counts).numpy(), self.cell)  # (side, side, 3)
        image = np.full((side + margin, margin + side, 3), 255, dtype=np.uint8)
        image[:side, :margin] = self.rows
        image[:side, margin:] = grid
        image[side:, margin:] = self.columns
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
