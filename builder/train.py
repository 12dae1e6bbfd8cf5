"""Training: settings, events, stop/pause control and the ``fit`` loop.

The loop is a hand-written PyTorch loop with nothing on top that costs time: the data becomes
tensors once and moves to the device once; each epoch draws one ``torch.randperm`` and slices it;
losses and correct counts are summed on the device and read once per epoch; the optimizers use
torch's fused kernels where the device has them. What the app needs on top (a live chart, stop and
pause, the best checkpoint, early stopping, a time limit) is checked between batches at the cost of
a clock read, and the live chart gets a running loss at most ``1 / BATCH_EVENT_INTERVAL_S`` times a
second, so it moves long before the first epoch ends. ``bench/`` measures this against the minimal
loop of PERFORMANCE.md.

Events go to ``Callback`` objects (``on_train_begin``, ``on_batch_end``, ``on_epoch_end``,
``on_train_end``); nothing here prints or knows about the UI. ``on_train_end`` runs however training
ends, so a stopped or failed run still leaves its best model and its history.

With a ``checkpoint_dir``, each epoch's whole state goes to disk (``builder.checkpoints``) before
``on_epoch_end`` fires, and ``resume_from`` continues such a run after its last finished epoch
exactly as if it had never stopped: same weights, optimizer moments, schedule, shuffle order and
dropout draws. Both are off by default and then cost nothing.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from builder import checkpoints, distributed
from builder.device import DeviceChoice, choose_device
from builder.errors import TrainingError
from builder.losses import Objective, class_weight_vector, member_mean, member_targets
from builder.schedules import LrSchedule
from builder.train_config import (  # noqa: F401  (callers import the settings from here)
    OPTIMIZER_HELP,
    OPTIMIZERS,
    SCHEDULE_HELP,
    SCHEDULES,
    SETTINGS,
    TrainConfig,
    reject_unknown_keys,
)

log = logging.getLogger(__name__)

TASKS = ("regression", "binary", "multiclass")
# "diverged" and "error" come with an exception from fit(); the other four end a run normally.
STOP_REASONS = ("completed", "early_stopping", "stopped_by_user", "time_limit", "diverged", "error")
BATCH_EVENT_INTERVAL_S = 0.2  # on_batch_end fires at most 5 times a second (each costs one sync)

# ----------------------------------------------------------------------------------------------
# Data, control, events, results


@dataclass
class TensorData:
    """Arrays ready for training (see docs/ENGINE_CONTRACTS.md).

    Attributes:
        X_train, X_val: float32 ``(N, F)`` or ``(N, *input_shape)``.
        y_train, y_val: float32 ``(N, 1)`` (regression, binary) or int64 ``(N,)`` (multiclass).
        y_scale: multiply a regression error in training units by this to get original units.
        augment: changes each training batch a little (``(xb, generator) -> xb``, same shape),
            e.g. shifted images, so the model cannot memorise exact pixels; ``None``: no change.
            Validation batches are never augmented.
        classes: class labels in index order (classification), so per-class weights can be
            given by label; ``None``: the indices name the classes.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    y_scale: float = 1.0
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None
    classes: list[str] | None = None


