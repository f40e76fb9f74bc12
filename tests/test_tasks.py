"""Tasks beyond multi-class: binary, multi-label and regression runs end to end, their metrics checked
against a direct computation from the saved model's predictions, the monitor's direction, the
confusion matrix, and the run options' effects."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from modelspec.artifacts import load_trained
from modelspec.data import prepare_data
from modelspec.export.locate import best_run
from modelspec.load import loads_spec
from modelspec.runner import RunContext, run_grid, train_run
from modelspec.tracking import Tracker

BASE = """\
name: task
seed: 3
data:
  dataset: synthetic
  input_shape: [6]
  size: 320
  test_size: 96
  batch_size: 32
  val_split: 0.25
  transforms: []
{data}
model:
  - linear: {{out_features: 16}}
  - relu
{head}
train:
  epochs: 3
  optimizer: {{name: adam, lr: 0.02}}
  deterministic: true
{train}
"""


def spec_text(data: str, head: str, train: str) -> str:
    indent = lambda text: "\n".join("  " + line if line else line for line in text.strip().splitlines())  # noqa: E731
    return BASE.format(data=indent(data), head=indent(head), train=indent(train))


BINARY_LOGIT = spec_text("num_classes: 2", "- linear: {out_features: 1}", "loss: bce_with_logits")
BINARY_SIGMOID = spec_text("num_classes: 2", "- linear: {out_features: 1}\n- sigmoid", "loss: bce")
MULTI_LABEL = spec_text("target_kind: binary\nnum_classes: 4", "- linear: {out_features: 4}",
                        "loss: bce_with_logits")
REGRESSION = spec_text("target_kind: real\nnum_targets: 3", "- linear: {out_features: 3}", "loss: mse")


def _run(tmp_path: Path, text: str, *overrides: str):
    loaded = loads_spec(text, "task.yaml", [f"tracking.dir={tmp_path}", *overrides])
    result = run_grid(loaded, quiet=True, log=lambda _: None)
    assert not result.failed, [o.reason for o in result.outcomes.values()]
    return loaded, result


def _val_predictions(loaded, run_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The saved model's outputs on the validation split, and its targets."""
    spec = loaded.runs()[0].spec
    prepared = prepare_data(spec.data, spec.seed, torch.device("cpu"), log=lambda _: None)
    model = load_trained(run_dir).model
    with torch.no_grad():
        return model(prepared.val.x), prepared.val.y


def _auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Mann-Whitney: the chance that a positive scores above a negative (ties count half)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    greater = (pos[:, None] > neg[None, :]).double().sum() + 0.5 * (pos[:, None] == neg[None, :]).double().sum()
    return (greater / (len(pos) * len(neg))).item()


def _f1(pred: torch.Tensor, labels: torch.Tensor) -> float:
    tp = ((pred == 1) & (labels == 1)).sum().item()
    fp = ((pred == 1) & (labels == 0)).sum().item()
    fn = ((pred == 0) & (labels == 1)).sum().item()
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


@pytest.mark.parametrize("text", [BINARY_LOGIT, BINARY_SIGMOID], ids=["bce_with_logits", "sigmoid+bce"])
def test_binary_runs_report_accuracy_auroc_f1_as_computed_by_hand(tmp_path, text):
    loaded, result = _run(tmp_path, text)
    last = result.outcomes["run"].rows[-1]
    assert {"loss", "accuracy", "auroc", "f1", "val_accuracy", "val_auroc", "val_f1", "test_f1"} <= set(last)
    out, y = _val_predictions(loaded, result.folder / "00_run")
    probability = out.view(-1) if "sigmoid" in text else out.view(-1).sigmoid()
    decided = (probability >= 0.5).long()
    assert last["val_accuracy"] == pytest.approx((decided == y).double().mean().item(), abs=1e-6)
    assert last["val_f1"] == pytest.approx(_f1(decided, y), abs=1e-6)
    assert last["val_auroc"] == pytest.approx(_auroc(probability, y), abs=1e-5)
    assert last["val_accuracy"] > 0.7  # the teacher's labels are learnable; chance is about 0.5


