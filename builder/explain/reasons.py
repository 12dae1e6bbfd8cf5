"""Why each of many rows: ``top_reasons``, the columns (or words) that pushed each prediction most."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from builder.errors import SpecError
from builder.explain.explained import _Explained, _gradients_in_chunks, _row_targets
from builder.explain.sentences import _cell
from builder.explain.tables import _as_frame, _column_spans, _span_matrix, _table_preprocessor, _typical_features
from builder.explain.text import _text_reasons
from builder.trained import TrainedModel


def top_reasons(trained: TrainedModel, rows: Any, k: int = 3) -> pd.DataFrame:
    """The ``k`` columns (or words) that pushed each row's prediction most, as text.

    Integrated gradients over all rows at once (against the typical row), attributions
    summed per original column, the largest by absolute value first. "raises" and "lowers" are
    about the explained output: the probability of the second class of a yes/no task, of each
    row's predicted class with several classes, the predicted number, or the anomaly score.

    Args:
        trained: a table run, or a text run (then the reasons are words).
        rows: raw rows (a table run); texts as a list/Series or a table with the text column
            (a text run).
        k: reasons per row.

    Returns:
        A frame with the index of ``rows`` and columns ``reason_1`` .. ``reason_k``, e.g.
        "age = 72 (raises)", "income = 1,200 (lowers)", "'refund' (raises)"; ``None`` where a row
        has fewer than ``k`` columns (or words) that moved its prediction at all.

    Raises:
        SpecError: images or forecasts, or ``k`` below 1.
        DataError: the rows cannot be read.
    """
    if not isinstance(k, int) or k < 1:
        raise SpecError(f"top_reasons needs at least 1 reason per row; got k={k!r}. Use 3.")
    if trained.kind == "text":
        return _text_reasons(trained, rows, k)
    pre = _table_preprocessor(trained, "Top reasons")
    rows = _as_frame(rows)
    columns = [f"reason_{i + 1}" for i in range(k)]
    if not len(rows):
        return pd.DataFrame(columns=columns, index=rows.index, dtype=object)
    X = torch.from_numpy(pre.transform(rows))  # (N, F)
    baseline = torch.from_numpy(_typical_features(pre))  # (1, F)
    attr = _gradients_in_chunks(_Explained(trained), X, _row_targets(trained, X.numpy()), baseline)
    spans = _column_spans(pre)
    per_column = attr @ _span_matrix(spans, X.shape[1])  # (N, F) @ (F, C) -> (N, C)
    names = [name for name, _, _ in spans]
    cells = {name: rows[name].tolist() for name in names}
    order = np.argsort(-np.abs(per_column), axis=1, kind="stable")[:, :k]  # (N, k)
    table = []
    for i, picks in enumerate(order):
        reasons: list[str | None] = []
        for j in picks:
            value = per_column[i, j]
            reasons.append(None if abs(value) < 1e-9 else
                           f"{names[j]} = {_cell(cells[names[j]][i])} ({'raises' if value > 0 else 'lowers'})")
        table.append(reasons + [None] * (k - len(reasons)))
    return pd.DataFrame(table, columns=columns, index=rows.index, dtype=object)
