"""Baselines: the simple models every trained network is compared with, one per kind of data.

* tables and images (``fit_baseline``): ridge or logistic regression from scikit-learn, fitted on
  exactly the matrices the network saw, decoded like the network's outputs;
* text (``fit_text_baseline``): TF-IDF + logistic regression over the same tokens;
* a time series (``FORECAST_BASELINES``): last value, seasonal naive and lagged ridge forecasts on
  the test windows, in the series' units; ``compare_forecasts`` scores them.

Anomaly detection has none: nothing in the data says which rows really are anomalies. Scoring is
``builder.evaluate``'s; data preparation (``builder.data``) knows nothing about baselines.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import log_softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, RidgeCV

from builder.data.text import TASKS as TEXT_TASKS
from builder.data.text import as_text_list, fit_classes, is_missing_label, label_value, tokenize
from builder.data.timeseries import PreparedSeries
from builder.errors import DataError
from builder.evaluate import as_labels, check_task, compute_metrics, downsample

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# Tables and images: scikit-learn on the network's own inputs
# --------------------------------------------------------------------------------------------------


@dataclass
class BaselineResult:
    """A scikit-learn model fitted on the network's own inputs, as a yardstick.

    Attributes:
        name: display name, e.g. ``"Logistic regression (scikit-learn)"``.
        description: one sentence for a non-expert on what it is and why it is there.
        metrics: ``compute_metrics`` on the test rows, original units.
        predictions: decoded like the network's: ``prediction`` and ``probability_<class>``.
        estimator: the fitted scikit-learn model (coefficients, explanations); not serialised.
    """

    name: str
    description: str
    metrics: dict[str, float]
    predictions: pd.DataFrame
    estimator: Any = field(default=None, repr=False, compare=False)

    def to_dict(self, include_predictions: bool = False) -> dict[str, Any]:
        """Return a JSON-safe dict.

        Args:
            include_predictions: add the predictions as a list of row records (can be large).
        """
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "metrics": {k: float(v) for k, v in self.metrics.items()},
        }
        if include_predictions:
            out["predictions"] = _records(self.predictions)
        return out


_BASELINE_TEXT = {
    "classification": (
        "Logistic regression (scikit-learn)",
        "A simple, well-understood model that gives each input column one weight; if the network "
        "cannot beat it, its extra complexity is not paying off.",
    ),
    "regression": (
        "Ridge regression (scikit-learn)",
        "A straight-line model that gives each input column one weight (kept modest to avoid "
        "over-fitting); if the network cannot beat it, its extra complexity is not paying off.",
    ),
}

# Log-probability given to a class the baseline never saw in training: exp(-1e4) is exactly 0 in
# float32 and float64, yet stays finite so no decode code meets inf - inf.
_ABSENT_CLASS_LOGIT = -1e4


def fit_baseline(
    task: str,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test_original: Any,
    decode: Callable[[np.ndarray], pd.DataFrame],
    *,
    classes: Sequence[Any] | None = None,
    max_train_rows: int | None = 200_000,
    seed: int = 0,
) -> BaselineResult:
    """Fit the task's scikit-learn baseline on the prepared matrices and score it on the test rows.

    The baseline sees exactly what the network sees (same preprocessed features, same encoded
    targets), so the comparison measures the architecture, not the data preparation. Its raw
    outputs are shaped like the network's and go through the same ``decode``, so its predictions
    come back in original labels/units exactly like the network's:

    - regression: ``RidgeCV`` prediction in scaled target units, ``(N, 1)``;
    - binary: ``LogisticRegression.decision_function``, the logit of class 1, ``(N, 1)``;
      its sigmoid is ``predict_proba[:, 1]``;
    - multiclass: log-probabilities ``log_softmax(decision_function)``, ``(N, k)``; their softmax
      is ``predict_proba``. A class missing from the training rows gets probability 0.

    Args:
        task: ``"regression"``, ``"binary"`` or ``"multiclass"``.
        X_train: float32 preprocessed features ``(N, F)`` or ``(N, *input_shape)`` (flattened here).
        y_train: encoded targets: regression standardised float ``(N, 1)``; binary 0/1 ``(N, 1)``;
            multiclass int64 class indices ``(N,)``.
        X_test: preprocessed test features, same layout as ``X_train``.
        y_test_original: true test labels/values in the original space.
        decode: turns raw outputs like the network's into a DataFrame with a ``prediction`` column
            and, for classification, ``probability_<class>`` columns in class order.
        classes: the class labels in encoded order; defaults to those read back from the
            ``probability_<class>`` column names (matched to the labels' own types).
        max_train_rows: fit on a random subset of at most this many training rows (``None``: all),
            so the yardstick stays a matter of seconds on large tables or images.
        seed: seed of that subset and of the solver.

    Returns:
        The fitted baseline with its test metrics and decoded predictions.

    Raises:
        SpecError: unknown task.
        DataError: empty data, rows that do not match, a single class in the training rows, or a
            ``decode`` result without a ``prediction`` column.
    """
    check_task(task)
    X_fit = _flat_features(X_train, "training")
    X_eval = _flat_features(X_test, "test")
    target = np.asarray(y_train).ravel()  # (N, 1) or (N,) -> (N,)
    if len(target) != len(X_fit):
        raise DataError(
            f"The training targets have {len(target)} rows but the training features have "
            f"{len(X_fit)}: they must describe the same rows."
        )
    if X_fit.shape[1] != X_eval.shape[1]:
        raise DataError(
            f"The test rows have {X_eval.shape[1]} prepared columns but the training rows have "
            f"{X_fit.shape[1]}: prepare both with the same fitted preprocessor."
        )
    if max_train_rows is not None and len(X_fit) > max_train_rows:
        keep = downsample(len(X_fit), max_train_rows, seed)
        logger.info("Baseline fitted on %d of %d training rows.", len(keep), len(X_fit))
        X_fit, target = X_fit[keep], target[keep]

    if task == "regression":
        # Features are standardised, so a log grid of penalties around 1 covers sensible strengths;
        # RidgeCV picks one by efficient leave-one-out, no extra split needed.
        estimator = RidgeCV(alphas=np.logspace(-3, 3, 13))
        estimator.fit(X_fit, target.astype(np.float64))
        raw = estimator.predict(X_eval).reshape(-1, 1)  # (N, 1) scaled target units
        name, description = _BASELINE_TEXT["regression"]
    else:
        labels = target.astype(np.int64)
        if len(np.unique(labels)) < 2:
            raise DataError(
                "The training rows hold only one class, so no classifier can be fitted: "
                "use data (or a split) with examples of at least two classes."
            )
        # lbfgs on standardised inputs converges in well under 1000 iterations on typical tables;
        # the headroom covers poorly scaled columns. In scikit-learn >= 1.8 multiclass is always
        # multinomial (softmax), the same model family as our "logistic" network.
        estimator = LogisticRegression(max_iter=1000, random_state=seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            estimator.fit(X_fit, labels)
        for caught_warning in caught:
            if issubclass(caught_warning.category, ConvergenceWarning):
                # Still a usable yardstick; note it for whoever reads the logs.
                logger.warning("Baseline logistic regression stopped before full convergence.")
            else:  # not ours to swallow
                warnings.warn(caught_warning.message, caught_warning.category, stacklevel=2)
        if task == "binary":
            raw = estimator.decision_function(X_eval).reshape(-1, 1)  # (N, 1) logit of class 1
        else:
            n_classes = len(classes) if classes is not None else int(labels.max()) + 1
            n_classes = max(n_classes, int(estimator.classes_.max()) + 1)
            scores = estimator.decision_function(X_eval)  # (N, k_seen), or (N,) if k_seen == 2
            if scores.ndim == 1:
                # Two classes seen: sklearn returns the logit of the second only; softmax of
                # [0, logit] is [1 - sigmoid, sigmoid], the same probabilities.
                scores = np.column_stack([np.zeros_like(scores), scores])
            log_p = log_softmax(scores, axis=1)  # (N, k_seen)
            raw = np.full((len(X_eval), n_classes), _ABSENT_CLASS_LOGIT)  # (N, k)
            raw[:, estimator.classes_] = log_p
        name, description = _BASELINE_TEXT["classification"]

    # The network's raw outputs are float32; give decode the same dtype it sees in production.
    predictions = decode(raw.astype(np.float32))
    if not isinstance(predictions, pd.DataFrame) or "prediction" not in predictions.columns:
        raise DataError("The decode step must return a table with a 'prediction' column.")

    if task == "regression":
        metrics = compute_metrics(task, y_test_original, predictions["prediction"])
    else:
        proba_cols = [c for c in predictions.columns if str(c).startswith("probability_")]
        class_labels = (
            list(classes)
            if classes is not None
            else _classes_from_columns(proba_cols, y_test_original, predictions["prediction"])
        )
        proba = predictions[proba_cols].to_numpy(dtype=np.float64) if proba_cols else None
        if task == "binary" and len(class_labels) != 2:
            # Without both class columns the positive class is unknown: score labels only.
            proba, class_labels = None, None
        metrics = compute_metrics(
            task, y_test_original, predictions["prediction"], proba=proba, classes=class_labels
        )
    return BaselineResult(name, description, metrics, predictions, estimator)


def _classes_from_columns(columns: list[str], *label_sources: Any) -> list[Any]:
    """Recover class labels from ``probability_<class>`` names, in their original types.

    Column names are strings, but labels may be numbers (0/1, 1..5): each suffix is matched to a
    label seen in the data whose text is the same, so ``"probability_1"`` gives back the integer 1.
    """
    by_text: dict[str, Any] = {}
    for source in label_sources:
        for label in as_labels(source):
            by_text.setdefault(str(label), label)
    suffixes = [str(c)[len("probability_") :] for c in columns]
    return [by_text.get(s, s) for s in suffixes]



def _flat_features(X: np.ndarray, which: str) -> np.ndarray:
    arr = np.asarray(X)
    if arr.ndim == 0 or len(arr) == 0:
        raise DataError(f"There are no {which} rows to fit the baseline on.")
    return arr.reshape(len(arr), -1)  # (N, *shape) -> (N, F): linear baselines need flat rows


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts; pandas' writer handles numpy scalars and NaN (-> null)."""
    return json.loads(frame.to_json(orient="records"))


# --------------------------------------------------------------------------------------------------
# Text: TF-IDF + logistic regression
# --------------------------------------------------------------------------------------------------

_TEXT_BASELINE_NAME = "TF-IDF + logistic regression (scikit-learn)"
_TEXT_BASELINE_DESCRIPTION = (
    "A classic text model that weighs each word by how telling it is and gives it one weight per "
    "class; if the network cannot beat it, its extra complexity is not paying off."
)


def fit_text_baseline(
    texts_train: Iterable[Any],
    y_train_labels: Iterable[Any],
    texts_test: Iterable[Any],
    y_test_labels: Iterable[Any],
    task: str,
    *,
    classes: list[Any] | None = None,
    seed: int = 0,
) -> Any:
    """Fit TF-IDF + logistic regression on the training texts and score it on the test texts.

    The vectoriser uses ``tokenize`` as its analyzer, so it sees exactly the tokens the network
    sees (Chinese and Japanese one character at a time).

    Args:
        texts_train, texts_test: raw texts (missing values allowed).
        y_train_labels, y_test_labels: labels as written in the data.
        task: ``"binary"`` or ``"multiclass"``.
        classes: every class label; defaults to those in the training and test labels.
        seed: seed of the solver.

    Returns:
        A ``BaselineResult``: ``metrics`` (``compute_metrics`` on the test rows)
        and ``predictions`` (``prediction`` and ``probability_<class>``, classes in sorted order).

    Raises:
        DataError: unknown task, rows that do not match, missing labels, no words, or a single
            class in the training rows.
    """
    if task not in TEXT_TASKS:
        raise DataError(
            f"The task {task!r} is not known for text. Choose one of: {', '.join(TEXT_TASKS)}."
        )
    train_texts, test_texts = as_text_list(texts_train), as_text_list(texts_test, "test texts")
    train_labels, test_labels = list(y_train_labels), list(y_test_labels)
    for texts, labels, which in ((train_texts, train_labels, "training"), (test_texts, test_labels, "test")):
        if len(texts) != len(labels):
            raise DataError(
                f"There are {len(texts)} {which} texts but {len(labels)} {which} labels; each "
                "text needs exactly one label. Pass the same rows for both."
            )
        if any(is_missing_label(v) for v in labels):
            raise DataError(
                f"Some {which} rows have no label. Remove those rows or fill in the values."
            )
    class_labels = fit_classes(
        list(classes) if classes is not None else train_labels + test_labels, task, "the label column"
    )
    index = {str(label): i for i, label in enumerate(class_labels)}
    codes = np.array([index.get(str(label_value(v)), -1) for v in train_labels], dtype=np.int64)
    if len(np.unique(codes)) < 2:
        raise DataError(
            "The training rows hold only one class, so no classifier can be fitted: use data "
            "(or a split) with examples of at least two classes."
        )
    if not any(tokenize(t) for t in train_texts):
        raise DataError(
            "The training texts contain no words at all, so the baseline has nothing to learn "
            "from. Choose a column with written text."
        )
    # sublinear tf keeps one repeated word from dominating a text.
    vectorizer = TfidfVectorizer(analyzer=tokenize, sublinear_tf=True, dtype=np.float64)
    X_fit = vectorizer.fit_transform(train_texts)  # (N, V) sparse
    X_eval = vectorizer.transform(test_texts)
    estimator = LogisticRegression(C=10.0, max_iter=2000, random_state=seed)
    estimator.fit(X_fit, codes)
    proba = np.zeros((len(test_texts), len(class_labels)))  # (N, k); unseen classes keep 0
    proba[:, estimator.classes_] = estimator.predict_proba(X_eval)
    predicted = np.asarray(class_labels, dtype=object)[proba.argmax(axis=1)]
    frame = {"prediction": pd.Series(predicted.tolist(), dtype=object)}
    for i, label in enumerate(class_labels):
        frame[f"probability_{label}"] = proba[:, i]
    predictions = pd.DataFrame(frame)
    metrics = compute_metrics(
        task, np.asarray(test_labels, dtype=object), predictions["prediction"],
        proba=proba, classes=class_labels,
    )
    pipeline = {"vectorizer": vectorizer, "classifier": estimator}
    return BaselineResult(_TEXT_BASELINE_NAME, _TEXT_BASELINE_DESCRIPTION, metrics, predictions, pipeline)


# --------------------------------------------------------------------------------------------------
# A time series: naive forecasts on the test windows, original units, (M_test, horizon)
# --------------------------------------------------------------------------------------------------


def naive_forecast(prepared: PreparedSeries, split: str = "test") -> np.ndarray:
    """Last value: every future step repeats the last known target value."""
    ends = prepared.ends(split)
    return np.repeat(prepared.target_values[ends][:, None], prepared.n_outputs, axis=1)


def seasonal_naive_forecast(prepared: PreparedSeries, season: int | None = None, split: str = "test") -> np.ndarray:
    """Seasonal naive: step k repeats the value one season earlier (the last known such value).

    Args:
        season: steps per cycle; default the profile's suggestion (no season: last value).
    """
    season = season or prepared.season or 1
    ends = prepared.ends(split)
    k = np.arange(1, prepared.n_outputs + 1)
    source = ends[:, None] + k - season * np.ceil(k / season).astype(np.int64)  # (M, horizon), <= end
    source = np.where(source < 0, ends[:, None], source)  # not enough history: last value
    return prepared.target_values[source]


def ridge_forecast(prepared: PreparedSeries, split: str = "test") -> np.ndarray:
    """Lagged ridge: RidgeCV on the flattened training windows, one output per future step."""
    model = RidgeCV(alphas=np.logspace(-3, 3, 13))
    model.fit(prepared.X_train.reshape(len(prepared.X_train), -1), prepared.y_train)
    X = {"train": prepared.X_train, "val": prepared.X_val, "test": prepared.X_test}[split]
    outputs = model.predict(X.reshape(len(X), -1)).reshape(len(X), prepared.n_outputs)
    return prepared.preprocessor.decode_forecast(X, outputs)  # same targets as the network


FORECAST_BASELINES = {
    "last value": naive_forecast,
    "seasonal naive": seasonal_naive_forecast,
    "lagged ridge": ridge_forecast,
}


def compare_forecasts(
    prepared: PreparedSeries, predictions: dict[str, np.ndarray] | None = None, split: str = "test"
) -> dict[str, dict[str, float]]:
    """Regression metrics (rmse, mae, r2 over every predicted step) of each baseline and model.

    Args:
        predictions: extra ``{name: (M, horizon) predictions in original units}``, e.g. the network.

    Returns:
        ``{name: {metric: value}}``, baselines first.
    """
    truth = prepared.true_targets(split)
    if truth.size == 0:
        raise DataError(f"There are no {split} windows to compare on. Raise the matching fraction.")
    results = {name: forecast(prepared, split=split) for name, forecast in FORECAST_BASELINES.items()}
    results.update(predictions or {})
    return {
        name: compute_metrics("regression", truth.ravel(), np.asarray(pred, dtype=np.float64).ravel())
        for name, pred in results.items()
    }
