"""The whole journey as functions: data + design + settings -> a trained, evaluated model.

The app's background job and ``python -m builder train`` both call ``train_model``, so the two can
never drift apart. It works for every kind of data (a table, images, text, a time series; see
``builder.data.sources``) and every task (regression, classification, forecast, anomaly).
``TrainedModel`` holds everything later steps need (evaluate, export, predict) and nothing
Streamlit-specific.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from builder.augment import image_augmenter
from builder.data import DataSpec
from builder.data.preprocess import ANOMALY_TASK
from builder.data.sources import DataShape, Prepared, data_shape, prepare_data, shape_of
from builder.errors import SpecError
from builder.evaluate import BaselineResult
from builder.model import build_model
from builder.spec import ModelSpec
from builder.templates import default_family, starter_spec
from builder.train import Callback, FitError, History, TensorData, TrainConfig, TrainControl, fit

log = logging.getLogger(__name__)

# What fit() trains each task as: a forecast is regression with one output per future step, and an
# autoencoder is regression whose targets are its own inputs (its MSE is the reconstruction error).
FIT_TASKS = {"forecast": "regression", ANOMALY_TASK: "regression"}

PREDICT_CHUNK_ROWS = 8192  # rows per forward pass when predicting, to bound memory on big files
# Test rows kept with a run for its charts (a seeded sample beyond this): the Evaluate page must
# not depend on the table loaded now, which may be another one.
MAX_KEPT_TEST_ROWS = 20_000


@dataclass
class TrainedModel:
    """A trained network with everything needed to evaluate, export and predict with it.

    Attributes:
        model: the network on the CPU in eval mode, with the best weights.
        spec: the design it was built from (hidden layers; the head is implied).
        data_spec: target, task and feature columns.
        preprocessor: the fitted preprocessing (JSON-serialisable; a table, image, text or series
            preprocessor, see ``builder.data.sources``).
        input_shape: per-sample input shape after preprocessing.
        config: the training settings.
        history: per-epoch curves, best epoch and why training stopped.
        metrics: ``{"val": {...}, "test": {...}}`` in original units.
        baseline: the scikit-learn baseline fitted on the same split (``None`` if not fitted).
        device: a label of the device it trained on, e.g. "CPU, 2 threads".
        seconds: wall time of the fit.
        info: small facts for the model card (rows per split, source file name...).
        test_results: what the Evaluate page draws, kept with the run (``builder.results``):
            ``actual``/``predicted`` for (at most ``MAX_KEPT_TEST_ROWS``) test rows in original
            units, plus per kind misclassified images or texts, forecast windows with the naive
            forecasts, or anomaly scores and the most unusual rows.
    """

    model: nn.Module
    spec: ModelSpec
    data_spec: DataSpec
    preprocessor: Any
    input_shape: tuple[int, ...]
    config: TrainConfig
    history: History
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    baseline: BaselineResult | None = None
    device: str = "CPU"
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    test_results: dict[str, list] | None = None

    @property
    def task(self) -> str:
        return self.data_spec.task

    @property
    def kind(self) -> str:
        """The kind of data: "table", "images", "text" or "series"."""
        return self.data_spec.kind

    @property
    def n_outputs(self) -> int:
        return int(self.preprocessor.n_outputs)

    @property
    def shape(self) -> DataShape:
        """Input and output shape (and the text vocabulary) for shapes, export and code."""
        return shape_of(self.preprocessor)

    def predict_outputs(self, X: np.ndarray) -> np.ndarray:
        """Raw network outputs ``(N, n_outputs)`` for preprocessed inputs ``X``, in chunks."""
        self.model.eval()
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(X), PREDICT_CHUNK_ROWS):
                batch = torch.from_numpy(np.ascontiguousarray(X[start:start + PREDICT_CHUNK_ROWS]))
                chunks.append(self.model(batch).numpy())  # (b, n_outputs)
        if not chunks:
            return np.zeros((0, self.n_outputs), dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)

    def predict(self, raw: Any, **options: Any) -> pd.DataFrame:
        """Predict raw data the way the training data came (``preprocessor.predict_with``).

        Args:
            raw: rows (same columns as training; the target may be absent); images (an
                ``ImageSet`` or a list of paths/bytes) for an image model; the history for a
                forecast.
            **options: ``files=[...]`` names images.

        Returns:
            One row per input row (per image; per future step for a forecast), in order:
            ``prediction`` plus ``probability_<class>`` columns for classification, the time of
            each step for a forecast, ``anomaly_score`` and ``is_anomaly`` for anomaly detection.

        Raises:
            DataError: a needed column is missing or the data cannot be read.
        """
        return self.preprocessor.predict_with(raw, self.predict_outputs, **options)


def choose_spec(family: str | None, spec: ModelSpec | None, shape: DataShape) -> ModelSpec:
    """The design to train: the user's, or the starter design of ``family`` sized from the data."""
    if spec is not None:
        return spec
    family = family or default_family(shape.task, shape.kind)
    return starter_spec(family, shape.input_shape, shape.n_rows, vocab_size=shape.vocab_size)


