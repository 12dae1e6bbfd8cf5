"""Checkpoints and resume: a run stopped after epoch 3 and resumed equals one that never stopped.

"Equals" means bit for bit on the CPU: every epoch's losses, metrics and learning rate, the best
epoch, the final weights, and the whole saved state (optimizer moments, random states). The runs
are tiny (a few hundred rows, six epochs, one torch thread), so the file stays within seconds;
one test kills a real training process with SIGKILL and resumes what it left on disk.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import builder.checkpoints as checkpoints
import builder.train as train
from builder.checkpoints import BEST_FILE, LAST_FILE, checkpoint_info
from builder.device import DeviceChoice
from builder.errors import TrainingError
from builder.pipeline import train_model
from builder.train import Callback, TensorData, TrainConfig, TrainControl, fit
from tests.test_determinism import FAMILY_CASES, family_config, one_thread  # noqa: F401 (autouse: one torch thread)

REPO = Path(__file__).resolve().parents[1]
EPOCHS, STOP_AFTER = 6, 3


# -- helpers ------------------------------------------------------------------------------------


def clouds(n: int = 240, features: int = 6, seed: int = 0) -> TensorData:
    """Three overlapping classes (so the loss keeps moving for six epochs); int64 labels (N,)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)  # (N,)
    X = (rng.normal(size=(n, features)) + 0.8 * y[:, None]).astype(np.float32)  # (N, F)
    cut = int(0.75 * n)
    return TensorData(X[:cut], y[:cut], X[cut:], y[cut:], classes=["a", "b", "c"])


def network(features: int = 6, hidden: int = 32) -> nn.Module:
    """An MLP with dropout (so torch's random state matters), built under a fixed seed."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Dropout(0.3), nn.Linear(hidden, 3))


def settings(**overrides) -> TrainConfig:
    values = {"epochs": EPOCHS, "batch_size": 32, "lr": 1e-2, "device": "cpu", "early_stopping_patience": None}
    return TrainConfig(**{**values, **overrides})


class StopAfter(Callback):
    """Presses Stop when an epoch ends: the run ends there, its checkpoint on disk."""

    def __init__(self, epoch: int):
        self.epoch, self.control = epoch, TrainControl()

    def on_epoch_end(self, epoch, logs):
        if epoch == self.epoch:
            self.control.stop()


class KillAfter(Callback):
    """Kills its own process (SIGKILL: no clean-up of any kind) when an epoch ends."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs):
        if epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)


def interrupted(folder: Path, config: TrainConfig, data: TensorData | None = None, **model_args):
    """A run stopped by the user after ``STOP_AFTER`` epochs, checkpointing into ``folder``."""
    stopper = StopAfter(STOP_AFTER)
    result = fit(network(**model_args), data or clouds(), "multiclass", config, callbacks=[stopper],
                 control=stopper.control, checkpoint_dir=folder)
    assert result.history.epochs_run == STOP_AFTER and result.history.stopped_reason == "stopped_by_user"
    return result


def assert_same_run(full, resumed, full_dir: Path, resumed_dir: Path) -> None:
    """Same curve, same best epoch, same weights, same saved state, bit for bit."""
    a, b = full.history.to_dict(), resumed.history.to_dict()
    a.pop("seconds"), b.pop("seconds")
    assert a == b
    assert all(torch.equal(full.best_state[k], resumed.best_state[k]) for k in full.best_state)
    last_a, last_b = load_file(full_dir / LAST_FILE), load_file(resumed_dir / LAST_FILE)
    assert last_a.keys() == last_b.keys()
    assert all(torch.equal(last_a[k], last_b[k]) for k in last_a), [k for k in last_a if not torch.equal(last_a[k], last_b[k])]


