"""The plain-English words of the explanations: values, amounts and the one-line summaries."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from builder.data.preprocess import ANOMALY_TASK
from builder.jsonsafe import plain
from builder.trained import TrainedModel

# A column whose shuffling moves the score by less than this (or by less than the spread of the
# repeats) "does not matter": 0.2 accuracy points, or 0.002 of R².
NEGLIGIBLE = 0.002
# Tasks whose output is a class probability (worded in points); the other modules read it from here.
_CLASS_TASKS = ("binary", "multiclass")


def _quote(names: Sequence[Any], limit: int = 12) -> str:
    shown = ", ".join(repr(str(n)) for n in list(names)[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _label(value: Any) -> str:
    return f"'{value}'"


def _steps(n: int) -> str:
    return "1 step" if n == 1 else f"{n} steps"


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _time_text(iso: str) -> str:
    """An ISO time as a sentence shows it: the date alone at midnight."""
    return iso[:10] if iso.endswith("T00:00:00") else iso.replace("T", " ")


def _number(value: float) -> str:
    """A number as an analyst writes it: 1,200 / 72 / 3.14 / 0.0123."""
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    if v.is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:,.2f}".rstrip("0").rstrip(".")
    return f"{v:.3g}"


def _cell(value: Any) -> str:
    """A raw cell in a sentence: numbers formatted, text as written, missing as "(missing)"."""
    if _is_missing(value):
        return "(missing)"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        return _number(value)
    text = str(value).strip()
    return text if len(text) <= 40 else text[:39] + "…"


def _json_cell(value: Any) -> Any:
    if _is_missing(value):
        return None
    value = plain(value)
    return value if isinstance(value, (str, int, float, bool)) else str(value)


def _output_words(trained: TrainedModel) -> str:
    if trained.task == ANOMALY_TASK:
        return "anomaly score"
    return f"predicted '{trained.preprocessor.target}'"


def _amount(trained: TrainedModel, value: float, signed: bool = True) -> str:
    """An attribution in the output's units: points of probability, or the target's units."""
    if trained.task in _CLASS_TASKS:
        if not signed:
            return f"{value:.0%}"
        points = value * 100
        return f"{points:+.1f} points" if abs(points) >= 0.1 else f"{points:+.2g} points"
    text = _number(abs(value))
    return (("+" if value >= 0 else "-") + text) if signed else _number(value)


def _row_sentence(trained: TrainedModel, target: Any, output: float, base: float, parts: list[tuple[str, float]],
                  baseline_words: str | None = None) -> str:
    if trained.task in _CLASS_TASKS:
        first = f"The model gives {_label(target)} a probability of {output:.0%}"
    elif trained.task == "forecast":
        first = f"The forecast ({target}) is {_number(output)}"
    elif trained.task == ANOMALY_TASK:
        first = f"The row's anomaly score is {_number(output)}"
    else:
        first = f"The model predicts {_number(output)} for '{target}'"
    typical = baseline_words or "a typical row"
    sentence = f"{first} ({_amount(trained, base, signed=False)} for {typical})."
    up = max(parts, key=lambda p: p[1], default=None)
    down = min(parts, key=lambda p: p[1], default=None)
    if up is not None and up[1] > 1e-9:
        sentence += f" {up[0]} pushed it up most ({_amount(trained, up[1])})"
        if down is not None and down[1] < -1e-9:
            sentence += f"; {down[0]} pulled it down most ({_amount(trained, down[1])})"
        sentence += "."
    elif down is not None and down[1] < -1e-9:
        sentence += f" {down[0]} pulled it down most ({_amount(trained, down[1])})."
    return sentence


def _importance_sentence(column: str, mean: float, spread: float, rank: int, top: float, top_column: str,
                         scoring: str) -> str:
    metric = "accuracy" if scoring == "accuracy" else "R²"

    def size(value: float) -> str:
        return f"{abs(value) * 100:.1f} points" if scoring == "accuracy" else f"{abs(value):.3f}"

    start = f"Shuffling '{column}'"
    if abs(mean) < NEGLIGIBLE:
        return f"{start} changes {metric} by less than {size(NEGLIGIBLE)}: the model does not use it."
    if abs(mean) <= spread:
        return (f"{start} changes {metric} by {size(mean)}, within the noise of the shuffles (±{size(spread)}): "
                "it makes little difference.")
    if mean < 0:
        return (f"{start} raises {metric} by {size(mean)}: the model does better without it; "
                "consider leaving it out.")
    if rank == 0:
        return f"{start} lowers {metric} by {size(mean)}: the model leans on it most."
    ratio = mean / top if top > 0 else 0.0
    relative = ("almost as much as" if ratio >= 0.75 else "about half as much as" if ratio >= 0.35
                else "far less than")
    return f"{start} lowers {metric} by {size(mean)}: it matters {relative} '{top_column}'."


def _dependence_sentence(column: str, kind: str, grid: list[Any], curve: np.ndarray, spread: float, what: str,
                         probability: bool) -> str:
    """``spread``: how much the output varies over all rows and grid values (its natural scale)."""
    def value(v: float) -> str:
        return f"{v:.0%}" if probability else _number(v)

    span = float(np.ptp(curve))
    if span <= max(0.05 * spread, 0.005 if probability else 1e-9):
        return (f"The {what} stays at about {value(float(curve.mean()))} on average whatever '{column}' is: "
                "the model hardly uses it.")
    if kind in ("numeric", "datetime"):
        low, high = _cell(grid[0]), _cell(grid[-1])
        steps = np.diff(curve)
        scale = span
        if (steps >= -0.02 * scale).all():
            trend = "rises"
        elif (steps <= 0.02 * scale).all():
            trend = "falls"
        else:
            return (f"As '{column}' goes from {low} to {high}, the {what} moves up and down between "
                    f"{value(curve.min())} and {value(curve.max())} on average, all else as in the data.")
        return (f"As '{column}' goes from {low} to {high}, the {what} {trend} from {value(curve[0])} to "
                f"{value(curve[-1])} on average, all else as in the data.")
    best, worst = int(np.argmax(curve)), int(np.argmin(curve))
    return (f"The {what} is highest when '{column}' is {_cell(grid[best])} ({value(curve[best])}) and lowest "
            f"when it is {_cell(grid[worst])} ({value(curve[worst])}), on average, all else as in the data.")
