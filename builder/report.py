"""A stakeholder report of a trained run: one self-contained HTML file, and a PDF of it.

``build_report`` writes the whole story on one page a manager can read without the app: what was
predicted from which data, how good the model is against a simple baseline (big numbers and a plain
verdict), the decision threshold of a yes/no model, what drives the predictions (when explanations
are given), the charts of the test data, the network's design, how training went, and the model
card of the export bundle at the end.

Self-contained means nothing is fetched when the file is opened: the CSS is inline and every chart
is inline SVG drawn here from the run's own numbers (no JavaScript at all; plotly.js inlined would
add 4.8 MB to every report, the SVG charts of a table model weigh some 30 KB). Every string that
comes from the user's data (column names, class labels, file names) goes through ``html.escape``.

``report_pdf`` prints that HTML to an A4 PDF with headless Chromium when one is installed.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import builder
from builder.data.preprocess import ANOMALY_TASK
from builder.diagram import COLOURS as DIAGRAM_COLOURS
from builder.diagram import layer_caption, output_label
from builder.errors import BuilderError
from builder.evaluate import (
    HEADLINE_METRIC,
    METRICS,
    compare_to_baseline,
    confusion,
    downsample,
    format_metric,
    regression_diagnostics,
    verdict,
)
from builder.export.card import TASK_WORDS, model_card
from builder.layers import LAYERS, TAKES_INPUT
from builder.results import anomaly_view, baseline_short_name, forecast_comparison, forecast_lines
from builder.shapes import ShapeReport, infer_shapes
from builder.spec import FAMILIES
from builder.trained import TrainedModel

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5  # a yes/no model says "yes" from this probability on, unless told otherwise
PDF_TIMEOUT_S = 90.0  # Chromium prints a report in 1-5 s; a hung one is stopped after this
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MAX_SCATTER_POINTS = 1_500  # dots of the predicted-vs-actual chart (about 60 bytes each)
MAX_MATRIX_CLASSES = 20  # a larger confusion matrix does not fit an A4 page
MAX_IMPORTANCES = 15  # columns shown in the explanations
MAX_UNUSUAL_ROWS = 10  # anomaly rows listed
MAX_DESIGN_ROWS_DRAWN = 40  # a longer design gets its table, not a picture
# The app's colours (pages/components/ui.py, which builder may not import): training and the model
# blue, validation orange, baselines grey, the kept epoch green, thresholds red.
COLOURS = {"model": "#1A73E8", "validation": "#E8710A", "baseline": "#9AA0A6", "actual": "#3C4043",
           "good": "#188038", "bad": "#D93025", "muted": "#5F6368", "grid": "#E8EAED"}
KIND_WORDS = {"table": "a table", "images": "images", "text": "texts", "series": "a time series"}
UNITS = {"images": "images", "text": "texts", "series": "windows"}  # what a split counts; rows otherwise
STOP_WORDS = {
    "completed": "it ran every planned epoch",
    "early_stopping": "the validation loss had stopped improving (early stopping)",
    "stopped_by_user": "it was stopped by hand",
    "time_limit": "the time limit was reached",
    "diverged": "the loss stopped being a number (diverged)",
    "error": "an error interrupted it",
}
CARD_SECTIONS_LEFT_OUT = ("How to use it", "Files")  # about the bundle's files, which a reader lacks


class ReportError(BuilderError):
    """The report could not be made or printed; the message says why and what to do instead."""


def e(value: Any) -> str:
    """Any value as HTML-escaped text (quotes too, so it is safe inside attributes)."""
    return html.escape(str(value), quote=True)


# --- the report -------------------------------------------------------------------------------------


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
        _summary_section(trained),
        _data_section(trained),
        _threshold_section(trained, float(threshold)) if trained.task == "binary" else "",
        _results_section(trained, float(threshold)),
        _explanations_section(_importances(importance)) if importance else "",
        _design_section(trained),
        _training_section(trained),
        _card_section(trained),
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
        f"<title>{e(heading)}</title><style>{CSS}</style></head><body><main>"
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


def _section(key: str, heading: str, intro: str, body: str) -> str:
    lead = f"<p class=\"lead\">{intro}</p>" if intro else ""
    return f"<section id=\"{key}\"><h2>{heading}</h2>{lead}{body}</section>"


# --- the result: big numbers and the verdict ------------------------------------------------------------


def report_verdict(trained: TrainedModel) -> tuple[str, bool] | None:
    """(the plain verdict, whether the network wins), as the Evaluate page words it; ``None``
    without a baseline (anomaly models have none)."""
    test = trained.metrics.get("test") or {}
    if trained.task == ANOMALY_TASK or not test:
        return None
    if trained.task == "forecast":
        baselines = trained.info.get("forecast_baselines") or {}
        if not baselines:
            return None
        found = forecast_comparison(test, baselines)
        return found.verdict, found.beats_best
    if trained.baseline is None:
        return None
    other = baseline_short_name(trained)
    comparisons = compare_to_baseline(trained.task, test, trained.baseline.metrics, other)
    headline = next((c for c in comparisons if c.metric == HEADLINE_METRIC[trained.task]), None)
    return verdict(trained.task, comparisons, other), bool(headline and headline.better)


def _summary_section(trained: TrainedModel) -> str:
    test = trained.metrics.get("test") or {}
    if not test:
        return _section("result", "The result", "", "<p>No test data was scored for this run.</p>")
    base = trained.baseline.metrics if trained.baseline is not None else {}
    comparisons = ({c.metric: c for c in compare_to_baseline(trained.task, test, base, baseline_short_name(trained))}
                   if base and trained.task != ANOMALY_TASK else {})
    headline = HEADLINE_METRIC.get(trained.task)
    cards = []
    for metric, value in test.items():
        info = METRICS.get(metric)
        label = info.label if info else metric
        lines = [f"<div class=\"label\">{e(label)}</div><div class=\"value\">{e(_fmt(metric, value))}</div>"]
        if metric in base:
            lines.append(f"<div class=\"vs\">Baseline: {e(_fmt(metric, base[metric]))}</div>")
        if metric in comparisons:
            found = comparisons[metric]
            tone = "good" if found.better else ("same" if found.sentence.startswith("about") else "bad")
            lines.append(f"<div class=\"delta {tone}\">{e(found.sentence)}</div>")
        if info:
            lines.append(f"<div class=\"help\">{e(info.help)}</div>")
        cards.append(f"<div class=\"card{' headline' if metric == headline else ''}\">{''.join(lines)}</div>")
    body = f"<div class=\"cards\">{''.join(cards)}</div>"
    found = report_verdict(trained)
    if found is not None:
        sentence, better = found
        body += (f"<p class=\"verdict {'good' if better else 'warn'}\"><b>{'Worth using' if better else 'Not yet'}"
                 f":</b> {e(sentence)}</p>")
    elif trained.task == ANOMALY_TASK:
        body += ("<p class=\"verdict neutral\">An anomaly model has no right answers to score against: judge it "
                 "by the rows it flags, below.</p>")
    if trained.baseline is not None:
        body += (f"<p class=\"note\">The baseline, <b>{e(trained.baseline.name)}</b>, was fitted on the same "
                 f"training data and scored on the same test data. {e(trained.baseline.description)}</p>")
    unit = UNITS.get(trained.kind, "rows")
    rows = (trained.info.get("rows") or {}).get("test")
    scored = f"the {rows:,} test {unit}" if isinstance(rows, int) else f"the test {unit}"
    against = "" if trained.task == ANOMALY_TASK else ", next to a simple baseline any model should beat"
    return _section("result", "The result", f"Scores on {scored}, which the model never saw while it "
                    f"learned{against}.", body)


# --- the data ---------------------------------------------------------------------------------------------


def _data_section(trained: TrainedModel) -> str:
    pre, spec = trained.preprocessor, trained.data_spec
    facts: list[tuple[str, str]] = [("Data", e(KIND_WORDS.get(trained.kind, trained.kind).capitalize()))]
    if trained.info.get("source"):
        facts.append(("File", e(trained.info["source"])))
    facts.append(("Task", e(TASK_WORDS.get(trained.task, trained.task).capitalize())))
    if spec.target is not None:
        facts.append(("Column to predict", f"<b>{e(spec.target)}</b>"))
    classes = list(getattr(pre, "classes", None) or [])
    if classes and trained.task in ("binary", "multiclass"):
        facts.append((f"Classes ({len(classes)})", _chips(classes)))
    if trained.kind == "series":
        facts += [("Time column", e(pre.time_column)), ("Window", f"the last {pre.window} steps"),
                  ("Forecast", f"the next {pre.horizon} step(s)")]
    elif trained.kind == "text":
        facts.append(("Text column", e(pre.text_column)))
    elif trained.kind == "images":
        channels, height, width = trained.input_shape
        facts.append(("Images", f"{width}x{height} pixels, {'grayscale' if channels == 1 else 'colour'}"))
    rows = trained.info.get("rows") or {}
    unit = UNITS.get(trained.kind, "rows")
    if rows:
        facts.append((f"{unit.capitalize()} per split", _split_bar(rows, unit)))
    body = "<dl class=\"facts\">" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
    kinds = getattr(pre, "kinds", None) if trained.kind == "table" else None
    if kinds:
        body += ("<h3>Input columns</h3><table class=\"tbl\"><thead><tr><th>Column</th><th>Read as</th></tr></thead>"
                 "<tbody>" + "".join(f"<tr><td>{e(c)}</td><td>{e(how)}</td></tr>" for c, how in kinds.items())
                 + "</tbody></table>")
    elif spec.features and trained.kind == "series":
        body += f"<p>Value column(s): {_chips(spec.features)}</p>"
    return _section("data", "The data", "What the model learned from, and how the rows were shared out: it "
                    "learned from the training part, chose when to stop on the validation part, and was "
                    "scored on the test part only.", body)


def _chips(values: Sequence[Any], limit: int = 30) -> str:
    shown = "".join(f"<span class=\"chip\">{e(v)}</span>" for v in list(values)[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def _split_bar(rows: dict[str, Any], unit: str) -> str:
    counts = {k: int(v) for k, v in rows.items() if isinstance(v, int | float) and v}
    total = sum(counts.values()) or 1
    colours = {"train": COLOURS["model"], "validation": COLOURS["validation"], "test": COLOURS["actual"]}
    bar = "".join(f"<span style=\"flex:{n};background:{colours.get(k, COLOURS['baseline'])}\"></span>"
                  for k, n in counts.items())
    words = ", ".join(f"<b>{n:,}</b> {e(k)} ({n / total:.0%})" for k, n in counts.items())
    return f"<div class=\"split\">{bar}</div>{words} {unit}"


# --- a yes/no model's threshold -----------------------------------------------------------------------------


def model_threshold(trained: TrainedModel) -> float:
    """The decision threshold the model itself applies (its preprocessor's; 0.5 for older runs)."""
    found = getattr(trained.preprocessor, "decision_threshold", None)
    return float(found) if isinstance(found, int | float) else DEFAULT_THRESHOLD


def _threshold_section(trained: TrainedModel, threshold: float) -> str:
    classes = [str(c) for c in trained.preprocessor.classes]
    if len(classes) != 2:
        return ""
    negative, positive = classes
    own = model_threshold(trained)
    chosen = getattr(trained.preprocessor, "decision_threshold_chosen", None) if threshold == own else None
    origin = f" It was chosen {e(chosen)}." if chosen else (
        " This is the usual one." if threshold == DEFAULT_THRESHOLD else "")
    body = (f"<p>For every row the model gives the probability that the answer is <b>{e(positive)}</b>. "
            f"It answers <b>{e(positive)}</b> when that probability is above <b class=\"num\">{threshold:g}</b>, "
            f"and <b>{e(negative)}</b> otherwise.{origin} A lower threshold finds more of the real {e(positive)} "
            "rows but raises more false alarms; a higher one the other way round.</p>")
    at = _binary_at_threshold(trained, threshold)
    if at is None:
        body += "<p class=\"note\">This run kept no test probabilities, so the effect of the threshold cannot be shown.</p>"
    else:
        n, said, real, hits, accuracy = at
        if not said:
            found = f"for none of them, so it finds none of the {real:,} real {e(positive)} rows"
        else:
            found = (f"for <b>{said:,}</b> of them; <b>{hits / said:.0%}</b> of those really are {e(positive)} "
                     "(precision)")
            found += (f", and they are <b>{hits / real:.0%}</b> of all the real {e(positive)} rows (recall)" if real
                      else f", but none of the test rows really is {e(positive)}")
        body += (f"<p>On the {n:,} test rows at this threshold the model answers {e(positive)} {found}. Accuracy: "
                 f"<b>{accuracy * 100:.1f}%</b>.</p>")
        if abs(threshold - own) > 1e-9:
            body += (f"<p class=\"note\">The scores under <i>The result</i> were measured with the model's own "
                     f"threshold, {own:g}; the sentence above and the table of mix-ups below use {threshold:g}.</p>")
    return _section("threshold", "The decision threshold", "", body)


def _binary_predictions(trained: TrainedModel, threshold: float) -> np.ndarray | None:
    """The kept test rows' answers at ``threshold`` (``None``: no probabilities were kept)."""
    results = trained.test_results or {}
    proba = results.get("probabilities")
    if not proba:
        return None
    classes = np.asarray(trained.preprocessor.classes, dtype=object)
    positive = np.asarray(proba, dtype=np.float64)[:, -1]  # (N,) probability of the second class
    return classes[(positive > threshold).astype(np.int64)]  # the rule of the model's own decoder


def _binary_at_threshold(trained: TrainedModel, threshold: float) -> tuple[int, int, int, int, float] | None:
    """(test rows, answered positive, really positive, both, accuracy) at ``threshold``."""
    predicted = _binary_predictions(trained, threshold)
    if predicted is None:
        return None
    positive = str(trained.preprocessor.classes[1])
    said = np.asarray([str(p) for p in predicted]) == positive  # (N,)
    truth = np.asarray([str(a) for a in trained.test_results["actual"]]) == positive  # (N,)
    accuracy = float(np.mean(said == truth)) if len(truth) else 0.0
    return len(truth), int(said.sum()), int(truth.sum()), int(np.sum(said & truth)), accuracy


# --- the test data in detail ------------------------------------------------------------------------------------


def _results_section(trained: TrainedModel, threshold: float) -> str:
    results = trained.test_results or {}
    try:
        if trained.task == "forecast":
            body, heading = _forecast_results(trained, results), "The forecast over the test period"
        elif trained.task == ANOMALY_TASK:
            body, heading = _anomaly_results(results), "Unusual rows"
        elif not results.get("actual"):
            return ""
        elif trained.task == "regression":
            body, heading = _regression_results(trained, results), "Predictions against the truth"
        else:
            body, heading = _classification_results(trained, results, threshold), "Where the model goes wrong"
    except BuilderError as exc:  # kept results that cannot be drawn: say so, keep the rest of the report
        log.warning("report: the test results could not be drawn: %s", exc)
        return _section("details", "The test data in detail", "", f"<p class=\"note\">{e(exc)}</p>")
    if trained.kind == "images" and results.get("mistakes"):
        body += _image_mistakes(results["mistakes"])
    elif trained.kind == "text" and results.get("mistakes"):
        body += _text_mistakes(results["mistakes"])
    return _section("details", heading, "", body)


def _classification_results(trained: TrainedModel, results: dict[str, Any], threshold: float) -> str:
    actual = np.asarray(results["actual"], dtype=object)
    predicted = np.asarray(results["predicted"], dtype=object)
    if trained.task == "binary":
        at = _binary_predictions(trained, threshold)
        predicted = at if at is not None else predicted
    matrix = confusion(actual, predicted, trained.preprocessor.classes)
    counts = matrix.counts
    items = {"images": "images", "text": "texts"}.get(trained.kind, "rows")
    found, named, truth = np.diag(counts), counts.sum(axis=0), counts.sum(axis=1)  # (k,) each
    per_class = "".join(
        f"<tr><td>{e(c)}</td><td class=\"num\">{int(truth[i]):,}</td>"
        f"<td class=\"num\">{_share(found[i], named[i])}</td><td class=\"num\">{_share(found[i], truth[i])}</td></tr>"
        for i, c in enumerate(matrix.classes))
    table = (f"<table class=\"tbl\"><thead><tr><th>Class</th><th>Test {items}</th><th title=\"When the model says "
             f"this class, how often it is right\">Precision</th><th title=\"Of the test {items} truly in this class, "
             f"the share the model finds\">Recall</th></tr></thead><tbody>{per_class}</tbody></table>"
             "<p class=\"note\">Precision: when the model names the class, how often it is right. Recall: of the "
             f"{items} truly in the class, the share the model finds.</p>")
    if len(matrix.classes) > MAX_MATRIX_CLASSES:
        return table
    figure = (f"<figure class=\"wide\">{_confusion_table(matrix.classes, counts, matrix.normalized)}"
              f"<figcaption>Each row is what the test {items} really are, each column what the model said. The "
              f"diagonal holds the right answers; everything else is a mix-up.</figcaption></figure>")
    if len(matrix.classes) > 3:  # a wide matrix takes the page's width, the table goes below it
        return figure + table
    return f"<div class=\"pair classes\">{figure}<div>{table}</div></div>"


def _share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _label(value: Any, limit: int = 18) -> str:
    """A class label for a narrow header: shortened with "…" when long, the whole label on hover."""
    text = str(value)
    shown = text if len(text) <= limit else text[:limit - 1] + "…"
    return f"<span title=\"{e(text)}\">{e(shown)}</span>" if shown != text else e(text)


def _confusion_table(classes: Sequence[Any], counts: np.ndarray, shares: np.ndarray) -> str:
    header = "".join(f"<th>{_label(c)}</th>" for c in classes)
    rows = []
    for i, c in enumerate(classes):
        cells = []
        for j in range(len(classes)):
            share = float(shares[i, j])
            ink = "#fff" if share > 0.55 else "#202124"
            if not counts[i, j]:
                cells.append("<td class=\"zero\">0</td>")
                continue
            cells.append(f"<td style=\"background:rgba(26,115,232,{0.12 + 0.78 * share:.2f});color:{ink}\">"
                         f"{int(counts[i, j]):,}<small>{share:.0%}</small></td>")
        rows.append(f"<tr><th>{_label(c)}</th>{''.join(cells)}</tr>")
    return (f"<table class=\"matrix\"><thead><tr><th class=\"corner\">true ↓ / said →</th>{header}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _regression_results(trained: TrainedModel, results: dict[str, Any]) -> str:
    found = regression_diagnostics(results["actual"], results["predicted"])
    target = str(trained.data_spec.target)
    misses = np.abs(found.residuals)
    half, most = float(np.quantile(misses, 0.5)), float(np.quantile(misses, 0.9))
    keep = downsample(len(found.actual), MAX_SCATTER_POINTS)
    scatter = _scatter_svg(found.actual[keep], found.predicted[keep], f"Actual {target}", f"Predicted {target}")
    spread = _histogram_svg([("Test rows", found.residuals, COLOURS["model"])], f"Actual minus predicted {target}",
                            zero=True, size=(HALF[0], 340))
    return (f"<p>Half of the test predictions are within <b>{e(format_metric('mae', half))}</b> of the real value, "
            f"and 9 in 10 within <b>{e(format_metric('mae', most))}</b> (in the units of {e(target)}).</p>"
            f"<div class=\"pair\"><figure>{scatter}<figcaption>Each dot is a test row: across, its real {e(target)}; "
            "up, the model's prediction. Dots on the dashed line are predicted exactly; the further from it, the "
            f"bigger the miss.</figcaption></figure><figure>{spread}<figcaption>How big the misses are: bunched "
            "around 0 is good; a long tail means some rows are badly missed.</figcaption></figure></div>")


def _forecast_results(trained: TrainedModel, results: dict[str, Any]) -> str:
    lines = forecast_lines(results, step=1)
    best = forecast_comparison(trained.metrics.get("test") or {}, trained.info.get("forecast_baselines") or {})
    series = []
    if len(lines.history_times):
        series.append(_Series("Before the test period", _days(lines.history_times), lines.history_values,
                              COLOURS["baseline"], width=1.5))
    series.append(_Series("Actual", _days(lines.actual_times), lines.actual_values, COLOURS["actual"]))
    series.append(_Series(f"Network, {lines.label}", _days(lines.times), lines.predicted, COLOURS["model"],
                          width=2.5))
    if best.best in lines.baselines:
        series.append(_Series(f"{best.best.capitalize()} forecast", _days(lines.times),
                              lines.baselines[best.best], COLOURS["validation"], dash="6 4", width=1.8))
    chart = _line_svg(series, x_title="", y_title=str(results.get("target", trained.data_spec.target)),
                      dates=True, size=WIDE)
    rows = "".join(f"<tr><td>{e(row['Forecast'])}</td>" + "".join(
        f"<td class=\"num\">{e(_fmt(m, row[m]))}</td>" for m in ("rmse", "mae", "r2")) + "</tr>"
        for row in best.table.to_dict(orient="records"))
    table = (f"<table class=\"tbl\"><thead><tr><th>Forecast</th><th>{e(METRICS['rmse'].label)}</th>"
             f"<th>{e(METRICS['mae'].label)}</th><th>{e(METRICS['r2'].label)}</th></tr></thead><tbody>{rows}</tbody></table>")
    return (f"<figure>{chart}<figcaption>The network's forecast one step ahead along the test period, next to what "
            "really happened and the best simple forecast.</figcaption></figure>"
            f"<h3>Against simple forecasts</h3>{table}")


def _anomaly_results(results: dict[str, Any]) -> str:
    view = anomaly_view(results)
    chart = _histogram_svg([("Validation rows", view.val_errors, COLOURS["validation"]),
                            ("Test rows", view.test_errors, COLOURS["model"])],
                           "Anomaly score (reconstruction error)", threshold=view.threshold, size=WIDE)
    body = (f"<figure>{chart}<figcaption>How unusual the rows are; rows right of the red line are flagged. The "
            f"threshold {view.threshold:.4g} is set so {view.quantile:.1%} of the validation rows (rows like the "
            f"training data) stay below it.</figcaption></figure>"
            f"<p><b>{view.flagged:,}</b> of the {len(view.test_errors):,} test rows are above the threshold.</p>")
    if len(view.rows):
        top = view.rows.head(MAX_UNUSUAL_ROWS)
        head = "".join(f"<th>{e(c)}</th>" for c in top.columns)
        rows = "".join("<tr>" + "".join(f"<td>{e(_cell(v))}</td>" for v in row) + "</tr>"
                       for row in top.itertuples(index=False))
        body += (f"<h3>The most unusual test rows</h3><div class=\"wide\"><table class=\"tbl small\"><thead><tr>{head}"
                 f"</tr></thead><tbody>{rows}</tbody></table></div>")
    return body


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _image_mistakes(mistakes: list[dict[str, Any]]) -> str:
    tiles = "".join(
        f"<figure class=\"tile\"><img alt=\"{e(m.get('file', ''))}\" src=\"{e(m['image'])}\">"
        f"<figcaption>really <b>{e(m['actual'])}</b>, said <b>{e(m['predicted'])}</b> ({m['confidence']:.0%})"
        "</figcaption></figure>"
        for m in mistakes[:12] if str(m.get("image", "")).startswith("data:image/png;base64,"))
    return f"<h3>Some images it got wrong</h3><div class=\"tiles\">{tiles}</div>" if tiles else ""


def _text_mistakes(mistakes: list[dict[str, Any]]) -> str:
    empty = "<i class=\"note\">(empty)</i>"
    rows = "".join(f"<tr><td>{e(m['text']) or empty}</td><td>{e(m['actual'])}</td><td>{e(m['predicted'])}</td>"
                   f"<td class=\"num\">{m['confidence']:.0%}</td></tr>" for m in mistakes[:10])
    return ("<h3>Some texts it got wrong</h3><table class=\"tbl small\"><thead><tr><th>Text</th><th>Really</th>"
            f"<th>Said</th><th>Sure</th></tr></thead><tbody>{rows}</tbody></table>")


# --- explanations ---------------------------------------------------------------------------------------------


@dataclass
class _Importance:
    column: str
    importance: float
    sentence: str
    spread: float | None = None


def _importances(items: Sequence) -> list[_Importance]:
    """``ColumnImportance`` objects or dicts as one shape, most important first."""
    found = []
    for item in items:
        get = item.get if isinstance(item, dict) else (lambda key, default=None, i=item: getattr(i, key, default))
        column, value = get("column"), get("importance")
        if column is None or not isinstance(value, int | float) or not math.isfinite(value):
            raise ReportError("Each explanation needs a 'column' and a numeric 'importance' (and a 'sentence'); "
                              f"got {item!r}. Compute them again on the Evaluate page.")
        spread = get("spread")
        found.append(_Importance(str(column), float(value), str(get("sentence") or ""),
                                 float(spread) if isinstance(spread, int | float) else None))
    return sorted(found, key=lambda i: -i.importance)


def _explanations_section(items: list[_Importance]) -> str:
    shown = items[:MAX_IMPORTANCES]
    top = max((abs(i.importance) for i in shown), default=0.0) or 1.0
    rows = "".join(
        f"<div class=\"bar-row\"><div class=\"bar-label\">{e(i.column)}</div><div class=\"bar-track\">"
        f"<span style=\"width:{max(abs(i.importance) / top * 100, 0.5):.1f}%\"></span></div>"
        f"<div class=\"bar-value\">{i.importance:.3g}{f' ± {i.spread:.2g}' if i.spread is not None else ''}</div>"
        + (f"<div class=\"bar-sentence\">{e(i.sentence)}</div>" if i.sentence else "") + "</div>"
        for i in shown)
    more = f"<p class=\"note\">{len(items) - len(shown)} less important column(s) left out.</p>" if len(items) > len(shown) else ""
    return _section("explanations", "What drives the predictions", "How much each input column moves the model's "
                    "answers on the test rows, the strongest first. It shows what the model relies on, not what "
                    "causes the outcome.", f"<div class=\"bars\">{rows}</div>{more}")


# --- the design -------------------------------------------------------------------------------------------------


def _design_section(trained: TrainedModel) -> str:
    family = FAMILIES.get(trained.spec.effective_family())
    intro = f"<b>{e(family.title)}</b>: {e(family.summary)}" if family else e(trained.spec.family)
    try:
        shape = trained.shape
        with shape.scope():
            report = infer_shapes(trained.spec, trained.input_shape, trained.n_outputs)
    except BuilderError as exc:
        log.warning("report: the design's shapes could not be worked out: %s", exc)
        return _section("design", "The model", intro, "")
    rows = []
    for row in report.rows:
        if row.locked:
            name, setting = "Output layer", f"{row.params.get('out_features', '?')} value(s)"
        else:
            caption = layer_caption(row.type, row.params).split("\n")
            name, setting = caption[0], caption[1] if len(caption) > 1 else ""
        summary = LAYERS.get(row.type).summary if row.type in LAYERS else ""
        rows.append(f"<tr><td class=\"num\">{row.index + 1}</td><td title=\"{e(summary)}\">{e(name)}</td>"
                    f"<td>{e(setting)}</td><td class=\"num\">{e(row.output_text)}</td>"
                    f"<td class=\"num\">{row.n_params:,}</td></tr>")
    table = ("<table class=\"tbl\"><thead><tr><th>#</th><th>Layer</th><th>Setting</th><th>Output shape</th>"
             f"<th>Parameters</th></tr></thead><tbody>{''.join(rows)}</tbody><tfoot><tr><td></td><td colspan=\"3\">"
             f"Total, learned in training</td><td class=\"num\">{report.total_params:,}</td></tr></tfoot></table>")
    note = (f"<p class=\"note\">{e(shape.input_label)}. The output layer is sized by the task: "
            f"{e(output_label(trained.task, trained.n_outputs).removeprefix('Output: '))}.</p>")
    if len(report.rows) > MAX_DESIGN_ROWS_DRAWN:
        return _section("design", "The model", intro, table + note)
    diagram = _diagram_svg(report, shape.input_label, output_label(trained.task, trained.n_outputs))
    return _section("design", "The model", intro,
                    f"<div class=\"pair design\"><div>{table}{note}</div><figure>{diagram}</figure></div>")


# --- training -----------------------------------------------------------------------------------------------------


def _training_section(trained: TrainedModel) -> str:
    history, config = trained.history, trained.config
    if not history.epochs_run:
        return ""
    epochs = np.asarray(history.epoch, dtype=np.float64)
    best = history.best_epoch
    marks = [(float(best), f"model kept (epoch {best})")] if best else []
    loss = _line_svg([_Series("Training", epochs, np.asarray(history.loss), COLOURS["model"], markers=True),
                      _Series("Validation", epochs, np.asarray(history.val_loss), COLOURS["validation"], markers=True)],
                     x_title="Epoch", y_title="Loss (lower is better)", marks=marks, epochs=True)
    figures = [f"<figure>{loss}<figcaption>How wrong the model was while it learned, on the training rows and on "
               "the validation rows it did not learn from.</figcaption></figure>"]
    metric = _metric_curve(trained, epochs, marks)
    if metric:
        figures.append(metric)
    why = STOP_WORDS.get(history.stopped_reason, history.stopped_reason)
    kept = (f" The validation loss was lowest at epoch <b>{best}</b>; the model keeps the weights of that epoch."
            if best else "")
    text = (f"<p>Trained for <b>{history.epochs_run}</b> epoch(s) in {trained.seconds:.1f} s on {e(trained.device)}, "
            f"and it stopped because {e(why)}.{kept}</p>"
            f"<p class=\"note\">Settings: up to {config.epochs} epochs, batches of {config.batch_size}, learning rate "
            f"{config.lr:g}, optimizer {e(config.optimizer)}, seed {config.seed}.</p>")
    if trained.info.get("warning"):
        text += f"<p class=\"verdict warn\">{e(trained.info['warning'])}</p>"
    return _section("training", "How training went", "", text + f"<div class=\"pair\">{''.join(figures)}</div>")


def _metric_curve(trained: TrainedModel, epochs: np.ndarray, marks: list) -> str:
    metrics = trained.history.metrics
    if trained.task in ("regression", "forecast") and metrics.get("val_rmse"):
        series = [_Series("Validation", epochs, np.asarray(metrics["val_rmse"]), COLOURS["validation"], markers=True)]
        title, percent = "Typical error, RMSE (lower is better)", False
    elif trained.task in ("binary", "multiclass"):
        series = [_Series(name, epochs, np.asarray(metrics[key]) * 100, colour, markers=True)
                  for name, key, colour in (("Training", "accuracy", COLOURS["model"]),
                                            ("Validation", "val_accuracy", COLOURS["validation"]))
                  if metrics.get(key)]
        title, percent = "Accuracy (higher is better)", True
    else:
        return ""
    if not series:
        return ""
    chart = _line_svg(series, x_title="Epoch", y_title=title, marks=marks, epochs=True, percent=percent)
    return f"<figure>{chart}<figcaption>{e(title.split(' (')[0])} per epoch.</figcaption></figure>"


# --- the model card -------------------------------------------------------------------------------------------


def _card_section(trained: TrainedModel) -> str:
    try:
        card = model_card(trained)
    except BuilderError as exc:
        log.warning("report: no model card: %s", exc)
        return ""
    kept, skipping = [], False
    for line in card.splitlines():
        if line.startswith("## "):
            skipping = line[3:].strip() in CARD_SECTIONS_LEFT_OUT
        if not skipping:
            kept.append(line)
    return _section("card", "Model card", "The model card that travels with the exported model (its README.md), "
                    "without the part on how to run its files.", f"<div class=\"card-text\">{markdown_html(chr(10).join(kept))}</div>")


def markdown_html(text: str) -> str:
    """The little Markdown the model card uses (headings, tables, lists, code blocks, ``**bold**`` and
    ``code``) as HTML; everything is escaped first."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0

    def inline(raw: str) -> str:
        escaped = e(raw)
        escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
        return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", escaped)

    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
            out.append(f"<pre><code>{e(chr(10).join(lines[i + 1:end]))}</code></pre>")
            i = end + 1
            continue
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 2, 6)
            out.append(f"<h{level}>{inline(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            body = [r for r in block[1:] if not all(set(c) <= set("-: ") for c in r)]
            out.append("<table class=\"tbl small\"><thead><tr>" + "".join(f"<th>{inline(c)}</th>" for c in block[0])
                       + "</tr></thead><tbody>" + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r)
                                                          + "</tr>" for r in body) + "</tbody></table>")
            continue
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{inline(lines[i][2:])}</li>")
                i += 1
            out.append(f"<ul>{''.join(items)}</ul>")
            continue
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
        i += 1
    return "".join(out)


def _fmt(metric: str, value: Any) -> str:
    try:
        return format_metric(metric, float(value))
    except (BuilderError, TypeError, ValueError):
        return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


# --- charts as inline SVG ------------------------------------------------------------------------------------------

# viewBox sizes: a chart scales to its box, so its text stays about 10-13 px where it is shown.
HALF = (440, 270)  # one of two charts side by side
WIDE = (880, 330)  # a chart across the page
_RIGHT, _TOP, _BOTTOM = 14, 38, 46  # margins: legend on top, axis title below (the left one fits the ticks)


@dataclass
class _Series:
    name: str
    x: np.ndarray
    y: np.ndarray
    colour: str
    dash: str = ""
    width: float = 2.0
    markers: bool = False


def _days(times: Sequence[str]) -> np.ndarray:
    """ISO time stamps as float days since 1970, for a time axis."""
    return np.asarray(times, dtype="datetime64[s]").astype(np.int64) / 86_400.0


def nice_ticks(low: float, high: float, count: int = 5, integer: bool = False) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten apart) covering ``[low, high]``."""
    if not (math.isfinite(low) and math.isfinite(high)):
        low, high = 0.0, 1.0
    if high - low <= 0:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))
    if integer:
        step = max(1.0, float(math.ceil(step)))
    start, stop = math.floor(low / step + 1e-9) * step, math.ceil(high / step - 1e-9) * step
    return [start + k * step for k in range(round((stop - start) / step) + 1)]


