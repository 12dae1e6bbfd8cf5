"""Plotly figures for the Train and Evaluate pages, built from numpy arrays.

One look everywhere: the same template, margins, fonts and the colours of ``ui.COLOURS`` (training
blue, validation orange, baseline grey). Series longer than a few thousand points are thinned
before they reach the browser (STACK.md: plotly with numpy arrays stays fast up to there).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from builder.evaluate import downsample
from pages.components.i18n import t, tm
from pages.components.ui import COLOURS

MAX_LINE_POINTS = 2_000  # points per curve sent to the browser
MAX_SCATTER_POINTS = 4_000  # dots per scatter plot
HEIGHT = 340
LIVE_TRACE = "Training (live)"  # the running loss of the epoch in progress

_FONT = dict(family="Inter, Source Sans Pro, sans-serif", size=13, color="#3C4043")


def layout(fig: go.Figure, x_title: str, y_title: str, height: int = HEIGHT) -> go.Figure:
    fig.update_layout(
        template="plotly_white", height=height, font=_FONT, hovermode="x unified",
        margin=dict(l=10, r=10, t=36, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0, title_text=""),
    )
    fig.update_xaxes(title_text=x_title, showline=True, linecolor="#DADCE0", gridcolor="#F1F3F4")
    fig.update_yaxes(title_text=y_title, showline=True, linecolor="#DADCE0", gridcolor="#F1F3F4")
    return fig


_WITH_UNITS = {"Actual value": "Actual value ({units})", "Predicted value": "Predicted value ({units})",
               "Actual minus predicted": "Actual minus predicted ({units})"}


def _titled(title: str, units: str = "") -> str:
    """An axis title with the target's units after it when known: "Actual value (kg)"."""
    return t(_WITH_UNITS[title], units=units) if units else t(title)


