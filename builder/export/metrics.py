"""The bundle's ``metrics.json``: test scores, the baseline, what one input is, how training went."""

from __future__ import annotations

from typing import Any

import numpy as np

from builder.data.preprocess import ANOMALY_TASK
from builder.data.sources import kind_of
from builder.evaluate import METRICS, compare_to_baseline, verdict
from builder.jsonsafe import plain
from builder.trained import TrainedModel


def metrics_document(trained: TrainedModel, max_diff: float, parity_rows: int) -> dict[str, Any]:
    """``metrics.json``: what the model scores, against what, and how training went."""
    history = trained.history
    kind = kind_of(trained.preprocessor)
    test = dict(trained.metrics.get("test", {}))
    doc: dict[str, Any] = {
        "task": trained.task,
        "kind": kind,
        "target": trained.data_spec.target,
        "input": _input_facts(trained),
        "test": test,
        "metric_meanings": {name: METRICS[name].help for name in test if name in METRICS},
        "baseline": None,
        "history": {
            "epochs_run": history.epochs_run,
            "best_epoch": history.best_epoch,
            "best_val_loss": history.best_val_loss,
            "final_loss": history.loss[-1] if history.loss else None,
            "final_val_loss": history.val_loss[-1] if history.val_loss else None,
            "stopped_reason": history.stopped_reason,
            "seconds": trained.seconds,
            "device": trained.device,
            "config": trained.config.to_dict(),
        },
        "rows": dict(trained.info.get("rows", {})),
        "onnx_parity": {"max_abs_diff": max_diff, "rows": parity_rows},
    }
    if trained.metrics.get("val"):
        doc["validation"] = dict(trained.metrics["val"])
    if trained.baseline is not None:
        comparisons = compare_to_baseline(trained.task, test, trained.baseline.metrics)
        doc["baseline"] = {
            **trained.baseline.to_dict(),
            "comparison": [c.to_dict() for c in comparisons],
            "verdict": verdict(trained.task, comparisons),
        }
    if trained.task == "forecast":
        doc["forecast_baselines"] = dict(trained.info.get("forecast_baselines") or {})
    if trained.task == ANOMALY_TASK:
        doc["anomaly"] = _anomaly_facts(trained)
    if trained.info.get("cross_validation"):  # mean and spread per metric over the folds (builder.crossval)
        doc["cross_validation"] = dict(trained.info["cross_validation"])
    return plain(doc)


def _input_facts(trained: TrainedModel) -> dict[str, Any]:
    """What one input is, per kind of data (metrics.json's "input")."""
    pre = trained.preprocessor
    kind = kind_of(pre)
    if kind == "images":
        channels, height, width = pre.input_shape
        return {"what": "images", "height": height, "width": width, "channels": channels,
                "colour": "grayscale" if channels == 1 else "RGB", "formats": ["PNG", "JPEG", "BMP", "GIF"],
                "classes": plain(list(pre.classes))}
    if kind == "text":
        return {"what": "texts", "text_column": pre.text_column, "max_length": pre.max_length,
                "vocab_size": pre.vocab_size, "classes": plain(list(pre.classes))}
    if kind == "series":
        from builder.data.timeseries import describe_step

        return {"what": "a time series", "time_column": pre.time_column, "columns": pre.columns,
                "target": pre.target, "window": pre.window, "horizon": pre.horizon,
                "step": describe_step(pre.step), "fill": pre.to_dict().get("fill")}
    return {"what": "table rows", "columns": pre.kinds}


def _anomaly_facts(trained: TrainedModel) -> dict[str, Any]:
    pre = trained.preprocessor
    results = trained.test_results or {}
    percentiles = {}
    for split, key in (("validation", "val_errors"), ("test", "test_errors")):
        errors = np.asarray(results.get(key) or [], dtype=np.float64)
        if errors.size:
            percentiles[split] = {name: float(np.quantile(errors, q)) for name, q in PERCENTILES}
    return {
        "threshold": pre.threshold,
        "quantile": pre.threshold_quantile,
        "error_percentiles": percentiles,
        "anomaly_score": "mean squared difference between a row (after preprocessing: standardised "
                         "numbers, one-hot categories) and the model's rebuild of it",
        "is_anomaly": "true when anomaly_score is above the threshold",
    }


PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
