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
from typing import Any

import numpy as np
import pandas as pd

from builder.data.preprocess import ANOMALY_TASK, Preprocessor
from builder.data.sources import Prepared
from builder.evaluate import BaselineResult, compute_metrics, downsample, fit_baseline
from builder.jsonsafe import plain
from builder.pipeline import MAX_KEPT_TEST_ROWS, TrainedModel

log = logging.getLogger(__name__)

DEFAULT_QUANTILE = 0.99  # anomaly threshold: ~1% of rows like the training rows are flagged
MAX_KEPT_ERRORS = 20_000  # reconstruction errors kept per split for the distribution chart
MAX_FLAGGED_ROWS = 200  # the most unusual test rows kept for the Evaluate page
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
    for split, X in (("val", prepared.X_val), ("test", prepared.X_test)):
        if len(X) == 0:
            continue
        decoded = pre.decode_outputs(trained.predict_outputs(X))
        actual, predicted = prepared.true_targets(split), decoded["prediction"].to_numpy()
        trained.metrics[split] = compute_metrics(trained.task, actual, predicted,
                                                 proba=_probabilities(decoded), classes=pre.classes)
        if split == "test":
            test_decoded = decoded
            keep = downsample(len(actual), MAX_KEPT_TEST_ROWS)
            trained.test_results = {"actual": plain(actual[keep].tolist()),
                                    "predicted": plain(predicted[keep].tolist())}
    if test_decoded is not None and trained.kind == "images":
        trained.test_results["mistakes"] = _image_mistakes(prepared, test_decoded)
    elif test_decoded is not None and trained.kind == "text":
        trained.test_results["mistakes"] = _text_mistakes(prepared, test_decoded)
    if with_baseline and len(prepared.X_test):
        started = time.perf_counter()
        trained.baseline = _baseline(trained, prepared)
        log.info("baseline %s fitted in %.2f s", trained.baseline.name, time.perf_counter() - started)


def _baseline(trained: TrainedModel, prepared: Prepared) -> BaselineResult:
    pre = trained.preprocessor
    if trained.kind == "text":
        from builder.data.text import fit_text_baseline

        column = pre.text_column
        return fit_text_baseline(prepared.raw_train[column], prepared.raw_train[pre.target],
                                 prepared.raw_test[column], prepared.true_targets("test"),
                                 trained.task, classes=pre.classes)
    return fit_baseline(trained.task, prepared.X_train, prepared.y_train, prepared.X_test,
                        prepared.true_targets("test"), pre.decode_outputs, classes=pre.classes)


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
    from builder.data.timeseries import BASELINES

    pre = trained.preprocessor
    predictions = {}
    for split, X in (("val", prepared.X_val), ("test", prepared.X_test)):
        if len(X) == 0:
            continue
        predictions[split] = pre.inverse_target(trained.predict_outputs(X))  # (M, horizon)
        trained.metrics[split] = compute_metrics("forecast", prepared.true_targets(split), predictions[split])
    if "test" not in predictions:
        return
    baselines = {name: forecast(prepared, split="test") for name, forecast in BASELINES.items()} if with_baseline else {}
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
    reference = errors.get("val", errors.get("test"))
    if reference is None or not len(reference):
        from builder.errors import DataError

        raise DataError("Anomaly detection needs validation rows to set its threshold: set a "
                        "validation share above 0 (0.15 is typical).")
    pre.set_threshold(float(np.quantile(reference, DEFAULT_QUANTILE)), DEFAULT_QUANTILE)
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
    if len(test):
        trained.metrics["test"] = {"reconstruction_error": float(test.mean()),
                                   "flagged_share": float(np.mean(test > threshold))}
    return trained.metrics.get("test", {})
