"""How good is the trained model, in terms an analyst can present.

Metrics (each with a plain-language label and a one-line meaning), model-vs-baseline comparisons
written as sentences, and the data behind the Evaluate page's charts (confusion matrix, residuals,
ROC curve). The baselines themselves are fitted in ``builder.baselines``.

Everything works in the *original* label space: class labels as written in the training data,
regression values in the target's own units. Metric values are plain Python floats and every result
dataclass has ``to_dict()`` so the CLI, the run store and ``metrics.json`` can ``json.dumps`` them.
Metrics that are undefined for the data at hand (ROC AUC with one class present, R² on one row) are
left out of the result rather than reported as NaN, which JSON cannot carry.

Metric maths is scikit-learn's; this module only chooses, labels, guards and words the results.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    auc,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    roc_curve,
    root_mean_squared_error,
)
from sklearn.utils.multiclass import unique_labels

from builder.errors import DataError, SpecError, TrainingError

logger = logging.getLogger(__name__)

TASKS = ("regression", "binary", "multiclass", "forecast", "anomaly")


# --------------------------------------------------------------------------------------------------
# Metric catalogue
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricInfo:
    """What a metric is called and means, for the UI, the CLI and the model card.

    Attributes:
        name: the key used everywhere (``metrics.json``, CLI output), e.g. ``"mae"``.
        label: plain-language name with the usual abbreviation, e.g. ``"Average error (MAE)"``.
        help: one sentence saying what the number means, ending with which direction is better.
        higher_is_better: whether a larger value is an improvement.
        unit: ``"points"``: a 0-1 share shown as a percentage, differences in percentage points;
            ``"value"``: shown as the number itself (target units for MAE/RMSE).
        short: the abbreviation alone, for sentences ("MAE 12% lower than ...").
    """

    name: str
    label: str
    help: str
    higher_is_better: bool
    unit: Literal["points", "value"]
    short: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-safe dict."""
        return asdict(self)


METRICS: dict[str, MetricInfo] = {
    info.name: info
    for info in (
        MetricInfo(
            "accuracy",
            "Accuracy",
            "Share of rows the model labels correctly (higher is better).",
            True,
            "points",
            "Accuracy",
        ),
        MetricInfo(
            "f1_macro",
            "Balanced score (macro F1)",
            "Balance of precision and recall, averaged so every class counts equally, "
            "however rare (higher is better).",
            True,
            "points",
            "F1",
        ),
        MetricInfo(
            "precision_macro",
            "Precision (macro)",
            "When the model names a class, how often it is right, averaged over the classes "
            "(higher is better).",
            True,
            "points",
            "Precision",
        ),
        MetricInfo(
            "recall_macro",
            "Recall (macro)",
            "Of the rows that truly belong to a class, the share the model finds, averaged over "
            "the classes (higher is better).",
            True,
            "points",
            "Recall",
        ),
        MetricInfo(
            "roc_auc",
            "Ranking quality (ROC AUC)",
            "How well the model's scores put true cases above the others: 0.5 is guessing, 1 is "
            "perfect (higher is better).",
            True,
            # Shown as 0.91 rather than 91%: that is how analysts meet AUC in every other tool.
            "value",
            "AUC",
        ),
        MetricInfo(
            "mae",
            "Average error (MAE)",
            "How wrong the predictions are on average, in the target's own units "
            "(lower is better).",
            False,
            "value",
            "MAE",
        ),
        MetricInfo(
            "rmse",
            "Typical error (RMSE)",
            "Like the average error but big misses weigh more, in the target's own units "
            "(lower is better).",
            False,
            "value",
            "RMSE",
        ),
        MetricInfo(
            "reconstruction_error",
            "Reconstruction error",
            "How far, on average, the model's rebuilt rows are from the real ones, in standardised "
            "units: the anomaly score of a typical row (lower is better).",
            False,
            "value",
            "Error",
        ),
        MetricInfo(
            "flagged_share",
            "Rows flagged",
            "Share of rows whose anomaly score is above the threshold; on rows like the training "
            "data it is the false-alarm rate the threshold was set for (lower is better).",
            False,
            "points",
            "Flagged",
        ),
        MetricInfo(
            "r2",
            "Variance explained (R²)",
            "Share of the target's ups and downs the model accounts for: 1 is perfect, 0 is no "
            "better than always guessing the average (higher is better).",
            True,
            "value",
            "R²",
        ),
    )
}

