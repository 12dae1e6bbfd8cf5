"""Turning a trained model into decisions: where to put a yes/no threshold, and where the model is weak.

A yes/no model gives every row a probability; the business acts on rows above a threshold. This
module scores any threshold (``at_threshold``), sweeps them all (``threshold_sweep``), finds the
one with the lowest total cost of mistakes (``cheapest_threshold``) or the best F1
(``best_f1_threshold``), and draws the usual pictures of a scoring model (``binary_curves``: ROC,
precision-recall, cumulative gain and lift, calibration).

Choose a threshold on the VALIDATION rows (``trained.test_results["val"]``) and read its effect on
the test rows: a threshold tuned on the test rows makes the test score look better than the model
will do on new data.

``segment_metrics`` scores the model separately for each value (or range) of one input column and
names the segments where it is clearly weaker; ``out_of_range`` says, per row, which inputs lie
outside what the model saw in training.

A row counts as positive at threshold ``t`` when its probability is strictly above it, ``> t``:
the rule of the model's own decoder (``decode_class_outputs`` and
``DecisionThreshold.set_decision_threshold`` in ``builder.data.preprocess``), so a threshold chosen
here, stored in the model, labels exactly the rows it was scored on (at 0.5 a tie goes to the first
class). This differs from scikit-learn's ``>=`` in ``roc_curve`` and ``precision_recall_curve``
only for rows whose probability equals the threshold. Results are dataclasses of plain Python
values; ``to_dict()`` gives JSON a saved run can hold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from builder.data.preprocess import (
    FORMAT as TABLE_FORMAT,
)
from builder.data.preprocess import (
    infer_kind,
    label_value,
    missing_mask,
    parse_datetime,
    parse_numeric,
)
from builder.errors import DataError, SpecError
from builder.evaluate import HEADLINE_METRIC, METRICS, compute_metrics, format_metric
from builder.jsonsafe import plain

MAX_CURVE_POINTS = 200  # points kept per curve: plenty for a chart, small for a saved run
CALIBRATION_BINS = 10  # equal-width probability bins (0-0.1, 0.1-0.2, ...)
GAIN_STEPS = 100  # the gain and lift curves in 1% steps of the rows contacted
NUMERIC_SEGMENTS = 5  # a numeric column with many values is cut into this many quantile bins
WEAK_ACCURACY_POINTS = 0.05  # a class segment is weaker from 5 accuracy points below the whole
WEAK_ERROR_RATIO = 1.2  # a regression segment is weaker from an RMSE 20% above the whole
SIGNIFICANCE_Z = 2.0  # ...and only when the gap is over 2 standard errors (not chance)
RANGE_STDS = 4.0  # a standardised column's range: mean +- this many standard deviations
MISSING_SEGMENT = "(missing)"
OTHER_SEGMENT = "(other values)"
SEGMENT_TASKS = ("regression", "binary", "multiclass")


# --------------------------------------------------------------------------------------------------
# Thresholds
# --------------------------------------------------------------------------------------------------


@dataclass
class ThresholdPoint:
    """What happens when rows with a probability above ``threshold`` are called positive.

    Attributes:
        threshold: rows with a positive-class probability ``> threshold`` (strictly above) are
            flagged, as the model's decoder does.
        precision: of the flagged rows, the share truly positive (0 when none is flagged).
        recall: of the truly positive rows, the share flagged (0 when there are none).
        f1: the balance of precision and recall, ``2 tp / (2 tp + fp + fn)`` (0 when undefined).
        accuracy: share of rows labelled correctly.
        tp, fp, tn, fn: true positives, false alarms, true negatives, missed positives (rows).
        flagged_share: share of all rows flagged (how many a campaign would contact).
        cost: ``cost_false_positive * fp + cost_false_negative * fn`` when costs were given.
    """

    threshold: float
    precision: float
    recall: float
    f1: float
    accuracy: float
    tp: int
    fp: int
    tn: int
    fn: int
    flagged_share: float
    cost: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-safe dict."""
        return plain(asdict(self))


def binary_inputs(results: dict[str, Any], classes: Sequence[Any]) -> tuple[list, np.ndarray, Any]:
    """``(actual, probability, positive)`` for this module from a run's kept rows.

    Args:
        results: ``trained.test_results["val"]`` (to choose a threshold) or
            ``trained.test_results`` (the test rows, to read its effect).
        classes: ``trained.preprocessor.classes``; the second is the positive class.

    Raises:
        DataError: not a yes/no model, or the run kept no probabilities.
    """
    if len(classes) != 2:
        raise DataError(f"A threshold needs a yes/no model; this one has {len(classes)} classes.")
    proba = results.get("probabilities") if results else None
    if not proba:
        raise DataError("This run kept no probabilities to choose a threshold from. Train it again.")
    return list(results["actual"]), np.asarray(proba, dtype=np.float64)[:, 1], classes[1]


