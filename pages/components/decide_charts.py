"""The Decide section's charts of a yes/no model's test rows: ROC, precision-recall, gain, lift and
calibration, as plotly figures in the app's colours, each with the slider's threshold marked where
it has a place (``decide_view`` draws them with their one-line readings).
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from builder import decide
from pages.components import charts
from pages.components.i18n import t
from pages.components.ui import COLOURS

CALIBRATION_MIN_ROWS = 5  # a calibration bin is read out only from this many rows


def _figure(x_title: str, y_title: str, percent_axes: bool = True) -> go.Figure:
    fig = charts.layout(go.Figure(), x_title, y_title)
    fig.update_layout(hovermode="closest")
    if percent_axes:
        fig.update_xaxes(tickformat=".0%", range=[0, 1])
        fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
    return fig


def _diagonal(fig: go.Figure, name: str) -> None:
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name=name, hoverinfo="skip",
                             line=dict(color=COLOURS["baseline"], dash="dash", width=1.5)))


def _marker(fig: go.Figure, x: float, y: float, point: decide.ThresholdPoint) -> None:
    fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers", name=t("Threshold {threshold:g}", threshold=point.threshold),
                             marker=dict(color=COLOURS["validation"], size=11, line=dict(color="white", width=1.5)),
                             hovertemplate=t("precision %{customdata[0]:.1%}, recall %{customdata[1]:.1%}<extra></extra>"),
                             customdata=[[point.precision, point.recall]]))


def roc_figure(curves: decide.BinaryCurves, point: decide.ThresholdPoint, negative: str, positive: str) -> go.Figure:
    fig = _figure(t("False alarms (share of {negative} rows flagged)", negative=negative),
                  t("Share of {positive} rows found", positive=positive))
    fig.add_trace(go.Scatter(x=curves.roc_fpr, y=curves.roc_tpr, mode="lines",
                             name=t("Model (AUC {auc:.3f})", auc=curves.auc),
                             line=dict(color=COLOURS["model"], width=2.5),
                             hovertemplate=t("false alarms %{x:.1%}, found %{y:.1%}<extra></extra>")))
    _diagonal(fig, t("Guessing"))
    negatives = point.fp + point.tn
    _marker(fig, point.fp / negatives if negatives else 0.0, point.recall, point)
    return fig


def pr_figure(curves: decide.BinaryCurves, point: decide.ThresholdPoint, positive: str) -> go.Figure:
    fig = _figure(t("Recall (share of {positive} rows found)", positive=positive),
                  t("Precision (share of flagged rows that are right)"))
    fig.add_trace(go.Scatter(x=curves.pr_recall, y=curves.pr_precision, mode="lines",
                             name=t("Model (AP {ap:.3f})", ap=curves.average_precision),
                             line=dict(color=COLOURS["model"], width=2.5),
                             hovertemplate=t("recall %{x:.1%}, precision %{y:.1%}<extra></extra>")))
    fig.add_trace(go.Scatter(x=[0, 1], y=[curves.base_rate] * 2, mode="lines", name=t("Flagging at random"),
                             hoverinfo="skip", line=dict(color=COLOURS["baseline"], dash="dash", width=1.5)))
    _marker(fig, point.recall, point.precision, point)
    return fig


def gain_figure(curves: decide.BinaryCurves, positive: str) -> go.Figure:
    fig = _figure(t("Rows checked, highest probability first"), t("Share of {positive} rows found", positive=positive))
    fig.add_trace(go.Scatter(x=curves.gain_share, y=curves.gain_found, mode="lines", name=t("Model"),
                             line=dict(color=COLOURS["model"], width=2.5),
                             hovertemplate=t("top %{x:.0%}: finds %{y:.1%}<extra></extra>")))
    _diagonal(fig, t("At random"))
    return fig


def lift_figure(curves: decide.BinaryCurves) -> go.Figure:
    fig = _figure(t("Rows checked, highest probability first"), t("Lift: times better than at random"),
                  percent_axes=False)
    fig.add_trace(go.Scatter(x=curves.lift_share, y=curves.lift, mode="lines", name=t("Model"),
                             line=dict(color=COLOURS["model"], width=2.5),
                             hovertemplate=t("top %{x:.0%}: %{y:.2f} times<extra></extra>")))
    fig.add_hline(y=1, line=dict(color=COLOURS["baseline"], dash="dash", width=1.5))
    fig.update_xaxes(tickformat=".0%", range=[0, 1])
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(showlegend=False)
    return fig


def calibration_figure(curves: decide.BinaryCurves, positive: str) -> go.Figure:
    """Observed share against predicted probability per bin, the rows per bin as bars behind."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    charts.layout(fig, t("Probability the model gave"), t("Share really {positive}", positive=positive))
    fig.update_layout(hovermode="closest")
    fig.add_trace(go.Bar(x=curves.calibration_predicted, y=curves.calibration_counts, name=t("Test rows in the bin"),
                         width=0.06, marker=dict(color=COLOURS["baseline"], opacity=0.35),
                         hovertemplate=t("%{y} rows<extra></extra>")), secondary_y=True)
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name=t("Perfectly calibrated"), hoverinfo="skip",
                             line=dict(color=COLOURS["baseline"], dash="dash", width=1.5)), secondary_y=False)
    fig.add_trace(go.Scatter(x=curves.calibration_predicted, y=curves.calibration_observed, mode="lines+markers",
                             name=t("Model"), line=dict(color=COLOURS["model"], width=2.5), marker=dict(size=8),
                             customdata=curves.calibration_counts,
                             hovertemplate=t("given %{x:.0%}: %{y:.0%} really are (%{customdata} rows)<extra></extra>")),
                  secondary_y=False)
    fig.update_xaxes(tickformat=".0%", range=[0, 1])
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02], secondary_y=False)
    fig.update_yaxes(title_text=t("Rows"), showgrid=False, tickformat=",d", secondary_y=True,
                     range=[0, max(curves.calibration_counts, default=1) * 1.1])
    return fig


def calibration_reading(curves: decide.BinaryCurves, positive: str) -> str:
    """One line: the Brier score and the bin furthest from the diagonal (from enough rows)."""
    text = t("Brier score {brier:.3f} (0 is perfect). Points on the diagonal mean a probability of 70% comes true "
             "about 70% of the time; the bars count the test rows per bin.", brier=curves.brier)
    bins = [(abs(o - p), p, o, n) for p, o, n in zip(curves.calibration_predicted, curves.calibration_observed,
                                                     curves.calibration_counts, strict=True)
            if n >= CALIBRATION_MIN_ROWS]
    if bins:
        gap, given, observed, n = max(bins)
        if gap >= 0.1:
            text = t("{reading} Furthest off: rows given about {given:.0%} are {positive} {observed:.0%} of the "
                     "time ({n} rows).", reading=text, given=given, positive=positive, observed=observed, n=n)
    return text
