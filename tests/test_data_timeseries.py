"""Time series engine: profile messages, windows, time split without leakage, scaling, baselines."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from builder.baselines import compare_forecasts, naive_forecast, ridge_forecast, seasonal_naive_forecast
from builder.data.timeseries import (
    SeriesPreprocessor,
    WindowSpec,
    make_windows,
    prepare_series,
    profile_series,
    split_by_time,
    suggest_season,
)
from builder.errors import BuilderError, DataError, SpecError

GAP_DAYS = ["2024-03-03", "2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07", "2024-05-10", "2024-05-11",
            "2024-07-01"]


def make_series(n: int = 420, seed: int = 0) -> pd.DataFrame:
    """Daily trend + weekly season + noise; 3 gaps (5, 2, 1 days), one duplicated day, messy text."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2024-01-01", periods=n, freq="D")
    t = np.arange(n)
    values = 100 + 0.1 * t + 10 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 1.0, n)
    df = pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "sales": values})
    df = df[~pd.to_datetime(df["date"]).isin(pd.to_datetime(GAP_DAYS))].reset_index(drop=True)
    duplicate = df.iloc[[20]].copy()  # 2024-01-21
    duplicate["sales"] += 2.0
    df = pd.concat([df, duplicate], ignore_index=True)
    df["sales"] = [f"${v:,.2f}" if i % 3 == 0 else f" {v:.2f} " for i, v in enumerate(df["sales"])]
    return df.sample(frac=1, random_state=seed).reset_index(drop=True)  # unsorted on purpose


@pytest.fixture(scope="module")
def series() -> pd.DataFrame:
    return make_series()


@pytest.fixture(scope="module")
def prepared(series):
    return prepare_series(series, "date", ["sales"], "sales", WindowSpec(window=28, horizon=7))


# -- profile ----------------------------------------------------------------------------------


def test_profile_finds_step_gaps_duplicates_and_season(series):
    p = profile_series(series, "date", ["sales"])
    assert p.step == {"nanoseconds": 86_400 * 10**9} and p.step_text == "1 day"
    assert p.n_gaps == 3 and p.missing_steps == 8
    assert p.longest_gap.missing_steps == 5 and p.longest_gap.after == pd.Timestamp("2024-03-02")
    assert [g.missing_steps for g in p.gaps] == [5, 2, 1]
    assert p.n_duplicates == 1 and p.duplicate_examples == ["2024-01-21"]
    assert p.n_irregular == 0 and p.suggested_season == 7
    assert p.n_steps == 420 and p.n_rows == 413
    text = " ".join(p.messages)
    assert "3 gaps: the longest misses 5 days after 2024-03-02" in text
    assert "carrying the last value forward" in text
    assert "1 time stamp occurs more than once (e.g. 2024-01-21" in text and "averaged" in text
    assert "Suggested season: 7 steps" in text


