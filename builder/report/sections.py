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
from builder.diagram import output_label
from builder.errors import BuilderError
from builder.evaluate import HEADLINE_METRIC, METRICS, compare_to_baseline, verdict
from builder.export.card import TASK_WORDS, model_card
from builder.i18n import DEFAULT_LANGUAGE, current_language, tr, tr_count, tr_message
from builder.layers import LAYERS
from builder.report.common import COLOURS, ReportError, caption, e, fmt, section
from builder.report.diagram_svg import diagram_svg
from builder.report.markdown import markdown_html
from builder.report.svg import Series, line_svg
from builder.results import baseline_short_name, forecast_comparison
from builder.shapes import infer_shapes
from builder.spec import FAMILIES
from builder.trained import TrainedModel

log = logging.getLogger(__name__)

MAX_IMPORTANCES = 15  # columns shown in the explanations
MAX_DESIGN_ROWS_DRAWN = 40  # a longer design gets its table, not a picture
KIND_WORDS = {"table": "a table", "images": "images", "text": "texts", "series": "a time series"}
UNITS = {"images": "images", "text": "texts", "series": "windows"}  # what a split counts; rows otherwise
UNIT_PHRASES = {  # the phrases that name a unit without a number: the test part, and the label of the split
    "rows": ("the test rows", "Rows per split"), "images": ("the test images", "Images per split"),
    "texts": ("the test texts", "Texts per split"), "windows": ("the test windows", "Windows per split"),
}
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
        return section("result", tr("The result"), "", f"<p>{tr('No test data was scored for this run.')}</p>")
    base = trained.baseline.metrics if trained.baseline is not None else {}
    comparisons = ({c.metric: c for c in compare_to_baseline(trained.task, test, base, baseline_short_name(trained))}
                   if base and trained.task != ANOMALY_TASK else {})
    headline = HEADLINE_METRIC.get(trained.task)
    cards = []
    for metric, value in test.items():
        info = METRICS.get(metric)
        label = tr_message(info.label) if info else metric
        lines = [f"<div class=\"label\">{e(label)}</div><div class=\"value\">{e(fmt(metric, value))}</div>"]
        if metric in base:
            lines.append(f"<div class=\"vs\">{tr('Baseline: {value}', value=e(fmt(metric, base[metric])))}</div>")
        if metric in comparisons:
            found = comparisons[metric]
            tone = "good" if found.better else ("same" if found.sentence.startswith("about") else "bad")
            lines.append(f"<div class=\"delta {tone}\">{e(tr_message(found.sentence))}</div>")
        if info:
            lines.append(f"<div class=\"help\">{e(tr_message(info.help))}</div>")
        cards.append(f"<div class=\"card{' headline' if metric == headline else ''}\">{''.join(lines)}</div>")
    body = f"<div class=\"cards\">{''.join(cards)}</div>"
    found = report_verdict(trained)
    if found is not None:
        sentence, better = found
        body += (f"<p class=\"verdict {'good' if better else 'warn'}\"><b>{tr('Worth using:' if better else 'Not yet:')}"
                 f"</b> {e(tr_message(sentence))}</p>")
    elif trained.task == ANOMALY_TASK:
        body += ("<p class=\"verdict neutral\">" + tr("An anomaly model has no right answers to score against: judge "
                                                       "it by the rows it flags, below.") + "</p>")
    if trained.baseline is not None:
        body += ("<p class=\"note\">" + tr("The baseline, <b>{name}</b>, was fitted on the same training data and "
                                           "scored on the same test data. {description}",
                                           name=e(tr_message(trained.baseline.name)),
                                           description=e(tr_message(trained.baseline.description))) + "</p>")
    unit = UNITS.get(trained.kind, "rows")
    rows = (trained.info.get("rows") or {}).get("test")
    scored = (tr("the {rows:,} test {unit}", rows=rows, unit=tr(unit)) if isinstance(rows, int)
              else tr(UNIT_PHRASES[unit][0]))
    against = "" if trained.task == ANOMALY_TASK else tr(", next to a simple baseline any model should beat")
    return section("result", tr("The result"), tr("Scores on {scored}, which the model never saw while it "
                                                  "learned{against}.", scored=scored, against=against), body)


# --- the data ------------------------------------------------------------------------------------------------------