def _tick_text(value: float, step: float, suffix: str = "") -> str:
    decimals = 0
    while decimals < 6 and abs(step * 10**decimals - round(step * 10**decimals)) > 1e-6:
        decimals += 1
    value = 0.0 if abs(value) < abs(step) * 1e-6 else value
    return f"{value:,.{decimals}f}{suffix}"


def _date_text(days: float, span: float) -> str:
    stamp = str(np.datetime64(int(round(days * 86_400)), "s"))
    return stamp[:16].replace("T", " ") if span < 3 else stamp[:10]


@dataclass
class _Frame:
    """Axes drawn and the scales from data to the viewBox."""

    parts: list[str]
    sx: Callable[[Any], Any]
    sy: Callable[[Any], Any]
    size: tuple[int, int]

    @property
    def plot_top(self) -> int:
        return _TOP

    @property
    def plot_bottom(self) -> int:
        return self.size[1] - _BOTTOM

    def svg(self, label: str) -> str:
        width, height = self.size
        return (f"<svg class=\"chart\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{e(label)}\">"
                f"<title>{e(label)}</title>{''.join(self.parts)}</svg>")

    def vline(self, x: float, text: str, colour: str, css: str = "mark") -> None:
        px = float(self.sx(x))
        anchor, shift = ("end", -5) if px > self.size[0] * 0.7 else ("start", 5)
        self.parts.append(f"<line x1=\"{px:.1f}\" x2=\"{px:.1f}\" y1=\"{self.plot_top}\" y2=\"{self.plot_bottom}\" "
                          f"stroke=\"{colour}\" stroke-width=\"1.6\" stroke-dasharray=\"4 3\"/>"
                          f"<text x=\"{px + shift:.1f}\" y=\"{self.plot_top + 13}\" class=\"{css}\" "
                          f"text-anchor=\"{anchor}\">{e(text)}</text>")