def test_profile_irregular_stamps_empty_values_and_linear_fill():
    df = pd.DataFrame({
        "t": ["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 02:10", "2024-01-01 03:00", "2024-01-01 04:00"],
        "v": ["1", "", "3", "4", "5"],
    })
    p = profile_series(df, "t", ["v"], fill="linear")
    assert p.step_text == "1 hour" and p.suggested_season == 24
    assert p.n_irregular == 1 and p.irregular_examples == ["2024-01-01 02:10:00"]
    assert p.missing_values == {"v": 1} and p.n_gaps == 0
    text = " ".join(p.messages)
    assert "1 time stamp is off the regular 1 hour step" in text and "nearest step" in text
    assert "'v' has 1 empty value, filled by drawing a straight line" in text
    assert "No gaps" in text
    pre = SeriesPreprocessor(fill="linear").fit(df, "t", ["v"], "v")
    assert pre.regularise(df)["v"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    forward = SeriesPreprocessor().fit(df, "t", ["v"], "v")
    assert forward.regularise(df)["v"].tolist() == [1.0, 1.0, 3.0, 4.0, 5.0]


def test_monthly_steps_and_season():
    df = pd.DataFrame({"month": pd.date_range("2020-01-31", periods=30, freq="ME"), "v": np.arange(30.0)})
    df = df.drop(index=[5, 6]).reset_index(drop=True)
    p = profile_series(df, "month", ["v"])
    assert p.step == {"months": 1} and p.suggested_season == 12 and p.n_irregular == 0
    assert p.n_gaps == 1 and p.gaps[0].duration == "2 months" and p.n_steps == 30
    pre = SeriesPreprocessor().fit(df, "month", ["v"], "v")
    frame = pre.forecast_frame("2022-06-30", None, np.array([1.0, 2.0, 3.0]))
    assert frame["time"].tolist() == [pd.Timestamp("2022-07-31"), pd.Timestamp("2022-08-31"),
                                      pd.Timestamp("2022-09-30")]


@pytest.mark.parametrize(("step", "season"), [
    ({"nanoseconds": 86_400 * 10**9}, 7), ({"nanoseconds": 3600 * 10**9}, 24), ({"months": 1}, 12),
    ({"months": 3}, 4), ({"nanoseconds": 7 * 86_400 * 10**9}, 52), ({"nanoseconds": 900 * 10**9}, 96),
    ({"nanoseconds": 60 * 10**9}, 60), ({"months": 12}, None),
])
def test_season_suggestions(step, season):
    assert suggest_season(step) == season


# -- windows ----------------------------------------------------------------------------------


def test_windows_shapes_and_alignment():
    values = np.column_stack([np.arange(50.0), np.arange(50.0) * 10])  # (50, 2)
    spec = WindowSpec(window=5, horizon=3, stride=2)
    X, y, ends = make_windows(values, 1, spec)
    assert X.dtype == y.dtype == np.float32
    assert X.shape == (spec.n_windows(50), 5, 2) and y.shape == (len(X), 3)
    assert ends[-1] == 50 - 3 - 1 and np.all(np.diff(ends) == 2)  # aligned to the newest data
    for x, target, end in zip(X, y, ends, strict=True):
        np.testing.assert_array_equal(x, values[end - 4 : end + 1])
        np.testing.assert_array_equal(target, values[end + 1 : end + 4, 1])  # exactly the next 3


def test_prepared_series_alignment_and_times(prepared):
    assert prepared.input_shape == (28, 1) and prepared.n_outputs == 7
    assert prepared.X_train.shape[1:] == (28, 1) and prepared.y_test.shape[1] == 7
    pre = prepared.preprocessor
    for split in ("train", "val", "test"):
        X, y = getattr(prepared, f"X_{split}"), getattr(prepared, f"y_{split}")
        ends, times = prepared.ends(split), getattr(prepared, f"times_{split}")
        np.testing.assert_allclose(pre.decode_forecast(X, y), prepared.true_targets(split), rtol=1e-5)
        np.testing.assert_allclose(pre.inverse_target(X[:, -1, 0]), prepared.target_values[ends], rtol=1e-5)
        np.testing.assert_array_equal(times[:, 0], prepared.times[ends + 1])
        assert np.all(np.diff(times, axis=1) == np.timedelta64(1, "D"))
    # The duplicated day is averaged; the 5-day gap carries 2024-03-02 forward.
    grid = pd.Series(prepared.target_values, index=prepared.times)
    assert grid[pd.Timestamp("2024-03-05")] == grid[pd.Timestamp("2024-03-02")]


def test_no_leakage_across_the_split(prepared):
    h, w = prepared.n_outputs, prepared.spec.window
    assert prepared.dropped == 2 * (h - 1)
    assert prepared.times_train.max() < prepared.times_val.min()
    assert prepared.times_val.max() < prepared.times_test.min()
    assert prepared.times_train.max() < prepared.times_test.min()
    test_targets = set((prepared.end_test[:, None] + np.arange(1, h + 1)).ravel())
    train_rows = set((prepared.end_train[:, None] + np.arange(-w + 1, h + 1)).ravel())  # inputs + targets
    assert not test_targets & train_rows
    val_targets = set((prepared.end_val[:, None] + np.arange(1, h + 1)).ravel())
    assert not val_targets & train_rows


def test_split_by_time_blocks_are_contiguous_and_ordered():
    split = split_by_time(100, 0.2, 0.1)
    assert split.dropped == 0
    np.testing.assert_array_equal(np.concatenate([split.train, split.val, split.test]), np.arange(100))
    assert split.test.size == 10 and split.val.size == 20
    spec = WindowSpec(window=4, horizon=3)
    purged = split_by_time(np.arange(3, 103), 0.2, 0.1, spec)
    assert purged.dropped == 4 and purged.train[-1] == 67 and purged.val[-1] == 87
    assert split_by_time(50, 0.0, 0.2).val.size == 0


def test_scaler_fitted_on_training_rows_only(prepared):
    state = prepared.preprocessor.to_dict()["columns"][0]
    train_rows = prepared.end_train[-1] + prepared.n_outputs + 1
    part = prepared.target_values[:train_rows]
    assert state["mean"] == pytest.approx(part.mean()) and state["std"] == pytest.approx(part.std())
    assert state["mean"] < prepared.target_values.mean() - 1  # the trend: later rows are larger


def test_json_round_trip_is_identical(series, prepared):
    pre = prepared.preprocessor
    state = json.loads(json.dumps(pre.to_dict()))
    again = SeriesPreprocessor.from_dict(state)
    assert again.to_dict() == pre.to_dict()
    a, b = pre.transform(series), again.transform(series)
    assert a.tobytes() == b.tobytes() and a.shape == (420, 1) and a.dtype == np.float32
    assert np.isfinite(a).all()


def test_forecast_frame_time_stamps(prepared):
    pre = prepared.preprocessor
    frame = pre.forecast_frame(prepared.times[-1], None, np.array([1.0, 2.0, 3.0]))
    assert list(frame.columns) == ["time", "prediction"]
    assert frame["time"].tolist() == list(pd.date_range("2025-02-24", periods=3, freq="D"))
    hourly = pre.forecast_frame("2024-01-01 22:00", "1h", [5.0, 6.0])
    assert hourly["time"].tolist() == [pd.Timestamp("2024-01-01 23:00"), pd.Timestamp("2024-01-02 00:00")]
    assert hourly["prediction"].tolist() == [5.0, 6.0]
    with pytest.raises(DataError, match="time step 'often' is not understood"):
        pre.forecast_frame("2024-01-01", "often", [1.0])


# -- baselines ----------------------------------------------------------------------------------


def test_baselines_on_the_weekly_series(prepared):
    shape = prepared.y_test.shape
    naive, seasonal, ridge = naive_forecast(prepared), seasonal_naive_forecast(prepared), ridge_forecast(prepared)
    assert naive.shape == seasonal.shape == ridge.shape == shape
    np.testing.assert_array_equal(naive[:, 3], prepared.target_values[prepared.end_test])
    k = 3  # step 3 repeats the value 7 days before it
    np.testing.assert_array_equal(seasonal[:, k - 1], prepared.target_values[prepared.end_test + k - 7])
    scores = compare_forecasts(prepared, {"perfect": prepared.true_targets("test")})
    assert scores["seasonal naive"]["rmse"] < 0.5 * scores["last value"]["rmse"]
    assert scores["lagged ridge"]["rmse"] < scores["seasonal naive"]["rmse"]
    assert scores["lagged ridge"]["mae"] < scores["last value"]["mae"]
    assert scores["lagged ridge"]["r2"] > 0.9 and scores["perfect"]["rmse"] == 0.0


# -- bad input: every message ------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "setting"), [
    ({"window": 1}, "'window' setting must be a whole number >= 2; got 1"),
    ({"window": 2.5}, "'window' setting must be a whole number >= 2; got 2.5"),
    ({"horizon": 0}, "'horizon' setting must be a whole number >= 1; got 0"),
    ({"stride": 0}, "'stride' setting must be a whole number >= 1; got 0"),
    ({"window": True}, "'window' setting must be a whole number >= 2; got True"),
])
def test_window_spec_validation(kwargs, setting):
    with pytest.raises(SpecError, match="Fix:") as info:
        WindowSpec(**kwargs)
    assert setting in str(info.value)