def at_threshold(actual: Any, probability: Any, threshold: float, positive: Any) -> ThresholdPoint:
    """Precision, recall, F1, accuracy and the four counts at one threshold.

    Args:
        actual: true labels as written in the data, length N (at most two distinct labels).
        probability: the positive class's probability per row, ``(N,)`` (or ``(N, 2)``: the
            second column is used).
        threshold: a number from 0 to 1; rows with a probability ``>`` it (strictly above) are
            flagged, as the model's decoder does: a row whose probability equals it is not.
        positive: the positive class label (the second of ``preprocessor.classes``).

    Raises:
        DataError: lengths differ, no rows, probabilities outside 0-1, more than two labels, a
            positive class that is not among the labels, or a threshold outside 0-1.
    """
    is_positive, scores = _binary_inputs(actual, probability, positive)
    threshold = _check_threshold(threshold)
    counts = confusion_matrix(is_positive, scores > threshold, labels=[False, True])  # (2, 2)
    tn, fp, fn, tp = (int(v) for v in counts.ravel())
    return _points(np.array([threshold]), np.array([tp]), np.array([fp]), tp + fn, tn + fp)[0]


def threshold_sweep(actual: Any, probability: Any, positive: Any, points: int = 101, *,
                    cost_false_positive: float | None = None,
                    cost_false_negative: float | None = None) -> list[ThresholdPoint]:
    """The metrics at ``points`` evenly spaced thresholds from 0 to 1 (0, 0.01, ... 1 by default).

    A row is flagged at ``t`` when its probability is ``> t``, as in ``at_threshold``. Vectorised:
    the counts at every distinct probability come from scikit-learn's ``roc_curve`` in one pass;
    each threshold then looks its counts up.

    Args:
        actual, probability, positive: as for ``at_threshold``.
        points: how many thresholds (at least 2).
        cost_false_positive, cost_false_negative: give both to fill each point's ``cost``.

    Raises:
        DataError: as ``at_threshold``, fewer than 2 points, bad costs, or rows of one class only.
    """
    if not isinstance(points, int | np.integer) or points < 2:
        raise DataError(f"A threshold sweep needs at least 2 points; got {points!r}. Try 101.")
    is_positive, scores = _binary_inputs(actual, probability, positive, need_both=True)
    costs = None if cost_false_positive is None and cost_false_negative is None else \
        _check_costs(cost_false_positive, cost_false_negative)
    levels, tp, fp = _counts_by_level(is_positive, scores)
    thresholds = np.round(np.linspace(0.0, 1.0, int(points)), 10)  # 0.3, not 0.30000000000000004
    # ``levels`` is descending with +inf first, level k flagging p >= s_k; the rows with p > t are
    # those of the last level above t (the smallest distinct probability over t, or +inf).
    at = np.searchsorted(-levels, -thresholds, side="left") - 1  # (points,)
    n_pos = int(is_positive.sum())
    return _points(thresholds, tp[at], fp[at], n_pos, len(scores) - n_pos, costs)


def cheapest_threshold(actual: Any, probability: Any, positive: Any,
                       cost_false_positive: float, cost_false_negative: float) -> ThresholdPoint:
    """The threshold with the lowest total cost of mistakes, its ``cost`` filled in.

    Call it on the VALIDATION rows (``trained.test_results["val"]``, see ``binary_inputs``), then
    read the chosen threshold's effect on the test rows with ``at_threshold``: a threshold tuned
    on the test rows flatters the test score.

    Every distinct way of splitting the rows is tried (one per distinct probability), so the
    result is the exact minimum over all thresholds. A threshold ``t`` flags the rows with
    ``p > t``, so a split is given by any ``t`` with (highest unflagged probability) ``<= t <``
    (lowest flagged probability); the shortest such number is reported (0.35 rather than
    0.3467...). Among equally cheap splits, the one whose threshold is closest to 0.5.

    Args:
        actual, probability, positive: as for ``at_threshold``.
        cost_false_positive: what one false alarm costs (a flagged row that is not positive).
        cost_false_negative: what one missed positive costs.

    Raises:
        DataError: as ``at_threshold``; costs that are negative, not numbers or both 0; rows of
            one class only.
    """
    costs = _check_costs(cost_false_positive, cost_false_negative)
    is_positive, scores = _binary_inputs(actual, probability, positive, need_both=True)
    thresholds, tp, fp = _candidates(is_positive, scores)
    n_pos = int(is_positive.sum())
    cost = costs[0] * fp + costs[1] * (n_pos - tp)
    best = _pick(np.flatnonzero(np.isclose(cost, cost.min(), rtol=1e-12, atol=1e-12)), thresholds)
    return _points(thresholds[[best]], tp[[best]], fp[[best]], n_pos, len(scores) - n_pos, costs)[0]


