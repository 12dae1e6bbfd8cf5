"""Tiny trained runs of every kind of data, shared by the Evaluate and Predict page tests.

Each run is trained once per test process (a few seconds each) and cached; a test that changes a
run (the anomaly threshold) takes a ``copy.deepcopy`` first. ``open_with_run`` puts a run in the
session as the Train page leaves it: saved in the workspace and held in the app state.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from builder.data import DataSpec
from builder.pipeline import train_model
from builder.train import TrainConfig
from builder.trained import TrainedModel
from builder.workspace import Workspace
from tests.app_helpers import open_page
from tests.image_fixtures import make_digits_zip
from tests.tabular_fixtures import make_messy_table
from tests.test_data_text import make_text_table
from tests.test_data_timeseries import make_series

ANOMALY_FEATURES = ["age", "income", "color", "signup_date", "member", "visits"]


@functools.cache
def digits_zip() -> bytes:
    return make_digits_zip(n_per_class=12, junk=False)


@functools.cache
def image_run() -> TrainedModel:
    data_spec = DataSpec(None, "multiclass", [], kind="images")
    return train_model(digits_zip(), data_spec, TrainConfig(epochs=2, seed=0))


@functools.cache
def text_table() -> pd.DataFrame:
    return make_text_table(240)


@functools.cache
def text_run() -> TrainedModel:
    data_spec = DataSpec("topic", "multiclass", ["text"], kind="text", options={"text_column": "text"})
    return train_model(text_table(), data_spec, TrainConfig(epochs=2, seed=0))


@functools.cache
def series_table() -> pd.DataFrame:
    return make_series()


@functools.cache
def forecast_run() -> TrainedModel:
    data_spec = DataSpec("sales", "forecast", ["sales"], kind="series",
                         options={"time_column": "date", "window": 28, "horizon": 7})
    return train_model(series_table(), data_spec, TrainConfig(epochs=2, seed=0))


@functools.cache
def anomaly_table() -> pd.DataFrame:
    return make_messy_table(300).drop(columns="target")


@functools.cache
def anomaly_run() -> TrainedModel:
    data_spec = DataSpec(None, "anomaly", ANOMALY_FEATURES)
    return train_model(anomaly_table(), data_spec, TrainConfig(epochs=3, seed=0))


def forecast_results(m: int = 5, horizon: int = 3) -> dict:
    """``m`` windows of stride 1 on a daily grid: window i forecasts days i+10 .. i+10+horizon-1."""
    days = pd.date_range("2024-01-01", periods=m + horizon + 10, freq="D")
    iso = [d.strftime("%Y-%m-%dT%H:%M:%S") for d in days]
    truth = np.arange(len(days), dtype=float)  # the value of day k is k
    times = [[iso[i + 10 + h] for h in range(horizon)] for i in range(m)]
    actual = [[truth[i + 10 + h] for h in range(horizon)] for i in range(m)]
    predicted = [[truth[i + 10 + h] + h + 1 for h in range(horizon)] for i in range(m)]  # step k is off by k
    return {"time_column": "date", "target": "sales", "horizon": horizon, "times": times, "actual": actual,
            "predicted": predicted,
            "baselines": {"last value": [[truth[i + 9]] * horizon for i in range(m)]},
            "history": {"times": iso[:10], "values": truth[:10].tolist()}}


def open_with_run(app, home, trained: TrainedModel, page: str, table: pd.DataFrame | None = None,
                  images: bytes | None = None):
    """Open ``page`` with ``trained`` as the workspace's run, as the Train page leaves it (saved, then
    restored by the page like after a refresh), and ``table`` or ``images`` (a zip) as the loaded data."""
    workspace = Workspace.open(None, home=home)
    if table is not None:
        workspace.save_table("data.csv", table.to_csv(index=False).encode())
    if images is not None:
        workspace.save_data("images.zip", images, kind="images")
    if table is not None or images is not None:
        workspace.save_state("data_spec", trained.data_spec.to_dict())
    workspace.save_state("run_id", workspace.save_run(trained, "test run"))
    return open_page(app, workspace, page)