def _frame(x_range: tuple[float, float], y_ticks: list[float], x_title: str, y_title: str, *,
           size: tuple[int, int] = HALF, dates: bool = False, epochs: bool = False, suffix: str = "",
           legend: Sequence[tuple[str, str, str]] = ()) -> _Frame:
    """Grid, ticks, axis titles and the legend (name, colour, "line"/"dash"/"dot") of a chart."""
    width, height = size
    if epochs:  # whole epochs, half an epoch of room either side
        x0, x1 = x_range[0] - 0.5, x_range[1] + 0.5
        x_ticks = [t for t in nice_ticks(x_range[0], x_range[1], 6, integer=True) if x_range[0] <= t <= x_range[1]]
    elif dates:
        x0, x1 = x_range
        x_ticks = list(np.linspace(x0, x1, 5)) if x1 > x0 else [x0]
    else:
        x_ticks = nice_ticks(*x_range)
        x0, x1 = x_ticks[0], x_ticks[-1]
    y0, y1 = y_ticks[0], y_ticks[-1]
    y_step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else 1.0
    y_labels = [_tick_text(t, y_step, suffix) for t in y_ticks]
    left = round(34 + 7.2 * max(len(t) for t in y_labels))  # the axis title, then the longest tick label
    right, top, bottom = width - _RIGHT, _TOP, height - _BOTTOM
    x_span, y_span = (x1 - x0) or 1.0, (y1 - y0) or 1.0

    def sx(v: Any) -> Any:
        return left + (np.asarray(v, dtype=np.float64) - x0) / x_span * (right - left)

    def sy(v: Any) -> Any:
        return bottom - (np.asarray(v, dtype=np.float64) - y0) / y_span * (bottom - top)

    parts = []
    for t, text in zip(y_ticks, y_labels, strict=True):
        y = float(sy(t))
        parts.append(f"<line x1=\"{left}\" x2=\"{right}\" y1=\"{y:.1f}\" y2=\"{y:.1f}\" class=\"grid\"/>"
                     f"<text x=\"{left - 7}\" y=\"{y + 4:.1f}\" class=\"tick\" text-anchor=\"end\">{e(text)}</text>")
    x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else 1.0
    for k, t in enumerate(x_ticks):
        x = float(sx(t))
        label = _date_text(t, x1 - x0) if dates else _tick_text(t, x_step)
        anchor = "start" if dates and k == 0 else "end" if dates and k == len(x_ticks) - 1 else "middle"
        parts.append(f"<line x1=\"{x:.1f}\" x2=\"{x:.1f}\" y1=\"{bottom}\" y2=\"{bottom + 4}\" class=\"axis\"/>"
                     f"<text x=\"{x:.1f}\" y=\"{bottom + 18}\" class=\"tick\" text-anchor=\"{anchor}\">{e(label)}</text>")
    parts.append(f"<line x1=\"{left}\" x2=\"{right}\" y1=\"{bottom}\" y2=\"{bottom}\" class=\"axis\"/>")
    if x_title:
        parts.append(f"<text x=\"{(left + right) / 2:.0f}\" y=\"{height - 6}\" class=\"title\" "
                     f"text-anchor=\"middle\">{e(x_title)}</text>")
    parts.append(f"<text transform=\"translate(15 {(top + bottom) / 2:.0f}) rotate(-90)\" class=\"title\" "
                 f"text-anchor=\"middle\">{e(y_title)}</text>")
    x = 14.0
    for name, colour, kind in legend:
        if kind == "dot":
            sample = f"<circle cx=\"{x + 8:.0f}\" cy=\"15\" r=\"5\" fill=\"{colour}\"/>"
        else:
            dash = " stroke-dasharray=\"6 3\"" if kind == "dash" else ""
            sample = (f"<line x1=\"{x:.0f}\" x2=\"{x + 20:.0f}\" y1=\"15\" y2=\"15\" stroke=\"{colour}\" "
                      f"stroke-width=\"3\"{dash}/>")
        parts.append(f"{sample}<text x=\"{x + 26:.0f}\" y=\"20\" class=\"legend\">{e(name)}</text>")
        x += 42 + 7.4 * len(name)
    return _Frame(parts, sx, sy, size)


