"""What every part of the report shares: its error, HTML escaping, the app's colours, the frame of a
section, a metric's value as text and a layer's caption in the reader's language.
"""

from __future__ import annotations

import html
from typing import Any

from builder.diagram import layer_caption
from builder.errors import BuilderError
from builder.evaluate import format_metric
from builder.i18n import DEFAULT_LANGUAGE, current_language, tr_message
from builder.layers import LAYERS

# The app's colours (pages/components/ui.py, which builder may not import): training and the model
# blue, validation orange, baselines grey, the kept epoch green, thresholds red.
COLOURS = {"model": "#1A73E8", "validation": "#E8710A", "baseline": "#9AA0A6", "actual": "#3C4043",
           "good": "#188038", "bad": "#D93025", "muted": "#5F6368", "grid": "#E8EAED"}


class ReportError(BuilderError):
    """The report could not be made or printed; the message says why and what to do instead."""


def e(value: Any) -> str:
    """Any value as HTML-escaped text (quotes too, so it is safe inside attributes)."""
    return html.escape(str(value), quote=True)


def section(key: str, heading: str, intro: str, body: str) -> str:
    lead = f"<p class=\"lead\">{intro}</p>" if intro else ""
    return f"<section id=\"{key}\"><h2>{heading}</h2>{lead}{body}</section>"


def fmt(metric: str, value: Any) -> str:
    try:
        return format_metric(metric, float(value))
    except (BuilderError, TypeError, ValueError):
        return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def caption(type_name: str, params: dict) -> str:
    """``layer_caption`` ("Linear\\nunits: 16") with the setting's name in the reader's language; the
    layer's type is a name and stays as it is."""
    text = layer_caption(type_name, params)
    if current_language() == DEFAULT_LANGUAGE or "\n" not in text:
        return text
    layer = LAYERS.get(type_name)
    return f"{type_name}\n{tr_message(layer.param(layer.main_param).label)}: {params[layer.main_param]}"
