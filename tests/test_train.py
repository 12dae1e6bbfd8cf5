"""Tests of the training engine: learning, events, stop/pause, early stopping, settings, failures.

Every run is tiny (a few hundred rows, a few epochs) so the file stays well under ten seconds.
Time-dependent behaviour (throttled batch events, time limit) is driven by a fake clock or by a
limit that any run exceeds, never by asserting how long something took.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import types

import numpy as np
import pytest
import torch
from torch import nn

import builder.train as train
from builder.device import DeviceChoice
from builder.errors import SpecError, TrainingError
from builder.train import (
    OPTIMIZERS,
    SETTINGS,
    Callback,
    FitError,
    History,
    TensorData,
    TrainConfig,
    TrainControl,
    fit,
)

EPOCH_KEYS = {"epoch", "epochs", "loss", "val_loss", "seconds", "best_epoch"}
BATCH_KEYS = {"epoch", "epochs", "batch", "batches", "loss"}


# -- helpers ------------------------------------------------------------------------------------


def blobs(n: int = 400, seed: int = 0) -> TensorData:
    """Two well separated Gaussian clouds in 4 dimensions; binary labels (N, 1)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=(n, 1)).astype(np.float32)  # (N, 1)
    X = (rng.normal(size=(n, 4)) + 3 * (2 * y - 1)).astype(np.float32)  # (N, 4)
    cut = int(0.75 * n)
    return TensorData(X[:cut], y[:cut], X[cut:], y[cut:])


def linear_regression(n: int = 400, seed: int = 0) -> TensorData:
    """y = X w + noise, standardised; y_scale = 10 (original units are 10x training units)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)  # (N, 5)
    y = (X @ rng.normal(size=(5, 1)) + 0.1 * rng.normal(size=(n, 1))).astype(np.float32)  # (N, 1)
    y = (y - y.mean()) / y.std()
    cut = int(0.75 * n)
    return TensorData(X[:cut], y[:cut], X[cut:], y[cut:], y_scale=10.0)


def three_classes(n: int = 300, seed: int = 0) -> TensorData:
    """Three separated clouds in 2 dimensions; int64 labels (N,)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)  # (N,)
    centres = np.array([[0, 4], [4, -2], [-4, -2]], dtype=np.float32)
    X = (centres[y] + rng.normal(size=(n, 2))).astype(np.float32)  # (N, 2)
    cut = int(0.75 * n)
    return TensorData(X[:cut], y[:cut], X[cut:], y[cut:])


def mlp(inputs: int, outputs: int, hidden: int = 16, dropout: float = 0.0, seed: int = 0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(inputs, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, outputs)
    )


def config(**overrides) -> TrainConfig:
    """Small, fast defaults for tests."""
    values = {"epochs": 5, "batch_size": 32, "lr": 1e-2, "device": "cpu"}
    return TrainConfig(**{**values, **overrides})


class Recorder(Callback):
    """Keeps every event, in order, and a copy of the weights at each epoch end."""

    def __init__(self):
        self.events: list[tuple] = []
        self.weights: dict[int, dict[str, torch.Tensor]] = {}
        self.model: nn.Module | None = None

    def on_train_begin(self, info):
        self.events.append(("begin", info))

    def on_batch_end(self, step, logs):
        self.events.append(("batch", step, dict(logs)))

    def on_epoch_end(self, epoch, logs):
        self.events.append(("epoch", epoch, dict(logs)))
        if self.model is not None:
            state = self.model.state_dict()
            self.weights[epoch] = {k: v.detach().clone() for k, v in state.items()}

    def on_train_end(self, history):
        self.events.append(("end", history))

    def of(self, kind: str) -> list[tuple]:
        return [e for e in self.events if e[0] == kind]


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


# -- learning -----------------------------------------------------------------------------------


def test_binary_mlp_learns_a_separable_problem():
    data = blobs()
    result = fit(mlp(4, 1), data, "binary", config())
    assert result.history.metrics["val_accuracy"][-1] > 0.9
    with torch.inference_mode():
        logits = result.model(torch.from_numpy(data.X_val))  # (N, 1)
    accuracy = ((logits > 0).float() == torch.from_numpy(data.y_val)).float().mean().item()
    assert accuracy > 0.9
    assert not result.model.training and next(result.model.parameters()).device.type == "cpu"


