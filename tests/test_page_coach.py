"""The coach on the Train page: the reading of the curves during and after training, and its one
click that changes the next training's settings (or the design) exactly as the advice says."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from builder.coach import read_curves
from builder.errors import SpecError
from builder.spec import LayerSpec, ModelSpec
from builder.templates import starter_spec
from builder.train import History, TrainConfig
from pages.components import coach_view
from pages.components.coach_view import apply_change, history_from_logs
from tests.app_helpers import button, open_page
from tests.test_page_train import PAGE, make_workspace, poll_until, running_job

t40 = np.arange(40)


def make_history(loss, val_loss, stopped="completed") -> History:
    history = History()
    for i, (a, b) in enumerate(zip(loss, val_loss, strict=True)):
        history.append({"epoch": i + 1, "loss": float(a), "val_loss": float(b), "seconds": 0.1})
    history.best_epoch = int(np.argmin(history.val_loss)) + 1
    history.stopped_reason = stopped
    return history


def overfitting_history() -> History:
    """Training keeps falling while validation turned up after epoch 13."""
    return make_history(0.6 * np.exp(-t40 / 6) + 0.02, 0.3 + 0.0005 * (t40 - 12) ** 2)


def still_improving_history(n: int = 8) -> History:
    t = np.arange(n)
    return make_history(np.exp(-t / 10), np.exp(-t / 10) + 0.05)


def dropouts(design: ModelSpec) -> list[float]:
    return [layer.params["p"] for layer in design.layers if layer.type == "Dropout"]


def sizes(design: ModelSpec) -> list[int]:
    return [layer.params["out_features"] for layer in design.layers if layer.type == "Linear"]


# --- applying a change (no page) ---------------------------------------------------------------------

def test_a_setting_change_from_planted_curves_changes_that_setting_only():
    config = TrainConfig(epochs=8, early_stopping_patience=None)
    advice = read_curves(still_improving_history(8), "regression", config)
    assert advice[0].change == {"setting": "epochs", "value": 16}
    design = starter_spec("mlp", 4, 150)
    new, same_design, done = apply_change(advice[0].change, config, design, "regression")
    assert new == dataclasses.replace(config, epochs=16) and same_design is design
    assert done == "epochs is now 16"
    # Weight decay for a run that memorises: a float setting, validated like the form's values.
    change = read_curves(overfitting_history(), "regression", TrainConfig(epochs=40))[0].change
    assert apply_change(change, config, design, "regression")[0].weight_decay == 1e-3


def test_a_dropout_change_sets_every_dropout_and_nothing_else():
    config = TrainConfig(epochs=40, weight_decay=0.05)  # already strong: the coach turns to dropout
    advice = read_curves(overfitting_history(), "regression", config)
    assert advice[0].kind == "overfitting" and advice[0].change == {"design": "dropout", "value": 0.5}
    design = starter_spec("mlp", 4, 150)
    assert dropouts(design) == [0.1, 0.1]
    same_config, new, done = apply_change(advice[0].change, config, design, "regression", "table")
    assert same_config is config
    assert dropouts(new) == [0.5, 0.5] and sizes(new) == sizes(design)
    assert [layer.type for layer in new.layers] == [layer.type for layer in design.layers]
    assert "50%" in done
    # Uneven rates where the first already has the value: every one is still set.
    uneven = ModelSpec("mlp", [LayerSpec("Linear", {"out_features": 8}), LayerSpec("Dropout", {"p": 0.5}),
                               LayerSpec("Linear", {"out_features": 8}), LayerSpec("Dropout", {"p": 0.2})])
    assert dropouts(apply_change({"design": "dropout", "value": 0.5}, config, uneven, "regression")[1]) == [0.5, 0.5]


def test_a_width_change_scales_the_layers_like_the_search():
    design = starter_spec("mlp", 4, 150)
    _, new, done = apply_change({"design": "width", "value": 2.0}, TrainConfig(), design, "multiclass", "table")
    assert sizes(new) == [2 * s for s in sizes(design)] and dropouts(new) == dropouts(design)
    assert "128 to 256" in done


@pytest.mark.parametrize("change, design, words", [
    ({"setting": "lr", "value": -1.0}, None, "Learning rate ('lr') must be"),
    ({"setting": "nope", "value": 1}, None, "unknown setting"),
    ({"design": "dropout", "value": 0.5}, ModelSpec("mlp", [LayerSpec("Linear", {"out_features": 8})]),
     "no dropout layer"),
    ({"design": "dropout", "value": 0.5}, None, "Build page"),
    ({"design": "dropout", "value": 1.5}, "starter", "would not work"),
])
def test_a_change_that_cannot_apply_says_why(change, design, words):
    design = starter_spec("mlp", 4, 150) if design == "starter" else design
    with pytest.raises(SpecError, match=words.replace("(", r"\(").replace(")", r"\)")):
        apply_change(change, TrainConfig(), design, "regression", "table")


def test_the_live_history_is_built_from_the_job_logs():
    logs = [{"epoch": 1, "loss": 1.0, "val_loss": 1.1, "accuracy": 0.5, "val_accuracy": 0.4, "best_epoch": 1},
            {"epoch": 2, "loss": 0.8, "val_loss": 0.9, "seconds": 0.2, "accuracy": 0.6, "val_accuracy": 0.5}]
    history = history_from_logs(logs)
    assert history.epoch == [1, 2] and history.val_loss == [1.1, 0.9]
    assert history.metrics["accuracy"] == [0.5, 0.6] and history.seconds == [0.0, 0.2]


# --- the panel on its own: view-only links and changes that cannot apply ------------------------------

def _panel_script(read_only: bool, design_dict: dict, history_dict: dict) -> None:
    from types import SimpleNamespace

    from builder.spec import ModelSpec
    from builder.train import History, TrainConfig
    from pages.components.coach_view import coach_panel

    saved = {}
    state = SimpleNamespace(
        workspace=SimpleNamespace(read_only=read_only, save_state=saved.__setitem__),
        config=TrainConfig(epochs=40, weight_decay=0.05), design=ModelSpec.from_dict(design_dict),
        data_spec=None, class_counts=lambda: None, set_design=None, set_config=None)
    coach_panel(state, History.from_dict(history_dict), "regression", state.config, True, key="planted")


def test_a_view_only_link_reads_the_curves_without_buttons():
    from streamlit.testing.v1 import AppTest

    design = starter_spec("mlp", 4, 150).to_dict()
    at = AppTest.from_function(_panel_script, args=(True, design, overfitting_history().to_dict())).run()
    assert not at.exception
    assert "memorising" in at.warning[0].value and "epoch 13" in at.warning[0].value
    assert not at.button
    assert any("Suggested next: Set dropout to 0.5" in c.value for c in at.caption)


def test_a_change_that_cannot_apply_is_shown_plainly_and_nothing_changes():
    from streamlit.testing.v1 import AppTest

    design = ModelSpec("mlp", [LayerSpec("Linear", {"out_features": 8}), LayerSpec("ReLU", {})]).to_dict()
    at = AppTest.from_function(_panel_script, args=(False, design, overfitting_history().to_dict())).run()
    button(at, "Set dropout to 0.5").click().run()
    assert not at.exception
    assert any("no dropout layer" in e.value for e in at.error)
    at.run()  # the message stays on the next redraw, with the button to try again
    assert any("no dropout layer" in e.value for e in at.error) and button(at, "Set dropout to 0.5")


# --- the Train page --------------------------------------------------------------------------------------

def test_after_a_short_run_the_coach_says_train_longer_and_one_click_sets_it(app, builder_home):
    workspace = make_workspace(builder_home, "iris")
    at = open_page(app, workspace, PAGE)
    at.number_input(key="train_epochs").set_value(6)
    at.number_input(key="train_early_stopping_patience").set_value(0).run()  # kept before Start reruns
    at.button(key="train_start").click().run()
    poll_until(at, lambda at: at.session_state["app"].has_model)
    state = at.session_state["app"]

    advice = next(i for i in at.info if "Training stopped while still improving" in i.value)
    assert "still falling" in advice.value
    button(at, "Set epochs to 12").click().run()
    assert not at.exception
    assert state.config.epochs == 12
    assert state.config == dataclasses.replace(state.trained.config, epochs=12)  # that one setting only
    assert workspace.load_state("train_config")["epochs"] == 12
    assert at.number_input(key="train_epochs").value == 12  # the form shows it and keeps it
    assert any("epochs is now 12" in s.value and "next training" in s.value for s in at.success)
    assert any("epochs is now 12" in t.value for t in at.toast)
    at.run()
    assert state.config.epochs == 12 and not any(b.label == "Set epochs to 12" for b in at.button)

    # The same run read as one that memorises, with weight decay already strong: more dropout.
    design = state.design
    state.trained.history = overfitting_history()
    state.trained.config = dataclasses.replace(state.trained.config, weight_decay=0.05)
    at.run()
    assert any("memorising" in w.value for w in at.warning)
    button(at, "Set dropout to 0.5").click().run()
    assert not at.exception
    assert dropouts(state.design) == [0.5] * len(dropouts(design)) and sizes(state.design) == sizes(design)
    saved = ModelSpec.from_dict(workspace.load_state("design"))
    assert dropouts(saved) == dropouts(state.design)
    assert state.config.epochs == 12  # the settings are untouched by a design change


def test_during_training_the_coach_reads_each_epoch_once_and_its_change_outlives_the_run(
        app, builder_home, monkeypatch):
    reads = []

    def counted(history, task, config=None, **kwargs):
        reads.append((history.epochs_run, kwargs.get("finished")))
        return read_curves(history, task, config, **kwargs)

    monkeypatch.setattr(coach_view, "read_curves", counted)
    at = open_page(app, make_workspace(builder_home, "iris"), PAGE)
    at.number_input(key="train_epochs").set_value(100_000)
    at.number_input(key="train_batch_size").set_value(8)
    at.number_input(key="train_lr").set_value(1.0)  # far too large: the loss jumps about
    at.number_input(key="train_early_stopping_patience").set_value(0).run()
    at.button(key="train_start").click().run()
    job = running_job(at)
    deadline = time.monotonic() + 30
    while job.snapshot().epoch < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    for _ in range(3):  # several redraws within (about) the same epochs
        at.run()
    assert not at.exception
    assert "Epoch" in at.get("progress")[0].proto.text  # still training
    live = [r for r in reads if r[1] is False]
    assert live and len(live) == len(set(live))  # never read twice for the same epoch

    state = at.session_state["app"]
    slower = next(b for b in at.button if b.label.startswith("Set learning rate to"))
    value = float(slower.label.rsplit(" ", 1)[-1])
    assert value < 1.0
    slower.click().run()
    assert not at.exception
    assert state.config.lr == value
    assert any("carries on with its own settings" in s.value for s in at.success)

    button(at, "Stop").click().run()
    poll_until(at, lambda at: at.session_state["app"].has_model)
    assert state.trained.config.lr == 1.0  # the run kept its own settings...
    assert state.config.lr == value and at.number_input(key="train_lr").value == value  # ...the next one changed