# Metrics per task, headline first: pages show them in this order and the CLI reports them.
TASK_METRICS: dict[str, list[str]] = {
    "regression": ["rmse", "mae", "r2"],
    "binary": ["accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc"],
    "multiclass": ["accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc"],
    "forecast": ["rmse", "mae", "r2"],  # over every predicted step of every test window
    "anomaly": ["reconstruction_error", "flagged_share"],
}

# The one number the verdict "does the network beat the baseline?" rests on.
# Classification: accuracy, the metric every stakeholder reads without explanation.
# Regression: RMSE rather than MAE or R². The network is trained on squared error and the ridge
# baseline minimises squared error too, so RMSE judges both on what they actually optimise (MAE
# could crown a model for an objective neither pursued); unlike R² it is in the target's own units
# ("typically off by 4.1 k$"), and it is the `val_rmse` the Train page already shows live, so the
# number on the Evaluate card is the one the user watched fall. MAE and R² are still shown too.
HEADLINE_METRIC: dict[str, str] = {
    "regression": "rmse",
    "binary": "accuracy",
    "multiclass": "accuracy",
    "forecast": "rmse",
    "anomaly": "reconstruction_error",
}

# How sentences refer to the baseline of each task ("+6.2 points vs logistic regression").
BASELINE_SHORT_NAMES: dict[str, str] = {
    "regression": "ridge regression",
    "binary": "logistic regression",
    "multiclass": "logistic regression",
    "forecast": "the best simple forecast",
    "anomaly": "IsolationForest",
}


def format_metric(metric: str, value: float) -> str:
    """Format a metric value the way the app shows it.

    Args:
        metric: a key of ``METRICS``.
        value: the metric value.

    Returns:
        ``"93.1%"`` for points metrics, ``"0.912"`` for AUC/R², a readable number for errors.
    """
    info = _metric_info(metric)
    if info.unit == "points":
        return f"{value * 100:.1f}%"
    if metric in ("roc_auc", "r2"):
        return f"{value:.3f}"
    return _format_number(value)


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------


def compute_metrics(
    task: str,
    y_true: Any,
    y_pred: Any,
    proba: Any = None,
    classes: Sequence[Any] | None = None,
) -> dict[str, float]:
    """Compute the task's metrics from predictions in the original label space.

    Args:
        task: ``"regression"``, ``"binary"`` or ``"multiclass"``.
        y_true: true labels (strings or numbers as in the data) or true values, length N.
        y_pred: predicted labels or values, length N.
        proba: class probabilities ``(N, k)``, columns in the order of ``classes``; for binary a
            single positive-class column ``(N,)``/``(N, 1)`` is accepted too. Needed for ROC AUC.
        classes: the model's class labels in encoded order (the second is the positive class for
            binary). Defaults to the sorted labels seen in ``y_true`` and ``y_pred``.

    Returns:
        ``{metric: value}`` with plain floats, in ``TASK_METRICS[task]`` order. ROC AUC is present
        only when ``proba`` is given and every class occurs in ``y_true`` (it is undefined
        otherwise); R² only with at least two rows.

    Raises:
        SpecError: unknown task.
        DataError: no rows, lengths that differ, labels outside ``classes``, missing true values.
        TrainingError: predictions that are missing or infinite (training diverged).
    """
    check_task(task)
    if task == "anomaly":
        raise SpecError("Anomaly models are scored by reconstruction error (builder.results), not here.")
    if task in ("regression", "forecast"):  # a forecast: every step of every window, flattened
        actual, predicted = _regression_arrays(np.ravel(y_true), np.ravel(y_pred))
        metrics = {
            "rmse": root_mean_squared_error(actual, predicted),
            "mae": mean_absolute_error(actual, predicted),
        }
        if len(actual) >= 2:  # R² needs a spread of true values to compare against.
            metrics["r2"] = r2_score(actual, predicted)
        return _clean(metrics, task)

    truth, guess = _label_arrays(y_true, y_pred)
    class_labels = _classes_or_default(classes, truth, guess)
    # The same labels as integer codes: sklearn sorts the labels again in every metric, and
    # sorting 150,000 strings 25 times took 1.3 s where the four metrics on codes take 0.07 s.
    codes = pd.factorize(np.concatenate([truth, guess]))[0]
    true_codes, guessed_codes = codes[: len(truth)], codes[len(truth):]
    metrics = {
        "accuracy": accuracy_score(true_codes, guessed_codes),
        # Averaged over the labels that occur (sklearn's default), so a class absent from this
        # test split neither helps nor hurts; zero_division=0 scores a never-predicted class as 0
        # instead of warning.
        "f1_macro": f1_score(true_codes, guessed_codes, average="macro", zero_division=0),
        "precision_macro": precision_score(true_codes, guessed_codes, average="macro", zero_division=0),
        "recall_macro": recall_score(true_codes, guessed_codes, average="macro", zero_division=0),
    }
    if proba is not None:
        score = _roc_auc(truth, _proba_array(proba, len(truth), len(class_labels)), class_labels)
        if score is not None:
            metrics["roc_auc"] = score
    return _clean(metrics, task)


