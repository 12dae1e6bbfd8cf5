"""Charts as inline SVG, drawn from the run's own numbers without a plotting library or any script:
round ticks, a frame (grid, axes, titles, legend, marks) and the line, scatter and histogram charts
drawn on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from builder.i18n import tr
from builder.report.common import COLOURS, e

# viewBox sizes: a chart scales to its box, so its text stays about 10-13 px where it is shown.
HALF = (440, 270)  # one of two charts side by side
WIDE = (880, 330)  # a chart across the page
_RIGHT, _TOP, _BOTTOM = 14, 38, 46  # margins: legend on top, axis title below (the left one fits the ticks)


@dataclass
class Series:
    name: str
    x: np.ndarray
    y: np.ndarray
    colour: str
    dash: str = ""
    width: float = 2.0
    markers: bool = False


def as_days(times: Sequence[str]) -> np.ndarray:
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
        x += 42 + _text_width(name)
    return _Frame(parts, sx, sy, size)


def _text_width(text: str) -> float:
    """About how wide a legend's text is drawn: 7.4 units a letter, 13 a Chinese character."""
    wide = sum(1 for ch in text if ord(ch) >= 0x2E80)
    return 7.4 * len(text) + 5.6 * wide


def line_svg(series: list[Series], *, x_title: str, y_title: str, marks: Sequence[tuple[float, str]] = (),
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


def scatter_svg(x: np.ndarray, y: np.ndarray, x_title: str, y_title: str, label: str) -> str:
    """Dots of (actual, predicted) on equal axes, with the dashed line of perfect answers; ``label``
    names the chart for a screen reader."""
    low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    ticks = nice_ticks(low, high)
    legend = [(tr("Test rows"), COLOURS["model"], "dot"), (tr("Perfect prediction"), COLOURS["baseline"], "dash")]
    frame = _frame((ticks[0], ticks[-1]), ticks, x_title, y_title, size=(HALF[0], 340), legend=legend)
    frame.parts.append(f"<g fill=\"{COLOURS['model']}\" fill-opacity=\"0.45\">" + "".join(
        f"<circle cx=\"{a:.1f}\" cy=\"{b:.1f}\" r=\"3.5\"/>" for a, b in zip(frame.sx(x), frame.sy(y), strict=True))
        + "</g>")
    (x0, x1), (y0, y1) = frame.sx([ticks[0], ticks[-1]]), frame.sy([ticks[0], ticks[-1]])
    frame.parts.append(f"<line x1=\"{x0:.1f}\" y1=\"{y0:.1f}\" x2=\"{x1:.1f}\" y2=\"{y1:.1f}\" "
                       f"stroke=\"{COLOURS['baseline']}\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>")
    return frame.svg(label)


def histogram_svg(groups: list[tuple[str, np.ndarray, str]], x_title: str, *, threshold: float | None = None,
                  zero: bool = False, size: tuple[int, int] = HALF, y_title: str | None = None) -> str:
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
    frame = _frame((low, high), nice_ticks(0, top, integer=True), x_title, y_title or tr("Rows"), size=size,
                   legend=legend)
    for (_, _, colour), count in zip(groups, counts, strict=True):
        bars = "".join(f"<rect x=\"{float(frame.sx(edges[k])):.1f}\" y=\"{float(frame.sy(n)):.1f}\" "
                       f"width=\"{max(float(frame.sx(edges[k + 1]) - frame.sx(edges[k])) - 1, 0.5):.1f}\" "
                       f"height=\"{float(frame.sy(0) - frame.sy(n)):.1f}\"/>" for k, n in enumerate(count) if n)
        frame.parts.append(f"<g fill=\"{colour}\" fill-opacity=\"{0.55 if len(groups) > 1 else 0.85}\">{bars}</g>")
    if threshold is not None:
        frame.vline(threshold, tr("threshold"), COLOURS["bad"], "mark bad")
    if zero:
        frame.vline(0.0, tr("no error"), COLOURS["actual"], "mark plain")
    return frame.svg(x_title)