def test_multiclass_learns_three_clouds():
    result = fit(mlp(2, 3), three_classes(), "multiclass", config())
    assert result.history.metrics["val_accuracy"][-1] > 0.9
    assert set(result.history.metrics) == {"accuracy", "val_accuracy"}


def test_regression_val_rmse_decreases_and_is_in_original_units():
    result = fit(mlp(5, 1), linear_regression(), "regression", config(lr=3e-3))
    history = result.history
    rmse = history.metrics["val_rmse"]
    assert rmse[-1] < rmse[0]
    assert rmse[0] == pytest.approx(10.0 * history.val_loss[0] ** 0.5)  # y_scale applied
    assert set(history.metrics) == {"val_rmse"}


# -- events -------------------------------------------------------------------------------------


def test_events_fire_in_order_with_the_documented_keys():
    recorder = Recorder()
    fit(mlp(4, 1), blobs(), "binary", config(epochs=3), callbacks=[recorder])
    kinds = [e[0] for e in recorder.events]
    assert kinds[0] == "begin" and kinds[-1] == "end" and kinds.count("end") == 1
    assert kinds[1] == "batch"  # the chart gets a point before the first epoch ends
    assert [e[1] for e in recorder.of("epoch")] == [1, 2, 3]
    for _, epoch, logs in recorder.of("epoch"):
        assert EPOCH_KEYS | {"accuracy", "val_accuracy"} <= logs.keys()
        assert logs["epoch"] == epoch and logs["epochs"] == 3
    for _, _step, logs in recorder.of("batch"):
        assert BATCH_KEYS <= logs.keys()
    info = recorder.of("begin")[0][1]
    assert info["device"].startswith("CPU")
    assert info["train_rows"] == 300 and info["val_rows"] == 100
    # Each batch event belongs to the epoch reported after it.
    last_epoch = 0
    for event in recorder.events[1:-1]:
        if event[0] == "batch":
            assert event[2]["epoch"] == last_epoch + 1
        else:
            last_epoch = event[1]


def test_regression_epoch_logs_have_val_rmse():
    recorder = Recorder()
    fit(mlp(5, 1), linear_regression(), "regression", config(epochs=1), callbacks=[recorder])
    logs = recorder.of("epoch")[0][2]
    assert EPOCH_KEYS | {"val_rmse"} <= logs.keys() and "accuracy" not in logs


def test_batch_events_are_throttled(monkeypatch):
    # A fake clock that advances 1/8 s per read, with a 1/4 s interval: exactly every 2nd batch.
    ticks = iter(range(10**6))
    fake_time = types.SimpleNamespace(
        monotonic=lambda: next(ticks) / 8, perf_counter=time.perf_counter
    )
    monkeypatch.setattr(train, "time", fake_time)
    monkeypatch.setattr(train, "BATCH_EVENT_INTERVAL_S", 0.25)
    recorder = Recorder()
    # 300 rows / batch 30 = 10 batches per epoch, 20 in all.
    fit(mlp(4, 1), blobs(), "binary", config(epochs=2, batch_size=30), callbacks=[recorder])
    steps = [e[1] for e in recorder.of("batch")]
    assert steps == list(range(1, 21, 2))
    assert all(logs["loss"] > 0 for _, _, logs in recorder.of("batch"))


# -- stop, pause, limits ------------------------------------------------------------------------


def test_stop_from_a_callback_keeps_two_epochs_and_the_best_weights():
    control = TrainControl()
    model = mlp(4, 1)

    class StopAtTwo(Recorder):
        def on_epoch_end(self, epoch, logs):
            super().on_epoch_end(epoch, logs)
            if epoch == 2:
                control.stop()

    recorder = StopAtTwo()
    recorder.model = model
    result = fit(model, blobs(), "binary", config(epochs=10), callbacks=[recorder], control=control)
    history = result.history
    assert history.epoch == [1, 2] and history.stopped_reason == "stopped_by_user"
    assert [e[0] for e in recorder.events].count("end") == 1
    assert recorder.events[-1] == ("end", history)
    assert same_weights(result.model.state_dict(), result.best_state)
    assert same_weights(result.best_state, recorder.weights[history.best_epoch])


