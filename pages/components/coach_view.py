"""The coach on the Train page: what the curves say, and the one change to try next, one click away.

``builder.coach.read_curves`` reads the curves; this module draws its advice (a box per advice, a
button per change) and applies a change to the settings or the design the next training uses.
During training the reading is refreshed when an epoch ends, never more often (the live view
redraws every half second and reuses it in between).

A change is applied to the *current* settings and design (``state.config``, ``state.design``), not
to the run that was read: the run itself is never altered. What a click did (or why it could not)
is remembered for the session, so the live view's redraws keep showing it and a second click can
not apply a relative change ("double the units") twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

from builder.coach import Advice, read_curves
from builder.errors import BuilderError, SpecError
from builder.search import SIZE_PARAMS, SearchSpace
from builder.spec import ModelSpec
from builder.train import History
from builder.train_config import SETTINGS, TrainConfig
from pages.components.i18n import t, tm
from pages.components.state import AppState
from pages.components.train_settings import forget_widgets, in_sentence

READINGS = "coach_readings"  # session state: {panel key: (what was read, [Advice])}
OUTCOMES = "coach_outcomes"  # session state: {button key: ("applied" | "error", message)}
TOAST = "coach_toast"  # session state: the message of a change just applied, toasted once

BOXES = {  # kind -> (Streamlit box, icon)
    "learning_rate_too_high": ("warning", ":material/bolt:"),
    "imbalance": ("warning", ":material/balance:"),
    "overfitting": ("warning", ":material/school:"),
    "underfitting": ("info", ":material/trending_flat:"),
    "plateau": ("info", ":material/timeline:"),
    "healthy": ("success", ":material/check_circle:"),
}


def history_from_logs(logs: Sequence[Mapping[str, Any]]) -> History:
    """The ``History`` of a run still training, from its job's per-epoch logs."""
    history = History()
    for log in logs:
        history.append({"seconds": 0.0, **log})
    return history


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def apply_change(change: Mapping[str, Any], config: TrainConfig, design: ModelSpec | None, task: str,
                 kind: str | None = None) -> tuple[TrainConfig, ModelSpec | None, str]:
    """Apply one advice's ``change`` to the settings or the design the next training uses.

    Args:
        change: ``{"setting": name, "value": v}`` or ``{"design": "dropout" | "width", "value": v}``
            (``builder.coach.Advice.change``).
        config: the current settings; design: the current design.
        task, kind: the data's task and kind, to check the changed design against.

    Returns:
        ``(config, design, what)``: the new settings and design (one of them changed) and what
        changed, in words ("epochs is now 12"), in the session's language.

    Raises:
        SpecError: the change does not apply (an unknown setting, a value the setting refuses, a
            design without dropout or sizes to change, a design the change would break); the
            message says why and what to do instead.
    """
    if "setting" in change:
        name, value = change["setting"], change.get("value")
        if name not in SETTINGS:
            raise SpecError(f"The coach suggested an unknown setting {name!r}; nothing was changed.")
        new = dataclasses.replace(config, **{name: value}).validate()
        return new, design, t("{setting} is now {value}", setting=in_sentence(SETTINGS[name].label),
                              value=_shown(getattr(new, name)))
    what, value = change.get("design"), change.get("value")
    if what not in ("dropout", "width"):
        asked = dict(change)
        raise SpecError(f"The coach suggested a change it cannot make ({asked!r}); nothing was changed.")
    if design is None:
        raise SpecError("There is no model design to change yet: choose one on the Build page.")
    space = SearchSpace(design, config, task)
    if what == "dropout":
        if space.dropout is None:
            rate = _shown(float(value))
            raise SpecError("This design has no dropout layer to change. On the Build page, add a Dropout "
                            f"layer after a hidden layer with a rate of {rate}, or try weight decay.")
        space.dropout = None  # set every dropout, even when the first one already has the value
        new_design = space.design(1.0, None, float(value))
        done = t("every dropout layer now switches off {share:.0%} of the units while training", share=float(value))
    else:
        if not space.sized:
            raise SpecError("This design has no layer sizes to scale; change its layers on the Build page.")
        factor = float(value)
        new_design = space.design(factor, None, None)
        before, after = _first_size(design), _first_size(new_design)
        if before is None:
            done = t("every layer now has {factor:g} times the units", factor=factor)
        else:
            done = t("every layer now has {factor:g} times the units ({before} to {after} in the first)",
                     factor=factor, before=before, after=after)
    problems = new_design.validate(task, kind)
    if problems:
        details = " ".join(p.message for p in problems)
        raise SpecError(f"The changed design would not work: {details} The design was left as it was.")
    return config, new_design, done


def _first_size(design: ModelSpec) -> int | None:
    return next((layer.params[name] for layer in design.layers for name in SIZE_PARAMS if name in layer.params), None)


