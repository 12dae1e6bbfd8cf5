"""The Train page's settings form: every widget labelled and explained by ``builder.train_config``.

The form shows what matters first (epochs, batch size, learning rate, optimizer, schedule with a
preview of the rate) and keeps the rest in expanders. Settings that do not apply (Adam's betas
under SGD, class weights for a regression) are not drawn and keep their values, so switching back
and forth loses nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import streamlit as st

from builder.losses import suggest_class_weights
from builder.schedules import preview_lr
from builder.train_config import (
    OPTIMIZER_HELP,
    OPTIMIZER_SETTINGS,
    OPTIMIZERS,
    SCHEDULE_HELP,
    SCHEDULES,
    SETTINGS,
    TrainConfig,
)
from pages.components import charts
from pages.components.i18n import t, tm
from pages.components.ui import param_input

OPTIMIZER_NAMES = {"sgd": "SGD", "momentum": "SGD with momentum", "adagrad": "Adagrad", "rmsprop": "RMSprop",
                   "adam": "Adam (recommended)", "adamw": "AdamW"}
SCHEDULE_NAMES = {"constant": "Constant", "step": "Step down", "cosine": "Cosine", "one_cycle": "One cycle",
                  "plateau": "Drop on plateau"}
DEVICE_NAMES = {"auto": "Automatic (GPU if there is one)", "cpu": "CPU", "cuda": "NVIDIA GPU (CUDA)",
                "mps": "Apple GPU (MPS)"}
CLASS_WEIGHT_NAMES = {"off": "Off: every row counts the same", "balanced": "Balanced: rare classes count more",
                      "custom": "My own weight per class"}


def in_sentence(label: str) -> str:
    """An engine's label inside a sentence: lower case in English ("weight decay"), else translated."""
    shown = tm(label)
    return label.lower() if shown == label else shown


def forget_widgets() -> None:
    """Drop the form's widget values, so its next draw shows the config's values again."""
    for key in [k for k in st.session_state if str(k).startswith("train_") and k != "train_suggest"]:
        del st.session_state[key]


def number(name: str, value: Any, disabled: bool, **kwargs: Any) -> Any:
    """A number box for one setting, labelled and explained by the engine's declaration of it."""
    setting = SETTINGS[name]
    return st.number_input(tm(setting.label), value=value, key=f"train_{name}", help=tm(setting.help),
                           disabled=disabled, **kwargs)


def _choice(name: str, options: tuple[str, ...], names: Mapping[str, str], value: str, disabled: bool) -> str:
    setting = SETTINGS[name]
    shown = {option: t(names[option]) for option in options}  # labelled now, in the page's language
    return st.selectbox(tm(setting.label), options, index=options.index(value), format_func=shown.__getitem__,
                        key=f"train_{name}", help=tm(setting.help), disabled=disabled)


def settings_form(config: TrainConfig, disabled: bool, task: str,
                  class_counts: Mapping[str, int] | None = None) -> TrainConfig:
    """Draw the settings with their current values; return them as a (not yet validated) config.

    Args:
        config: the settings to start from (fields not drawn keep these values).
        disabled: read-only (a run is in progress).
        task: the data's task; class settings are drawn for classification only.
        class_counts: training rows per class, to suggest class weights when they are uneven.
    """
    st.subheader(t("Settings"))
    values: dict[str, Any] = {}
    left, right = st.columns(2)
    with left:
        values["epochs"] = number("epochs", config.epochs, disabled, step=1)
        values["lr"] = number("lr", config.lr, disabled, step=0.0005, format="%g")
        values["seed"] = number("seed", config.seed, disabled, step=1)
    with right:
        values["batch_size"] = number("batch_size", config.batch_size, disabled, step=8)
        values["val_fraction"] = number("val_fraction", config.val_fraction, disabled, step=0.05, format="%g")
        values["optimizer"] = _choice("optimizer", OPTIMIZERS, OPTIMIZER_NAMES, config.optimizer, disabled)
    st.caption(f":material/lightbulb: {tm(OPTIMIZER_HELP[values['optimizer']])}")
    values.update(_schedule(config, disabled, values))
    with st.expander(t("Advanced settings")):
        a, b = st.columns(2)
        with a:
            values["weight_decay"] = number("weight_decay", config.weight_decay, disabled, step=0.0001, format="%g")
            values["early_stopping_patience"] = number("early_stopping_patience",
                                                       config.early_stopping_patience or 0, disabled, step=1) or None
            values["test_fraction"] = number("test_fraction", config.test_fraction, disabled, step=0.05, format="%g")
            values["clip_grad"] = number("clip_grad", config.clip_grad, disabled, step=0.5, format="%g",
                                         placeholder=t("off"))
        with b:
            for name in OPTIMIZER_SETTINGS.get(values["optimizer"], ()):
                values[name] = param_input(SETTINGS[name], getattr(config, name), f"train_{name}", disabled)
            values["max_minutes"] = number("max_minutes", config.max_minutes, disabled, step=1.0, format="%g",
                                           placeholder=t("no limit"))
            values["device"] = _choice("device", tuple(DEVICE_NAMES), DEVICE_NAMES, config.device, disabled)
            values["cv_folds"] = number("cv_folds", config.cv_folds, disabled, step=1, placeholder=t("off"))
    if task in ("binary", "multiclass"):
        with st.expander(t("Classes"), expanded=_uneven(class_counts) and config.class_weights == "off"):
            values.update(_class_settings(config, disabled, class_counts))
    return dataclasses.replace(config, **values)


