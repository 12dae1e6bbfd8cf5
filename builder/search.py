"""Find a better model: an optuna search over design sizes and training settings, on a time budget.

The search stays within the family of the design it starts from, so every trial is a plain
``ModelSpec`` the Build page can edit and the exporter can write. Trial 1 is that design with the
given settings, unchanged; later trials are proposed by optuna's TPE sampler and scaled from it
(``SearchSpace``): wider or narrower layers, more or fewer blocks, another dropout, learning rate,
batch size, weight decay, schedule and (for classes) label smoothing.

Each trial is scored on the validation rows only, by its best validation loss, the number early
stopping already picks the kept epoch by; a median pruner, fed that loss after every epoch, stops
trials that fall behind. The best trial replaces the starting design (trial 1) only when it is
clearly better on the validation rows: a paired comparison of the two models' per-row losses must
give a t statistic above ``sqrt(2 ln trials)`` (and at least ``MIN_T``), about the largest a
trial reaches by luck among that many. Among dozens of trials on a few hundred validation rows,
or a few dozen windows of a short series, the lowest loss is partly luck: on bench.quality a
winner picked by its loss alone scored worse on the test rows than trial 1 (air passengers: MAE
18.5 against 10.7, chosen on 18 validation windows). The data is prepared once and every trial trains on the same split. The
test rows stay hidden from the trials (``_ValidationRows``): the best trial alone is scored on them,
once, after the search, next to the baseline, exactly as ``pipeline.train_model`` scores a run.

The time budget covers preparing the data and every trial: no trial starts once it is spent, and
each trial's ``max_minutes`` is the time left, so a search ends about one batch after its budget,
plus the final scoring. The study lives in any database optuna accepts (a SQLite file by
default), so several machines can work on one study by naming the same ``storage``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import torch
import torch.nn.functional as F

from builder.data import DataSpec
from builder.data.sources import Prepared
from builder.errors import BuilderError, TrainingError
from builder.evaluate import HEADLINE_METRIC
from builder.pipeline import FIT_TASKS, fit_design, prepare_for_design
from builder.results import evaluate_trained
from builder.spec import LayerSpec, ModelSpec
from builder.train import Callback, TrainConfig, TrainControl
from builder.trained import TrainedModel

log = logging.getLogger(__name__)

MIN_TRIAL_SECONDS = 1.0  # no trial starts with less time left than this (trial 1 always gets it)
WIDTH_FACTORS = (0.5, 1.0, 2.0)  # layer sizes of a trial relative to the starting design
SIZE_PARAMS = ("out_features", "out_channels", "hidden_size", "embedding_dim", "dim_feedforward")
MIN_SIZE = 4  # no scaled layer narrower than this
MAX_DEPTH = 3  # blocks (Linear blocks, encoder layers, stacked recurrent layers) a trial may have
BATCH_SIZES = (16, 32, 64, 128, 256)
WEIGHT_DECAYS = (0.0, 1e-5, 1e-4, 1e-3, 1e-2)
SCHEDULES_TRIED = ("constant", "cosine", "one_cycle")
LABEL_SMOOTHINGS = (0.0, 0.05, 0.1)
STARTUP_TRIALS = 5  # random trials before TPE models the results (optuna's default is 10)
MIN_T = 2.0  # the least paired t statistic with which a trial replaces the starting design

COMPLETE, PRUNED, FAILED = "complete", "pruned", "failed"


@dataclass
class TrialRecord:
    """One trial as the live table and the CLI's log show it.

    Attributes:
        number: 1-based number in the study (trial 1 is the starting design and settings).
        params: what optuna chose (``SearchSpace`` names: width, depth, dropout, lr, ...).
        state: ``"complete"``, ``"pruned"`` (stopped early for falling behind) or ``"failed"``.
        val_loss: best validation loss (the objective); ``None`` when no epoch finished.
        validation: the task's metrics on the validation rows (accuracy, rmse, ...).
        epochs: epochs run.
        seconds: wall time of the trial, scoring included.
        note: why it failed.
    """

    number: int
    params: dict[str, Any]
    state: str
    val_loss: float | None = None
    validation: dict[str, float] = field(default_factory=dict)
    epochs: int = 0
    seconds: float = 0.0
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class SearchResult:
    """What a search did: every trial of this search, the best one and where the study lives."""

    trials: list[TrialRecord]
    best_number: int
    best_params: dict[str, Any]
    best_validation: dict[str, float]  # the best trial's validation metrics plus its "loss"
    study_name: str
    storage: str

    def summary(self) -> dict[str, Any]:
        """The ``"search"`` object of the CLI's JSON line."""
        return {"trials": len(self.trials), "best_trial": self.best_number, "best_params": self.best_params,
                "best_validation": self.best_validation, "study": self.study_name}


