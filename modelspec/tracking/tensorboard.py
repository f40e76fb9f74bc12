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
from typing import TYPE_CHECKING, Any


from .base import TrackedRun, Tracker, measurements

if TYPE_CHECKING:
    import torch
    from torch import nn

SPLITS = ("val", "test")


def _masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C of `data`, computed in C by google-crc32c."""
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def use_fast_checksums() -> None:
    """Event records checksummed in C. TensorBoard without TensorFlow computes each record's CRC-32C
    in pure Python, on the writer's thread but holding the GIL: 0.2 ms of the training thread's time
    per histogram and several ms per image. Same checksum (TensorBoard's reader verifies it); kept as
    it is where google-crc32c has no compiled module."""
    from tensorboard.summary.writer import record_writer

    try:
        import google_crc32c
    except ImportError:
        return
    if google_crc32c.implementation == "c":
        record_writer.masked_crc32c = _masked_crc32c


def scalar_tag(key: str) -> str:
    """`val_accuracy` -> `accuracy/val`, `loss` -> `loss/train`, `current_lr` -> `lr`."""
    if key == "current_lr":
        return "lr"
    split, _, metric = key.partition("_")
    if split in SPLITS and metric:
        return f"{metric}/{split}"
    return f"{key}/train"


class TensorBoardTracker(Tracker):
    """TensorBoard's event files in the run's folder: scalars, histograms, images, graph, hparams."""

    name = "tensorboard"

    def __init__(self, run: TrackedRun, options=None):
        super().__init__(run, options)
        self.log_dir, self.hparam_keys = run.run_dir, set(run.hparams)
        self.images = bool(run.tracking.get("images", True))  # `true` or `{every: N}`
        self.graph = run.tracking.get("graph", True) and run.graph
        self.writer = None
        self._first_batch_logged = run.resumed  # a resumed run logged it already
        self._painter = None  # draws the confusion matrices, its class-name strips made once

    def start(self, resume_step: int | None, rows: list[dict[str, Any]]) -> None:
        from .event_writer import caller_thread_writer

        use_fast_checksums()
        # Events are written on this thread, each as it is added (event_writer.py).
        self.writer = caller_thread_writer(str(self.log_dir), purge_step=resume_step)

    def log(self, step: int, row: dict[str, Any]) -> None:
        for key, value in measurements(row, self.hparam_keys).items():
            self.writer.add_scalar(scalar_tag(key), value, step)

    def first_batch(self, model: nn.Module, x: torch.Tensor) -> None:
        """The image grid and the model graph, once per run, from the first training batch."""
        if self._first_batch_logged:
            return
        self._first_batch_logged = True
        if self.images and x.ndim == 4 and x.shape[1] in (1, 3):
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

    def model_state(self, step: int, model: nn.Module) -> None:
        from .histograms import histograms

        tagged = []
        for name, param in model.named_parameters():
            tagged.append((f"params/{name}", param))
            if param.grad is not None:
                tagged.append((f"grads/{name}", param.grad))
        for (tag, _), histogram in zip(tagged, histograms([values for _, values in tagged])):
            if histogram is not None:
                # TensorBoard's buckets are given by their right edges: an empty first one marks the
                # left edge.
                self.writer.add_histogram_raw(tag, histogram.low, histogram.high, histogram.count, histogram.total,
                                              histogram.squares, histogram.edges, [0.0, *histogram.counts], step)

    def confusion(self, step: int, split: str, counts: torch.Tensor, names: list[str]) -> None:
        if self._painter is None:
            from .confusion import heatmap_painter

            self._painter = heatmap_painter(tuple(names))
        self.writer.add_image(f"confusion_matrix/{split}", self._painter(counts), step, dataformats="HWC")

    def finish(self, hparams: dict[str, Any], summary: dict[str, Any]) -> None:
        if self.writer is None:
            return
        clean = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in hparams.items()}
        values = {f"hparam/{k}": v for k, v in summary.items()
                  if (k.startswith("best_") or k.startswith("final_")) and isinstance(v, (int, float))
                  and not isinstance(v, bool)}
        if values:
            # What SummaryWriter.add_hparams writes, into this run's own event file: add_hparams opens
            # a second writer (a thread and a file) per run for it.
            from torch.utils.tensorboard.summary import hparams

            file_writer = self.writer._get_file_writer()
            for summary in hparams(clean, values):
                file_writer.add_summary(summary)
            for key, value in values.items():
                self.writer.add_scalar(key, value)
        self.writer.close()