def data_section(trained: TrainedModel) -> str:
    pre, spec = trained.preprocessor, trained.data_spec
    facts: list[tuple[str, str]] = [
        (tr("Data"), e(tr(KIND_WORDS.get(trained.kind, trained.kind).capitalize())))]
    if trained.info.get("source"):
        facts.append((tr("File"), e(trained.info["source"])))
    facts.append((tr("Task"), e(tr_message(TASK_WORDS.get(trained.task, trained.task).capitalize()))))
    if spec.target is not None:
        facts.append((tr("Column to predict"), f"<b>{e(spec.target)}</b>"))
    classes = list(getattr(pre, "classes", None) or [])
    if classes and trained.task in ("binary", "multiclass"):
        facts.append((tr("Classes ({n})", n=len(classes)), _chips(classes)))
    if trained.kind == "series":
        facts += [(tr("Time column"), e(pre.time_column)),
                  (tr("Window"), tr("the last {window} steps", window=pre.window)),
                  (tr("Forecast"), tr("the next {steps}", steps=tr_count(pre.horizon, "step")))]
    elif trained.kind == "text":
        facts.append((tr("Text column"), e(pre.text_column)))
    elif trained.kind == "images":
        channels, height, width = trained.input_shape
        facts.append((tr("Images"), tr("{width}x{height} pixels, {colour}", width=width, height=height,
                                       colour=tr("grayscale" if channels == 1 else "colour"))))
    rows = trained.info.get("rows") or {}
    unit = UNITS.get(trained.kind, "rows")
    if rows:
        facts.append((tr(UNIT_PHRASES[unit][1]), _split_bar(rows, unit)))
    body = "<dl class=\"facts\">" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
    kinds = getattr(pre, "kinds", None) if trained.kind == "table" else None
    if kinds:
        body += (f"<h3>{tr('Input columns')}</h3><table class=\"tbl\"><thead><tr><th>{tr('Column')}</th>"
                 f"<th>{tr('Read as')}</th></tr></thead><tbody>"
                 + "".join(f"<tr><td>{e(c)}</td><td>{e(tr_message(how))}</td></tr>" for c, how in kinds.items())
                 + "</tbody></table>")
    elif spec.features and trained.kind == "series":
        body += f"<p>{tr('Value column(s): {columns}', columns=_chips(spec.features))}</p>"
    return section("data", tr("The data"), tr("What the model learned from, and how the rows were shared out: it "
                                              "learned from the training part, chose when to stop on the validation "
                                              "part, and was scored on the test part only."), body)


def _chips(values: Sequence[Any], limit: int = 30) -> str:
    shown = "".join(f"<span class=\"chip\">{e(v)}</span>" for v in list(values)[:limit])
    return shown + (" " + tr("and {n} more", n=len(values) - limit) if len(values) > limit else "")


def _split_bar(rows: dict[str, Any], unit: str) -> str:
    counts = {k: int(v) for k, v in rows.items() if isinstance(v, int | float) and v}
    total = sum(counts.values()) or 1
    colours = {"train": COLOURS["model"], "validation": COLOURS["validation"], "test": COLOURS["actual"]}
    bar = "".join(f"<span style=\"flex:{n};background:{colours.get(k, COLOURS['baseline'])}\"></span>"
                  for k, n in counts.items())
    words = tr(", ").join(tr("<b>{n:,}</b> {split} ({share:.0%})", n=n, split=e(tr(k)), share=n / total)
                          for k, n in counts.items())
    # English names the unit last ("... 75 test (15%) rows"); other languages in the label ("Rows per split").
    tail = f" {unit}" if current_language() == DEFAULT_LANGUAGE else ""
    return f"<div class=\"split\">{bar}</div>{words}{tail}"


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
        + (f"<div class=\"bar-sentence\">{e(tr_message(i.sentence))}</div>" if i.sentence else "") + "</div>"
        for i in shown)
    more = ("<p class=\"note\">" + tr("{columns} left out.", columns=tr_count(len(items) - len(shown),
                                                                             "less important column")) + "</p>"
            if len(items) > len(shown) else "")
    return section("explanations", tr("What drives the predictions"), tr(
        "How much each input column moves the model's answers on the test rows, the strongest first. It shows what "
        "the model relies on, not what causes the outcome."), f"<div class=\"bars\">{rows}</div>{more}")


# --- the design ----------------------------------------------------------------------------------------------------


def design_section(trained: TrainedModel) -> str:
    family = FAMILIES.get(trained.spec.effective_family())
    intro = (tr("<b>{title}</b>: {summary}", title=e(tr_message(family.title)), summary=e(tr_message(family.summary)))
             if family else e(trained.spec.family))
    heading = tr("The model")
    try:
        shape = trained.shape
        with shape.scope():
            report = infer_shapes(trained.spec, trained.input_shape, trained.n_outputs)
    except BuilderError as exc:
        log.warning("report: the design's shapes could not be worked out: %s", exc)
        return section("design", heading, intro, "")
    rows = []
    for row in report.rows:
        if row.locked:
            name, setting = tr("Output layer"), tr("{n} value(s)", n=row.params.get("out_features", "?"))
        else:
            lines = caption(row.type, row.params).split("\n")
            name, setting = lines[0], lines[1] if len(lines) > 1 else ""
        summary = tr_message(LAYERS.get(row.type).summary) if row.type in LAYERS else ""
        rows.append(f"<tr><td class=\"num\">{row.index + 1}</td><td title=\"{e(summary)}\">{e(name)}</td>"
                    f"<td>{e(setting)}</td><td class=\"num\">{e(row.output_text)}</td>"
                    f"<td class=\"num\">{row.n_params:,}</td></tr>")
    table = (f"<table class=\"tbl\"><thead><tr><th>#</th><th>{tr('Layer')}</th><th>{tr('Setting')}</th>"
             f"<th>{tr('Output shape')}</th><th>{tr('Parameters')}</th></tr></thead><tbody>{''.join(rows)}</tbody>"
             f"<tfoot><tr><td></td><td colspan=\"3\">{tr('Total, learned in training')}</td>"
             f"<td class=\"num\">{report.total_params:,}</td></tr></tfoot></table>")
    output = tr_message(output_label(trained.task, trained.n_outputs))
    note = ("<p class=\"note\">" + tr("{input}. The output layer is sized by the task: {output}.",
                                      input=e(tr_message(shape.input_label)),
                                      output=e(output.removeprefix(tr("Output: ")))) + "</p>")
    if len(report.rows) > MAX_DESIGN_ROWS_DRAWN:
        return section("design", heading, intro, table + note)
    diagram = diagram_svg(report, tr_message(shape.input_label), output)
    return section("design", heading, intro,
                   f"<div class=\"pair design\"><div>{table}{note}</div><figure>{diagram}</figure></div>")


