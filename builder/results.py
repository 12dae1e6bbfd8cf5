"""After training: score the model on its held-out data, fit the baseline, keep what the charts need.

``evaluate_trained`` fills a ``TrainedModel``'s ``metrics``, ``baseline`` and ``test_results`` for
every kind of data and task, so the Evaluate page, the CLI's JSON line and the model card all read
the same numbers:

* tables, text, images (regression and classification): the task's metrics on the validation and
  test rows in original units; the baseline is scikit-learn on the same split (ridge or logistic
  regression on the same inputs; TF-IDF + logistic regression for text). Images keep a few
  misclassified test images as small PNGs; text keeps misclassified examples.
* a forecast: RMSE, MAE and R² over every predicted step, next to three naive forecasts (last value,
  seasonal naive, lagged ridge); the best of them is the baseline to beat. The test windows, the
  network's and the baselines' forecasts and the history before them are kept for the chart.
* anomaly detection: the threshold is set at the 99th percentile of the validation rows'
  reconstruction errors; the errors' distribution and the most unusual test rows are kept.

Everything kept is plain JSON (lists, numbers, strings), because a saved run is JSON.
"""

from __future__ import annotations

import base64
import io
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from builder.baselines import FORECAST_BASELINES, BaselineResult, fit_baseline, fit_text_baseline
from builder.data.preprocess import ANOMALY_TASK, Preprocessor
from builder.data.sources import Prepared
from builder.evaluate import compute_metrics, downsample
from builder.jsonsafe import plain
from builder.trained import MAX_KEPT_TEST_ROWS, TrainedModel

log = logging.getLogger(__name__)

DEFAULT_QUANTILE = 0.99  # anomaly threshold: ~1% of rows like the training rows are flagged
MAX_KEPT_ERRORS = 20_000  # reconstruction errors kept per split for the distribution chart
MAX_FLAGGED_ROWS = 200  # the most unusual test rows kept for the Evaluate page
# Test rows of a table kept as read (inputs only), for explanations, what-if and segments: the
# first this many of the kept test rows, in the same order as ``actual`` and ``predicted``.
MAX_KEPT_RAW_ROWS = 2_000
MAX_MISTAKES = 24  # misclassified images (as thumbnails) or texts kept
MAX_TEXT_CHARS = 300  # of each misclassified text
MAX_FORECAST_WINDOWS = 2_000  # test windows kept for the forecast chart
HISTORY_WINDOWS = 4  # the chart shows this many windows of history before the test period


def evaluate_trained(trained: TrainedModel, prepared: Prepared, with_baseline: bool = True) -> None:
    """Fill ``trained.metrics``, ``trained.test_results`` and ``trained.baseline`` in place."""
    if trained.task == ANOMALY_TASK:
        _evaluate_anomaly(trained, prepared)
    elif trained.task == "forecast":
        _evaluate_forecast(trained, prepared, with_baseline)
    else:
        _evaluate_predictions(trained, prepared, with_baseline)


# --- regression and classification (tables, text, images) ---------------------------------------


def _evaluate_predictions(trained: TrainedModel, prepared: Prepared, with_baseline: bool) -> None:
    pre = trained.preprocessor
    test_decoded = None
    kept: dict[str, Any] = {}
    for split, X in (("val", prepared.X_val), ("test", prepared.X_test)):
        if len(X) == 0:
            continue
        decoded = pre.decode_outputs(trained.predict_outputs(X))
        actual, predicted = prepared.true_targets(split), decoded["prediction"].to_numpy()
        proba = _probabilities(decoded)
        trained.metrics[split] = compute_metrics(trained.task, actual, predicted, proba=proba, classes=pre.classes)
        keep = downsample(len(actual), MAX_KEPT_TEST_ROWS)
        rows = {"actual": plain(actual[keep].tolist()), "predicted": plain(predicted[keep].tolist())}
        if proba is not None:
            rows["probabilities"] = plain(np.round(proba[keep], 6).tolist())
        if split == "val":
            kept["val"] = rows  # what an operating point (a binary threshold) is chosen on
            continue
        test_decoded = decoded
        kept.update(rows)
        if trained.kind == "table":
            kept["rows"] = _raw_rows(prepared.raw_test, trained.data_spec.features, keep[:MAX_KEPT_RAW_ROWS])
    trained.test_results = kept if "actual" in kept else None
    if test_decoded is not None and trained.kind == "images":
        trained.test_results["mistakes"] = _image_mistakes(prepared, test_decoded)
    elif test_decoded is not None and trained.kind == "text":
        trained.test_results["mistakes"] = _text_mistakes(prepared, test_decoded)
    if with_baseline and len(prepared.X_test):
        started = time.perf_counter()
        trained.baseline = _baseline(trained, prepared)
        log.info("baseline %s fitted in %.2f s", trained.baseline.name, time.perf_counter() - started)


