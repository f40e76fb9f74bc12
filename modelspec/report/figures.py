"""The grid's figures: learning curves, the hyper-parameters against the monitor, a search's history
and its parameter importances. Each function returns a Plotly figure, or None where there is nothing
to draw (the page says why)."""

from __future__ import annotations

import json
import math
from typing import Any

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from ..tracking.overview import RunEntry, best_value
from .read import ReportData

PALETTE = qualitative.Plotly + qualitative.D3  # 20 colours; runs past 20 reuse them
LOG_SPAN = 100  # a positive numeric axis spanning this factor or more is drawn on a log scale


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def short(path: str) -> str:
    """An axis's last named part (`train.optimizer.lr` -> `lr`), as the results table names it."""
    return path.replace("]", "").replace("[", ".").split(".")[-1] if "." in path or "[" in path else path


def label(value: Any) -> str:
    """A grid value as the page shows it: numbers and strings as they read, the rest as JSON."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, str) else json.dumps(value)


# --------------------------------------------------------------------------------------------------
# learning curves


def _monitored_metric(data: ReportData) -> str | None:
    """The monitor's metric without its split (val_accuracy -> accuracy), or None for the loss."""
    for run in data.grid.runs:
        monitor = run.summary.get("monitor")
        if isinstance(monitor, str):
            metric = monitor.split("_", 1)[1] if monitor.startswith(("val_", "test_", "train_")) else monitor
            return None if metric == "loss" else metric
    return None


def learning_curves(data: ReportData) -> go.Figure | None:
    """Loss and the monitor's metric per epoch, training solid and validation dashed, one colour a
    run; clicking a run in the legend hides or shows all its lines."""
    metric = _monitored_metric(data)
    panels = ["loss", metric] if metric else ["loss"]
    runs = [run for run in data.grid.runs if data.rows.get(run.name)]
    if not runs:
        return None
    figure = make_subplots(rows=1, cols=len(panels), subplot_titles=panels)
    for i, run in enumerate(runs):
        rows = data.rows[run.name]
        shown = False
        for col, name in enumerate(panels, start=1):
            for key, dash in ((name, "solid"), (f"val_{name}", "dash")):
                points = [(row["epoch"], row[key]) for row in rows if _finite(row.get(key))]
                if not points:
                    continue
                epochs, values = zip(*points)
                figure.add_trace(go.Scatter(
                    x=epochs, y=values, mode="lines+markers", name=run.name, legendgroup=run.name,
                    showlegend=not shown, line={"color": colour(i), "dash": dash},
                    hovertemplate=f"{run.name}<br>{key}: %{{y:.4g}}<br>epoch %{{x}}<extra></extra>"), 1, col)
                shown = True
    figure.update_xaxes(title_text="epoch")
    figure.update_layout(height=420, legend_title_text="run (solid: training, dashed: validation)",
                         margin={"t": 40})
    return figure


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --------------------------------------------------------------------------------------------------
# the hyper-parameters against the monitor


def _scored(data: ReportData) -> list[tuple[RunEntry, float]]:
    """Runs with a best monitored value (finished or pruned), with it."""
    return [(run, value) for run in data.grid.runs if (value := best_value(run.summary)) is not None]


def _dimension(path: str, values: list[Any]) -> dict[str, Any]:
    """One parallel-coordinates axis: numbers as they are (log10 where they span LOG_SPAN or more),
    anything else as categories at ticks 0, 1, 2..."""
    numeric = all(_finite(v) for v in values)
    if numeric and min(values) > 0 and max(values) / min(values) >= LOG_SPAN:
        ticks = sorted(set(values))
        return {"label": f"{short(path)} (log)", "values": [math.log10(v) for v in values],
                "tickvals": [math.log10(v) for v in ticks], "ticktext": [label(v) for v in ticks]}
    if numeric:
        return {"label": short(path), "values": values}
    categories = list(dict.fromkeys(label(v) for v in values))
    return {"label": short(path), "values": [categories.index(label(v)) for v in values],
            "tickvals": list(range(len(categories))), "ticktext": categories}


