"""Anomaly detection on tables: an autoencoder that learns what normal rows look like.

The model squeezes each preprocessed row through a narrow bottleneck and rebuilds it; rows like the
training rows come back close to themselves, unusual rows (a value far off, columns that no longer
agree with each other, a category never seen) come back wrong. The per-row reconstruction error is
the ``anomaly_score``; rows above a threshold are ``is_anomaly``. No label is needed to train.

Seams, kept small on purpose until the app and CLI wire this in:

- Family: ``spec.FAMILIES`` has no "autoencoder" family yet, so the design is an ordinary "mlp"
  spec (``AUTOENCODER_FAMILY``). When the family is added (tasks ``("anomaly",)``), change that
  constant; the layers and ``build_model`` stay as they are.
- Training: ``train.fit`` knows regression, binary and multiclass only. Reconstruction *is*
  regression with many outputs: the targets are the inputs themselves
  (``TensorData(X_train, X_train, X_val, X_val)``), and the regression loss, mean squared error
  over every output, is exactly the reconstruction loss. So ``train.py`` needs no change; its
  ``val_rmse`` reads as the reconstruction RMSE in standardised units.
- Data: ``prepare_tabular`` with ``target=None`` (task "anomaly") splits at random, fits the
  preprocessing on the training rows and reports ``n_outputs = n_features``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, precision_score, recall_score, roc_auc_score
from torch import nn

from builder.data.prepare import DataSpec, prepare_tabular
from builder.data.preprocess import Preprocessor, parse_boolean
from builder.errors import DataError, ShapeError, SpecError
from builder.model import build_model
from builder.spec import ModelSpec
from builder.templates import bottleneck_width, starter_spec
from builder.train import Callback, History, TensorData, TrainConfig, TrainControl, fit

logger = logging.getLogger(__name__)

ANOMALY_TASK = "anomaly"  # the DataSpec task of a table without a target
AUTOENCODER_FAMILY = "autoencoder"
TRAIN_TASK = "regression"  # fit() trains reconstruction as multi-output regression (MSE)
DEFAULT_QUANTILE = 0.99  # threshold = 99th percentile of validation errors: ~1% of normal rows flagged
SCORE_CHUNK_ROWS = 8192  # rows per forward pass when scoring, so a big table never fills memory
PERCENTILES = (50, 90, 95, 99)  # error percentiles reported for the model card


# ----------------------------------------------------------------------------------------------
# Design


def autoencoder_spec(n_features: int, n_rows: int) -> ModelSpec:
    """The starter autoencoder for ``n_features`` preprocessed inputs and ``n_rows`` training rows
    (``builder.templates``: encoder, bottleneck of ``bottleneck_width``, decoder).

    Raises:
        SpecError: ``n_features`` or ``n_rows`` is below 1.
    """
    if n_features < 1 or n_rows < 1:
        raise SpecError(
            f"An autoencoder needs at least one input feature and one row; got {n_features} "
            f"feature(s) and {n_rows} row(s)."
        )
    return starter_spec(AUTOENCODER_FAMILY, n_features, n_rows)


# ----------------------------------------------------------------------------------------------
# Scoring


@torch.inference_mode()
def reconstruction_errors(model: nn.Module, X: np.ndarray, chunk_rows: int = SCORE_CHUNK_ROWS) -> np.ndarray:
    """Mean squared reconstruction error of each row.

    Args:
        model: an autoencoder mapping ``(B, F)`` to ``(B, F)``.
        X: float32 ``(N, F)`` preprocessed rows.
        chunk_rows: rows per forward pass.

    Returns:
        float64 ``(N,)``: mean over the F features of ``(output - input) ** 2``.

    Raises:
        ShapeError: the model's output width differs from its input width.
    """
    model.eval()
    device = next(model.parameters(), torch.empty(0)).device
    X = np.ascontiguousarray(X, dtype=np.float32)
    errors = np.empty(len(X), dtype=np.float64)
    for start in range(0, len(X), chunk_rows):
        batch = torch.from_numpy(X[start:start + chunk_rows]).to(device)  # (B, F)
        out = model(batch)  # (B, F)
        if out.shape != batch.shape:
            raise ShapeError(
                f"An autoencoder must give back rows as wide as it takes ({batch.shape[1]} values); "
                f"this one gives {tuple(out.shape[1:])}. Let the builder size the output head."
            )
        errors[start:start + len(batch)] = ((out - batch) ** 2).mean(dim=1).double().cpu().numpy()
    return errors


def _check_quantile(quantile: float) -> float:
    if not isinstance(quantile, int | float) or not 0.0 < float(quantile) < 1.0:
        raise SpecError(
            f"The threshold quantile must be a number between 0 and 1 (exclusive); got {quantile!r}. "
            f"Try {DEFAULT_QUANTILE} (flag about 1% of normal rows)."
        )
    return float(quantile)


@dataclass
class AnomalyModel:
    """A trained autoencoder with everything needed to score new rows.

    Attributes:
        model: the network (CPU, eval mode).
        preprocessor: fitted on the training rows.
        features: the input columns, in order.
        val_errors: reconstruction errors of the validation rows (the distribution chart and the
            threshold come from these: rows the network never trained on).
        threshold: rows with ``anomaly_score > threshold`` are flagged.
        quantile: the share of validation rows at or below the threshold.
        spec: the design that was trained.
        history: the training history.
        train_idx, val_idx, test_idx: positions of each split's rows in the training table.
    """

    model: nn.Module
    preprocessor: Preprocessor
    features: list[str]
    val_errors: np.ndarray
    threshold: float = float("nan")
    quantile: float = DEFAULT_QUANTILE
    spec: ModelSpec | None = None
    history: History | None = None
    train_idx: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    val_idx: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    test_idx: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def __post_init__(self) -> None:
        if np.isnan(self.threshold):
            self.choose_threshold(self.quantile)

    def choose_threshold(self, quantile: float = DEFAULT_QUANTILE) -> float:
        """Set the threshold to the ``quantile`` of the validation errors and return it.

        The default, the 99th percentile, flags about 1% of rows that look like the training
        data: raise it to flag fewer (fewer false alarms, more misses), lower it to flag more.

        Raises:
            SpecError: ``quantile`` is not strictly between 0 and 1.
            DataError: there are no validation errors to take it from.
        """
        quantile = _check_quantile(quantile)
        if len(self.val_errors) == 0:
            raise DataError("There are no validation rows to set the anomaly threshold from.")
        self.quantile = quantile
        self.threshold = float(np.quantile(self.val_errors, quantile))
        return self.threshold

    def errors(self, df: pd.DataFrame) -> np.ndarray:
        """Reconstruction errors of raw rows (float64 ``(N,)``, input order)."""
        return reconstruction_errors(self.model, self.preprocessor.transform(df))

    def score(self, df: pd.DataFrame) -> pd.DataFrame:
        """Score raw rows: ``anomaly_score`` (reconstruction error) and ``is_anomaly``.

        Missing values and unseen categories are handled by the preprocessor (an unseen category
        counts as unusual, so it raises the score). Rows keep their input order and index.

        Raises:
            DataError: an input column is missing from ``df``.
        """
        scores = self.errors(df)
        return pd.DataFrame(
            {"anomaly_score": scores, "is_anomaly": scores > self.threshold}, index=df.index
        )

    def flagged(self, df: pd.DataFrame, top: int = 50, only_flagged: bool = True) -> pd.DataFrame:
        """The most unusual rows with their scores, highest score first.

        Args:
            df: raw rows.
            top: at most this many rows.
            only_flagged: keep only rows above the threshold (False: the ``top`` highest anyway).

        Returns:
            ``df``'s rows (all columns, original index) plus ``anomaly_score`` and ``is_anomaly``.
        """
        scored = pd.concat([df, self.score(df)], axis=1)
        if only_flagged:
            scored = scored[scored["is_anomaly"]]
        return scored.sort_values("anomaly_score", ascending=False, kind="stable").head(max(0, top))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON summary for a model card: threshold, quantile and the error distribution."""
        errors = self.val_errors
        percentiles = {f"p{p}": float(np.percentile(errors, p)) for p in PERCENTILES}
        percentiles["max"] = float(errors.max()) if len(errors) else float("nan")
        return {
            "task": ANOMALY_TASK,
            "features": list(self.features),
            "threshold": self.threshold,
            "quantile": self.quantile,
            "validation_rows": int(len(errors)),
            "validation_flagged_share": float(np.mean(errors > self.threshold)) if len(errors) else 0.0,
            "validation_error_percentiles": percentiles,
            "score": "mean squared reconstruction error per row (preprocessed, standardised units)",
        }