def _schedule(config: TrainConfig, disabled: bool, values: dict[str, Any]) -> dict[str, Any]:
    """The schedule, its own settings and a small picture of the rate it gives."""
    chosen: dict[str, Any] = {}
    left, right = st.columns([2, 3])
    with left:
        chosen["schedule"] = _choice("schedule", SCHEDULES, SCHEDULE_NAMES, config.schedule, disabled)
        chosen["warmup_epochs"] = number("warmup_epochs", config.warmup_epochs, disabled, step=1, min_value=0)
        if chosen["schedule"] == "step":
            chosen["lr_step_epochs"] = number("lr_step_epochs", config.lr_step_epochs, disabled, step=1)
        if chosen["schedule"] in ("step", "plateau"):
            chosen["lr_factor"] = number("lr_factor", config.lr_factor, disabled, step=0.05, format="%g")
        if chosen["schedule"] == "plateau":
            chosen["plateau_patience"] = number("plateau_patience", config.plateau_patience, disabled, step=1)
    with right:
        st.caption(tm(SCHEDULE_HELP[chosen["schedule"]]))
        preview = dataclasses.replace(config, **values, **chosen)
        if not preview.problems():
            epochs, rates = preview_lr(preview)
            note = t("then lower on each plateau") if preview.schedule == "plateau" else None
            st.plotly_chart(charts.lr_preview_figure(epochs, rates, note), key="lr_preview",
                            config={"displayModeBar": False})
    return chosen


def _uneven(class_counts: Mapping[str, int] | None) -> bool:
    return bool(class_counts) and suggest_class_weights(class_counts) is not None


def _class_settings(config: TrainConfig, disabled: bool,
                    class_counts: Mapping[str, int] | None) -> dict[str, Any]:
    """Class weights (with the suggestion when the classes are uneven) and label smoothing."""
    advice = suggest_class_weights(class_counts) if class_counts else None
    current = config.class_weights if isinstance(config.class_weights, str) else "custom"
    if advice is not None and current == "off":
        st.info(t("{reason} Suggested: **balanced** class weights.", reason=tm(advice.reason)),
                icon=":material/balance:")
    shown = {mode: t(name) for mode, name in CLASS_WEIGHT_NAMES.items()}
    mode = st.radio(tm(SETTINGS["class_weights"].label), tuple(CLASS_WEIGHT_NAMES),
                    index=tuple(CLASS_WEIGHT_NAMES).index(current), format_func=shown.__getitem__,
                    key="train_class_weights_mode", disabled=disabled, help=tm(SETTINGS["class_weights"].help),
                    horizontal=True)
    weights: Any = mode
    if mode == "custom":
        known = config.class_weights if isinstance(config.class_weights, dict) else {}
        labels = list(class_counts or known)
        written = ", ".join(f"{label}={known.get(label, 1):g}" for label in labels)
        weights = st.text_input(t("Weight per class"), value=written, key="train_class_weights_text",
                                disabled=disabled, help=t("One 'class=weight' pair per class, separated by commas. "
                                                          "A class left out counts 1."))
    smoothing = number("label_smoothing", config.label_smoothing, disabled, step=0.05, format="%g")
    return {"class_weights": weights, "label_smoothing": smoothing}