def best_f1_threshold(actual: Any, probability: Any, positive: Any) -> ThresholdPoint:
    """The threshold with the highest F1 over every distinct split (ties: the closest to 0.5).

    Like ``cheapest_threshold``, call it on the VALIDATION rows; the threshold is reported the same
    way, the shortest ``t`` with (highest unflagged probability) ``<= t <`` (lowest flagged one).

    Raises:
        DataError: as ``at_threshold``, or rows of one class only.
    """
    is_positive, scores = _binary_inputs(actual, probability, positive, need_both=True)
    thresholds, tp, fp = _candidates(is_positive, scores)
    n_pos = int(is_positive.sum())
    f1 = 2 * tp / (2 * tp + fp + (n_pos - tp))  # n_pos > 0, so never 0/0
    best = _pick(np.flatnonzero(np.isclose(f1, f1.max(), rtol=1e-12, atol=1e-12)), thresholds)
    return _points(thresholds[[best]], tp[[best]], fp[[best]], n_pos, len(scores) - n_pos)[0]


def _pick(tied: np.ndarray, thresholds: np.ndarray) -> int:
    return int(tied[np.argmin(np.abs(thresholds[tied] - 0.5))])


def _points(thresholds: np.ndarray, tp: np.ndarray, fp: np.ndarray, n_pos: int, n_neg: int,
            costs: tuple[float, float] | None = None) -> list[ThresholdPoint]:
    """One ``ThresholdPoint`` per threshold from the counts (all arithmetic on whole arrays)."""
    tp, fp = np.asarray(tp, dtype=np.int64), np.asarray(fp, dtype=np.int64)
    fn, tn = n_pos - tp, n_neg - fp
    n = n_pos + n_neg
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    accuracy = (tp + tn) / n
    flagged = (tp + fp) / n
    cost = costs[0] * fp + costs[1] * fn if costs is not None else None
    return [
        ThresholdPoint(
            threshold=float(thresholds[i]), precision=float(precision[i]), recall=float(recall[i]),
            f1=float(f1[i]), accuracy=float(accuracy[i]), tp=int(tp[i]), fp=int(fp[i]), tn=int(tn[i]),
            fn=int(fn[i]), flagged_share=float(flagged[i]), cost=None if cost is None else float(cost[i]),
        )
        for i in range(len(tp))  # one per threshold, never per row
    ]


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """``top / bottom`` with 0 where ``bottom`` is 0 (scikit-learn's ``zero_division=0``)."""
    return np.divide(top, bottom, out=np.zeros(len(top)), where=bottom > 0)


def _counts_by_level(is_positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(levels, tp, fp)``: for +inf then every distinct probability ``s_k``, descending, the
    counts of the rows with ``p >= s_k``, from scikit-learn's ``roc_curve`` (its ``>=`` rule; under
    the strict rule they are the rows flagged by any threshold from the next lower level to
    ``s_k``, see ``_candidates``)."""
    fpr, tpr, levels = roc_curve(is_positive, scores, drop_intermediate=False)
    levels = levels.astype(np.float64)
    levels[0] = np.inf  # the point that flags nothing (older scikit-learn wrote the top score + 1)
    n_pos = int(is_positive.sum())
    tp = np.rint(tpr * n_pos).astype(np.int64)
    fp = np.rint(fpr * (len(scores) - n_pos)).astype(np.int64)
    return levels, tp, fp


def _candidates(is_positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, ...]:
    """Every distinct split of the rows, as ``(thresholds, tp, fp)``.

    Level ``k`` (distinct probability ``s_k``, descending) splits off the rows with ``p >= s_k``,
    which are the rows with ``p > t`` for any threshold ``t`` in ``[s_{k+1}, s_k)``: at least the
    highest unflagged probability, below the lowest flagged one. The shortest decimal there is
    reported. The split that flags nothing is any threshold in ``[s_1, 1]``; the one that flags
    every row is any in ``[0, s_K)`` (left out when ``s_K`` is 0, as no threshold from 0 flags a
    row of probability 0).
    """
    levels, tp, fp = _counts_by_level(is_positive, scores)
    hi = np.concatenate([[np.inf], levels[1:]])  # level 0 (+inf) flags nothing: thresholds in [s_1, 1]
    lo = np.concatenate([levels[1:], [0.0]])  # the last level flags every row: [0, s_K)
    keep = lo < hi
    return _shortest_between(lo[keep], hi[keep]), tp[keep], fp[keep]


def _shortest_between(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per pair, the number with the fewest decimals in ``[lo, hi)`` (``lo`` itself at worst;
    the smallest of the shortest). ``lo`` is from 0 to 1, so the result is too."""
    out = np.full(len(lo), np.nan)
    for decimals in range(9):
        scale = 10.0 ** decimals
        # The first multiple of 10**-decimals from lo: floor(lo * scale) or the one after, as
        # lo * scale may land a hair below or above a whole number (0.57 * 100 = 56.99...).
        below = np.round(np.floor(lo * scale) / scale, decimals)
        candidate = np.where(below >= lo, below, np.round((np.floor(lo * scale) + 1) / scale, decimals))
        fits = np.isnan(out) & (candidate >= lo) & (candidate < hi)
        out[fits] = candidate[fits]
    return np.where(np.isnan(out), lo, out)