# ----------------------------------------------------------------------------------------------
# Training


def train_autoencoder(
    df: pd.DataFrame,
    features: Sequence[str],
    config: TrainConfig,
    callbacks: Iterable[Callback] = (),
    control: TrainControl | None = None,
    spec: ModelSpec | None = None,
    quantile: float = DEFAULT_QUANTILE,
) -> AnomalyModel:
    """Train an autoencoder on the rows of ``df`` and set its threshold from the validation rows.

    Args:
        df: the table as read; no target column is needed (others are ignored).
        features: the input columns.
        config: training settings; ``val_fraction``/``test_fraction``/``seed`` also drive the split.
        callbacks: receive the training events (as for any ``fit``).
        control: stop/pause flags.
        spec: the design (default: ``autoencoder_spec`` sized from the data).
        quantile: the threshold's quantile of validation errors.

    Returns:
        The trained ``AnomalyModel``.

    Raises:
        DataError: the columns cannot be used, or there are no validation rows.
        SpecError / ShapeError: an invalid setting or design.
        TrainingError / FitError: as raised by ``train.fit``.
    """
    _check_quantile(quantile)
    config.validate()
    data_spec = DataSpec(target=None, task=ANOMALY_TASK, features=list(features))
    prepared = prepare_tabular(df, data_spec, config.val_fraction, config.test_fraction, config.seed)
    if len(prepared.X_val) == 0:
        raise DataError(
            "Anomaly detection needs validation rows to set its threshold: set a validation share "
            "above 0 (0.15 is typical)."
        )
    n_features = prepared.input_shape[0]
    spec = spec or autoencoder_spec(n_features, len(prepared.X_train))
    model = build_model(spec, prepared.input_shape, prepared.n_outputs, seed=config.seed)
    # Targets are the inputs: regression's MSE is the reconstruction loss (module docstring).
    data = TensorData(prepared.X_train, prepared.X_train, prepared.X_val, prepared.X_val)
    result = fit(model, data, TRAIN_TASK, config, callbacks, control)
    val_errors = reconstruction_errors(result.model, prepared.X_val)
    anomaly = AnomalyModel(
        model=result.model, preprocessor=prepared.preprocessor, features=list(features),
        val_errors=val_errors, quantile=quantile, spec=spec, history=result.history,
        train_idx=prepared.train_idx, val_idx=prepared.val_idx, test_idx=prepared.test_idx,
    )
    logger.info(
        "Trained an autoencoder on %d rows (%d features, bottleneck %d); threshold %.4g at q=%g",
        len(prepared.X_train), n_features, bottleneck_width(n_features), anomaly.threshold, quantile,
    )
    return anomaly