def _line_svg(series: list[_Series], *, x_title: str, y_title: str, marks: Sequence[tuple[float, str]] = (),
              dates: bool = False, epochs: bool = False, percent: bool = False, size: tuple[int, int] = HALF) -> str:
    """Lines over a number, date or epoch axis; ``marks`` are dotted green vertical lines with a label."""
    xs = np.concatenate([s.x[np.isfinite(s.y)] for s in series]) if series else np.zeros(0)
    ys = np.concatenate([s.y[np.isfinite(s.y)] for s in series]) if series else np.zeros(0)
    if not len(xs):
        return ""
    legend = [(s.name, s.colour, "dash" if s.dash else "line") for s in series]
    frame = _frame((float(xs.min()), float(xs.max())), nice_ticks(float(ys.min()), float(ys.max())), x_title,
                   y_title, size=size, dates=dates, epochs=epochs, suffix="%" if percent else "", legend=legend)
    for x, text in marks:
        frame.vline(x, text, COLOURS["good"])
    for s in series:
        ok = np.isfinite(s.y)
        px, py = frame.sx(s.x[ok]), frame.sy(s.y[ok])
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py, strict=True))
        dash = f" stroke-dasharray=\"{s.dash}\"" if s.dash else ""
        frame.parts.append(f"<polyline points=\"{points}\" fill=\"none\" stroke=\"{s.colour}\" "
                           f"stroke-width=\"{s.width}\" stroke-linejoin=\"round\"{dash}/>")
        if s.markers and len(px) <= 40:
            frame.parts.append(f"<g fill=\"{s.colour}\">" + "".join(
                f"<circle cx=\"{a:.1f}\" cy=\"{b:.1f}\" r=\"3.5\"/>" for a, b in zip(px, py, strict=True)) + "</g>")
    return frame.svg(y_title)


