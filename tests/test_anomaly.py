"""Tests of anomaly detection on tables (builder/anomaly.py).

One generated table (fixed seed): normal rows whose numbers follow two hidden factors (so the
columns are correlated), a category that follows the first factor, missing values, and ~2% injected
anomalies (a value far off, or a value that breaks the correlation). The ``is_fraud`` label says
which rows were injected; it is never a training column. The autoencoder is trained once per module.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from builder.anomaly import autoencoder_spec, evaluate_anomalies, flagged, split_positions, train_autoencoder
from builder.data.preprocess import Preprocessor
from builder.errors import DataError, SpecError
from builder.model import build_model
from builder.results import DEFAULT_QUANTILE, rescore
from builder.templates import bottleneck_width
from builder.train import Callback, TrainConfig
from builder.trained import TrainedModel

FEATURES = ["age", "income", "spend", "visits", "balance", "segment"]
LABEL = "is_fraud"
N_ROWS = 3000
ANOMALY_RATE = 0.02


def make_table(n: int = N_ROWS, seed: int = 0, anomaly_rate: float = ANOMALY_RATE) -> pd.DataFrame:
    """Correlated numbers, a category, holes, and ``anomaly_rate`` injected anomalies."""
    rng = np.random.default_rng(seed)
    z1, z2 = rng.normal(size=n), rng.normal(size=n)  # the hidden factors

    def noise() -> np.ndarray:
        return 0.1 * rng.normal(size=n)

    table = pd.DataFrame({
        "age": 40 + 10 * (z1 + noise()),
        "income": 50_000 + 12_000 * (z1 + 0.5 * z2 + noise()),
        "spend": 2_000 + 500 * (z2 + noise()),
        "visits": 20 + 4 * (z1 - z2 + noise()),
        "balance": 10_000 + 3_000 * (-z2 + noise()),
        "segment": np.where(z1 > 0.4, "gold", np.where(z1 < -0.4, "basic", "silver")).astype(object),
    })
    label = np.zeros(n, dtype=bool)
    bad = rng.choice(n, size=int(round(anomaly_rate * n)), replace=False)
    label[bad] = True
    far, broken = bad[: len(bad) // 2], bad[len(bad) // 2:]
    # A value far off: 7-10 standard deviations in one column.
    for row in far:
        column = rng.choice(["age", "income", "spend", "visits", "balance"])
        spread = table[column].std()
        table.loc[row, column] += rng.choice([-1, 1]) * rng.uniform(7, 10) * spread
    # A broken correlation: every value is ordinary on its own, but income and visits contradict age.
    shift = rng.choice([-1, 1], size=len(broken)) * rng.uniform(2.5, 3.5, size=len(broken))
    table.loc[broken, "income"] -= 12_000 * shift
    table.loc[broken, "visits"] += 4 * shift
    # Holes in ordinary rows (numbers and the category).
    for column in ("age", "spend", "segment"):
        holes = rng.choice(n, size=n // 30, replace=False)
        table.loc[holes, column] = np.nan
    table[LABEL] = np.where(label, "yes", "no")
    return table


CONFIG = dict(epochs=150, batch_size=128, lr=3e-3, seed=0, device="cpu", early_stopping_patience=15)


class EpochCounter(Callback):
    def __init__(self) -> None:
        self.epochs = 0

    def on_epoch_end(self, epoch, logs) -> None:
        self.epochs += 1


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return make_table()


@pytest.fixture(scope="module")
def trained(table) -> tuple[TrainedModel, EpochCounter]:
    counter = EpochCounter()
    model = train_autoencoder(table, FEATURES, TrainConfig(**CONFIG), callbacks=[counter])
    return model, counter


def _truth(df: pd.DataFrame) -> np.ndarray:
    return (df[LABEL] == "yes").to_numpy()


# -- design ---------------------------------------------------------------------------------------


def test_spec_narrows_to_a_bottleneck_and_builds_an_output_as_wide_as_the_input():
    spec = autoencoder_spec(n_features=16, n_rows=5000)
    widths = [layer.params["out_features"] for layer in spec.layers if layer.type == "Linear"]
    assert widths[1] == bottleneck_width(16) == 4 and widths[0] > widths[1] < widths[2]
    assert spec.family == "autoencoder" and spec.validate(task="anomaly") == []
    model = build_model(spec, (16,), 16, seed=0)
    assert model(torch.zeros(3, 16)).shape == (3, 16)
    assert bottleneck_width(3) == 2
    small = autoencoder_spec(16, 100)
    assert small.layers[0].params["out_features"] < widths[0]


def test_spec_refuses_empty_sizes():
    with pytest.raises(SpecError, match="at least one input feature"):
        autoencoder_spec(0, 100)


def test_reconstruction_errors_are_per_row_means():
    model = build_model(autoencoder_spec(6, 500), (6,), 6, seed=0)
    X = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    with torch.no_grad():
        out = model(torch.from_numpy(X)).numpy()
    errors = Preprocessor.reconstruction_errors(X, out)
    assert errors.shape == (50,) and errors.dtype == np.float64
    np.testing.assert_allclose(errors, ((out - X) ** 2).mean(axis=1), rtol=1e-6)
    with pytest.raises(DataError, match="as wide as it takes"):
        Preprocessor.reconstruction_errors(X, out[:, :3])


# -- training and scoring -------------------------------------------------------------------------


def test_autoencoder_output_width_equals_its_input_width(trained, table):
    model, counter = trained
    width = model.preprocessor.n_features
    assert model.spec.family == "autoencoder" and model.task == "anomaly"
    assert counter.epochs == model.history.epochs_run >= 1
    X = model.preprocessor.transform(table.head(5))
    assert model.model(torch.from_numpy(X)).shape == (5, width) == X.shape


def test_anomalies_score_much_higher_than_normal_rows(trained, table):
    model, _ = trained
    scores = model.predict(table)["anomaly_score"].to_numpy()
    truth = _truth(table)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(truth, scores) > 0.9
    assert np.median(scores[truth]) > 5 * np.median(scores[~truth])


def test_threshold_is_the_99th_percentile_of_validation_errors(trained, table):
    model, _ = trained
    pre = model.preprocessor
    val = table.iloc[split_positions(model, len(table))["val"]]
    val_errors = model.predict(val)["anomaly_score"].to_numpy()
    assert pre.threshold_quantile == DEFAULT_QUANTILE
    assert pre.threshold == pytest.approx(np.quantile(val_errors, 0.99))  # the split is recomputed exactly
    flagged_rows = model.predict(val)["is_anomaly"].to_numpy()
    assert flagged_rows.mean() == pytest.approx(0.01, abs=0.005)  # ~1% of all validation rows
    assert flagged_rows[~_truth(val)].mean() <= 0.015  # normal rows: at most about 1% false alarms
    assert set(model.metrics["test"]) == {"reconstruction_error", "flagged_share"}
    kept = model.test_results
    assert kept["threshold"] == pre.threshold and len(kept["val_errors"]) == len(val)
    assert kept["most_unusual"][0]["anomaly_score"] >= kept["most_unusual"][1]["anomaly_score"]


def test_a_lower_quantile_flags_more_rows_and_travels_in_the_json(trained, table):
    model, _ = trained
    high = model.preprocessor.threshold
    try:
        rescore(model, 0.9)
        assert model.preprocessor.threshold < high
        val = table.iloc[split_positions(model, len(table))["val"]]
        assert model.predict(val)["is_anomaly"].mean() == pytest.approx(0.1, abs=0.01)
        assert Preprocessor.from_dict(model.preprocessor.to_dict()).threshold == model.preprocessor.threshold
        for bad in (0, 1, 1.5):
            with pytest.raises(DataError, match="between 0 and 1"):
                rescore(model, bad)
    finally:
        rescore(model, DEFAULT_QUANTILE)


def test_score_keeps_order_and_handles_missing_values_and_unseen_categories(trained, table):
    model, _ = trained
    rows = table.sample(40, random_state=1)  # shuffled index
    rows.loc[rows.index[:5], "segment"] = "platinum"  # never seen in training
    rows.loc[rows.index[5:10], ["age", "income"]] = np.nan
    scored = model.predict(rows)
    assert list(scored.columns) == ["anomaly_score", "is_anomaly"] and len(scored) == 40
    assert np.isfinite(scored["anomaly_score"]).all() and scored["is_anomaly"].dtype == bool
    one_by_one = [model.predict(rows.iloc[[i]])["anomaly_score"].iloc[0] for i in (0, 7, 39)]
    np.testing.assert_allclose(scored["anomaly_score"].iloc[[0, 7, 39]], one_by_one, rtol=1e-5)
    with pytest.raises(DataError):
        model.predict(rows.drop(columns=["spend"]))


def test_flagged_rows_are_sorted_by_score_descending(trained, table):
    model, _ = trained
    top = flagged(model, table, top=20)
    assert 0 < len(top) <= 20 and top["is_anomaly"].all()
    assert top["anomaly_score"].is_monotonic_decreasing
    assert set(FEATURES + [LABEL]) <= set(top.columns)
    assert (top[LABEL] == "yes").mean() > 0.8  # the most unusual rows are the injected ones
    everything = flagged(model, table.head(30), top=100, only_flagged=False)
    assert len(everything) == 30 and everything["anomaly_score"].is_monotonic_decreasing


def test_evaluation_against_labels_and_the_isolation_forest_baseline(trained, table):
    model, _ = trained
    result = evaluate_anomalies(model, table, LABEL, rows="all")
    assert result.n_rows == len(table) and result.n_anomalies == _truth(table).sum()
    assert result.model["roc_auc"] > 0.9 and result.baseline["roc_auc"] is not None
    assert result.model["recall"] > 0.3 and result.model["precision"] > 0.5
    assert result.beats_baseline  # the broken correlations are invisible to one column at a time
    info = result.to_dict()
    assert info["baseline"]["name"] == "IsolationForest" and set(info["model"]) == {
        "precision", "recall", "roc_auc", "average_precision", "flagged"}
    test_rows = evaluate_anomalies(model, table, _truth(table), rows="test")
    assert test_rows.n_rows == len(split_positions(model, len(table))["test"])
    with pytest.raises(DataError, match="no column"):
        evaluate_anomalies(model, table, "nope")
    with pytest.raises(DataError, match="'test', 'val' or 'all'"):
        evaluate_anomalies(model, table, LABEL, rows="train")


def test_needs_validation_rows_for_the_threshold():
    config = TrainConfig(**{**CONFIG, "epochs": 1, "val_fraction": 0.0})
    with pytest.raises(SpecError, match="val_fraction"):
        train_autoencoder(make_table(200, anomaly_rate=0.0), FEATURES, config)
