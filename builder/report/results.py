"""The report's section on the test data in detail, by task: a classifier's confusion matrix and
precision and recall per class, a regression's predictions against the truth and its misses, a
forecast over the test period against simple forecasts, an anomaly model's scores and most unusual
rows; then some images or texts the model got wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from builder.data.preprocess import ANOMALY_TASK
from builder.errors import BuilderError
from builder.evaluate import METRICS, confusion, downsample, format_metric, regression_diagnostics
from builder.i18n import tr, tr_message
from builder.report.common import COLOURS, e, fmt, section
from builder.report.svg import HALF, WIDE, Series, as_days, histogram_svg, line_svg, scatter_svg
from builder.report.threshold import binary_predictions
from builder.results import anomaly_view, forecast_comparison, forecast_lines
from builder.trained import TrainedModel

log = logging.getLogger(__name__)

MAX_SCATTER_POINTS = 1_500  # dots of the predicted-vs-actual chart (about 60 bytes each)
MAX_MATRIX_CLASSES = 20  # a larger confusion matrix does not fit an A4 page
MAX_UNUSUAL_ROWS = 10  # anomaly rows listed


def results_section(trained: TrainedModel, threshold: float) -> str:
    results = trained.test_results or {}
    try:
        if trained.task == "forecast":
            body, heading = _forecast_results(trained, results), tr("The forecast over the test period")
        elif trained.task == ANOMALY_TASK:
            body, heading = _anomaly_results(results), tr("Unusual rows")
        elif not results.get("actual"):
            return ""
        elif trained.task == "regression":
            body, heading = _regression_results(trained, results), tr("Predictions against the truth")
        else:
            body, heading = _classification_results(trained, results, threshold), tr("Where the model goes wrong")
    except BuilderError as exc:  # kept results that cannot be drawn: say so, keep the rest of the report
        log.warning("report: the test results could not be drawn: %s", exc)
        return section("details", tr("The test data in detail"), "", f"<p class=\"note\">{e(tr_message(str(exc)))}</p>")
    if trained.kind == "images" and results.get("mistakes"):
        body += _image_mistakes(results["mistakes"])
    elif trained.kind == "text" and results.get("mistakes"):
        body += _text_mistakes(results["mistakes"])
    return section("details", heading, "", body)


def _classification_results(trained: TrainedModel, results: dict[str, Any], threshold: float) -> str:
    actual = np.asarray(results["actual"], dtype=object)
    predicted = np.asarray(results["predicted"], dtype=object)
    if trained.task == "binary":
        at = binary_predictions(trained, threshold)
        predicted = at if at is not None else predicted
    matrix = confusion(actual, predicted, trained.preprocessor.classes)
    counts = matrix.counts
    items = tr({"images": "images", "text": "texts"}.get(trained.kind, "rows"))
    found, named, truth = np.diag(counts), counts.sum(axis=0), counts.sum(axis=1)  # (k,) each
    per_class = "".join(
        f"<tr><td>{e(c)}</td><td class=\"num\">{int(truth[i]):,}</td>"
        f"<td class=\"num\">{_share(found[i], named[i])}</td><td class=\"num\">{_share(found[i], truth[i])}</td></tr>"
        for i, c in enumerate(matrix.classes))
    table = (f"<table class=\"tbl\"><thead><tr><th>{tr('Class')}</th><th>{tr('Test {items}', items=items)}</th>"
             f"<th title=\"{tr('When the model says this class, how often it is right')}\">{tr('Precision')}</th>"
             f"<th title=\"{tr('Of the test {items} truly in this class, the share the model finds', items=items)}\">"
             f"{tr('Recall')}</th></tr></thead><tbody>{per_class}</tbody></table><p class=\"note\">"
             + tr("Precision: when the model names the class, how often it is right. Recall: of the {items} truly in "
                  "the class, the share the model finds.", items=items) + "</p>")
    if len(matrix.classes) > MAX_MATRIX_CLASSES:
        return table
    figure = (f"<figure class=\"wide\">{_confusion_table(matrix.classes, counts, matrix.normalized)}"
              "<figcaption>" + tr("Each row is what the test {items} really are, each column what the model said. "
                                  "The diagonal holds the right answers; everything else is a mix-up.", items=items)
              + "</figcaption></figure>")
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
    return (f"<table class=\"matrix\"><thead><tr><th class=\"corner\">{tr('true ↓ / said →')}</th>{header}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _regression_results(trained: TrainedModel, results: dict[str, Any]) -> str:
    found = regression_diagnostics(results["actual"], results["predicted"])
    target = str(trained.data_spec.target)
    misses = np.abs(found.residuals)
    half, most = float(np.quantile(misses, 0.5)), float(np.quantile(misses, 0.9))
    keep = downsample(len(found.actual), MAX_SCATTER_POINTS)
    scatter = scatter_svg(found.actual[keep], found.predicted[keep], tr("Actual {target}", target=target),
                          tr("Predicted {target}", target=target),
                          tr("Predicted {target} against Actual {target}", target=target))
    spread = histogram_svg([(tr("Test rows"), found.residuals, COLOURS["model"])],
                           tr("Actual minus predicted {target}", target=target), zero=True, size=(HALF[0], 340))
    return ("<p>" + tr("Half of the test predictions are within <b>{half}</b> of the real value, and 9 in 10 within "
                       "<b>{most}</b> (in the units of {target}).", half=e(format_metric("mae", half)),
                       most=e(format_metric("mae", most)), target=e(target))
            + f"</p><div class=\"pair\"><figure>{scatter}<figcaption>"
            + tr("Each dot is a test row: across, its real {target}; up, the model's prediction. Dots on the dashed "
                 "line are predicted exactly; the further from it, the bigger the miss.", target=e(target))
            + f"</figcaption></figure><figure>{spread}<figcaption>"
            + tr("How big the misses are: bunched around 0 is good; a long tail means some rows are badly missed.")
            + "</figcaption></figure></div>")


def _forecast_results(trained: TrainedModel, results: dict[str, Any]) -> str:
    lines = forecast_lines(results, step=1)
    best = forecast_comparison(trained.metrics.get("test") or {}, trained.info.get("forecast_baselines") or {})
    series = []
    if len(lines.history_times):
        series.append(Series(tr("Before the test period"), as_days(lines.history_times), lines.history_values,
                             COLOURS["baseline"], width=1.5))
    series.append(Series(tr("Actual"), as_days(lines.actual_times), lines.actual_values, COLOURS["actual"]))
    series.append(Series(tr("Network, {label}", label=tr_message(lines.label)), as_days(lines.times),
                         lines.predicted, COLOURS["model"], width=2.5))
    if best.best in lines.baselines:
        series.append(Series(tr_message(f"{best.best.capitalize()} forecast"), as_days(lines.times),
                             lines.baselines[best.best], COLOURS["validation"], dash="6 4", width=1.8))
    chart = line_svg(series, x_title="", y_title=str(results.get("target", trained.data_spec.target)),
                     dates=True, size=WIDE)
    rows = "".join(f"<tr><td>{e(tr_message(row['Forecast']))}</td>" + "".join(
        f"<td class=\"num\">{e(fmt(m, row[m]))}</td>" for m in ("rmse", "mae", "r2")) + "</tr>"
        for row in best.table.to_dict(orient="records"))
    head = "".join(f"<th>{e(tr_message(METRICS[m].label))}</th>" for m in ("rmse", "mae", "r2"))
    table = (f"<table class=\"tbl\"><thead><tr><th>{tr('Forecast')}</th>{head}</tr></thead><tbody>{rows}</tbody>"
             "</table>")
    return (f"<figure>{chart}<figcaption>" + tr("The network's forecast one step ahead along the test period, next "
                                                 "to what really happened and the best simple forecast.")
            + f"</figcaption></figure><h3>{tr('Against simple forecasts')}</h3>{table}")


def _anomaly_results(results: dict[str, Any]) -> str:
    view = anomaly_view(results)
    chart = histogram_svg([(tr("Validation rows"), view.val_errors, COLOURS["validation"]),
                           (tr("Test rows"), view.test_errors, COLOURS["model"])],
                          tr("Anomaly score (reconstruction error)"), threshold=view.threshold, size=WIDE)
    body = (f"<figure>{chart}<figcaption>"
            + tr("How unusual the rows are; rows right of the red line are flagged. The threshold {threshold:.4g} is "
                 "set so {quantile:.1%} of the validation rows (rows like the training data) stay below it.",
                 threshold=view.threshold, quantile=view.quantile)
            + "</figcaption></figure><p>"
            + tr("<b>{flagged:,}</b> of the {total:,} test rows are above the threshold.", flagged=view.flagged,
                 total=len(view.test_errors)) + "</p>")
    if len(view.rows):
        top = view.rows.head(MAX_UNUSUAL_ROWS)
        head = "".join(f"<th>{e(c)}</th>" for c in top.columns)
        rows = "".join("<tr>" + "".join(f"<td>{e(_cell(v))}</td>" for v in row) + "</tr>"
                       for row in top.itertuples(index=False))
        body += (f"<h3>{tr('The most unusual test rows')}</h3><div class=\"wide\"><table class=\"tbl small\"><thead><tr>{head}"
                 f"</tr></thead><tbody>{rows}</tbody></table></div>")
    return body


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _image_mistakes(mistakes: list[dict[str, Any]]) -> str:
    tiles = "".join(
        f"<figure class=\"tile\"><img alt=\"{e(m.get('file', ''))}\" src=\"{e(m['image'])}\">"
        "<figcaption>" + tr("really <b>{actual}</b>, said <b>{predicted}</b> ({confidence:.0%})", actual=e(m["actual"]),
                            predicted=e(m["predicted"]), confidence=m["confidence"]) + "</figcaption></figure>"
        for m in mistakes[:12] if str(m.get("image", "")).startswith("data:image/png;base64,"))
    return f"<h3>{tr('Some images it got wrong')}</h3><div class=\"tiles\">{tiles}</div>" if tiles else ""


def _text_mistakes(mistakes: list[dict[str, Any]]) -> str:
    empty = f"<i class=\"note\">{tr('(empty)')}</i>"
    rows = "".join(f"<tr><td>{e(m['text']) or empty}</td><td>{e(m['actual'])}</td><td>{e(m['predicted'])}</td>"
                   f"<td class=\"num\">{m['confidence']:.0%}</td></tr>" for m in mistakes[:10])
    return (f"<h3>{tr('Some texts it got wrong')}</h3><table class=\"tbl small\"><thead><tr><th>{tr('Text')}</th>"
            f"<th>{tr('Really')}</th><th>{tr('Said')}</th><th>{tr('Sure')}</th></tr></thead><tbody>{rows}</tbody></table>")
