"""Why a trained model predicts what it does: column importance, one input's reasons, dependence curves.

Four questions an analyst asks of a model, each answered in the units of the data:

* Which columns matter? ``column_importance``: permutation importance (scikit-learn) on the test
  rows kept with the run. One original column is shuffled at a time and the drop in accuracy
  (classes) or R² (numbers) is how much the model leans on it. Model-agnostic, measured on rows
  the model never trained on, and per original column (the one-hot parts of a category are
  shuffled together), which is what an analyst can act on.
* Why this prediction? ``explain_row`` (and ``what_if`` for a changed row): integrated gradients
  (captum) by default, because its attributions are *complete*: they add up to the output for
  the input minus the output for a baseline input, up to the numerical error of the path
  integral, which is reported as ``delta``. ``method="shapley"`` uses Shapley value sampling
  instead (no gradients; also adds up exactly, one feature group at a time). Table attributions
  are summed back from the preprocessed features to the original columns.
* How does the prediction move with one column? ``dependence``: partial dependence (the average
  curve) and individual conditional expectation curves (one per row), scikit-learn's brute force
  over the raw rows, all other columns as they are in the data.
* Why each of many rows? ``top_reasons``: integrated gradients over many rows at once (in chunks
  that bound the memory, never one row at a time), the ``k`` columns (or words) that pushed each
  prediction most.

What is explained (``output``): the probability of one class for classification (binary: the
second, "positive" class by default; multiclass: the predicted class), the prediction in original
units for regression and forecasts, the reconstruction error for an anomaly model. Attributions
are in those units too (a probability share, or the target's units).

Baselines (what an attribution is measured against):

* tables: a *typical row*, every number at its training median, every yes/no and category at its
  most frequent training value, every date at its middle date parts (the preprocessor's own
  fill values). With quantile scaling a median maps to about 0, so for numbers this is the
  "zeros after scaling" input; unlike all zeros, it is a row the model could really see (all-zero
  one-hot parts are no category at all).
* images: every pixel at the training mean colour (zeros after normalising).
* text (integrated gradients): every word's vector set to zero, the text's length kept; for a
  bag of n-grams that is the empty text. Shapley sampling removes words (padding) instead.
* forecasts: every past step at the training mean of its column (zeros after scaling), i.e. a
  flat series.

Kinds: every function takes table runs; ``explain_row`` also images, text and forecasts, and
``top_reasons`` also text. ``column_importance`` and ``dependence`` are about columns, so other
kinds get a ``SpecError`` saying so (not an empty answer that would look like "nothing matters").
Everything returned is plain data (numbers, strings, lists, dicts, numpy arrays) that
``builder.jsonsafe.plain`` turns into JSON; each dataclass has ``to_dict``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from captum.attr import IntegratedGradients, ShapleyValueSampling
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.inspection import partial_dependence, permutation_importance
from torch import nn

from builder.data.preprocess import ANOMALY_TASK, DATE_PARTS, label_value, parse_datetime, parse_numeric
from builder.data.text import NGRAM_JOIN, PAD_ID, UNK_ID, tokenize
from builder.errors import DataError, SpecError
from builder.jsonsafe import plain
from builder.trained import TrainedModel

METHODS = ("integrated_gradients", "shapley")
IG_STEPS = 64  # path steps for one input (Gauss-Legendre): completeness error well under 1e-3
BATCH_IG_STEPS = 24  # for many rows at once (top_reasons): the ranking of columns needs less
# Random orders of the features (torch's random numbers: two calls differ a little); each order
# adds up exactly on its own, so the sum is exact whatever the draw.
SHAPLEY_SAMPLES = 25
IMAGE_PATCHES = 8  # Shapley sampling on images moves patches: about 8 x 8 of them per image
MIN_ROWS = 10  # fewer rows with a known answer say nothing about importance
# A column whose shuffling moves the score by less than this (or by less than the spread of the
# repeats) "does not matter": 0.2 accuracy points, or 0.002 of R².
NEGLIGIBLE = 0.002
CHUNK_VALUES = 4_000_000  # input floats (rows x path steps x features) per attribution pass over many rows
_CLASS_TASKS = ("binary", "multiclass")


# --- what is returned ------------------------------------------------------------------------


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


# --- public functions ----------------------------------------------------------------------------


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


# --- the explained output ------------------------------------------------------------------------


class _Explained(nn.Module):
    """The network followed by what its outputs mean: ``(B, *input) -> (B, K)`` values an analyst reads.

    regression: ``(B, 1)`` the prediction in original units; binary: ``(B, 2)`` the two classes'
    probabilities; multiclass: ``(B, k)`` probabilities; forecast: ``(B, horizon)`` forecasts in
    original units (with the naive forecast the network's output is added to); anomaly: ``(B, 1)``
    the reconstruction error. Every mapping is the one the preprocessor's decoding applies, read
    off through its public methods, so an explained value is the value the app shows.
    """

    def __init__(self, trained: TrainedModel, network: nn.Module | None = None):
        super().__init__()
        self.network = trained.model if network is None else network
        self.task = trained.task
        pre = trained.preprocessor
        self.scale: Any = 1.0
        self.shift: Any = 0.0
        self.reference: torch.Tensor | None = None
        if self.task == "regression":
            zero = float(pre.decode_outputs(np.zeros((1, 1)))["prediction"].iloc[0])
            self.scale, self.shift = float(pre.decode_outputs(np.ones((1, 1)))["prediction"].iloc[0]) - zero, zero
        elif self.task == "forecast":
            window, width = pre.input_shape
            horizon = pre.n_outputs
            zeros = np.zeros((1, window, width), dtype=np.float32)
            base = pre.decode_forecast(zeros, np.zeros((1, horizon)))[0]  # (H,)
            self.shift = torch.tensor(base, dtype=torch.float32)
            self.scale = torch.tensor(pre.decode_forecast(zeros, np.ones((1, horizon)))[0] - base, dtype=torch.float32)
            # The forecast adds a naive forecast read from the window: linear in the target's past
            # values, so one unit impulse per past step gives its weights (W, H).
            impulses = np.zeros((window, window, width), dtype=np.float32)
            impulses[np.arange(window), np.arange(window), pre.target_index] = 1.0
            reference = pre.decode_forecast(impulses, np.zeros((window, horizon))) - base
            self.reference = torch.tensor(reference, dtype=torch.float32)
            self.target_index = pre.target_index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.network(x)
        if self.task == "regression":
            return out * self.scale + self.shift  # (B, 1)
        if self.task == "binary":
            positive = torch.sigmoid(out[:, :1])  # (B, 1)
            return torch.cat([1.0 - positive, positive], dim=1)  # (B, 2)
        if self.task == "multiclass":
            return torch.softmax(out, dim=1)  # (B, k)
        if self.task == "forecast":
            return out * self.scale + self.shift + x[:, :, self.target_index] @ self.reference  # (B, H)
        if self.task == ANOMALY_TASK:
            return ((out - x.flatten(1)) ** 2).mean(dim=1, keepdim=True)  # (B, 1)
        raise SpecError(f"Explanations are not available for the task {self.task!r}.")


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise SpecError(f"The explanation method must be 'integrated_gradients' or 'shapley'; got {method!r}.")
    return method


def _class_index(classes: list[Any], target_class: Any, default: int) -> int:
    """The output index of ``target_class`` (an index or a label); ``default`` when it is ``None``."""
    if target_class is None:
        return default
    if isinstance(target_class, (int, np.integer)) and not isinstance(target_class, bool):
        index = int(target_class)
    else:
        labels = [str(label_value(c)) for c in classes]
        wanted = str(label_value(target_class))
        index = labels.index(wanted) if wanted in labels else -1
    if not 0 <= index < len(classes):
        raise SpecError(f"target_class must be a class index from 0 to {len(classes) - 1} or one of the labels "
                        f"{_quote(classes)}; got {target_class!r}.")
    return index


def _target(trained: TrainedModel, explained_row: np.ndarray, target_class: Any) -> tuple[int, Any]:
    """The output index explained for one input and what it is called."""
    pre, task = trained.preprocessor, trained.task
    if task in _CLASS_TASKS:
        default = 1 if task == "binary" else int(np.argmax(explained_row))
        index = _class_index(pre.classes, target_class, default)
        return index, plain(pre.classes[index])
    if task == "forecast":
        horizon = pre.n_outputs
        step = 0 if target_class is None else target_class
        if not isinstance(step, (int, np.integer)) or not 0 <= int(step) < horizon:
            raise SpecError(f"For a forecast, target_class is the step ahead, from 0 (the next step) to "
                            f"{horizon - 1}; got {target_class!r}.")
        step = int(step)
        return step, f"{pre.target}, {_steps(step + 1)} ahead"
    if target_class is not None:
        raise SpecError(f"target_class applies to classes and forecasts only; this model does {task}. Leave it out.")
    return 0, "anomaly score" if task == ANOMALY_TASK else pre.target


def _attribute(forward: Callable, X: torch.Tensor, baseline: torch.Tensor, target: Any, method: str,
               mask: torch.Tensor | None = None, extra: Any = None,
               n_steps: int = IG_STEPS) -> tuple[np.ndarray, float | None]:
    """Attributions of ``forward(X)[:, target]`` against ``baseline`` (same shape as ``X``)."""
    if method == "shapley":
        sampler = ShapleyValueSampling(forward)
        attr = sampler.attribute(X, baselines=baseline, target=target, additional_forward_args=extra,
                                 feature_mask=mask, n_samples=SHAPLEY_SAMPLES, perturbations_per_eval=32)
        return attr.detach().numpy().astype(np.float64), None
    gradients = IntegratedGradients(forward)
    attr, delta = gradients.attribute(X, baselines=baseline, target=target, additional_forward_args=extra,
                                      n_steps=n_steps, return_convergence_delta=True)
    return attr.detach().numpy().astype(np.float64), float(delta[0])


def _outputs(forward: Callable, X: torch.Tensor, extra: Any = None) -> np.ndarray:
    with torch.no_grad():
        out = forward(X) if extra is None else forward(X, *extra)
    return out.numpy().astype(np.float64)


# --- tables --------------------------------------------------------------------------------------


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


def _row_targets(trained: TrainedModel, X: np.ndarray) -> np.ndarray:
    """Per-row output index for many inputs: the second class of a yes/no task, the predicted class
    with several classes (the largest logit is the largest probability), else the one output."""
    if trained.task == "multiclass":
        return trained.predict_outputs(X).argmax(axis=1)  # (N,)
    return np.full(len(X), 1 if trained.task == "binary" else 0)


def _gradients_in_chunks(forward: Callable, X: torch.Tensor, targets: np.ndarray, baseline: torch.Tensor | None = None,
                         embed: Callable | None = None) -> np.ndarray:
    """Integrated gradients of many inputs at once, in chunks of rows that bound the memory.

    Args:
        forward: the explained output (``_Explained``, or ``_TextForward`` with ``embed``).
        X: ``(N, ...)`` model inputs.
        targets: ``(N,)`` output index per row.
        baseline: ``(1, ...)``, the same for every row (``None`` with ``embed``: zero vectors).
        embed: text: token ids -> word vectors, the input attributed; the ids go to ``forward``
            beside them.

    Returns:
        float64 attributions, ``(N, ...)`` (``(N, T, D)`` with ``embed``).
    """
    first = X[:1] if embed is None else embed(X[:1])
    width = int(np.prod(first.shape[1:])) or 1
    chunk = max(1, CHUNK_VALUES // (BATCH_IG_STEPS * width))
    gradients = IntegratedGradients(forward)
    parts = [np.zeros((0, *first.shape[1:]))]
    for start in range(0, len(X), chunk):
        part = slice(start, start + chunk)
        inputs, extra = (X[part], None) if embed is None else (embed(X[part]), (X[part],))
        attr = gradients.attribute(inputs, baselines=torch.zeros_like(first) if baseline is None else baseline,
                                   target=torch.from_numpy(targets[part]), additional_forward_args=extra,
                                   n_steps=BATCH_IG_STEPS)
        parts.append(attr.detach().numpy().astype(np.float64))
    return np.concatenate(parts)


def _kept_rows(trained: TrainedModel) -> pd.DataFrame:
    raw = (trained.test_results or {}).get("rows")
    if not raw:
        raise DataError("This run kept no test rows to explain with. Pass rows, or train the model again "
                        "to keep them.")
    return pd.DataFrame(raw)


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


class _TableModel(BaseEstimator):
    """scikit-learn's view of a trained table network, so its inspection tools can use it.

    Already trained: ``fit`` only records the classes. ``predict`` (and ``predict_proba``) read a
    DataFrame through ``features_of`` (DataFrame -> the network's input matrix) and give what
    ``trained.predict`` gives, as numbers: class indexes (and probabilities), the prediction in
    original units, or the anomaly score (``_Explained`` applies the same decoding, without
    building a labelled frame per call).
    """

    def __init__(self, trained: TrainedModel | None = None, features_of: Callable | None = None):
        self.trained = trained
        self.features_of = features_of

    def fit(self, X: pd.DataFrame, y: Any = None) -> _TableModel:
        self.n_features_in_ = X.shape[1]
        self.explained_ = _Explained(self.trained)
        if self.trained.task in _CLASS_TASKS:
            self.classes_ = np.arange(len(self.trained.preprocessor.classes))
        return self

    def _values(self, X: pd.DataFrame) -> np.ndarray:
        features = torch.from_numpy(np.ascontiguousarray(self.features_of(X)))
        with torch.inference_mode():
            return self.explained_(features).numpy().astype(np.float64)  # (N, K)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self._values(X)  # (N, k) class probabilities

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        values = self._values(X)
        if self.trained.task == "binary":  # the model's own decision threshold (0.5 unless chosen)
            threshold = getattr(self.trained.preprocessor, "decision_threshold", None) or 0.5
            return (values[:, 1] > threshold).astype(np.int64)
        return values.argmax(axis=1) if self.trained.task == "multiclass" else values[:, 0]


class _TableClassifier(ClassifierMixin, _TableModel):
    pass


class _TableRegressor(RegressorMixin, _TableModel):
    pass


def _estimator(trained: TrainedModel, features_of: Callable) -> _TableModel:
    kind = _TableClassifier if trained.task in _CLASS_TASKS else _TableRegressor
    return kind(trained, features_of)


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


# --- images --------------------------------------------------------------------------------------


def _image_input(row: Any) -> Any:
    """An image as the image preprocessor reads it; arrays become Pillow images."""
    if not isinstance(row, np.ndarray):
        return row
    from PIL import Image

    array = np.asarray(row)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3, 4):
        array = array.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3):
        raise DataError(f"An image array must be (H, W), (H, W, 3) or (C, H, W); got shape {row.shape}.")
    if array.dtype != np.uint8:
        values = array.astype(np.float64)
        array = np.clip(values * (255.0 if values.max(initial=0) <= 1.0 else 1.0), 0, 255).round().astype(np.uint8)
    return Image.fromarray(array)


def _explain_image(trained: TrainedModel, row: Any, target_class: Any, method: str) -> RowExplanation:
    pre = trained.preprocessor
    explained = _Explained(trained)
    X = torch.from_numpy(pre.transform([_image_input(row)]))  # (1, C, H, W)
    baseline = torch.zeros_like(X)  # the training mean colour everywhere
    out, base = _outputs(explained, X)[0], _outputs(explained, baseline)[0]
    index, target = _target(trained, out, target_class)
    _, channels, height, width = X.shape
    side = max(1, math.ceil(max(height, width) / IMAGE_PATCHES))
    rows_, cols_ = np.arange(height)[:, None] // side, np.arange(width)[None, :] // side
    patches = rows_ * math.ceil(width / side) + cols_  # (H, W) patch number of each pixel
    mask = torch.from_numpy(np.broadcast_to(patches, (1, channels, height, width)).copy()).long()
    attr, delta = _attribute(explained, X, baseline, index, method, mask=mask)
    if method == "shapley":  # each pixel holds its patch's value: share it out over the patch
        share = np.bincount(patches.ravel())[patches]  # (H, W) pixels per patch
        heatmap = attr[0, 0] / share
        per_channel = np.repeat(heatmap[None] / channels, channels, axis=0)
    else:
        per_channel = attr[0]  # (C, H, W)
        heatmap = per_channel.sum(axis=0)  # (H, W)
    prediction = plain(pre.decode_outputs(trained.predict_outputs(X.numpy()))["prediction"].iloc[0])
    sentence = (f"The model gives {_label(target)} a probability of {out[index]:.0%} ({base[index]:.0%} for an "
                "image of the average colour). Bright parts of the heatmap pushed it up, dark parts down.")
    return RowExplanation("images", method, heatmap, prediction, target, float(out[index]), float(base[index]),
                          delta, sentence, {"channels": per_channel})


# --- text ----------------------------------------------------------------------------------------


class _Slot(nn.Module):
    """Stands in for a text model's first layer: gives back the vectors it was handed."""

    def __init__(self) -> None:
        super().__init__()
        self.value: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value


class _TextForward:
    """The explained output as a function of each token's word vector ``(B, T, D)``, token ids beside.

    The attribution is taken at the output of the first layer (Embedding, or EmbeddingBag whose
    average is rebuilt here from the per-token vectors), so each token position gets its share.
    A shallow copy of the network with that layer swapped for a slot is used: the run's network is
    never changed, so other threads can keep predicting with it. The padding mask still comes from
    the ids, so both ends of the path (the text, and the text with zero vectors) read it alike.
    """

    def __init__(self, trained: TrainedModel):
        network = trained.model
        first = next(iter(network._modules))
        self.layer = network._modules[first]
        if not isinstance(self.layer, (nn.Embedding, nn.EmbeddingBag)):
            raise SpecError("Word attributions need a text model whose first layer is Embedding or EmbeddingBag.")
        self.slot = _Slot()
        clone = copy.copy(network)
        clone.__dict__["_modules"] = {**network._modules, first: self.slot}
        self.explained = _Explained(trained, clone)

    def vectors(self, ids: torch.Tensor) -> torch.Tensor:
        return self.layer.weight.detach()[ids.long()]  # (B, T) -> (B, T, D)

    def __call__(self, vectors: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        if isinstance(layer, nn.EmbeddingBag):
            real = (ids != PAD_ID) if layer.padding_idx is not None else torch.ones_like(ids, dtype=torch.bool)
            weights = real.unsqueeze(2).to(vectors.dtype)  # (B, T, 1)
            if layer.mode == "max":
                masked = vectors.masked_fill(~real.unsqueeze(2), -torch.inf).amax(dim=1)
                self.slot.value = torch.where(real.any(dim=1, keepdim=True), masked, torch.zeros_like(masked))
            else:
                total = (vectors * weights).sum(dim=1)  # (B, D)
                self.slot.value = total if layer.mode == "sum" else total / weights.sum(dim=1).clamp(min=1.0)
        else:
            self.slot.value = vectors  # (B, T, D)
        return self.explained(ids)


def _text_of(trained: TrainedModel, row: Any) -> str:
    pre = trained.preprocessor
    if isinstance(row, pd.DataFrame):
        if len(row) != 1:
            raise DataError(f"explain_row explains one text; got {len(row)} rows. Pick one, or use top_reasons.")
        row = _text_column(pre, row).iloc[0]
    if row is None or (isinstance(row, float) and math.isnan(row)):
        return ""
    if not isinstance(row, str):
        raise DataError(f"A text to explain must be a string; got {type(row).__name__}.")
    return row


def _text_column(pre: Any, rows: pd.DataFrame) -> pd.Series:
    column = pre.text_column
    if column is None or column not in rows.columns:
        raise DataError(f"The data has no column {column!r}, which holds the texts the model reads. Add it with the "
                        f"same name as in the training data (columns now: {_quote(rows.columns)}).")
    return rows[column]


def _word_shares(text: str, ids: np.ndarray, pre: Any) -> tuple[list[str], list[list[tuple[int, float]]]]:
    """The words of ``text`` and, per position of ``ids``, which words share its attribution.

    Words in order (``ngrams=1``): position p is word p. A bag of n-grams: a position is one
    distinct n-gram id (all unknown n-grams share id 1); its attribution is split evenly over
    every place that id occurs in the text, then evenly over the words of each place, so the
    words' values still add up to the total.
    """
    words = tokenize(text)
    length = len(ids)
    if pre.ngrams == 1:
        return words, [[(p, 1.0)] if p < len(words) and ids[p] != PAD_ID else [] for p in range(length)]
    slot = {int(i): p for p, i in enumerate(ids) if i != PAD_ID}
    places: list[list[list[int]]] = [[] for _ in range(length)]
    for end in range(len(words)):
        for n in range(1, min(pre.ngrams, end + 1) + 1):
            gram = NGRAM_JOIN.join(words[end - n + 1:end + 1])
            p = slot.get(pre.token_id(gram))
            if p is not None:
                places[p].append(list(range(end - n + 1, end + 1)))
    shares = []
    for found in places:
        parts = [(w, 1.0 / len(found) / len(span)) for span in found for w in span]
        shares.append(parts)
    return words, shares


def _word_values(words: list[str], shares: list[list[tuple[int, float]]], attr: np.ndarray) -> list[float]:
    values = np.zeros(len(words))
    for p, parts in enumerate(shares):
        for w, share in parts:
            values[w] += attr[p] * share
    return values.tolist()


def _explain_text(trained: TrainedModel, row: Any, target_class: Any, method: str) -> RowExplanation:
    pre = trained.preprocessor
    text = _text_of(trained, row)
    ids = torch.from_numpy(pre.transform([text]))  # (1, T)
    if method == "shapley":  # remove words (padding id 0) rather than zero their vectors
        forward: Callable = _Explained(trained)
        X, baseline, extra = ids, torch.zeros_like(ids), None
        mask = torch.arange(ids.shape[1]).unsqueeze(0)  # one group per position
        out, base = _outputs(forward, X)[0], _outputs(forward, baseline)[0]
    else:
        forward = _TextForward(trained)
        X = forward.vectors(ids)  # (1, T, D)
        baseline, extra, mask = torch.zeros_like(X), (ids,), None
        out, base = _outputs(forward, X, extra)[0], _outputs(forward, baseline, extra)[0]
    index, target = _target(trained, out, target_class)
    attr, delta = _attribute(forward, X, baseline, index, method, mask=mask, extra=extra)
    per_position = attr[0] if method == "shapley" else attr[0].sum(axis=-1)  # (T,)
    id_row = ids[0].numpy().astype(np.int64)
    words, shares = _word_shares(text, id_row, pre)
    values = _word_values(words, shares, per_position)
    vocabulary = pre.vocabulary
    tokens = [("(unknown words)" if i == UNK_ID else vocabulary[i], float(per_position[p]))
              for p, i in enumerate(id_row) if i != PAD_ID]
    prediction = plain(pre.decode_outputs(trained.predict_outputs(ids.numpy()))["prediction"].iloc[0])
    blank = "an empty text" if method == "shapley" else "the same text with every word blanked out"
    parts = [(f"'{word}'", value) for word, value in zip(words, values, strict=True)]
    sentence = _row_sentence(trained, target, out[index], base[index], parts, baseline_words=blank)
    return RowExplanation("text", method, list(zip(words, values, strict=True)), prediction, target,
                          float(out[index]), float(base[index]), delta, sentence, {"tokens": tokens})


def _text_reasons(trained: TrainedModel, rows: Any, k: int) -> pd.DataFrame:
    pre = trained.preprocessor
    if isinstance(rows, pd.DataFrame):
        index, texts = rows.index, _text_column(pre, rows).tolist()
    else:
        series = pd.Series(rows) if not isinstance(rows, pd.Series) else rows
        index, texts = series.index, series.tolist()
    texts = ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in texts]
    columns = [f"reason_{i + 1}" for i in range(k)]
    if not texts:
        return pd.DataFrame(columns=columns, index=index, dtype=object)
    ids = torch.from_numpy(pre.transform(texts))  # (N, T)
    forward = _TextForward(trained)
    attr = _gradients_in_chunks(forward, ids, _row_targets(trained, ids.numpy()), embed=forward.vectors)  # (N, T, D)
    per_position = attr.sum(axis=-1)  # (N, T)
    id_rows = ids.numpy().astype(np.int64)
    table = []
    for i, text in enumerate(texts):  # word bookkeeping only; the attributions came in one pass
        words, shares = _word_shares(text, id_rows[i], pre)
        totals: dict[str, float] = {}
        for word, value in zip(words, _word_values(words, shares, per_position[i]), strict=True):
            totals[word] = totals.get(word, 0.0) + value
        ranked = sorted(totals.items(), key=lambda item: -abs(item[1]))[:k]
        reasons = [f"'{w}' ({'raises' if v > 0 else 'lowers'})" for w, v in ranked if abs(v) >= 1e-9]
        table.append(reasons + [None] * (k - len(reasons)))
    return pd.DataFrame(table, columns=columns, index=index, dtype=object)


# --- forecasts -----------------------------------------------------------------------------------


def _explain_forecast(trained: TrainedModel, history: Any, target_class: Any, method: str) -> RowExplanation:
    pre = trained.preprocessor
    if not isinstance(history, pd.DataFrame):
        raise DataError("A forecast is explained from its history: a table with the time column and the series.")
    window_array, last_time = pre.last_window(history)
    X = torch.from_numpy(np.ascontiguousarray(window_array))  # (1, W, F)
    explained = _Explained(trained)
    baseline = torch.zeros_like(X)  # every column at its training mean: a flat series
    out, base = _outputs(explained, X)[0], _outputs(explained, baseline)[0]
    index, target = _target(trained, out, target_class)
    window, width = X.shape[1], X.shape[2]
    mask = torch.arange(window).view(1, window, 1).expand(1, window, width).contiguous()  # a step at a time
    attr, delta = _attribute(explained, X, baseline, index, method, mask=mask)
    if method == "shapley":
        per_step = attr[0, :, 0]
        by_column = {c: (per_step / width).tolist() for c in pre.columns}
    else:
        per_step = attr[0].sum(axis=1)  # (W,)
        by_column = {c: attr[0, :, j].tolist() for j, c in enumerate(pre.columns)}
    times = pre.regularise(history)[pre.time_column].iloc[-window:]
    iso = np.datetime_as_string(times.to_numpy(dtype="datetime64[s]"), unit="s").tolist()
    labels = [f"The value of {_time_text(t)}" for t in iso]
    sentence = _row_sentence(trained, target, out[index], base[index], list(zip(labels, per_step.tolist(), strict=True)),
                             baseline_words="a flat series at its training average")
    return RowExplanation("series", method, per_step.tolist(), float(out[index]), target, float(out[index]),
                          float(base[index]), delta, sentence,
                          {"times": iso, "by_column": by_column, "last_time": str(pd.Timestamp(last_time))})


# --- words -------------------------------------------------------------------------------------------


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
