"""Raw-table and feature helpers: reading rows, each column's slice of the features, the typical row."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from builder.data.preprocess import ANOMALY_TASK, DATE_PARTS
from builder.errors import DataError, SpecError
from builder.trained import TrainedModel


def _table_preprocessor(trained: TrainedModel, what: str, needs_target: bool = False) -> Any:
    if trained.kind != "table":
        raise SpecError(f"{what} is about the columns of a table; this model reads {trained.kind}. "
                        "Use explain_row to see what drove one prediction.")
    if needs_target and trained.task == ANOMALY_TASK:
        raise SpecError(f"{what} needs a column to predict, and an anomaly model has none. "
                        "Use dependence or explain_row to see what makes a row look unusual.")
    return trained.preprocessor


def _column_spans(pre: Any) -> list[tuple[str, int, int]]:
    """Each input column and the slice ``[start, stop)`` of the features it becomes, in order.

    A number is one feature (two with a missing-value flag), a yes/no one, a category one per kept
    value plus "(other)", a date four parts (see ``builder.data.preprocess``).
    """
    names = pre.feature_names
    spans, start = [], 0
    for state in pre.to_dict()["columns"]:
        kind, name = state["kind"], state["name"]
        width = {"numeric": 1 + bool(state.get("indicator")), "boolean": 1, "datetime": len(DATE_PARTS)}.get(
            kind, len(state.get("categories", [])) + 1)
        part = names[start:start + width]
        if len(part) != width or not all(n == name or n.startswith((f"{name} (", f"{name}=")) for n in part):
            raise RuntimeError(f"The features of column {name!r} do not line up with the preprocessor's names.")
        spans.append((name, start, start + width))
        start += width
    if start != len(names):
        raise RuntimeError("The preprocessor makes features that belong to no input column.")
    return spans


def _moved_features(X: np.ndarray, spans: list[tuple[str, int, int]], positions: pd.DataFrame) -> np.ndarray:
    """The features of the raw rows with each column's values taken from other rows.

    ``positions[c]`` says which row column ``c`` takes its value from; preprocessing works column
    by column, so this equals preprocessing the raw table with those columns moved (without
    preprocessing it again): ``(N, F)``.
    """
    out = np.empty_like(X)
    for name, start, stop in spans:
        out[:, start:stop] = X[positions[name].to_numpy(), start:stop]
    return out


def _span_matrix(spans: list[tuple[str, int, int]], width: int) -> np.ndarray:
    """``(F, C)`` 0/1 matrix: features @ it sums each column's features."""
    matrix = np.zeros((width, len(spans)))
    for j, (_, start, stop) in enumerate(spans):
        matrix[start:stop, j] = 1.0
    return matrix


def _typical_row(pre: Any) -> pd.DataFrame:
    """The baseline row: numbers at their training median, yes/no and categories at their most
    frequent value, dates missing (which the preprocessor fills with the middle date parts)."""
    values: dict[str, list[Any]] = {}
    for state in pre.to_dict()["columns"]:
        kind = state["kind"]
        if kind == "boolean":
            values[state["name"]] = [bool(state["fill"])]
        elif kind in ("numeric", "categorical", "text"):
            values[state["name"]] = [state.get("fill")]
        else:
            values[state["name"]] = [None]
    return pd.DataFrame(values)


def _typical_features(pre: Any) -> np.ndarray:
    return pre.transform(_typical_row(pre))  # (1, F)


def _one_row(row: Any) -> pd.DataFrame:
    frame = _as_frame(row)
    if len(frame) != 1:
        raise DataError(f"explain_row explains one row; got {len(frame)}. Pick one (e.g. rows.iloc[[0]]), "
                        "or use top_reasons for many rows.")
    return frame


def _as_frame(rows: Any) -> pd.DataFrame:
    if isinstance(rows, pd.DataFrame):
        return rows
    if isinstance(rows, pd.Series):
        return rows.to_frame().T
    if isinstance(rows, dict):
        return pd.DataFrame({k: v if isinstance(v, list) else [v] for k, v in rows.items()})
    raise DataError(f"Rows must be a table (DataFrame) of raw columns; got {type(rows).__name__}.")


def _kept_rows(trained: TrainedModel) -> pd.DataFrame:
    raw = (trained.test_results or {}).get("rows")
    if not raw:
        raise DataError("This run kept no test rows to explain with. Pass rows, or train the model again "
                        "to keep them.")
    return pd.DataFrame(raw)