# ----------------------------------------------------------------------------------------------
# Evaluation against known anomalies (optional labels), with an IsolationForest baseline

BASELINE_NAME = "IsolationForest"


@dataclass
class AnomalyEvaluation:
    """How well the scores find the rows known to be anomalies.

    ``model`` and ``baseline`` each hold ``precision`` and ``recall`` (of the flagged rows, at the
    threshold), ``roc_auc`` and ``average_precision`` (of the scores; ``None`` when the rows hold
    only one kind), and ``flagged`` (how many rows were flagged).
    """

    rows: str
    n_rows: int
    n_anomalies: int
    model: dict[str, Any]
    baseline: dict[str, Any]
    baseline_name: str = BASELINE_NAME

    @property
    def beats_baseline(self) -> bool | None:
        """True when the autoencoder's ROC AUC is at least the baseline's (None if undefined)."""
        ours, theirs = self.model["roc_auc"], self.baseline["roc_auc"]
        return None if ours is None or theirs is None else ours >= theirs

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows, "n_rows": self.n_rows, "n_anomalies": self.n_anomalies,
            "model": dict(self.model), "baseline": {"name": self.baseline_name, **self.baseline},
        }


def _detection_metrics(truth: np.ndarray, scores: np.ndarray, flags: np.ndarray) -> dict[str, Any]:
    both_kinds = 0 < truth.sum() < len(truth)
    return {
        "precision": float(precision_score(truth, flags, zero_division=0)),
        "recall": float(recall_score(truth, flags, zero_division=0)),
        "roc_auc": float(roc_auc_score(truth, scores)) if both_kinds else None,
        "average_precision": float(average_precision_score(truth, scores)) if both_kinds else None,
        "flagged": int(flags.sum()),
    }