class TrainControl:
    """Stop, pause and resume a running ``fit`` from another thread (the UI's buttons).

    ``fit`` reads the flags between batches; they are ``threading.Event``s, so a read costs a
    fraction of a microsecond and a paused loop sleeps in ``wait`` instead of spinning.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()  # cleared while paused
        self._running.set()
        self._lock = threading.Lock()  # so a pause can never land after a stop and block forever

    def stop(self) -> None:
        """Ask training to end after the current batch; the best model so far is kept."""
        with self._lock:
            self._stop.set()
            self._running.set()  # wake a paused loop so it sees the stop

    def pause(self) -> None:
        """Hold training after the current batch until ``resume`` or ``stop``."""
        with self._lock:
            if not self._stop.is_set():
                self._running.clear()

    def resume(self) -> None:
        """Let a paused training go on."""
        with self._lock:
            self._running.set()

    @property
    def stopped(self) -> bool:
        """True once ``stop`` was called."""
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        """True between ``pause`` and ``resume``/``stop``."""
        return not self._running.is_set()

    def wait_if_paused(self, timeout: float | None = None) -> bool:
        """Block, without using the CPU, while paused.

        Args:
            timeout: give up after this many seconds (None = wait until resumed or stopped).

        Returns:
            True when no longer paused, False when the timeout ran out first.
        """
        return self._running.wait(timeout)


class Callback:
    """Receives training events; subclass and override the hooks you need (all are no-ops).

    Epoch ``logs`` (docs/ENGINE_CONTRACTS.md): ``epoch``, ``epochs``, ``loss``, ``val_loss``,
    ``accuracy``/``val_accuracy`` (classification) or ``val_rmse`` (regression, original units),
    ``lr`` (the learning rate at the epoch's end), ``seconds`` (the epoch's, pauses excluded) and
    ``best_epoch``. Batch events carry ``epoch``,
    ``epochs``, ``batch``, ``batches`` and ``loss``, the mean training loss of the epoch so far.
    """

    def on_train_begin(self, info: dict[str, Any]) -> None:
        """Training is about to start; ``info`` describes the device, data sizes and settings."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        """An epoch (1-based) and its validation finished."""

    def on_batch_end(self, step: int, logs: dict[str, Any]) -> None:
        """A batch finished (``step`` counts batches from 1 across epochs); throttled to ~5/s."""

    def on_train_end(self, history: History) -> None:
        """Training ended for any reason (``history.stopped_reason``); the best model is loaded."""

    def on_batch_size_changed(self, batch_size: int, batches_per_epoch: int, note: str) -> None:
        """The device ran out of memory: the epoch starts again with ``batch_size``; ``note`` says so."""


@dataclass
class History:
    """Per-epoch record of a run; lists are aligned with ``epoch``.

    ``metrics`` holds ``accuracy``/``val_accuracy`` or ``val_rmse`` lists; ``lr`` the learning
    rate each epoch ended with (empty for runs saved before schedules). ``best_epoch`` is the
    epoch with the lowest ``val_loss`` (None before the first finished epoch). ``stopped_reason``
    is one of ``STOP_REASONS``.
    """

    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    lr: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_reason: str = "completed"
    notes: list[str] = field(default_factory=list)  # what happened on the way ("the batch was halved...")

    def append(self, logs: Mapping[str, Any]) -> None:
        """Add one epoch's ``logs`` (as passed to ``on_epoch_end``)."""
        self.epoch.append(logs["epoch"])
        self.loss.append(logs["loss"])
        self.val_loss.append(logs["val_loss"])
        self.seconds.append(logs["seconds"])
        if "lr" in logs:
            self.lr.append(logs["lr"])
        for name in _METRIC_KEYS:
            if name in logs:
                self.metrics.setdefault(name, []).append(logs[name])

    @property
    def epochs_run(self) -> int:
        """How many epochs finished (and were validated)."""
        return len(self.epoch)

    @property
    def best_val_loss(self) -> float | None:
        """Validation loss of ``best_epoch``, or None."""
        return None if self.best_epoch is None else self.val_loss[self.epoch.index(self.best_epoch)]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> History:
        """Inverse of ``to_dict``.

        Raises:
            SpecError: an unknown key (the message lists the valid ones).
        """
        reject_unknown_keys(cls, values, "history field")
        return cls(**values)


_METRIC_KEYS = ("accuracy", "val_accuracy", "val_rmse")


@dataclass
class FitResult:
    """What ``fit`` returns.

    Attributes:
        model: the trained module with the best epoch's weights, on the CPU, in eval mode.
        history: per-epoch record and why training ended.
        device: where it trained.
        best_state: CPU copies of the best weights (the starting weights if no epoch finished).
        seconds: wall time of the whole ``fit`` call.
    """

    model: nn.Module
    history: History
    device: DeviceChoice
    best_state: dict[str, torch.Tensor]
    seconds: float


class FitError(TrainingError):
    """Training started but could not finish (diverged, out of memory).

    ``fit`` raises it after ``on_train_end`` ran, so ``result`` holds the best model found before
    the failure (or the starting weights) and the history up to it.
    """

    def __init__(self, message: str, result: FitResult | None = None):
        super().__init__(message)
        self.result = result


def warm_up() -> None:
    """Pay torch's one-off cost of the first optimizer (~1.5 s: it imports torch._dynamo) now.

    The app calls it at start-up so the first chart point of the first run is not delayed.
    """
    torch.optim.Adam([nn.Parameter(torch.zeros(1))])


# ----------------------------------------------------------------------------------------------
# fit


