"""The whole table journey as functions: data + design + settings -> a trained, evaluated model.

The app's background job and ``python -m builder train`` both call ``train_table``, so the two can
never drift apart. ``TrainedModel`` holds everything later steps need (evaluate, export, predict)
and nothing Streamlit-specific.
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

from builder.data import DataSpec, PreparedData, Preprocessor, prepare_tabular
from builder.errors import SpecError
from builder.evaluate import BaselineResult, compute_metrics, downsample, fit_baseline
from builder.model import build_model
from builder.spec import ModelSpec
from builder.templates import default_family, starter_spec
from builder.train import Callback, FitError, History, TensorData, TrainConfig, TrainControl, fit

log = logging.getLogger(__name__)

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
        preprocessor: the fitted preprocessing (JSON-serialisable).
        input_shape: per-sample input shape after preprocessing.
        config: the training settings.
        history: per-epoch curves, best epoch and why training stopped.
        metrics: ``{"val": {...}, "test": {...}}`` in original units.
        baseline: the scikit-learn baseline fitted on the same split (``None`` if not fitted).
        device: a label of the device it trained on, e.g. "CPU, 2 threads".
        seconds: wall time of the fit.
        info: small facts for the model card (rows per split, source file name...).
        test_results: ``{"actual": [...], "predicted": [...]}`` for (at most
            ``MAX_KEPT_TEST_ROWS``) test rows in original units, for the Evaluate page's charts.
    """

    model: nn.Module
    spec: ModelSpec
    data_spec: DataSpec
    preprocessor: Preprocessor
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
    def n_outputs(self) -> int:
        return len(self.preprocessor.classes) if self.task == "multiclass" else 1

    def predict_outputs(self, X: np.ndarray) -> np.ndarray:
        """Raw network outputs ``(N, n_outputs)`` for preprocessed rows ``X``, in chunks."""
        self.model.eval()
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(X), PREDICT_CHUNK_ROWS):
                batch = torch.from_numpy(np.ascontiguousarray(X[start:start + PREDICT_CHUNK_ROWS]))
                chunks.append(self.model(batch).numpy())  # (b, n_outputs)
        if not chunks:
            return np.zeros((0, self.n_outputs), dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        """Predict raw rows (same columns as training; the target may be absent).

        Returns:
            One row per input row, in order: ``prediction`` (label as written in the training
            data, or the number) plus ``probability_<class>`` columns for classification.

        Raises:
            DataError: a feature column is missing or the rows cannot be read.
        """
        X = self.preprocessor.transform(df)
        return self.preprocessor.decode_outputs(self.predict_outputs(X))


def choose_spec(family: str | None, spec: ModelSpec | None, prepared: PreparedData) -> ModelSpec:
    """The design to train: the user's, or the starter design of ``family`` sized from the data."""
    if spec is not None:
        return spec
    family = family or default_family(prepared.preprocessor.task)
    return starter_spec(family, n_features=prepared.input_shape[0], n_rows=len(prepared.X_train))


def train_table(
    df: pd.DataFrame,
    data_spec: DataSpec,
    config: TrainConfig,
    spec: ModelSpec | None = None,
    family: str | None = None,
    callbacks: Sequence[Callback] = (),
    control: TrainControl | None = None,
    with_baseline: bool = True,
) -> TrainedModel:
    """Prepare ``df``, build the design, train it, and evaluate it against a baseline.

    Args:
        df: the raw table, target column included.
        data_spec: target, task and feature columns.
        config: training settings (also the split fractions and the seed).
        spec: the design; ``None`` takes the starter design of ``family``.
        family: used only when ``spec`` is ``None``; ``None`` lets the task choose.
        callbacks: training event listeners (live chart, progress...).
        control: stop/pause flags shared with the caller.
        with_baseline: also fit the scikit-learn baseline on the same split.

    Raises:
        DataError, SpecError, ShapeError, TrainingError: a problem the user can fix.
    """
    config.validate()
    prepared = prepare_tabular(df, data_spec, config.val_fraction, config.test_fraction, config.seed)
    spec = choose_spec(family, spec, prepared)
    problems = spec.validate(data_spec.task)
    if problems:
        raise SpecError(problems[0].message)
    model = build_model(spec, prepared.input_shape, prepared.n_outputs, seed=config.seed)
    data = TensorData(prepared.X_train, prepared.y_train, prepared.X_val, prepared.y_val,
                      y_scale=prepared.preprocessor.target_scale)
    warning = None
    try:
        result = fit(model, data, data_spec.task, config, callbacks=callbacks, control=control)
    except FitError as exc:
        best = exc.result.history.best_epoch if exc.result is not None else None
        if best is None:
            raise  # nothing was learnt before the failure: there is no model to keep
        result = exc.result
        warning = f"{exc} The model of epoch {best}, the best before that, was kept."
        log.warning("%s", warning)
    trained = TrainedModel(
        model=result.model, spec=spec, data_spec=data_spec, preprocessor=prepared.preprocessor,
        input_shape=tuple(prepared.input_shape), config=config, history=result.history,
        device=result.device.label, seconds=result.seconds,
        info={"rows": {"train": len(prepared.X_train), "validation": len(prepared.X_val),
                       "test": len(prepared.X_test)},
              "n_features": int(prepared.input_shape[0]),
              "trained_at": time.strftime("%Y-%m-%d %H:%M:%S"),
              **({"warning": warning} if warning else {})},
    )
    trained.metrics = evaluate_splits(trained, prepared)
    if with_baseline:
        started = time.perf_counter()
        trained.baseline = fit_baseline(
            data_spec.task, prepared.X_train, prepared.y_train, prepared.X_test,
            prepared.true_targets("test"), prepared.preprocessor.decode_outputs,
            classes=prepared.preprocessor.classes,
        )
        log.info("baseline %s fitted in %.2f s", trained.baseline.name, time.perf_counter() - started)
    return trained


def evaluate_splits(trained: TrainedModel, prepared: PreparedData) -> dict[str, dict[str, float]]:
    """Metrics of the trained network on the validation and test rows, in original units."""
    out: dict[str, dict[str, float]] = {}
    for split, X in (("val", prepared.X_val), ("test", prepared.X_test)):
        if len(X) == 0:
            continue
        decoded = trained.preprocessor.decode_outputs(trained.predict_outputs(X))
        actual, predicted = prepared.true_targets(split), decoded["prediction"].to_numpy()
        out[split] = compute_metrics(trained.task, actual, predicted,
                                     proba=_probabilities(decoded), classes=trained.preprocessor.classes)
        if split == "test":
            keep = downsample(len(actual), MAX_KEPT_TEST_ROWS)
            trained.test_results = {"actual": actual[keep].tolist(), "predicted": predicted[keep].tolist()}
    return out


def _probabilities(decoded: pd.DataFrame) -> np.ndarray | None:
    columns = [c for c in decoded.columns if c.startswith("probability_")]
    return decoded[columns].to_numpy() if columns else None
