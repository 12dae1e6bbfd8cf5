"""k-fold cross-validation for small data: a more reliable score than one split, then one final model.

One validation split of a few hundred rows gives a score that moves by several points with the
seed. Cross-validation trains ``k`` times instead, each time validating on a different part of the
rows, and reports each metric's mean and spread over the folds, for the network and for the
baseline on exactly the same folds. Then the final model learns from all those rows at once.

* The test rows are the ones a run without cross-validation would hold out (the same split, or
  the user's test file); they are never part of a fold, and the final model alone is scored on
  them, next to its baseline, as ``pipeline.train_model`` scores any run.
* Folds come from the other rows only: ``StratifiedKFold`` keeps each class's share in every fold,
  ``KFold`` for numbers and unusual rows, and a series uses expanding windows in time order (the
  idea of scikit-learn's ``TimeSeriesSplit``): fold ``i`` trains on the first blocks and validates
  on the next one, so no fold learns from the future it is checked on.
* Each fold is prepared on its own (``prepare_data`` with the fold's validation rows): scaling,
  categories and vocabularies are fitted on that fold's training rows only.
* The final model trains on every non-test row for the median of the folds' best epochs, without
  early stopping (no validation rows are left to stop on) and keeps its last epoch.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, TimeSeriesSplit

from builder.data import DataSpec
from builder.data import images as image_data
from builder.data.preprocess import ANOMALY_TASK
from builder.data.sources import Prepared, data_shape, prepare_data
from builder.data.timeseries import TimeSplit
from builder.errors import DataError
from builder.evaluate import HEADLINE_METRIC
from builder.pipeline import choose_spec, design_reading, fit_design
from builder.results import evaluate_trained
from builder.spec import ModelSpec
from builder.train import Callback, History, TrainConfig, TrainControl
from builder.trained import TrainedModel

log = logging.getLogger(__name__)

STRATIFIED, SHUFFLED, EXPANDING = "stratified k-fold", "k-fold", "expanding windows"


@dataclass
class FoldPlan:
    """Where each fold's rows are: ``prepare_data`` keyword arguments per fold and for the refit.

    Attributes:
        method: ``STRATIFIED``, ``SHUFFLED`` or ``EXPANDING``.
        folds: per fold, ``{"test_rows": mask, "val_rows": mask}`` (rows, images) or
            ``{"windows": TimeSplit}`` (a series).
        refit: the same for the final model: no validation rows, every non-test row trains.
        non_test: how many rows (windows) the folds share out.
    """

    method: str
    folds: list[dict[str, Any]]
    refit: dict[str, Any]
    non_test: int


@dataclass
class FoldScore:
    """One fold: its sizes, the network's best epoch, and both models' validation metrics."""

    number: int  # 1-based
    train: int  # rows (images, texts, windows) the fold trained on
    validation: int  # rows it was scored on
    best_epoch: int
    epochs_run: int
    network: dict[str, float]
    baseline: dict[str, float] = field(default_factory=dict)
    baseline_name: str | None = None


@dataclass
class CrossValidation:
    """The folds' scores and what they decided (the refit's epochs).

    ``to_dict`` is plain JSON: what ``trained.info["cross_validation"]``, the CLI, metrics.json,
    the model card and the pages show.
    """

    k: int
    method: str
    folds: list[FoldScore]
    refit_epochs: int | None = None
    baseline_name: str | None = None

    def spread(self, which: str) -> dict[str, dict[str, float]]:
        """``{metric: {"mean", "std"}}`` over the folds for ``"network"`` or ``"baseline"``.

        ``std`` is the population standard deviation over the folds (numpy's default, as
        scikit-learn's examples print ``scores.std()``); a metric missing from any fold is left out.
        """
        scores = [getattr(fold, which) for fold in self.folds]
        if not scores or not all(scores):
            return {}
        names = [name for name in scores[0] if all(name in s for s in scores)]
        return {name: {"mean": float(np.mean([s[name] for s in scores])),
                       "std": float(np.std([s[name] for s in scores]))} for name in names}

    def to_dict(self) -> dict[str, Any]:
        return {
            "folds": self.k,
            "completed": len(self.folds),
            "method": self.method,
            "network": self.spread("network"),
            "baseline": self.spread("baseline"),
            "baseline_name": self.baseline_name,
            "refit_epochs": self.refit_epochs,
            "per_fold": [dataclasses.asdict(fold) for fold in self.folds],
        }


def cross_validate(
    source: Any,
    data_spec: DataSpec,
    config: TrainConfig,
    spec: ModelSpec | None = None,
    family: str | None = None,
    callbacks: Sequence[Callback] = (),
    control: TrainControl | None = None,
    test_rows: np.ndarray | None = None,
) -> tuple[TrainedModel, CrossValidation]:
    """Score ``config.cv_folds`` folds of the non-test rows, then refit on all of them.

    Args:
        source, data_spec, spec, family, callbacks, control, test_rows: as for
            ``pipeline.train_model``. Every fold's and the refit's training events go to
            ``callbacks``, their ``info`` carrying ``stage`` ("Fold 2 of 5", "Final model"),
            ``fold`` (0 for the refit) and ``folds``.
        config: the settings of every fold; ``cv_folds`` is ``k``. The refit runs the median
            best epoch of the folds, early stopping off.

    Returns:
        The final model, scored on the test rows next to its baseline, with
        ``info["cross_validation"]``; and the ``CrossValidation``. A stop during the folds
        returns the fold model being trained (scored on the test rows too, with a warning).

    Raises:
        DataError: too few rows (windows) for ``k`` folds; anything ``train_model`` raises.
    """
    config.validate()
    k = int(config.cv_folds or 0)
    if k < 2:
        raise DataError("Cross-validation needs at least 2 folds ('cv_folds'); 5 is typical.")
    control = control or TrainControl()
    if data_spec.kind == "images" and not isinstance(source, image_data.ImageSet):
        source = image_data.read_image_zip(source)  # read the zip once, not once per fold
    fold_config = dataclasses.replace(config, cv_folds=None)
    data_spec, family = design_reading(source, data_spec, config, spec, family, test_rows)  # text: bag or words

    def prepare(**rows: Any) -> Prepared:
        return prepare_data(source, data_spec, config.val_fraction, config.test_fraction, config.seed, **rows)

    base = prepare(test_rows=test_rows)  # the usual split: its test rows stay the test rows
    spec = choose_spec(family, spec, data_shape(base, data_spec))
    plan = plan_folds(base, source, data_spec, k, config.seed)
    log.info("cross-validation: %d folds (%s) of %d non-test %s", k, plan.method, plan.non_test,
             "windows" if data_spec.kind == "series" else "rows")
    result = CrossValidation(k, plan.method, [])
    for number, rows in enumerate(plan.folds, start=1):
        prepared = prepare(**rows)
        events = [_Staged(c, f"Fold {number} of {k}", number, k) for c in callbacks]
        trained = fit_design(prepared, data_shape(prepared, data_spec), data_spec, fold_config, spec,
                             events, control)
        if control.stopped:  # keep what exists: this fold's best epoch, scored like any run
            evaluate_trained(trained, prepared)
            trained.info["warning"] = (f"Cross-validation was stopped in fold {number} of {k}: this is "
                                       f"that fold's model, trained on {len(prepared.X_train):,} of the "
                                       f"{plan.non_test:,} non-test rows.")
            trained.info["cross_validation"] = result.to_dict()
            return trained, result
        evaluate_trained(trained, _FoldValidation(prepared), with_baseline=True)
        score = _fold_score(number, trained, prepared)
        result.folds.append(score)
        log.info("%s", fold_line(score, k, data_spec.task))

    result.refit_epochs = refit_epochs([fold.best_epoch for fold in result.folds])
    final = refit(prepare(**plan.refit), data_spec, config, spec, result.refit_epochs, callbacks, control, k)
    result.baseline_name = final.baseline.name if final.baseline is not None else None
    final.info["cross_validation"] = result.to_dict()
    return final, result


def refit_epochs(best_epochs: Sequence[int]) -> int:
    """The final model's epochs: the median of the folds' best epochs (an even count rounds up)."""
    return max(1, math.ceil(float(np.median(best_epochs))))


def refit(prepared: Prepared, data_spec: DataSpec, config: TrainConfig, spec: ModelSpec, epochs: int,
          callbacks: Sequence[Callback], control: TrainControl, k: int) -> TrainedModel:
    """Train on every non-test row for exactly ``epochs`` epochs, keep the last, score on the test rows.

    No rows are left to validate on, so ``fit``'s per-epoch validation (the live chart's
    validation line) reads the training rows; with early stopping off and the last epoch kept,
    it decides nothing.
    """
    settings = dataclasses.replace(
        config, cv_folds=None, epochs=epochs, early_stopping_patience=None,
        warmup_epochs=min(config.warmup_epochs, max(0, epochs - 1)),  # a warm-up shorter than the run
    ).validate()
    events = [_Staged(c, "Final model", 0, k) for c in callbacks]
    trained = fit_design(_TrainingAsValidation(prepared), data_shape(prepared, data_spec), data_spec,
                         settings, spec, events, control, keep_last=True)
    trained.config = dataclasses.replace(config)  # the run's own settings, cv_folds included
    trained.info["rows"]["validation"] = 0
    anomaly = data_spec.task == ANOMALY_TASK  # its threshold is read from validation errors
    evaluate_trained(trained, _TrainingAsValidation(prepared) if anomaly else prepared)
    trained.metrics.pop("val", None)  # no validation rows: nothing honest to report there
    return trained


def fold_line(score: FoldScore, k: int, task: str) -> str:
    """One log line: "fold 2 of 5: accuracy 0.9565 (baseline 0.9783), best epoch 23 of 33"."""
    metric = HEADLINE_METRIC.get(task, next(iter(score.network), ""))
    value = score.network.get(metric)
    text = f"{metric} {value:.4g}" if value is not None else "no score"
    if metric in score.baseline:
        text += f" (baseline {score.baseline[metric]:.4g})"
    return (f"fold {score.number} of {k}: {text}, best epoch {score.best_epoch} of {score.epochs_run}, "
            f"{score.train:,} training and {score.validation:,} validation rows")


# --- the folds -----------------------------------------------------------------------------------


def plan_folds(base: Prepared, source: Any, data_spec: DataSpec, k: int, seed: int) -> FoldPlan:
    """The folds of the rows ``base`` did not hold out for testing.

    Raises:
        DataError: fewer non-test rows (windows) than ``k`` folds need.
    """
    if data_spec.kind == "series":
        return _window_folds(base, k)
    return _row_folds(base, source, data_spec, k, seed)


def _row_folds(base: Prepared, source: Any, data_spec: DataSpec, k: int, seed: int) -> FoldPlan:
    """Shuffled (stratified for classes) k-fold over the non-test rows, as boolean masks."""
    non_test = np.sort(np.concatenate([base.train_idx, base.val_idx]))  # positions in the source
    is_test = np.zeros(len(source), dtype=bool)
    is_test[base.test_idx] = True
    _check_enough(len(non_test), k, "rows")
    method, labels = SHUFFLED, None
    if data_spec.task in ("binary", "multiclass"):
        labels = _labels(source, data_spec)[non_test]
        smallest = pd.Series(labels).value_counts().min()
        if smallest >= k:
            method = STRATIFIED
        else:
            log.info("a class has only %d non-test rows, fewer than the %d folds: folds are drawn "
                     "at random instead of keeping class shares", smallest, k)
    splitter = (StratifiedKFold if method == STRATIFIED else KFold)(n_splits=k, shuffle=True, random_state=seed)
    folds = []
    for _, val in splitter.split(np.zeros(len(non_test)), labels):
        is_val = np.zeros(len(source), dtype=bool)
        is_val[non_test[val]] = True
        folds.append({"test_rows": is_test, "val_rows": is_val})
    refit = {"test_rows": is_test, "val_rows": np.zeros(len(source), dtype=bool)}
    return FoldPlan(method, folds, refit, len(non_test))


def _labels(source: Any, data_spec: DataSpec) -> np.ndarray:
    """Every row's (image's) class as text, to stratify on."""
    if data_spec.kind == "images":
        return np.asarray(source.labels, dtype=object).astype(str)
    return source[data_spec.target].astype(str).to_numpy()


def _window_folds(base: Any, k: int) -> FoldPlan:
    """Expanding windows in time order: fold i trains on blocks 1..i and validates on block i+1.

    A training window whose inputs or targets reach the first validation target is dropped (the
    horizon's gap, as ``split_by_time`` does between its blocks), so no fold learns its answers.
    """
    horizon = base.spec.horizon
    ends = base.spec.end_positions(base.profile.n_steps)  # every window's last input row
    test = np.flatnonzero(np.isin(ends, base.end_test))
    before = ends + horizon < ends[test[0]] + 1 if test.size else np.ones(len(ends), dtype=bool)
    non_test = np.flatnonzero(before)  # windows wholly before the first test target
    _check_enough(len(non_test), k + 1, "windows")  # k validation blocks plus a first training one
    folds = []
    for train, val in TimeSeriesSplit(n_splits=k).split(non_test):
        train, val = non_test[train], non_test[val]
        keep = ends[train] + horizon < ends[val[0]] + 1
        folds.append({"windows": TimeSplit(train[keep], val, test, int((~keep).sum()))})
    refit = {"windows": TimeSplit(non_test, np.empty(0, dtype=np.int64), test, 0)}
    return FoldPlan(EXPANDING, folds, refit, len(non_test))


def _check_enough(available: int, needed: int, noun: str) -> None:
    if available < needed:
        raise DataError(f"Cross-validation with these folds needs at least {needed} {noun} outside the "
                        f"test set; there are {available}. Use fewer folds ('cv_folds') or more data.")


def _fold_score(number: int, trained: TrainedModel, prepared: Prepared) -> FoldScore:
    history: History = trained.history
    baseline = trained.baseline
    return FoldScore(
        number=number, train=len(prepared.X_train), validation=len(prepared.X_val),
        best_epoch=int(history.best_epoch or history.epochs_run), epochs_run=history.epochs_run,
        network={name: float(v) for name, v in trained.metrics.get("test", {}).items()},
        baseline={name: float(v) for name, v in baseline.metrics.items()} if baseline else {},
        baseline_name=baseline.name if baseline else None,
    )


# --- views of prepared data ------------------------------------------------------------------------


class _FoldValidation:
    """A fold's prepared data whose "test" rows are its validation rows.

    ``evaluate_trained`` then scores the network and fits the baseline (on the fold's training
    rows) exactly as for a run, but on the fold's validation rows: the real test rows stay unseen.
    """

    def __init__(self, prepared: Prepared):
        self._prepared = prepared

    def __getattr__(self, name: str) -> Any:
        if name.endswith("_test"):
            return getattr(self._prepared, f"{name[:-len('_test')]}_val")
        return getattr(self._prepared, name)

    def true_targets(self, split: str) -> Any:
        return self._prepared.true_targets("val" if split == "test" else split)

    def ends(self, split: str) -> Any:  # a series' windows
        return self._prepared.ends("val" if split == "test" else split)


class _TrainingAsValidation:
    """The refit's prepared data (no validation rows) with its training rows standing in for them,
    so ``fit`` has rows to report a validation loss on; with ``keep_last`` it picks nothing."""

    def __init__(self, prepared: Prepared):
        self._prepared = prepared

    def __getattr__(self, name: str) -> Any:
        if name in ("X_val", "y_val"):
            return getattr(self._prepared, name.replace("_val", "_train"))
        return getattr(self._prepared, name)


class _Staged(Callback):
    """Forwards training events, adding which stage of the cross-validation they belong to."""

    def __init__(self, inner: Callback, stage: str, fold: int, folds: int):
        self.inner, self.stage, self.fold, self.folds = inner, stage, fold, folds

    def on_train_begin(self, info: dict[str, Any]) -> None:
        self.inner.on_train_begin({**info, "stage": self.stage, "fold": self.fold, "folds": self.folds})

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self.inner.on_epoch_end(epoch, logs)

    def on_batch_end(self, step: int, logs: dict[str, Any]) -> None:
        self.inner.on_batch_end(step, logs)

    def on_train_end(self, history: History) -> None:
        self.inner.on_train_end(history)