def fit(
    model: nn.Module,
    data: TensorData,
    task: str,
    config: TrainConfig,
    callbacks: Iterable[Callback] = (),
    control: TrainControl | None = None,
    keep_last: bool = False,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume_from: str | os.PathLike[str] | None = None,
) -> FitResult:
    """Train ``model`` on ``data`` and keep the epoch with the lowest validation loss.

    Seeds torch with ``config.seed`` (shuffling, dropout); build the model under the same seed
    beforehand for a fully repeatable run: on the CPU the same data, model, settings and seed
    give the same losses and weights bit for bit (``tests/test_determinism.py``). On a GPU a few
    kernels (atomic adds in some backward passes) may differ in the last bits.
    ``config.val_fraction``/``test_fraction`` are not used here: ``data`` is already split.

    Args:
        model: a module mapping a batch ``(B, *input_shape)`` to raw outputs ``(B, n_outputs)``:
            1 value (regression, in scaled units), 1 logit (binary) or k logits (multiclass).
            It is moved to the device for training and returned on the CPU.
        data: training and validation arrays.
        task: ``"regression"``, ``"binary"`` or ``"multiclass"``.
        config: training settings (validated here).
        callbacks: receive the training events.
        control: stop/pause flags another thread may set.
        keep_last: keep the last epoch's weights whatever the validation loss says (the refit
            of cross-validation, whose epoch count the folds already chose; ``best_epoch`` is
            then the last epoch and early stopping never fires).
        checkpoint_dir: write ``last.safetensors`` (the whole state) and ``best.safetensors``
            (the best weights) here after every epoch, atomically (``builder.checkpoints``);
            ``None``: no checkpoints (the default costs nothing).
        resume_from: a checkpoint folder of an interrupted run of the same design, settings and
            data: training continues at the epoch after its last one, with its history, and
            goes on checkpointing into ``checkpoint_dir`` (default: the same folder). Build
            ``model`` as for the first run; its weights are replaced by the checkpoint's.
            ``config.max_minutes`` counts the training time of both parts together.

    Returns:
        The trained model (best weights, CPU, eval mode), its history, device and timing.

    Raises:
        SpecError: an invalid setting.
        TrainingError: the data or model cannot be trained as given (message says why), the
            chosen GPU is missing or too small for the data, the checkpoint cannot be written,
            or ``resume_from`` holds no checkpoint of this run (or one that already ended).
        FitError: training diverged or ran out of memory; ``.result`` keeps the best so far.
    """
    started = time.perf_counter()
    config.validate()
    if task not in TASKS:
        raise TrainingError(f"The task must be one of {', '.join(TASKS)}; got {task!r}.")
    choice = choose_device(config.device)
    torch.manual_seed(config.seed)
    control = control or TrainControl()
    trainer = _Trainer(model, data, task, config, choice, tuple(callbacks), control)
    trainer.keep_last = keep_last
    if checkpoint_dir is not None or resume_from is not None:
        folder = Path(checkpoint_dir if checkpoint_dir is not None else resume_from)
        trainer.checkpoint_dir, trainer.fingerprint = folder, _fingerprint(trainer, model, data)
        if resume_from is not None:
            try:
                trainer.restore(checkpoints.read_checkpoint(Path(resume_from)), Path(resume_from))
            except BaseException:
                model.to("cpu")  # as if fit had never started
                raise
    return trainer.run(started)


def _fingerprint(trainer: _Trainer, model: nn.Module, data: TensorData) -> dict[str, Any]:
    """What a checkpoint must share with this run to resume it (design, settings, data)."""
    arrays = {"X_train": data.X_train, "y_train": data.y_train, "X_val": data.X_val, "y_val": data.y_val}
    extra = {"task": trainer.task, "device": trainer.choice.device.type, "keep_last": trainer.keep_last,
             "y_scale": trainer.y_scale, "classes": data.classes}
    return checkpoints.fingerprint(model, arrays, trainer.config.to_dict(), extra)


# Devices with a fused optimizer kernel in torch 2.13. Fused Adam's step is ~4x faster than the
# default for-loop on CPU (0.11 vs 0.47 ms for a 256-256 MLP) and makes the whole loop beat the
# minimal one. RMSprop has no fused kernel; fused Adagrad has no MPS kernel; MPS SGD is left on
# foreach to be safe.
_OPTIMIZER_CLASSES = {
    "sgd": torch.optim.SGD,
    "momentum": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}
_FUSED_DEVICES = {
    "sgd": ("cpu", "cuda"),
    "momentum": ("cpu", "cuda"),
    "adagrad": ("cpu", "cuda"),
    "adam": ("cpu", "cuda", "mps"),
    "adamw": ("cpu", "cuda", "mps"),
}


