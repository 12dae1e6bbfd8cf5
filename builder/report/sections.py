"""The report's sections of prose, numbers and tables: the result against the baseline (and the plain
verdict), the data, what drives the predictions, the network's design, how training went and the model
card. Each returns one ``<section>``'s HTML, or "" to leave it out; the decision threshold
(``threshold``) and the test data in detail (``results``) have modules of their own.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from builder.data.preprocess import ANOMALY_TASK
from builder.diagram import layer_caption, output_label
from builder.errors import BuilderError
from builder.evaluate import HEADLINE_METRIC, METRICS, compare_to_baseline, verdict
from builder.export.card import TASK_WORDS, model_card
from builder.layers import LAYERS
from builder.report.common import COLOURS, ReportError, e, fmt, section
from builder.report.diagram_svg import diagram_svg
from builder.report.markdown import markdown_html
from builder.report.svg import Series, line_svg
from builder.results import baseline_short_name, forecast_comparison
from builder.shapes import infer_shapes
from builder.spec import FAMILIES
from builder.trained import TrainedModel
from builder.wording import count

log = logging.getLogger(__name__)

MAX_IMPORTANCES = 15  # columns shown in the explanations
MAX_DESIGN_ROWS_DRAWN = 40  # a longer design gets its table, not a picture
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


# --- the result: big numbers and the verdict -----------------------------------------------------------------------


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


def summary_section(trained: TrainedModel) -> str:
    test = trained.metrics.get("test") or {}
    if not test:
        return section("result", "The result", "", "<p>No test data was scored for this run.</p>")
    base = trained.baseline.metrics if trained.baseline is not None else {}
    comparisons = ({c.metric: c for c in compare_to_baseline(trained.task, test, base, baseline_short_name(trained))}
                   if base and trained.task != ANOMALY_TASK else {})
    headline = HEADLINE_METRIC.get(trained.task)
    cards = []
    for metric, value in test.items():
        info = METRICS.get(metric)
        label = info.label if info else metric
        lines = [f"<div class=\"label\">{e(label)}</div><div class=\"value\">{e(fmt(metric, value))}</div>"]
        if metric in base:
            lines.append(f"<div class=\"vs\">Baseline: {e(fmt(metric, base[metric]))}</div>")
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
    return section("result", "The result", f"Scores on {scored}, which the model never saw while it "
                   f"learned{against}.", body)


# --- the data ------------------------------------------------------------------------------------------------------


def data_section(trained: TrainedModel) -> str:
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
                  ("Forecast", f"the next {count(pre.horizon, 'step')}")]
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
    return section("data", "The data", "What the model learned from, and how the rows were shared out: it "
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


# --- explanations --------------------------------------------------------------------------------------------------


@dataclass
class _Importance:
    column: str
    importance: float
    sentence: str
    spread: float | None = None


def importances(items: Sequence) -> list[_Importance]:
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


def explanations_section(items: list[_Importance]) -> str:
    shown = items[:MAX_IMPORTANCES]
    top = max((abs(i.importance) for i in shown), default=0.0) or 1.0
    rows = "".join(
        f"<div class=\"bar-row\"><div class=\"bar-label\">{e(i.column)}</div><div class=\"bar-track\">"
        f"<span style=\"width:{max(abs(i.importance) / top * 100, 0.5):.1f}%\"></span></div>"
        f"<div class=\"bar-value\">{i.importance:.3g}{f' ± {i.spread:.2g}' if i.spread is not None else ''}</div>"
        + (f"<div class=\"bar-sentence\">{e(i.sentence)}</div>" if i.sentence else "") + "</div>"
        for i in shown)
    more = f"<p class=\"note\">{count(len(items) - len(shown), 'less important column')} left out.</p>" if len(items) > len(shown) else ""
    return section("explanations", "What drives the predictions", "How much each input column moves the model's "
                   "answers on the test rows, the strongest first. It shows what the model relies on, not what "
                   "causes the outcome.", f"<div class=\"bars\">{rows}</div>{more}")


# --- the design ----------------------------------------------------------------------------------------------------


def design_section(trained: TrainedModel) -> str:
    family = FAMILIES.get(trained.spec.effective_family())
    intro = f"<b>{e(family.title)}</b>: {e(family.summary)}" if family else e(trained.spec.family)
    try:
        shape = trained.shape
        with shape.scope():
            report = infer_shapes(trained.spec, trained.input_shape, trained.n_outputs)
    except BuilderError as exc:
        log.warning("report: the design's shapes could not be worked out: %s", exc)
        return section("design", "The model", intro, "")
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
        return section("design", "The model", intro, table + note)
    diagram = diagram_svg(report, shape.input_label, output_label(trained.task, trained.n_outputs))
    return section("design", "The model", intro,
                   f"<div class=\"pair design\"><div>{table}{note}</div><figure>{diagram}</figure></div>")


# --- training ------------------------------------------------------------------------------------------------------


def training_section(trained: TrainedModel) -> str:
    history, config = trained.history, trained.config
    if not history.epochs_run:
        return ""
    epochs = np.asarray(history.epoch, dtype=np.float64)
    best = history.best_epoch
    marks = [(float(best), f"model kept (epoch {best})")] if best else []
    loss = line_svg([Series("Training", epochs, np.asarray(history.loss), COLOURS["model"], markers=True),
                     Series("Validation", epochs, np.asarray(history.val_loss), COLOURS["validation"], markers=True)],
                    x_title="Epoch", y_title="Loss (lower is better)", marks=marks, epochs=True)
    figures = [f"<figure>{loss}<figcaption>How wrong the model was while it learned, on the training rows and on "
               "the validation rows it did not learn from.</figcaption></figure>"]
    metric = _metric_curve(trained, epochs, marks)
    if metric:
        figures.append(metric)
    why = STOP_WORDS.get(history.stopped_reason, history.stopped_reason)
    kept = (f" The validation loss was lowest at epoch <b>{best}</b>; the model keeps the weights of that epoch."
            if best else "")
    text = (f"<p>Trained for <b>{history.epochs_run}</b> {'epoch' if history.epochs_run == 1 else 'epochs'} in {trained.seconds:.1f} s on {e(trained.device)}, "
            f"and it stopped because {e(why)}.{kept}</p>"
            f"<p class=\"note\">Settings: up to {config.epochs} epochs, batches of {config.batch_size}, learning rate "
            f"{config.lr:g}, optimizer {e(config.optimizer)}, seed {config.seed}.</p>")
    if trained.info.get("warning"):
        text += f"<p class=\"verdict warn\">{e(trained.info['warning'])}</p>"
    return section("training", "How training went", "", text + f"<div class=\"pair\">{''.join(figures)}</div>")


def _metric_curve(trained: TrainedModel, epochs: np.ndarray, marks: list) -> str:
    metrics = trained.history.metrics
    if trained.task in ("regression", "forecast") and metrics.get("val_rmse"):
        series = [Series("Validation", epochs, np.asarray(metrics["val_rmse"]), COLOURS["validation"], markers=True)]
        title, percent = "Typical error, RMSE (lower is better)", False
    elif trained.task in ("binary", "multiclass"):
        series = [Series(name, epochs, np.asarray(metrics[key]) * 100, colour, markers=True)
                  for name, key, colour in (("Training", "accuracy", COLOURS["model"]),
                                            ("Validation", "val_accuracy", COLOURS["validation"]))
                  if metrics.get(key)]
        title, percent = "Accuracy (higher is better)", True
    else:
        return ""
    if not series:
        return ""
    chart = line_svg(series, x_title="Epoch", y_title=title, marks=marks, epochs=True, percent=percent)
    return f"<figure>{chart}<figcaption>{e(title.split(' (')[0])} per epoch.</figcaption></figure>"


# --- the model card ------------------------------------------------------------------------------------------------


def card_section(trained: TrainedModel) -> str:
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
    return section("card", "Model card", "The model card that travels with the exported model (its README.md), "
                   "without the part on how to run its files.", f"<div class=\"card-text\">{markdown_html(chr(10).join(kept))}</div>")