def thin(x: np.ndarray, y: np.ndarray, max_points: int = MAX_LINE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Evenly spaced points of a curve (first and last kept), at most ``max_points`` of them."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) <= max_points:
        return x, y
    idx = np.unique(np.linspace(0, len(x) - 1, max_points).round().astype(np.int64))  # (<= max_points,)
    return x[idx], y[idx]


def _as_array(values: Sequence[float] | np.ndarray | None) -> np.ndarray:
    return np.asarray(values if values is not None else [], dtype=np.float64)


def loss_figure(
    epochs: Sequence[float] | np.ndarray,
    train_loss: Sequence[float] | np.ndarray,
    val_loss: Sequence[float] | np.ndarray,
    batch_x: Sequence[float] | np.ndarray | None = None,
    batch_loss: Sequence[float] | np.ndarray | None = None,
    best_epoch: int | None = None,
) -> go.Figure:
    """Loss per epoch, training vs validation, plus the running batch loss of the live run.

    Args:
        epochs: finished epochs (1-based), one per point.
        train_loss, val_loss: the mean losses of those epochs.
        batch_x: fractional epochs of the running loss (0.5 = half way through epoch 1).
        batch_loss: the running mean training loss at those points; it moves before epoch 1 ends
            (a single point shows as a dot: a line needs two).
        best_epoch: marked with a dotted line (the model kept).
    """
    fig = go.Figure()
    bx, by = thin(_as_array(batch_x), _as_array(batch_loss))
    if len(bx):
        fig.add_trace(go.Scatter(x=bx, y=by, name=t(LIVE_TRACE), mode="lines" if len(bx) > 1 else "markers",
                                 line=dict(color=COLOURS["batch"], width=1.5),
                                 hovertemplate="%{y:.4g}"))
    x = _as_array(epochs)
    for name, values, colour in (("Training", train_loss, COLOURS["train"]),
                                 ("Validation", val_loss, COLOURS["validation"])):
        fig.add_trace(go.Scatter(x=x, y=_as_array(values), name=t(name), mode="lines+markers",
                                 line=dict(color=colour, width=2.5), marker=dict(size=6),
                                 hovertemplate="%{y:.4g}"))
    _mark_best(fig, best_epoch)
    layout(fig, t("Epoch"), t("Loss (lower is better)"))
    fig.update_xaxes(rangemode="tozero")
    return fig


def waiting_figure(message: str, height: int = 260) -> go.Figure:
    """Empty loss axes with a message: shows where the live curves will appear (and loads the
    chart library in the browser before training starts, so the first point shows sooner)."""
    fig = loss_figure([], [], [])
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(color=COLOURS["baseline"], size=13))
    fig.update_layout(height=height, showlegend=False)
    fig.update_xaxes(range=[0, 10], showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return fig


def lr_preview_figure(epochs: np.ndarray, rates: np.ndarray, note: str | None = None) -> go.Figure:
    """A small picture of the learning rate over the planned epochs (``builder.schedules``)."""
    x, y = thin(epochs, rates)
    fig = go.Figure(go.Scatter(x=x, y=y, mode="lines", line=dict(color=COLOURS["train"], width=2),
                               fill="tozeroy", hovertemplate=t("epoch %{x:.1f}: %{y:.3g}<extra></extra>")))
    if note:
        fig.add_annotation(text=note, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                           font=dict(color=COLOURS["baseline"], size=12))
    layout(fig, t("Epoch"), t("Learning rate"), height=170)
    fig.update_layout(showlegend=False, hovermode="closest", margin=dict(l=10, r=10, t=10, b=10))
    fig.update_yaxes(rangemode="tozero", tickformat=".2g")
    return fig


def metric_figure(
    epochs: Sequence[float] | np.ndarray,
    series: dict[str, Sequence[float] | np.ndarray],
    title: str,
    percent: bool = False,
    best_epoch: int | None = None,
) -> go.Figure:
    """A quality measure per epoch, e.g. accuracy (training, validation) or validation RMSE.

    Args:
        epochs: finished epochs (1-based).
        series: ``{"Training": values, "Validation": values}``; either may be missing.
        title: the y-axis title, e.g. "Accuracy (higher is better)".
        percent: values are 0-1 shares, shown as percentages.
        best_epoch: marked with a dotted line.
    """
    fig = go.Figure()
    x = _as_array(epochs)
    for name, values in series.items():
        y = _as_array(values) * (100.0 if percent else 1.0)
        colour = COLOURS["validation"] if name == "Validation" else COLOURS["train"]
        fig.add_trace(go.Scatter(x=x, y=y, name=t(name), mode="lines+markers", marker=dict(size=6),
                                 line=dict(color=colour, width=2.5),
                                 hovertemplate="%{y:.1f}%" if percent else "%{y:.4g}"))
    _mark_best(fig, best_epoch)
    layout(fig, t("Epoch"), title)
    if percent:
        fig.update_yaxes(ticksuffix="%")
    fig.update_xaxes(rangemode="tozero")
    return fig


def _mark_best(fig: go.Figure, best_epoch: int | None) -> None:
    if best_epoch:
        fig.add_vline(x=best_epoch, line=dict(color=COLOURS["good"], dash="dot", width=1.5),
                      annotation_text=t("model kept"), annotation_position="top left",
                      annotation_font=dict(color=COLOURS["good"], size=11))


def confusion_figure(classes: Sequence[Any], counts: np.ndarray, normalized: np.ndarray | None = None,
                     show_shares: bool = False, items: str = "rows") -> go.Figure:
    """Heat map of true class (rows) against predicted class (columns).

    Args:
        classes: labels in row/column order.
        counts: ``(k, k)`` row counts.
        normalized: ``(k, k)`` row shares; shown (as %) when ``show_shares``.
        show_shares: colour and label cells by the share of each true class instead of counts.
        items: what was classified, in the hover text: "rows", "images" or "texts".
    """
    labels = [str(c) for c in classes]
    counts = np.asarray(counts)
    if show_shares and normalized is not None:
        z = np.asarray(normalized, dtype=np.float64) * 100  # (k, k) percent of each true class
        text = np.vectorize(lambda v: f"{v:.0f}%")(z) if z.size else z.astype(str)
        hover = t("True %{y}, predicted %{x}: %{z:.1f}% of the true class<extra></extra>")
    else:
        z = counts.astype(np.float64)
        text = counts.astype(np.int64).astype(str)
        hover = t("True %{{y}}, predicted %{{x}}: %{{z:.0f}} {items}<extra></extra>", items=t(items))
    # Many classes: smaller numbers, empty cells left blank and long labels slanted, so ten classes
    # stay readable.
    many = len(labels) > 6
    if many:
        text = np.where(counts == 0, "", text)
    fig = go.Figure(go.Heatmap(
        z=z, x=labels, y=labels, text=text, texttemplate="%{text}", textfont=dict(size=11 if many else 14),
        colorscale=[[0, "#FFFFFF"], [1, COLOURS["model"]]], showscale=False, hovertemplate=hover,
        xgap=2, ygap=2, name=t("Confusion matrix"),
    ))
    layout(fig, t("Predicted class"), t("True class"), height=max(300, min(640, 80 + 44 * len(labels))))
    fig.update_layout(hovermode="closest")
    fig.update_xaxes(type="category", side="bottom", showgrid=False,
                     tickangle=-40 if many and max(map(len, labels), default=0) > 3 else 0)
    fig.update_yaxes(type="category", autorange="reversed", showgrid=False)
    return fig


def per_class_table(classes: Sequence[Any], counts: np.ndarray, items: str = "rows") -> pd.DataFrame:
    """Per class: test rows (``items``: "rows", "images" or "texts", named in the column's header),
    precision (right when it says the class) and recall (share found).

    Computed from the confusion counts (true rows, predicted columns), in percent; 0 where a class
    is never predicted or has no test rows.
    """
    counts = np.asarray(counts, dtype=np.float64)  # (k, k)
    found, named, rows = np.diag(counts), counts.sum(axis=0), counts.sum(axis=1)  # (k,) each
    return pd.DataFrame({
        "Class": [str(c) for c in classes], f"Test {items}": rows.astype(np.int64),
        "Precision": 100 * np.divide(found, named, out=np.zeros_like(found), where=named > 0),
        "Recall": 100 * np.divide(found, rows, out=np.zeros_like(found), where=rows > 0),
    })


PER_CLASS_WIDTHS = {"Class": 104, "count": 56, "share": 92}  # pixels: 344 in all, half a 1280-pixel page


def per_class_columns(items: str = "rows") -> dict[str, Any]:
    """``st.dataframe``'s column_config for ``per_class_table``: short headers and fixed widths, so
    Recall is not cut off beside the confusion matrix, and the shares as bars."""
    share = {"format": "%.1f%%", "min_value": 0, "max_value": 100, "width": PER_CLASS_WIDTHS["share"]}
    return {
        "Class": st.column_config.TextColumn(t("Class"), width=PER_CLASS_WIDTHS["Class"]),
        f"Test {items}": st.column_config.NumberColumn(
            t(items.capitalize()), width=PER_CLASS_WIDTHS["count"],
            help=t("Test {items} truly in this class.", items=t(items))),
        "Precision": st.column_config.ProgressColumn(
            t("Precision"), **share, help=t("When the model says this class, how often it is right.")),
        "Recall": st.column_config.ProgressColumn(
            t("Recall"), **share, help=t("Of the test {items} truly in this class, the share the model finds.",
                                         items=t(items))),
    }


def predicted_vs_actual_figure(actual: np.ndarray, predicted: np.ndarray, units: str = "") -> go.Figure:
    """Each test row as a dot (true value across, prediction up), and the line of perfect answers."""
    actual, predicted = _as_array(actual), _as_array(predicted)
    keep = downsample(len(actual), MAX_SCATTER_POINTS)
    fig = go.Figure(go.Scatter(x=actual[keep], y=predicted[keep], mode="markers", name=t("Test rows"),
                               marker=dict(color=COLOURS["model"], size=6, opacity=0.55),
                               hovertemplate=t("actual %{x:.4g}<br>predicted %{y:.4g}<extra></extra>")))
    if len(actual):
        low = float(min(actual.min(), predicted.min()))
        high = float(max(actual.max(), predicted.max()))
        fig.add_trace(go.Scatter(x=np.array([low, high]), y=np.array([low, high]), mode="lines",
                                 name=t("Perfect prediction"), hoverinfo="skip",
                                 line=dict(color=COLOURS["baseline"], dash="dash", width=2)))
    layout(fig, _titled("Actual value", units), _titled("Predicted value", units))
    fig.update_layout(hovermode="closest")
    return fig


def residual_histogram(residuals: np.ndarray, units: str = "") -> go.Figure:
    """How far off the predictions are: a histogram of actual minus predicted, centred on 0."""
    residuals = _as_array(residuals)
    bins = int(np.clip(2 * np.sqrt(len(residuals)), 10, 60))  # ~16 bins for 67 rows, 60 from 900 rows
    fig = go.Figure(go.Histogram(x=residuals, name=t("Test rows"), nbinsx=bins,
                                 marker=dict(color=COLOURS["model"], line=dict(color="white", width=1)),
                                 hovertemplate=t("error %{x}<br>%{y} rows<extra></extra>")))
    fig.add_vline(x=0, line=dict(color=COLOURS["baseline"], dash="dash", width=2))
    layout(fig, _titled("Actual minus predicted", units), t("Rows"))
    fig.update_layout(hovermode="closest", bargap=0.02)
    return fig


def residual_scatter(predicted: np.ndarray, residuals: np.ndarray, units: str = "") -> go.Figure:
    """Errors against the prediction: a pattern (funnel, curve) means the model misses something."""
    predicted, residuals = _as_array(predicted), _as_array(residuals)
    keep = downsample(len(predicted), MAX_SCATTER_POINTS)
    fig = go.Figure(go.Scatter(x=predicted[keep], y=residuals[keep], mode="markers", name=t("Test rows"),
                               marker=dict(color=COLOURS["model"], size=6, opacity=0.55),
                               hovertemplate=t("predicted %{x:.4g}<br>error %{y:.4g}<extra></extra>")))
    fig.add_hline(y=0, line=dict(color=COLOURS["baseline"], dash="dash", width=2))
    layout(fig, _titled("Predicted value", units), _titled("Actual minus predicted", units))
    fig.update_layout(hovermode="closest")
    return fig


def history_figures(history: Any, task: str) -> tuple[go.Figure, go.Figure | None]:
    """The loss and metric figures of a finished run's ``History``."""
    loss = loss_figure(history.epoch, history.loss, history.val_loss, best_epoch=history.best_epoch)
    return loss, metric_history_figure(history.epoch, history.metrics, task, history.best_epoch)


def metric_history_figure(epochs: Sequence[float], metrics: dict[str, Sequence[float]], task: str,
                          best_epoch: int | None = None) -> go.Figure | None:
    """Accuracy per epoch (classification) or validation RMSE (regression); None if not recorded."""
    if task == "anomaly":
        return None  # its loss is the reconstruction error already shown
    if task in ("regression", "forecast"):
        if not metrics.get("val_rmse"):
            return None
        return metric_figure(epochs, {"Validation": metrics["val_rmse"]},
                             t("Typical error, RMSE (lower is better)"), best_epoch=best_epoch)
    series = {name: metrics[key] for name, key in (("Training", "accuracy"), ("Validation", "val_accuracy"))
              if metrics.get(key)}
    if not series:
        return None
    return metric_figure(epochs, series, t("Accuracy (higher is better)"), percent=True, best_epoch=best_epoch)


# --- forecasts ---------------------------------------------------------------------------------------

ACTUAL_COLOUR = "#3C4043"  # what really happened: near-black, so forecasts stand out against it
_BASELINE_DASHES = {"last value": "dash", "seasonal naive": "dot", "lagged ridge": "dashdot"}


def forecast_name(name: str) -> str:
    """A simple forecast's name as a legend or a table shows it: "last value" -> "Last value"."""
    return t(name.capitalize())


def forecast_figure(lines: Any, target: str, shown_baseline: str | None = None) -> go.Figure:
    """The test period: history, what happened, the network's forecast and the naive forecasts.

    Args:
        lines: a ``builder.results.ForecastLines``.
        target: the forecast column, for the axis title.
        shown_baseline: the naive forecast drawn from the start; the others are in the legend, one
            click away (plotly's legend toggles a line).
    """
    fig = go.Figure()
    if len(lines.history_times):
        fig.add_trace(go.Scatter(x=lines.history_times, y=lines.history_values, name=t("Before the test period"),
                                 mode="lines", line=dict(color=COLOURS["baseline"], width=1.5),
                                 hovertemplate="%{y:.4g}"))
    fig.add_trace(go.Scatter(x=lines.actual_times, y=lines.actual_values, name=t("Actual"), mode="lines",
                             line=dict(color=ACTUAL_COLOUR, width=2), hovertemplate="%{y:.4g}"))
    fig.add_trace(go.Scatter(x=lines.times, y=lines.predicted, name=t("Network, {label}", label=tm(lines.label)),
                             mode="lines+markers" if len(lines.times) <= 60 else "lines",
                             line=dict(color=COLOURS["model"], width=2.5), marker=dict(size=5),
                             hovertemplate="%{y:.4g}"))
    for name, values in lines.baselines.items():
        fig.add_trace(go.Scatter(x=lines.times, y=values, name=forecast_name(name), mode="lines",
                                 line=dict(color=COLOURS["validation"] if name == shown_baseline else COLOURS["baseline"],
                                           width=1.8, dash=_BASELINE_DASHES.get(name, "dash")),
                                 visible=True if name == shown_baseline else "legendonly",
                                 hovertemplate="%{y:.4g}"))
    layout(fig, "", target, height=400)
    return fig


def future_forecast_figure(history: pd.DataFrame, forecast: pd.DataFrame, target: str) -> go.Figure:
    """Predict page: the recent history and the forecast after it, joined at the last known point.

    Args:
        history: ``time`` and ``value`` (``builder.predict_inputs.history_for_chart``).
        forecast: ``time`` and ``prediction``, one row per future step.
        target: the forecast column.
    """
    fig = go.Figure(go.Scatter(x=history["time"], y=history["value"], name=t("History"), mode="lines",
                               line=dict(color=ACTUAL_COLOUR, width=2), hovertemplate="%{y:.4g}"))
    joined_x = [*history["time"].tail(1), *forecast["time"]]
    joined_y = [*history["value"].tail(1), *forecast["prediction"]]
    fig.add_trace(go.Scatter(x=joined_x, y=joined_y, name=t("Forecast"), mode="lines+markers",
                             line=dict(color=COLOURS["model"], width=2.5, dash="dash"), marker=dict(size=6),
                             hovertemplate="%{y:.4g}"))
    layout(fig, "", target, height=380)
    return fig


# --- anomaly detection --------------------------------------------------------------------------------


def error_histogram(val_errors: np.ndarray, test_errors: np.ndarray, threshold: float) -> go.Figure:
    """How unusual rows are: reconstruction errors of the validation and test rows, and the line
    above which a row is flagged."""
    val, test = _as_array(val_errors), _as_array(test_errors)
    both = np.concatenate([val, test])
    high = float(max(both.max(), threshold) * 1.05) if both.size else 1.0
    size = high / int(np.clip(2 * np.sqrt(both.size), 15, 80))
    fig = go.Figure()
    for name, values, colour in ((t("Validation rows"), val, COLOURS["validation"]), (t("Test rows"), test, COLOURS["model"])):
        if values.size:
            fig.add_trace(go.Histogram(x=values, name=name, xbins=dict(start=0, end=high, size=size),
                                       marker=dict(color=colour, line=dict(color="white", width=0.5)), opacity=0.6,
                                       hovertemplate=t("score %{x}<br>%{y} rows<extra></extra>")))
    fig.add_vline(x=threshold, line=dict(color=COLOURS["bad"], dash="dash", width=2),
                  annotation_text=t("threshold"), annotation_position="top right",
                  annotation_font=dict(color=COLOURS["bad"], size=12))
    layout(fig, t("Anomaly score (reconstruction error)"), t("Rows"))
    fig.update_layout(barmode="overlay", hovermode="closest", bargap=0.02)
    return fig
