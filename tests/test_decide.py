"""``builder.decide`` on real data: a logistic regression's probabilities on scikit-learn's breast
cancer set for the threshold maths (checked against scikit-learn's own metrics and a brute-force
search), the strict ``p > t`` rule it shares with the preprocessor's decoder, planted weak segments,
and inputs outside a fitted preprocessor's training range."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from builder import decide
from builder.data.preprocess import Preprocessor
from builder.errors import DataError, SpecError
from builder.evaluate import compute_metrics
from builder.jsonsafe import strict
from tests.tabular_fixtures import make_messy_table

POSITIVE = "malignant"  # the second of the sorted classes, and sklearn's class 0: order is ours


@pytest.fixture(scope="module")
def scored():
    """Validation and test rows of a logistic regression: labels as written, P(malignant)."""
    data = load_breast_cancer()
    labels = np.asarray(data.target_names)[data.target]  # "malignant" / "benign"
    X_train, X_rest, y_train, y_rest = train_test_split(data.data, labels, test_size=0.5, random_state=0,
                                                        stratify=labels)
    X_val, X_test, y_val, y_test = train_test_split(X_rest, y_rest, test_size=0.5, random_state=0,
                                                    stratify=y_rest)
    # Weak regularisation on few features keeps the probabilities spread out (more to choose from).
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=1000)).fit(X_train[:, :6], y_train)
    column = list(model.classes_).index(POSITIVE)
    return {"val": (y_val, model.predict_proba(X_val[:, :6])[:, column]),
            "test": (y_test, model.predict_proba(X_test[:, :6])[:, column])}


def sklearn_point(actual, probability, threshold):
    """scikit-learn's metrics with rows flagged by the decoder's strict rule, ``p > threshold``."""
    truth, flagged = np.asarray(actual) == POSITIVE, np.asarray(probability) > threshold
    tn, fp, fn, tp = confusion_matrix(truth, flagged, labels=[False, True]).ravel()
    return {"precision": precision_score(truth, flagged, zero_division=0),
            "recall": recall_score(truth, flagged, zero_division=0),
            "f1": f1_score(truth, flagged, zero_division=0),
            "accuracy": accuracy_score(truth, flagged), "tp": tp, "fp": fp, "tn": tn, "fn": fn}


def assert_matches(point: decide.ThresholdPoint, expected: dict) -> None:
    for name, value in expected.items():
        assert getattr(point, name) == pytest.approx(value, abs=1e-12), name


# --- thresholds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0.0, 0.05, 0.3, 0.5, 0.77, 0.95, 1.0])
def test_at_threshold_matches_sklearn(scored, threshold):
    actual, probability = scored["test"]
    point = decide.at_threshold(actual, probability, threshold, POSITIVE)
    assert_matches(point, sklearn_point(actual, probability, threshold))
    assert point.threshold == threshold and point.cost is None
    assert point.flagged_share == pytest.approx(np.mean(probability > threshold))
    assert point.tp + point.fp + point.tn + point.fn == len(actual)


def test_sweep_matches_sklearn_and_at_threshold(scored):
    actual, probability = scored["test"]
    sweep = decide.threshold_sweep(actual, probability, POSITIVE)
    assert [p.threshold for p in sweep] == [round(0.01 * i, 10) for i in range(101)]
    for point in sweep[::7]:
        assert_matches(point, sklearn_point(actual, probability, point.threshold))
        assert point == decide.at_threshold(actual, probability, point.threshold, POSITIVE)
    assert probability.min() > 0  # so threshold 0 flags every row, and 1 none
    assert sweep[0].recall == 1.0 and sweep[0].flagged_share == 1.0
    assert sweep[-1].flagged_share == 0.0 and sweep[-1].tp == sweep[-1].fp == 0
    recalls = [p.recall for p in sweep]
    assert recalls == sorted(recalls, reverse=True)  # a higher threshold never finds more
    costed = decide.threshold_sweep(actual, probability, POSITIVE, points=11,
                                    cost_false_positive=1, cost_false_negative=4)
    assert len(costed) == 11 and all(p.cost == p.fp + 4 * p.fn for p in costed)


def brute_force(actual, probability, score):
    """Every split a threshold from 0 to 1 can give (rows with ``p > t``), one at a time (a Python
    loop): t = 0, and t = each distinct probability (the highest flags nothing)."""
    truth = np.asarray(actual) == POSITIVE
    scores = []
    for t in np.concatenate([[0.0], np.unique(probability), [1.0]]):
        flagged = np.asarray(probability) > t
        tp, fp = int(np.sum(truth & flagged)), int(np.sum(~truth & flagged))
        fn = int(np.sum(truth & ~flagged))
        scores.append(score({"tp": tp, "fp": fp, "fn": fn, "f1": 2 * tp / (2 * tp + fp + fn)}))
    return scores


@pytest.mark.parametrize("costs", [(1, 1), (1, 5), (5, 1), (1, 40), (0, 1), (3, 0)])
def test_cheapest_threshold_is_the_brute_force_minimum(scored, costs):
    actual, probability = scored["val"]
    cfp, cfn = costs
    best = decide.cheapest_threshold(actual, probability, POSITIVE, cfp, cfn)
    assert best.cost == pytest.approx(min(brute_force(actual, probability, lambda p: cfp * p["fp"] + cfn * p["fn"])))
    # The reported threshold really gives those counts, and it is a short number.
    again = decide.at_threshold(actual, probability, best.threshold, POSITIVE)
    assert (again.tp, again.fp) == (best.tp, best.fp)
    assert best.cost == cfp * best.fp + cfn * best.fn
    assert len(repr(best.threshold)) <= 12
    assert_splits_between(probability, best)


def assert_splits_between(probability, point):
    """``point.threshold`` lies in [highest unflagged probability, lowest flagged one)."""
    flagged = np.asarray(probability) > point.threshold
    assert int(flagged.sum()) == point.tp + point.fp
    if (~flagged).any():
        assert probability[~flagged].max() <= point.threshold
    if flagged.any():
        assert point.threshold < probability[flagged].min()


def test_costlier_misses_lower_the_threshold(scored):
    actual, probability = scored["val"]
    cheap_misses = decide.cheapest_threshold(actual, probability, POSITIVE, 10, 1).threshold
    even = decide.cheapest_threshold(actual, probability, POSITIVE, 1, 1).threshold
    costly_misses = decide.cheapest_threshold(actual, probability, POSITIVE, 1, 10).threshold
    assert costly_misses <= even <= cheap_misses
    assert decide.cheapest_threshold(actual, probability, POSITIVE, 0, 1).fn == 0  # misses alone cost


def test_best_f1_threshold_is_the_brute_force_maximum(scored):
    actual, probability = scored["val"]
    best = decide.best_f1_threshold(actual, probability, POSITIVE)
    assert best.f1 == pytest.approx(max(brute_force(actual, probability, lambda p: p["f1"])))
    assert best.f1 == pytest.approx(f1_score(actual == POSITIVE, probability > best.threshold))
    assert_splits_between(probability, best)


def test_a_probability_equal_to_the_threshold_is_not_flagged():
    # At 0.5 a tie goes to the first class, as in the decoder; 0.7 is flagged, the 0.5s are not.
    point = decide.at_threshold(["no", "yes", "yes", "no"], [0.5, 0.5, 0.7, 0.2], 0.5, "yes")
    assert (point.tp, point.fp, point.tn, point.fn) == (1, 0, 2, 1)
    sweep = decide.threshold_sweep(["no", "yes", "yes", "no"], [0.5, 0.5, 0.7, 0.2], "yes", points=11)
    assert [(p.tp, p.fp) for p in sweep] == [(2, 2), (2, 2), (2, 1), (2, 1), (2, 1), (1, 0),
                                             (1, 0), (0, 0), (0, 0), (0, 0), (0, 0)]
    assert sweep[5] == point


def test_reported_thresholds_are_the_shortest_from_the_highest_unflagged():
    # The perfect split flags 0.7 and 0.8: any t in [0.3, 0.7) does; the shortest, smallest is 0.3.
    best = decide.best_f1_threshold(["a", "a", "b", "b"], [0.2, 0.3, 0.7, 0.8], "b")
    assert (best.threshold, best.f1) == (0.3, 1.0)
    best = decide.best_f1_threshold(["a", "a", "b", "b"], [0.2, 0.31, 0.74, 0.8], "b")
    assert best.threshold == 0.4  # [0.31, 0.74): 0.4 is shorter than 0.31
    # Flagging nothing is possible even with a probability of 1: t = 1 (nothing is above it).
    best = decide.cheapest_threshold(["a", "b", "a"], [0.2, 0.9, 1.0], "b", 10, 1)
    assert (best.threshold, best.tp, best.fp, best.cost) == (1.0, 0, 0, 1.0)
    # Flagging every row needs t below the lowest probability: t = 0 when it is above 0 ...
    best = decide.cheapest_threshold(["b", "b", "a"], [0.1, 0.6, 0.3], "b", 1, 10)
    assert (best.threshold, best.tp, best.fp, best.cost) == (0.0, 2, 1, 1.0)
    # ... and never when a row has probability 0: no threshold from 0 flags it.
    best = decide.cheapest_threshold(["b", "b", "a"], [0.0, 0.6, 0.3], "b", 1, 10)
    assert (best.threshold, best.tp, best.fp, best.cost) == (0.3, 1, 0, 10.0)
    assert decide.at_threshold(["b", "b", "a"], [0.0, 0.6, 0.3], 0.0, "b").fn == 1


def test_flagged_rows_are_what_the_preprocessor_decodes(fitted):
    """At every threshold (many equal to some row's probability) ``at_threshold`` flags exactly the
    rows with ``p > t``, and those are the rows a binary table preprocessor decodes as its second
    class after ``set_decision_threshold(t)``; a threshold chosen here labels the rows it scored."""
    _, fitted_pre = fitted
    pre = Preprocessor.from_dict(fitted_pre.to_dict())  # its own copy: the threshold changes
    negative, positive = pre.classes
    rng = np.random.default_rng(7)
    p = np.round(rng.uniform(0.02, 0.98, 400), 2)  # two decimals: many ties, many equal to a threshold
    p[:6] = [0.5, 0.5, 0.3, 0.7, 0.01, 0.99]
    logits = np.log(p / (1 - p)).reshape(-1, 1)  # (N, 1)
    decoded = pre.decode_outputs(logits)
    probability = decoded[f"probability_{positive}"].to_numpy()  # the decoder's own probabilities
    assert probability == pytest.approx(p, abs=1e-12)
    actual = np.where(rng.random(len(p)) < p, positive, negative)
    thresholds = np.unique(np.concatenate([probability, np.round(np.linspace(0.01, 0.99, 99), 10), [0.5]]))
    assert len(thresholds) > 100 and np.isin(probability, thresholds).all()  # every probability is one
    for t in thresholds:
        t = float(t)
        flagged = probability > t  # (N,)
        pre.set_decision_threshold(t)
        said = (pre.decode_outputs(logits)["prediction"] == positive).to_numpy()
        assert np.array_equal(said, flagged), t
        # With the decoded answers as the truth, exactly the flagged rows are true positives.
        same = decide.at_threshold(np.where(said, positive, negative), probability, t, positive)
        assert (same.fp, same.fn, same.tp) == (0, 0, int(flagged.sum())), t
        point = decide.at_threshold(actual, probability, t, positive)
        truth = actual == positive
        assert (point.tp, point.fp, point.fn) == (int(np.sum(truth & flagged)), int(np.sum(~truth & flagged)),
                                                  int(np.sum(truth & ~flagged))), t
    # The thresholds the sweep and the searches report decode to the counts they report.
    chosen = [decide.best_f1_threshold(actual, probability, positive),
              decide.cheapest_threshold(actual, probability, positive, 1, 3),
              decide.cheapest_threshold(actual, probability, positive, 3, 1),
              *decide.threshold_sweep(actual, probability, positive)[1:-1]]
    for point in chosen:
        pre.set_decision_threshold(point.threshold)
        said = (pre.decode_outputs(logits)["prediction"] == positive).to_numpy()
        truth = actual == positive
        assert (point.tp, point.fp) == (int(np.sum(truth & said)), int(np.sum(~truth & said))), point.threshold


def test_labels_compare_as_the_preprocessor_writes_them():
    actual = [0.0, 1.0, 1.0, 0.0, 1.0]  # read back from JSON as floats
    probability = [0.2, 0.9, 0.6, 0.4, 0.3]
    point = decide.at_threshold(actual, probability, 0.5, 1)
    assert (point.tp, point.fp, point.tn, point.fn) == (2, 0, 2, 1)
    assert decide.at_threshold(np.array(["no", "yes"]), [[0.9, 0.1], [0.2, 0.8]], 0.5, "yes").tp == 1
    # A run's kept rows: probabilities per class, the second is the positive one.
    results = {"actual": ["no", "yes", "yes"], "probabilities": [[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]]}
    actual, probability, positive = decide.binary_inputs(results, ["no", "yes"])
    assert positive == "yes" and probability.tolist() == [0.1, 0.7, 0.4]
    with pytest.raises(DataError, match="yes/no model"):
        decide.binary_inputs(results, ["a", "b", "c"])


@pytest.mark.parametrize("call, match", [
    (lambda: decide.at_threshold(["a", "b"], [0.5], 0.5, "b"), "match row for row"),
    (lambda: decide.at_threshold(["a", "b"], [0.5, 1.7], 0.5, "b"), "row 2 has 1.7"),
    (lambda: decide.at_threshold(["a", "b"], [0.5, np.nan], 0.5, "b"), "from 0 to 1"),
    (lambda: decide.at_threshold(["a", "b"], [0.5, 0.2], 0.5, "B"), "'B' is not one of the true labels"),
    (lambda: decide.at_threshold(["a", "b", "c"], [0.5, 0.2, 0.1], 0.5, "b"), "yes/no labels"),
    (lambda: decide.at_threshold(["a", None], [0.5, 0.2], 0.5, "a"), "no true label"),
    (lambda: decide.at_threshold(["a", "b"], [0.5, 0.2], 1.5, "b"), "threshold must be a number from 0 to 1"),
    (lambda: decide.at_threshold([], [], 0.5, "b"), "no rows"),
    (lambda: decide.cheapest_threshold(["a", "a"], [0.5, 0.2], "b", 1, 1), "None of the 2 rows"),
    (lambda: decide.cheapest_threshold(["a", "b"], [0.5, 0.2], "b", -1, 1), "cost of a false alarm"),
    (lambda: decide.cheapest_threshold(["a", "b"], [0.5, 0.2], "b", 0, 0), "both 0"),
    (lambda: decide.threshold_sweep(["a", "b"], [0.5, 0.2], "b", points=1), "at least 2 points"),
    (lambda: decide.binary_curves(["b", "b"], [0.5, 0.2], "b"), "All of the 2 rows"),
])
def test_plain_errors(call, match):
    with pytest.raises(DataError, match=match):
        call()


def test_a_single_class_still_scores_one_threshold():
    point = decide.at_threshold(["no"] * 4, [0.1, 0.2, 0.7, 0.9], 0.5, "yes")
    assert (point.fp, point.tn, point.precision, point.recall) == (2, 2, 0.0, 0.0)


# --- curves --------------------------------------------------------------------------------------


def test_binary_curves_match_sklearn(scored):
    actual, probability = scored["test"]
    curves = decide.binary_curves(actual, probability, POSITIVE)
    truth = actual == POSITIVE
    assert curves.auc == pytest.approx(roc_auc_score(truth, probability))
    assert curves.average_precision == pytest.approx(average_precision_score(truth, probability))
    assert curves.rows == len(actual) and curves.positives == truth.sum()
    assert (curves.roc_fpr[0], curves.roc_tpr[0], curves.roc_fpr[-1], curves.roc_tpr[-1]) == (0, 0, 1, 1)
    # Cumulative gain from (0, 0) to (1, 1), never falling; lift over 1 at the top, 1 for everyone.
    assert (curves.gain_share[0], curves.gain_found[0], curves.gain_found[-1]) == (0.0, 0.0, 1.0)
    assert np.all(np.diff(curves.gain_found) >= 0)
    assert curves.lift[0] > 1.5 and curves.lift[-1] == pytest.approx(1.0)
    assert len(curves.lift) == len(curves.lift_share) == 100
    top_tenth = int(np.ceil(0.1 * len(actual)))
    order = np.argsort(-probability, kind="stable")
    assert curves.gain_found[10] == pytest.approx(truth[order][:top_tenth].sum() / truth.sum())
    observed, predicted = calibration_curve(truth, probability, n_bins=10)
    assert curves.calibration_observed == pytest.approx(observed.tolist())
    assert curves.calibration_predicted == pytest.approx(predicted.tolist())
    assert sum(curves.calibration_counts) == len(actual) and len(curves.calibration_counts) == len(observed)
    json.dumps(strict(curves.to_dict()))


def test_curves_are_thinned_for_big_sets():
    rng = np.random.default_rng(0)
    probability = rng.random(20_000)
    actual = np.where(rng.random(20_000) < probability, "yes", "no")
    curves = decide.binary_curves(actual, probability, "yes")
    for values in (curves.roc_fpr, curves.pr_precision, curves.gain_found):
        assert 50 <= len(values) <= decide.MAX_CURVE_POINTS + 1
    assert curves.roc_fpr[-1] == 1.0 and curves.pr_recall[-1] == 0.0  # the ends are kept
    assert curves.auc == pytest.approx(roc_auc_score(actual == "yes", probability))


# --- segments ------------------------------------------------------------------------------------


def planted_classes(n=1500, seed=0):
    """Predictions 92% right, except for age above 65 (60% right) and region 'east' (70% right)."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(18, 80, n).round(1)
    region = rng.choice(["north", "south", "east", "west"], n, p=[0.35, 0.3, 0.2, 0.15])
    actual = rng.choice(["no", "yes"], n)
    wrong = rng.random(n) < np.where(age > 65, 0.4, np.where(region == "east", 0.3, 0.08))
    predicted = np.where(wrong, np.where(actual == "yes", "no", "yes"), actual)
    p_yes = np.clip(np.where(predicted == "yes", 0.7, 0.3) + rng.normal(0, 0.1, n), 0.01, 0.99)
    return age, region, actual, predicted, np.column_stack([1 - p_yes, p_yes])


def test_a_planted_weak_age_range_is_flagged():
    age, _, actual, predicted, proba = planted_classes()
    table = decide.segment_metrics("binary", actual, predicted, age, proba, ["no", "yes"], column="age")
    assert table.binned and table.metric == "accuracy" and table.rows == len(age)
    assert [s.label for s in table.weak] == [table.segments[-1].label]  # the oldest fifth, only
    low, high = table.segments[-1].label.split(" – ")
    assert float(low) > 60 and float(high) == pytest.approx(80, abs=0.5)
    assert "points below" in table.weak[0].reason and "age" in table.summary
    assert sum(s.rows for s in table.segments) == len(age)
    assert table.overall == compute_metrics("binary", actual, predicted, proba=proba, classes=["no", "yes"])
    oldest = age > np.quantile(age, 0.8)  # the last of five quantile ranges
    assert table.segments[-1].metrics == compute_metrics("binary", actual[oldest], predicted[oldest],
                                                         proba=proba[oldest], classes=["no", "yes"])
    assert list(table.to_frame().columns[:3]) == ["Segment", "Rows", "accuracy"]
    json.dumps(strict(table.to_dict()))


def test_a_planted_weak_category_is_flagged_and_rare_ones_pooled():
    _, region, actual, predicted, _ = planted_classes()
    region = region.astype(object)
    region[:6] = "island"  # too rare for a segment of its own
    region[6:30] = None
    table = decide.segment_metrics("binary", actual, predicted, region, min_rows=10, column="region")
    labels = [s.label for s in table.segments]
    assert [s.label for s in table.weak] == ["east"]
    assert labels[-2:] == [decide.OTHER_SEGMENT, decide.MISSING_SEGMENT] and "island" not in labels
    assert table.segments[labels.index(decide.OTHER_SEGMENT)].rows == 6
    assert "Too few rows (6)" in table.segments[labels.index(decide.OTHER_SEGMENT)].reason
    counts = [s.rows for s in table.segments[:-2]]
    assert counts == sorted(counts, reverse=True)


def test_no_segment_is_flagged_where_errors_are_even():
    _, _, actual, predicted, _ = planted_classes()
    shuffled = np.random.default_rng(1).permutation(len(actual))  # errors unrelated to this column
    noise = np.random.default_rng(2).normal(size=len(actual))
    table = decide.segment_metrics("binary", actual[shuffled], predicted[shuffled], noise)
    assert table.weak == [] and "No segment" in table.summary


def test_regression_segments_and_kept_raw_rows():
    rng = np.random.default_rng(3)
    n = 2500
    income = rng.lognormal(10.5, 0.5, n)
    actual = rng.normal(100, 20, n)
    predicted = actual + rng.normal(0, 1, n) * np.where(income > np.quantile(income, 0.8), 15, 5)
    kept_rows = [f"{v:,.0f}" for v in income[:2000]]  # like test_results["rows"]: the first 2,000, as text
    table = decide.segment_metrics("regression", actual, predicted, kept_rows, column="income")
    assert table.rows == 2000 and table.metric == "rmse"
    assert [s.label for s in table.weak] == [table.segments[-1].label]
    assert "above the" in table.weak[0].reason and "," in table.segments[-1].label  # "52,000 – 210,000"
    few = decide.segment_metrics("regression", actual, predicted, rng.integers(0, 3, n))
    assert [s.label for s in few.segments] == ["0", "1", "2"] and not few.binned


def test_segment_errors():
    with pytest.raises(SpecError, match="forecast"):
        decide.segment_metrics("forecast", [1.0], [1.0], [1])
    with pytest.raises(DataError, match="one value per scored row"):
        decide.segment_metrics("regression", [1.0, 2.0], [1.0, 2.0], [1, 2, 3])
    with pytest.raises(SpecError, match="fewest rows"):
        decide.segment_metrics("regression", [1.0], [1.0], [1], min_rows=0)


# --- out of range ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted():
    table = make_messy_table(600, seed=0)
    features = [c for c in table.columns if c not in ("target", "customer_id")]
    return table, Preprocessor().fit(table, "target", "binary", features)


def test_out_of_range_names_column_value_and_range(fitted):
    table, pre = fitted
    ranges = decide.training_ranges(pre)
    state = {c["name"]: c for c in pre.to_dict()["columns"]}
    assert ranges["age"] == (state["age"]["quantiles"][0], state["age"]["quantiles"][-1])
    rows = table.head(5).astype(object).set_axis([10, 11, 12, 13, 14])
    rows.loc[10, "income"] = "$2,500,000"
    rows.loc[11, "age"] = -5
    rows.loc[11, "color"] = "magenta"
    rows.loc[12, "color"] = None  # missing: the model was fitted to handle it
    rows.loc[13, "age"] = "old"
    rows.loc[14, ["age", "income", "color"]] = [40, 50_000, "red"]
    notes = decide.out_of_range(pre, rows)
    assert notes.index.tolist() == [10, 11, 12, 13, 14] and notes.name == "out_of_range"
    low, high = ranges["income"]
    assert notes[10] == f"income 2,500,000 above the training range {low:,.0f}–{high:,.0f}"
    assert notes[11].startswith("age -5 below the training range ")
    assert notes[11].endswith("; color 'magenta' not among the categories learned in training")
    assert notes[12] == "" and notes[14] == ""
    assert notes[13] == "age 'old' is not a number (read as missing)"


def test_out_of_range_of_whole_table_and_other_scalings(fitted):
    table, pre = fitted
    inside = decide.out_of_range(pre, table)
    assert (inside != "").mean() < 0.05  # the training rows themselves: only the extreme few
    standard = Preprocessor(numeric_scaling="standard").fit(table, "target", "binary", ["age", "visits"])
    state = {c["name"]: c for c in standard.to_dict()["columns"]}["age"]
    low, high = decide.training_ranges(standard)["age"]
    assert low == pytest.approx(state["mean"] - 4 * state["std"]) and high > low
    notes = decide.out_of_range(standard, pd.DataFrame({"age": [high + 1, 40]}))
    assert notes[0].startswith("age ") and "above the training range" in notes[0] and notes[1] == ""
    assert decide.out_of_range(pre, pd.DataFrame({"age": [500]}))[0].startswith("age 500 above")  # others absent
    with pytest.raises(DataError, match="trained on a table"):
        decide.out_of_range(object(), table)
