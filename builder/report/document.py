"""The report as one HTML document: the heading, the sections in reading order, the footer and the
inline CSS (``style.css``, read once from this package).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from importlib import resources

import builder
from builder.data.preprocess import ANOMALY_TASK
from builder.i18n import DEFAULT_LANGUAGE, current_language, tr, tr_message, using
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
# A Chinese report names the fonts with Chinese glyphs first, so the browser and the PDF use them
# rather than a fallback that may lack them (the English report keeps style.css's stack as it is).
CJK_FONTS = ('body{font-family:"Noto Sans CJK SC","Noto Sans SC","Source Han Sans SC","Microsoft YaHei",'
             '"PingFang SC",system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}\n')
HTML_LANGUAGE = {"zh": "zh-Hans"}  # the <html lang> of a language, when not its own code


def build_report(trained: TrainedModel, *, title: str | None = None, importance: Sequence | None = None,
                 threshold: float | None = None, lang: str = DEFAULT_LANGUAGE) -> str:
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
        lang: the reader's language (``builder.i18n.LANGUAGES``); the model card stays English, as
            it travels with the exported model.

    Returns:
        The HTML document: inline CSS and SVG, no scripts, nothing loaded from anywhere.

    Raises:
        ReportError: a threshold outside (0, 1) or explanations without the fields above.
    """
    with using(lang):
        return _document(trained, title, importance, threshold)


def _document(trained: TrainedModel, title: str | None, importance: Sequence | None, threshold: float | None) -> str:
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
    trained_at = info.get("trained_at")
    meta = [tr("Report of {date}", date=_long_date(dt.date.today()))]
    if trained_at:
        meta.append(tr("model trained {when} on {device}", when=e(trained_at), device=e(tr_message(trained.device))))
    if info.get("source"):
        meta.append(tr("data: <b>{source}</b>", source=e(info["source"])))
    language = current_language()
    css = CSS + (CJK_FONTS if language == "zh" else "")
    return (
        f"<!DOCTYPE html>\n<html lang=\"{HTML_LANGUAGE.get(language, language)}\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<meta name=\"generator\" content=\"visual model builder {e(builder.__version__)}\">"
        f"<title>{e(heading)}</title><style>\n{css}</style></head><body><main>"
        f"<header><p class=\"eyebrow\">{tr('Model report')}</p><h1>{e(heading)}</h1>"
        f"<p class=\"meta\">{' · '.join(meta)}</p></header>"
        + "".join(s for s in sections if s)
        + "<footer>" + tr("Made with the visual model builder {version}. This file holds everything it shows: it "
                          "opens without an internet connection and prints on A4.", version=e(builder.__version__))
        + "</footer></main></body></html>\n"
    )


def _long_date(day: dt.date) -> str:
    """The day as the reader writes it: 6 December 2026, or 2026年12月6日 in Chinese."""
    if current_language() == "zh":
        return f"{day.year}年{day.month}月{day.day}日"
    return f"{day.day} {day:%B %Y}"


def _default_title(trained: TrainedModel) -> str:
    target = trained.data_spec.target
    if trained.task == ANOMALY_TASK:
        return tr("Finding unusual rows")
    if trained.task == "forecast":
        return tr("Forecasting '{target}'", target=target)
    if trained.kind == "images":
        return tr("Sorting images into classes")
    return tr("Predicting '{target}'", target=target)
