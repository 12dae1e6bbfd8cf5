"""k-fold cross-validation (``builder.crossval``): folds, the same folds for network and baseline,
the refit, the CLI's ``--cv`` and the setting's validation.

Real data: scikit-learn's breast cancer and diabetes tables, and a generated daily series. The
fold plans are checked without training; one small cross-validated run per module is shared.
"""

from __future__ import annotations

import io
import json
import zipfile
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn import datasets

from builder import cli, crossval
from builder.data import DataSpec
from builder.data.sources import prepare_data
from builder.errors import DataError, SpecError
from builder.train import TrainConfig

torch.set_num_threads(1)  # small models: one thread is as fast and leaves the other cores alone


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, DataSpec]:
    frame = datasets.load_breast_cancer(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "malignant", 1: "benign"})
    return frame, DataSpec("target", "binary", [c for c in frame.columns if c != "target"])


@pytest.fixture(scope="module")
def diabetes() -> tuple[pd.DataFrame, DataSpec]:
    frame = datasets.load_diabetes(as_frame=True).frame
    return frame, DataSpec("target", "regression", [c for c in frame.columns if c != "target"])


@pytest.fixture(scope="module")
def series() -> tuple[pd.DataFrame, DataSpec]:
    days = pd.date_range("2024-01-01", periods=260, freq="D")
    t = np.arange(len(days))
    sales = 50 + 0.1 * t + 8 * np.sin(2 * np.pi * t / 7) + np.random.default_rng(0).normal(0, 1, len(t))
    frame = pd.DataFrame({"date": days, "sales": sales})
    return frame, DataSpec("sales", "forecast", ["sales"], kind="series",
                           options={"time_column": "date", "window": 14, "horizon": 3})


def plan_for(source: pd.DataFrame, data_spec: DataSpec, k: int = 5):
    config = TrainConfig()
    base = prepare_data(source, data_spec, config.val_fraction, config.test_fraction, config.seed)
    return base, crossval.plan_folds(base, source, data_spec, k, config.seed)


@pytest.mark.parametrize("which", ["cancer", "diabetes"])
def test_row_folds_use_only_non_test_rows_disjoint_and_covering(request: pytest.FixtureRequest, which: str) -> None:
    source, data_spec = request.getfixturevalue(which)
    base, plan = plan_for(source, data_spec)
    non_test = set(base.train_idx) | set(base.val_idx)
    assert plan.non_test == len(non_test) and len(plan.folds) == 5
    seen: list[int] = []
    for rows in plan.folds:
        val = np.flatnonzero(rows["val_rows"])
        assert np.array_equal(np.flatnonzero(rows["test_rows"]), np.sort(base.test_idx))
        assert not set(val) & set(base.test_idx)
        seen += val.tolist()
    assert sorted(seen) == sorted(non_test)  # every non-test row validates exactly once
    assert not plan.refit["val_rows"].any()
    assert plan.method == ("stratified k-fold" if which == "cancer" else "k-fold")


def test_stratified_folds_keep_class_shares(cancer) -> None:
    source, data_spec = cancer
    base, plan = plan_for(source, data_spec)
    labels = source["target"].to_numpy()
    share = np.mean(labels[np.concatenate([base.train_idx, base.val_idx])] == "malignant")
    for rows in plan.folds:
        assert np.mean(labels[rows["val_rows"]] == "malignant") == pytest.approx(share, abs=0.02)


def test_series_folds_are_expanding_windows_in_time_order(series) -> None:
    source, data_spec = series
    base, plan = plan_for(source, data_spec, k=4)
    horizon = base.spec.horizon
    ends = base.spec.end_positions(base.profile.n_steps)
    first_test_target = int(base.end_test[0]) + 1
    previous_train = 0
    for rows in plan.folds:
        windows = rows["windows"]
        train, val = ends[windows.train], ends[windows.val]
        assert np.all(np.diff(val) > 0) and np.all(np.diff(train) > 0)  # contiguous blocks, time order
        assert train.max() + horizon < val.min() + 1  # no training target reaches the validation block
        assert val.max() + horizon < first_test_target  # nor does any validation window reach the test
        assert len(train) > previous_train  # expanding: each fold trains on more of the past
        previous_train = len(train)
    assert np.array_equal(ends[plan.refit["windows"].test], base.end_test)
    assert not plan.refit["windows"].val.size