def _scatter_svg(x: np.ndarray, y: np.ndarray, x_title: str, y_title: str) -> str:
    """Dots of (actual, predicted) on equal axes, with the dashed line of perfect answers."""
    low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    ticks = nice_ticks(low, high)
    legend = [("Test rows", COLOURS["model"], "dot"), ("Perfect prediction", COLOURS["baseline"], "dash")]
    frame = _frame((ticks[0], ticks[-1]), ticks, x_title, y_title, size=(HALF[0], 340), legend=legend)
    frame.parts.append(f"<g fill=\"{COLOURS['model']}\" fill-opacity=\"0.45\">" + "".join(
        f"<circle cx=\"{a:.1f}\" cy=\"{b:.1f}\" r=\"3.5\"/>" for a, b in zip(frame.sx(x), frame.sy(y), strict=True))
        + "</g>")
    (x0, x1), (y0, y1) = frame.sx([ticks[0], ticks[-1]]), frame.sy([ticks[0], ticks[-1]])
    frame.parts.append(f"<line x1=\"{x0:.1f}\" y1=\"{y0:.1f}\" x2=\"{x1:.1f}\" y2=\"{y1:.1f}\" "
                       f"stroke=\"{COLOURS['baseline']}\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>")
    return frame.svg(f"{y_title} against {x_title}")


