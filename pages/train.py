"""Train: a few settings, one Start button, live progress and curves, the result, earlier runs."""

from __future__ import annotations

import streamlit as st

from builder.device import choose_device
from builder.errors import BuilderError
from builder.train import OPTIMIZER_HELP, OPTIMIZERS, SETTINGS, TrainConfig
from pages.components import charts
from pages.components.state import app_state
from pages.components.training import (
    current_job,
    design_problems,
    earlier_runs,
    live_panel,
    missing_data_message,
    result_summary,
    show_failure,
    start_training,
    take_over_if_done,
)
from pages.components.ui import empty_state, go_to, page_header, user_errors

OPTIMIZER_NAMES = {"sgd": "SGD", "momentum": "SGD with momentum", "adagrad": "Adagrad", "rmsprop": "RMSprop",
                   "adam": "Adam (recommended)", "adamw": "AdamW"}
DEVICE_NAMES = {"auto": "Automatic (GPU if there is one)", "cpu": "CPU", "cuda": "NVIDIA GPU (CUDA)",
                "mps": "Apple GPU (MPS)"}


def number(name: str, value, disabled: bool, **kwargs):
    """A number box for one setting, labelled and explained by the engine's declaration of it."""
    setting = SETTINGS[name]
    return st.number_input(setting.label, value=value, key=f"train_{name}", help=setting.help, disabled=disabled,
                           **kwargs)


def settings_form(config: TrainConfig, disabled: bool) -> TrainConfig:
    """The settings with their defaults; returns them as a (not yet validated) config."""
    st.subheader("Settings")
    left, right = st.columns(2)
    with left:
        epochs = number("epochs", config.epochs, disabled, step=1)
        lr = number("lr", config.lr, disabled, step=0.0005, format="%g")
        seed = number("seed", config.seed, disabled, step=1)
    with right:
        batch_size = number("batch_size", config.batch_size, disabled, step=8)
        val_fraction = number("val_fraction", config.val_fraction, disabled, step=0.05,
                              format="%g")
        optimizer = st.selectbox(SETTINGS["optimizer"].label, OPTIMIZERS, index=OPTIMIZERS.index(config.optimizer),
                                 format_func=OPTIMIZER_NAMES.get, key="train_optimizer", disabled=disabled,
                                 help=SETTINGS["optimizer"].help)
    st.caption(f":material/lightbulb: {OPTIMIZER_HELP[optimizer]}")
    with st.expander("Advanced settings"):
        a, b = st.columns(2)
        with a:
            weight_decay = number("weight_decay", config.weight_decay, disabled, step=0.0001,
                                  format="%g")
            patience = number("early_stopping_patience",
                              config.early_stopping_patience or 0, disabled, step=1)
            test_fraction = number("test_fraction", config.test_fraction, disabled, step=0.05,
                                   format="%g")
        with b:
            momentum = number("momentum", config.momentum, disabled, step=0.05, format="%g")
            minutes = number("max_minutes", config.max_minutes, disabled, step=1.0,
                             format="%g", placeholder="no limit")
            device = st.selectbox(SETTINGS["device"].label, list(DEVICE_NAMES), index=list(DEVICE_NAMES).index(config.device),
                                  format_func=DEVICE_NAMES.get, key="train_device", help=SETTINGS["device"].help,
                                  disabled=disabled)
    return TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, momentum=momentum,
                       weight_decay=weight_decay, seed=seed, device=device, early_stopping_patience=patience or None,
                       max_minutes=minutes, val_fraction=val_fraction, test_fraction=test_fraction)


def device_badge(preference: str) -> bool:
    """Where training will run and why; False when the chosen device is not available."""
    try:
        choice = choose_device(preference)
    except BuilderError as exc:
        st.warning(str(exc), icon=":material/memory:")
        return False
    st.badge(choice.label, icon=":material/memory:", color="green" if choice.device.type != "cpu" else "blue")
    st.caption(f"Why: {choice.reason}.")
    return True


state = app_state()
page_header("Train", "Teach the model from your data. The charts update live; you can switch pages and come back.")
if not state.has_data:
    empty_state(missing_data_message(state), "Data", "Go to Data")
if not state.has_design:
    empty_state("Choose a model design first.", "Build", "Go to Build")
unfit = design_problems(state)

job = current_job(state)
status = take_over_if_done(state, job) if job is not None else None
running = status == "running"

if running:  # the live run gets the whole width; its settings wait, read-only, underneath
    st.subheader(f"Training: {job.title}")
    live_panel(job, state.data_spec.task, choose_device(state.config.device).label)
    with st.expander("Settings of this run"):
        settings_form(state.config, disabled=True)
else:
    if status == "failed":
        show_failure(job)
    side, main = st.columns([3, 2], gap="large")
    with side:
        config = settings_form(state.config, disabled=False)
        problems = config.problems()
        for problem in problems:
            st.error(problem, icon=":material/error:")
        if not problems and config != state.config:
            state.set_config(config)  # remembered without a Start too: a refresh keeps the settings
    with main:
        st.subheader("Start")
        available = device_badge(config.device)
        for problem in unfit:
            st.error(f"The design does not fit your data: {problem}", icon=":material/account_tree:")
        if st.button("Start training", type="primary", icon=":material/play_arrow:", width="stretch",
                     disabled=bool(problems or unfit) or not available, key="train_start"):
            with user_errors():
                start_training(state, config)
                st.rerun()
        if unfit:
            go_to("Build", "Fix the design on the Build page")
        if problems:
            st.caption(f":material/arrow_back: Fix the {len(problems)} setting(s) marked in red to start.")
        st.caption("Training runs on this computer; your data never leaves it. You can stop at any time "
                   "and keep the best model so far.")
        if not state.has_model:
            st.plotly_chart(charts.waiting_figure("Your loss curve appears here as soon as training starts."),
                            key="preview")
    if state.has_model:
        st.divider()
        st.subheader("Current model")
        if status in ("adopted", "finished"):
            st.success("Training finished and the model was saved in this workspace.", icon=":material/check_circle:")
        result_summary(state.trained, with_curves=True)
        go_to("Evaluate", "Next: see how good the model is")
earlier_runs(state)
