"""The whole journey as functions: data + design + settings -> a trained, evaluated model.

The app's background job and ``python -m builder train`` both call ``train_model``, so the two can
never drift apart. It works for every kind of data (a table, images, text, a time series; see
``builder.data.sources``) and every task (regression, classification, forecast, anomaly).
``TrainedModel`` (``builder.trained``) holds everything later steps need (evaluate, export,
predict) and nothing Streamlit-specific.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from builder.augment import image_augmenter
from builder.data import DataSpec
from builder.data.preprocess import ANOMALY_TASK
from builder.data.sources import DataShape, Prepared, data_shape, prepare_data
from builder.defaults import training_rows
from builder.errors import SpecError, TrainingError
from builder.model import build_model
from builder.results import evaluate_trained
from builder.spec import ModelSpec
from builder.templates import default_family, starter_spec, text_reading
from builder.train import Callback, FitError, TensorData, TrainConfig, TrainControl, fit
from builder.trained import TrainedModel
from builder.warm_start import warm_start_side_path

log = logging.getLogger(__name__)

# What fit() trains each task as: a forecast is regression with one output per future step, and an
# autoencoder is regression whose targets are its own inputs (its MSE is the reconstruction error).
FIT_TASKS = {"forecast": "regression", ANOMALY_TASK: "regression"}


def choose_spec(family: str | None, spec: ModelSpec | None, shape: DataShape) -> ModelSpec:
    """The design to train: the user's, or the starter design of ``family`` sized from the data."""
    if spec is not None:
        return spec
    family = family or default_family(shape.task, shape.kind, shape.n_rows)
    return starter_spec(family, shape.input_shape, shape.n_rows, vocab_size=shape.vocab_size,
                        season=shape.season, task=shape.task)


def design_reading(source: Any, data_spec: DataSpec, config: TrainConfig, spec: ModelSpec | None,
                   family: str | None, test_rows: np.ndarray | None = None) -> tuple[DataSpec, str | None]:
    """Text is read the way the design reads it: a bag of n-grams for EmbeddingBag (the MLP
    family), words in order for sequence models. Prepare the data with the spec this returns.

    Returns:
        ``(data_spec, family)``: ``data_spec`` with its text reading set (other kinds unchanged),
        and for text without a design or family, the default family for the number of training
        texts (so the design chosen after preparing reads the data prepared for it).
    """
    if data_spec.kind != "text":
        return data_spec, family
    if spec is None and family is None:
        rows = training_rows(len(source), config.val_fraction, config.test_fraction, test_rows)
        family = default_family(data_spec.task, "text", rows)
    return text_reading(data_spec, spec if spec is not None else family), family