def _roc_auc(truth: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float | None:
    """ROC AUC (binary, or one-vs-rest macro for multiclass); ``None`` where undefined."""
    present = np.unique(truth)
    if len(present) < 2 or len(present) < len(classes):
        # One-vs-rest needs every class among the true rows: a class with no positives has no
        # curve. Leaving the metric out beats reporting a number computed over fewer classes.
        return None
    if len(classes) == 2:
        positive = proba[:, -1]  # (N,): a single column or the second of two is the positive class
        # Binarise ourselves: sklearn would pick the positive class by sort order, not ours.
        return roc_auc_score(truth == classes[1], positive)
    # Softmax outputs in float32 can miss 1.0 by more than sklearn's check tolerates; renormalise.
    proba = proba / proba.sum(axis=1, keepdims=True)
    return roc_auc_score(truth, proba, multi_class="ovr", average="macro", labels=classes)


# --------------------------------------------------------------------------------------------------
# Comparison with the baseline
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One metric of the network set against the baseline.

    Attributes:
        metric: key of ``METRICS``.
        label: the metric's plain-language label.
        model: the network's value.
        baseline: the baseline's value.
        delta: ``model - baseline`` in the metric's raw scale.
        better: the network is better at the precision shown in ``sentence``.
        sentence: e.g. ``"+6.2 points vs logistic regression"``, ``"MAE 12% lower than ridge
            regression"``.
    """

    metric: str
    label: str
    model: float
    baseline: float
    delta: float
    better: bool
    sentence: str

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-safe dict."""
        return asdict(self)


def compare_to_baseline(
    task: str,
    model_metrics: dict[str, float],
    baseline_metrics: dict[str, float],
    baseline_name: str | None = None,
) -> list[Comparison]:
    """Set each metric of the network against the baseline, in words.

    Higher-is-better shares (accuracy, F1, ...) differ in percentage points; AUC and R² by their
    value; errors (MAE, RMSE) by how many percent lower or higher, since "12% lower" means the same
    whatever the target's units. A difference that rounds to zero at the shown precision reads
    "about the same" and does not count as better.

    Args:
        task: ``"regression"``, ``"binary"`` or ``"multiclass"``.
        model_metrics: the network's ``compute_metrics`` result.
        baseline_metrics: the baseline's ``compute_metrics`` result.
        baseline_name: how sentences name the baseline; defaults to the task's baseline
            ("logistic regression", "ridge regression").

    Returns:
        One ``Comparison`` per metric present in both dicts, in ``TASK_METRICS[task]`` order
        (headline first).

    Raises:
        SpecError: unknown task.
    """
    check_task(task)
    other = baseline_name or BASELINE_SHORT_NAMES[task]
    comparisons = []
    for metric in TASK_METRICS[task]:
        if metric not in model_metrics or metric not in baseline_metrics:
            continue
        info = METRICS[metric]
        model, base = float(model_metrics[metric]), float(baseline_metrics[metric])
        if info.higher_is_better:
            sentence, better = _gain_sentence(info, model - base, other)
        else:
            sentence, better = _error_sentence(info.short, model, base, other)
        comparisons.append(
            Comparison(metric, info.label, model, base, model - base, better, sentence)
        )
    return comparisons


def _gain_sentence(info: MetricInfo, delta: float, other: str) -> tuple[str, bool]:
    """Sentence for a higher-is-better metric: percentage points for shares, else the value."""
    if info.unit == "points":
        shown = round(delta * 100, 1)
        text = f"{shown:+.1f} points vs {other}"
    else:
        shown = round(delta, 3)
        text = f"{shown:+.3f} vs {other}"
    if shown == 0:
        return f"about the same as {other}", False
    return text, shown > 0


def _error_sentence(short: str, model: float, base: float, other: str) -> tuple[str, bool]:
    """Sentence for a lower-is-better error, as a relative change (units cancel out)."""
    if base == 0:
        # A relative change from an exact baseline is undefined; say it in target units.
        if model == 0:
            return f"about the same as {other}", False
        return f"{short} {_format_number(model)} higher than {other} (which is exact)", False
    percent = (model - base) / abs(base) * 100
    text = f"{abs(percent):.1f}" if abs(percent) < 10 else f"{abs(percent):.0f}"
    if float(text) == 0:
        return f"about the same as {other}", False
    direction = "lower" if percent < 0 else "higher"
    return f"{short} {text}% {direction} than {other}", percent < 0


def verdict(task: str, comparisons: list[Comparison], baseline_name: str | None = None) -> str:
    """Say in one or two plain sentences whether the network beats the baseline.

    Judged on ``HEADLINE_METRIC[task]`` only, so the answer does not flip with the metric a reader
    happens to look at. When the network does not win, the text says what to try.

    Args:
        task: ``"regression"``, ``"binary"`` or ``"multiclass"``.
        comparisons: ``compare_to_baseline`` output.
        baseline_name: how to name the baseline; defaults to the task's baseline.

    Returns:
        A sentence for the Evaluate page, the CLI and the model card.

    Raises:
        SpecError: unknown task.
    """
    check_task(task)
    other = baseline_name or BASELINE_SHORT_NAMES[task]
    headline = HEADLINE_METRIC[task]
    info = METRICS[headline]
    what = info.label[0].lower() + info.label[1:]  # "typical error (RMSE)", acronym kept
    found = next((c for c in comparisons if c.metric == headline), None)
    if found is None:
        return (
            f"There is no {what} for both models, so the network cannot be compared with {other}."
        )
    numbers = (
        f"{format_metric(headline, found.model)} against {format_metric(headline, found.baseline)}"
    )
    advice = (
        "Try training for more epochs or with a smaller learning rate; if that does not help, "
        f"{other} may simply be enough for this data."
    )
    if found.better:
        return (
            f"The network beats {other} on {what}: {numbers}, "
            "so its extra complexity pays off."
        )
    if found.sentence.startswith("about the same"):
        return f"The network is about as good as {other} on {what}: {numbers}. {advice}"
    return f"The network does not beat {other} on {what}: {numbers}. {advice}"


# --------------------------------------------------------------------------------------------------
# Chart data
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfusionData:
    """Counts of true class (rows) against predicted class (columns).

    Attributes:
        classes: labels in row/column order.
        counts: ``(k, k)`` int array; ``counts[i, j]`` rows of class i predicted as class j.
        normalized: ``(k, k)`` float array, each row divided by its total (share of the true class);
            a class with no true rows has a row of zeros.
    """

    classes: list[Any]
    counts: np.ndarray
    normalized: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (nested lists)."""
        return {
            "classes": [_plain(c) for c in self.classes],
            "counts": self.counts.astype(int).tolist(),
            "normalized": self.normalized.astype(float).tolist(),
        }


def confusion(y_true: Any, y_pred: Any, classes: Sequence[Any]) -> ConfusionData:
    """Confusion matrix in the order of ``classes``.

    Args:
        y_true: true labels, original space.
        y_pred: predicted labels, original space.
        classes: every class label, in the order rows and columns should follow.

    Returns:
        Counts and row-normalised shares.

    Raises:
        DataError: lengths differ, or a label is not among ``classes``.
    """
    truth, guess = _label_arrays(y_true, y_pred)
    labels = _classes_or_default(classes, truth, guess, check_predictions=True)
    counts = confusion_matrix(truth, guess, labels=labels)  # (k, k)
    # sklearn turns the 0/0 of an empty true row into 0, which is what the heat map should show.
    normalized = confusion_matrix(truth, guess, labels=labels, normalize="true")  # (k, k)
    return ConfusionData(
        [_plain(c) for c in labels], counts.astype(np.int64), normalized.astype(np.float64)
    )


@dataclass(frozen=True)
class RegressionDiagnostics:
    """Data for the predicted-vs-actual and residual charts.

    Attributes:
        actual: true values ``(N,)``, float64, original units.
        predicted: predictions ``(N,)``, float64.
        residuals: ``actual - predicted`` ``(N,)``: positive where the model predicted too low.
    """

    actual: np.ndarray
    predicted: np.ndarray
    residuals: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        """Return a JSON-safe dict of lists."""
        return {
            "actual": self.actual.tolist(),
            "predicted": self.predicted.tolist(),
            "residuals": self.residuals.tolist(),
        }


def regression_diagnostics(y_true: Any, y_pred: Any) -> RegressionDiagnostics:
    """Actual values, predictions and residuals as float arrays.

    Args:
        y_true: true values, original units, length N (``(N,)`` or ``(N, 1)``).
        y_pred: predictions, original units, length N.

    Returns:
        The three arrays; thin them for charts with ``downsample``.

    Raises:
        DataError: lengths differ, no rows, or missing true values.
        TrainingError: missing or infinite predictions.
    """
    actual, predicted = _regression_arrays(y_true, y_pred)
    return RegressionDiagnostics(actual, predicted, actual - predicted)


def downsample(n: int, max_points: int = 5000, seed: int = 0) -> np.ndarray:
    """Pick at most ``max_points`` row indices out of ``n``, for charts that would choke on more.

    Args:
        n: number of rows.
        max_points: most indices to return.
        seed: random seed, so the same chart comes back after every rerun.

    Returns:
        Sorted int64 indices (sorted keeps time order for series); all of them when ``n`` fits.
    """
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_points, replace=False)).astype(np.int64)


def roc_points(
    y_true: Any, proba_pos: Any, positive_class: Any
) -> tuple[np.ndarray, np.ndarray, float]:
    """Points of the ROC curve for one class against the rest.

    Args:
        y_true: true labels, original space.
        proba_pos: predicted probability of ``positive_class``, ``(N,)``.
        positive_class: the label counted as positive.

    Returns:
        ``(fpr, tpr, auc)``: false- and true-positive rates (float64 arrays, thinned to the corners
        of the curve) and the area under it.

    Raises:
        DataError: lengths differ, or the true labels do not hold both the class and others.
    """
    truth = as_labels(y_true)
    scores = np.asarray(proba_pos, dtype=np.float64).ravel()
    if len(truth) != len(scores):
        raise DataError(
            f"Got {len(truth)} true labels but {len(scores)} probabilities: "
            "they must match row for row."
        )
    is_positive = truth == positive_class  # (N,) bool, so any label type works
    if is_positive.all() or not is_positive.any():
        raise DataError(
            f"A ROC curve for '{positive_class}' needs test rows of that class and of other "
            "classes; these test rows hold only one side."
        )
    fpr, tpr, _ = roc_curve(is_positive, scores)
    return fpr.astype(np.float64), tpr.astype(np.float64), float(auc(fpr, tpr))


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def check_task(task: str) -> None:
    """Raise a ``SpecError`` unless ``task`` is one this module can score."""
    if task not in TASKS:
        raise SpecError(f"Task '{task}' cannot be evaluated: use one of {', '.join(TASKS)}.")


def _metric_info(metric: str) -> MetricInfo:
    try:
        return METRICS[metric]
    except KeyError:
        raise SpecError(f"Unknown metric '{metric}': use one of {', '.join(METRICS)}.") from None


def as_labels(values: Any) -> np.ndarray:
    """Labels as a flat numpy array scikit-learn accepts.

    An object array of numbers (what a DataFrame column of mixed origin gives) is "unknown" to
    sklearn's target-type check, so object arrays get their real dtype inferred first.
    """
    arr = np.asarray(values).ravel()
    if arr.dtype == object:
        arr = pd.Series(arr).infer_objects().to_numpy()
    return arr


def _label_arrays(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    truth, guess = as_labels(y_true), as_labels(y_pred)
    _check_lengths(len(truth), len(guess))
    if pd.isna(guess).any():
        raise TrainingError(
            "Some predictions are missing, so the model cannot be scored: retrain it, "
            "for example with a smaller learning rate."
        )
    return truth, guess


def _regression_arrays(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    actual = np.asarray(y_true, dtype=np.float64).ravel()
    predicted = np.asarray(y_pred, dtype=np.float64).ravel()
    _check_lengths(len(actual), len(predicted))
    if not np.isfinite(actual).all():
        raise DataError("Some true values are missing or infinite: drop those rows before scoring.")
    if not np.isfinite(predicted).all():
        raise TrainingError(
            "Some predictions are missing or infinite, which means training diverged: "
            "retrain with a smaller learning rate."
        )
    return actual, predicted


def _check_lengths(n_true: int, n_pred: int) -> None:
    if n_true == 0:
        raise DataError("There are no test rows to score: use a larger test share or more data.")
    if n_true != n_pred:
        raise DataError(
            f"Got {n_true} true values but {n_pred} predictions: they must match row for row."
        )


def _classes_or_default(
    classes: Sequence[Any] | None,
    truth: np.ndarray,
    guess: np.ndarray,
    check_predictions: bool = False,
) -> np.ndarray:
    """The model's classes, or the sorted labels seen; checks that the true labels belong to them.

    A true label outside ``classes`` usually means a type mismatch ("1" vs 1) that would otherwise
    silently zero a metric, so it is an error rather than a quiet miss.
    """
    if classes is None:
        try:
            return unique_labels(truth, guess)
        except ValueError:
            raise DataError(
                "The true labels and the predictions are of different kinds (text vs numbers): "
                "decode the predictions back to the labels used in the data."
            ) from None
    labels = as_labels(list(classes))
    allowed = {_plain(c) for c in labels}
    to_check = [("true labels", truth)] + ([("predictions", guess)] if check_predictions else [])
    for what, values in to_check:
        outside = [_plain(v) for v in pd.unique(values) if _plain(v) not in allowed]
        if outside:
            known = ", ".join(repr(_plain(c)) for c in labels)
            raise DataError(
                f"The {what} include {outside[0]!r}, which is not one of the model's classes "
                f"({known}): score with the labels the model was trained on."
            )
    return labels


def _proba_array(proba: Any, n_rows: int, n_classes: int) -> np.ndarray:
    arr = np.asarray(proba, dtype=np.float64)
    arr = arr.reshape(len(arr), -1)  # (N,) -> (N, 1)
    if len(arr) != n_rows:
        raise DataError(
            f"Got {n_rows} true labels but {len(arr)} rows of probabilities: they must match."
        )
    if arr.shape[1] != n_classes and not (n_classes == 2 and arr.shape[1] == 1):
        raise DataError(
            f"Got {arr.shape[1]} probability columns for {n_classes} classes: give one column "
            "per class, in the order of the classes."
        )
    if not np.isfinite(arr).all():
        raise TrainingError(
            "Some probabilities are missing or infinite, which means training diverged: "
            "retrain with a smaller learning rate."
        )
    return arr


def _clean(metrics: dict[str, Any], task: str) -> dict[str, float]:
    """Plain floats in the task's order, dropping anything undefined (JSON has no NaN)."""
    out = {}
    for name in TASK_METRICS[task]:
        if name in metrics and math.isfinite(float(metrics[name])):
            out[name] = float(metrics[name])
    return out


def _plain(value: Any) -> Any:
    """A numpy scalar as the equivalent Python value, for JSON."""
    return value.item() if isinstance(value, np.generic) else value


def _format_number(value: float) -> str:
    """Readable number for errors in target units: 12,345 / 42.17 / 0.0312."""
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"
