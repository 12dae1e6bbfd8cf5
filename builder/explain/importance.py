"""Which columns matter: permutation importance (scikit-learn) of each original input column."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance

from builder.data.preprocess import label_value, parse_numeric
from builder.errors import DataError, SpecError
from builder.explain.estimator import _estimator
from builder.explain.results import ColumnImportance
from builder.explain.sentences import _importance_sentence, _quote
from builder.explain.tables import _as_frame, _column_spans, _kept_rows, _moved_features, _table_preprocessor
from builder.trained import TrainedModel

MIN_ROWS = 10  # fewer rows with a known answer say nothing about importance


def column_importance(trained: TrainedModel, rows: pd.DataFrame | None = None, actual: Sequence | None = None,
                      repeats: int = 5, seed: int = 0) -> list[ColumnImportance]:
    """Permutation importance of each original input column, most important first.

    Each column is shuffled ``repeats`` times (its values moved to other rows, all one-hot parts
    together) and the test rows are scored again; the mean drop in the score is the column's
    importance. The network sees the shuffled rows exactly as if the raw table had been shuffled
    and preprocessed again (preprocessing works column by column, so the features are preprocessed
    once and their column blocks moved), which makes this fast enough for a page.

    Args:
        trained: a table run (regression, binary or multiclass).
        rows: raw rows with the input columns; ``None`` takes the test rows kept with the run
            (``trained.test_results["rows"]``, at most 2,000).
        actual: the true answers of ``rows`` in original units; ``None`` takes them from the
            target column of ``rows`` when present, else the run's kept ``actual`` values (only
            with the kept rows). Rows without an answer are left out.
        repeats: shuffles per column (more: a smaller spread, slower).
        seed: seed of the shuffles; the same seed gives the same numbers.

    Returns:
        One ``ColumnImportance`` per input column, the largest importance first.

    Raises:
        SpecError: not a table run, or an anomaly model (there is no answer to score against).
        DataError: no rows to score, answers missing or of another length, unknown class labels.
    """
    pre = _table_preprocessor(trained, "Column importance", needs_target=True)
    if not isinstance(repeats, int) or repeats < 1:
        raise SpecError(f"Column importance needs at least 1 shuffle per column; got repeats={repeats!r}. Use 5.")
    rows, y = _rows_with_answers(trained, rows, actual)
    X = pre.transform(rows)  # (N, F), once
    spans = _column_spans(pre)
    positions = pd.DataFrame({name: np.arange(len(rows)) for name, _, _ in spans})
    estimator = _estimator(trained, lambda shuffled: _moved_features(X, spans, shuffled)).fit(positions, y)
    scoring = "r2" if trained.task == "regression" else "accuracy"
    result = permutation_importance(estimator, positions, y, scoring=scoring, n_repeats=repeats,
                                    random_state=seed)
    order = np.argsort(-result.importances_mean, kind="stable")
    names = list(positions.columns)
    top = float(result.importances_mean[order[0]])
    out = []
    for rank, i in enumerate(order):
        mean, spread = float(result.importances_mean[i]), float(result.importances_std[i])
        out.append(ColumnImportance(names[i], mean, spread,
                                    _importance_sentence(names[i], mean, spread, rank, top, names[order[0]], scoring)))
    return out


def _rows_with_answers(trained: TrainedModel, rows: pd.DataFrame | None,
                       actual: Sequence | None) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows to score and their answers (class indexes or numbers); rows without one dropped."""
    pre = trained.preprocessor
    if rows is None:
        rows = _kept_rows(trained)
        if actual is None:
            actual = list((trained.test_results or {}).get("actual") or [])[:len(rows)]
    else:
        rows = _as_frame(rows)
        if actual is None:
            if pre.target not in rows.columns:
                raise DataError(f"To score the rows, they need the true answers: add the column '{pre.target}' "
                                "or pass actual=[...].")
            actual = rows[pre.target].tolist()
    actual = list(actual)
    if len(actual) != len(rows):
        raise DataError(f"There are {len(rows)} rows but {len(actual)} true answers; pass one answer per row.")
    if trained.task == "regression":
        y = parse_numeric(pd.Series(actual, dtype=object))
        known = ~np.isnan(y)
    else:
        index = {str(label_value(c)): i for i, c in enumerate(pre.classes)}
        missing = np.array([v is None or (isinstance(v, float) and math.isnan(v)) for v in actual])
        y = np.array([-1 if m else index.get(str(label_value(v)), -2) for v, m in zip(actual, missing, strict=True)])
        if (y == -2).any():
            unknown = sorted({str(v) for v, c in zip(actual, y, strict=True) if c == -2})
            raise DataError(f"The true answers hold {_quote(unknown)}, which the model does not know "
                            f"(its classes: {_quote(pre.classes)}). Remove those rows.")
        known = ~missing
    if known.sum() < MIN_ROWS:
        raise DataError(f"Column importance needs at least {MIN_ROWS} rows with a known answer; got "
                        f"{int(known.sum())}. Pass more rows.")
    return rows[known].reset_index(drop=True), y[known]