def _check_threshold(threshold: Any) -> float:
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise DataError(f"The threshold must be a number from 0 to 1; got {threshold!r}. Try 0.5.")
    return value


def _check_costs(false_positive: Any, false_negative: Any) -> tuple[float, float]:
    values = []
    for name, cost in (("false alarm", false_positive), ("missed positive", false_negative)):
        try:
            number = float(cost)
        except (TypeError, ValueError):
            number = math.nan
        if not (math.isfinite(number) and number >= 0):
            raise DataError(f"The cost of a {name} must be a number of 0 or more; got {cost!r}. "
                            "Try 1 for a false alarm and 5 for a missed positive.")
        values.append(number)
    if values[0] == 0 and values[1] == 0:
        raise DataError("The costs of a false alarm and of a missed positive are both 0, so every "
                        "threshold costs nothing. Give at least one of them a cost above 0.")
    return values[0], values[1]


def _label_key(value: Any) -> str:
    """A label as comparable text: 1, 1.0 and numpy's 1 all read "1" (as the preprocessor does)."""
    return str(label_value(value))


def _binary_inputs(actual: Any, probability: Any, positive: Any,
                   need_both: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(is_positive, scores)``: bool and float64 ``(N,)``, checked."""
    labels = pd.Series(np.asarray(actual, dtype=object).ravel())
    scores = np.asarray(probability, dtype=np.float64)
    if scores.ndim == 2 and scores.shape[1] == 2:
        scores = scores[:, 1]
    if scores.ndim != 1:
        raise DataError(f"Give one probability per row (the positive class's); got shape {scores.shape}.")
    if len(labels) == 0:
        raise DataError("There are no rows to score a threshold on: use a larger validation share.")
    if len(scores) != len(labels):
        raise DataError(f"Got {len(labels)} true labels but {len(scores)} probabilities: they must "
                        "match row for row.")
    bad = ~(np.isfinite(scores) & (scores >= 0) & (scores <= 1))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"Probabilities must be numbers from 0 to 1; row {row + 1} has {float(scores[row])!r}. "
                        "Pass the positive class's probability, not a raw model output.")
    codes, uniques = pd.factorize(labels)  # the few distinct labels are compared, not every row
    if (codes < 0).any():
        raise DataError(f"{int((codes < 0).sum())} row(s) have no true label: drop them before "
                        "choosing a threshold.")
    keys = [_label_key(u) for u in uniques]
    if len(set(keys)) > 2:
        shown = ", ".join(repr(k) for k in sorted(set(keys))[:6])
        raise DataError(f"A threshold needs yes/no labels; these rows have {len(set(keys))} ({shown}). "
                        "Use it with a binary model.")
    is_positive = np.array([k == _label_key(positive) for k in keys], dtype=bool)[codes]
    if not is_positive.any() and len(set(keys)) == 2:
        raise DataError(f"The positive class {positive!r} is not one of the true labels "
                        f"({', '.join(repr(k) for k in sorted(set(keys)))}): pass it as written in the "
                        "data (the second of the model's classes).")
    if need_both and (is_positive.all() or not is_positive.any()):
        which = "All" if is_positive.all() else "None"
        raise DataError(f"{which} of the {len(labels)} rows are {positive!r}, so no threshold can be "
                        "judged. Use rows of both classes, for example a larger validation share.")
    return is_positive, scores


# --------------------------------------------------------------------------------------------------
# Curves
# --------------------------------------------------------------------------------------------------


@dataclass
class BinaryCurves:
    """The pictures of a yes/no scoring model, each as plain lists of at most ~200 points.

    Attributes:
        positive: the positive class label.
        rows, positives: rows scored and how many of them are positive.
        base_rate: share of positive rows (the precision of flagging at random).
        roc_fpr, roc_tpr: the ROC curve (false-alarm rate against share of positives found).
        auc: area under the ROC curve (0.5 guessing, 1 perfect).
        pr_recall, pr_precision: the precision-recall curve (recall descending, as scikit-learn).
        average_precision: the area under it, scikit-learn's ``average_precision_score``.
        gain_share, gain_found: cumulative gain: contacting the top ``gain_share`` of rows by
            probability (0, 0.01, ... 1) finds ``gain_found`` of the positives; the diagonal is
            contacting at random.
        lift_share, lift: the positive share among the top ``lift_share`` rows (0.01 ... 1),
            divided by the base rate: 3 means three times better than random.
        calibration_predicted, calibration_observed, calibration_counts: per non-empty
            probability bin (``CALIBRATION_BINS`` equal bins, scikit-learn's
            ``calibration_curve``), the mean predicted probability, the observed share of
            positives and the rows in it; a calibrated model lies on the diagonal.
        brier: mean squared gap between probability and outcome (0 is perfect, lower is better).
    """

    positive: Any
    rows: int
    positives: int
    base_rate: float
    roc_fpr: list[float]
    roc_tpr: list[float]
    auc: float
    pr_recall: list[float]
    pr_precision: list[float]
    average_precision: float
    gain_share: list[float]
    gain_found: list[float]
    lift_share: list[float]
    lift: list[float]
    calibration_predicted: list[float]
    calibration_observed: list[float]
    calibration_counts: list[int]
    brier: float

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-safe dict."""
        return plain(asdict(self))


def binary_curves(actual: Any, probability: Any, positive: Any) -> BinaryCurves:
    """ROC, precision-recall, cumulative gain and lift, and calibration of a yes/no model.

    The ROC and precision-recall points are scikit-learn's, drawn at each distinct probability
    with its ``>=`` rule; they describe the model's ranking, not one threshold. To score a
    threshold as the model applies it (``> t``), use ``at_threshold`` or ``threshold_sweep``.

    Args:
        actual, probability, positive: as for ``at_threshold``.

    Raises:
        DataError: as ``at_threshold``, or rows of one class only.
    """
    is_positive, scores = _binary_inputs(actual, probability, positive, need_both=True)
    n, n_pos = len(scores), int(is_positive.sum())
    fpr, tpr, _ = roc_curve(is_positive, scores)
    roc = _thin(len(fpr))
    precision, recall, _ = precision_recall_curve(is_positive, scores)
    pr = _thin(len(precision))
    # Cumulative gain: rows sorted by probability, best first; ties keep their order.
    found = np.concatenate([[0], np.cumsum(is_positive[np.argsort(-scores, kind="stable")])])  # (N+1,)
    shares = np.linspace(0.0, 1.0, GAIN_STEPS + 1)
    contacted = np.ceil(np.round(shares * n, 9)).astype(np.int64)  # rows in the top share
    lift_rows = np.maximum(contacted[1:], 1)
    lift = (found[lift_rows] / lift_rows) / (n_pos / n)
    observed, predicted = calibration_curve(is_positive, scores, n_bins=CALIBRATION_BINS, strategy="uniform")
    # The rows per bin, binned exactly as calibration_curve does (it returns no counts).
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], scores), minlength=CALIBRATION_BINS)
    return BinaryCurves(
        positive=plain(positive), rows=n, positives=n_pos, base_rate=n_pos / n,
        roc_fpr=fpr[roc].tolist(), roc_tpr=tpr[roc].tolist(), auc=float(roc_auc_score(is_positive, scores)),
        pr_recall=recall[pr].tolist(), pr_precision=precision[pr].tolist(),
        average_precision=float(average_precision_score(is_positive, scores)),
        gain_share=shares.tolist(), gain_found=(found[contacted] / n_pos).tolist(),
        lift_share=shares[1:].tolist(), lift=lift.tolist(),
        calibration_predicted=predicted.tolist(), calibration_observed=observed.tolist(),
        calibration_counts=counts[counts > 0].tolist(),
        brier=float(brier_score_loss(is_positive, scores)),
    )