def test_the_binary_threshold_moves_the_decisions(tmp_path):
    loaded, result = _run(tmp_path, BINARY_LOGIT, "train.threshold=0.9")
    out, y = _val_predictions(loaded, result.folder / "00_run")
    decided = (out.view(-1).sigmoid() >= 0.9).long()
    assert result.outcomes["run"].rows[-1]["val_f1"] == pytest.approx(_f1(decided, y), abs=1e-6)


def test_multi_label_runs_report_per_label_f1_and_accuracy(tmp_path):
    loaded, result = _run(tmp_path, MULTI_LABEL)
    last = result.outcomes["run"].rows[-1]
    out, y = _val_predictions(loaded, result.folder / "00_run")
    decided = (out.sigmoid() >= 0.5).long()
    per_label_f1 = [_f1(decided[:, i], y[:, i].long()) for i in range(4)]
    for i, value in enumerate(per_label_f1):
        assert last[f"val_f1_label{i}"] == pytest.approx(value, abs=1e-6)
    assert last["val_f1"] == pytest.approx(sum(per_label_f1) / 4, abs=1e-6)
    assert last["val_accuracy"] == pytest.approx((decided == y).double().mean().item(), abs=1e-6)


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_regression_with_several_targets_reports_rmse_mae_r2(tmp_path, loss):
    loaded, result = _run(tmp_path, REGRESSION.replace("loss: mse", f"loss: {loss}"))
    last = result.outcomes["run"].rows[-1]
    assert "accuracy" not in last and "val_accuracy" not in last
    out, y = _val_predictions(loaded, result.folder / "00_run")
    error = out - y
    assert last["val_rmse"] == pytest.approx(error.pow(2).mean().sqrt().item(), rel=1e-5)
    assert last["val_mae"] == pytest.approx(error.abs().mean().item(), rel=1e-5)
    r2 = 1 - error.pow(2).sum(0) / (y - y.mean(0)).pow(2).sum(0)
    assert last["val_r2"] == pytest.approx(r2.mean().item(), abs=1e-5)
    assert last["val_mape"] == pytest.approx((error.abs() / y.abs().clamp_min(1.17e-6)).mean().item(), rel=1e-4)
    summary = json.loads((result.folder / "results.json").read_text())["runs"][0]
    assert summary["monitor"] == "val_rmse" and summary["monitor_mode"] == "min"


def test_best_follows_a_lower_is_better_monitor(tmp_path):
    text = REGRESSION + "grid:\n  train.optimizer.lr: [0.0003, 0.03]\n"
    _, result = _run(tmp_path, text)
    runs = json.loads((result.folder / "results.json").read_text())["runs"]
    rmse = {run["dir"]: run["best_val_rmse"] for run in runs}
    assert len(set(rmse.values())) == 2
    assert best_run(result.folder)["dir"] == min(rmse, key=rmse.get)  # the highest would be the worse run
    # r2 is higher-is-better: monitoring it picks the same run from the other direction.
    _, by_r2 = _run(tmp_path / "r2", text, "train.monitor=val_r2")
    r2 = {run["dir"]: run["best_val_r2"] for run in json.loads((by_r2.folder / "results.json").read_text())["runs"]}
    assert best_run(by_r2.folder)["dir"] == max(r2, key=r2.get)