def header(path: Path) -> dict:
    """A safetensors file's JSON header, read with the standard library alone."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + size])


# -- resume equals an uninterrupted run -----------------------------------------------------------


@pytest.mark.parametrize("overrides", [
    {},  # Adam, constant rate
    {"optimizer": "adamw", "schedule": "one_cycle", "weight_decay": 0.01},
    {"optimizer": "momentum", "nesterov": True, "schedule": "plateau", "plateau_patience": 1, "clip_grad": 0.5},
    {"optimizer": "rmsprop", "schedule": "cosine", "warmup_epochs": 2},
    {"optimizer": "adagrad", "schedule": "step", "lr_step_epochs": 2, "label_smoothing": 0.1},
    {"optimizer": "sgd", "class_weights": "balanced", "early_stopping_patience": 2, "lr": 0.5, "epochs": 20},
], ids=["adam", "adamw-one_cycle", "momentum-plateau-clip", "rmsprop-cosine-warmup", "adagrad-step", "sgd-early_stop"])
def test_a_run_stopped_after_epoch_3_and_resumed_equals_one_that_never_stopped(tmp_path, overrides):
    full = fit(network(), clouds(), "multiclass", settings(**overrides), checkpoint_dir=tmp_path / "full")
    interrupted(tmp_path / "part", settings(**overrides))
    begin = []
    spy = type("Spy", (Callback,), {"on_train_begin": lambda self, info: begin.append(info)})()
    resumed = fit(network(), clouds(), "multiclass", settings(**overrides), callbacks=[spy],
                  resume_from=tmp_path / "part")
    assert resumed.history.epoch[:STOP_AFTER] == [1, 2, 3] and begin[0]["resumed_from_epoch"] == STOP_AFTER
    assert resumed.history.stopped_reason == full.history.stopped_reason
    if "early_stopping_patience" in overrides:
        assert full.history.stopped_reason == "early_stopping" and full.history.epochs_run > STOP_AFTER + 1
    assert_same_run(full, resumed, tmp_path / "full", tmp_path / "part")


def test_mixed_precision_with_loss_scaling_resumes_with_the_scaler_state(tmp_path, monkeypatch):
    # The CUDA fp16 path (autocast + GradScaler), run on the CPU: the scaler's state is saved too.
    choice = DeviceChoice(torch.device("cpu"), "GPU: fake", "test", torch.float16)
    monkeypatch.setattr(train, "choose_device", lambda preference: choice)
    full = fit(network(), clouds(), "multiclass", settings(), checkpoint_dir=tmp_path / "full")
    interrupted(tmp_path / "part", settings())
    resumed = fit(network(), clouds(), "multiclass", settings(), resume_from=tmp_path / "part")
    assert checkpoints.read_checkpoint(tmp_path / "part").state["scaler"]["scale"] > 0
    assert_same_run(full, resumed, tmp_path / "full", tmp_path / "part")


def test_a_training_process_killed_with_sigkill_resumes_from_its_last_epoch(tmp_path):
    child = subprocess.run(
        [sys.executable, "-c", f"from tests.test_checkpoints import train_then_die; train_then_die({str(tmp_path)!r})"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    info = checkpoint_info(tmp_path / "killed")
    assert info.epoch == STOP_AFTER and info.resumable and len(info.history["loss"]) == STOP_AFTER
    assert sorted(p.name for p in (tmp_path / "killed").iterdir()) == [BEST_FILE, LAST_FILE]
    full = fit(network(), clouds(), "multiclass", settings(), checkpoint_dir=tmp_path / "full")
    resumed = fit(network(), clouds(), "multiclass", settings(), resume_from=tmp_path / "killed")
    assert_same_run(full, resumed, tmp_path / "full", tmp_path / "killed")


def train_then_die(folder: str) -> None:
    """Run in a child process by the test above: train, and die by SIGKILL after epoch 3."""
    torch.set_num_threads(1)
    fit(network(), clouds(), "multiclass", settings(), callbacks=[KillAfter(STOP_AFTER)],
        checkpoint_dir=Path(folder) / "killed")


@pytest.mark.parametrize("family", sorted(FAMILY_CASES))
def test_every_family_resumes_through_train_model_with_the_same_metrics(tmp_path, family):
    source, data_spec = FAMILY_CASES[family]()
    full = train_model(source, data_spec, family_config(epochs=4), family=family, with_baseline=False)
    stopper = StopAfter(2)
    train_model(source, data_spec, family_config(epochs=4), family=family, with_baseline=False,
                callbacks=[stopper], control=stopper.control, checkpoint_dir=tmp_path)
    assert checkpoint_info(tmp_path).epoch == 2
    resumed = train_model(source, data_spec, family_config(epochs=4), family=family, with_baseline=False,
                          resume_from=tmp_path)
    assert resumed.history.loss == full.history.loss and resumed.history.val_loss == full.history.val_loss
    assert resumed.metrics == full.metrics
    assert checkpoint_info(tmp_path).epoch == 4 and checkpoint_info(tmp_path).finished == "completed"


# -- what the folder holds ------------------------------------------------------------------------


def test_the_folder_holds_two_safetensors_files_with_json_state_and_no_pickle(tmp_path):
    result = interrupted(tmp_path, settings(schedule="plateau"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [BEST_FILE, LAST_FILE]  # no partial files left
    head = header(tmp_path / LAST_FILE)
    state = json.loads(head["__metadata__"]["state"])  # standard JSON (infinity is tagged)
    assert state["epoch"] == STOP_AFTER and state["finished"] is None and state["format"] == "builder-checkpoint"
    assert state["history"]["loss"] == result.history.loss
    assert {"optimizer", "schedule", "fingerprint", "best_epoch", "best_val_loss", "step"} <= state.keys()
    assert {"$float": "inf"} in state["schedule"]["plateau"].values()  # ReduceLROnPlateau's mode_worse
    groups = {name.split("/")[0] for name in head if name != "__metadata__"}
    assert groups == {"model", "best", "optimizer", "rng"}
    assert {"rng/shuffle", "rng/torch", "optimizer/0/exp_avg", "optimizer/0/step"} <= head.keys()
    best = load_file(tmp_path / BEST_FILE)  # the bundle's weight format: state-dict names
    assert best.keys() == result.best_state.keys()
    assert all(torch.equal(best[k], result.best_state[k]) for k in best)
    assert json.loads(header(tmp_path / BEST_FILE)["__metadata__"]["epoch"]) == result.history.best_epoch


def test_checkpoint_info_tells_an_interrupted_run_from_a_finished_one(tmp_path):
    assert checkpoint_info(tmp_path / "none") is None
    interrupted(tmp_path / "part", settings())
    info = checkpoint_info(tmp_path / "part")
    assert (info.epoch, info.epochs, info.finished, info.resumable) == (STOP_AFTER, EPOCHS, None, True)
    assert info.history["epoch"] == [1, 2, 3] and info.best_epoch in (1, 2, 3) and info.saved_at > 0
    fit(network(), clouds(), "multiclass", settings(), resume_from=tmp_path / "part")
    done = checkpoint_info(tmp_path / "part")
    assert (done.epoch, done.finished, done.resumable) == (EPOCHS, "completed", False)
    with pytest.raises(TrainingError, match="already ended after all its epochs at epoch 6"):
        fit(network(), clouds(), "multiclass", settings(), resume_from=tmp_path / "part")


def test_resume_can_write_its_checkpoints_to_another_folder(tmp_path):
    interrupted(tmp_path / "part", settings())
    before = (tmp_path / "part" / LAST_FILE).read_bytes()
    fit(network(), clouds(), "multiclass", settings(), resume_from=tmp_path / "part", checkpoint_dir=tmp_path / "next")
    assert (tmp_path / "part" / LAST_FILE).read_bytes() == before
    assert checkpoint_info(tmp_path / "next").epoch == EPOCHS


# -- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("change, words", [
    ({"config": settings(lr=0.05)}, "training settings differ ('lr' 0.01 there, 0.05 here)"),
    ({"config": settings(epochs=8)}, "'epochs' 6 there, 8 here"),
    ({"hidden": 16}, "its design differs (323 weights there, 163 here"),
    ({"data": clouds(n=200)}, "its data has another shape (X_train 180x6 there, 150x6 here"),
    ({"data": clouds(seed=1)}, "its data has the same shape but other values"),
])
def test_a_checkpoint_of_another_design_settings_or_data_is_refused(tmp_path, change, words):
    interrupted(tmp_path, settings())
    model = network(hidden=change.get("hidden", 32))
    with pytest.raises(TrainingError, match="belongs to another run") as caught:
        fit(model, change.get("data", clouds()), "multiclass", change.get("config", settings()), resume_from=tmp_path)
    assert words in str(caught.value) and str(caught.value).endswith("or start a new run.")
    assert checkpoint_info(tmp_path).epoch == STOP_AFTER  # untouched


def test_a_new_time_limit_is_allowed_on_resume(tmp_path):
    interrupted(tmp_path, settings())
    resumed = fit(network(), clouds(), "multiclass", settings(max_minutes=60), resume_from=tmp_path)
    assert resumed.history.epochs_run == EPOCHS


def test_a_missing_or_damaged_checkpoint_is_a_plain_sentence(tmp_path):
    with pytest.raises(TrainingError, match="There is no checkpoint to resume in"):
        fit(network(), clouds(), "multiclass", settings(), resume_from=tmp_path)
    (tmp_path / LAST_FILE).write_bytes(b"\x80\x04 not a checkpoint")
    with pytest.raises(TrainingError, match="is damaged"):
        fit(network(), clouds(), "multiclass", settings(), resume_from=tmp_path)
    with pytest.raises(TrainingError, match="is damaged"):
        checkpoint_info(tmp_path)


def test_cross_validation_runs_are_not_checkpointed(tmp_path):
    source, data_spec = FAMILY_CASES["mlp"]()
    with pytest.raises(TrainingError, match="Cross-validation runs cannot be checkpointed"):
        train_model(source, data_spec, family_config(cv_folds=3), checkpoint_dir=tmp_path)


# -- writing is atomic ---------------------------------------------------------------------------


def test_a_write_that_fails_half_way_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    real_save = checkpoints.save_file
    epochs_written = []

    def save_then_fail(tensors, filename, metadata=None):
        if Path(filename).name.startswith(f".{LAST_FILE}") and len(epochs_written) == STOP_AFTER - 1:
            Path(filename).write_bytes(b"half a file")  # the disk filled up part way
            raise OSError(28, "No space left on device")
        real_save(tensors, filename, metadata=metadata)
        if LAST_FILE in filename:
            epochs_written.append(1)

    monkeypatch.setattr(checkpoints, "save_file", save_then_fail)
    with pytest.raises(TrainingError, match="could not be written .*No space left on device"):
        fit(network(), clouds(), "multiclass", settings(), checkpoint_dir=tmp_path)
    monkeypatch.setattr(checkpoints, "save_file", real_save)
    assert checkpoint_info(tmp_path).epoch == STOP_AFTER - 1  # the old file, whole
    full = fit(network(), clouds(), "multiclass", settings(), checkpoint_dir=tmp_path / "full")
    resumed = fit(network(), clouds(), "multiclass", settings(), resume_from=tmp_path)
    assert_same_run(full, resumed, tmp_path / "full", tmp_path)
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())  # overwritten, then moved


def test_resume_makes_best_weights_agree_with_the_last_state_again(tmp_path):
    # A crash between writing best.safetensors and last.safetensors leaves best one epoch ahead.
    interrupted(tmp_path, settings())
    saved = checkpoints.read_checkpoint(tmp_path)
    checkpoints.write_best(tmp_path, {k: torch.zeros_like(v) for k, v in saved.group("best").items()}, 99)
    stopper = StopAfter(STOP_AFTER + 1)
    fit(network(), clouds(), "multiclass", settings(), callbacks=[stopper], control=stopper.control,
        resume_from=tmp_path)
    best, state = load_file(tmp_path / BEST_FILE), checkpoints.read_checkpoint(tmp_path)
    assert all(torch.equal(best[k], v) for k, v in state.group("best").items())


def test_json_keeps_infinity_and_refuses_tensors():
    value = {"a": float("inf"), "b": [float("-inf"), 1.5, (2, 3)], "c": None}
    assert checkpoints.loads(checkpoints.dumps(value)) == {**value, "b": [float("-inf"), 1.5, [2, 3]]}
    with pytest.raises(TypeError, match="safetensors"):
        checkpoints.dumps({"t": torch.zeros(1)})