def _thin(n: int, max_points: int = MAX_CURVE_POINTS) -> np.ndarray:
    """Evenly spaced indices into a curve of ``n`` points, both ends kept."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, max_points)).astype(np.int64))


# --------------------------------------------------------------------------------------------------
# Segments
# --------------------------------------------------------------------------------------------------


@dataclass
class Segment:
    """The model's scores on the rows of one value (or range) of a column.

    Attributes:
        label: the value, a range such as ``"30 – 45"`` (from 30 exclusive to 45 inclusive; the
            first range includes its lower end), ``"(missing)"`` or ``"(other values)"``.
        rows: how many rows fall in it.
        metrics: the task's metrics on those rows (``builder.evaluate.compute_metrics``).
        weak: whether the model is clearly weaker here than on all rows.
        reason: why it is weaker, or why it was not judged (too few rows); empty otherwise.
    """

    label: str
    rows: int
    metrics: dict[str, float]
    weak: bool = False
    reason: str = ""


@dataclass
class SegmentTable:
    """The model's scores per segment of one column, next to its scores on all the rows.

    Attributes:
        column: the column's name (``None`` when not given).
        task: the model's task.
        metric: the headline metric the segments are judged on (accuracy, or RMSE).
        rows: rows scored (the segment values given; see ``segment_metrics``).
        overall: the task's metrics on all those rows.
        segments: in column order for numbers and dates, largest first for categories, then
            ``(other values)`` and ``(missing)``.
        binned: whether a numeric (or date) column was cut into quantile ranges.
        summary: one sentence naming the weaker segments, or saying there are none.
    """

    column: str | None
    task: str
    metric: str
    rows: int
    overall: dict[str, float]
    segments: list[Segment] = field(default_factory=list)
    binned: bool = False
    summary: str = ""

    @property
    def weak(self) -> list[Segment]:
        """The clearly weaker segments."""
        return [s for s in self.segments if s.weak]

    def to_frame(self) -> pd.DataFrame:
        """One row per segment: ``Segment``, ``Rows``, the task's metrics, ``Weaker``, ``Why``."""
        return pd.DataFrame([{"Segment": s.label, "Rows": s.rows, **s.metrics, "Weaker": s.weak,
                              "Why": s.reason} for s in self.segments])

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-safe dict."""
        return plain(asdict(self))


def segment_metrics(task: str, actual: Any, predicted: Any, segment_values: Any,
                    probabilities: Any = None, classes: Sequence[Any] | None = None,
                    min_rows: int = 10, max_segments: int = 20, *,
                    column: str | None = None) -> SegmentTable:
    """The task's metrics per value of one column, and which segments are clearly weaker.

    A numeric (or date) column with more than ``max_segments`` distinct values is cut into
    ``NUMERIC_SEGMENTS`` quantile ranges ("30 – 45"); otherwise each value is a segment. A
    category with fewer than ``min_rows`` rows joins "(other values)", as do all but the
    ``max_segments - 1`` largest; missing values form "(missing)".

    A segment of at least ``min_rows`` rows is *clearly weaker* when its headline metric is
    worse than on all rows by a margin that matters (5 accuracy points; an RMSE 20% higher) and
    that chance alone would rarely give (over two standard errors).

    Args:
        task: ``"regression"``, ``"binary"`` or ``"multiclass"``.
        actual, predicted: true and predicted labels or values, as in ``trained.test_results``.
        segment_values: the column's raw values for the same rows. It may be shorter than
            ``actual``: a run keeps the raw columns of its first 2,000 test rows
            (``test_results["rows"]``), aligned with the first entries of ``actual``; only those
            rows are scored then.
        probabilities: class probabilities per row in ``classes`` order (for ROC AUC), optional.
        classes: ``preprocessor.classes``.
        min_rows: fewest rows for a segment to be judged (and for a category of its own).
        max_segments: most segments shown.
        column: the column's name, for the sentences.

    Raises:
        SpecError: a task without per-row predictions (forecast, anomaly) or bad limits.
        DataError: more segment values than predictions, or what ``compute_metrics`` refuses.
    """
    if task not in SEGMENT_TASKS:
        raise SpecError(f"Segments are scored for {', '.join(SEGMENT_TASKS)} models; got task {task!r}.")
    if not (isinstance(min_rows, int | np.integer) and min_rows >= 1):
        raise SpecError(f"The fewest rows per segment must be a whole number of 1 or more; got {min_rows!r}. Try 10.")
    if not (isinstance(max_segments, int | np.integer) and max_segments >= 2):
        raise SpecError(f"The most segments must be a whole number of 2 or more; got {max_segments!r}. Try 20.")
    values = pd.Series(np.asarray(segment_values, dtype=object).ravel())
    truth = np.asarray(actual, dtype=object).ravel()
    guess = np.asarray(predicted, dtype=object).ravel()
    n = len(values)
    if n > len(truth) or len(guess) != len(truth):
        raise DataError(f"Got {n} values of the column for {len(truth)} true values and {len(guess)} "
                        "predictions: give one value per scored row, in the same order.")
    if n == 0:
        raise DataError("There are no rows to split into segments: use a run with test rows.")
    truth, guess = truth[:n], guess[:n]
    proba = None if probabilities is None else np.asarray(probabilities, dtype=np.float64)[:n]
    codes, labels, binned = _segment_codes(values, min_rows, max_segments)
    overall = compute_metrics(task, truth, guess, proba=proba, classes=classes)
    metric = HEADLINE_METRIC[task]
    errors = _row_errors(task, truth, guess)  # (n,) 0/1 mistakes or squared errors
    name = f"'{column}'" if column else "the column"
    segments = []
    for code, label in enumerate(labels):
        rows = np.flatnonzero(codes == code)
        if not len(rows):
            continue
        metrics = compute_metrics(task, truth[rows], guess[rows],
                                  proba=None if proba is None else proba[rows], classes=classes)
        weak, reason = _judge(task, metric, metrics, overall, errors, rows, min_rows)
        segments.append(Segment(label, len(rows), metrics, weak, reason))
    weak = [s.label for s in segments if s.weak]
    if weak:
        summary = (f"The model is clearly weaker on {len(weak)} of {len(segments)} segments of {name}: "
                   f"{', '.join(weak)}.")
    else:
        summary = f"No segment of {name} is clearly weaker than all {n} rows together."
    return SegmentTable(column, task, metric, n, overall, segments, binned, summary)


def _row_errors(task: str, truth: np.ndarray, guess: np.ndarray) -> np.ndarray:
    """Per row: 1.0 for a wrong label (classes), the squared error (regression)."""
    if task == "regression":
        return (truth.astype(np.float64) - guess.astype(np.float64)) ** 2
    return (pd.Series(truth).map(_label_key).to_numpy() != pd.Series(guess).map(_label_key).to_numpy()).astype(float)


def _judge(task: str, metric: str, metrics: dict[str, float], overall: dict[str, float],
           errors: np.ndarray, rows: np.ndarray, min_rows: int) -> tuple[bool, str]:
    """Whether a segment is clearly weaker, and the sentence saying so."""
    n = len(rows)
    if n < min_rows:
        return False, f"Too few rows ({n}) to judge; at least {min_rows} are needed."
    seg, whole = metrics.get(metric), overall.get(metric)
    if seg is None or whole is None:
        return False, ""
    label = METRICS[metric].short or METRICS[metric].label
    if task == "regression":
        mse_seg, mse_all = float(errors[rows].mean()), float(errors.mean())
        standard_error = float(errors[rows].std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
        weak = seg >= WEAK_ERROR_RATIO * whole and mse_seg - mse_all > SIGNIFICANCE_Z * standard_error
        if not weak:
            return False, ""
        above = f"{seg / whole - 1:.0%} above" if whole > 0 else "above"
        return True, (f"Typical error ({label}) {format_metric(metric, seg)} on these {n} rows, {above} the "
                      f"{format_metric(metric, whole)} on all rows.")
    gap = whole - seg
    standard_error = math.sqrt(whole * (1 - whole) / n)
    if not (gap >= WEAK_ACCURACY_POINTS and gap > SIGNIFICANCE_Z * standard_error):
        return False, ""
    return True, (f"{label} {format_metric(metric, seg)} on these {n} rows, {gap * 100:.1f} points below the "
                  f"{format_metric(metric, whole)} on all rows.")


def _segment_codes(values: pd.Series, min_rows: int, max_segments: int) -> tuple[np.ndarray, list[str], bool]:
    """Per row the index of its segment, the segments' labels, and whether ranges were cut."""
    missing = missing_mask(values)
    kind = infer_kind(values) if (~missing).any() else "categorical"
    if kind in ("numeric", "datetime"):
        if kind == "numeric":
            numbers = parse_numeric(values)
        else:
            stamps = parse_datetime(values)
            numbers = stamps.to_numpy(dtype="datetime64[ns]").astype("int64").astype(np.float64)
            numbers[stamps.isna().to_numpy()] = np.nan
        missing = np.isnan(numbers)
        present = numbers[~missing]
        distinct = np.unique(present)
        if len(distinct) > max_segments:
            return (*_quantile_codes(numbers, present, min_rows, max_segments, kind), True)
        if kind == "numeric":  # one segment per value, in numeric order
            codes = np.searchsorted(distinct, numbers)
            return (*_with_missing(codes, missing, [_number_text(v) for v in distinct]), False)
    text = values.astype(str).str.strip()
    counts = text[~missing].value_counts(sort=True)
    counts = counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable")
    kept = [str(v) for v, c in counts.items() if c >= min_rows]
    if len(kept) < len(counts) or len(kept) > max_segments:  # "(other values)" needs a place
        kept = kept[:max_segments - 1]
    codes = pd.Index(kept).get_indexer(text)  # -1: not kept
    labels = list(kept)
    if (codes[~missing] < 0).any():
        codes = np.where(codes < 0, len(labels), codes)
        labels.append(OTHER_SEGMENT)
    return (*_with_missing(codes, missing, labels), False)


