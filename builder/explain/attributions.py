"""Why this prediction: ``explain_row`` by kind of data, ``what_if``, and the attribution of one table row."""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from builder.data.preprocess import ANOMALY_TASK
from builder.errors import DataError, SpecError
from builder.explain.explained import _attribute, _check_method, _Explained, _outputs, _target
from builder.explain.forecasts import _explain_forecast
from builder.explain.images import _explain_image
from builder.explain.results import RowExplanation
from builder.explain.sentences import _cell, _json_cell, _quote, _row_sentence
from builder.explain.tables import _column_spans, _one_row, _table_preprocessor, _typical_row
from builder.explain.text import _explain_text
from builder.jsonsafe import plain
from builder.trained import TrainedModel


def explain_row(trained: TrainedModel, row: Any, target_class: int | None = None,
                method: str = "integrated_gradients") -> RowExplanation:
    """Attribute one prediction to the parts of its input.

    Args:
        trained: a run of any kind.
        row: table: a one-row DataFrame of raw columns (a dict or Series works too); images: an
            image path, bytes, a Pillow image or an array (``(H, W)``, ``(H, W, 3)`` or
            ``(C, H, W)``, values 0-255 or 0-1); text: a string (or a one-row table with the text
            column); series: the history as ``trained.predict`` takes it (the newest window is
            explained).
        target_class: classes: the index (in ``preprocessor.classes``) or the label of the class
            whose probability is explained; default the second class of a yes/no task, the
            predicted class otherwise. Forecast: the step ahead, 0 for the next one (the default).
            Must be ``None`` for regression and anomaly models.
        method: "integrated_gradients" (default) or "shapley".

    Returns:
        A ``RowExplanation`` (what ``attributions`` holds per kind is described there).

    Raises:
        SpecError: an unknown method or target class, or a model this cannot explain.
        DataError: the row cannot be read (missing columns, not an image, too short a history...).
    """
    method = _check_method(method)
    kind = trained.kind
    if kind == "table":
        return _explain_table_row(trained, _one_row(row), target_class, method)
    if kind == "images":
        return _explain_image(trained, row, target_class, method)
    if kind == "text":
        return _explain_text(trained, row, target_class, method)
    if kind == "series":
        return _explain_forecast(trained, row, target_class, method)
    raise SpecError(f"Explanations are not available for {kind!r} data.")


def what_if(trained: TrainedModel, row: pd.DataFrame, changes: dict[str, Any] | None = None,
            target_class: int | None = None, method: str = "integrated_gradients") -> RowExplanation:
    """``explain_row`` of a table row after changing some of its values (the What-if panel).

    Args:
        trained: a table run.
        row: one raw row (DataFrame, dict or Series).
        changes: ``{column: new value}``; ``None`` explains the row as it is.
        target_class, method: as for ``explain_row``.

    Raises:
        SpecError: not a table run, or as ``explain_row``.
        DataError: a changed column is not an input column of the model.
    """
    pre = _table_preprocessor(trained, "What-if")
    changed = _one_row(row).copy()
    unknown = [c for c in (changes or {}) if c not in pre.features]
    if unknown:
        raise DataError(f"The model has no input column named {unknown[0]!r}, so it cannot be changed. "
                        f"Input columns: {_quote(pre.features)}.")
    for column, value in (changes or {}).items():
        changed[column] = pd.Series([value], index=changed.index, dtype=object)
    return explain_row(trained, changed, target_class, method)


def _explain_table_row(trained: TrainedModel, row: pd.DataFrame, target_class: Any, method: str) -> RowExplanation:
    pre = trained.preprocessor
    explained = _Explained(trained)
    X = torch.from_numpy(pre.transform(row))  # (1, F)
    typical = _typical_row(pre)
    baseline = torch.from_numpy(pre.transform(typical))  # (1, F)
    out, base = _outputs(explained, X)[0], _outputs(explained, baseline)[0]
    index, target = _target(trained, out, target_class)
    spans = _column_spans(pre)
    mask = torch.zeros((1, X.shape[1]), dtype=torch.long)
    for j, (_, start, stop) in enumerate(spans):
        mask[0, start:stop] = j  # Shapley moves a column's features together
    attr, delta = _attribute(explained, X, baseline, index, method, mask=mask)
    if method == "shapley":  # every feature of a group carries the group's whole value
        per_column = {name: float(attr[0, start]) for name, start, _ in spans}
    else:
        per_column = {name: float(attr[0, start:stop].sum()) for name, start, stop in spans}
    values = {name: _json_cell(row[name].iloc[0]) for name, _, _ in spans}
    details: dict[str, Any] = {"values": values,
                               "typical": {c: _json_cell(typical[c].iloc[0]) for c in typical.columns}}
    if method == "integrated_gradients":
        details["features"] = dict(zip(pre.feature_names, attr[0].tolist(), strict=True))
    prediction = _table_prediction(trained, X)
    labels = {name: f"{name} = {_cell(values[name])}" for name in per_column}
    sentence = _row_sentence(trained, target, out[index], base[index],
                             [(labels[c], v) for c, v in per_column.items()])
    return RowExplanation("table", method, per_column, prediction, target, float(out[index]), float(base[index]),
                          delta, sentence, details)


def _table_prediction(trained: TrainedModel, X: torch.Tensor) -> Any:
    pre = trained.preprocessor
    outputs = trained.predict_outputs(X.numpy())
    if trained.task == ANOMALY_TASK:
        if pre.threshold is None:
            return None
        return bool(pre.reconstruction_errors(X.numpy(), outputs)[0] > pre.threshold)
    return plain(pre.decode_outputs(outputs)["prediction"].iloc[0])
