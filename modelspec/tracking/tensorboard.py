"""TensorBoard events of one run: scalars, histograms, an image grid, the graph and hparams.

Tags: loss/train, loss/val, loss/test, accuracy/train, accuracy/val, accuracy/test, lr, each
parameter under `params/<name>` and its gradient under `grads/<name>`, `images/first_batch`, and the
hparams summary that the HParams tab compares across the grid. A resumed run opens its writer with
`purge_step`, so TensorBoard drops what the interrupted process had logged past the checkpoint.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..spec.export import TrackingSpec


class TensorBoardTracker:
    def __init__(self, log_dir: Path, settings: TrackingSpec, purge_step: int | None = None,
                 first_batch_logged: bool = False):
        from torch.utils.tensorboard import SummaryWriter

        self.settings = settings
        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step)
        self._first_batch_logged = first_batch_logged  # a resumed run logged it already

    def first_batch(self, model: nn.Module, x: torch.Tensor) -> None:
        """The image grid and the model graph, once per run, from the first training batch."""
        if self._first_batch_logged:
            return
        self._first_batch_logged = True
        if self.settings.images and x.ndim == 4 and x.shape[1] in (1, 3):
            from torchvision.utils import make_grid

            grid = make_grid(x[:64].detach().float().cpu(), nrow=8, normalize=True)
            self.writer.add_image("images/first_batch", grid, 0)
        if self.settings.graph:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    was_training = model.training
                    self.writer.add_graph(model.eval(), x[:2])
                    model.train(was_training)
            except Exception as exc:  # tracing is best effort: some modules do not trace
                self.writer.add_text("graph", f"the graph could not be traced: {exc}")

    def epoch(self, epoch: int, metrics: dict[str, float | None], model: nn.Module) -> None:
        for name, value in metrics.items():
            if value is None:
                continue
            if "_" in name and name.split("_")[0] in ("val", "test"):
                split, metric = name.split("_", 1)
                tag = f"{metric}/{split}"
            else:
                tag = "lr" if name == "current_lr" else f"{name}/train"
            self.writer.add_scalar(tag, value, epoch)
        if self.settings.histograms:
            for name, param in model.named_parameters():
                self.writer.add_histogram(f"params/{name}", param.detach().float().cpu(), epoch)
                if param.grad is not None:
                    self.writer.add_histogram(f"grads/{name}", param.grad.detach().float().cpu(), epoch)
        self.writer.flush()

    def hparams(self, hparams: dict[str, Any], metrics: dict[str, float | None]) -> None:
        clean = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in hparams.items()}
        values = {f"hparam/{k}": v for k, v in metrics.items() if v is not None}
        if values:
            self.writer.add_hparams(clean, values, run_name=".")

    def close(self) -> None:
        self.writer.close()
