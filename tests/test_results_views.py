"""Unit tests of what the Evaluate page draws from a run's ``test_results`` (builder/results.py)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from builder.errors import DataError
from builder.results import (
    anomaly_view,
    baseline_short_name,
    forecast_comparison,
    forecast_lines,
    rescore,
)
from tests import kind_fixtures


def test_forecast_lines_follow_one_step_ahead_along_the_test_period():
    lines = forecast_lines(kind_fixtures.forecast_results(), step=2)
    assert lines.label == "2 steps ahead"
    assert lines.times == [f"2024-01-{12 + i:02d}T00:00:00" for i in range(5)]  # the 2nd step of each window
    np.testing.assert_allclose(lines.predicted, np.arange(11, 16) + 2)
    np.testing.assert_allclose(lines.residuals, -2.0)
    np.testing.assert_allclose(lines.baselines["last value"], np.arange(9, 14))
    # Every test day once, in order, with what really happened; the history before it.
    assert len(lines.actual_times) == 5 + 3 - 1 and lines.actual_times == sorted(lines.actual_times)
    np.testing.assert_allclose(lines.actual_values, np.arange(10, 17))
    assert len(lines.history_times) == 10


def test_forecast_lines_of_the_last_window_show_its_whole_forecast():
    lines = forecast_lines(kind_fixtures.forecast_results(), step=None)
    assert lines.times == ["2024-01-15T00:00:00", "2024-01-16T00:00:00", "2024-01-17T00:00:00"]
    np.testing.assert_allclose(lines.predicted, [14 + 1, 15 + 2, 16 + 3])
    np.testing.assert_allclose(lines.baselines["last value"], [13, 13, 13])
    assert lines.actual_times[-1] == "2024-01-17T00:00:00"


def test_forecast_lines_refuse_a_step_beyond_the_horizon_and_empty_runs():
    with pytest.raises(DataError, match="between 1 and 3"):
        forecast_lines(kind_fixtures.forecast_results(), step=4)
    with pytest.raises(DataError, match="Train it again"):
        forecast_lines({**kind_fixtures.forecast_results(), "times": [], "actual": [], "predicted": []})


def test_forecast_comparison_ranks_baselines_and_says_who_wins():
    baselines = {"last value": {"rmse": 5.0, "mae": 4.0, "r2": 0.1},
                 "seasonal naive": {"rmse": 3.0, "mae": 2.5, "r2": 0.6},
                 "lagged ridge": {"rmse": 4.0, "mae": 3.0, "r2": 0.4}}
    won = forecast_comparison({"rmse": 2.0, "mae": 1.5, "r2": 0.8}, baselines)
    assert won.table["Forecast"].tolist() == ["The network", "Seasonal naive", "Lagged ridge", "Last value"]
    assert won.beats_best and won.best == "seasonal naive"
    assert "beats every simple forecast" in won.verdict and "33% lower" in won.verdict

    lost = forecast_comparison({"rmse": 4.5, "mae": 3.5, "r2": 0.3}, baselines)
    assert not lost.beats_best
    assert lost.verdict.startswith("The network does not beat the seasonal naive forecast")
    assert "It does beat last value." in lost.verdict

    none = forecast_comparison({"rmse": 1.0}, {})
    assert none.best is None and not none.beats_best and len(none.table) == 1


def test_anomaly_view_and_rescore_move_the_flagged_rows_together():
    trained = copy.deepcopy(kind_fixtures.anomaly_run())
    view = anomaly_view(trained.test_results)
    assert view.quantile == pytest.approx(0.99)
    assert view.flagged == int(np.sum(view.test_errors > view.threshold))
    assert (view.rows["anomaly_score"] > view.threshold).all()

    metrics = rescore(trained, 0.8)
    lower = anomaly_view(trained.test_results)
    assert lower.threshold < view.threshold and lower.flagged >= view.flagged
    assert lower.threshold == pytest.approx(np.quantile(lower.val_errors, 0.8))
    assert trained.preprocessor.threshold == pytest.approx(lower.threshold)
    assert metrics["flagged_share"] == pytest.approx(lower.flagged / len(lower.test_errors))
    assert trained.metrics["val"]["flagged_share"] == pytest.approx(np.mean(lower.val_errors > lower.threshold))
    assert lower.rows["anomaly_score"].is_monotonic_decreasing
    assert len(lower.rows) == min(lower.flagged, len(trained.test_results["most_unusual"]))
    with pytest.raises(DataError, match="between 0 and 1"):
        rescore(trained, 1.5)


def test_baselines_are_named_for_their_kind_of_data():
    assert baseline_short_name(kind_fixtures.image_run()) == "logistic regression on pixels"
    assert kind_fixtures.image_run().baseline.name.startswith("Logistic regression on pixels")
    assert baseline_short_name(kind_fixtures.text_run()) == "TF-IDF + logistic regression"
    forecast = kind_fixtures.forecast_run()
    assert baseline_short_name(forecast).endswith("forecast")
    assert baseline_short_name(kind_fixtures.anomaly_run()) is None