def test_stop_inside_the_first_epoch_keeps_the_starting_weights():
    control = TrainControl()
    model = mlp(4, 1)
    start = {k: v.clone() for k, v in model.state_dict().items()}

    class StopAtFirstBatch(Callback):
        def on_batch_end(self, step, logs):
            control.stop()

    stopper = StopAtFirstBatch()
    result = fit(model, blobs(), "binary", config(), callbacks=[stopper], control=control)
    assert result.history.epochs_run == 0 and result.history.best_epoch is None
    assert result.history.stopped_reason == "stopped_by_user"
    assert same_weights(result.model.state_dict(), start)


def test_pause_and_resume_from_another_thread(monkeypatch):
    monkeypatch.setattr(train, "BATCH_EVENT_INTERVAL_S", 0.0)  # an event after every batch
    control = TrainControl()
    first_batch = threading.Event()

    class PauseOnFirstBatch(Recorder):
        def on_batch_end(self, step, logs):
            super().on_batch_end(step, logs)
            if step == 1:
                control.pause()
                first_batch.set()

    recorder = PauseOnFirstBatch()
    results = []
    def train_in_background():
        results.append(
            fit(mlp(4, 1), blobs(), "binary", config(epochs=2), [recorder], control=control)
        )

    worker = threading.Thread(target=train_in_background)
    worker.start()
    assert first_batch.wait(30)
    assert control.paused
    batches_while_paused = len(recorder.of("batch"))
    time.sleep(0.05)  # give a (wrongly) running loop the chance to do more batches
    assert len(recorder.of("batch")) == batches_while_paused == 1
    control.resume()
    worker.join(30)
    assert not worker.is_alive() and not control.paused
    assert results[0].history.epoch == [1, 2] and results[0].history.stopped_reason == "completed"


def test_stop_wakes_a_paused_run():
    control = TrainControl()
    control.pause()
    waiter = threading.Thread(target=control.wait_if_paused)
    waiter.start()
    control.stop()
    waiter.join(5)
    assert not waiter.is_alive() and control.stopped and not control.paused
    control.pause()  # a pause after a stop must not block the loop again
    assert not control.paused
    assert control.wait_if_paused(timeout=0.01)


def test_early_stopping_keeps_the_best_epoch():
    # Random labels: the model can only memorise the training rows, so val_loss soon rises.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 8)).astype(np.float32)
    y = rng.integers(0, 2, size=(120, 1)).astype(np.float32)
    data = TensorData(X[:60], y[:60], X[60:], y[60:])
    model = mlp(8, 1, hidden=128)
    recorder = Recorder()
    recorder.model = model
    settings = config(epochs=300, lr=1e-2, early_stopping_patience=3)
    result = fit(model, data, "binary", settings, callbacks=[recorder])
    history = result.history
    assert history.stopped_reason == "early_stopping"
    assert history.epochs_run == history.best_epoch + 3 < 300
    assert history.best_val_loss == min(history.val_loss)
    assert same_weights(result.model.state_dict(), recorder.weights[history.best_epoch])


def test_time_limit_stops_the_run():
    result = fit(mlp(4, 1), blobs(), "binary", config(epochs=100_000, max_minutes=1e-6))
    assert result.history.stopped_reason == "time_limit"
    assert result.history.epochs_run < 100_000


def test_batch_size_larger_than_the_data_is_clamped(caplog):
    recorder = Recorder()
    with caplog.at_level(logging.INFO, logger="builder.train"):
        fit(mlp(4, 1), blobs(), "binary", config(epochs=1, batch_size=10_000), callbacks=[recorder])
    assert recorder.of("begin")[0][1]["batch_size"] == 300
    assert "larger than the 300 training rows" in caplog.text


