"""Unit tests of the figure builders in pages/components/charts.py (no Streamlit run needed)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pandas as pd
import plotly.io as pio
import pytest

from builder.train import History
from pages.components import charts
from pages.components.ui import COLOURS
from tests import kind_fixtures


def values(array) -> np.ndarray:
    """A trace array as numbers, whether plotly kept it plain or typed ({"dtype", "bdata"})."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
    return np.asarray(array)


def traces(fig) -> dict[str, dict]:
    """Traces of a figure after a JSON round trip (what the browser gets), by name."""
    data = json.loads(pio.to_json(fig, validate=False))["data"]
    return {trace.get("name"): trace for trace in data}


def test_loss_figure_has_live_training_and_validation_traces_in_the_shared_colours():
    fig = charts.loss_figure([1, 2, 3], [0.9, 0.6, 0.5], [1.0, 0.7, 0.65],
                             batch_x=np.linspace(0.1, 3, 15), batch_loss=np.linspace(1, 0.5, 15), best_epoch=3)
    found = traces(fig)
    assert list(found) == [charts.LIVE_TRACE, "Training", "Validation"]
    assert len(values(found["Training"]["y"])) == 3
    np.testing.assert_allclose(values(found["Validation"]["y"]), [1.0, 0.7, 0.65])
    assert found["Training"]["line"]["color"] == COLOURS["train"]
    assert found["Validation"]["line"]["color"] == COLOURS["validation"]
    assert any(shape["x0"] == 3 for shape in fig.to_dict()["layout"]["shapes"])  # best epoch marked


def test_loss_figure_before_the_first_epoch_shows_the_running_loss_only():
    found = traces(charts.loss_figure([], [], [], batch_x=[0.2, 0.4], batch_loss=[1.2, 1.1]))
    assert len(values(found[charts.LIVE_TRACE]["y"])) == 2
    assert len(values(found["Training"]["y"])) == 0


def test_long_curves_are_thinned_keeping_both_ends():
    x = np.arange(50_000, dtype=np.float64)
    fig = charts.loss_figure([1], [1.0], [1.0], batch_x=x, batch_loss=x * 2)
    live = values(traces(fig)[charts.LIVE_TRACE]["x"])
    assert len(live) <= charts.MAX_LINE_POINTS
    assert live[0] == 0 and live[-1] == 49_999


def test_metric_figure_shows_percentages_for_shares():
    fig = charts.metric_figure([1, 2], {"Training": [0.5, 0.8], "Validation": [0.4, 0.75]}, "Accuracy", percent=True)
    found = traces(fig)
    np.testing.assert_allclose(values(found["Validation"]["y"]), [40, 75])
    assert fig.layout.yaxis.ticksuffix == "%"


@pytest.mark.parametrize("task, keys, names", [
    ("binary", {"accuracy": [0.6, 0.7], "val_accuracy": [0.5, 0.6]}, ["Training", "Validation"]),
    ("regression", {"val_rmse": [3.0, 2.0]}, ["Validation"]),
])
def test_history_figures_fit_the_task(task, keys, names):
    history = History(epoch=[1, 2], loss=[1.0, 0.5], val_loss=[1.1, 0.6], seconds=[0.1, 0.1], metrics=keys,
                      best_epoch=2)
    loss, metric = charts.history_figures(history, task)
    assert list(traces(loss)) == ["Training", "Validation"]
    assert list(traces(metric)) == names


def test_history_without_metrics_has_no_metric_figure():
    history = History(epoch=[], loss=[], val_loss=[], seconds=[])
    assert charts.history_figures(history, "binary")[1] is None


def test_confusion_figure_counts_and_shares():
    counts = np.array([[5, 1], [2, 7]])
    normalized = counts / counts.sum(axis=1, keepdims=True)
    fig = charts.confusion_figure(["no", "yes"], counts, normalized)
    heat = fig.data[0]
    assert heat.type == "heatmap" and list(heat.x) == ["no", "yes"]
    assert [list(row) for row in heat.text] == [["5", "1"], ["2", "7"]]
    shares = charts.confusion_figure(["no", "yes"], counts, normalized, show_shares=True).data[0]
    assert shares.text[1][1] == "78%"
    assert fig.layout.yaxis.autorange == "reversed"  # first class on top, like a table