@pytest.fixture(scope="module")
def cancer_cv(cancer):
    """One cross-validated run, recording what each fold's network and baseline were given."""
    source, data_spec = cancer
    seen = {"fit": [], "evaluate": []}
    fit_design, evaluate = crossval.fit_design, crossval.evaluate_trained

    def spy_fit(prepared, *args, **kwargs):
        seen["fit"].append((prepared.X_train, prepared.X_val, kwargs.get("keep_last", False)))
        return fit_design(prepared, *args, **kwargs)

    def spy_evaluate(trained, prepared, *args, **kwargs):
        seen["evaluate"].append((prepared.X_train, prepared.X_test))
        return evaluate(trained, prepared, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(crossval, "fit_design", spy_fit)
        patch.setattr(crossval, "evaluate_trained", spy_evaluate)
        config = TrainConfig(epochs=30, early_stopping_patience=3, cv_folds=4, device="cpu")
        trained, result = crossval.cross_validate(source, data_spec, config, family="mlp")
    base, plan = plan_for(source, data_spec, k=4)
    return trained, result, seen, base, plan


def test_network_and_baseline_see_the_same_folds(cancer_cv) -> None:
    trained, result, seen, base, plan = cancer_cv
    assert len(result.folds) == 4
    for (fit_train, fit_val, _), (eval_train, eval_scored) in zip(seen["fit"][:4], seen["evaluate"][:4], strict=True):
        assert eval_train is fit_train  # the baseline learns from the fold's training rows...
        assert eval_scored is fit_val  # ...and both are scored on the fold's validation rows
    for fold, rows in zip(result.folds, plan.folds, strict=True):
        assert fold.validation == rows["val_rows"].sum()
        assert fold.train + fold.validation == plan.non_test
        assert set(fold.network) == set(fold.baseline) >= {"accuracy", "roc_auc"}
    summary = trained.info["cross_validation"]
    accuracies = [fold.network["accuracy"] for fold in result.folds]
    assert summary["network"]["accuracy"]["mean"] == pytest.approx(np.mean(accuracies))
    assert summary["network"]["accuracy"]["std"] == pytest.approx(np.std(accuracies))
    assert summary["baseline"]["accuracy"]["mean"] > 0.9


def test_refit_uses_all_non_test_rows_for_the_median_best_epoch(cancer_cv) -> None:
    trained, result, seen, base, plan = cancer_cv
    best = [fold.best_epoch for fold in result.folds]
    assert result.refit_epochs == crossval.refit_epochs(best) == max(1, int(np.ceil(np.median(best))))
    refit_train, _, keep_last = seen["fit"][-1]
    assert keep_last and len(refit_train) == plan.non_test
    assert trained.history.epochs_run == result.refit_epochs == trained.history.best_epoch
    assert trained.info["rows"] == {"train": plan.non_test, "validation": 0, "test": len(base.test_idx)}
    assert set(trained.metrics) == {"test"} and trained.baseline is not None
    assert trained.config.cv_folds == 4


def test_refit_epochs_rounds_an_even_median_up() -> None:
    assert crossval.refit_epochs([3, 4, 8, 10]) == 6
    assert crossval.refit_epochs([7, 9]) == 8
    assert crossval.refit_epochs([1, 2]) == 2


def test_too_few_rows_for_the_folds_is_a_plain_error(cancer) -> None:
    source, data_spec = cancer
    small = source.groupby("target").head(11).reset_index(drop=True)  # 22 rows, 18 outside the test
    config = TrainConfig(epochs=1, cv_folds=20, device="cpu")
    with pytest.raises(DataError, match="needs at least 20 rows outside the test set; there are 18"):
        crossval.cross_validate(small, data_spec, config, family="mlp")


@pytest.mark.parametrize("value", [1, 21, 2.5, "five"])
def test_cv_folds_setting_is_validated_by_its_declaration(value) -> None:
    with pytest.raises(SpecError) as raised:
        TrainConfig(cv_folds=value).validate()
    message = str(raised.value)
    assert "Cross-validation folds ('cv_folds')" in message or "cv_folds" in message
    assert "20" in message
    assert TrainConfig(cv_folds=None).validate().cv_folds is None
    assert TrainConfig.from_dict({"cv_folds": 5}).cv_folds == 5


def test_cli_cv_prints_fold_summary_and_writes_it_to_the_bundle(tmp_path) -> None:
    data = tmp_path / "diabetes.csv"
    datasets.load_diabetes(as_frame=True).frame.to_csv(data, index=False)
    bundle = tmp_path / "diabetes.zip"
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["train", "--data", str(data), "--target", "target", "--out", str(bundle),
                         "--epochs", "15", "--patience", "3", "--cv", "3", "--device", "cpu"])
    assert code == 0, err.getvalue()
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    cv = summary["cross_validation"]
    assert cv["folds"] == 3 and cv["method"] == "k-fold"
    assert set(cv["network"]["rmse"]) == {"mean", "std"} and cv["baseline"]["rmse"]["mean"] > 0
    assert summary["epochs_run"] == cv["refit_epochs"]
    assert "fold 3 of 3: rmse" in err.getvalue() and "Fold 2 of 3: training" in err.getvalue()
    with zipfile.ZipFile(bundle) as archive:
        metrics = json.loads(archive.read("metrics.json"))
        card = archive.read("README.md").decode()
    assert metrics["cross_validation"]["refit_epochs"] == cv["refit_epochs"]
    assert "## Cross-validation" in card and "±" in card


def test_cli_refuses_a_bad_cv_value_and_cv_with_auto(capsys: pytest.CaptureFixture, tmp_path) -> None:
    data = tmp_path / "d.csv"
    datasets.load_diabetes(as_frame=True).frame.head(50).to_csv(data, index=False)
    base = ["train", "--data", str(data), "--target", "target", "--out", str(tmp_path / "m.zip")]
    assert cli.main([*base, "--cv", "1"]) == 2
    assert "Cross-validation folds ('cv_folds')" in capsys.readouterr().err
    assert cli.main([*base, "--cv", "3", "--auto"]) == 2
    assert "--cv and --auto cannot be combined" in capsys.readouterr().err