def train_model(
    source: Any,
    data_spec: DataSpec,
    config: TrainConfig,
    spec: ModelSpec | None = None,
    family: str | None = None,
    callbacks: Sequence[Callback] = (),
    control: TrainControl | None = None,
    with_baseline: bool = True,
) -> TrainedModel:
    """Prepare the data, build the design, train it, and evaluate it against a baseline.

    Args:
        source: a table (``pd.DataFrame``) for tables, text and series; an image zip (path,
            bytes, file-like) or ``ImageSet`` for images.
        data_spec: target, task, input columns, kind of data and its options.
        config: training settings (also the split fractions and the seed).
        spec: the design; ``None`` takes the starter design of ``family``.
        family: used only when ``spec`` is ``None``; ``None`` lets the data choose.
        callbacks: training event listeners (live chart, progress...).
        control: stop/pause flags shared with the caller.
        with_baseline: also fit the baseline (scikit-learn, or naive forecasts) on the same split.

    Raises:
        DataError, SpecError, ShapeError, TrainingError: a problem the user can fix.
    """
    from builder.results import evaluate_trained  # results imports this module's TrainedModel

    config.validate()
    prepared = prepare_data(source, data_spec, config.val_fraction, config.test_fraction, config.seed)
    shape = data_shape(prepared, data_spec)
    spec = choose_spec(family, spec, shape)
    problems = spec.validate(data_spec.task, data_spec.kind)
    if problems:
        raise SpecError(problems[0].message)
    with shape.scope():
        model = build_model(spec, shape.input_shape, shape.n_outputs, seed=config.seed)
    result, warning = _fit(model, prepared, data_spec, config, callbacks, control)
    trained = TrainedModel(
        model=result.model, spec=spec, data_spec=data_spec, preprocessor=prepared.preprocessor,
        input_shape=shape.input_shape, config=config, history=result.history,
        device=result.device.label, seconds=result.seconds,
        info={"rows": {"train": len(prepared.X_train), "validation": len(prepared.X_val),
                       "test": len(prepared.X_test)},
              "n_features": int(np.prod(shape.input_shape)),
              "trained_at": time.strftime("%Y-%m-%d %H:%M:%S"),
              **({"warning": warning} if warning else {})},
    )
    evaluate_trained(trained, prepared, with_baseline=with_baseline)
    return trained


def _fit(model: nn.Module, prepared: Prepared, data_spec: DataSpec, config: TrainConfig,
         callbacks: Sequence[Callback], control: TrainControl | None) -> tuple[Any, str | None]:
    """Train; a run that fails after learning something keeps its best epoch, with a warning."""
    task = data_spec.task
    anomaly = task == ANOMALY_TASK
    augment = None
    if data_spec.kind == "images" and data_spec.option("augment", False):
        augment = image_augmenter(flip=data_spec.option("augment") == "flip")
    data = TensorData(
        prepared.X_train, prepared.X_train if anomaly else prepared.y_train,
        prepared.X_val, prepared.X_val if anomaly else prepared.y_val,
        y_scale=_y_scale(prepared.preprocessor, task), augment=augment,
    )
    try:
        return fit(model, data, FIT_TASKS.get(task, task), config, callbacks=callbacks, control=control), None
    except FitError as exc:
        best = exc.result.history.best_epoch if exc.result is not None else None
        if best is None:
            raise  # nothing was learnt before the failure: there is no model to keep
        warning = f"{exc} The model of epoch {best}, the best before that, was kept."
        log.warning("%s", warning)
        return exc.result, warning


def _y_scale(preprocessor: Any, task: str) -> float:
    """Training units -> original units of a regression error (the live ``val_rmse``)."""
    return float(preprocessor.target_scale) if task in ("regression", "forecast") else 1.0