def _already(change: Mapping[str, Any], config: TrainConfig, design: ModelSpec | None) -> str | None:
    """What the current settings or design already say when they hold the change, else ``None``."""
    if "setting" in change:
        name = change["setting"]
        if name in SETTINGS and getattr(config, name, object()) == change.get("value"):
            return t("Your settings already have {setting} at {value}.", setting=in_sentence(SETTINGS[name].label),
                     value=_shown(change["value"]))
        return None
    if change.get("design") == "dropout" and design is not None:
        rates = [float(layer.params.get("p", 0.5)) if layer.type.startswith("Dropout")
                 else float(layer.params.get("dropout", 0.1))
                 for layer in design.layers if layer.type.startswith("Dropout") or layer.type == "TransformerEncoderLayer"]
        if rates and all(abs(rate - float(change["value"])) < 1e-9 for rate in rates):
            return t("Your design already uses a dropout of {value}.", value=_shown(float(change["value"])))
    return None


def _reading(state: AppState, history: History, task: str, config: TrainConfig, finished: bool,
             key: str) -> list[Advice] | None:
    """The advice for these curves, read again only when an epoch was added (or the run ended);
    ``None`` when the curves cannot be read (an unknown task, damaged numbers)."""
    readings = st.session_state.setdefault(READINGS, {})
    seen = (history.epochs_run, finished, history.stopped_reason)
    if key in readings and readings[key][0] == seen:
        return readings[key][1]
    try:
        counts = state.class_counts() if task in ("binary", "multiclass") else None
    except BuilderError:
        counts = None
    try:
        advice = read_curves(history, task, config, class_counts=counts, finished=finished)
    except (BuilderError, ValueError):
        advice = None
    readings[key] = (seen, advice)
    return advice


def coach_panel(state: AppState, history: History, task: str, config: TrainConfig | None, finished: bool,
                key: str) -> None:
    """What the curves say and the change to try next, with a button that applies it.

    Args:
        state: the session's state (its settings and design are what a button changes).
        history: the run's curves: the live job's epochs so far, or the finished run's history.
        task: the run's task. config: the run's own settings (the reading is about them).
        finished: whether the run has ended (only then may it say "train longer").
        key: names this panel's reading and buttons (e.g. the job's or the run's id).
    """
    if message := st.session_state.pop(TOAST, None):
        st.toast(message, icon=":material/check_circle:")
    config = config or state.config
    advice = _reading(state, history, task, config, finished, key)
    st.markdown(f"#### {t('Coach')}")
    if advice is None:
        return
    if not advice:
        waiting = (t("The coach reads the curves after a few more epochs.") if not finished
                   else t("The coach reads the curves when a run has a few more epochs."))
        st.caption(f":material/hourglass_top: {waiting}")
        return
    st.caption(t("What the curves say so far (read again after each epoch).") if not finished
               else t("What the curves of this run say, and the one change to try next."))
    outcomes = st.session_state.setdefault(OUTCOMES, {})
    for item in advice:
        box, icon = BOXES.get(item.kind, ("info", ":material/info:"))
        getattr(st, box)(f"**{tm(item.title)}**  \n{tm(item.message)}", icon=icon)
        if item.change:
            _change_button(state, item, task, key, finished, outcomes)


def _change_button(state: AppState, item: Advice, task: str, key: str, finished: bool,
                   outcomes: dict[str, tuple[str, str]]) -> None:
    button_key = f"coach_{key}_{item.kind}"
    if state.workspace.read_only:
        st.caption(":material/lightbulb: " + t("Suggested next: {change}.", change=tm(item.button_label)))
        return
    outcome = outcomes.get(button_key)
    if outcome is not None and outcome[0] == "applied":
        st.success(outcome[1], icon=":material/done:")
        return
    already = _already(item.change, state.config, state.design)
    if already is not None:
        st.caption(":material/done: " + t("{already} The next training uses it.", already=already))
        return
    if outcome is not None:  # an earlier click could not apply it: say why, and let it be tried again
        st.error(tm(outcome[1]), icon=":material/error:")
    helps = (t("Changes the design of the next training; the trained model stays as it is.") if "design" in item.change
             else t("Changes the settings of the next training; the trained model stays as it is."))
    if not st.button(tm(item.button_label), key=button_key, icon=":material/auto_fix_high:", help=helps):
        return
    spec = state.data_spec
    try:
        config, design, done = apply_change(item.change, state.config, state.design,
                                            spec.task if spec else task, spec.kind if spec else None)
        if design is not state.design:
            state.set_design(design)
        if config is not state.config:
            forget_widgets()  # the settings form shows the new value (and does not put the old one back)
            state.set_config(config)
    except BuilderError as exc:
        outcomes[button_key] = ("error", str(exc))
        st.error(tm(str(exc)), icon=":material/error:")
        return
    message = (t("Changed: {done}. The next training uses it.", done=done) if finished
               else t("Changed: {done}. The next training uses it (this run carries on with its own settings).",
                      done=done))
    outcomes[button_key] = ("applied", message)
    st.session_state[TOAST] = message
    st.rerun()
