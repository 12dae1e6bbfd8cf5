"""The whole table journey through ``train_model``, with default settings only.

"Defaults must be good without tuning": on messy tables (missing values, categories, dates, money
written as text) the default MLP must match the scikit-learn linear baseline where the truth is
linear, and beat it clearly where it is not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from builder.data import DataSpec, profile_table, suggest_features
from builder.errors import SpecError
from builder.evaluate import HEADLINE_METRIC
from builder.pipeline import train_model
from builder.spec import ModelSpec
from builder.train import TrainConfig
from tests.tabular_fixtures import TARGET, make_interaction_table, make_messy_table


def train_with_defaults(df: pd.DataFrame, task: str):
    features = suggest_features(profile_table(df), TARGET)
    return train_model(df, DataSpec(TARGET, task, features), TrainConfig())


def headline(trained) -> tuple[float, float]:
    metric = HEADLINE_METRIC[trained.task]
    return trained.metrics["test"][metric], trained.baseline.metrics[metric]


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_default_mlp_matches_the_linear_baseline_on_a_linear_messy_table(task):
    trained = train_with_defaults(make_messy_table(n=1500, seed=1, task=task), task)
    model, baseline = headline(trained)
    if task == "binary":
        assert model >= baseline - 0.03  # within 3 accuracy points of the ideal (linear) model
    else:
        assert model <= baseline * 1.06  # RMSE within 6% of the ideal (linear) model


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_default_mlp_beats_the_linear_baseline_when_columns_interact(task):
    trained = train_with_defaults(make_interaction_table(n=2000, seed=0, task=task), task)
    model, baseline = headline(trained)
    if task == "regression":
        assert model < 0.7 * baseline  # RMSE at least 30% lower
    else:
        assert model > baseline + 0.15  # at least 15 accuracy points better
    assert trained.history.stopped_reason in ("early_stopping", "completed")


def test_predictions_keep_row_order_and_decode_labels_and_probabilities():
    df = make_messy_table(n=800, seed=3, task="multiclass")
    trained = train_with_defaults(df, "multiclass")
    new = df.drop(columns=[TARGET]).iloc[::-1].head(50).copy()
    new.loc[new.index[0], "color"] = "never-seen"  # an unseen category
    new.loc[new.index[1], "age"] = np.nan
    out = trained.predict(new)
    assert len(out) == 50 and set(out["prediction"]) <= {"bronze", "silver", "gold"}
    probabilities = out[[f"probability_{c}" for c in ("bronze", "gold", "silver")]].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    single = trained.predict(new.iloc[[7]])
    assert single["prediction"].iloc[0] == out["prediction"].iloc[7]


def test_a_real_table_breast_cancer_reaches_a_good_accuracy():
    data = load_breast_cancer(as_frame=True)
    df = data.frame.assign(diagnosis=np.where(data.target == 0, "malignant", "benign")).drop(columns="target")
    features = [c for c in df.columns if c != "diagnosis"]
    trained = train_model(df, DataSpec("diagnosis", "binary", features), TrainConfig())
    assert trained.metrics["test"]["accuracy"] > 0.93
    assert trained.info["rows"]["train"] + trained.info["rows"]["validation"] + trained.info["rows"]["test"] == 569


def test_money_written_as_text_is_a_number_target_with_metrics_on_validation_and_test():
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    df = pd.DataFrame({"x": x, "price": [f"${1000 + 300 * v:,.2f}" for v in x]})
    trained = train_model(df, DataSpec("price", "regression", ["x"]), TrainConfig(epochs=40))
    assert set(trained.metrics) == {"val", "test"}
    assert trained.metrics["test"]["r2"] > 0.9 and trained.baseline.metrics["r2"] > 0.9


def test_a_run_that_diverges_after_learning_keeps_its_best_epoch(monkeypatch):
    import builder.pipeline as pipeline
    from builder.train import FitError, fit

    def diverging_fit(*args, **kwargs):
        result = fit(*args, **kwargs)
        result.history.stopped_reason = "diverged"
        raise FitError("Training diverged at epoch 6 (loss is not a number): lower the learning rate.", result)

    monkeypatch.setattr(pipeline, "fit", diverging_fit)
    df = make_messy_table(n=300, seed=0, task="binary")
    trained = train_model(df, DataSpec(TARGET, "binary", ["age", "color", "member"]), TrainConfig(epochs=30))
    assert trained.history.stopped_reason == "diverged" and trained.metrics["test"]["accuracy"] > 0.55
    assert "the best before that, was kept" in trained.info["warning"]


def test_a_design_that_does_not_fit_the_task_is_refused_before_training():
    df = make_messy_table(n=300, seed=0, task="binary")
    with pytest.raises(SpecError, match="Linear regression cannot do yes/no prediction"):
        train_model(df, DataSpec(TARGET, "binary", ["age", "color"]), TrainConfig(epochs=2),
                    spec=ModelSpec(family="linear"))


def test_an_anomaly_model_without_validation_rows_is_refused_before_training():
    from builder.train import Callback

    class Started(Callback):
        began = False

        def on_train_begin(self, info) -> None:
            Started.began = True

    df = make_messy_table(300, seed=5).drop(columns=[TARGET])
    spec = DataSpec(None, "anomaly", list(df.columns))
    with pytest.raises(SpecError, match="val_fraction"):  # the threshold comes from validation rows
        train_model(df, spec, TrainConfig(epochs=2, val_fraction=0.0), callbacks=[Started()])
    assert not Started.began  # nothing was trained only to be thrown away
    tiny = df.head(12)  # the split keeps a validation row even in a tiny table: a threshold is set
    trained = train_model(tiny, spec, TrainConfig(epochs=2, val_fraction=0.01), with_baseline=False)
    assert trained.preprocessor.threshold is not None and len(trained.test_results["val_errors"]) >= 1
