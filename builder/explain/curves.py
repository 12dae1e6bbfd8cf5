"""How the prediction moves along one column: partial dependence and individual (ICE) curves."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.inspection import partial_dependence

from builder.data.preprocess import parse_datetime, parse_numeric
from builder.errors import DataError, SpecError
from builder.explain.estimator import _estimator
from builder.explain.explained import _class_index
from builder.explain.results import Dependence
from builder.explain.sentences import (
    _CLASS_TASKS,
    _dependence_sentence,
    _is_missing,
    _label,
    _output_words,
    _quote,
    _time_text,
)
from builder.explain.tables import _as_frame, _kept_rows, _table_preprocessor
from builder.jsonsafe import plain
from builder.trained import TrainedModel


def dependence(trained: TrainedModel, column: str, rows: pd.DataFrame | None = None, grid: int = 20,
               individual: int = 50, target_class: int | None = None) -> Dependence:
    """Partial dependence and individual (ICE) curves of the prediction along one column.

    Every row is predicted once per grid value with ``column`` set to that value and all other
    columns as they are (scikit-learn's ``partial_dependence``, brute force over the raw rows);
    the average over the rows is the partial dependence.

    Args:
        trained: a table run (any task; an anomaly model's curve is its anomaly score).
        column: the input column to vary.
        rows: raw rows; ``None`` takes the test rows kept with the run.
        grid: most grid values: quantiles (5% to 95%) of a number or date, the most frequent
            values of a category or yes/no column.
        individual: most individual curves returned (rows evenly spread over ``rows``).
        target_class: the class whose probability is drawn (index or label); default the second
            class of a yes/no task, the class predicted most often over ``rows`` otherwise.

    Returns:
        A ``Dependence``.

    Raises:
        SpecError: not a table run, or bad ``grid``/``individual``/``target_class``.
        DataError: ``column`` is not an input column, or it has no values in ``rows``.
    """
    pre = _table_preprocessor(trained, "A dependence curve")
    if not isinstance(grid, int) or grid < 2:
        raise SpecError(f"A dependence curve needs at least 2 grid values; got grid={grid!r}. Use 20.")
    if not isinstance(individual, int) or individual < 0:
        raise SpecError(f"individual must be a whole number of curves, 0 or more; got {individual!r}.")
    if column not in pre.features:
        raise DataError(f"The model has no input column named {column!r}. Choose one of: {_quote(pre.features)}.")
    rows = _kept_rows(trained) if rows is None else _as_frame(rows)
    kind = pre.kinds[column]
    frame, values, shown = _dependence_grid(pre, rows, column, kind, grid)
    estimator = _estimator(trained, pre.transform).fit(frame)
    result = partial_dependence(
        estimator, frame, [column], categorical_features=[column] if kind not in ("numeric", "datetime") else None,
        custom_values={column: values}, kind="both", method="brute",
    )
    average, curves = result["average"], result["individual"]  # (K, G), (K, N, G)
    target, what, pick = None, _output_words(trained), 0
    if trained.task in _CLASS_TASKS:
        if trained.task == "multiclass" and target_class is None:
            predicted = estimator.predict(frame)
            target_class = int(np.bincount(predicted, minlength=len(pre.classes)).argmax())
        index = _class_index(pre.classes, target_class, default=1)
        target = pre.classes[index]
        what = f"probability of {_label(target)}"
        # scikit-learn gives only the positive class of a yes/no model.
        pick = 0 if trained.task == "binary" else index
        if trained.task == "binary" and index == 0:
            average, curves = 1.0 - average, 1.0 - curves
    elif target_class is not None:
        raise SpecError(f"target_class applies to classes only; this model does {trained.task}. Leave it out.")
    chosen = np.unique(np.linspace(0, len(frame) - 1, min(individual, len(frame))).round().astype(int))
    curve = average[pick].astype(float)
    return Dependence(
        column=column, kind=kind, grid=shown, average=curve.tolist(),
        individual=curves[pick][chosen].astype(float).tolist() if individual else [],
        rows=chosen.tolist() if individual else [], output=what, target=plain(target),
        sentence=_dependence_sentence(column, kind, shown, curve, float(np.std(curves[pick])), what,
                                      trained.task in _CLASS_TASKS),
    )


def _dependence_grid(pre: Any, rows: pd.DataFrame, column: str, kind: str,
                     grid: int) -> tuple[pd.DataFrame, np.ndarray, list[Any]]:
    """The rows with ``column`` in a settable form, the grid values set, and the grid as shown."""
    frame = rows.copy()
    levels = np.linspace(0.05, 0.95, grid)
    if kind == "numeric":
        numbers = parse_numeric(frame[column])  # "$1,200" -> 1200.0; the preprocessor reads both alike
        present = numbers[~np.isnan(numbers)]
        if not present.size:
            raise DataError(f"The column {column!r} has no numbers in these rows to draw a curve along.")
        frame[column] = numbers
        values = np.unique(np.quantile(present, levels))
        return frame, values, values.tolist()
    if kind == "datetime":
        fmt = next(s.get("format") for s in pre.to_dict()["columns"] if s["name"] == column)
        stamps = parse_datetime(frame[column], fmt)
        stamps = stamps.astype("datetime64[s]")  # whole seconds: the grid below is too
        present = stamps.dropna().to_numpy(dtype="datetime64[s]").astype(np.int64)
        if not present.size:
            raise DataError(f"The column {column!r} has no dates in these rows to draw a curve along.")
        frame[column] = stamps
        unit = 86_400 if not (present % 86_400).any() else 1  # whole days stay whole days
        seconds = np.unique((np.quantile(present, levels) / unit).round().astype(np.int64) * unit)
        values = seconds.astype("datetime64[s]")
        return frame, values, [_time_text(t) for t in np.datetime_as_string(values, unit="s").tolist()]
    cells = frame[column].astype(object)
    text = cells.map(lambda v: None if _is_missing(v) else v)
    counts = text.dropna().map(lambda v: v.strip() if isinstance(v, str) else v).value_counts()
    if not len(counts):
        raise DataError(f"The column {column!r} has no values in these rows to draw a curve along.")
    values = counts.index[:grid].tolist()
    frame[column] = text
    return frame, np.asarray(values, dtype=object), plain(values)
