"""What a finished run is: ``TrainedModel``, the network with everything needed to evaluate, export
and predict with it.

Its own module, so that ``pipeline`` (which makes one), ``results`` (which scores one) and
``export`` (which writes one) all import it from here and none of them imports another to get it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from builder.baselines import BaselineResult
from builder.data import DataSpec
from builder.data.sources import DataShape, shape_of
from builder.spec import ModelSpec
from builder.train import History, TrainConfig

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
            units, ``probabilities`` (one list per row, in ``preprocessor.classes`` order) for
            classes, the same three for the validation rows under ``val`` (where an operating
            point is chosen; never the test rows), for a table ``rows``: the input columns of the
            first ``results.MAX_KEPT_RAW_ROWS`` kept test rows as read (``{column: values}``,
            ``None`` for missing), plus per kind misclassified images or texts, forecast windows
            with the naive forecasts, or anomaly scores and the most unusual rows.
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
