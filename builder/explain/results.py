"""What the explanations return: plain dataclasses, each turned into JSON by ``to_dict``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from builder.jsonsafe import plain


@dataclass
class ColumnImportance:
    """How much a table model leans on one of its input columns.

    Attributes:
        column: the original input column.
        importance: the mean drop in the test score when the column is shuffled: accuracy as a
            share (0.061 = 6.1 points) for classes, R² for numbers. Above 0 the model uses the
            column; about 0 it ignores it; below 0 the model does better without it.
        spread: the standard deviation of that drop over the repeated shuffles (its noise).
        sentence: one plain-English sentence, e.g. "Shuffling 'age' lowers accuracy by 6.1
            points: the model leans on it most."
    """

    column: str
    importance: float
    spread: float
    sentence: str

    def to_dict(self) -> dict[str, Any]:
        return plain(asdict(self))


@dataclass
class RowExplanation:
    """What pushed one prediction away from the baseline's, feature by feature.

    Attributes:
        kind: "table", "images", "text" or "series".
        method: "integrated_gradients" or "shapley".
        attributions: table: ``{column: value}`` in column order; images: float array ``(H, W)``
            (summed over colour channels); text: ``[(word, value), ...]`` for the words of the text
            in reading order (words past the model's reading length get 0); series: one value per
            past step, oldest first. Values are in the units of ``output``; they add up to
            ``output - base_value`` (up to ``delta``).
        prediction: the model's answer as the app shows it: the label, the number in original
            units, the forecast of the explained step, or whether the row is flagged unusual.
        target: what ``output`` is about: the class label, the target column, "<target>, k steps
            ahead" or "anomaly score".
        output: the value explained: the probability of ``target`` (classes), the prediction in
            original units (regression, forecast) or the anomaly score.
        base_value: the same value for the baseline input (see the module docstring).
        delta: integrated gradients' completeness error: sum of attributions minus
            (output - base_value). ``None`` for Shapley sampling, which adds up exactly.
        sentence: a plain-English summary of the biggest pushes.
        details: what a page may also draw, per kind. Table: ``values`` (the row's raw values),
            ``typical`` (the baseline row), ``features`` (per preprocessed feature, e.g.
            ``color=red``; integrated gradients only). Text: ``tokens`` (per token or n-gram the
            model read). Series: ``times`` (ISO time of each past step) and ``by_column``
            (per column, per step). Images: ``channels`` (per-channel maps ``(C, H, W)``).
    """

    kind: str
    method: str
    attributions: Any
    prediction: Any
    target: Any
    output: float
    base_value: float
    delta: float | None = None
    sentence: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return plain(asdict(self))


@dataclass
class Dependence:
    """How the prediction moves along one column, all other columns as they are in the data.

    Attributes:
        column: the input column varied.
        kind: how the model reads it: "numeric", "boolean", "categorical", "text" or "datetime".
        grid: the values tried, in the column's own units (numbers, the category texts, ISO dates).
        average: the partial dependence: the mean ``output`` over the rows at each grid value.
        individual: a few rows' own curves (ICE), one list per row, aligned with ``grid``.
        rows: the positions (in the rows used) of the rows in ``individual``.
        output: what the curves measure, e.g. "probability of 'yes'" or "predicted 'price'".
        target: the class whose probability is drawn (``None`` for numbers).
        sentence: one plain-English sentence about the shape of the average curve.
    """

    column: str
    kind: str
    grid: list[Any]
    average: list[float]
    individual: list[list[float]]
    rows: list[int]
    output: str
    target: Any
    sentence: str

    def to_dict(self) -> dict[str, Any]:
        return plain(asdict(self))