def _histogram_svg(groups: list[tuple[str, np.ndarray, str]], x_title: str, *, threshold: float | None = None,
                   zero: bool = False, size: tuple[int, int] = HALF, y_title: str = "Rows") -> str:
    """Overlaid histograms on shared bins; ``threshold`` a red dashed line, ``zero`` a grey one at 0."""
    values = [np.asarray(v, dtype=np.float64) for _, v, _ in groups]
    both = np.concatenate(values) if values else np.zeros(1)
    if not both.size:
        return ""
    low = 0.0 if threshold is not None else float(both.min())
    high = float(max(both.max(), threshold if threshold is not None else -np.inf))
    high = high * 1.05 if threshold is not None else high
    if high <= low:
        low, high = low - 1.0, high + 1.0
    edges = np.linspace(low, high, int(np.clip(2 * np.sqrt(both.size), 12, 60)) + 1)
    counts = [np.histogram(v, bins=edges)[0] for v in values]
    top = max(int(c.max()) for c in counts)
    legend = [(name, colour, "dot") for name, _, colour in groups] if len(groups) > 1 else []
    frame = _frame((low, high), nice_ticks(0, top, integer=True), x_title, y_title, size=size, legend=legend)
    for (_, _, colour), count in zip(groups, counts, strict=True):
        bars = "".join(f"<rect x=\"{float(frame.sx(edges[k])):.1f}\" y=\"{float(frame.sy(n)):.1f}\" "
                       f"width=\"{max(float(frame.sx(edges[k + 1]) - frame.sx(edges[k])) - 1, 0.5):.1f}\" "
                       f"height=\"{float(frame.sy(0) - frame.sy(n)):.1f}\"/>" for k, n in enumerate(count) if n)
        frame.parts.append(f"<g fill=\"{colour}\" fill-opacity=\"{0.55 if len(groups) > 1 else 0.85}\">{bars}</g>")
    if threshold is not None:
        frame.vline(threshold, "threshold", COLOURS["bad"], "mark bad")
    if zero:
        frame.vline(0.0, "no error", COLOURS["actual"], "mark plain")
    return frame.svg(x_title)


