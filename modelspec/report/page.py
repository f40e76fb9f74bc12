"""The report page: one HTML file with everything inside it, to open by double-click, offline.

Plotly's bundled plotly.js is inlined once in the page's head; each figure is a div and a call to
`Plotly.newPlot` (`to_html(include_plotlyjs=False)`). The results table sorts by a click on a column
head with a few lines of script. A script error, ours or plotly's, is written into the page (the
`js-errors` box), where a person sees it and the browser test reads it.
"""

from __future__ import annotations

import html
import math
from datetime import datetime
from typing import Any, Iterable

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from ..errors import SpecError, format_path
from ..tracking.overview import ABSENT, best_value, spec_diff
from . import figures, predictions
from .read import ReportData, RunDetail, run_spec

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em 2em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
table.sortable th { cursor: pointer; user-select: none; } table.sortable th:hover { background: #e6e6e6; }
tr.finished td.status { color: #1a7f37; } tr.failed td.status { color: #c62828; font-weight: bold; }
tr.pruned td.status, tr.stopped td.status { color: #b26a00; } tr.best { background: #fff8d6; }
td.differs { background: #fdecea; }
.note { color: #555; font-style: italic; margin: 0.2em 0; }
#js-errors { color: #c62828; white-space: pre-wrap; }
"""

# Before anything else runs: every script error (a failed Plotly.newPlot rejects its promise), written
# where it is seen.
CATCH_ERRORS = """
function sayError(text) {
  var box = document.getElementById('js-errors');
  if (box) { box.textContent += 'JavaScript error: ' + text + '\\n'; }
}
window.onerror = function (message, source, line) { sayError(message + ' (' + source + ':' + line + ')'); };
window.addEventListener('unhandledrejection', function (event) { sayError(String(event.reason)); });
"""

# A click on a column head sorts the rows by it (numbers by value, then text); a second click reverses.
SORT_TABLES = """
document.querySelectorAll('table.sortable th').forEach(function (head) {
  head.addEventListener('click', function () {
    var column = head.cellIndex;
    var body = head.closest('table').tBodies[0], rows = Array.from(body.rows);
    var down = head.dataset.order !== 'asc';
    head.dataset.order = down ? 'asc' : 'desc';
    var key = function (row) { var cell = row.cells[column]; return cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent; };
    rows.sort(function (a, b) {
      var x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
      var order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : (isNaN(nx) - isNaN(ny)) || x.localeCompare(y);
      return down ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""

CONFIG = {"displaylogo": False, "responsive": True}


def build_page(data: ReportData) -> str:
    grid = data.grid
    body = [_heading(data), _results_table(data), *_curves(data), *_hyperparameters(data), *_search(data),
            *(part for detail in data.details for part in _run_detail(detail)), *_spec_diff(data)]
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{_e(grid.name)}: modelspec report</title>",
        f"<style>{STYLE}</style>",
        f"<script>{CATCH_ERRORS}</script>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head>", "<body>", '<div id="js-errors"></div>', *body,
        f"<script>{SORT_TABLES}</script>", "</body>", "</html>", ""])


# --------------------------------------------------------------------------------------------------
# pieces of HTML


def _e(value: Any) -> str:
    return html.escape(str(value))


def _figure(figure: go.Figure | None, missing: str) -> str:
    if figure is None:
        return _note(missing)
    figure.update_layout(template="plotly_white")
    return figure.to_html(full_html=False, include_plotlyjs=False, config=CONFIG)


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _table(head: list[str], rows: Iterable[str], sortable: bool = False) -> str:
    cells = "".join(f'<th class="text">{_e(h)}</th>' for h in head)
    return (f'<table{" class=sortable" if sortable else ""}><thead><tr>{cells}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _number(value: Any) -> str:
    """A cell of a number, its value kept for sorting (empty cells sort last)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return '<td data-sort="">' + ("" if value is None else _e(value)) + "</td>"
    text = str(value) if isinstance(value, int) else _float(value)
    return f'<td data-sort="{value if math.isfinite(value) else ""}">{_e(text)}</td>'


def _float(value: float) -> str:
    """4 decimals, or 4 significant digits where they would hide it (a loss of 2e-05, a lr of 1e+30)."""
    return f"{value:.3e}" if value and not 1e-3 <= abs(value) < 1e5 else f"{value:.4f}"


# --------------------------------------------------------------------------------------------------
# sections


def _heading(data: ReportData) -> str:
    grid, best = data.grid, data.grid.best()
    counts = ", ".join(f"{n} {status}" for status, n in grid.counts().items()) or "no runs"
    started = grid.started.strftime("%Y-%m-%d %H:%M:%S") if grid.started else "unknown"
    lines = [f"<h1>{_e(grid.name)}</h1>",
             f"<p>{_e(grid.folder)} &middot; started {_e(started)} &middot; {len(grid.runs)} runs: {_e(counts)}</p>"]
    if best is not None:
        lines.append(f"<p>best run: <b>{_e(best.name)}</b>, {_e(best.summary.get('monitor'))} "
                     f"{best_value(best.summary):.4f} at epoch {_e(best.summary.get('best_epoch'))}</p>")
    lines += [_note(note) for note in data.notes]
    lines.append(f'<p class="note">made by modelspec report on {datetime.now():%Y-%m-%d %H:%M}</p>')
    return "\n".join(lines)


def _results_table(data: ReportData) -> str:
    runs = data.grid.runs
    monitor = next((r.summary["monitor"] for r in runs if isinstance(r.summary.get("monitor"), str)), None)
    tests = list(dict.fromkeys(k for r in runs for k in r.summary if k.startswith("final_test_")))
    head = ["run", "status", "reason", "epochs", *(figures.short(a) for a in data.axes)]
    if monitor:
        head += [f"best {monitor}", "best epoch", f"final {monitor}"]
    head += [k.removeprefix("final_") for k in tests]
    best = data.grid.best()
    lines = []
    for run in runs:
        values = run.summary.get("values") or {}
        cells = [f'<td class="text">{_e(run.name or "(never asked)")}</td>',
                 f'<td class="text status">{_e(run.status)}</td>',
                 f'<td class="text">{_e(run.summary.get("reason") or "")}</td>', _number(run.summary.get("epochs")),
                 *(_number(values[a]) if isinstance(values.get(a), (int, float)) else
                   f'<td class="text">{_e(figures.label(values[a])) if a in values else ""}</td>' for a in data.axes)]
        if monitor:
            cells += [_number(best_value(run.summary)), _number(run.summary.get("best_epoch")),
                      _number(run.summary.get(f"final_{monitor}"))]
        cells += [_number(run.summary.get(k)) for k in tests]
        classes = f"{_e(run.status.replace(' ', '-'))}{' best' if run is best else ''}"
        lines.append(f'<tr class="{classes}">{"".join(cells)}</tr>')
    return "<h2>Runs</h2>" + _note("Click a column's head to sort by it.") + _table(head, lines, sortable=True)


def _curves(data: ReportData) -> list[str]:
    return ["<h2>Learning curves</h2>",
            _note("Click a run in the legend to hide or show it; double-click to show it alone."),
            _figure(figures.learning_curves(data), "no run has logged an epoch yet")]


def _hyperparameters(data: ReportData) -> list[str]:
    if not data.axes:
        return []
    return ["<h2>Hyper-parameters and the monitor</h2>",
            _figure(figures.parallel_coordinates(data), "fewer than two runs have a monitored value: no lines to compare"),
            _figure(figures.per_axis(data), "no run has a monitored value yet")]


def _search(data: ReportData) -> list[str]:
    if data.search is None:
        return []
    search = data.search
    best = search.get("best") or {}
    parts = ["<h2>Search</h2>",
             f"<p>sampler {_e(search.get('sampler'))}, pruner {_e(search.get('pruner'))}, seed {_e(search.get('seed'))}, "
             f"{_e(search.get('direction'))}</p>"]
    if best:
        parts.append(f"<p>best trial: <b>{_e(best.get('run'))}</b> ({_e(best.get('value'))}); retrain it with "
                     f"<code>{_e(' '.join(best.get('set') or []))}</code></p>")
    parts += ["<h3>Optimisation history</h3>", _figure(figures.search_history(search), "no trial has ended yet"),
              "<h3>Parameter importance</h3>",
              _figure(figures.importance(search), "no importances: they need two finished trials and two axes, "
                                                  "and are computed when the search ends")]
    return parts


def _run_detail(detail: RunDetail) -> list[str]:
    run = detail.run
    value = best_value(run.summary)
    scored = (f"best {run.summary.get('monitor')} {_float(value)} at epoch {run.summary.get('best_epoch')}"
              if value is not None else "no monitored value")
    reason = f" ({run.summary['reason']})" if run.summary.get("reason") else ""
    parts = [f"<h2>Run {_e(run.name)}</h2>",
             f"<p>{_e(run.status + reason)}; {_e(scored)}"
             + ("; the plots below are of its final model on the monitor's split" if run.status in ("finished", "pruned")
                else "") + "</p>"]
    parts += [_note(note) for note in detail.notes]
    if detail.confusion is not None:
        parts += ["<h3>Confusion matrix</h3>", _figure(predictions.confusion(detail.confusion), ""),
                  "<h3>Per class</h3>",
                  _table(["class", "support", "precision", "recall", "F1"],
                         ("<tr>" + "".join(f'<td class="text">{_e(c)}</td>' if i == 0 else f"<td>{_e(c)}</td>"
                                           for i, c in enumerate(row)) + "</tr>"
                          for row in predictions.per_class_table(detail.confusion))),
                  _figure(predictions.per_class_bars(detail.confusion), "")]
    outputs = detail.outputs
    if outputs is None or not outputs.rows:
        return parts + ([_note("its outputs.csv holds no rows")] if outputs is not None else [])
    if not outputs.classification:
        return parts + ["<h3>Predictions, in the data's units</h3>", _figure(predictions.regression(outputs), "")]
    if len(outputs.columns) == 2:
        return parts + ["<h3>ROC, precision-recall and calibration</h3>", _figure(predictions.binary_curves(outputs), "")]
    return parts + ["<h3>Calibration of the predicted class</h3>",
                    _figure(predictions.top_class_calibration(outputs), "")]


def _spec_diff(data: ReportData) -> list[str]:
    """Every spec path where a run's resolved spec differs from the best run's (else the first's)."""
    grid = data.grid
    runs = [run for run in grid.runs if run.summary]
    if len(runs) < 2:
        return []
    reference = grid.best() or runs[0]
    try:
        base = run_spec(grid, reference)
        diffs = {run.dir: {path: (a, b) for path, a, b in spec_diff(base, run_spec(grid, run))} for run in runs}
    except SpecError as exc:
        return ["<h2>Spec differences</h2>", _note(str(exc))]
    paths = list(dict.fromkeys(path for found in diffs.values() for path in found))
    if not paths:
        return ["<h2>Spec differences</h2>", _note("the runs' specs are the same")]
    reference_value = {path: next(d[path][0] for d in diffs.values() if path in d) for path in paths}
    rows = []
    for run in [reference, *(r for r in runs if r is not reference)]:
        cells = [f'<td class="text">{_e(run.name)}</td>']
        for path in paths:
            differs = path in diffs[run.dir]
            value = diffs[run.dir][path][1] if differs else reference_value[path]
            text = repr(value) if value is ABSENT else figures.label(value)
            cells.append(f'<td class="text{" differs" if differs else ""}">{_e(text)}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return ["<h2>Spec differences</h2>",
            _note(f"each run's resolved spec against {reference.name}'s (first row); its differences are marked"),
            _table(["run", *(format_path(path) for path in paths)], rows, sortable=True)]
