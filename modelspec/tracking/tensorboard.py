"""TensorBoard events of one run: scalars, histograms, images, the graph and hparams.

Tags: `<metric>/<split>` for every row value (loss/train, accuracy/val, rmse/test, ...), `lr`, each
parameter under `params/<name>` and its gradient under `grads/<name>`, `images/first_batch`,
`confusion_matrix/<split>` (an image with the class names), and the hparams summary that the HParams
tab compares across the grid: `hparam/best_<monitor>` is the monitor at the run's best epoch, every
`hparam/final_<metric>` the value at its last epoch. A resumed run opens its writer with
`purge_step`, so TensorBoard drops what the interrupted process had logged past the checkpoint.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..spec.export import TrackingSpec
from .base import BOOKKEEPING, Tracker

SPLITS = ("val", "test")
HISTOGRAM_BINS = 64


def scalar_tag(key: str) -> str:
    """`val_accuracy` -> `accuracy/val`, `loss` -> `loss/train`, `current_lr` -> `lr`."""
    if key == "current_lr":
        return "lr"
    split, _, metric = key.partition("_")
    if split in SPLITS and metric:
        return f"{metric}/{split}"
    return f"{key}/train"


class TensorBoardTracker(Tracker):
    def __init__(self, log_dir: Path, settings: TrackingSpec, hparams: dict[str, Any], resumed: bool = False,
                 graph: bool = True):
        self.log_dir, self.settings, self.hparam_keys = log_dir, settings, set(hparams)
        self.graph = settings.graph and graph
        self.writer = None
        self._first_batch_logged = resumed  # a resumed run logged it already
        self._painter = None  # draws the confusion matrices, its class-name strips made once

    def start(self, resume_step: int | None, rows: list[dict[str, Any]]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # Events are written by the writer's thread and flushed every few seconds and at the end, not
        # after every epoch: a tiny model's epoch is shorter than a flush.
        self.writer = SummaryWriter(str(self.log_dir), purge_step=resume_step, flush_secs=5)

    def log(self, step: int, row: dict[str, Any]) -> None:
        for key, value in row.items():
            if key in BOOKKEEPING or key in self.hparam_keys or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            self.writer.add_scalar(scalar_tag(key), value, step)

    def first_batch(self, model: nn.Module, x: torch.Tensor) -> None:
        """The image grid and the model graph, once per run, from the first training batch."""
        if self._first_batch_logged:
            return
        self._first_batch_logged = True
        if self.settings.images and x.ndim == 4 and x.shape[1] in (1, 3):
            from torchvision.utils import make_grid

            grid = make_grid(x[:64].detach().float().cpu(), nrow=8, normalize=True)
            self.writer.add_image("images/first_batch", grid, 0)
        if self.graph:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    was_training = model.training
                    self.writer.add_graph(model.eval(), x[:2])
                    model.train(was_training)
            except Exception as exc:  # tracing is best effort: some modules do not trace
                self.writer.add_text("graph", f"the graph could not be traced: {exc}")

    def model_state(self, step: int, model: nn.Module, last: bool = False) -> None:
        every = self.settings.histogram_every
        if every is None or (step % every and not last):
            return
        for name, param in model.named_parameters():
            self._histogram(f"params/{name}", param, step)
            if param.grad is not None:
                self._histogram(f"grads/{name}", param.grad, step)

    def _histogram(self, tag: str, values: torch.Tensor, step: int) -> None:
        # 64 even bins: TensorBoard re-bins for display anyway, and its default ("tensorflow", about
        # 1,500 exponential edges) took 1.5 ms per tensor of a tiny model and 5x longer on large ones.
        values = values.detach().float().cpu()
        finite = torch.isfinite(values)
        if not bool(finite.all()):  # a diverging run: show what is finite (the NaN check stops it)
            values = values[finite]
        if values.numel():
            self.writer.add_histogram(tag, values, step, bins=HISTOGRAM_BINS)

    def confusion(self, step: int, split: str, counts: torch.Tensor, names: list[str], last: bool = False) -> None:
        every = self.settings.image_every
        if every is None or (step % every and not last):
            return
        if self._painter is None:
            from .confusion import HeatmapPainter

            self._painter = HeatmapPainter(names)
        self.writer.add_image(f"confusion_matrix/{split}", self._painter(counts), step, dataformats="HWC")

    def finish(self, hparams: dict[str, Any], summary: dict[str, Any]) -> None:
        if self.writer is None:
            return
        clean = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in hparams.items()}
        values = {f"hparam/{k}": v for k, v in summary.items()
                  if (k.startswith("best_") or k.startswith("final_")) and isinstance(v, (int, float))
                  and not isinstance(v, bool)}
        if values:
            self.writer.add_hparams(clean, values, run_name=".")
        self.writer.close()