def _diagram_svg(report: ShapeReport, input_text: str, output_text: str) -> str:
    """The design as boxes top to bottom, each arrow labelled with the shape it carries (the same
    picture as the app's Graphviz diagram, drawn without Graphviz)."""
    width, box_w, box_h, gap = 350, 270, 38, 24
    left = 18
    centre = left + box_w / 2
    boxes: list[tuple[str, str]] = [(input_text.replace(": ", "\n", 1), DIAGRAM_COLOURS["input"])]
    edges = []
    for row in report.rows:
        edges.append(row.input_text)
        if row.locked:
            caption = f"Output layer\n{row.params.get('out_features', '?')} value(s)"
            fill = DIAGRAM_COLOURS["head"]
        else:
            caption = f"{row.index + 1}. {layer_caption(row.type, row.params)}"
            fill = DIAGRAM_COLOURS["problem"] if row.problem is not None else DIAGRAM_COLOURS["layer"]
        boxes.append((caption, fill))
    edges.append(report.rows[-1].output_text if report.rows else "?")
    boxes.append((output_text.replace(": ", "\n", 1), DIAGRAM_COLOURS["input"]))
    height = len(boxes) * box_h + (len(boxes) - 1) * gap + 4
    parts = ["<defs><marker id=\"arrowhead\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" "
             "markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#5F6368\"/></marker></defs>"]
    tops = [2 + k * (box_h + gap) for k in range(len(boxes))]
    for k, ((caption, fill), y) in enumerate(zip(boxes, tops, strict=True)):
        radius = box_h / 2 if k in (0, len(boxes) - 1) else 7
        lines = caption.split("\n")[:2]
        parts.append(f"<rect x=\"{left}\" y=\"{y}\" width=\"{box_w}\" height=\"{box_h}\" rx=\"{radius:.0f}\" "
                     f"fill=\"{fill}\" stroke=\"#5F6368\"/>")
        first = y + (box_h / 2 + 4 if len(lines) == 1 else box_h / 2 - 3)
        parts.append(f"<text x=\"{centre:.0f}\" y=\"{first:.0f}\" class=\"box\" text-anchor=\"middle\">{e(lines[0])}</text>")
        if len(lines) > 1:
            parts.append(f"<text x=\"{centre:.0f}\" y=\"{first + 13:.0f}\" class=\"box sub\" "
                         f"text-anchor=\"middle\">{e(lines[1])}</text>")
        if k:
            y0, y1 = tops[k - 1] + box_h, y
            parts.append(f"<line x1=\"{centre:.0f}\" x2=\"{centre:.0f}\" y1=\"{y0}\" y2=\"{y1 - 1}\" stroke=\"#5F6368\" "
                         f"stroke-width=\"1.3\" marker-end=\"url(#arrowhead)\"/>"
                         f"<text x=\"{centre + 8:.0f}\" y=\"{(y0 + y1) / 2 + 4:.0f}\" class=\"edge\">{e(edges[k - 1])}</text>")
    for k, row in enumerate(report.rows, start=1):
        if row.type in LAYERS and LAYERS.get(row.type).extra.get(TAKES_INPUT):  # a side path also reads the input
            y_in, y_row, x = tops[0] + box_h / 2, tops[k] + box_h / 2, left + box_w + 10
            parts.append(f"<path d=\"M{left + box_w},{y_in:.0f} H{x} V{y_row:.0f} H{left + box_w + 1}\" fill=\"none\" "
                         f"stroke=\"#5F6368\" stroke-dasharray=\"4 3\" marker-end=\"url(#arrowhead)\"/>"
                         f"<text x=\"{x + 4}\" y=\"{(y_in + y_row) / 2:.0f}\" class=\"edge\">side path</text>")
    return (f"<svg class=\"diagram\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"Diagram of the network\">"
            f"<title>Diagram of the network</title>{''.join(parts)}</svg>")


# --- PDF ----------------------------------------------------------------------------------------------------------


def find_chromium() -> str | None:
    """The path of an installed Chromium or Chrome, or ``None``."""
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


def report_pdf(html_text: str, out: Path, *, timeout: float = PDF_TIMEOUT_S, chromium: str | None = None) -> Path | None:
    """Print the report to an A4 PDF at ``out`` with headless Chromium.

    Args:
        html_text: ``build_report``'s HTML.
        out: where the PDF goes (its folder is created).
        timeout: seconds before a hung Chromium is stopped.
        chromium: the browser to use; by default the first of ``CHROMIUM_NAMES`` on the PATH.

    Returns:
        ``out``, or ``None`` when no Chromium is installed.

    Raises:
        ReportError: Chromium failed, printed nothing, or ran past ``timeout``.
    """
    binary = chromium or find_chromium()
    if binary is None:
        return None
    out = Path(out)
    instead = "Download the HTML report and print it from your browser instead."
    with tempfile.TemporaryDirectory(prefix="report-pdf-") as folder:
        page, pdf = Path(folder) / "report.html", Path(folder) / "report.pdf"
        page.write_text(html_text, encoding="utf-8")
        command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   "--host-resolver-rules=MAP * ~NOTFOUND",  # the report needs no network: make sure of it
                   f"--user-data-dir={Path(folder) / 'profile'}", "--no-pdf-header-footer",
                   "--print-to-pdf-no-header", f"--print-to-pdf={pdf}", page.as_uri()]
        try:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise ReportError(f"Chromium ({binary}) could not be started to print the PDF: {exc.strerror or exc}. "
                              f"{instead}") from None
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(process)
            raise ReportError(f"Printing the report to PDF took longer than {timeout:g} s and was stopped. "
                              f"{instead}") from None
        printed = pdf.is_file() and pdf.read_bytes()[:5] == b"%PDF-"
        if process.returncode != 0 or not printed:
            last = (stderr or b"").decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
            log.warning("chromium failed to print (exit %s): %s", process.returncode, (stderr or b"")[-2000:])
            raise ReportError(f"Chromium could not print the report to PDF (exit code {process.returncode}: "
                              f"{last[0][:200]}). {instead}")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pdf, out)
    return out