class SearchSpace:
    """The designs and settings a search may try, scaled from a starting design and settings."""

    def __init__(self, spec: ModelSpec, config: TrainConfig, task: str):
        self.spec, self.config, self.task = spec, config, task
        self.depth = _depth(spec)
        self.dropout = _dropout(spec)
        self.sized = any(k in layer.params for layer in spec.layers for k in SIZE_PARAMS)

    def defaults(self) -> dict[str, Any]:
        """The parameters of the starting design and settings: trial 1."""
        config = self.config
        values: dict[str, Any] = {}
        if self.sized:
            values["width"] = 1.0
        if self.depth is not None:
            values["depth"] = self.depth
        if self.dropout is not None:
            values["dropout"] = self.dropout
        values.update(lr=config.lr, batch_size=config.batch_size, weight_decay=config.weight_decay,
                      schedule=config.schedule)
        if self.task in ("binary", "multiclass"):
            values["label_smoothing"] = config.label_smoothing
        return values

    def suggest(self, trial: optuna.Trial) -> tuple[ModelSpec, TrainConfig]:
        """Ask ``trial`` for every parameter; return the design and settings it stands for."""
        config = self.config
        width = trial.suggest_categorical("width", WIDTH_FACTORS) if self.sized else 1.0
        depth = (trial.suggest_int("depth", 1, max(MAX_DEPTH, self.depth))
                 if self.depth is not None else None)
        dropout = (trial.suggest_float("dropout", 0.0, max(0.5, self.dropout))
                   if self.dropout is not None else None)
        settings: dict[str, Any] = {
            "lr": trial.suggest_float("lr", config.lr / 10, min(10.0, config.lr * 10), log=True),
            "batch_size": trial.suggest_categorical("batch_size", _with(BATCH_SIZES, config.batch_size)),
            "weight_decay": trial.suggest_categorical("weight_decay", _with(WEIGHT_DECAYS, config.weight_decay)),
            "schedule": trial.suggest_categorical("schedule", _with(SCHEDULES_TRIED, config.schedule)),
        }
        if self.task in ("binary", "multiclass"):
            settings["label_smoothing"] = trial.suggest_categorical(
                "label_smoothing", _with(LABEL_SMOOTHINGS, config.label_smoothing))
        return self.design(width, depth, dropout), dataclasses.replace(config, **settings)

    def design(self, width: float, depth: int | None, dropout: float | None) -> ModelSpec:
        """The starting design with its sizes times ``width``, ``depth`` blocks and ``dropout``;
        parameters equal to the starting design's leave it unchanged."""
        spec = self.spec
        layers = [LayerSpec(layer.type, dict(layer.params)) for layer in spec.layers]
        if depth is not None and depth != self.depth:
            layers = _with_depth(spec.family, layers, depth)
        if width != 1.0:
            keep = _code_layer(spec.family, layers)  # an autoencoder's code width is its job
            for index, layer in enumerate(layers):
                for name in SIZE_PARAMS:
                    if name in layer.params and index != keep:
                        layer.params[name] = max(MIN_SIZE, int(round(layer.params[name] * width)))
        if dropout is not None and dropout != self.dropout:
            for layer in layers:
                if layer.type.startswith("Dropout"):
                    layer.params["p"] = round(dropout, 3)
                elif layer.type == "TransformerEncoderLayer":
                    layer.params["dropout"] = round(dropout, 3)
        return ModelSpec(spec.family, layers, spec.init, spec.version)


def _with(choices: Sequence[Any], value: Any) -> list[Any]:
    """``choices`` plus the starting value, in order (trial 1 must be one of the choices)."""
    return sorted({*choices, value}, key=lambda v: (isinstance(v, str), v))


