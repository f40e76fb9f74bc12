"""outputs.csv: the final model's outputs on the monitor's split, written when a run ends.

`modelspec report` draws ROC, precision-recall, calibration and predicted-against-actual plots from
them without importing torch (it must start at once), so the run writes them while its model is in
memory: the same split and model as its confusion matrix (loop.py: final_confusion). One row per sample,
in the split's order, at most MAX_ROWS rows (the first ones): the plots need a sample, not every row of
a million-sample split, and the page that holds them stays small. Columns:

- classification: `target` (the class index), then `p:<class name>` per class, the probabilities the
  loss reads from the outputs (binary tasks: one column, the positive class's);
- regression: `target:<name>` and `prediction:<name>` per target, in the data's own units (the units a
  time series' scaling and differencing are undone into, as the metrics read them).

Multi-label runs write none (no plot reads them yet). Under torchrun the main process writes its own
share of the split.
"""

from __future__ import annotations

import csv
import io
from concurrent.futures import Future

import torch

from ..compile.task import split_of
from ..fileio import OUTPUTS_FILE, atomic_write_text
from .background import DONE, in_background

MAX_ROWS = 20_000


def write_outputs(parts, prepared, split_feeds, monitor, computed: tuple[torch.Tensor, torch.Tensor] | None = None
                  ) -> Future:
    """outputs.csv of `parts.eval_model` on the monitor's split (val, else test, else train), computed
    here and written in the background (the Future says when, or why not). `computed`: the final
    model's (outputs, targets) of that split's first MAX_ROWS samples (or all of a smaller one), in
    order, where the caller has them already (a pack's last evaluation): no pass of the model then."""
    kind = parts.task.kind
    if not parts.ranks.main or kind == "multilabel":
        return DONE
    if computed is not None:
        out, y = computed
        header, table = _header(parts.task), _columns(parts.task, out[:MAX_ROWS].float(), y[:MAX_ROWS]).cpu()
        return in_background(_write, parts.run_dir / OUTPUTS_FILE, header, table)
    feed = _monitor_feed(parts, prepared, split_feeds, monitor)
    if feed is None:
        return DONE
    header, table = _outputs(parts, feed)
    return in_background(_write, parts.run_dir / OUTPUTS_FILE, header, table)


def _monitor_feed(parts, prepared, split_feeds, monitor):
    """The split the confusion matrix is computed on, or None where the training split is fed by a
    DataLoader (its order is shuffled and it is not held in memory)."""
    val_feed, test_feed = split_feeds
    split = split_of(monitor.name)
    if split == "val" and val_feed is not None:
        return val_feed
    if split == "test" and test_feed is not None:
        return test_feed
    if prepared.train is None:
        return None
    from ..data import TensorFeed

    return TensorFeed(prepared.train.x, prepared.train.y, parts.spec.data.evaluation_batch_size, False, False, None)


@torch.no_grad()
def _outputs(parts, feed) -> tuple[list[str], torch.Tensor]:
    """(header, table (N, columns) on the CPU) of the first MAX_ROWS samples, in eval mode."""
    model, task = parts.eval_model, parts.task
    was_training = model.training
    model.eval()
    chunks, count = [], 0
    try:
        for x, y in feed.batches():
            out, _ = parts.forward(x, y, model)
            chunks.append(_columns(task, out.float(), y).cpu())
            count += len(y)
            if count >= MAX_ROWS:
                break
    finally:
        model.train(was_training)
    table = torch.cat(chunks)[:MAX_ROWS] if chunks else torch.empty(0, 0)
    return _header(task), table


def _columns(task, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One batch's rows (B, columns), as _header names them."""
    if task.kind == "regression":
        preds, target = task.metric_inputs(out, y)  # (B, T) each, in the data's units
        return torch.cat([target, preds], 1).double()
    target = y.view(len(y), -1)[:, :1].double()
    if task.kind == "binary":
        return torch.cat([target, task.positive_probability(out).view(-1, 1).double()], 1)
    return torch.cat([target, task.loss.probabilities(out, 1).double()], 1)


def _header(task) -> list[str]:
    names = task.class_names
    if task.kind == "regression":
        return [*(f"target:{name}" for name in names), *(f"prediction:{name}" for name in names)]
    if task.kind == "binary":
        return ["target", f"p:{names[-1]}"]
    return ["target", *(f"p:{name}" for name in names)]


def _write(path, header: list[str], table: torch.Tensor) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    classes = not header[0].startswith("target:")  # the class index is written as an integer
    # One %-format a row: what csv.writer writes for these numbers (no quoting, "\r\n"), in 40 % of
    # the time (it runs on a files thread, holding the GIL the training thread wants).
    line = ",".join(["%d" if classes else "%.7g"] + ["%.7g"] * (len(header) - 1)) + writer.dialect.lineterminator
    out.write("".join(line % tuple(row) for row in table.tolist()))
    atomic_write_text(path, out.getvalue(), sync_folder=False)  # run.json's write syncs the folder
