"""What a grid's runs share with the runs before them: metric sets (runner/metrics.py: MetricPool),
the network's shape pass (runner/loop.py: _network_shapes), and the objects made before the grid,
left out of the cycle collector's walks (runner/memory.py: frozen_heap)."""

from __future__ import annotations

import gc
import json

from modelspec.load import loads_spec
import torch

from modelspec.runner import loop, metrics, run_grid

from _reliability import TINY

SPEC = TINY.replace("lr: [0.05, 0.02]", "lr: [0.05, 0.02, 0.01]").replace("epochs: 2", "epochs: 3")


def _grid(tmp_path, name: str, monkeypatch, pool: bool) -> tuple[list[dict], int]:
    built = []
    real_init, real_take = metrics.MetricSet.__init__, metrics.MetricPool.take

    def init(self, *args, **kwargs):
        built.append(1)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(metrics.MetricSet, "__init__", init)
    if not pool:
        monkeypatch.setattr(metrics.MetricPool, "take", lambda self, *args, **kwargs: metrics.MetricSet(*args, **kwargs))
    loaded = loads_spec(SPEC, "tiny.yaml", [f"tracking.dir={tmp_path / name}"])
    result = run_grid(loaded, quiet=True, log=lambda _: None)
    monkeypatch.setattr(metrics.MetricSet, "__init__", real_init)
    monkeypatch.setattr(metrics.MetricPool, "take", real_take)
    rows = json.loads((result.folder / "results.json").read_text())["rows"]
    return [{k: v for k, v in row.items() if "duration" not in k} for row in rows], len(built)


def test_runs_reuse_metric_sets_and_report_what_fresh_ones_would(tmp_path, monkeypatch):
    pooled, built_pooled = _grid(tmp_path, "pooled", monkeypatch, pool=True)
    fresh, built_fresh = _grid(tmp_path, "fresh", monkeypatch, pool=False)
    assert built_fresh == 3 * 3  # train, val and test sets for each of the three runs
    # The first run's three (each builds its torchmetrics objects when first used), taken up by the next two.
    assert built_pooled == 3
    assert len(pooled) == 9 and pooled == fresh  # every loss and accuracy of every epoch, exactly


def test_runs_of_one_network_share_its_shape_pass_and_others_get_their_own(tmp_path, monkeypatch):
    passes, real = [], loop.infer_shapes

    def spy(layers, input_shape, *args, **kwargs):
        passes.append(layers[0].out_features)
        return real(layers, input_shape, *args, **kwargs)

    monkeypatch.setattr(loop, "infer_shapes", spy)
    monkeypatch.setattr(loop, "_SHAPES", {})
    text = (SPEC.replace("model:\n  - linear: {out_features: 16}\n  - relu\n  - linear: {out_features: num_classes}\n",
                         "networks:\n  wide: [{linear: {out_features: 16}}, relu, {linear: {out_features: num_classes}}]\n"
                         "  narrow: [{linear: {out_features: 12}}, relu, {linear: {out_features: num_classes}}]\n")
            .replace("train.optimizer.lr: [0.05, 0.02, 0.01]", "train.optimizer.lr: [0.05, 0.02]\n  train.network: [wide, narrow]"))
    result = run_grid(loads_spec(text, "tiny.yaml", [f"tracking.dir={tmp_path}"]), quiet=True, log=lambda _: None)
    assert sorted(passes) == [12, 16]  # four runs, two networks
    sizes = {}
    for run_dir in sorted(p for p in result.folder.iterdir() if p.is_dir()):
        weights = torch.load(run_dir / "weights.pt", weights_only=True)["state_dict"]
        sizes[run_dir.name] = weights["0.weight"].shape[0]
    assert sorted(sizes.values()) == [12, 12, 16, 16]


def test_what_lived_before_the_grid_is_frozen_while_it_trains_and_collectable_after(tmp_path, monkeypatch):
    seen, real = [], loop.train_run

    def spy(*args, **kwargs):
        seen.append(gc.get_freeze_count())
        return real(*args, **kwargs)

    monkeypatch.setattr("modelspec.runner.grid.train_run", spy)
    assert gc.get_freeze_count() == 0
    run_grid(loads_spec(SPEC, "tiny.yaml", [f"tracking.dir={tmp_path}"]), quiet=True, log=lambda _: None)
    assert len(seen) == 3 and all(count > 100_000 for count in seen)  # every run trained with the heap frozen
    assert gc.get_freeze_count() == 0  # and the grid gave the collector back everything it froze