# --- training ------------------------------------------------------------------------------------------------------


def training_section(trained: TrainedModel) -> str:
    history, config = trained.history, trained.config
    if not history.epochs_run:
        return ""
    epochs = np.asarray(history.epoch, dtype=np.float64)
    best = history.best_epoch
    marks = [(float(best), tr("model kept (epoch {epoch})", epoch=best))] if best else []
    loss = line_svg([Series(tr("Training"), epochs, np.asarray(history.loss), COLOURS["model"], markers=True),
                     Series(tr("Validation"), epochs, np.asarray(history.val_loss), COLOURS["validation"],
                            markers=True)],
                    x_title=tr("Epoch"), y_title=tr("Loss (lower is better)"), marks=marks, epochs=True)
    figures = [f"<figure>{loss}<figcaption>" + tr("How wrong the model was while it learned, on the training rows "
                                                  "and on the validation rows it did not learn from.")
               + "</figcaption></figure>"]
    metric = _metric_curve(trained, epochs, marks)
    if metric:
        figures.append(metric)
    why = tr_message(STOP_WORDS.get(history.stopped_reason, history.stopped_reason))
    kept = (tr(" The validation loss was lowest at epoch <b>{epoch}</b>; the model keeps the weights of that epoch.",
               epoch=best) if best else "")
    trained_for = ("Trained for <b>{runs}</b> epoch in {seconds:.1f} s on {device}, and it stopped because {why}."
                   if history.epochs_run == 1 else
                   "Trained for <b>{runs}</b> epochs in {seconds:.1f} s on {device}, and it stopped because {why}.")
    text = (f"<p>{tr(trained_for, runs=history.epochs_run, seconds=trained.seconds, device=e(tr_message(trained.device)), why=e(why))}"
            f"{kept}</p><p class=\"note\">"
            + tr("Settings: up to {epochs} epochs, batches of {batch_size}, learning rate {lr:g}, optimizer "
                 "{optimizer}, seed {seed}.", epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                 optimizer=e(config.optimizer), seed=config.seed) + "</p>")
    if trained.info.get("warning"):
        text += f"<p class=\"verdict warn\">{e(tr_message(trained.info['warning']))}</p>"
    return section("training", tr("How training went"), "", text + f"<div class=\"pair\">{''.join(figures)}</div>")


def _metric_curve(trained: TrainedModel, epochs: np.ndarray, marks: list) -> str:
    metrics = trained.history.metrics
    if trained.task in ("regression", "forecast") and metrics.get("val_rmse"):
        series = [Series(tr("Validation"), epochs, np.asarray(metrics["val_rmse"]), COLOURS["validation"],
                         markers=True)]
        title, what, percent = tr("Typical error, RMSE (lower is better)"), tr("Typical error, RMSE"), False
    elif trained.task in ("binary", "multiclass"):
        series = [Series(tr(name), epochs, np.asarray(metrics[key]) * 100, colour, markers=True)
                  for name, key, colour in (("Training", "accuracy", COLOURS["model"]),
                                            ("Validation", "val_accuracy", COLOURS["validation"]))
                  if metrics.get(key)]
        title, what, percent = tr("Accuracy (higher is better)"), tr("Accuracy"), True
    else:
        return ""
    if not series:
        return ""
    chart = line_svg(series, x_title=tr("Epoch"), y_title=title, marks=marks, epochs=True, percent=percent)
    return f"<figure>{chart}<figcaption>{tr('{what} per epoch.', what=e(what))}</figcaption></figure>"


# --- the model card ------------------------------------------------------------------------------------------------


def card_section(trained: TrainedModel) -> str:
    """The exported model's card, in English whatever the report's language: it travels with the model."""
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
    english = "" if current_language() == DEFAULT_LANGUAGE else " lang=\"en\""
    return section("card", tr("Model card"), tr("The model card that travels with the exported model (its README.md), "
                                                "without the part on how to run its files."),
                   f"<div class=\"card-text\"{english}>{markdown_html(chr(10).join(kept))}</div>")