def _with_missing(codes: np.ndarray, missing: np.ndarray, labels: list[str]) -> tuple[np.ndarray, list[str]]:
    if missing.any():
        codes = np.where(missing, len(labels), codes)
        labels = [*labels, MISSING_SEGMENT]
    return np.asarray(codes, dtype=np.int64), labels


def _quantile_codes(numbers: np.ndarray, present: np.ndarray, min_rows: int, max_segments: int,
                    kind: str) -> tuple[np.ndarray, list[str]]:
    """Quantile ranges ``(e_i, e_{i+1}]`` (the first closed), labelled "low – high"."""
    bins = max(2, min(NUMERIC_SEGMENTS, max_segments, len(present) // min_rows))
    edges = np.unique(np.quantile(present, np.linspace(0.0, 1.0, bins + 1)))
    codes = np.searchsorted(edges[1:-1], numbers, side="left")  # (N,) range index
    if kind == "datetime":
        texts = [str(t) for t in np.datetime_as_string(edges.astype("int64").astype("datetime64[ns]"), unit="D")]
    else:
        texts = _edge_texts(edges)
    labels = [f"{texts[i]} – {texts[i + 1]}" for i in range(len(edges) - 1)]
    return _with_missing(codes, np.isnan(numbers), labels)


def _edge_texts(edges: np.ndarray) -> list[str]:
    """The range ends with as few decimals as keep them apart: "18", "30", "45"; "0.12", "0.5"."""
    for decimals in range(7):
        texts = [f"{v:,.{decimals}f}" for v in edges]
        if len(set(texts)) == len(texts):
            return texts
    return [f"{v:.6g}" for v in edges]


def _number_text(value: float, extra: int = 0) -> str:
    """A number as people write it: 2,500,000 / 42 / 3.75 / 0.0312 (``extra`` more digits)."""
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.{extra}f}"
    return f"{value:.{4 + extra}g}"


# --------------------------------------------------------------------------------------------------
# Inputs outside what the model saw
# --------------------------------------------------------------------------------------------------


def training_ranges(preprocessor: Any) -> dict[str, tuple[float, float]]:
    """Per numeric input column, the range of values the model tells apart.

    The fitted table preprocessor keeps no minimum and maximum. With quantile scaling (the
    default) it keeps the training quantiles, and beyond the first and the last the transform
    holds its end value: a larger number reaches the model as the last quantile. Those two
    quantiles (about the 0.4th and 99.6th percentiles of the training rows when there are 128
    or more) are the range. A standardised column (``numeric_scaling="standard"``, or a state
    saved before quantiles) keeps only its mean and spread: its range is the mean plus or minus
    ``RANGE_STDS`` standard deviations.

    Raises:
        DataError: not a fitted table preprocessor.
    """
    ranges = {}
    for state in _table_columns(preprocessor):
        if state.get("kind") != "numeric":
            continue
        quantiles = state.get("quantiles")
        if quantiles:
            ranges[state["name"]] = (float(quantiles[0]), float(quantiles[-1]))
        else:
            mean, std = float(state["mean"]), float(state["std"])
            ranges[state["name"]] = (mean - RANGE_STDS * std, mean + RANGE_STDS * std)
    return ranges


def out_of_range(preprocessor: Any, rows: pd.DataFrame) -> pd.Series:
    """Per row, which inputs lie outside what the model saw in training ("" when none does).

    Numeric columns: a value below or above ``training_ranges`` ("income 2,500,000 above the
    training range 12,000–410,000"), or text that is not a number (the model reads it as
    missing). Categorical columns: a value that is not one of the categories the model learned
    (never seen, or too rare in training to get its own; the model treats it as "(other)").
    Missing values are not flagged: the model was fitted to handle them. Free-text, yes/no and
    date columns are not checked, nor columns absent from ``rows``. Several findings in a row
    are joined with "; ".

    Args:
        preprocessor: a fitted table ``Preprocessor`` (``trained.preprocessor``).
        rows: raw rows as read (for example ``pd.DataFrame(trained.test_results["rows"])``).

    Returns:
        A string Series named ``out_of_range`` with ``rows``' index.

    Raises:
        DataError: not a fitted table preprocessor.
    """
    columns = _table_columns(preprocessor)
    ranges = training_ranges(preprocessor)
    notes = pd.Series("", index=rows.index, dtype=object, name="out_of_range")
    for state in columns:
        name = state["name"]
        if name not in rows.columns:
            continue
        if state.get("kind") == "numeric":
            part = _numeric_notes(name, rows[name], ranges[name])
        elif state.get("kind") == "categorical":
            part = _category_notes(name, rows[name], state.get("categories") or [])
        else:
            continue
        both = (notes != "") & (part != "")
        notes = notes.where(~both, notes + "; ") + part
    return notes.rename("out_of_range")


def _numeric_notes(name: str, values: pd.Series, bounds: tuple[float, float]) -> pd.Series:
    numbers = parse_numeric(values)  # (N,) NaN where missing or not a number
    low, high = bounds
    notes = pd.Series("", index=values.index, dtype=object)
    sides = [(mask, words, bound) for mask, words, bound in
             ((numbers < low, "below", low), (numbers > high, "above", high)) if mask.any()]
    for extra in range(7):  # enough digits that a value never reads the same as the range's end
        span = f"{_number_text(low, extra)}–{_number_text(high, extra)}"
        shown = [pd.Series(numbers[mask]).map(lambda v, e=extra: _number_text(v, e)).to_numpy(dtype=object)
                 for mask, _, _ in sides]
        if not any((texts == _number_text(bound, extra)).any() for texts, (_, _, bound) in zip(shown, sides, strict=True)):
            break
    for texts, (mask, words, _) in zip(shown, sides, strict=True):
        notes[mask] = f"{name} " + texts + f" {words} the training range {span}"
    unreadable = np.isnan(numbers) & ~missing_mask(values)
    if unreadable.any():
        text = values[unreadable].astype(str).str.strip().to_numpy(dtype=object)
        notes[unreadable] = f"{name} '" + text + "' is not a number (read as missing)"
    return notes


def _category_notes(name: str, values: pd.Series, categories: list[str]) -> pd.Series:
    text = values.astype(str).str.strip()
    unseen = ~missing_mask(values) & ~text.isin(categories).to_numpy()
    notes = pd.Series("", index=values.index, dtype=object)
    if unseen.any():
        notes[unseen] = f"{name} '" + text[unseen].to_numpy(dtype=object) + "' not among the categories learned in training"
    return notes


def _table_columns(preprocessor: Any) -> list[dict]:
    """The fitted column states of a table preprocessor (its JSON state)."""
    to_dict = getattr(preprocessor, "to_dict", None)
    try:
        state = to_dict() if callable(to_dict) else None
    except RuntimeError:  # not fitted
        state = None
    if not isinstance(state, dict) or state.get("format") != TABLE_FORMAT:
        raise DataError("Only a model trained on a table has input columns to check against the "
                        "training range; this one was trained on another kind of data.")
    return list(state["columns"])