def _make_optimizer(
    model: nn.Module, config: TrainConfig, device: torch.device
) -> torch.optim.Optimizer:
    kwargs: dict[str, Any] = {"lr": config.lr, "weight_decay": config.weight_decay}
    if config.optimizer == "momentum":
        kwargs.update(momentum=config.momentum, nesterov=config.nesterov)
    elif config.optimizer in ("adam", "adamw"):
        kwargs["betas"] = (config.beta1, config.beta2)
    elif config.optimizer == "rmsprop":
        kwargs["alpha"] = config.alpha
    if device.type in _FUSED_DEVICES.get(config.optimizer, ()):
        kwargs["fused"] = True  # one kernel for all parameters
    else:
        kwargs["foreach"] = True  # one kernel per operation over all parameters
    return _OPTIMIZER_CLASSES[config.optimizer](model.parameters(), **kwargs)


class _Diverged(Exception):
    """Internal: the loss stopped being a finite number during ``epoch``."""

    def __init__(self, epoch: int):
        self.epoch = epoch


# Validation runs in chunks of at most 2048 rows and about 1M input values (4 MB of float32).
# Measured on W1 (30k rows, MLP 256-256): 1024-2048-row chunks are the fastest (their activations
# stay in cache; 8192 rows: +25%, one 30k chunk: +75%) and add ~15 MB to peak RSS (8192: +47 MB).
_VAL_CHUNK_VALUES = 1 << 20
_VAL_CHUNK_MAX_ROWS = 2048