# -- optimizers, precision, reproducibility ------------------------------------------------------


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_runs_one_epoch(optimizer):
    settings = config(epochs=1, optimizer=optimizer, weight_decay=1e-4)
    result = fit(mlp(4, 1), blobs(), "binary", settings)
    assert result.history.epochs_run == 1
    assert np.isfinite(result.history.loss[0]) and np.isfinite(result.history.val_loss[0])


def test_adam_uses_the_fused_kernel_on_the_cpu():
    optimizer = train._make_optimizer(mlp(4, 1), config(optimizer="adam"), torch.device("cpu"))
    assert optimizer.defaults["fused"] is True
    rmsprop = train._make_optimizer(mlp(4, 1), config(optimizer="rmsprop"), torch.device("cpu"))
    assert rmsprop.defaults["foreach"] is True  # no fused RMSprop in torch


@pytest.mark.parametrize("amp_dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_path_runs(monkeypatch, amp_dtype):
    # The CUDA autocast (+ GradScaler for fp16) code path, exercised on the CPU.
    choice = DeviceChoice(torch.device("cpu"), "GPU: fake", "test", amp_dtype)
    monkeypatch.setattr(train, "choose_device", lambda preference: choice)
    result = fit(mlp(4, 1), blobs(), "binary", config(epochs=3))
    assert result.history.metrics["val_accuracy"][-1] > 0.9
    assert all(p.dtype == torch.float32 for p in result.model.parameters())


def test_same_seed_gives_identical_runs():
    runs = [
        fit(mlp(4, 1, dropout=0.3, seed=3), blobs(), "binary", config(epochs=3, seed=7))
        for _ in range(2)
    ]
    assert runs[0].history.loss == runs[1].history.loss
    assert runs[0].history.val_loss == runs[1].history.val_loss
    assert same_weights(runs[0].best_state, runs[1].best_state)
    other = fit(mlp(4, 1, dropout=0.3, seed=3), blobs(), "binary", config(epochs=3, seed=8))
    assert other.history.loss != runs[0].history.loss


# -- failures -----------------------------------------------------------------------------------


def test_divergence_raises_a_training_error_about_the_learning_rate():
    data = linear_regression()
    data.y_train = data.y_train * 1000  # huge targets + SGD at the largest allowed rate: blows up
    recorder = Recorder()
    with pytest.raises(TrainingError, match="learning rate") as caught:
        fit(mlp(5, 1), data, "regression", config(epochs=20, optimizer="sgd", lr=10), [recorder])
    error = caught.value
    assert isinstance(error, FitError) and "diverged at epoch" in str(error)
    assert error.result.history.stopped_reason == "diverged"
    assert recorder.events[-1][0] == "end"
    assert all(torch.isfinite(v).all() for v in error.result.model.state_dict().values())


def test_learning_rate_of_a_million_is_refused_before_training():
    with pytest.raises(SpecError, match="Learning rate"):
        fit(mlp(5, 1), linear_regression(), "regression", config(optimizer="sgd", lr=1e6))


def test_out_of_memory_even_with_one_row_suggests_a_smaller_model():
    class HungryInTraining(nn.Linear):
        def forward(self, x):
            if self.training:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            return super().forward(x)

    recorder = Recorder()
    with pytest.raises(FitError, match="even with one row per batch: use a smaller model") as caught:
        fit(HungryInTraining(4, 1), blobs(), "binary", config(batch_size=64), callbacks=[recorder])
    assert caught.value.result is not None and len(caught.value.result.history.notes) == 6  # 64 -> 1
    assert recorder.events[-1][0] == "end"


@pytest.mark.parametrize(
    ("model", "data", "task", "message"),
    [
        (mlp(4, 3), blobs(), "binary", "last layer needs 1 output"),
        (mlp(2, 2), three_classes(), "multiclass", "the data has 3 classes"),
        (mlp(7, 1), blobs(), "binary", "cannot take rows of shape (4,)"),
    ],
)
def test_model_and_data_mismatches_are_explained(model, data, task, message):
    with pytest.raises(TrainingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fit(model, data, task, config())


def test_bad_data_is_explained():
    data = blobs()
    data.X_train = data.X_train.copy()
    data.X_train[3, 1] = np.nan
    with pytest.raises(TrainingError, match="missing or infinite"):
        fit(mlp(4, 1), data, "binary", config())
    short = blobs()
    short.y_train = short.y_train[:-1]
    with pytest.raises(TrainingError, match="300 input rows but 299 targets"):
        fit(mlp(4, 1), short, "binary", config())
    with pytest.raises(TrainingError, match="task must be one of"):
        fit(mlp(4, 1), blobs(), "ranking", config())


# -- settings -----------------------------------------------------------------------------------


def test_learning_rate_message_is_complete():
    with pytest.raises(SpecError) as caught:
        TrainConfig(lr=-1).validate()
    assert str(caught.value) == "Learning rate ('lr') must be a number above 0 and at most 10; got -1. Try 0.001."


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("epochs", 0, "Epochs must be a whole number from 1 to 100,000; got 0"),
        ("epochs", True, "Epochs must be"),
        ("batch_size", 2.5, "Batch size ('batch_size') must be a whole number"),
        ("optimizer", "adamx", "one of 'sgd', 'momentum', 'adagrad', 'rmsprop', 'adam', 'adamw'; got 'adamx'"),
        ("momentum", 1.0, "Momentum must be a number of at least 0 and below 1"),
        ("weight_decay", -0.1, "Weight decay"),
        ("seed", -1, "Seed must be"),
        ("device", "tpu", "Device must be one of 'auto', 'cpu', 'cuda', 'mps'; got 'tpu'"),
        ("early_stopping_patience", -2,
         "Early-stopping patience ('early_stopping_patience') must be empty or a whole number"),
        ("max_minutes", 0, "Time limit in minutes"),
        ("val_fraction", 0.0, "Validation share"),
        ("test_fraction", 0.9, "Test share"),
        ("lr", float("nan"), "Learning rate"),
    ],
)
def test_config_validation_names_the_setting(setting, value, words):
    with pytest.raises(SpecError) as caught:
        TrainConfig(**{setting: value}).validate()
    assert words in str(caught.value) and "Try" in str(caught.value)