def test_confusion_matrix_files_hold_the_counts_of_the_final_model(tmp_path):
    text = spec_text("num_classes: 3", "- linear: {out_features: num_classes}", "loss: cross_entropy")
    loaded, result = _run(tmp_path, text, "tracking.images={every: 1}")
    run_dir = result.folder / "00_run"
    out, y = _val_predictions(loaded, run_dir)
    expected = torch.zeros(3, 3, dtype=torch.long)
    for true, predicted in zip(y.tolist(), out.argmax(1).tolist()):
        expected[true, predicted] += 1
    rows = list(csv.reader(open(run_dir / "confusion_matrix.csv")))
    assert rows[0] == ["true \\ predicted", "0", "1", "2"]
    assert [[int(v) for v in row[1:]] for row in rows[1:]] == expected.tolist()
    normalized = list(csv.reader(open(run_dir / "confusion_matrix_normalized.csv")))
    assert [float(v) for v in normalized[1][1:]] == pytest.approx((expected[0] / expected[0].sum()).tolist(), abs=1e-6)
    with Image.open(run_dir / "confusion_matrix.png") as image:
        assert image.format == "PNG" and image.width > 100
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"images": 0})
    events.Reload()
    assert {"confusion_matrix/val", "confusion_matrix/test"} <= set(events.Tags()["images"])
    assert [e.step for e in events.Images("confusion_matrix/val")] == [1, 2, 3]


