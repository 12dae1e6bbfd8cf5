"""``builder.coach.read_curves`` on planted training curves: each problem is named, healthy curves
are called healthy, and every change names a real setting with a value that setting accepts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from builder.coach import KINDS, Advice, read_curves
from builder.errors import SpecError
from builder.train import History
from builder.train_config import SETTINGS, TrainConfig

RNG_SEED = 0


def make_history(loss, val_loss, accuracy=None, val_accuracy=None, stopped="completed") -> History:
    """A ``History`` as ``fit`` fills it, from per-epoch lists."""
    history = History()
    for i, (a, b) in enumerate(zip(loss, val_loss, strict=True)):
        logs = {"epoch": i + 1, "loss": float(a), "val_loss": float(b), "seconds": 0.1, "lr": 1e-3}
        if accuracy is not None:
            logs["accuracy"] = float(accuracy[i])
            logs["val_accuracy"] = float(val_accuracy[i] if val_accuracy is not None else accuracy[i])
        history.append(logs)
    finite = [v if math.isfinite(v) else math.inf for v in history.val_loss]
    history.best_epoch = int(np.argmin(finite)) + 1 if history.val_loss else None
    history.stopped_reason = stopped
    return history


def noise(n: int, scale: float, seed: int = RNG_SEED) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, scale, n)


def kinds(advice: list[Advice]) -> list[str]:
    return [a.kind for a in advice]


def assert_applicable(advice: Advice, config: TrainConfig) -> None:
    """The change names a real setting (or design knob) and the value passes its check."""
    assert advice.kind in KINDS and advice.title and advice.message
    if advice.kind == "healthy":
        assert advice.change == {} and advice.button_label == ""
        return
    assert advice.button_label
    if "setting" in advice.change:
        name, value = advice.change["setting"], advice.change["value"]
        assert name in SETTINGS
        assert SETTINGS[name].check(value) == value
        TrainConfig(**{**config.to_dict(), name: value}).validate()  # the whole config stays valid
    else:
        assert advice.change["design"] in ("dropout", "width")
        assert advice.change["value"] > 0


# --- planted curves -------------------------------------------------------------------------------

t40 = np.arange(40)


def healthy_curves():
    loss = 0.55 * np.exp(-t40 / 8) + 0.15 + noise(40, 0.002)
    val = 0.55 * np.exp(-t40 / 8) + 0.2 + noise(40, 0.003, seed=1)
    return loss, val


def test_healthy_finished_run():
    config = TrainConfig(epochs=40)
    loss, val = healthy_curves()
    advice = read_curves(make_history(loss, val), "binary", config)
    assert kinds(advice) == ["healthy"]
    assert_applicable(advice[0], config)
    assert "nothing to fix" in advice[0].message


def test_healthy_run_stopped_early_by_patience():
    # The validation loss levels off and wobbles; early stopping ends it; training still creeps down.
    n = 35
    t = np.arange(n)
    loss = 0.6 * np.exp(-t / 5) + 0.2 - 0.001 * t
    val = 0.6 * np.exp(-t / 5) + 0.26 + noise(n, 0.002)
    config = TrainConfig(epochs=200, early_stopping_patience=10)
    advice = read_curves(make_history(loss, val, stopped="early_stopping"), "regression", config)
    assert kinds(advice) == ["healthy"]


def test_overfitting_asks_for_weight_decay_then_more():
    train = 0.6 * np.exp(-t40 / 6) + 0.02
    val = 0.3 + 0.0005 * (t40 - 12) ** 2 + noise(40, 0.002)
    history = make_history(train, val, stopped="completed")
    config = TrainConfig(epochs=40)
    advice = read_curves(history, "regression", config)
    assert kinds(advice) == ["overfitting"]
    assert advice[0].change == {"setting": "weight_decay", "value": 1e-3}
    assert "epoch 13" in advice[0].message  # the best epoch, 1-based
    assert_applicable(advice[0], config)
    # Weight decay already on: ten times more; already strong: more dropout in the design.
    stronger = read_curves(history, "regression", TrainConfig(epochs=40, weight_decay=1e-3))[0]
    assert stronger.change == {"setting": "weight_decay", "value": 0.01}
    assert read_curves(history, "regression", TrainConfig(epochs=40, weight_decay=0.05))[0].change == \
        {"design": "dropout", "value": 0.5}


def test_overfitting_is_seen_during_training():
    train = 0.6 * np.exp(-t40 / 6) + 0.02
    val = 0.3 + 0.0005 * (t40 - 12) ** 2
    partial = make_history(train[:30], val[:30])  # 30 of 100 epochs done, still running
    advice = read_curves(partial, "regression", TrainConfig(epochs=100))
    assert kinds(advice) == ["overfitting"]


@pytest.mark.parametrize("case", ["diverged", "nan", "rising", "spike", "zigzag", "wild_start", "val_jump"])
def test_learning_rate_too_high(case):
    n = 20
    t = np.arange(n)
    stopped = "completed"
    loss = 0.7 * np.exp(-t / 4) + 0.1
    val = loss + 0.05
    if case == "diverged":  # fit stops before recording the NaN epoch
        loss, val, stopped = loss[:6], val[:6], "diverged"
    elif case == "nan":
        loss, val = loss.copy(), val.copy()
        loss[3:], val[3:] = math.nan, math.nan
        loss, val = loss[:5], val[:5]
    elif case == "rising":
        loss = 0.7 + 0.1 * t
        val = loss + 0.05
    elif case == "spike":
        loss = loss.copy()
        loss[12] = 0.6  # back up from ~0.14 after steady progress
    elif case == "zigzag":
        loss = 0.5 + 0.25 * (t % 2)  # up and down every epoch
        val = loss + 0.05
    elif case == "wild_start":  # a huge first epoch, then a jump far above the best since
        loss = 500 * np.exp(-t) + 0.15
        loss[15] = 1.3
    elif case == "val_jump":  # training looks fine; the validation loss leaps
        val = val.copy()
        val[9] = 3.0
    config = TrainConfig(epochs=n, lr=0.03)
    advice = read_curves(make_history(loss, val, stopped=stopped), "regression", config)
    assert kinds(advice) == ["learning_rate_too_high"]
    change = advice[0].change
    assert change["setting"] == "lr" and change["value"] < config.lr
    assert change["value"] == pytest.approx(0.003 if case in ("diverged", "nan", "rising") else 0.01)
    assert_applicable(advice[0], config)


def test_divergence_is_named_even_after_two_epochs():
    advice = read_curves(make_history([0.7, math.inf], [0.7, math.nan]), "binary", TrainConfig(epochs=50))
    assert kinds(advice) == ["learning_rate_too_high"]
    assert "epoch 2" in advice[0].message


def test_underfitting_flat_near_chance():
    n = 30
    t = np.arange(n)
    loss = 0.69 - 0.01 * (1 - np.exp(-t / 3)) + noise(n, 0.001)
    val = 0.692 - 0.005 * (1 - np.exp(-t / 3)) + noise(n, 0.001, seed=2)
    acc = 0.55 + noise(n, 0.005, seed=3)
    config = TrainConfig(epochs=30)
    advice = read_curves(make_history(loss, val, acc, acc), "binary", config, class_counts={"no": 500, "yes": 480})
    assert kinds(advice) == ["underfitting"]
    assert advice[0].change == {"design": "width", "value": 2.0}
    assert_applicable(advice[0], config)
    # The same curves with a tiny learning rate: the steps are too small, so raise it.
    slow = TrainConfig(epochs=30, lr=1e-5)
    advice = read_curves(make_history(loss, val, acc, acc), "binary", slow)
    assert advice[0].kind == "underfitting"
    assert advice[0].change == {"setting": "lr", "value": 1e-4}


def test_underfitting_regression_barely_below_the_mean():
    n = 25
    loss = 0.97 + noise(n, 0.002)
    val = 0.98 + noise(n, 0.002, seed=4)
    advice = read_curves(make_history(loss, val), "regression", TrainConfig(epochs=25))
    assert kinds(advice) == ["underfitting"]


@pytest.mark.parametrize("counts", [{"no": 900, "yes": 100}, None])
def test_imbalance_accuracy_at_majority_share(counts):
    n = 15
    loss = 0.33 + noise(n, 0.001)
    val = 0.331 + noise(n, 0.001, seed=5)
    accuracy = np.full(n, 0.9)  # the model says "no" for every row
    config = TrainConfig(epochs=15)
    advice = read_curves(make_history(loss, val, accuracy, accuracy), "binary", config, class_counts=counts)
    assert kinds(advice) == ["imbalance"]
    assert advice[0].change == {"setting": "class_weights", "value": "balanced"}
    assert "90.0%" in advice[0].message
    assert_applicable(advice[0], config)
    # Already weighted: not imbalance advice again (the model is underfitting instead).
    weighted = read_curves(make_history(loss, val, accuracy, accuracy), "binary",
                           TrainConfig(epochs=15, class_weights="balanced"), class_counts=counts)
    assert "imbalance" not in kinds(weighted)


def test_plateau_more_epochs_when_the_run_ended_still_falling():
    n = 15
    t = np.arange(n)
    loss = 0.6 * np.exp(-t / 8) + 0.1
    val = 0.6 * np.exp(-t / 8) + 0.15
    config = TrainConfig(epochs=15)
    advice = read_curves(make_history(loss, val), "regression", config)
    assert kinds(advice) == ["plateau"]
    assert advice[0].change == {"setting": "epochs", "value": 30}
    assert_applicable(advice[0], config)
    # Mid-run, the same curves are simply healthy: the run goes on anyway.
    assert kinds(read_curves(make_history(loss, val), "regression", TrainConfig(epochs=100))) == ["healthy"]
    # Cut by the time limit: more time, not more epochs.
    timed = read_curves(make_history(loss, val, stopped="time_limit"), "regression",
                        TrainConfig(epochs=100, max_minutes=5))
    assert timed[0].change == {"setting": "max_minutes", "value": 10.0}


def test_plateau_stuck_flat():
    n = 30
    t = np.arange(n)
    loss = np.maximum(0.7 - 0.05 * t, 0.4) + noise(n, 0.0005)
    val = np.maximum(0.72 - 0.05 * t, 0.45) + noise(n, 0.001, seed=6)
    val[7] = 0.44  # the best, long ago
    config = TrainConfig(epochs=100, early_stopping_patience=None)
    advice = read_curves(make_history(loss, val), "binary", config)
    assert kinds(advice) == ["plateau"]
    assert advice[0].change == {"setting": "schedule", "value": "plateau"}
    assert_applicable(advice[0], config)
    with_schedule = read_curves(make_history(loss, val), "binary",
                                TrainConfig(epochs=100, schedule="cosine", lr=3e-3))
    assert with_schedule[0].change == {"setting": "lr", "value": 1e-3}


def test_early_stopping_cut_a_noisy_but_falling_run():
    n = 20
    t = np.arange(n)
    val = 0.8 - 0.02 * t
    val[16] = 0.40  # a lucky dip: the next 3 epochs (the patience) never beat it, yet the trend is down
    loss = 0.7 - 0.02 * t
    config = TrainConfig(epochs=200, early_stopping_patience=3)
    advice = read_curves(make_history(loss, val, stopped="early_stopping"), "regression", config)
    assert kinds(advice) == ["plateau"]
    assert advice[0].change == {"setting": "early_stopping_patience", "value": 6}
    assert_applicable(advice[0], config)


def test_too_early_and_inputs():
    assert read_curves(make_history([0.7, 0.6], [0.7, 0.65]), "binary", TrainConfig(epochs=50)) == []
    assert read_curves(History(), "binary") == []
    loss, val = healthy_curves()
    saved = make_history(loss, val).to_dict()  # a saved run's history and settings
    advice = read_curves(saved, "binary", TrainConfig(epochs=40).to_dict())
    assert kinds(advice) == ["healthy"]
    assert advice[0].to_dict()["kind"] == "healthy"
    with pytest.raises(SpecError, match="task"):
        read_curves(saved, "clustering")
    with pytest.raises(SpecError, match="Class counts"):
        read_curves(saved, "binary", class_counts=[5])


def test_imbalance_multiclass_with_a_list_of_counts():
    n = 12
    loss = 0.8 + noise(n, 0.002)
    accuracy = 0.7 + noise(n, 0.002, seed=7)  # 70% are the commonest of three classes
    advice = read_curves(make_history(loss, loss + 0.01, accuracy), "multiclass", TrainConfig(epochs=12),
                         class_counts=[700, 200, 100])
    assert kinds(advice) == ["imbalance"]
