"""scikit-learn's view of a trained table network, so its inspection tools (importance, dependence) can use it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from builder.explain.explained import _Explained
from builder.explain.sentences import _CLASS_TASKS
from builder.trained import TrainedModel


class _TableModel(BaseEstimator):
    """scikit-learn's view of a trained table network, so its inspection tools can use it.

    Already trained: ``fit`` only records the classes. ``predict`` (and ``predict_proba``) read a
    DataFrame through ``features_of`` (DataFrame -> the network's input matrix) and give what
    ``trained.predict`` gives, as numbers: class indexes (and probabilities), the prediction in
    original units, or the anomaly score (``_Explained`` applies the same decoding, without
    building a labelled frame per call).
    """

    def __init__(self, trained: TrainedModel | None = None, features_of: Callable | None = None):
        self.trained = trained
        self.features_of = features_of

    def fit(self, X: pd.DataFrame, y: Any = None) -> _TableModel:
        self.n_features_in_ = X.shape[1]
        self.explained_ = _Explained(self.trained)
        if self.trained.task in _CLASS_TASKS:
            self.classes_ = np.arange(len(self.trained.preprocessor.classes))
        return self

    def _values(self, X: pd.DataFrame) -> np.ndarray:
        features = torch.from_numpy(np.ascontiguousarray(self.features_of(X)))
        with torch.inference_mode():
            return self.explained_(features).numpy().astype(np.float64)  # (N, K)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self._values(X)  # (N, k) class probabilities

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        values = self._values(X)
        if self.trained.task == "binary":  # the model's own decision threshold (0.5 unless chosen)
            threshold = getattr(self.trained.preprocessor, "decision_threshold", None) or 0.5
            return (values[:, 1] > threshold).astype(np.int64)
        return values.argmax(axis=1) if self.trained.task == "multiclass" else values[:, 0]


class _TableClassifier(ClassifierMixin, _TableModel):
    pass


class _TableRegressor(RegressorMixin, _TableModel):
    pass


def _estimator(trained: TrainedModel, features_of: Callable) -> _TableModel:
    kind = _TableClassifier if trained.task in _CLASS_TASKS else _TableRegressor
    return kind(trained, features_of)
