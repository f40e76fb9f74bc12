"""A grid's runs take up the metric sets of the runs before them (runner/metrics.py: MetricPool)."""

from __future__ import annotations

import json

from modelspec.load import loads_spec
from modelspec.runner import metrics, run_grid

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
    assert built_pooled == 3  # the first run's, taken up by the next two
    assert len(pooled) == 9 and pooled == fresh  # every loss and accuracy of every epoch, exactly