def _raw_rows(raw: pd.DataFrame, columns: list[str], positions: np.ndarray) -> dict[str, list]:
    """The input columns of the test rows at ``positions``, as read (missing values as None)."""
    picked = raw.iloc[positions]
    return {str(c): [_json_value(v) for v in plain(picked[c].tolist())] for c in columns if c in picked.columns}


def _json_value(value: Any) -> Any:
    """A cell as JSON: missing -> None, dates and other objects -> their text."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value if isinstance(value, str | int | float | bool) else str(value)


def _baseline(trained: TrainedModel, prepared: Prepared) -> BaselineResult:
    pre = trained.preprocessor
    if trained.kind == "text":
        column = pre.text_column
        return fit_text_baseline(prepared.raw_train[column], prepared.raw_train[pre.target],
                                 prepared.raw_test[column], prepared.true_targets("test"),
                                 trained.task, classes=pre.classes)
    baseline = fit_baseline(trained.task, prepared.X_train, prepared.y_train, prepared.X_test,
                            prepared.true_targets("test"), pre.decode_outputs, classes=pre.classes)
    if trained.kind == "images":
        baseline.name, baseline.description = IMAGE_BASELINE
    return baseline


IMAGE_BASELINE = (
    "Logistic regression on pixels (scikit-learn)",
    "A simple model that gives every pixel one weight per class, blind to shapes and edges; if "
    "the network cannot beat it, its convolutions are not paying off.",
)


def _probabilities(decoded: pd.DataFrame) -> np.ndarray | None:
    columns = [c for c in decoded.columns if c.startswith("probability_")]
    return decoded[columns].to_numpy() if columns else None


def _confidence(decoded: pd.DataFrame) -> np.ndarray:
    proba = _probabilities(decoded)
    return proba.max(axis=1) if proba is not None else np.ones(len(decoded))


def _wrong_rows(actual: np.ndarray, decoded: pd.DataFrame) -> np.ndarray:
    """Positions of misclassified rows, the most confidently wrong first."""
    wrong = np.flatnonzero(np.asarray([str(a) != str(p) for a, p in zip(actual, decoded["prediction"], strict=True)]))
    order = np.argsort(-_confidence(decoded)[wrong], kind="stable")
    return wrong[order][:MAX_MISTAKES]


def _image_mistakes(prepared: Prepared, decoded: pd.DataFrame) -> list[dict[str, Any]]:
    actual = prepared.true_targets("test")
    confidence = _confidence(decoded)
    mean = np.asarray(prepared.preprocessor.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(prepared.preprocessor.std, dtype=np.float32)[:, None, None]
    return [{"file": prepared.paths_test[i], "actual": str(actual[i]),
             "predicted": str(decoded["prediction"].iloc[i]), "confidence": float(confidence[i]),
             "image": _png_data_uri(prepared.X_test[i] * std + mean)}
            for i in _wrong_rows(actual, decoded)]


def _png_data_uri(pixels: np.ndarray) -> str:
    """A ``(C, H, W)`` image with values in [0, 1] as a ``data:image/png;base64,...`` string."""
    from PIL import Image

    array = (np.clip(pixels, 0.0, 1.0) * 255).round().astype(np.uint8)  # (C, H, W)
    image = Image.fromarray(array[0]) if array.shape[0] == 1 else Image.fromarray(array.transpose(1, 2, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _text_mistakes(prepared: Prepared, decoded: pd.DataFrame) -> list[dict[str, Any]]:
    actual = prepared.true_targets("test")
    confidence = _confidence(decoded)
    texts = prepared.raw_test[prepared.preprocessor.text_column]
    return [{"text": _short_text(texts.iloc[i]), "actual": plain(actual[i]),
             "predicted": plain(decoded["prediction"].iloc[i]), "confidence": float(confidence[i])}
            for i in _wrong_rows(actual, decoded)]


def _short_text(value: Any) -> str:
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS - 1] + "…"


# --- forecasts ----------------------------------------------------------------------------------


def _evaluate_forecast(trained: TrainedModel, prepared: Prepared, with_baseline: bool) -> None:
    pre = trained.preprocessor
    predictions = {}
    for split, X in (("val", prepared.X_val), ("test", prepared.X_test)):
        if len(X) == 0:
            continue
        predictions[split] = pre.decode_forecast(X, trained.predict_outputs(X))  # (M, horizon)
        trained.metrics[split] = compute_metrics("forecast", prepared.true_targets(split), predictions[split])
    if "test" not in predictions:
        return
    baselines = {name: forecast(prepared, split="test") for name, forecast in FORECAST_BASELINES.items()} if with_baseline else {}
    truth = prepared.true_targets("test")
    scores = {name: compute_metrics("forecast", truth, pred) for name, pred in baselines.items()}
    if scores:
        best = min(scores, key=lambda name: scores[name]["rmse"])
        trained.baseline = BaselineResult(
            name=f"{best.capitalize()} forecast",
            description=_FORECAST_BASELINE_TEXT[best],
            metrics=scores[best], predictions=pd.DataFrame(),
        )
        trained.info["forecast_baselines"] = scores
    keep = np.sort(downsample(len(truth), MAX_FORECAST_WINDOWS))
    first_end = int(prepared.end_test[0])
    history_start = max(0, first_end - HISTORY_WINDOWS * prepared.spec.window)
    trained.test_results = {
        "time_column": pre.time_column,
        "target": pre.target,
        "horizon": int(prepared.n_outputs),
        "times": _iso(prepared.times_test[keep]),  # (M, horizon) time of every predicted step
        "actual": truth[keep].tolist(),
        "predicted": predictions["test"][keep].tolist(),
        "baselines": {name: pred[keep].tolist() for name, pred in baselines.items()},
        "history": {"times": _iso(prepared.times[history_start:first_end + 1]),
                    "values": prepared.target_values[history_start:first_end + 1].tolist()},
    }


_FORECAST_BASELINE_TEXT = {
    "last value": "Every future step repeats the last value seen. Hard to beat on series that "
                  "wander without a pattern.",
    "seasonal naive": "Every future step repeats the value one season earlier (the same weekday "
                      "last week, the same month last year).",
    "lagged ridge": "A linear model (scikit-learn's RidgeCV) on the same window of past values: "
                    "the classic statistical forecast.",
}


def _iso(times: np.ndarray) -> list:
    return np.datetime_as_string(np.asarray(times, dtype="datetime64[s]"), unit="s").tolist()


# --- anomaly detection ----------------------------------------------------------------------------


def _evaluate_anomaly(trained: TrainedModel, prepared: Prepared) -> None:
    pre: Preprocessor = trained.preprocessor
    errors = {split: pre.reconstruction_errors(X, trained.predict_outputs(X))
              for split, X in (("val", prepared.X_val), ("test", prepared.X_test)) if len(X)}
    # Never empty: TrainConfig refuses a validation share of 0 and the split keeps at least one row.
    pre.set_threshold(float(np.quantile(errors["val"], DEFAULT_QUANTILE)), DEFAULT_QUANTILE)
    for split, values in errors.items():
        trained.metrics[split] = {"reconstruction_error": float(values.mean()),
                                  "flagged_share": float(np.mean(values > pre.threshold))}
    trained.test_results = {
        "threshold": pre.threshold,
        "quantile": DEFAULT_QUANTILE,
        "val_errors": _sample(errors.get("val")),
        "test_errors": _sample(errors.get("test")),
        "most_unusual": _most_unusual(prepared.raw_test, errors.get("test")),
    }


def _sample(values: np.ndarray | None) -> list[float]:
    if values is None:
        return []
    return values[np.sort(downsample(len(values), MAX_KEPT_ERRORS))].tolist()


def _most_unusual(rows: pd.DataFrame, scores: np.ndarray | None) -> list[dict[str, Any]]:
    """The test rows with the highest scores, all their columns plus ``anomaly_score``."""
    if scores is None or not len(scores):
        return []
    top = np.argsort(-scores, kind="stable")[:MAX_FLAGGED_ROWS]
    frame = rows.iloc[top].copy()
    frame.insert(0, "anomaly_score", scores[top])
    return plain(frame.astype(object).where(frame.notna(), None).to_dict(orient="records"))


def rescore(trained: TrainedModel, quantile: float) -> dict[str, float]:
    """Move the anomaly threshold to the ``quantile`` of the kept validation errors.

    The threshold travels with the model into its export bundle. Returns the new test metrics.

    Raises:
        DataError: not an anomaly model, or a quantile outside (0, 1).
    """
    from builder.errors import DataError

    if trained.task != ANOMALY_TASK:
        raise DataError("Only an anomaly model has a threshold to move.")
    if not 0 < quantile < 1:
        raise DataError(f"The share of normal rows must be between 0 and 1; got {quantile!r}. Try 0.99.")
    results = trained.test_results or {}
    val, test = np.asarray(results.get("val_errors") or []), np.asarray(results.get("test_errors") or [])
    if not len(val):
        raise DataError("This run kept no validation errors to set a threshold from. Train it again.")
    threshold = float(np.quantile(val, quantile))
    trained.preprocessor.set_threshold(threshold, quantile)
    results.update(threshold=threshold, quantile=float(quantile))
    for split, values in (("val", val), ("test", test)):
        if len(values):
            trained.metrics[split] = {"reconstruction_error": float(values.mean()),
                                      "flagged_share": float(np.mean(values > threshold))}
    return trained.metrics.get("test", {})


# --- what the Evaluate page draws, from a run's own ``test_results`` ------------------------------


def baseline_short_name(trained: TrainedModel) -> str | None:
    """How sentences name the run's baseline ("+6 points vs ..."); ``None``: the task's default."""
    if trained.baseline is None:
        return None
    if trained.task == "forecast":
        return trained.baseline.name[0].lower() + trained.baseline.name[1:]  # "seasonal naive forecast"
    return {"images": "logistic regression on pixels", "text": "TF-IDF + logistic regression"}.get(trained.kind)


@dataclass
class ForecastLines:
    """The lines of the forecast chart, all in original units, times as ISO strings.

    Attributes:
        history_times, history_values: the series just before the test period (about half as
            long as the test period, at least four horizons).
        actual_times, actual_values: what really happened in the test period (each time once).
        times, predicted: the network's forecasts shown (one step ahead along the test period,
            or the last window's full forecast).
        baselines: each naive forecast at the same ``times``.
        residuals: actual minus predicted at ``times``.
        label: what the forecast line is, e.g. "3 steps ahead".
    """

    history_times: list[str]
    history_values: np.ndarray
    actual_times: list[str]
    actual_values: np.ndarray
    times: list[str]
    predicted: np.ndarray
    baselines: dict[str, np.ndarray]
    residuals: np.ndarray
    label: str


def forecast_lines(results: dict[str, Any], step: int | None = 1) -> ForecastLines:
    """The forecast chart's lines from a forecast run's ``test_results``.

    Args:
        results: ``trained.test_results`` of a forecast run.
        step: which step ahead to follow along the test period (1 = the next step after each
            window); ``None`` shows the last test window's forecast of every step.

    Raises:
        DataError: ``step`` outside 1..horizon, or no test windows were kept.
    """
    from builder.errors import DataError

    horizon = int(results.get("horizon", 1))
    times = np.asarray(results.get("times") or [], dtype=object).reshape(-1, horizon)  # (M, H)
    if not len(times):
        raise DataError("This run kept no test windows to draw. Train it again to see the forecast chart.")
    actual = np.asarray(results["actual"], dtype=np.float64).reshape(-1, horizon)  # (M, H)
    predicted = np.asarray(results["predicted"], dtype=np.float64).reshape(-1, horizon)  # (M, H)
    baselines = {name: np.asarray(values, dtype=np.float64).reshape(-1, horizon)
                 for name, values in (results.get("baselines") or {}).items()}
    # Every test time once (windows overlap), in time order.
    seen: dict[str, float] = {}
    for t, v in zip(times.ravel(), actual.ravel(), strict=True):
        seen.setdefault(str(t), float(v))
    actual_times = sorted(seen)
    actual_values = np.array([seen[t] for t in actual_times])
    history = results.get("history") or {}
    # Enough history to see the pattern go into the test period, not so much that it crowds it out.
    shown = max(4 * horizon, len(actual_times) // 2, 14)
    history_times = [str(t) for t in history.get("times", [])][-shown:]
    history_values = np.asarray(history.get("values", []), dtype=np.float64)[-shown:]
    if step is None:
        pick: Any = (-1, slice(None))
        label = f"Last forecast ({horizon} steps)"
        start = str(times[-1, 0])
        # The test period just before the last forecast, for context.
        context = max(3 * horizon, 30)
        before = [i for i, t in enumerate(actual_times) if t < start][-context:]
        keep = before + [i for i, t in enumerate(actual_times) if t >= start]
        actual_times = [actual_times[i] for i in keep]
        actual_values = actual_values[keep]
        if before:
            history_times, history_values = [], np.zeros(0)
    else:
        if not 1 <= step <= horizon:
            raise DataError(f"Steps ahead must be between 1 and {horizon}; got {step!r}.")
        pick = (slice(None), step - 1)
        label = "1 step ahead" if step == 1 else f"{step} steps ahead"
    shown = predicted[pick]
    return ForecastLines(
        history_times=history_times, history_values=history_values,
        actual_times=actual_times, actual_values=actual_values,
        times=[str(t) for t in np.atleast_1d(times[pick])], predicted=np.atleast_1d(shown),
        baselines={name: np.atleast_1d(values[pick]) for name, values in baselines.items()},
        residuals=np.atleast_1d(actual[pick] - shown), label=label,
    )


@dataclass
class ForecastComparison:
    """The network against the naive forecasts: a table and a plain verdict.

    Attributes:
        table: one row per forecast (the network first, then the baselines from best to worst)
            with ``Forecast``, ``rmse``, ``mae``, ``r2``.
        verdict: one or two sentences: does the network beat the best simple forecast?
        beats_best: whether the network's RMSE is below every baseline's.
        best: the name of the best baseline (``None`` without baselines).
    """

    table: pd.DataFrame
    verdict: str
    beats_best: bool
    best: str | None


def forecast_comparison(network: dict[str, float], baselines: dict[str, dict[str, float]],
                        model_name: str = "The network") -> ForecastComparison:
    """Compare the network's test metrics with ``trained.info["forecast_baselines"]``.

    Args:
        network: ``trained.metrics["test"]`` of a forecast run (rmse, mae, r2).
        baselines: name -> metrics of each naive forecast.
        model_name: how the table names the network.
    """
    from builder.evaluate import format_metric

    columns = ["Forecast", "rmse", "mae", "r2"]
    rows = [{"Forecast": model_name, **{m: network.get(m) for m in columns[1:]}}]
    ranked = sorted(baselines, key=lambda name: baselines[name].get("rmse", np.inf))
    rows += [{"Forecast": name.capitalize(), **{m: baselines[name].get(m) for m in columns[1:]}} for name in ranked]
    table = pd.DataFrame(rows, columns=columns)
    if not ranked or network.get("rmse") is None:
        return ForecastComparison(table, "There are no simple forecasts to compare the network with.", False, None)
    best = ranked[0]
    model, base = float(network["rmse"]), float(baselines[best]["rmse"])
    numbers = f"typical error (RMSE) {format_metric('rmse', model)} against {format_metric('rmse', base)}"
    beaten = [name for name in ranked if float(baselines[name]["rmse"]) > model]
    if model < base:
        share = (base - model) / base if base else 0.0
        sentence = (f"The network beats every simple forecast, the best of which is {best}: {numbers} "
                    f"({share:.0%} lower). Its forecasts are worth using.")
        return ForecastComparison(table, sentence, True, best)
    sentence = (f"The network does not beat the {best} forecast: {numbers}. Use that simple forecast, "
                "or give the network more history (a longer window), more epochs or a smaller learning rate.")
    if beaten:
        sentence += f" It does beat {' and '.join(beaten)}."
    return ForecastComparison(table, sentence, False, best)


@dataclass
class AnomalyView:
    """What the anomaly section shows at the run's current threshold.

    Attributes:
        threshold: the reconstruction error above which a row is flagged.
        quantile: the share of normal (validation) rows below the threshold.
        val_errors, test_errors: the kept reconstruction errors.
        flagged: test rows above the threshold (of ``len(test_errors)``).
        rows: the flagged test rows kept with the run, highest score first (all columns plus
            ``anomaly_score`` first).
    """

    threshold: float
    quantile: float
    val_errors: np.ndarray
    test_errors: np.ndarray
    flagged: int
    rows: pd.DataFrame


def anomaly_view(results: dict[str, Any]) -> AnomalyView:
    """The anomaly section's numbers from an anomaly run's ``test_results`` (after any ``rescore``)."""
    threshold = float(results.get("threshold", np.inf))
    test = np.asarray(results.get("test_errors") or [], dtype=np.float64)
    rows = pd.DataFrame(results.get("most_unusual") or [])
    if len(rows):
        rows = rows[rows["anomaly_score"].astype(np.float64) > threshold]
        rows = rows.sort_values("anomaly_score", ascending=False, kind="stable").reset_index(drop=True)
    return AnomalyView(threshold, float(results.get("quantile", DEFAULT_QUANTILE)),
                       np.asarray(results.get("val_errors") or [], dtype=np.float64), test,
                       int(np.sum(test > threshold)), rows)