def test_predicted_vs_actual_has_identity_line_and_is_downsampled():
    rng = np.random.default_rng(0)
    actual = rng.normal(size=20_000)
    fig = charts.predicted_vs_actual_figure(actual, actual + rng.normal(scale=0.1, size=20_000))
    found = traces(fig)
    assert set(found) == {"Test rows", "Perfect prediction"}
    assert len(values(found["Test rows"]["x"])) == charts.MAX_SCATTER_POINTS
    line = values(found["Perfect prediction"]["x"]), values(found["Perfect prediction"]["y"])
    np.testing.assert_allclose(line[0], line[1])


def test_residual_figures():
    residuals = np.array([-1.0, 0.5, 0.2, 0.0])
    hist = charts.residual_histogram(residuals, units="$")
    assert hist.data[0].type == "histogram" and "($)" in hist.layout.xaxis.title.text
    scatter = charts.residual_scatter(np.arange(4.0), residuals)
    assert len(values(traces(scatter)["Test rows"]["y"])) == 4


def test_waiting_figure_is_empty_axes_with_a_message():
    fig = charts.waiting_figure("Your loss curve appears here.")
    assert all(len(values(t["y"])) == 0 for t in traces(fig).values())
    assert fig.layout.annotations[0].text == "Your loss curve appears here."


def test_per_class_table_from_confusion_counts():
    table = charts.per_class_table(["a", "b", "c"], np.array([[4, 1, 0], [0, 5, 0], [2, 0, 0]]))
    assert list(table["Test rows"]) == [5, 5, 2]
    np.testing.assert_allclose(table["Precision"], [400 / 6, 500 / 6, 0.0])  # "c" is never predicted
    np.testing.assert_allclose(table["Recall"], [80, 100, 0])


# --- forecasts and anomaly scores ----------------------------------------------------------------------


def test_forecast_figure_shows_history_actual_network_and_one_naive_forecast_at_first():
    from builder.results import forecast_lines

    results = kind_fixtures.forecast_results()
    results["baselines"]["seasonal naive"] = results["baselines"]["last value"]
    fig = charts.forecast_figure(forecast_lines(results, step=1), "sales", shown_baseline="seasonal naive")
    found = traces(fig)
    assert list(found) == ["Before the test period", "Actual", "Network, 1 step ahead", "Last value", "Seasonal naive"]
    assert found["Network, 1 step ahead"]["line"]["color"] == COLOURS["model"]
    assert found["Last value"]["visible"] == "legendonly"  # one legend click away
    assert found["Seasonal naive"].get("visible", True) is True
    assert fig.layout.yaxis.title.text == "sales"


def test_future_forecast_joins_the_history_to_the_forecast():
    history = pd.DataFrame({"time": pd.date_range("2024-01-01", periods=5), "value": [1.0, 2, 3, 4, 5]})
    forecast = pd.DataFrame({"time": pd.date_range("2024-01-06", periods=2), "prediction": [6.0, 7.0]})
    found = traces(charts.future_forecast_figure(history, forecast, "sales"))
    assert list(found) == ["History", "Forecast"]
    np.testing.assert_allclose(values(found["Forecast"]["y"]), [5, 6, 7])  # starts at the last known point


def test_error_histogram_overlays_validation_and_test_with_the_threshold_line():
    fig = charts.error_histogram(np.linspace(0, 1, 50), np.linspace(0, 2, 30), threshold=0.9)
    found = traces(fig)
    assert list(found) == ["Validation rows", "Test rows"]
    assert fig.layout.barmode == "overlay"
    assert any(shape["x0"] == 0.9 for shape in fig.to_dict()["layout"]["shapes"])


def test_history_metric_figures_per_task():
    assert charts.metric_history_figure([1, 2], {"val_rmse": [3.0, 2.0]}, "forecast") is not None
    assert charts.metric_history_figure([1, 2], {"val_rmse": [3.0, 2.0]}, "anomaly") is None


def test_a_ten_class_confusion_matrix_stays_readable():
    from pages.components.charts import confusion_figure

    labels = [f"class {i}" for i in range(10)]
    counts = np.diag(np.full(10, 20))
    counts[0, 1] = 3
    fig = confusion_figure(labels, counts)
    heat = fig.data[0]
    assert heat.textfont.size < 14 and fig.layout.xaxis.tickangle == -40
    assert heat.text[0][2] == "" and heat.text[0][1] == "3" and heat.text[0][0] == "20"  # empty cells blank
    small = confusion_figure(["no", "yes"], np.array([[5, 0], [1, 4]]))
    assert small.data[0].text[0][1] == "0" and small.data[0].textfont.size == 14