def _blocks(layers: list[LayerSpec]) -> tuple[list[LayerSpec], list[list[LayerSpec]]]:
    """An MLP's layers as (layers before the first Linear, [Linear + what follows it, ...])."""
    starts = [i for i, layer in enumerate(layers) if layer.type == "Linear"]
    if not starts:
        return layers, []
    bounds = [*starts, len(layers)]
    return layers[:starts[0]], [layers[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def _depth(spec: ModelSpec) -> int | None:
    """How many repeatable blocks the design has, or ``None`` when its family has none to vary."""
    layers = spec.layers
    if spec.family == "mlp":
        return len(_blocks(layers)[1]) or None
    if spec.family == "transformer":
        return sum(layer.type == "TransformerEncoderLayer" for layer in layers) or None
    recurrent = [layer for layer in layers if layer.type in ("RNN", "LSTM", "GRU")]
    if spec.family in ("rnn", "lstm", "gru") and len(recurrent) == 1:
        return int(recurrent[0].params.get("num_layers", 1))
    return None


def _with_depth(family: str, layers: list[LayerSpec], depth: int) -> list[LayerSpec]:
    """``layers`` with ``depth`` blocks: the last block repeated (an MLP's at half the width) or
    the last ones dropped."""
    copy = lambda layer: LayerSpec(layer.type, dict(layer.params))  # noqa: E731
    if family == "mlp":
        head, blocks = _blocks(layers)
        while len(blocks) < depth:
            block = [copy(layer) for layer in blocks[-1]]
            block[0].params["out_features"] = max(MIN_SIZE, int(block[0].params.get("out_features", 32)) // 2)
            blocks.append(block)
        return head + [layer for block in blocks[:depth] for layer in block]
    if family == "transformer":
        at = [i for i, layer in enumerate(layers) if layer.type == "TransformerEncoderLayer"]
        encoders = [layers[i] for i in at] + [copy(layers[at[-1]]) for _ in range(depth - len(at))]
        return layers[:at[0]] + encoders[:depth] + layers[at[-1] + 1:]
    for layer in layers:  # recurrent: one layer with num_layers stacked
        if layer.type in ("RNN", "LSTM", "GRU"):
            layer.params["num_layers"] = depth
    return layers


def _dropout(spec: ModelSpec) -> float | None:
    """The design's first dropout rate, or ``None`` when it has no dropout to vary."""
    for layer in spec.layers:
        if layer.type.startswith("Dropout"):
            return float(layer.params.get("p", 0.5))
        if layer.type == "TransformerEncoderLayer":
            return float(layer.params.get("dropout", 0.1))
    return None


def _code_layer(family: str, layers: list[LayerSpec]) -> int | None:
    """An autoencoder's code (its narrowest Linear): scaling it would change what it detects."""
    if family != "autoencoder":
        return None
    linear = [(layer.params.get("out_features", math.inf), i) for i, layer in enumerate(layers) if layer.type == "Linear"]
    return min(linear)[1] if linear else None


class _ValidationRows:
    """``prepared`` with its test rows hidden: what a trial is scored on.

    Every ``*_test`` array, table or list reads as empty, and the test targets cannot be asked for,
    so scoring a trial (``results.evaluate_trained``) fills validation metrics only.
    """

    def __init__(self, prepared: Prepared):
        self._prepared = prepared

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._prepared, name)
        if name.endswith("_test") and value is not None:
            return value[:0]  # arrays, tables and lists alike: no test row
        return value

    def true_targets(self, split: str) -> Any:
        if split == "test":
            raise TrainingError("A search trial asked for the test rows; they are kept for the final score.")
        return self._prepared.true_targets(split)


class _TrialControl(TrainControl):
    """One trial's stop flag (the pruner sets it) that also follows the search's own stop and pause."""

    def __init__(self, outer: TrainControl):
        super().__init__()
        self.outer = outer

    @property
    def stopped(self) -> bool:
        return TrainControl.stopped.fget(self) or self.outer.stopped

    @property
    def paused(self) -> bool:
        return self.outer.paused

    def wait_if_paused(self, timeout: float | None = None) -> bool:
        return self.outer.wait_if_paused(timeout)


class _Pruning(Callback):
    """Reports each epoch's validation loss to optuna and stops the trial when it falls behind."""

    def __init__(self, trial: optuna.Trial, control: _TrialControl):
        self.trial, self.control = trial, control
        self.pruned = False

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self.trial.report(float(logs["val_loss"]), epoch)
        if not self.pruned and self.trial.should_prune():
            self.pruned = True
            self.control.stop()


def study_name(data_spec: DataSpec, spec: ModelSpec, config: TrainConfig, rows: dict[str, int]) -> str:
    """A name that is the same for the same data, design and settings: machines that run the same
    command with the same ``storage`` join one study."""
    settings = {k: v for k, v in config.to_dict().items() if k not in ("device", "max_minutes")}
    key = json.dumps([data_spec.to_dict(), spec.to_dict(), settings, rows], sort_keys=True, default=str)
    return f"{spec.family}-{data_spec.task}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def search(
    source: Any,
    data_spec: DataSpec,
    config: TrainConfig,
    budget_minutes: float,
    spec: ModelSpec | None = None,
    family: str | None = None,
    storage: str | None = None,
    name: str | None = None,
    callbacks: Sequence[Callback] = (),
    control: TrainControl | None = None,
    on_trial: Callable[[TrialRecord, TrainedModel | None], None] | None = None,
    started: float | None = None,
    test_rows: Any = None,
) -> tuple[TrainedModel, SearchResult]:
    """Spend ``budget_minutes`` on trials of designs and settings; return the best, fully scored.

    Args:
        source, data_spec, spec, family, test_rows: as for ``pipeline.train_model``; ``spec``
            (or the starter design of ``family``) and ``config`` are trial 1.
        config: the starting settings; epochs, patience, optimizer, split and seed stay fixed.
        budget_minutes: time for preparing the data and all trials (may be fractional).
        storage: an optuna database URL (``sqlite:///search.db``, ``postgresql://...``);
            ``None`` keeps the study in memory.
        name: the study's name; ``None``: ``study_name(...)``, the same for the same command,
            so a shared ``storage`` lets several machines work on one study.
        callbacks: epoch and batch events of every trial.
        control: stops the search after the current batch; the best trial so far is kept.
        on_trial: called after each trial with its record and model (``None`` if it failed);
            the model is scored on validation rows only.
        started: ``time.monotonic()`` when the budget began (default: now).

    Returns:
        The best trial's model, scored on the test rows and against the baseline, and the search.

    Raises:
        DataError, SpecError: the data or the starting design cannot be used.
        TrainingError: no trial finished an epoch within the budget (the message says why).
    """
    deadline = (time.monotonic() if started is None else started) + 60 * budget_minutes
    config.validate()
    control = control or TrainControl()
    data_spec, prepared, shape, base = prepare_for_design(source, data_spec, config, spec, family, test_rows)
    space = SearchSpace(base, config, data_spec.task)
    rows = {"train": len(prepared.X_train), "val": len(prepared.X_val), "test": len(prepared.X_test)}
    name = name or study_name(data_spec, base, config, rows)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own one line per trial says it all
    study = optuna.create_study(
        storage=storage, study_name=name, load_if_exists=True, direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=STARTUP_TRIALS),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS, n_warmup_steps=5),
    )
    starting_params = space.defaults()
    study.enqueue_trial(starting_params, skip_if_exists=True)
    validation_rows = _ValidationRows(prepared)
    records: list[TrialRecord] = []
    best: tuple[float, TrainedModel, TrialRecord] | None = None
    starting: tuple[float, TrainedModel, TrialRecord] | None = None  # trial 1, when it completed
    first_error: BuilderError | None = None
    while not control.stopped:
        left = deadline - time.monotonic()
        if records and left < MIN_TRIAL_SECONDS:
            break
        trial = study.ask()
        began = time.monotonic()
        record = TrialRecord(trial.number + 1, {}, FAILED)
        trained = None
        try:
            trial_spec, trial_config = space.suggest(trial)
            record.params = dict(trial.params)
            minutes = max(left, MIN_TRIAL_SECONDS) / 60
            trial_config = dataclasses.replace(
                trial_config, max_minutes=min(config.max_minutes or math.inf, minutes))
            trial_control = _TrialControl(control)
            pruning = _Pruning(trial, trial_control)
            trained = fit_design(prepared, shape, data_spec, trial_config, trial_spec,
                                 [*callbacks, pruning], trial_control)
            trained.config = dataclasses.replace(trial_config, max_minutes=config.max_minutes)
            record.epochs = trained.history.epochs_run
            record.val_loss = trained.history.best_val_loss
            if record.val_loss is None:
                raise TrainingError("No epoch finished within the time left.")
            evaluate_trained(trained, validation_rows, with_baseline=False)  # never the test rows
            record.validation = dict(trained.metrics.get("val", {}))
            record.state = PRUNED if pruning.pruned else COMPLETE
        except BuilderError as exc:
            first_error = first_error or exc
            record.note, trained = str(exc), None
        record.seconds = time.monotonic() - began
        if record.state == COMPLETE:
            study.tell(trial, record.val_loss)
            if best is None or record.val_loss < best[0]:
                best = (record.val_loss, trained, record)
            if starting is None and record.params == starting_params:
                starting = (record.val_loss, trained, record)
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED if record.state == PRUNED
                       else optuna.trial.TrialState.FAIL)
        records.append(record)
        log.info("%s", trial_line(record, data_spec.task))
        if on_trial is not None:
            on_trial(record, trained)
    if best is None:
        if first_error is not None:
            raise first_error
        raise TrainingError(
            f"No trial finished within the {budget_minutes:g} minute budget: give the search more "
            "minutes, or train once with Start."
        )
    loss, model, record = kept_trial(best, starting, prepared, len(records))
    evaluate_trained(model, prepared, with_baseline=True)  # the test rows, once, for the best alone
    result = SearchResult(records, record.number, record.params, {**record.validation, "loss": loss},
                          name, _storage_label(storage))
    log.info("best of %d trials: trial %d (validation loss %.4g)", len(records), record.number, loss)
    return model, result


