"""What a run writes to TensorBoard: histograms (how often: test_cadence.py), HParams, checksums."""

from __future__ import annotations

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from modelspec.tracking.histograms import BINS as HISTOGRAM_BINS
from modelspec.tracking import TrackedRun
from modelspec.tracking.tensorboard import TensorBoardTracker


def _histograms(folder) -> EventAccumulator:
    events = EventAccumulator(str(folder), size_guidance={"histograms": 0})
    events.Reload()
    return events


def _logged(tmp_path, model: nn.Module, step: int) -> EventAccumulator:
    tracker = TensorBoardTracker(TrackedRun(tmp_path, {}))
    tracker.start(None, [])
    tracker.model_state(step, model)
    tracker.finish({}, {})
    return _histograms(tmp_path)


def test_a_histogram_counts_every_value_of_the_parameter_and_its_gradient(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(32, 10)
    model(torch.randn(4, 32)).sum().backward()
    events = _logged(tmp_path, model, 5)
    weight = events.Histograms("params/weight")[0].histogram_value
    assert weight.num == 320 and sum(weight.bucket) == 320 and len(weight.bucket) <= HISTOGRAM_BINS + 1
    assert weight.min == pytest.approx(model.weight.min().item()) and weight.max == pytest.approx(model.weight.max().item())
    assert weight.sum == pytest.approx(model.weight.sum().item(), abs=1e-4)
    assert weight.sum_squares == pytest.approx(model.weight.square().sum().item(), rel=1e-5)
    # The buckets are the 64 even bins from min to max (right edges), behind an empty one at min.
    assert weight.bucket_limit[0] == pytest.approx(weight.min) and weight.bucket_limit[-1] == pytest.approx(weight.max)
    expected = torch.histc(model.weight.detach(), HISTOGRAM_BINS, weight.min, weight.max)
    assert list(weight.bucket) == [0.0, *expected.tolist()]
    grad = events.Histograms("grads/bias")[0].histogram_value
    assert grad.num == 10 and grad.sum == pytest.approx(model.bias.grad.sum().item(), abs=1e-4)


def test_a_parameter_gone_to_nan_is_drawn_from_its_finite_values(tmp_path):
    model = nn.Linear(4, 3)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
        model.weight[1, 1] = float("inf")
    events = _logged(tmp_path, model, 5)
    assert events.Histograms("params/weight")[0].histogram_value.num == 10


def test_a_constant_parameter_gets_one_bin_around_its_value(tmp_path):
    model = nn.Linear(4, 3)
    nn.init.zeros_(model.bias)
    bias = _logged(tmp_path, model, 1).Histograms("params/bias")[0].histogram_value
    assert (bias.min, bias.max, bias.num, sum(bias.bucket)) == (0, 0, 3, 3)
    assert bias.bucket_limit[0] == -0.5 and bias.bucket_limit[-1] == 0.5  # as NumPy's histogram bins it


def test_event_records_carry_tensorboards_own_checksum():
    """The C checksum that replaces TensorBoard's pure-Python one gives the same value (its reader
    verifies it: every test that reads events back reads records checksummed this way)."""
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    from modelspec.tracking.tensorboard import _masked_crc32c

    generator = torch.Generator().manual_seed(0)
    for size in (0, 1, 8, 12, 1500, 20_000):
        data = bytes(torch.randint(0, 256, (size,), generator=generator, dtype=torch.uint8).tolist())
        assert _masked_crc32c(data) == masked_crc32c(data), size


def test_hparams_go_into_the_runs_own_event_file(tmp_path):
    """The HParams tab's data (each run's grid values and best/final metrics) in the run's one event
    file: SummaryWriter.add_hparams would open a second writer and file per run for it."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    tracker = TensorBoardTracker(TrackedRun(tmp_path, {}, {"lr": 0.1}))
    tracker.start(None, [])
    tracker.log(1, {"epoch": 1, "loss": 0.5, "lr": 0.1})
    tracker.finish({"lr": 0.1, "network": "bn"}, {"best_val_accuracy": 0.9, "final_loss": 0.2, "best_epoch": 1})
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 1
    events = _histograms(tmp_path)
    assert events.Scalars("hparam/best_val_accuracy")[0].value == pytest.approx(0.9)
    start = events.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    values = plugin_data_pb2.HParamsPluginData.FromString(start).session_start_info.hparams
    assert values["lr"].number_value == 0.1 and values["network"].string_value == "bn"


def test_tensors_counted_together_give_each_its_own_histogram(monkeypatch):
    from modelspec.tracking import histograms as module

    generator = torch.Generator().manual_seed(1)
    tensors = [torch.randn(64, 32, generator=generator), torch.zeros(10), torch.full((3,), float("nan")),
               torch.randn(5, generator=generator) * 100, torch.empty(0)]
    together = module.histograms(tensors)
    monkeypatch.setattr(module, "CHUNK", 16)  # every tensor counted alone
    assert module.histograms(tensors) == together
    weights, zeros, nan, scaled, empty = together
    assert nan is None and empty is None
    assert weights.count == 2048 and weights.counts == torch.histc(tensors[0], 64, weights.low, weights.high).tolist()
    assert (zeros.low, zeros.high, zeros.count, zeros.edges[0], zeros.edges[-1]) == (0, 0, 10, -0.5, 0.5)
    assert scaled.total == pytest.approx(tensors[3].sum().item(), rel=1e-5)


def test_events_are_written_on_the_adding_thread_and_a_reopened_runs_file_sorts_after(tmp_path):
    """No writer thread per run (a pack of 64 runs held 64 of them), each record on disk as it is
    added, and a second writer in the same folder within the same second reads after the first."""
    import threading

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from modelspec.tracking.event_writer import caller_thread_writer

    threads = threading.active_count()
    first = caller_thread_writer(str(tmp_path))
    for step in range(1, 4):
        first.add_scalar("loss/train", 1.0 / step, step)
    assert threading.active_count() == threads
    on_disk = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    on_disk.Reload()  # before close: nothing waits in a buffer
    assert [e.step for e in on_disk.Scalars("loss/train")] == [1, 2, 3]
    first.close()
    for _ in range(12):  # uids past 9: name order must not follow the counter's digits
        caller_thread_writer(str(tmp_path / "other")).close()
    second = caller_thread_writer(str(tmp_path), purge_step=3)  # a resume from step 2's checkpoint
    second.add_scalar("loss/train", 0.25, 3)
    second.close()
    names = sorted(p.name for p in tmp_path.glob("events.out.tfevents.*"))
    assert len(names) == 2 and int(names[1].split(".")[3]) > int(names[0].split(".")[3])
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("loss/train")] == [(1, 1.0), (2, 0.5), (3, 0.25)]
