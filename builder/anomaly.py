"""Anomaly detection on tables: train an autoencoder, list the unusual rows, check it against labels.

The autoencoder squeezes each preprocessed row through a narrow bottleneck and rebuilds it; rows
like the training rows come back close to themselves, unusual rows (a value far off, columns that no
longer agree with each other, a category never seen) come back wrong. The per-row reconstruction
error is the ``anomaly_score``; rows above a threshold are ``is_anomaly``. No label is needed.

It is an ordinary run of the pipeline (``train_model`` with task "anomaly" and the "autoencoder"
family): the table ``Preprocessor`` scores rows and keeps the threshold, ``builder.results`` sets
the threshold at a quantile of the validation rows' errors, and ``results.rescore`` moves it. This
module adds what only anomaly detection needs on top:

* ``train_autoencoder``: the run from a table and its input columns, with a chosen quantile;
* ``flagged``: the most unusual rows of any table, with all their columns;
* ``evaluate_anomalies``: when some rows are known to be anomalies (labels never used to train),
  how well the scores find them, next to an IsolationForest on the same preprocessed rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, precision_score, recall_score, roc_auc_score

from builder.data.prepare import DataSpec
from builder.data.preprocess import ANOMALY_TASK, parse_boolean
from builder.data.split import split_indices
from builder.errors import DataError, SpecError
from builder.pipeline import train_model
from builder.results import DEFAULT_QUANTILE, rescore
from builder.spec import ModelSpec
from builder.templates import starter_spec
from builder.train import Callback, TrainConfig, TrainControl
from builder.trained import TrainedModel

logger = logging.getLogger(__name__)

AUTOENCODER_FAMILY = "autoencoder"
BASELINE_NAME = "IsolationForest"


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


def train_autoencoder(
    df: pd.DataFrame,
    features: Sequence[str],
    config: TrainConfig,
    callbacks: Iterable[Callback] = (),
    control: TrainControl | None = None,
    spec: ModelSpec | None = None,
    quantile: float = DEFAULT_QUANTILE,
) -> TrainedModel:
    """Train an autoencoder on the rows of ``df``; the threshold is the ``quantile`` of the
    validation rows' reconstruction errors.

    Raises:
        DataError: the columns cannot be used, or there are no validation rows.
        SpecError / ShapeError / TrainingError: an invalid setting or design, or a failed fit.
    """
    if not 0 < quantile < 1:
        raise SpecError(f"The threshold quantile must be between 0 and 1; got {quantile!r}. Try 0.99.")
    if config.val_fraction <= 0:
        raise SpecError("Anomaly detection sets its threshold on validation rows: set val_fraction "
                        "above 0 (0.15 is typical).")
    data_spec = DataSpec(target=None, task=ANOMALY_TASK, features=list(features))
    trained = train_model(df, data_spec, config, spec=spec, family=AUTOENCODER_FAMILY,
                          callbacks=tuple(callbacks), control=control)
    if quantile != DEFAULT_QUANTILE:
        rescore(trained, quantile)
    return trained


def split_positions(trained: TrainedModel, n_rows: int) -> dict[str, np.ndarray]:
    """Row positions of the training, validation and test rows of the table it was trained on.

    The split of a table without a target is random but seeded, so it is recomputed exactly.
    """
    config = trained.config
    train, val, test = split_indices(np.zeros(n_rows), ANOMALY_TASK, config.val_fraction,
                                     config.test_fraction, config.seed)
    return {"train": train, "val": val, "test": test, "all": np.arange(n_rows)}


def flagged(trained: TrainedModel, df: pd.DataFrame, top: int = 50, only_flagged: bool = True) -> pd.DataFrame:
    """The most unusual rows of ``df`` with their scores, highest score first.

    Args:
        trained: an anomaly model.
        df: raw rows.
        top: at most this many rows.
        only_flagged: keep only rows above the threshold (False: the ``top`` highest anyway).

    Returns:
        ``df``'s rows (all columns, original index) plus ``anomaly_score`` and ``is_anomaly``.
    """
    scores = trained.predict(df).set_axis(df.index)
    scored = pd.concat([df, scores], axis=1)
    if only_flagged:
        scored = scored[scored["is_anomaly"]]
    return scored.sort_values("anomaly_score", ascending=False, kind="stable").head(max(0, top))


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
    trained: TrainedModel, df: pd.DataFrame, labels: str | Sequence[Any] | np.ndarray,
    rows: str = "test", seed: int = 42,
) -> AnomalyEvaluation:
    """Compare the scores with known anomalies, and with an IsolationForest on the same rows.

    Args:
        trained: the anomaly model.
        df: the table it was trained on (the split is recomputed from it).
        labels: a column of ``df`` or values aligned with ``df``: yes/true/1 marks an anomaly;
            rows with no usable label are left out. The labels are never used for training.
        rows: "test" (rows unseen in training, the default), "val" or "all".
        seed: the IsolationForest's seed.

    Raises:
        DataError: not an anomaly model, unknown ``rows``, labels that do not fit ``df``, or no
            labelled rows.
    """
    if trained.task != ANOMALY_TASK:
        raise DataError("Known anomalies can only be checked against an anomaly model.")
    if rows not in ("test", "val", "all"):
        raise DataError(f"Evaluate on 'test', 'val' or 'all' rows; got {rows!r}.")
    if isinstance(labels, str):
        if labels not in df.columns:
            raise DataError(f"There is no column '{labels}'. The columns are: {', '.join(map(str, df.columns))}.")
        labels = df[labels]
    truth_all = parse_boolean(pd.Series(np.asarray(labels)))
    if len(truth_all) != len(df):
        raise DataError(f"There are {len(truth_all)} labels for {len(df)} rows; give one label per row.")
    positions = split_positions(trained, len(df))
    used = positions[rows][~np.isnan(truth_all[positions[rows]])]
    if len(used) == 0:
        raise DataError(f"None of the {rows} rows has a usable anomaly label (yes/no, true/false, 1/0).")
    truth = truth_all[used].astype(int)
    scored = trained.predict(df.iloc[used])
    transform = trained.preprocessor.transform
    quantile = trained.preprocessor.threshold_quantile or DEFAULT_QUANTILE
    base_scores, base_threshold = isolation_forest_scores(
        transform(df.iloc[positions["train"]]), transform(df.iloc[positions["val"]]),
        transform(df.iloc[used]), quantile, seed,
    )
    return AnomalyEvaluation(
        rows=rows, n_rows=len(used), n_anomalies=int(truth.sum()),
        model=_detection_metrics(truth, scored["anomaly_score"].to_numpy(), scored["is_anomaly"].to_numpy()),
        baseline=_detection_metrics(truth, base_scores, base_scores > base_threshold),
    )