def isolation_forest_scores(
    X_train: np.ndarray, X_val: np.ndarray, X_eval: np.ndarray, quantile: float, seed: int = 42
) -> tuple[np.ndarray, float]:
    """The baseline: an IsolationForest fitted on the same preprocessed training matrix.

    Returns:
        ``(scores, threshold)``: higher score = more unusual (``-score_samples``); the threshold is
        the same ``quantile`` of its validation scores, so both detectors follow one rule.
    """
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(X_train)
    val_scores = -forest.score_samples(X_val)
    return -forest.score_samples(X_eval), float(np.quantile(val_scores, quantile))


def evaluate_anomalies(
    anomaly: AnomalyModel, df: pd.DataFrame, labels: str | Sequence[Any] | np.ndarray,
    rows: str = "test", seed: int = 42,
) -> AnomalyEvaluation:
    """Compare the scores with known anomalies, and with an IsolationForest on the same rows.

    Args:
        anomaly: the trained model.
        df: the table it was trained on (the splits' row positions refer to it).
        labels: a column of ``df`` or values aligned with ``df``: yes/true/1 marks an anomaly;
            rows with no usable label are left out. The labels are never used for training.
        rows: "test" (rows unseen in training, the default), "val" or "all".
        seed: the IsolationForest's seed.

    Raises:
        DataError: unknown ``rows``, labels that do not fit ``df``, or no labelled rows.
    """
    positions = {"test": anomaly.test_idx, "val": anomaly.val_idx, "all": np.arange(len(df))}
    if rows not in positions:
        raise DataError(f"Evaluate on 'test', 'val' or 'all' rows; got {rows!r}.")
    if isinstance(labels, str):
        if labels not in df.columns:
            raise DataError(f"There is no column '{labels}'. The columns are: {', '.join(map(str, df.columns))}.")
        labels = df[labels]
    truth_all = parse_boolean(pd.Series(np.asarray(labels)))
    if len(truth_all) != len(df):
        raise DataError(f"There are {len(truth_all)} labels for {len(df)} rows; give one label per row.")
    used = positions[rows]
    if len(used) and used.max() >= len(df):
        raise DataError("This is not the table the model was trained on: pass that table, or rows='all'.")
    used = used[~np.isnan(truth_all[used])]
    if len(used) == 0:
        raise DataError(f"None of the {rows} rows has a usable anomaly label (yes/no, true/false, 1/0).")
    truth = truth_all[used].astype(int)
    scored = anomaly.score(df.iloc[used])
    transform = anomaly.preprocessor.transform
    base_scores, base_threshold = isolation_forest_scores(
        transform(df.iloc[anomaly.train_idx]), transform(df.iloc[anomaly.val_idx]),
        transform(df.iloc[used]), anomaly.quantile, seed,
    )
    return AnomalyEvaluation(
        rows=rows, n_rows=len(used), n_anomalies=int(truth.sum()),
        model=_detection_metrics(truth, scored["anomaly_score"].to_numpy(), scored["is_anomaly"].to_numpy()),
        baseline=_detection_metrics(truth, base_scores, base_scores > base_threshold),
    )