class _Trainer:
    """State of one ``fit`` call; ``run`` is the whole loop."""

    keep_last = False  # fit(keep_last=True): every epoch counts as the best (a refit's fixed length)
    checkpoint_dir: Path | None = None  # fit(checkpoint_dir=...): the state goes here every epoch
    fingerprint: dict[str, Any] | None = None  # design, settings and data, for the checkpoints
    first_epoch = 1  # a resumed run starts after its checkpoint's epoch

    def __init__(
        self,
        model: nn.Module,
        data: TensorData,
        task: str,
        config: TrainConfig,
        choice: DeviceChoice,
        callbacks: tuple[Callback, ...],
        control: TrainControl,
    ):
        self.task, self.config, self.choice = task, config, choice
        self.callbacks, self.control = callbacks, control
        self.world = distributed.current_world()  # one process, or this one's share of --nproc
        self.y_scale = float(data.y_scale)
        self.augment = data.augment
        device = choice.device
        X, y = _as_tensors(data.X_train, data.y_train, task, "training")
        X_val, y_val = _as_tensors(data.X_val, data.y_val, task, "validation")
        if X.shape[1:] != X_val.shape[1:]:
            raise TrainingError(
                f"Training rows have shape {tuple(X.shape[1:])} but validation rows have shape "
                f"{tuple(X_val.shape[1:])}: prepare both with the same preprocessing."
            )
        _check_outputs(model, X, y, task)  # before anything moves, so a failure leaves no trace
        try:
            # Moved once; on the CPU .to() is a no-op and the tensors share the numpy memory.
            self.model = model.to(device)
            self.X, self.y = X.to(device), y.to(device)  # (N, *input_shape), (N, k) or (N,)
            self.X_val, self.y_val = X_val.to(device), y_val.to(device)
            # What runs the training batches: the model, or its data-parallel wrapper (which
            # averages the gradients of the processes); weights, checkpoints and validation use
            # the model itself.
            self.net = self.model if not self.world.parallel else DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None)
        except torch.OutOfMemoryError as exc:
            model.to("cpu")
            _release_device_memory(device)
            gigabytes = (X.nbytes + X_val.nbytes) / 1e9
            raise TrainingError(
                f"The data ({gigabytes:.1f} GB) and model do not fit in the memory of the "
                f"{choice.label}: choose device cpu, or use fewer rows or a smaller model."
            ) from exc

        n = len(self.X)
        self.batch_size = config.batch_size
        if self.batch_size > n:
            log.info("batch size %d is larger than the %d training rows: using %d",
                     self.batch_size, n, n)
            self.batch_size = n
        weights = None
        if task != "regression":
            vector = class_weight_vector(config.class_weights, data.y_train, data.classes)
            weights = None if vector is None else torch.from_numpy(vector)
        self.objective = Objective(task, config.label_smoothing, weights).to(device)
        self.optimizer = _make_optimizer(self.model, config, device)
        self.schedule = LrSchedule(self.optimizer, config, math.ceil(n / self.batch_size))
        self.clip_grad = config.clip_grad
        amp = choice.amp_dtype
        self.autocast = torch.autocast(device.type, dtype=amp) if amp else contextlib.nullcontext()
        # fp16 needs loss scaling so small gradients do not underflow; bf16 does not.
        self.scaler = torch.amp.GradScaler(device.type) if amp == torch.float16 else None
        # A private generator: the shuffle order depends on the seed only, not on other threads.
        self.shuffle = torch.Generator(device=device).manual_seed(config.seed)
        # The checkpoint is allocated once and overwritten in place on every improvement.
        self.best_state = {
            name: value.detach().to("cpu", copy=True)
            for name, value in self.model.state_dict().items()
        }
        self.best_val_loss = math.inf
        self.history = History()
        self.step = 0  # batches done, across epochs
        self.next_batch_event = 0.0  # monotonic time; 0 = fire on the very first batch
        self.paused_seconds = 0.0
        limit = config.max_minutes
        self.deadline = None if limit is None else time.monotonic() + 60 * limit

    # -- the loop --------------------------------------------------------------------------

    def run(self, started: float) -> FitResult:
        """Train, then always load the best weights and send ``on_train_end``."""
        failure: FitError | None = None
        try:
            self._emit("on_train_begin", self._info())
            self._train()
        except _Diverged as exc:
            self.history.stopped_reason = "diverged"
            failure = FitError(
                f"Training diverged at epoch {exc.epoch} (loss is not a number): lower the "
                f"learning rate (now {self.config.lr:g}), for example to {self.config.lr / 10:g}, "
                "and check that the inputs are scaled."
            )
        except torch.OutOfMemoryError as exc:
            self.history.stopped_reason = "error"
            _release_device_memory(self.choice.device)
            # Only after halving the batch down to one row (``_epoch_within_memory``).
            failure = FitError(
                f"The {self.choice.label} ran out of memory even with one row per batch: use a smaller "
                "model (fewer or narrower layers), or choose device cpu."
            )
            failure.__cause__ = exc
        except BaseException:
            self.history.stopped_reason = "error"  # a bug or Ctrl-C: still hand back what exists
            raise
        finally:
            result = self._finish(time.perf_counter() - started - self.paused_seconds)  # pauses do not count
        if failure is not None:
            failure.result = result
            raise failure
        return result

    def _train(self) -> None:
        patience = self.config.early_stopping_patience
        for epoch in range(self.first_epoch, self.config.epochs + 1):
            epoch_started, paused_before = time.perf_counter(), self.paused_seconds
            sums = self._epoch_within_memory(epoch)
            if sums is None:
                return  # stopped between batches; the partial epoch is not recorded
            train_sums, (val_loss, val_correct) = sums
            if self.world.parallel:  # rank 0's validation decides for all: they stop together
                val_loss, correct = distributed.from_main_process([val_loss, val_correct], self.X.device)
                val_correct = int(correct)
            seconds = time.perf_counter() - epoch_started - (self.paused_seconds - paused_before)
            logs = self._epoch_logs(epoch, *train_sums, val_loss, val_correct, seconds)
            if not (math.isfinite(logs["loss"]) and math.isfinite(val_loss)):
                raise _Diverged(epoch)
            self.schedule.after_epoch(val_loss)
            improved = val_loss < self.best_val_loss or self.keep_last
            if improved:
                self.best_val_loss, self.history.best_epoch = val_loss, epoch
                for name, value in self.model.state_dict().items():
                    self.best_state[name].copy_(value)  # device -> CPU, into the same buffers
            logs["best_epoch"] = self.history.best_epoch
            self.history.append(logs)
            early_stop = bool(patience) and epoch - self.history.best_epoch >= patience
            if self.checkpoint_dir is not None:  # on disk before anyone hears the epoch ended
                finished = "early_stopping" if early_stop else "completed" if epoch == self.config.epochs else None
                self._save_checkpoint(epoch, finished, improved)
            self._emit("on_epoch_end", epoch, logs)
            if early_stop:
                self.history.stopped_reason = "early_stopping"
                log.info("early stopping at epoch %d: no better val_loss since epoch %d",
                         epoch, self.history.best_epoch)
                return

    def _epoch_within_memory(self, epoch: int) -> tuple[tuple[float, int], tuple[float, int]] | None:
        """One epoch and its validation; when the device runs out of memory, the batch is halved
        and the epoch starts again (down to one row a batch, then the error stands)."""
        while True:
            try:
                train_sums = self._train_epoch(epoch)
                return None if train_sums is None else (train_sums, self._validate())
            except torch.OutOfMemoryError:
                if self.batch_size == 1:
                    raise
                self._halve_batch(epoch)

    def _halve_batch(self, epoch: int) -> None:
        """Go on with half the batch. Steps already taken in this epoch stay (out of memory
        nearly always strikes on the first batch, before any); a per-batch learning-rate schedule
        is laid out again for the new number of batches."""
        _release_device_memory(self.choice.device)
        self.optimizer.zero_grad(set_to_none=True)
        before, self.batch_size = self.batch_size, max(1, self.batch_size // 2)
        batches = math.ceil(len(self.X) / self.batch_size)
        if self.schedule.active:
            self.schedule = LrSchedule(self.optimizer, self.config, batches)
        note = (f"The {self.choice.label} ran out of memory with batch size {before} at epoch {epoch}: "
                f"training went on with batch size {self.batch_size}.")
        log.warning(note)
        self.history.notes.append(note)
        self._emit("on_batch_size_changed", self.batch_size, batches, note)

    # -- checkpoints ------------------------------------------------------------------------

    def _save_checkpoint(self, epoch: int, finished: str | None, improved: bool) -> None:
        """The whole state after ``epoch`` (see ``builder.checkpoints`` for the layout)."""
        tensors = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        tensors.update({f"best/{k}": v for k, v in self.best_state.items()})
        optimizer_tensors, optimizer_plain = checkpoints.flatten_optimizer(self.optimizer.state_dict())
        tensors.update(optimizer_tensors)
        tensors.update({f"rng/{k}": v for k, v in checkpoints.rng_states(self.shuffle).items()})
        state = {
            "epoch": epoch, "finished": finished, "step": self.step,
            "best_epoch": self.history.best_epoch, "best_val_loss": self.best_val_loss,
            "history": self.history.to_dict(), "optimizer": optimizer_plain,
            "schedule": self.schedule.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "device": self.choice.label, "fingerprint": self.fingerprint,
        }
        checkpoints.write_checkpoint(self.checkpoint_dir, tensors, state, self.best_state if improved else None)

    def restore(self, saved: checkpoints.Checkpoint, folder: Path) -> None:
        """Put the loop where ``saved`` left it: the next epoch is the one after its last.

        Raises:
            TrainingError: the checkpoint is another run's, or its run had already ended.
        """
        state = saved.state
        problem = checkpoints.mismatch(state["fingerprint"], self.fingerprint, folder)
        if problem:
            raise TrainingError(problem)
        if state["finished"] is not None:
            how = "by early stopping" if state["finished"] == "early_stopping" else "after all its epochs"
            raise TrainingError(f"The run in {folder} already ended {how} at epoch {state['epoch']}: there "
                                "is nothing to resume. Start a new run to train more.")
        self.model.load_state_dict(saved.group("model"))
        for name, value in saved.group("best").items():
            self.best_state[name].copy_(value)
        self.optimizer.load_state_dict(checkpoints.unflatten_optimizer(
            saved.group("optimizer"), state["optimizer"], self.optimizer))
        self.schedule.load_state_dict(state["schedule"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        checkpoints.set_rng_states(self.shuffle, saved.group("rng"))
        self.history = History.from_dict(state["history"])
        self.best_val_loss, self.step = state["best_val_loss"], state["step"]
        self.first_epoch = state["epoch"] + 1
        if self.deadline is not None:  # the time limit covers both parts of the run
            self.deadline -= sum(self.history.seconds)
        if self.checkpoint_dir is not None:  # best.safetensors may be an epoch ahead after a crash
            checkpoints.write_best(self.checkpoint_dir, self.best_state, self.history.best_epoch)
        log.info("resuming from epoch %d of %d (%s)", state["epoch"], self.config.epochs, folder)

    # -- one epoch ---------------------------------------------------------------------------

    def _train_epoch(self, epoch: int) -> tuple[float, int] | None:
        """One pass over the shuffled training rows; None if told to stop part way."""
        model, optimizer, scaler, X, y = self.net, self.optimizer, self.scaler, self.X, self.y
        device, n, batch_size, world = X.device, len(X), self.batch_size, self.world
        schedule_active = self.schedule.active
        batches = math.ceil(n / batch_size)
        # Running sums stay on the device: reading them costs a sync, so it happens once an epoch
        # (plus the throttled batch event).
        loss_sum = torch.zeros((), device=device)  # float32: MPS has no float64
        correct = torch.zeros((), dtype=torch.int64, device=device)
        model.train()
        order = torch.randperm(n, generator=self.shuffle, device=device)  # (N,)
        seen = 0  # rows trained on in this epoch (by this process)
        for batch, start in enumerate(range(0, n, batch_size), start=1):
            stop = self._should_stop()
            if world.parallel and distributed.any_process(stop, device) and not stop:
                stop, self.history.stopped_reason = True, "stopped_by_user"  # another process stopped
            if stop:
                return None
            idx = order[start : start + batch_size]  # (B,)
            global_rows = len(idx)
            if world.parallel:
                if global_rows < world.size:
                    break  # a last batch smaller than the number of processes is left out
                idx = distributed.rows_of_this_process(idx, world)  # (B / world,)
            xb, yb = X[idx], y[idx]  # (B, *input_shape), (B, k) or (B,)
            if self.augment is not None:
                xb = self.augment(xb, self.shuffle)
            with self.autocast:
                out = model(xb)  # (B, n_outputs); (members * B, n_outputs) for an ensemble
                loss = self.objective.train_loss(out, member_targets(out, yb))  # () mean over rows (and members)
            optimizer.zero_grad(set_to_none=True)
            # DDP averages the processes' gradients: weighting each by its share of the rows makes
            # the step the whole batch's mean, also when the shares differ by a row.
            step_loss = loss * (len(idx) * world.size / global_rows) if world.parallel else loss
            if scaler is None:
                step_loss.backward()
                self._clip()
                optimizer.step()
            else:
                scaler.scale(step_loss).backward()
                if self.clip_grad is not None:
                    scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                self._clip()
                scaler.step(optimizer)
                scaler.update()
            if schedule_active:
                self.schedule.after_batch()
            rows = len(idx)
            seen += rows
            loss_sum.add_(loss.detach(), alpha=rows)  # sum of per-row losses
            if self.task != "regression":
                correct.add_(_count_correct(member_mean(out.detach(), len(yb)), yb, self.task))
            self.step += 1
            now = time.monotonic()
            if now >= self.next_batch_event:
                self.next_batch_event = now + BATCH_EVENT_INTERVAL_S
                running_loss = loss_sum.item() / seen  # the only per-batch sync
                if not math.isfinite(running_loss):
                    raise _Diverged(epoch)
                logs = {"epoch": epoch, "epochs": self.config.epochs, "batch": batch,
                        "batches": batches, "loss": running_loss}
                self._emit("on_batch_end", self.step, logs)
        if world.parallel:  # every process's rows, as one process would have counted them
            rows_seen = torch.tensor(seen, device=device)
            distributed.sum_over_processes(loss_sum, correct, rows_seen)
            seen = int(rows_seen.item())
        return loss_sum.item() / max(seen, 1), int(correct.item())

    def _clip(self) -> None:
        if self.clip_grad is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad, foreach=True)

    def _should_stop(self) -> bool:
        """Honour pause, stop and the time limit between batches."""
        control = self.control
        if control.paused:
            waited = time.perf_counter()
            control.wait_if_paused()
            self.paused_seconds += time.perf_counter() - waited
            if self.deadline is not None:
                self.deadline += time.perf_counter() - waited  # a pause does not eat the time limit
        if control.stopped:
            self.history.stopped_reason = "stopped_by_user"
            return True
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.history.stopped_reason = "time_limit"
            log.info("time limit of %g minutes reached", self.config.max_minutes)
            return True
        return False

    @torch.inference_mode()
    def _validate(self) -> tuple[float, int]:
        """Mean validation loss and number of correct rows, in large chunks."""
        model, X, y = self.model, self.X_val, self.y_val
        n = len(X)
        chunk = max(self.batch_size, min(_VAL_CHUNK_MAX_ROWS, _VAL_CHUNK_VALUES // X[0].numel()))
        loss_sum = torch.zeros((), device=X.device)
        weight_sum = torch.zeros((), device=X.device)
        correct = torch.zeros((), dtype=torch.int64, device=X.device)
        model.eval()
        for start in range(0, n, chunk):
            xb, yb = X[start : start + chunk], y[start : start + chunk]  # views, no copy
            with self.autocast:
                out = model(xb)  # (C, n_outputs)
            total, weight = self.objective.validation_sums(out.float(), yb)
            loss_sum += total
            weight_sum += weight
            if self.task != "regression":
                correct += _count_correct(out, yb, self.task)
        # Per value (or per unit of class weight), like the training loss: a forecast of H steps
        # has H values per row.
        return loss_sum.item() / max(weight_sum.item(), 1e-12), int(correct.item())

    def _epoch_logs(
        self, epoch: int, loss: float, correct: int, val_loss: float, val_correct: int,
        seconds: float,
    ) -> dict[str, Any]:
        logs: dict[str, Any] = {
            "epoch": epoch, "epochs": self.config.epochs, "loss": loss, "val_loss": val_loss,
        }
        if self.task == "regression":
            # Training uses MSE, so RMSE is its root; y_scale turns it into the target's units.
            logs["val_rmse"] = math.sqrt(val_loss) * self.y_scale
        else:
            logs["accuracy"] = correct / len(self.X)
            logs["val_accuracy"] = val_correct / len(self.X_val)
        logs["lr"] = self.schedule.lr
        logs["seconds"] = seconds
        return logs

    def _info(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "device": self.choice.label,
            "device_reason": self.choice.reason,
            "mixed_precision": str(self.choice.amp_dtype) if self.choice.amp_dtype else None,
            "train_rows": len(self.X),
            "val_rows": len(self.X_val),
            "batch_size": self.batch_size,
            "batches_per_epoch": math.ceil(len(self.X) / self.batch_size),
            "epochs": self.config.epochs,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "config": self.config.to_dict(),
            "resumed_from_epoch": self.first_epoch - 1 if self.first_epoch > 1 else None,
        }

    def _emit(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def _finish(self, seconds: float) -> FitResult:
        """Best weights into a CPU model in eval mode, then ``on_train_end``."""
        self.model.to("cpu")  # first, so the weights are loaded on the CPU rather than the GPU
        self.model.load_state_dict(self.best_state)
        self.model.eval()
        history = self.history
        log.info(
            "training ended (%s) after %d epochs in %.1f s; best epoch %s",
            history.stopped_reason, history.epochs_run, seconds, history.best_epoch,
        )
        self._emit("on_train_end", history)
        return FitResult(self.model, history, self.choice, self.best_state, seconds)


def _as_tensors(
    X: np.ndarray, y: np.ndarray, task: str, split: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check one split's arrays and wrap them as tensors of the dtypes the loss expects."""
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim < 2 or len(X) == 0:
        raise TrainingError(
            f"The {split} inputs must be a non-empty table of rows; got shape {X.shape}."
        )
    if len(X) != len(y):
        raise TrainingError(f"The {split} data has {len(X)} input rows but {len(y)} targets.")
    X = np.ascontiguousarray(X, dtype=np.float32)  # no copy when already float32 and contiguous
    if not math.isfinite(X.sum(dtype=np.float64)):  # NaN/inf survive a sum; no N x F temporary
        raise TrainingError(
            f"The {split} inputs contain missing or infinite values: fill them in the data step."
        )
    if task == "multiclass":
        y = y.reshape(len(y))  # (N,) class indices
        whole = np.issubdtype(y.dtype, np.integer) or np.array_equal(y, np.round(y))
        if not whole or y.min() < 0:
            raise TrainingError(
                f"The {split} targets must be class numbers 0, 1, 2, ... for multiclass."
            )
        y = np.ascontiguousarray(y, dtype=np.int64)
    else:
        y = np.ascontiguousarray(y.reshape(len(y), -1), dtype=np.float32)  # (N, k)
        if not math.isfinite(y.sum(dtype=np.float64)):
            raise TrainingError(f"The {split} targets contain missing or infinite values.")
    # torch.from_numpy shares memory; a read-only array is copied so torch never warns about it.
    X, y = (a if a.flags.writeable else a.copy() for a in (X, y))
    return torch.from_numpy(X), torch.from_numpy(y)


@torch.inference_mode()
def _check_outputs(model: nn.Module, X: torch.Tensor, y: torch.Tensor, task: str) -> None:
    """Run two rows through the model once, so a mismatch gets a plain message, not a torch one."""
    model.eval()  # no dropout draws, no batch-norm statistics updates
    device = next(model.parameters(), torch.empty(0)).device
    try:
        out = model(X[:2].to(device))  # (2, n_outputs)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise TrainingError(
            f"The model cannot take rows of shape {tuple(X.shape[1:])}: check the first layer's "
            f"input size. (PyTorch said: {exc})"
        ) from exc
    if task == "multiclass":
        classes = int(y.max()) + 1
        if out.ndim != 2 or out.shape[1] < classes:
            raise TrainingError(
                f"The model gives outputs of shape {tuple(out.shape[1:])} per row but the data has "
                f"{classes} classes: the last layer needs {classes} outputs."
            )
    elif out.shape[1:] != y.shape[1:]:
        raise TrainingError(
            f"The model gives outputs of shape {tuple(out.shape[1:])} per row but a {task} target "
            f"has shape {tuple(y.shape[1:])}: the last layer needs {y.shape[1]} output(s)."
        )


def _count_correct(out: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    """Number of rows classified right, as a device scalar (no sync)."""
    if task == "binary":
        return ((out > 0) == (y > 0.5)).sum()  # logit > 0 <=> probability > 0.5
    return (out.argmax(dim=1) == y).sum()


def _release_device_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