def train_model(
    source: Any,
    data_spec: DataSpec,
    config: TrainConfig,
    spec: ModelSpec | None = None,
    family: str | None = None,
    callbacks: Sequence[Callback] = (),
    control: TrainControl | None = None,
    with_baseline: bool = True,
    test_rows: np.ndarray | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume_from: str | os.PathLike[str] | None = None,
    release_source: bool = False,
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
        test_rows: boolean mask of the rows (images) of ``source`` that are the test set, e.g. a
            test file appended to the training rows; ``None``: ``config.test_fraction`` of them.
        checkpoint_dir: write the training state here after every epoch (``train.fit``).
        resume_from: continue the interrupted run whose checkpoint folder this is (same
            ``source``, ``data_spec``, ``config`` and design; ``train.fit``).
        release_source: the caller hands ``source`` over (keeps no reference and will not use
            it again): a table's columns are freed while they are prepared, and the rest before
            training, so a big table never shares memory with its prepared arrays for long.

    Raises:
        DataError, SpecError, ShapeError, TrainingError: a problem the user can fix.
    """
    config.validate()
    if config.cv_folds and (checkpoint_dir is not None or resume_from is not None):
        raise TrainingError("Cross-validation runs cannot be checkpointed or resumed: "
                            "turn cross-validation off, or train the run from the start.")
    if config.cv_folds:  # k folds, then one refit on every non-test row (imported late: it uses us)
        from builder.crossval import cross_validate

        return cross_validate(source, data_spec, config, spec, family, callbacks, control,
                              test_rows=test_rows)[0]
    data_spec, prepared, shape, spec = prepare_for_design(source, data_spec, config, spec, family, test_rows,
                                                          release_source=release_source)
    # The raw rows are prepared now: a caller that handed the table over (the CLI) frees it here,
    # before training, rather than holding it next to the prepared arrays to the end.
    del source
    trained = fit_design(prepared, shape, data_spec, config, spec, callbacks, control,
                         checkpoint_dir=checkpoint_dir, resume_from=resume_from)
    evaluate_trained(trained, prepared, with_baseline=with_baseline)
    return trained


def prepare_for_design(
    source: Any, data_spec: DataSpec, config: TrainConfig, spec: ModelSpec | None, family: str | None,
    test_rows: np.ndarray | None = None, release_source: bool = False,
) -> tuple[DataSpec, Prepared, DataShape, ModelSpec]:
    """Split and preprocess the data the way the design reads it, and choose the design.

    Returns:
        ``(data_spec, prepared, shape, spec)``: the data spec with its text reading set, the
        prepared arrays, their shape, and ``spec`` or the starter design sized from the data.

    Raises:
        DataError, SpecError: a problem the user can fix.
    """
    data_spec, family = design_reading(source, data_spec, config, spec, family, test_rows)
    prepared = prepare_data(source, data_spec, config.val_fraction, config.test_fraction, config.seed,
                            test_rows=test_rows, release_source=release_source)
    shape = data_shape(prepared, data_spec)
    return data_spec, prepared, shape, choose_spec(family, spec, shape)


def fit_design(
    prepared: Prepared,
    shape: DataShape,
    data_spec: DataSpec,
    config: TrainConfig,
    spec: ModelSpec,
    callbacks: Sequence[Callback] = (),
    control: TrainControl | None = None,
    keep_last: bool = False,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume_from: str | os.PathLike[str] | None = None,
) -> TrainedModel:
    """Build ``spec`` for data prepared once and train it; not evaluated yet (``train_model`` and
    the search of ``builder.search`` both score it afterwards, the search on validation rows only).
    ``keep_last``: keep the last epoch, not the best (``train.fit``; the cross-validation refit).
    ``checkpoint_dir``, ``resume_from``: passed to ``train.fit``.

    Raises:
        SpecError, ShapeError, TrainingError: a problem the user can fix.
    """
    problems = spec.validate(data_spec.task, data_spec.kind)
    if problems:
        raise SpecError(problems[0].message)
    with shape.scope():
        model = build_model(spec, shape.input_shape, shape.n_outputs, seed=config.seed)
    if data_spec.kind == "series":  # a linear side path starts at its closed-form fit
        warm_start_side_path(model, prepared.X_train, prepared.y_train)
    result, warning = _fit(model, prepared, data_spec, config, callbacks, control, keep_last,
                           checkpoint_dir=checkpoint_dir, resume_from=resume_from)
    return TrainedModel(
        model=result.model, spec=spec, data_spec=data_spec, preprocessor=prepared.preprocessor,
        input_shape=shape.input_shape, config=config, history=result.history,
        device=result.device.label, seconds=result.seconds,
        info={"rows": {"train": len(prepared.X_train), "validation": len(prepared.X_val),
                       "test": len(prepared.X_test)},
              "n_features": int(np.prod(shape.input_shape)),
              "trained_at": time.strftime("%Y-%m-%d %H:%M:%S"),
              **({"warning": warning} if warning else {})},
    )


def _fit(model: nn.Module, prepared: Prepared, data_spec: DataSpec, config: TrainConfig,
         callbacks: Sequence[Callback], control: TrainControl | None, keep_last: bool = False,
         checkpoint_dir: str | os.PathLike[str] | None = None,
         resume_from: str | os.PathLike[str] | None = None) -> tuple[Any, str | None]:
    """Train; a run that fails after learning something keeps its best epoch, with a warning."""
    task = data_spec.task
    anomaly = task == ANOMALY_TASK
    augment = None
    if data_spec.kind == "images" and data_spec.option("augment", False):
        augment = image_augmenter(flip=data_spec.option("augment") == "flip")
    classes = [str(c) for c in prepared.preprocessor.classes] if task in ("binary", "multiclass") else None
    data = TensorData(
        prepared.X_train, prepared.X_train if anomaly else prepared.y_train,
        prepared.X_val, prepared.X_val if anomaly else prepared.y_val,
        y_scale=_y_scale(prepared.preprocessor, task), augment=augment, classes=classes,
    )
    try:
        return fit(model, data, FIT_TASKS.get(task, task), config, callbacks=callbacks, control=control,
                   keep_last=keep_last, checkpoint_dir=checkpoint_dir, resume_from=resume_from), None
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

