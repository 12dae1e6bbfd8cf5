"""Tests for builder.evaluate: metrics, the scikit-learn baseline, comparisons and chart data.

Expected values come straight from scikit-learn's metric functions on real sklearn data sets
(iris, breast cancer, diabetes), so a wrong positive class, label order or average shows up as a
mismatch. The baseline tests use a decode function written here that mimics the contract in
docs/ENGINE_CONTRACTS.md (sigmoid / softmax / inverse target scaling).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.model_selection import train_test_split

from builder import evaluate as ev
from builder.baselines import fit_baseline
from builder.errors import BuilderError, DataError, SpecError, TrainingError

# ---------------------------------------------------------------------------------------------
# Fixtures: real data, preprocessed like the engine does, and a contract-like decode
# ---------------------------------------------------------------------------------------------


def _standardise(X_train, X_test):
    mean, std = X_train.mean(axis=0), X_train.std(axis=0) + 1e-12
    return ((X_train - mean) / std).astype(np.float32), ((X_test - mean) / std).astype(np.float32)


def _make_decode(task, classes=None, y_mean=0.0, y_std=1.0):
    """Raw network-like outputs -> DataFrame, as Preprocessor.decode_outputs is specified."""

    def decode(raw):
        raw = np.asarray(raw, dtype=np.float64)
        if task == "regression":
            return pd.DataFrame({"prediction": raw[:, 0] * y_std + y_mean})
        if task == "binary":
            p1 = 1.0 / (1.0 + np.exp(-raw[:, 0]))  # (N,)
            proba = np.column_stack([1.0 - p1, p1])  # (N, 2)
        else:
            z = raw - raw.max(axis=1, keepdims=True)
            proba = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)  # (N, k)
        out = pd.DataFrame({"prediction": np.asarray(classes, dtype=object)[proba.argmax(axis=1)]})
        for j, c in enumerate(classes):
            out[f"probability_{c}"] = proba[:, j]
        return out

    return decode


@pytest.fixture(scope="module")
def cancer():
    data = load_breast_cancer()
    classes = ["malignant", "benign"]  # target 0 = malignant, 1 = benign
    X_tr, X_te, y_tr, y_te = train_test_split(
        data.data, data.target, test_size=0.25, random_state=0, stratify=data.target
    )
    X_tr, X_te = _standardise(X_tr, X_te)
    labels_te = np.asarray(classes, dtype=object)[y_te]
    return X_tr, X_te, y_tr, y_te, labels_te, classes


@pytest.fixture(scope="module")
def iris():
    data = load_iris()
    classes = list(data.target_names)  # setosa, versicolor, virginica
    X_tr, X_te, y_tr, y_te = train_test_split(
        data.data, data.target, test_size=0.3, random_state=0, stratify=data.target
    )
    X_tr, X_te = _standardise(X_tr, X_te)
    return X_tr, X_te, y_tr, y_te, np.asarray(classes, dtype=object)[y_te], classes


@pytest.fixture(scope="module")
def diabetes():
    data = load_diabetes()
    X_tr, X_te, y_tr, y_te = train_test_split(
        data.data, data.target, test_size=0.25, random_state=0
    )
    X_tr, X_te = _standardise(X_tr, X_te)
    return X_tr, X_te, y_tr, y_te


# ---------------------------------------------------------------------------------------------
# The metric catalogue
# ---------------------------------------------------------------------------------------------


def test_metric_catalogue_is_complete_and_self_consistent():
    assert set(ev.METRICS) == {
        "accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc", "mae", "rmse", "r2",
        "reconstruction_error", "flagged_share",
    }
    for key, info in ev.METRICS.items():
        assert info.name == key
        assert info.label and info.short and info.help.endswith(".")
        direction = "(higher is better)" if info.higher_is_better else "(lower is better)"
        assert direction in info.help, key
        assert info.unit in ("points", "value")
    assert not ev.METRICS["mae"].higher_is_better and not ev.METRICS["rmse"].higher_is_better
    assert "target's own units" in ev.METRICS["mae"].help
    for task, names in ev.TASK_METRICS.items():
        assert set(names) <= set(ev.METRICS)
        assert names[0] == ev.HEADLINE_METRIC[task]
    assert ev.HEADLINE_METRIC == {
        "regression": "rmse", "binary": "accuracy", "multiclass": "accuracy", "forecast": "rmse",
        "anomaly": "reconstruction_error",
    }


def test_format_metric():
    assert ev.format_metric("accuracy", 0.9312) == "93.1%"
    assert ev.format_metric("roc_auc", 0.91234) == "0.912"
    assert ev.format_metric("mae", 12345.6) == "12,346"
    assert ev.format_metric("rmse", 42.168) == "42.17"
    with pytest.raises(SpecError, match="mae"):
        ev.format_metric("mape", 1.0)


# ---------------------------------------------------------------------------------------------
# compute_metrics against scikit-learn's own numbers
# ---------------------------------------------------------------------------------------------


def test_binary_metrics_match_sklearn_with_string_labels_and_our_class_order(cancer):
    X_tr, X_te, y_tr, y_te, labels_te, classes = cancer
    # A deliberately weak model (one feature) so the AUC is far from 1 and 1 - AUC would differ.
    clf = LogisticRegression().fit(X_tr[:, [1]], y_tr)
    proba = clf.predict_proba(X_te[:, [1]])  # columns: malignant, benign
    pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]

    m = ev.compute_metrics("binary", labels_te, pred, proba=proba, classes=classes)

    assert list(m) == ev.TASK_METRICS["binary"]
    assert m["accuracy"] == pytest.approx(accuracy_score(labels_te, pred))
    assert m["f1_macro"] == pytest.approx(f1_score(labels_te, pred, average="macro"))
    assert m["precision_macro"] == pytest.approx(precision_score(labels_te, pred, average="macro"))
    assert m["recall_macro"] == pytest.approx(recall_score(labels_te, pred, average="macro"))
    expected_auc = roc_auc_score(y_te, proba[:, 1])  # positive = classes[1] = benign
    assert 0.6 < expected_auc < 0.95
    assert m["roc_auc"] == pytest.approx(expected_auc)
    # "benign" sorts before "malignant": an implementation using sort order would get 1 - AUC.
    assert m["roc_auc"] != pytest.approx(1 - expected_auc)
    # A single positive-class column gives the same answer.
    single = ev.compute_metrics("binary", labels_te, pred, proba=proba[:, 1], classes=classes)
    assert single["roc_auc"] == pytest.approx(expected_auc)
    assert all(type(v) is float for v in m.values())


def test_multiclass_metrics_match_sklearn_one_vs_rest(iris):
    X_tr, X_te, y_tr, y_te, labels_te, classes = iris
    clf = LogisticRegression(max_iter=500).fit(X_tr[:, [0]], y_tr)  # weak: sepal length only
    proba = clf.predict_proba(X_te[:, [0]]).astype(np.float32)  # float32 like a network
    pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]

    m = ev.compute_metrics("multiclass", labels_te, pred, proba=proba, classes=classes)

    assert m["accuracy"] == pytest.approx(accuracy_score(y_te, proba.argmax(axis=1)))
    expected_f1 = f1_score(labels_te, pred, average="macro", zero_division=0)
    assert m["f1_macro"] == pytest.approx(expected_f1)
    expected = roc_auc_score(y_te, clf.predict_proba(X_te[:, [0]]), multi_class="ovr")
    assert m["roc_auc"] == pytest.approx(expected, abs=1e-6)
    assert m["roc_auc"] < 0.99  # a weak model, so the check above is not 1 == 1


def test_multiclass_roc_auc_is_left_out_when_a_class_is_missing(iris):
    _, _, _, y_te, labels_te, classes = iris
    keep = labels_te != "virginica"
    proba = np.full((keep.sum(), 3), 1 / 3)
    m = ev.compute_metrics(
        "multiclass", labels_te[keep], labels_te[keep], proba=proba, classes=classes
    )
    assert "roc_auc" not in m
    assert m["accuracy"] == 1.0


def test_single_class_in_truth_omits_roc_auc_and_stays_json_safe():
    y_true = ["yes"] * 5
    y_pred = ["yes", "yes", "no", "yes", "yes"]
    proba = np.array([[0.1, 0.9], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6], [0.3, 0.7]])
    m = ev.compute_metrics("binary", y_true, y_pred, proba=proba, classes=["no", "yes"])
    assert "roc_auc" not in m
    assert m["accuracy"] == pytest.approx(0.8)
    assert all(type(v) is float and np.isfinite(v) for v in m.values())
    json.dumps(m, allow_nan=False)


def test_numeric_labels_held_as_object_arrays_are_accepted():
    # A DataFrame column built row by row gives an object array of ints, which sklearn rejects.
    y_true = np.array([0, 1, 1, 0, 1], dtype=object)
    y_pred = pd.Series([0, 1, 0, 0, 1], dtype=object)
    p_one = [0.2, 0.9, 0.4, 0.1, 0.8]
    m = ev.compute_metrics("binary", y_true, y_pred, proba=p_one, classes=[0, 1])
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["roc_auc"] == pytest.approx(1.0)


def test_regression_metrics_match_sklearn(diabetes):
    _, _, _, y_te = diabetes
    rng = np.random.default_rng(0)
    pred = y_te + rng.normal(0, 40, size=len(y_te))
    m = ev.compute_metrics("regression", y_te.reshape(-1, 1), pred)
    assert list(m) == ["rmse", "mae", "r2"]
    assert m["rmse"] == pytest.approx(root_mean_squared_error(y_te, pred))
    assert m["mae"] == pytest.approx(mean_absolute_error(y_te, pred))
    assert m["r2"] == pytest.approx(r2_score(y_te, pred))
    assert all(type(v) is float for v in m.values())
    # One row: R² is undefined and left out, the errors are still there.
    assert set(ev.compute_metrics("regression", [3.0], [1.0])) == {"rmse", "mae"}


def test_metric_input_errors_are_builder_errors():
    with pytest.raises(SpecError, match="regression, binary, multiclass"):
        ev.compute_metrics("forecasting", [1.0], [1.0])
    with pytest.raises(DataError, match="3 true values but 2 predictions"):
        ev.compute_metrics("regression", [1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(DataError, match="no test rows"):
        ev.compute_metrics("binary", [], [])
    with pytest.raises(TrainingError, match="smaller learning rate"):
        ev.compute_metrics("regression", [1.0, 2.0], [np.nan, 2.0])
    with pytest.raises(DataError, match="2 probability columns for 3 classes"):
        ev.compute_metrics("multiclass", ["a", "b", "c"], ["a", "b", "c"],
                           proba=np.full((3, 2), 0.5), classes=["a", "b", "c"])
    # Labels of another type than the classes ("1" vs 1) would silently zero the AUC.
    with pytest.raises(DataError, match="not one of the model's classes"):
        ev.compute_metrics("binary", ["0", "1"], ["0", "1"], proba=[0.1, 0.9], classes=[0, 1])


# ---------------------------------------------------------------------------------------------
# The baseline, through a contract-like decode
# ---------------------------------------------------------------------------------------------


def test_logistic_baseline_on_breast_cancer(cancer):
    X_tr, X_te, y_tr, _, labels_te, classes = cancer
    y_enc = y_tr.astype(np.float32).reshape(-1, 1)  # binary targets per the contract: (N, 1) 0/1

    result = fit_baseline(
        "binary", X_tr, y_enc, X_te, labels_te, _make_decode("binary", classes)
    )

    assert result.name == "Logistic regression (scikit-learn)"
    assert result.description.endswith(".")
    assert result.metrics["accuracy"] > 0.93
    assert result.metrics["roc_auc"] > 0.95
    assert set(result.predictions["prediction"]) <= set(classes)
    # Decoding the logit reproduces scikit-learn's own probabilities and labels.
    np.testing.assert_allclose(
        result.predictions["probability_benign"], result.estimator.predict_proba(X_te)[:, 1],
        atol=1e-5,
    )
    assert result.metrics == ev.compute_metrics(
        "binary", labels_te, result.predictions["prediction"],
        proba=result.predictions[["probability_malignant", "probability_benign"]].to_numpy(),
        classes=classes,
    )
    json.dumps(result.to_dict(include_predictions=True), allow_nan=False)
    assert "predictions" not in result.to_dict()


def test_logistic_baseline_on_iris_reads_numeric_classes_from_columns(iris):
    X_tr, X_te, y_tr, y_te, _, _ = iris
    classes = [10, 20, 30]  # numeric labels: the column names are strings, the labels are not
    labels_te = np.asarray(classes)[y_te]
    result = fit_baseline(
        "multiclass", X_tr, y_tr.astype(np.int64), X_te, labels_te,
        _make_decode("multiclass", classes),
    )
    assert result.metrics["accuracy"] > 0.85
    assert "roc_auc" in result.metrics  # found the classes, so the AUC could be computed
    np.testing.assert_allclose(
        result.predictions[[f"probability_{c}" for c in classes]].to_numpy(),
        result.estimator.predict_proba(X_te), atol=1e-5,
    )


def test_baseline_keeps_every_class_when_training_lacks_one(iris):
    X_tr, X_te, y_tr, y_te, labels_te, classes = iris
    seen = y_tr != 1  # no versicolor (the middle class) in training
    result = fit_baseline(
        "multiclass", X_tr[seen], y_tr[seen].astype(np.int64), X_te, labels_te,
        _make_decode("multiclass", classes), classes=classes,
    )
    proba = result.predictions[[f"probability_{c}" for c in classes]].to_numpy()
    assert proba.shape == (len(X_te), 3)
    np.testing.assert_allclose(proba[:, 1], 0.0, atol=1e-12)
    np.testing.assert_allclose(proba[:, [0, 2]], result.estimator.predict_proba(X_te), atol=1e-5)
    assert "versicolor" not in set(result.predictions["prediction"])
    # Setosa and virginica are easy to tell apart, so those test rows are still right.
    known = labels_te != "versicolor"
    assert (result.predictions["prediction"][known] == labels_te[known]).mean() > 0.9


def test_ridge_baseline_on_diabetes_in_original_units(diabetes):
    X_tr, X_te, y_tr, y_te = diabetes
    mean, std = y_tr.mean(), y_tr.std()
    y_enc = ((y_tr - mean) / std).astype(np.float32).reshape(-1, 1)  # standardised (N, 1)

    result = fit_baseline(
        "regression", X_tr, y_enc, X_te, y_te, _make_decode("regression", y_mean=mean, y_std=std)
    )

    assert result.name == "Ridge regression (scikit-learn)"
    assert result.metrics["r2"] > 0.35
    # Predictions are in the target's units (diabetes progression, roughly 25..346), not scaled.
    expected = result.estimator.predict(X_te) * std + mean
    np.testing.assert_allclose(result.predictions["prediction"], expected, rtol=1e-5)
    expected_rmse = root_mean_squared_error(y_te, expected)
    assert result.metrics["rmse"] == pytest.approx(expected_rmse, rel=1e-5)


def test_baseline_flattens_image_like_inputs_and_subsamples(cancer):
    X_tr, X_te, y_tr, _, labels_te, classes = cancer
    X_img = np.pad(X_tr, ((0, 0), (0, 2)))[:, :32].reshape(-1, 2, 4, 4)  # (N, C, H, W)
    X_img_te = np.pad(X_te, ((0, 0), (0, 2)))[:, :32].reshape(-1, 2, 4, 4)
    result = fit_baseline(
        "binary", X_img, y_tr.reshape(-1, 1), X_img_te, labels_te,
        _make_decode("binary", classes), max_train_rows=200,
    )
    assert result.estimator.n_features_in_ == 32
    assert result.metrics["accuracy"] > 0.85


def test_baseline_input_errors(cancer):
    X_tr, X_te, y_tr, _, labels_te, classes = cancer
    decode = _make_decode("binary", classes)
    with pytest.raises(DataError, match="only one class"):
        fit_baseline("binary", X_tr, np.zeros((len(X_tr), 1)), X_te, labels_te, decode)
    with pytest.raises(DataError, match="same rows"):
        fit_baseline("binary", X_tr, y_tr[:10], X_te, labels_te, decode)
    with pytest.raises(DataError, match="prepared columns"):
        fit_baseline("binary", X_tr, y_tr, X_te[:, :5], labels_te, decode)
    with pytest.raises(DataError, match="'prediction' column"):
        fit_baseline(
            "binary", X_tr, y_tr, X_te, labels_te, lambda raw: pd.DataFrame({"p": raw[:, 0]})
        )


# ---------------------------------------------------------------------------------------------
# Comparisons and the verdict
# ---------------------------------------------------------------------------------------------


def _by_metric(comparisons):
    return {c.metric: c for c in comparisons}


def test_comparison_higher_is_better_in_points():
    model = {"accuracy": 0.90, "f1_macro": 0.80, "roc_auc": 0.912}
    base = {"accuracy": 0.838, "f1_macro": 0.85, "roc_auc": 0.900}
    got = _by_metric(ev.compare_to_baseline("binary", model, base))
    assert got["accuracy"].sentence == "+6.2 points vs logistic regression"
    assert got["accuracy"].better and got["accuracy"].delta == pytest.approx(0.062)
    assert got["f1_macro"].sentence == "-5.0 points vs logistic regression"
    assert not got["f1_macro"].better
    assert got["roc_auc"].sentence == "+0.012 vs logistic regression" and got["roc_auc"].better
    assert got["accuracy"].label == "Accuracy"


def test_comparison_lower_is_better_as_relative_change():
    got = _by_metric(ev.compare_to_baseline(
        "regression",
        {"mae": 8.8, "rmse": 11.2, "r2": 0.40},
        {"mae": 10.0, "rmse": 10.0, "r2": 0.45},
    ))
    assert got["mae"].sentence == "MAE 12% lower than ridge regression"
    assert got["mae"].better and got["mae"].delta == pytest.approx(-1.2)
    assert got["rmse"].sentence == "RMSE 12% higher than ridge regression"
    assert not got["rmse"].better
    assert got["r2"].sentence == "-0.050 vs ridge regression" and not got["r2"].better


def test_comparison_order_missing_metrics_ties_and_custom_name():
    comps = ev.compare_to_baseline(
        "binary",
        {"roc_auc": 0.9, "accuracy": 0.9, "f1_macro": 0.7},
        {"accuracy": 0.9000001, "roc_auc": 0.8},  # no f1 in the baseline
        baseline_name="the baseline",
    )
    assert [c.metric for c in comps] == ["accuracy", "roc_auc"]  # headline first, f1 skipped
    assert comps[0].sentence == "about the same as the baseline" and not comps[0].better
    tie = ev.compare_to_baseline("regression", {"mae": 5.0}, {"mae": 5.0})[0]
    assert tie.sentence == "about the same as ridge regression" and not tie.better
    exact = ev.compare_to_baseline("regression", {"mae": 0.5}, {"mae": 0.0})[0]
    assert not exact.better and "higher" in exact.sentence
    json.dumps([c.to_dict() for c in comps], allow_nan=False)


def test_verdict_says_who_wins_and_what_to_try():
    win = ev.compare_to_baseline("binary", {"accuracy": 0.95}, {"accuracy": 0.90})
    text = ev.verdict("binary", win)
    assert text.startswith(
        "The network beats logistic regression on accuracy: 95.0% against 90.0%, so"
    )
    assert "epochs" not in text

    lose = ev.compare_to_baseline(
        "regression", {"rmse": 12.0, "r2": 0.9}, {"rmse": 10.0, "r2": 0.5}
    )
    text = ev.verdict("regression", lose)  # r2 is better, but the headline (RMSE) decides
    assert text.startswith("The network does not beat ridge regression on typical error (RMSE)")
    for advice in ("more epochs", "smaller learning rate", "may simply be enough"):
        assert advice in text

    tie = ev.compare_to_baseline("multiclass", {"accuracy": 0.9}, {"accuracy": 0.9})
    assert ev.verdict("multiclass", tie).startswith("The network is about as good as")
    assert "cannot be compared" in ev.verdict("binary", [])


# ---------------------------------------------------------------------------------------------
# Chart data
# ---------------------------------------------------------------------------------------------


def test_confusion_matches_sklearn_in_class_order(iris):
    _, _, _, y_te, labels_te, classes = iris
    pred = labels_te.copy()
    pred[:5] = "virginica"
    order = ["virginica", "setosa", "versicolor", "unused"]
    cm = ev.confusion(labels_te, pred, order)
    np.testing.assert_array_equal(cm.counts, confusion_matrix(labels_te, pred, labels=order))
    assert cm.counts.dtype.kind == "i" and cm.counts.sum() == len(labels_te)
    np.testing.assert_allclose(cm.normalized[:3].sum(axis=1), 1.0)
    np.testing.assert_array_equal(cm.normalized[3], 0.0)  # no true rows: zeros, not NaN
    assert cm.classes == order
    json.dumps(cm.to_dict(), allow_nan=False)
    with pytest.raises(DataError, match="'setosa'"):
        ev.confusion(labels_te, pred, ["virginica", "versicolor"])


def test_regression_diagnostics_and_downsample():
    predicted = np.array([2.5, 5.0, 8.0], dtype=np.float32)
    diag = ev.regression_diagnostics([[3.0], [5.0], [7.0]], predicted)
    np.testing.assert_allclose(diag.residuals, [0.5, 0.0, -1.0])  # actual - predicted
    assert diag.actual.dtype == np.float64 and diag.predicted.dtype == np.float64
    assert json.loads(json.dumps(diag.to_dict()))["residuals"] == [0.5, 0.0, -1.0]
    with pytest.raises(DataError):
        ev.regression_diagnostics([1.0, 2.0], [1.0])

    np.testing.assert_array_equal(ev.downsample(4, max_points=10), np.arange(4))
    idx = ev.downsample(100_000, max_points=5000, seed=1)
    assert len(idx) == 5000 and len(np.unique(idx)) == 5000
    assert np.all(np.diff(idx) > 0) and idx.max() < 100_000
    np.testing.assert_array_equal(idx, ev.downsample(100_000, max_points=5000, seed=1))
    assert not np.array_equal(idx, ev.downsample(100_000, max_points=5000, seed=2))


def test_roc_points_match_sklearn_with_string_positive_class(cancer):
    X_tr, X_te, y_tr, y_te, labels_te, _ = cancer
    p_malignant = LogisticRegression().fit(X_tr[:, [1]], y_tr).predict_proba(X_te[:, [1]])[:, 0]
    fpr, tpr, area = ev.roc_points(labels_te, p_malignant, "malignant")
    assert area == pytest.approx(roc_auc_score(y_te == 0, p_malignant))
    assert type(area) is float and 0.6 < area < 0.95
    assert fpr[0] == 0.0 and tpr[-1] == 1.0 and np.all(np.diff(fpr) >= 0)
    with pytest.raises(DataError, match="only one side"):
        ev.roc_points(["a", "a"], [0.2, 0.7], "a")


def test_errors_are_catchable_as_builder_errors():
    with pytest.raises(BuilderError):
        ev.verdict("clustering", [])


@pytest.mark.parametrize("labels", [["no", "yes"], ["a", "b", "c", "d"], [2, 5, 9]])
def test_metrics_on_labels_equal_scikit_learns_on_the_same_labels(labels):
    # compute_metrics scores integer codes of the labels (fast on big test sets): the same numbers.
    rng = np.random.default_rng(0)
    truth = rng.choice(np.array(labels), 5000)
    guess = np.where(rng.random(5000) < 0.7, truth, rng.choice(np.array(labels[:-1]), 5000))
    got = ev.compute_metrics("binary" if len(labels) == 2 else "multiclass", truth, guess, classes=labels)
    assert got["accuracy"] == pytest.approx(accuracy_score(truth, guess), abs=1e-12)
    for name, score in (("f1_macro", f1_score), ("precision_macro", precision_score), ("recall_macro", recall_score)):
        assert got[name] == pytest.approx(score(truth, guess, average="macro", zero_division=0), abs=1e-12)
