"""Tests of the training tools: schedules, warm-up, clipping, label smoothing, class weights and
each optimizer's own settings, on the real loop and (where it counts) on real data.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.metrics import recall_score
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

from builder.errors import SpecError
from builder.losses import Objective, class_weight_vector, suggest_class_weights
from builder.schedules import LrSchedule, preview_lr
from builder.train import SCHEDULES, TensorData, TrainConfig, _make_optimizer, fit


def _rates(**settings) -> np.ndarray:
    return preview_lr(TrainConfig(**settings).validate())[1]


# -- schedules ----------------------------------------------------------------------------------


def test_constant_rate_never_moves():
    epochs, rates = preview_lr(TrainConfig(epochs=5, lr=0.01))
    assert epochs[0] == 0 and epochs[-1] == 5
    np.testing.assert_allclose(rates, 0.01)
    schedule = LrSchedule(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.01), TrainConfig(), 10)
    assert not schedule.active  # the loop skips the calls entirely


def test_step_schedule_is_a_staircase():
    rates = _rates(epochs=9, lr=1.0, schedule="step", lr_step_epochs=3, lr_factor=0.5)
    per_epoch = rates[:-1].reshape(9, -1)  # one row of batches per epoch
    assert np.allclose(per_epoch[:3], 1.0) and np.allclose(per_epoch[3:6], 0.5)
    assert np.allclose(per_epoch[6:], 0.25)


def test_cosine_falls_smoothly_to_zero():
    rates = _rates(epochs=10, lr=0.1, schedule="cosine")
    assert rates[0] == pytest.approx(0.1)
    assert np.all(np.diff(rates) <= 1e-12)  # never rises
    assert rates[len(rates) // 2] == pytest.approx(0.05, rel=0.05)  # half way down at half time
    assert rates[-1] == pytest.approx(0.0, abs=1e-9)


def test_warmup_climbs_from_one_percent_then_follows_the_schedule():
    rates = _rates(epochs=10, lr=0.1, schedule="cosine", warmup_epochs=2)
    steps = (len(rates) - 1) // 10
    assert rates[0] == pytest.approx(0.001)
    assert np.all(np.diff(rates[: 2 * steps + 1]) > 0)  # climbing during the warm-up
    assert rates[2 * steps] == pytest.approx(0.1)  # full rate when it ends
    assert np.all(np.diff(rates[2 * steps:]) <= 1e-12)  # then the cosine
    constant = _rates(epochs=4, lr=0.1, warmup_epochs=1)
    assert constant[0] == pytest.approx(0.001) and np.allclose(constant[steps:], 0.1)


@pytest.mark.parametrize("warmup, peak_epoch", [(0, 3.0), (5, 5.0)])
def test_one_cycle_climbs_to_the_rate_then_glides_down(warmup, peak_epoch):
    epochs, rates = preview_lr(TrainConfig(epochs=10, lr=0.1, schedule="one_cycle", warmup_epochs=warmup))
    assert rates.max() == pytest.approx(0.1)
    assert epochs[rates.argmax()] == pytest.approx(peak_epoch, abs=0.1)
    assert rates[0] < 0.01 and rates[-1] < 1e-4


def test_a_very_long_run_is_previewed_to_scale():
    epochs, rates = preview_lr(TrainConfig(epochs=100_000, lr=1.0, schedule="step", lr_step_epochs=50_000,
                                           lr_factor=0.5))
    assert len(rates) <= 4_001 and epochs[-1] == pytest.approx(100_000)
    assert rates[epochs < 49_000].min() == 1.0 and rates[epochs > 51_000].max() == 0.5


def test_plateau_drops_the_rate_only_after_patience_epochs_without_progress():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = LrSchedule(optimizer, TrainConfig(schedule="plateau", plateau_patience=2, lr_factor=0.5), 4)
    for loss in (1.0, 0.9, 0.9, 0.9):
        schedule.after_epoch(loss)
    assert schedule.lr == 1.0  # two epochs without progress: still patient
    schedule.after_epoch(0.9)
    assert schedule.lr == 0.5  # the third one drops it
    assert preview_lr(TrainConfig(epochs=3, schedule="plateau"))[1].max() == pytest.approx(1e-3)


def test_schedule_state_round_trips_so_a_run_can_continue():
    config = TrainConfig(epochs=6, lr=0.1, schedule="cosine", warmup_epochs=1)
    first = LrSchedule(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), config, 5)
    for _ in range(12):
        first.optimizer.step()
        first.after_batch()
    second = LrSchedule(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), config, 5)
    second.load_state_dict(first.state_dict())
    second.optimizer.param_groups[0]["lr"] = first.lr  # the optimizer's own state carries the rate
    for _ in range(5):
        for schedule in (first, second):
            schedule.optimizer.step()
            schedule.after_batch()
        assert second.lr == pytest.approx(first.lr)


def _blobs(n=300, seed=0) -> TensorData:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=(n, 1)).astype(np.float32)
    X = (rng.normal(size=(n, 4)) + 1.5 * (2 * y - 1)).astype(np.float32)
    cut = int(0.75 * n)
    return TensorData(X[:cut], y[:cut], X[cut:], y[cut:])


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_schedule_trains_and_records_its_rate(schedule):
    torch.manual_seed(0)
    config = TrainConfig(epochs=6, batch_size=32, lr=0.05, schedule=schedule, warmup_epochs=1,
                         lr_step_epochs=2, plateau_patience=1, early_stopping_patience=None)
    result = fit(nn.Linear(4, 1), _blobs(), "binary", config)
    history = result.history
    assert len(history.lr) == 6
    assert history.metrics["val_accuracy"][-1] > 0.8  # it learned
    expected_last = {"constant": 0.05, "step": 0.05 * 0.1**2}  # step: 2 drops after the warm-up
    if schedule in expected_last:
        assert history.lr[-1] == pytest.approx(expected_last[schedule])
    if schedule in ("cosine", "one_cycle"):
        assert history.lr[-1] < 0.005 < max(history.lr)
    assert history.to_dict()["lr"] == history.lr  # kept with the run


# -- gradient clipping, optimizer settings ------------------------------------------------------


def test_clipping_bounds_every_step():
    data = _blobs(n=200)
    config = TrainConfig(epochs=1, batch_size=1000, lr=1.0, optimizer="sgd", clip_grad=1e-3,
                         early_stopping_patience=None)
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    fit(model, data, "binary", config)  # one full batch: one SGD step of lr * clipped gradient
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert torch.linalg.norm(after - before) == pytest.approx(1e-3, rel=1e-3)
    torch.manual_seed(0)
    free = nn.Linear(4, 1)
    fit(free, data, "binary", TrainConfig(epochs=1, batch_size=1000, lr=1.0, optimizer="sgd",
                                         early_stopping_patience=None))
    moved = torch.linalg.norm(torch.cat([p.detach().flatten() for p in free.parameters()]) - before)
    assert moved > 0.1  # without clipping the same step is far larger


def test_each_optimizer_gets_its_own_settings():
    model = nn.Linear(2, 1)
    cpu = torch.device("cpu")
    adam = _make_optimizer(model, TrainConfig(optimizer="adam", beta1=0.8, beta2=0.95), cpu)
    assert adam.defaults["betas"] == (0.8, 0.95)
    rms = _make_optimizer(model, TrainConfig(optimizer="rmsprop", alpha=0.9), cpu)
    assert rms.defaults["alpha"] == 0.9
    sgd = _make_optimizer(model, TrainConfig(optimizer="momentum", momentum=0.8, nesterov=True), cpu)
    assert sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.8


def test_settings_that_only_work_together_are_refused_with_the_fix():
    problems = TrainConfig(epochs=5, warmup_epochs=5).problems()
    assert any("warm-up ('warmup_epochs') must be shorter" in p and "Try 1" in p for p in problems)
    problems = TrainConfig(optimizer="momentum", momentum=0.0, nesterov=True).problems()
    assert problems == ["Nesterov momentum ('nesterov') needs a momentum above 0; got 0. Try 0.9."]
    for name, value in [("schedule", "linear"), ("label_smoothing", 0.5), ("clip_grad", 0.0),
                        ("lr_factor", 1.0), ("beta2", 1.0), ("class_weights", "yes=-1")]:
        with pytest.raises(SpecError, match=f"'{name}'"):
            TrainConfig(**{name: value}).validate()


def test_new_settings_round_trip_through_json():
    config = TrainConfig(schedule="one_cycle", warmup_epochs=3, clip_grad=1.0, label_smoothing=0.1,
                         class_weights="yes = 3, no=1", beta1=0.85).validate()
    assert config.class_weights == {"yes": 3.0, "no": 1.0}  # the text form is parsed once
    assert TrainConfig.from_dict(config.to_dict()) == config


# -- label smoothing ----------------------------------------------------------------------------


def test_label_smoothing_matches_torch_and_smooths_binary_targets():
    out = torch.tensor([[4.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    y = torch.tensor([0, 1])
    smooth = Objective("multiclass", label_smoothing=0.2)
    assert smooth.train_loss(out, y) == pytest.approx(F.cross_entropy(out, y, label_smoothing=0.2).item())
    # Validation is never smoothed: the best epoch is picked on the true targets.
    total, weight = smooth.validation_sums(out, y)
    assert (total / weight).item() == pytest.approx(F.cross_entropy(out, y).item())
    logits, target = torch.tensor([[8.0], [-8.0]]), torch.tensor([[1.0], [0.0]])
    assert Objective("binary").train_loss(logits, target) < 1e-3
    # Smoothed, a certain answer is penalised: the best logit is log(0.95 / 0.05), not infinity.
    assert Objective("binary", 0.1).train_loss(logits, target) > 0.1
    best = torch.tensor([[math.log(0.95 / 0.05)]], requires_grad=True)
    Objective("binary", 0.1).train_loss(best, torch.tensor([[1.0]])).backward()
    assert best.grad.abs().item() < 1e-6


def test_label_smoothing_makes_a_real_model_less_overconfident():
    X, y = load_breast_cancer(return_X_y=True)
    X = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
    y = y.reshape(-1, 1).astype(np.float32)
    data = TensorData(X[:400], y[:400], X[400:], y[400:])
    confidence = {}
    for smoothing in (0.0, 0.2):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 1))
        config = TrainConfig(epochs=40, lr=0.01, label_smoothing=smoothing, early_stopping_patience=None)
        fit(model, data, "binary", config)
        with torch.no_grad():
            p = torch.sigmoid(model(torch.from_numpy(X[400:])))
        confidence[smoothing] = (p - 0.5).abs().mean().item()  # 0.5 = always certain
        assert ((p > 0.5).float().numpy() == y[400:]).mean() > 0.93  # still right
    # Smoothed towards 0.9 / 0.1, the typical answer is clearly less certain.
    assert confidence[0.2] < 0.42 and confidence[0.0] - confidence[0.2] > 0.03


# -- class weights ------------------------------------------------------------------------------


def test_balanced_weights_are_scikit_learns():
    y = np.array([0] * 90 + [1] * 10 + [2] * 20)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=y)
    np.testing.assert_allclose(class_weight_vector("balanced", y), expected, rtol=1e-6)
    assert class_weight_vector("off", y) is None
    per_class = class_weight_vector({"b": 5.0}, y, classes=["a", "b", "c"])
    np.testing.assert_allclose(per_class, [1.0, 5.0, 1.0])
    with pytest.raises(SpecError, match="'z'.*the classes are 'a', 'b', 'c'"):
        class_weight_vector({"z": 2.0}, y, classes=["a", "b", "c"])


def test_weighted_losses_weight_rows_by_their_class():
    out = torch.tensor([[1.0], [-1.0], [2.0]])
    y = torch.tensor([[1.0], [0.0], [0.0]])
    weights = torch.tensor([1.0, 4.0])
    row = F.binary_cross_entropy_with_logits(out, y, reduction="none").flatten()
    expected = (row * torch.tensor([4.0, 1.0, 1.0])).sum() / 6
    assert Objective("binary", class_weights=weights).train_loss(out, y).item() == pytest.approx(expected.item())
    total, weight = Objective("binary", class_weights=weights).validation_sums(out, y)
    assert (total / weight).item() == pytest.approx(expected.item())


def test_balanced_weights_find_more_of_a_rare_class_on_real_data():
    # Diabetes progression: the worst 15% of patients are the rare class ("severe"), and the
    # measurements overlap, so an unweighted model can look good by rarely saying "severe".
    X, target = load_diabetes(return_X_y=True)
    X = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
    y = (target > np.quantile(target, 0.85)).astype(np.float32).reshape(-1, 1)  # 1 = severe
    cut = 300
    data = TensorData(X[:cut], y[:cut], X[cut:], y[cut:], classes=["mild", "severe"])
    counts = {"mild": int((y[:cut] == 0).sum()), "severe": int((y[:cut] == 1).sum())}
    advice = suggest_class_weights(counts)
    assert advice is not None and advice.setting == "balanced" and "'severe'" in advice.reason
    recall = {}
    for setting in ("off", "balanced"):
        torch.manual_seed(0)
        model = nn.Linear(10, 1)
        fit(model, data, "binary", TrainConfig(epochs=30, lr=0.01, batch_size=32, class_weights=setting,
                                               early_stopping_patience=None))
        with torch.no_grad():
            predicted = (model(torch.from_numpy(X[cut:])) > 0).numpy().astype(int)
        recall[setting] = recall_score(y[cut:].astype(int), predicted)
    assert recall["balanced"] > recall["off"] + 0.2


def test_no_advice_for_balanced_classes():
    assert suggest_class_weights({"yes": 480, "no": 520}) is None
    assert suggest_class_weights({"only": 10}) is None