def test_fractions_must_leave_rows_for_training():
    with pytest.raises(SpecError, match="at least 20% of the rows"):
        TrainConfig(val_fraction=0.5, test_fraction=0.4).validate()


def test_all_problems_are_reported_together():
    problems = TrainConfig(epochs=0, lr=0).problems()
    assert len(problems) == 2 and "Epochs" in problems[0] and "Learning rate" in problems[1]


def test_off_switches_are_valid():
    TrainConfig(early_stopping_patience=None, max_minutes=None).validate()
    TrainConfig(early_stopping_patience=0, max_minutes=0.5).validate()


def test_config_round_trips_through_json():
    original = TrainConfig(
        epochs=7, lr=0.01, optimizer="momentum", max_minutes=2.5, early_stopping_patience=None
    )
    again = TrainConfig.from_dict(json.loads(json.dumps(original.to_dict())))
    assert again == original
    assert TrainConfig.from_dict({}) == TrainConfig()


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(SpecError, match="Unknown training setting 'learning_rate'") as caught:
        TrainConfig.from_dict({"learning_rate": 0.1})
    assert "lr" in str(caught.value) and "batch_size" in str(caught.value)


def test_history_round_trips_through_json():
    result = fit(mlp(4, 1), blobs(), "binary", config(epochs=2))
    again = History.from_dict(json.loads(json.dumps(result.history.to_dict())))
    assert again == result.history and again.epochs_run == 2
    with pytest.raises(SpecError, match="Unknown history field"):
        History.from_dict({"epochs": [1]})


def test_every_setting_and_optimizer_has_help():
    assert set(SETTINGS) == set(TrainConfig().to_dict())
    assert set(train.OPTIMIZER_HELP) == set(OPTIMIZERS)
    assert all(len(text) > 20 for text in [*(spec.help for spec in SETTINGS.values()), *train.OPTIMIZER_HELP.values()])