@pytest.mark.parametrize("images, steps", [
    ("true", None),  # the default (auto): a run of seconds gets none, not even at its end
    ("{every: 2}", [2, 4, 6, 7]),
    ("false", None),
])
def test_confusion_images_go_to_tensorboard_as_often_as_tracking_images_says(tmp_path, images, steps):
    """The picture of the final matrix in the run folder comes with the last epoch's image; the
    tables always."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    text = spec_text("num_classes: 3", "- linear: {out_features: num_classes}", "loss: cross_entropy")
    _, result = _run(tmp_path, text, "train.epochs=7", f"tracking.images={images}")
    events = EventAccumulator(str(result.folder / "00_run"), size_guidance={"images": 0})
    events.Reload()
    if steps is None:
        assert "confusion_matrix/val" not in events.Tags()["images"]
    else:
        assert [e.step for e in events.Images("confusion_matrix/val")] == steps
    run_dir = result.folder / "00_run"
    assert (run_dir / "confusion_matrix.png").is_file() == (steps is not None)
    assert (run_dir / "confusion_matrix.csv").is_file() and (run_dir / "confusion_matrix_normalized.csv").is_file()


def test_without_a_validation_split_the_monitor_falls_back_to_test(tmp_path):
    logs: list[str] = []
    loaded = loads_spec(BINARY_LOGIT, "task.yaml", [f"tracking.dir={tmp_path}", "data.val_split=0",
                                                   "train.early_stopping={monitor: val_loss, patience: 1, min_delta: 10}"])
    result = run_grid(loaded, quiet=True, log=logs.append)
    outcome = result.outcomes["run"]
    assert outcome.status == "finished" and outcome.monitor.name == "test_accuracy"
    assert len(outcome.rows) == 2  # early stopping watched test_loss, and stopped: no gain of 10
    summary = json.loads((result.folder / "results.json").read_text())["runs"][0]
    assert summary["monitor"] == "test_accuracy" and summary["best_test_accuracy"] is not None
    assert best_run(result.folder)["dir"] == "00_run"  # export --best works without val_split


class _Probe(Tracker):
    """Sees what the runner does to the model: output dtype, gradient norm, memory format."""

    def __init__(self):
        self.dtypes, self.grad_norms, self.channels_last = [], [], []

    def first_batch(self, model, x):
        model.register_forward_hook(lambda module, args, out: self.dtypes.append(out.dtype))

    def model_state(self, step, model, last=False):
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        self.grad_norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())
        conv = next(p for p in model.parameters() if p.ndim == 4)
        self.channels_last.append(conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous())


CONV = """\
name: conv
seed: 3
data: {dataset: synthetic, input_shape: [2, 6, 6], num_classes: 3, size: 128, test_size: 32, batch_size: 32, transforms: []}
model: [conv: {out_channels: 4, kernel_size: 3}, relu, flatten, linear: {out_features: num_classes}]
train: {epochs: 2, optimizer: {name: sgd, lr: 0.5}}
"""


def _probe(tmp_path, *overrides) -> _Probe:
    # Histograms each epoch: the probe reads the gradients when the model state is logged.
    loaded = loads_spec(CONV, "task.yaml", [f"tracking.dir={tmp_path}", "tracking.histograms={every: 1}", *overrides])
    plan = loaded.runs()[0]
    prepared = prepare_data(plan.spec.data, plan.spec.seed, torch.device("cpu"), log=lambda _: None)
    probe = _Probe()
    outcome = train_run(plan, tmp_path / "run", prepared, RunContext(torch.device("cpu"), print, trackers=[probe]))
    assert outcome.status == "finished"
    return probe


def test_run_options_have_their_effect(tmp_path):
    plain = _probe(tmp_path / "plain")
    assert set(plain.dtypes) == {torch.float32} and not any(plain.channels_last)
    assert set(_probe(tmp_path / "bf16", "train.amp=bf16").dtypes) == {torch.bfloat16}
    assert all(_probe(tmp_path / "cl", "train.channels_last=true").channels_last)
    assert max(plain.grad_norms) > 0.05  # the bound below is not met by chance
    clipped = _probe(tmp_path / "clip", "train.grad_clip=0.05")
    assert max(clipped.grad_norms) <= 0.05 * (1 + 1e-5)


def test_an_unexpected_error_in_a_run_fails_that_run_only(tmp_path, monkeypatch):
    from modelspec.runner import loop

    real, calls = loop.train_epoch, []

    def broken(state, parts, feed, ctx):
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("a bug")
        return real(state, parts, feed, ctx)

    monkeypatch.setattr(loop, "train_epoch", broken)
    loaded = loads_spec(BINARY_LOGIT + "grid:\n  train.optimizer.lr: [0.01, 0.02]\n", "task.yaml",
                        [f"tracking.dir={tmp_path}"])
    result = run_grid(loaded, quiet=True, log=lambda _: None)
    statuses = {name: (o.status, o.reason) for name, o in result.outcomes.items()}
    assert statuses["lr=0.01"] == ("failed", "KeyError: 'a bug'")
    assert statuses["lr=0.02"][0] == "finished"


def test_metric_sums_survive_a_checkpoint_mid_epoch():
    """A checkpoint taken halfway through an epoch (weights_only, as resume reads it) continues to
    the same metrics, list states (auroc keeps every score) included."""
    import io

    from modelspec.compile.task import Targets, resolve_task
    from modelspec.runner.metrics import MetricSet

    spec = loads_spec(BINARY_LOGIT).spec
    task = resolve_task(spec.train, (1,), Targets("classes", 2), ("model",))
    out, y = torch.randn(50, 1, generator=torch.Generator().manual_seed(0)), torch.arange(50) % 2
    going, resumed = MetricSet(task, torch.device("cpu")), MetricSet(task, torch.device("cpu"))
    going.update(out[:25], y[:25], torch.tensor(0.5))
    buffer = io.BytesIO()
    torch.save(going.state_dict(), buffer)
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for metrics in (going, resumed):
        metrics.update(out[25:], y[25:], torch.tensor(0.25))
    assert resumed.compute() == going.compute()
    assert set(going.compute()) == {"loss", "accuracy", "auroc", "f1"}


def test_the_confusion_matrix_counts_every_chunk_when_read_and_through_a_checkpoint(monkeypatch):
    """Its labels are counted when the matrix is read (an image epoch, the run's end) or checkpointed,
    not every epoch: the counts are the bincount of every chunk's labels, a checkpoint taken between
    chunks holds them, and an epoch whose matrix was never read leaves nothing for the next."""
    import io

    from modelspec.compile.task import Targets, resolve_task
    from modelspec.runner import metrics as metrics_module
    from modelspec.runner.metrics import MetricSet

    monkeypatch.setattr(metrics_module, "CHUNK", 8)  # a chunk every batch of 10 below
    spec = loads_spec(BINARY_LOGIT).spec
    task = resolve_task(spec.train, (1,), Targets("classes", 2), ("model",))
    out, y = torch.randn(40, 1, generator=torch.Generator().manual_seed(1)), torch.arange(40) % 2
    expected = torch.bincount(y * 2 + task.labels(out), minlength=4).view(2, 2)
    going, resumed = MetricSet(task, torch.device("cpu"), True), MetricSet(task, torch.device("cpu"), True)
    for start in (0, 10):
        going.update(out[start:start + 10], y[start:start + 10], torch.tensor(0.5))
    assert len(going.labels) == 2  # kept, not yet counted
    buffer = io.BytesIO()
    torch.save(going.state_dict(), buffer)
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for metrics in (going, resumed):
        for start in (20, 30):
            metrics.update(out[start:start + 10], y[start:start + 10], torch.tensor(0.25))
        assert torch.equal(metrics.confusion_counts(), expected)
        metrics.reset()
        metrics.update(out[:10], y[:10], torch.tensor(0.5))
        metrics.compute()  # an epoch whose matrix is not read
        metrics.reset()
        metrics.update(out[10:20], y[10:20], torch.tensor(0.5))
        assert torch.equal(metrics.confusion_counts(),
                           torch.bincount(y[10:20] * 2 + task.labels(out[10:20]), minlength=4).view(2, 2))


def test_a_sets_confusion_counts_are_torchmetrics_and_load_its_checkpoint_state():
    """The counts a set keeps itself (one bincount, not a torchmetrics object a set) are what
    MulticlassConfusionMatrix counts, ties to the first highest score included, and a checkpoint
    written while torchmetrics counted (its state_dict, "confmat") loads."""
    from torchmetrics.classification import MulticlassConfusionMatrix

    from modelspec.compile.task import Targets, resolve_task
    from modelspec.runner.metrics import MetricSet

    spec = loads_spec(spec_text("num_classes: 5", "- linear: {out_features: 5}", "loss: cross_entropy")).spec
    task = resolve_task(spec.train, (5,), Targets("classes", 5), ("model",))
    generator = torch.Generator().manual_seed(4)
    out = torch.randint(0, 3, (300, 5), generator=generator).float()  # many ties
    y = torch.randint(0, 5, (300,), generator=generator)
    reference = MulticlassConfusionMatrix(5)
    reference.persistent(True)
    reference.update(out, y)
    metrics = MetricSet(task, torch.device("cpu"), True)
    metrics.update(out, y, torch.tensor(1.0))
    assert torch.equal(metrics.confusion_counts(), reference.compute())
    assert metrics.confusion_counts().sum() == 300
    state = metrics.state_dict()
    state["confusion"] = reference.state_dict()  # as a checkpoint of the torchmetrics days holds it
    loaded = MetricSet(task, torch.device("cpu"), True)
    loaded.load_state_dict(state)
    loaded.update(out[:7], y[:7], torch.tensor(1.0))
    reference.update(out[:7], y[:7])
    assert torch.equal(loaded.confusion_counts(), reference.compute())


def test_multi_label_sets_computed_together_give_their_per_label_columns_as_alone():
    """A multi-label task's default metrics (f1, accuracy and per-label f1) computed for a pack at
    once (MetricSet.compute_together): each set's values and column names as it computes them alone,
    with no torchmetrics object built."""
    from modelspec.compile.task import Targets, resolve_task
    from modelspec.runner.metrics import MetricSet

    spec = loads_spec(MULTI_LABEL).spec
    task = resolve_task(spec.train, (4,), Targets("multi_label", 4, ["a", "b c", "d", "e"]), ("model",))
    generator = torch.Generator().manual_seed(5)
    outs = torch.randn(3, 50, 4, generator=generator)
    ys = torch.randint(0, 2, (3, 50, 4), generator=generator).float()
    cpu = torch.device("cpu")

    def fed():
        sets = [MetricSet(task, cpu) for _ in range(3)]
        for metrics, out, y in zip(sets, outs, ys):
            metrics.update(out, y, torch.tensor(0.5))
        return sets

    alone = [m.compute() for m in fed()]
    sets = fed()
    assert MetricSet.compute_together(sets) == alone
    assert all(m._metrics is None for m in sets)
    assert list(alone[0]) == ["loss", "f1", "accuracy", "f1_a", "f1_b_c", "f1_d", "f1_e"]
    assert len({values["f1_a"] for values in alone}) == 3  # three runs, three values


@pytest.mark.parametrize("monitor", ["loss", "test_accuracy", "val_f1"])
def test_a_monitor_on_a_split_the_run_has_stays_on_it(tmp_path, monitor):
    """Only a monitor whose split is missing moves (val -> test -> train); `loss` is the training
    split's and stays there even though the run has a validation split."""
    _, result = _run(tmp_path, BINARY_LOGIT, f"train.monitor={monitor}")
    assert result.outcomes["run"].monitor.name == monitor
    summary = json.loads((result.folder / "results.json").read_text())["runs"][0]
    assert summary["monitor"] == monitor and summary[f"best_{monitor}"] is not None


@pytest.mark.parametrize("text, classes, together", [
    (spec_text("num_classes: 4", "- linear: {out_features: 4}", "loss: cross_entropy"), 4, True),  # accuracy
    (BINARY_LOGIT, 2, True),  # accuracy, auroc, f1
    (spec_text("num_classes: 4", "- linear: {out_features: 4}",
               "loss: cross_entropy\nmetrics: [accuracy, {name: top_k_accuracy, k: 2}]"), 4, True),
    # the same, were top-k accuracy without a batched form: set by set
    (spec_text("num_classes: 4", "- linear: {out_features: 4}",
               "loss: cross_entropy\nmetrics: [accuracy, {name: top_k_accuracy, k: 2}]"), 4, False),
])
def test_metric_sets_computed_together_give_what_each_computes_alone(monkeypatch, text, classes, together):
    """A pack's metric sets (MetricSet.compute_together): the values, and the confusion matrix read
    after them, bit for bit what each set computes alone; a set whose outputs already reached its
    torchmetrics objects (an epoch longer than a chunk) is computed alone within the same call."""
    from modelspec.compile.task import Targets, resolve_task
    from modelspec.runner import metrics as metrics_module
    from modelspec.runner.metrics import MetricPool, MetricSet
    from modelspec.spec.metrics import TopKAccuracy

    if not together:
        monkeypatch.setattr(TopKAccuracy, "batched", lambda self, kind, size, threshold: None)
    spec = loads_spec(text).spec
    width = classes if classes > 2 else 1
    task = resolve_task(spec.train, (width,), Targets("classes", classes), ("model",))
    generator = torch.Generator().manual_seed(2)
    outs = torch.randint(0, 3, (3, 60, width), generator=generator).float()  # ties: the first highest counts
    ys = torch.randint(0, classes, (3, 60), generator=generator)
    cpu = torch.device("cpu")

    def fed(make, chunk):
        monkeypatch.setattr(metrics_module, "CHUNK", chunk)
        sets = [make() for _ in range(3)]
        for metrics, out, y in zip(sets, outs, ys):
            for start in (0, 30):
                metrics.update(out[start:start + 30], y[start:start + 30], torch.tensor(0.5 + start))
        return sets

    alone = [m.compute() for m in fed(lambda: MetricSet(task, cpu, True), 4096)]
    pool = MetricPool()
    for chunk in (4096, 40):  # one chunk an epoch; then a flush after the second batch of each set
        sets = fed(lambda: pool.take(task, cpu, True), chunk)
        if chunk == 40:
            assert all(m.updated for m in sets)
        assert MetricSet.compute_together(sets) == alone
        # Together, no torchmetrics object was updated (nor copied: MetricSet.like); alone, each was.
        assert [m.updated for m in sets] == [chunk == 40 or not together] * 3
        assert all((m._metrics is None) == (chunk == 4096 and together) for m in sets)
        assert [m.compute() for m in sets] == alone  # read again: the same
        for metrics, out, y in zip(sets, outs, ys):
            assert torch.equal(metrics.confusion_counts(),
                               torch.bincount(y * classes + task.labels(out), minlength=classes**2).view(classes, classes))
        pool.give_back(*sets)
    assert alone[0]["accuracy"] != alone[1]["accuracy"]  # the runs differ: a mix-up would show
