"""The report as one HTML document: the heading, the sections in reading order, the footer and the
inline CSS (``style.css``, read once from this package).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from importlib import resources

import builder
from builder.data.preprocess import ANOMALY_TASK
from builder.report.common import ReportError, e
from builder.report.results import results_section
from builder.report.sections import (
    card_section,
    data_section,
    design_section,
    explanations_section,
    importances,
    summary_section,
    training_section,
)
from builder.report.threshold import model_threshold, threshold_section
from builder.trained import TrainedModel

CSS = resources.files(__package__).joinpath("style.css").read_text(encoding="utf-8")


def build_report(trained: TrainedModel, *, title: str | None = None, importance: Sequence | None = None,
                 threshold: float | None = None) -> str:
    """The run as one self-contained HTML page for people who never open the app.

    Args:
        trained: the run (its ``metrics``, ``baseline``, ``history``, ``info`` and ``test_results``).
        title: the page's heading; by default what the model does ("Predicting 'churn'").
        importance: what drives the predictions, most important first or not: objects or dicts
            with ``column``, ``importance``, ``sentence`` and optionally ``spread``
            (``builder.explain.ColumnImportance``). ``None``: ``trained.info["explanations"]`` if
            the Evaluate page stored them there (a list of such dicts), else the section is left out.
        threshold: a yes/no model's decision threshold (it answers the second class when that
            class's probability is above it). ``None``: ``trained.info["threshold"]`` if the
            Evaluate page stored one, else the model's own (its preprocessor's; 0.5 by default).

    Returns:
        The HTML document: inline CSS and SVG, no scripts, nothing loaded from anywhere.

    Raises:
        ReportError: a threshold outside (0, 1) or explanations without the fields above.
    """
    info = trained.info or {}
    importance = importance if importance is not None else info.get("explanations")
    if threshold is None:
        threshold = info.get("threshold")
    if threshold is None:
        threshold = model_threshold(trained)
    if not isinstance(threshold, int | float) or not 0 < float(threshold) < 1:
        raise ReportError(f"The decision threshold must be a probability between 0 and 1; got {threshold!r}. "
                          "Use 0.5 for the usual one.")
    heading = title or _default_title(trained)
    sections = [
        summary_section(trained),
        data_section(trained),
        threshold_section(trained, float(threshold)) if trained.task == "binary" else "",
        results_section(trained, float(threshold)),
        explanations_section(importances(importance)) if importance else "",
        design_section(trained),
        training_section(trained),
        card_section(trained),
    ]
    today = dt.date.today()
    trained_at = info.get("trained_at")
    meta = [f"Report of {today.day} {today:%B %Y}"]
    if trained_at:
        meta.append(f"model trained {e(trained_at)} on {e(trained.device)}")
    if info.get("source"):
        meta.append(f"data: <b>{e(info['source'])}</b>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<meta name=\"generator\" content=\"visual model builder {e(builder.__version__)}\">"
        f"<title>{e(heading)}</title><style>\n{CSS}</style></head><body><main>"
        f"<header><p class=\"eyebrow\">Model report</p><h1>{e(heading)}</h1>"
        f"<p class=\"meta\">{' · '.join(meta)}</p></header>"
        + "".join(s for s in sections if s)
        + f"<footer>Made with the visual model builder {e(builder.__version__)}. This file holds everything it "
          "shows: it opens without an internet connection and prints on A4.</footer>"
        "</main></body></html>\n"
    )


def _default_title(trained: TrainedModel) -> str:
    target = trained.data_spec.target
    if trained.task == ANOMALY_TASK:
        return "Finding unusual rows"
    if trained.task == "forecast":
        return f"Forecasting '{target}'"
    if trained.kind == "images":
        return "Sorting images into classes"
    return f"Predicting '{target}'"
