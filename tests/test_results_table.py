"""The grid's results table: saved at most every few seconds, and less often as saving it slows."""

from __future__ import annotations

import json

from modelspec.tracking import results
from modelspec.tracking.results import ResultsTable


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_unforced_saves_wait_longer_as_a_save_takes_longer(tmp_path, monkeypatch):
    clock, saves = Clock(), []
    monkeypatch.setattr(results.time, "monotonic", clock)
    real_write = results.atomic_write_text

    def slow_write(path, text, **kwargs):  # a big table: each file takes a second to write
        clock.now += 1.0
        saves.append(path.name)
        real_write(path, text, **kwargs)

    monkeypatch.setattr(results, "atomic_write_text", slow_write)
    table = ResultsTable(tmp_path, ["lr"], ["a"])
    table.set_rows("a", [{"run": "a", "epoch": 1, "loss": 0.5, "lr": 0.1}])
    table.save(force=False)
    assert saves == ["results.csv", "results.json"]
    clock.now += 5.0  # the fixed minimum has passed, but a save took 2 s: the next waits 2 / 2 % = 100 s
    table.save(force=False)
    assert len(saves) == 2
    clock.now += 94.0
    table.save(force=False)
    assert len(saves) == 4
    table.set_rows("a", [{"run": "a", "epoch": 1, "loss": 0.5, "lr": 0.1}, {"run": "a", "epoch": 2, "loss": 0.4, "lr": 0.1}])
    table.save()  # forced (the grid's end): at once, with every row
    assert len(saves) == 6 and len(json.loads((tmp_path / "results.json").read_text())["rows"]) == 2


def test_a_quick_save_keeps_the_fixed_minimum(tmp_path, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(results.time, "monotonic", clock)
    table = ResultsTable(tmp_path, [], ["a"])
    table.save(force=False)
    assert table.between_saves == ResultsTable.MIN_SECONDS_BETWEEN_SAVES


def test_results_json_holds_the_table_one_row_a_line():
    """results.json and run.json: what json.dumps gives back when loaded, with each row on its own
    line (read by eye) and every other value on one line."""
    from pathlib import Path

    from modelspec.fileio import table_json

    rows = [{"run": "lr=0.1", "epoch": e, "loss": 0.5 / e, "best": None, "dir": Path("runs/a")} for e in (1, 2, 3)]
    document = {"format": 1, "columns": ["run", "epoch", "loss"], "rows": rows, "runs": [], "grid": {"lr": [0.1]},
                "note": 'a "quoted"\nline'}
    text = table_json(document)
    assert json.loads(text) == json.loads(json.dumps(document, default=str))
    lines = text.splitlines()
    assert [line.strip().rstrip(",") for line in lines if line.lstrip().startswith('{"run"')] == [
        json.dumps(row, default=str) for row in rows]
    assert len(lines) == 2 + len(document) + len(rows) + 1  # braces, one line a key, a row a line, the "]"
    assert table_json({}) == "{}" and json.loads(table_json({"rows": []})) == {"rows": []}