def parallel_coordinates(data: ReportData) -> go.Figure | None:
    """One line per run through its grid or search values, ending at its best monitored value and
    coloured by it."""
    scored = _scored(data)
    if len(scored) < 2 or not data.axes:
        return None
    monitor = scored[0][0].summary.get("monitor")
    dimensions = [_dimension(path, [run.summary.get("values", {}).get(path) for run, _ in scored])
                  for path in data.axes]
    values = [value for _, value in scored]
    dimensions.append({"label": f"best {monitor}", "values": values})
    line = {"color": values, "colorscale": "Viridis", "showscale": True,
            "reversescale": scored[0][0].summary.get("monitor_mode") == "min"}  # the better, the yellower
    figure = go.Figure(go.Parcoords(line=line, dimensions=dimensions))
    figure.update_layout(height=420, margin={"l": 80, "r": 80, "t": 60})
    return figure


def per_axis(data: ReportData) -> go.Figure | None:
    """The best monitored value against each axis, one panel an axis (categories as they are)."""
    scored = _scored(data)
    if not scored or not data.axes:
        return None
    monitor = scored[0][0].summary.get("monitor")
    figure = make_subplots(rows=1, cols=len(data.axes), shared_yaxes=True,
                           subplot_titles=[short(path) for path in data.axes])
    for col, path in enumerate(data.axes, start=1):
        xs = [run.summary.get("values", {}).get(path) for run, _ in scored]
        numeric = all(_finite(x) for x in xs)
        figure.add_trace(go.Scatter(
            x=xs if numeric else [label(x) for x in xs], y=[value for _, value in scored], mode="markers",
            text=[run.name for run, _ in scored], marker={"size": 10, "color": colour(col - 1)}, showlegend=False,
            hovertemplate="%{text}<br>%{x}: " + monitor + " %{y:.4g}<extra></extra>"), 1, col)
        if numeric and min(xs) > 0 and max(xs) / min(xs) >= LOG_SPAN:
            figure.update_xaxes(type="log", row=1, col=col)
        elif not numeric:
            figure.update_xaxes(type="category", row=1, col=col)
    figure.update_yaxes(title_text=f"best {monitor}", row=1, col=1)
    figure.update_layout(height=360, margin={"t": 40})
    return figure


# --------------------------------------------------------------------------------------------------
# a search


def search_history(search: dict[str, Any]) -> go.Figure | None:
    """Each trial's value by its number, marked by its state, and the best so far as a line."""
    trials = [t for t in search.get("trials") or [] if isinstance(t, dict) and isinstance(t.get("number"), int)]
    if not trials:
        return None
    figure = go.Figure()
    for i, state in enumerate(dict.fromkeys(t.get("state") for t in trials)):
        mine = [t for t in trials if t.get("state") == state and _finite(t.get("value"))]
        if mine:
            figure.add_trace(go.Scatter(
                x=[t["number"] for t in mine], y=[t["value"] for t in mine], mode="markers", name=str(state),
                text=[t.get("run") for t in mine], marker={"size": 9, "color": colour(i)},
                hovertemplate="trial %{x}: %{text}<br>value %{y:.4g}<extra></extra>"))
    best = [t for t in trials if _finite(t.get("best_so_far"))]
    if best:
        figure.add_trace(go.Scatter(x=[t["number"] for t in best], y=[t["best_so_far"] for t in best],
                                    mode="lines", line={"shape": "hv", "color": "black"}, name="best so far"))
    figure.update_layout(height=380, xaxis_title="trial", yaxis_title=f"value ({search.get('direction', '')})",
                         margin={"t": 30})
    return figure


def importance(search: dict[str, Any]) -> go.Figure | None:
    """Each axis's share of the objective's variance (Optuna's importance), largest at the top."""
    shares = search.get("importance")
    if not isinstance(shares, dict) or not shares:
        return None
    ranked = sorted(shares.items(), key=lambda item: item[1])
    figure = go.Figure(go.Bar(x=[v for _, v in ranked], y=[k for k, _ in ranked], orientation="h",
                              marker={"color": colour(0)}, hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    figure.update_layout(height=120 + 40 * len(ranked), xaxis_title="share of the variance",
                         margin={"t": 30, "l": 200})
    return figure