def test_too_few_rows_names_settings_and_fix():
    with pytest.raises(DataError) as info:
        WindowSpec(window=30, horizon=7).check_rows(40)
    text = str(info.value)
    assert "window=30, horizon=7 and stride=1" in text and "40 time steps give 4" in text
    assert "at least 20" in text and "lower 'window' to 2 or less" not in text
    assert text.endswith("Fix: lower 'window' to 14 or less, or lower 'horizon', or use a longer history.")
    # Only the settings that can help are named: here window (horizon and stride are already 1).
    advice = str(pytest.raises(DataError, WindowSpec(window=30).check_rows, 45).value)
    assert advice.endswith("Fix: lower 'window' to 25 or less, or use a longer history.")
    short = str(pytest.raises(DataError, WindowSpec(window=2).check_rows, 10).value)
    assert short.endswith("Fix: use a history of at least 22 steps.") and "stride" not in short.split("Fix")[1]
    WindowSpec(window=5, horizon=1).check_rows(25)
    df = pd.DataFrame({"d": pd.date_range("2024-01-01", periods=30).astype(str), "v": np.arange(30.0)})
    with pytest.raises(DataError, match="at least 20 are needed"):
        prepare_series(df, "d", ["v"], "v", WindowSpec(window=14, horizon=7))
    with pytest.raises(DataError, match="too few for even one example"):
        make_windows(np.arange(5.0), 0, WindowSpec(window=4, horizon=2))
    with pytest.raises(DataError, match="target column number 3"):
        make_windows(np.zeros((40, 2)), 3, WindowSpec(window=4))