def _stop(process: subprocess.Popen) -> None:
    """Kill Chromium and the helpers it started (its own process group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (AttributeError, ProcessLookupError, PermissionError):
        process.kill()
    process.communicate()


# --- the look -----------------------------------------------------------------------------------------------------

CSS = """
:root{--ink:#202124;--muted:#5F6368;--line:#DADCE0;--soft:#F8F9FA;--accent:#1A73E8;--good:#188038;--warn:#B06000}
*{box-sizing:border-box;-webkit-print-color-adjust:exact;print-color-adjust:exact}
html{background:#F1F3F4}
body{margin:0;color:var(--ink);font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:980px;margin:24px auto;background:#fff;padding:40px 48px;border-radius:14px;box-shadow:0 1px 3px rgba(60,64,67,.2)}
header{border-bottom:3px solid var(--accent);padding-bottom:14px;margin-bottom:8px}
.eyebrow{margin:0;color:var(--accent);font-weight:600;letter-spacing:.08em;text-transform:uppercase;font-size:12px}
h1{margin:4px 0 6px;font-size:30px;line-height:1.2}
.meta{margin:0;color:var(--muted);font-size:13.5px}
section{margin-top:30px}
h2{font-size:21px;margin:0 0 6px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:16px;margin:18px 0 6px}
.lead{color:var(--muted);margin:4px 0 14px}
.note{color:var(--muted);font-size:13.5px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px;margin:10px 0 14px}
.card{border:1px solid var(--line);border-radius:12px;padding:12px 14px;background:#fff}
.card.headline{border:2px solid var(--accent);background:#F4F8FE}
.card .label{font-size:13px;color:var(--muted);font-weight:600}
.card .value{font-size:32px;font-weight:700;line-height:1.15;margin:2px 0;font-variant-numeric:tabular-nums}
.card .vs{font-size:13px;color:var(--muted)}
.card .delta{font-size:13px;font-weight:600;margin-top:2px}
.card .help{font-size:12px;color:var(--muted);margin-top:6px;line-height:1.4}
.good{color:var(--good)}.bad{color:#C5221F}.same{color:var(--muted)}
.verdict{padding:12px 16px;border-radius:10px;border-left:5px solid;font-size:15.5px;margin:12px 0}
.verdict.good{background:#E6F4EA;border-color:var(--good);color:#0D652D}
.verdict.warn{background:#FEF7E0;border-color:#F9AB00;color:#5F3F00}
.verdict.neutral{background:var(--soft);border-color:var(--line);color:var(--ink)}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:6px 18px;margin:8px 0}
.facts dt{color:var(--muted);font-weight:600;font-size:13.5px}.facts dd{margin:0}
.chip{display:inline-block;background:#E8F0FE;color:#174EA6;border-radius:12px;padding:1px 9px;margin:1px 4px 1px 0;font-size:13px}
.split{display:flex;height:10px;border-radius:5px;overflow:hidden;margin:5px 0 3px;max-width:420px}
.tbl{border-collapse:collapse;font-size:14px;margin:6px 0;font-variant-numeric:tabular-nums}
.tbl th{background:var(--soft);text-align:left;font-weight:600;color:#3C4043}
.tbl th,.tbl td{border-bottom:1px solid var(--line);padding:5px 10px;vertical-align:top}
.tbl tfoot td{font-weight:600;border-bottom:none}
.tbl td:first-child,.tbl td:nth-child(2):not(.num){overflow-wrap:anywhere}
.tbl.small{font-size:12.5px}
.num{text-align:right;font-variant-numeric:tabular-nums}
.wide{overflow-x:auto}
.matrix{border-collapse:separate;border-spacing:3px;font-size:14px;font-variant-numeric:tabular-nums}
.matrix td{min-width:64px;text-align:center;padding:8px 6px;border-radius:5px;font-weight:600}
.matrix td.zero{background:#F8F9FA;color:#BDC1C6;font-weight:400}
.matrix td small{display:block;font-weight:400;font-size:11px;opacity:.85}
.matrix th{font-weight:600;font-size:13px;padding:4px 6px;color:#3C4043}
.matrix tbody th{text-align:right}
.matrix .corner{font-weight:400;color:var(--muted);font-size:11px}
.pair{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:18px;align-items:start}
.pair>*{min-width:0}
.pair.design{grid-template-columns:minmax(0,1fr) 320px}
.pair.classes{grid-template-columns:auto minmax(0,1fr)}
.pair.classes>figure{width:min-content;min-width:280px}
figure{margin:8px 0}
figcaption{font-size:13px;color:var(--muted);margin-top:4px}
svg.chart{width:100%;height:auto;display:block}
svg.diagram{width:100%;max-width:340px;height:auto;display:block;margin:0 auto}
svg text{fill:#3C4043;font-size:13px}
svg .tick{fill:var(--muted);font-size:12.5px}svg .title{font-size:13px;font-weight:600}
svg .legend{font-size:13px}svg .mark{fill:var(--good);font-size:12px;font-weight:600}svg .mark.bad{fill:#C5221F}
svg .mark.plain{fill:var(--muted)}
svg .grid{stroke:#EEF0F2}svg .axis{stroke:#BDC1C6}
svg .box{font-size:12px;font-weight:600}svg .box.sub{font-weight:400;font-size:11px}svg .edge{fill:var(--muted);font-size:10.5px}
.bars{display:grid;gap:10px;margin:8px 0}
.bar-row{display:grid;grid-template-columns:minmax(120px,220px) 1fr 90px;gap:4px 12px;align-items:center}
.bar-label{font-weight:600;overflow-wrap:anywhere}
.bar-track{background:var(--soft);border-radius:4px;height:14px}
.bar-track span{display:block;height:100%;background:var(--accent);border-radius:4px}
.bar-value{text-align:right;font-variant-numeric:tabular-nums;color:var(--muted);font-size:13px}
.bar-sentence{grid-column:2/4;font-size:13px;color:var(--muted);margin-top:-2px}
.tiles{display:flex;flex-wrap:wrap;gap:10px}
.tile{width:120px;margin:0}.tile img{width:112px;height:112px;image-rendering:pixelated;border:1px solid var(--line);border-radius:6px}
.tile figcaption{font-size:11.5px}
.card-text{font-size:13.5px;color:#3C4043}
.card-text h3{font-size:16px}.card-text h4{font-size:14.5px;margin:14px 0 4px}
.card-text p{margin:6px 0}.card-text ul{margin:4px 0;padding-left:20px}
code{background:var(--soft);border-radius:4px;padding:0 4px;font-size:.92em}
pre{background:var(--soft);padding:10px;border-radius:6px;overflow-x:auto;font-size:12px}
footer{margin-top:34px;padding-top:10px;border-top:1px solid var(--line);color:var(--muted);font-size:12.5px}
@page{size:A4;margin:14mm 13mm 16mm}
@media print{
html{background:#fff}body{font-size:10.5pt}
main{max-width:none;margin:0;padding:0;box-shadow:none;border-radius:0}
section{margin-top:18px}
h2{break-after:avoid}h3{break-after:avoid}
.card,figure,.verdict,.matrix,.tbl tr,.bar-row,.facts{break-inside:avoid}
.pair{grid-template-columns:repeat(auto-fit,minmax(300px,1fr))}
.pair.design{grid-template-columns:minmax(0,1fr) 260px}
.pair.classes{grid-template-columns:auto minmax(0,1fr)}
.tbl{font-size:9.5pt}
#card{break-before:page}
}
"""
