"""The Explain section's charts of a run's explanations: column importance, one answer's pushes
(table columns, an image's pixels, a text's words, a forecast's past steps) and the curves along one
column, as plotly figures (the words as HTML) in the app's colours, green pushing the answer up and
red down (``explain_view`` draws them with their sentences and controls).
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from builder.defaults import CLASS_TASKS
from builder.trained import TrainedModel
from pages.components import charts
from pages.components.i18n import t, tm
from pages.components.ui import COLOURS

UP, DOWN = COLOURS["good"], COLOURS["bad"]  # pushes the explained value up (towards the class) / down
MAX_BARS = 12  # attribution bars per chart (the biggest pushes); a caption says how many columns there are
IMAGE_SIDE = 224  # pixels of the explained picture and of its heatmap on screen


def _style(fig: go.Figure, x_title: str, y_title: str, height: int) -> go.Figure:
    """The look of every page's charts (``charts.layout``), hovering one point at a time and no legend."""
    charts.layout(fig, x_title, y_title, height)
    fig.update_layout(hovermode="closest", showlegend=False)
    return fig


def importance_figure(items: list[dict], task: str) -> go.Figure:
    """One horizontal bar per original column (the most important on top), error bars from the
    spread of the shuffles; classes in accuracy points, numbers in R²."""
    scale, unit = (100.0, t("accuracy points")) if task in CLASS_TASKS else (1.0, "R²")
    shown = list(reversed(items))  # plotly draws the first bar at the bottom
    values = np.array([float(i["importance"]) for i in shown]) * scale
    spread = np.array([float(i.get("spread") or 0.0) for i in shown]) * scale
    fig = go.Figure(go.Bar(
        x=values, y=[str(i["column"]) for i in shown], orientation="h", name=t("Importance"),
        error_x=dict(type="data", array=spread, color=COLOURS["baseline"], thickness=1.2),
        marker=dict(color=[COLOURS["model"] if v > 0 else COLOURS["baseline"] for v in values]),
        hovertemplate=f"%{{y}}: %{{x:.3g}} {unit}<extra></extra>"))
    fig.add_vline(x=0, line=dict(color="#DADCE0", width=1))
    return _style(fig, t("Drop in {unit} when the column is shuffled", unit=unit), "", 90 + 26 * len(items))


def amount_words(trained: TrainedModel) -> tuple[float, str]:
    """(scale, unit) of attributions as drawn: probability points for classes, the output's units otherwise."""
    if trained.task in CLASS_TASKS:
        return 100.0, t("probability points")
    if trained.task == "anomaly":
        return 1.0, t("anomaly score")
    return 1.0, f"'{trained.data_spec.target}'"


def attribution_figure(labels: list[str], values: list[float], trained: TrainedModel,
                       reach: float | None = None) -> go.Figure:
    """Horizontal bars, the biggest pushes on top: green pushes the explained value up, red down.
    ``reach``: the x axis runs from -reach to +reach (in drawn units), so two charts compare."""
    scale, unit = amount_words(trained)
    order = sorted(range(len(values)), key=lambda i: -abs(values[i]))[:MAX_BARS][::-1]
    x = [values[i] * scale for i in order]
    fig = go.Figure(go.Bar(x=x, y=[labels[i] for i in order], orientation="h", name=t("Push"),
                           marker=dict(color=[UP if v >= 0 else DOWN for v in x]),
                           hovertemplate=f"%{{y}}: %{{x:+.3g}} {unit}<extra></extra>"))
    fig.add_vline(x=0, line=dict(color=COLOURS["baseline"], width=1))
    if reach:
        fig.update_xaxes(range=[-reach, reach])
    return _style(fig, t("Push ({unit})", unit=unit), "", 110 + 26 * len(order))


def image_figure(data_uri: str, attributions: list[list[float]]) -> go.Figure:
    """The picture and, beside it at the same size, its pixels' pushes: green up, red down, white nothing."""
    z = np.asarray(attributions, dtype=np.float64) * 100  # (H, W) probability points
    top = float(np.abs(z).max()) or 1.0
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.06,
                        subplot_titles=(t("The picture"), t("What pushed the answer")))
    fig.add_trace(go.Image(source=data_uri, name=t("Picture"), hoverinfo="skip"), row=1, col=1)
    fig.add_trace(go.Heatmap(z=z, zmin=-top, zmax=top, zmid=0.0, name=t("Push"),
                             colorscale=[[0.0, DOWN], [0.5, "#FFFFFF"], [1.0, UP]],
                             colorbar=dict(title=dict(text=t("points")), thickness=12),
                             hovertemplate="x %{x}, y %{y}: %{z:+.3g} " + t("points") + "<extra></extra>"), row=1, col=2)
    _style(fig, "", "", IMAGE_SIDE + 60)
    fig.update_layout(width=2 * IMAGE_SIDE + 160, margin=dict(l=10, r=10, t=36, b=10))
    fig.update_xaxes(showticklabels=False, showgrid=False, showline=False, constrain="domain")
    fig.update_yaxes(showticklabels=False, showgrid=False, showline=False, constrain="domain")
    fig.update_yaxes(autorange="reversed", scaleanchor="x2", row=1, col=2)
    fig.update_yaxes(scaleanchor="x", row=1, col=1)
    return fig