def kept_trial(best: tuple[float, TrainedModel, TrialRecord], starting: tuple[float, TrainedModel, TrialRecord] | None,
               prepared: Prepared, trials: int) -> tuple[float, TrainedModel, TrialRecord]:
    """The trial a search returns: ``best`` (lowest validation loss, as ``(loss, model, record)``)
    when it is clearly better than the starting design on the validation rows (see
    ``clearly_better``), else the starting design."""
    if starting is None or best[2] is starting[2]:
        return best
    rows = [row_losses(model, prepared) for model in (best[1], starting[1])]
    if clearly_better(*rows, trials):
        return best
    log.info("trial %d's lower validation loss (%.4g against %.4g) is within what luck gives among %d trials "
             "on %d validation rows: keeping the starting design (trial %d)", best[2].number, best[0],
             starting[0], trials, len(rows[0]), starting[2].number)
    return starting


def clearly_better(candidate: np.ndarray, reference: np.ndarray, trials: int) -> bool:
    """Whether ``candidate``'s per-row losses are lower than ``reference``'s (the same rows) by more
    than luck explains: the paired t statistic of the differences above
    ``max(MIN_T, sqrt(2 ln trials))``, roughly the largest of ``trials`` standard normal draws."""
    differences = np.asarray(reference, dtype=np.float64) - np.asarray(candidate, dtype=np.float64)
    if len(differences) < 2:
        return False
    spread = differences.std(ddof=1)
    if spread == 0:
        return bool(differences.mean() > 0)
    t = differences.mean() / (spread / math.sqrt(len(differences)))
    return bool(t > max(MIN_T, math.sqrt(2 * math.log(max(trials, 1)))))


