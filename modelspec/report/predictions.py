"""One run's figures: its confusion matrix and per-class scores (confusion_matrix.csv), and from its
outputs.csv, ROC, precision-recall and calibration curves (binary), the calibration of the top class
(multi-class), or predicted against actual and the residuals (regression, in the data's units)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import curves
from .figures import colour
from .read import Confusion, Outputs

LABELLED_CLASSES = 40  # past this many classes, cells carry no written count (as tracking/confusion.py)
REGRESSION_TARGETS = 8  # targets drawn, at most (the first ones)


def confusion(matrix: Confusion) -> go.Figure:
    """Counts beside the row-normalised matrix (each row sums to 1: recall on the diagonal)."""
    names = matrix.names
    share = curves.row_normalised(matrix.counts)
    figure = make_subplots(rows=1, cols=2, subplot_titles=["counts", "normalised by row (true class)"],
                           horizontal_spacing=0.12)
    written = len(names) <= LABELLED_CLASSES
    for col, (z, text, scale) in enumerate(((matrix.counts, "%{z}", "Blues"), (share, "%{z:.2f}", "Blues")), start=1):
        figure.add_trace(go.Heatmap(
            z=z, x=names, y=names, colorscale=scale, showscale=False,
            texttemplate=text if written else None,
            hovertemplate="true %{y}<br>predicted %{x}<br>" + text + "<extra></extra>"), 1, col)
    figure.update_xaxes(title_text="predicted", type="category")
    figure.update_yaxes(title_text="true", type="category", autorange="reversed")
    side = min(900, 260 + 22 * len(names))
    figure.update_layout(height=side, margin={"t": 40})
    return figure


def per_class_table(matrix: Confusion) -> list[list[str]]:
    """Rows of (class, support, precision, recall, F1) for the page's table."""
    scores = curves.per_class(matrix.counts)
    return [[name, f"{int(scores['support'][i])}", *(f"{scores[k][i]:.3f}" for k in ("precision", "recall", "f1"))]
            for i, name in enumerate(matrix.names)]


def per_class_bars(matrix: Confusion) -> go.Figure:
    scores = curves.per_class(matrix.counts)
    figure = go.Figure([go.Bar(x=matrix.names, y=scores[k], name=k, marker={"color": colour(i)},
                               hovertemplate="%{x}: " + k + " %{y:.3f}<extra></extra>")
                        for i, k in enumerate(("precision", "recall", "f1"))])
    figure.update_layout(barmode="group", height=340, yaxis={"range": [0, 1]}, xaxis={"type": "category"},
                         margin={"t": 30})
    return figure


def binary_curves(outputs: Outputs) -> go.Figure:
    """ROC, precision-recall and calibration of the positive class's probability."""
    target, probability = (np.asarray(c) for c in (outputs.column("target"), outputs.column(outputs.columns[1])))
    fpr, tpr, auc = curves.roc(target, probability)
    recall, precision, average = curves.precision_recall(target, probability)
    figure = make_subplots(rows=1, cols=3, subplot_titles=[f"ROC (AUC {auc:.3f})",
                                                           f"precision-recall (AP {average:.3f})",
                                                           "calibration"])
    figure.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name="ROC", line={"color": colour(0)}), 1, 1)
    figure.add_trace(_diagonal(), 1, 1)
    figure.add_trace(go.Scatter(x=recall, y=precision, mode="lines", name="precision-recall",
                                line={"color": colour(1)}), 1, 2)
    figure.add_trace(go.Scatter(x=[0, 1], y=[target.mean()] * 2, mode="lines", name="chance",
                                line={"color": "grey", "dash": "dot"}), 1, 2)
    _reliability(figure, target, probability, col=3)
    for col, (x, y) in enumerate((("false positive rate", "true positive rate"), ("recall", "precision"),
                                  ("mean predicted probability", "observed frequency")), start=1):
        figure.update_xaxes(title_text=x, range=[0, 1], row=1, col=col)
        figure.update_yaxes(title_text=y, range=[0, 1.02], row=1, col=col)
    figure.update_layout(height=400, showlegend=False, margin={"t": 40})
    return figure


def top_class_calibration(outputs: Outputs) -> go.Figure:
    """How often the predicted class is right against the probability it was given."""
    table = np.asarray(outputs.rows)
    target, probabilities = table[:, 0].astype(int), table[:, 1:]
    confidence, correct = probabilities.max(1), (probabilities.argmax(1) == target).astype(float)
    figure = make_subplots(rows=1, cols=1)
    _reliability(figure, correct, confidence, col=1)
    figure.update_xaxes(title_text="probability of the predicted class", range=[0, 1])
    figure.update_yaxes(title_text="accuracy", range=[0, 1.02])
    figure.update_layout(height=380, width=520, showlegend=False, margin={"t": 30})
    return figure


def _reliability(figure: go.Figure, target: np.ndarray, probability: np.ndarray, col: int) -> None:
    mean, observed, samples = curves.calibration(target, probability)
    figure.add_trace(go.Scatter(x=mean, y=observed, mode="lines+markers", name="calibration",
                                customdata=samples, line={"color": colour(2)},
                                hovertemplate="predicted %{x:.3f}<br>observed %{y:.3f}<br>"
                                              "%{customdata} samples<extra></extra>"), 1, col)
    figure.add_trace(_diagonal(), 1, col)


def _diagonal() -> go.Scatter:
    return go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"color": "grey", "dash": "dot"}, hoverinfo="skip",
                      name="")


def regression(outputs: Outputs) -> go.Figure:
    """Per target: predicted against actual (the diagonal is perfect) and residuals against predicted."""
    names = [c.split(":", 1)[1] for c in outputs.columns if c.startswith("target:")][:REGRESSION_TARGETS]
    table = np.asarray(outputs.rows)
    keep = curves.sample(len(table))
    figure = make_subplots(rows=len(names), cols=2, vertical_spacing=0.3 / max(len(names), 1),
                           subplot_titles=[t for n in names for t in (f"{n}: predicted against actual",
                                                                      f"{n}: residual (predicted - actual)")])
    for row, name in enumerate(names, start=1):
        actual = table[keep, outputs.columns.index(f"target:{name}")]
        predicted = table[keep, outputs.columns.index(f"prediction:{name}")]
        low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
        figure.add_trace(go.Scatter(x=actual, y=predicted, mode="markers", marker={"size": 4, "color": colour(0),
                                                                                    "opacity": 0.6}), row, 1)
        figure.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", hoverinfo="skip",
                                    line={"color": "grey", "dash": "dot"}), row, 1)
        figure.add_trace(go.Scatter(x=predicted, y=predicted - actual, mode="markers",
                                    marker={"size": 4, "color": colour(1), "opacity": 0.6}), row, 2)
        figure.update_xaxes(title_text="actual", row=row, col=1)
        figure.update_yaxes(title_text="predicted", row=row, col=1)
        figure.update_xaxes(title_text="predicted", row=row, col=2)
        figure.add_hline(y=0, line={"color": "grey", "dash": "dot"}, row=row, col=2)
    figure.update_layout(height=340 * len(names), showlegend=False, margin={"t": 40})
    return figure