def highlighted_text(pairs: list[tuple[str, float]]) -> str:
    """The words as HTML, each on a background as strong as its push (green up, red down); escaped."""
    top = max((abs(v) for _, v in pairs), default=0.0) or 1.0
    spans = []
    for word, value in pairs:
        colour = "24,128,56" if value >= 0 else "217,48,37"
        alpha = 0.65 * min(1.0, abs(value) / top)
        spans.append(f'<span title="{html.escape(f"{value:+.3g}")}" style="background:rgba({colour},{alpha:.2f});'
                     f'padding:1px 3px;border-radius:3px">{html.escape(str(word))}</span>')
    return f'<div style="line-height:2.1">{" ".join(spans)}</div>'


def forecast_figure(explanation: dict, history: pd.DataFrame, target: str, trained: TrainedModel) -> go.Figure:
    """Bars: each past step's push on the forecast; a faint line: the series' values at those steps."""
    times = explanation["details"]["times"]
    pushes = np.asarray(explanation["attributions"], dtype=np.float64)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(x=times, y=pushes, name=t("Push on the forecast"), showlegend=False,
                         marker=dict(color=[UP if v >= 0 else DOWN for v in pushes]),
                         hovertemplate="%{x}: %{y:+.3g}<extra></extra>"), secondary_y=False)
    past = trained.preprocessor.regularise(history)[target].to_numpy(dtype=np.float64)[-len(times):]
    fig.add_trace(go.Scatter(x=times, y=past, name=t("'{target}' at that step (right axis)", target=target), mode="lines+markers",
                             line=dict(color=COLOURS["baseline"], width=1.5), marker=dict(size=4),
                             hovertemplate="%{y:.4g}<extra></extra>"), secondary_y=True)
    _style(fig, t("Past step"), t("Push on the forecast ('{target}')", target=target), 360)
    fig.update_layout(showlegend=True, hovermode="x unified")
    fig.update_yaxes(title_text=t("'{target}' at that step", target=target), secondary_y=True, showgrid=False)
    return fig


def dependence_figure(curve: dict, trained: TrainedModel, marked: Any = None) -> go.Figure:
    """The average curve (partial dependence) over faint individual curves, in the column's units."""
    scale = 100.0 if curve["target"] is not None else 1.0
    categorical = curve["kind"] not in ("numeric", "datetime")
    mode = "lines+markers" if categorical else "lines"
    grid = [str(g) for g in curve["grid"]] if categorical else curve["grid"]
    fig = go.Figure()
    for i, line in enumerate(curve["individual"]):
        fig.add_trace(go.Scatter(x=grid, y=np.asarray(line, dtype=np.float64) * scale, mode=mode,
                                 name=t("One test row") if i == 0 else None, showlegend=i == 0, hoverinfo="skip",
                                 line=dict(color=COLOURS["baseline"], width=1), opacity=0.25, marker=dict(size=4)))
    fig.add_trace(go.Scatter(x=grid, y=np.asarray(curve["average"], dtype=np.float64) * scale, mode=mode,
                             name=t("Average"), line=dict(color=COLOURS["model"], width=3.5), marker=dict(size=8),
                             hovertemplate="%{x}: %{y:.3g}" + ("%" if scale == 100 else "") + "<extra></extra>"))
    if marked is not None and not categorical:
        fig.add_vline(x=marked, line=dict(color=COLOURS["validation"], dash="dot", width=1.5),
                      annotation_text=t("chosen row"), annotation_font=dict(color=COLOURS["validation"], size=11))
    output = tm(curve["output"])
    output = output[:1].upper() + output[1:]
    _style(fig, curve["column"], output + (" (%)" if scale == 100 else ""), 360)
    fig.update_layout(showlegend=True)
    if categorical:
        fig.update_xaxes(type="category")
    return fig