def row_losses(trained: TrainedModel, prepared: Prepared) -> np.ndarray:
    """The loss of each validation row (each window of a series) in training units, as training
    measures it: squared error averaged over outputs for numbers, cross-entropy for classes."""
    out = torch.from_numpy(trained.predict_outputs(prepared.X_val)).float()  # (N, k)
    targets = prepared.y_val if prepared.y_val is not None else prepared.X_val  # an autoencoder rebuilds its input
    y = torch.from_numpy(np.asarray(targets))
    task = FIT_TASKS.get(trained.task, trained.task)
    if task == "multiclass":
        losses = F.cross_entropy(out, y.long(), reduction="none")
    elif task == "binary":
        losses = F.binary_cross_entropy_with_logits(out, y.float().reshape(out.shape), reduction="none").mean(dim=1)
    else:
        losses = F.mse_loss(out, y.float().reshape(out.shape), reduction="none").mean(dim=1)
    return losses.numpy()


def trial_line(record: TrialRecord, task: str) -> str:
    """One line for a log: "trial 3: complete, validation loss 0.0812, accuracy 0.9765 in 1.2 s (...)"."""
    headline = HEADLINE_METRIC.get(task, "")
    score = f", validation loss {record.val_loss:.4g}" if record.val_loss is not None else ""
    if headline in record.validation:
        score += f", {headline} {record.validation[headline]:.4g}"
    params = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.params.items())
    note = f": {record.note}" if record.note else ""
    return (f"trial {record.number}: {record.state}{note}{score} after {record.epochs} epochs in "
            f"{record.seconds:.1f} s ({params})")


def _storage_label(storage: str | None) -> str:
    """The storage URL without a password, for logs and the JSON line."""
    if not storage:
        return "memory"
    head, at, tail = storage.rpartition("@")
    if not at or "://" not in head:
        return storage
    scheme, _, credentials = head.partition("://")
    return f"{scheme}://{credentials.split(':', 1)[0]}@{tail}"