def _frame(times, values, value_name="v"):
    return pd.DataFrame({"d": times, value_name: values})


@pytest.mark.parametrize(("df", "columns", "message"), [
    (_frame(["2024-01-01", "2024-01-02", "soon"] + [f"2024-01-{i:02d}" for i in range(3, 25)], ["1"] * 25),
     ["v"], r"1 value\(s\) of the time column 'd' cannot be read as dates or times \(for example 'soon'\)"),
    (_frame(["red", "green", "blue"], [1, 2, 3]), ["v"], "The time column 'd' does not hold dates or times"),
    (_frame(["2024-01-01", "2024-01-02", "2024-01-03"], ["1", "two", "3"]), ["v"],
     r"1 value\(s\) of 'v' are not numbers \(for example 'two'\)"),
    (_frame(["2024-01-01", "2024-01-02"], ["", ""]), ["v"], "'v' has no numbers at all"),
    (_frame(["2024-01-01", "2024-01-01"], [1, 2]), ["v"], "fewer than two different time stamps"),
    (_frame(["", ""], [1, 2]), ["v"], "The time column 'd' is empty"),
    (_frame(["2024-01-01", "2024-01-02"], [1, 2]), ["price"], "no column named 'price'. Its columns are: 'd', 'v'"),
    (_frame(["2024-01-01", "2024-01-02"], [1, 2]), ["d"], "'d' is the time column, so it cannot also be a value"),
    (_frame(["2024-01-01", "2024-01-02"], [1, 2]), [], "No value columns are selected"),
])
def test_bad_series_messages(df, columns, message):
    with pytest.raises(DataError, match=message):
        profile_series(df, "d", columns)


def test_bad_settings_and_state_messages(prepared):
    with pytest.raises(SpecError, match="fill setting must be one of 'forward', 'linear'; got 'mean'"):
        SeriesPreprocessor(fill="mean")
    with pytest.raises(DataError, match="'val_fraction' setting must be a share between 0 and 1"):
        split_by_time(100, 1.5, 0.1)
    with pytest.raises(DataError, match="'test_fraction' setting must be a share"):
        split_by_time(100, 0.1, -0.1)
    with pytest.raises(DataError, match="leave 0 of 10 windows for training"):
        split_by_time(10, 0.5, 0.5 - 1e-9)
    with pytest.raises(DataError, match="no training windows remain"):
        split_by_time(np.arange(10), 0.1, 0.1, WindowSpec(window=2, horizon=12))
    with pytest.raises(DataError, match="not a saved time-series preprocessing file"):
        SeriesPreprocessor.from_dict({"format": "builder.tabular-preprocessor"})
    state = prepared.preprocessor.to_dict()
    with pytest.raises(DataError, match="has version 99"):
        SeriesPreprocessor.from_dict({**state, "version": 99})
    with pytest.raises(DataError, match="incomplete or damaged"):
        SeriesPreprocessor.from_dict({**state, "step": {"weeks": 1}})
    with pytest.raises(RuntimeError, match="not fitted"):
        SeriesPreprocessor().transform(pd.DataFrame())
    assert issubclass(DataError, BuilderError) and issubclass(SpecError, ValueError)


def test_messages_quote_cells_as_the_analyst_wrote_them():
    numbers = pd.DataFrame({"a": np.arange(30), "b": np.arange(30.0)})
    with pytest.raises(DataError) as info:
        profile_series(numbers, "a", ["b"])
    assert "(for example 0)" in str(info.value) and "np." not in str(info.value)
    words = pd.DataFrame({"d": pd.date_range("2024-01-01", periods=30).astype(str), "v": ["x"] * 30})
    with pytest.raises(DataError, match=r"\(for example 'x'\)"):
        profile_series(words, "d", ["v"])
