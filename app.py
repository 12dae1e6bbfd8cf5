"""Visual model builder: the router.

Sets up the page, pays the heavy one-off costs once per process (imports, torch threads, the first
optimizer), finds the user's workspace from the URL, draws the journey in the sidebar and runs the
chosen page. All logic lives in ``builder/``; pages only draw it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy  # noqa: F401 - imported before any worker thread (see STACK.md: import races)
import plotly.graph_objects  # noqa: F401
import streamlit as st
import torch
import torch.optim  # noqa: F401

from builder.device import cap_threads_for_server, choose_device
from builder.errors import ReadOnlyError
from builder.memory import return_big_blocks_to_the_system
from builder.train import warm_up
from builder.workspaces import WorkspaceLimitError
from pages.components.build_view import design_ready
from pages.components.evaluate_view import data_differs
from pages.components.i18n import language_switch, t, tm
from pages.components.state import app_state, job_registry, view_only_link
from pages.components.ui import JOURNEY, PAGE_BY_TITLE, page_run, trained_time
from pages.components.workspaces_view import recent_workspaces_sidebar

# The icon ships with the app: a named Material icon would be fetched from the internet on every load.
ICON = Path(__file__).parent / "pages" / "components" / "assets" / "icon.png"
st.set_page_config(page_title="Model Builder", page_icon=str(ICON), layout="wide")


@st.cache_resource(show_spinner=False)
def start_engine() -> tuple[str, str]:
    """Once per process: keep a core for the web server, hand big freed blocks back to the system,
    and warm up torch's first optimizer.

    Returns:
        The device training uses and why, in the engine's English (the sidebar translates them).
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return_big_blocks_to_the_system()  # uploads and their previews must not leave the server bloated
    cap_threads_for_server()
    warm_up()
    job_registry()  # the training worker processes start now, so they are warm by the first Start
    choice = choose_device("auto")
    return choice.label, choice.reason


def device_line(label: str, reason: str) -> str:
    """ "CPU, 2 threads. No GPU found, training on the CPU." in the session's language."""
    reason = tm(reason)
    return f"{tm(label)}{t('. ')}{reason[:1].upper()}{reason[1:]}{t('.')}"


def model_goal(trained) -> str:
    """What the session's model does, in a few words: "predicts 'churn'", "sorts images"."""
    if trained.kind == "images":
        return t("sorts images")
    if trained.task == "anomaly":
        return t("finds unusual rows")
    if trained.task == "forecast":
        return t("forecasts '{target}'", target=trained.data_spec.target)
    return t("predicts '{target}'", target=trained.data_spec.target)


def model_line(goal: str, source: str | None, when: str) -> str:
    """The sidebar's "Model: predicts 'churn' from churn.csv, trained 2026-11-23 18:22:07"."""
    if source:
        if when:
            return t("Model: {goal} from {source}, trained {when}", goal=goal, source=source, when=when)
        return t("Model: {goal} from {source}, trained", goal=goal, source=source)
    if when:
        return t("Model: {goal}, trained {when}", goal=goal, when=when)
    return t("Model: {goal}, trained", goal=goal)


def journey_sidebar(slot, device: tuple[str, str]) -> None:
    """Draw, into ``slot``, the steps with a tick on what is done and the device training uses."""
    state = app_state()
    other_data = data_differs(state)  # the model was made for other data than the data loaded now
    done = {
        "Data": state.has_data,
        "Build": design_ready(state),
        "Train": state.has_model and not other_data,
        "Evaluate": state.has_model and not other_data,
        "Export": state.exported,
        "Predict": state.predicted,
        "Present": state.has_model,
    }
    with slot.container():
        st.markdown(t("**Your journey**"))
        st.markdown("  \n".join(
            f"{':material/check_circle:' if done[title] else ':material/radio_button_unchecked:'} {t(title)}"
            for _, title, _ in JOURNEY
        ))
        if state.table_name:
            st.caption(t("Data: {name}", name=tm(state.table_name)))  # a sample's title is ours to translate
        if state.trained is not None:  # the model may come from an earlier table: say which
            trained = state.trained
            when = trained_time(trained.info)
            source = trained.info.get("source")
            st.caption(model_line(model_goal(trained), source, when))
            if other_data:
                st.caption(":material/warning: " + t("That model was made for other data than the data "
                                                     "loaded now: train again on Train to use this data."))
        st.caption(f":material/memory: {device_line(*device)}")
        st.caption(t("Bookmark this page's address to come back to your work."))


def view_only_sidebar() -> None:
    st.sidebar.markdown(t("**View-only link**"))
    st.sidebar.caption(t("You are looking at someone's model. Nothing here can be changed, started or "
                         "deleted from this link."))


with st.spinner(t("Starting the training engine...")):
    device = start_engine()
if view_only_link():
    # A view-only link sees the presentation alone; the workspace itself refuses any change.
    try:
        app_state()
    except ReadOnlyError as exc:
        st.error(tm(str(exc)), icon=":material/link_off:")
        st.stop()
    path, icon = PAGE_BY_TITLE["Present"]
    navigation = st.navigation([st.Page(path, title=t("Present"), icon=icon)], position="hidden")
    language_switch()
    view_only_sidebar()
    with page_run():
        navigation.run()
else:
    navigation = st.navigation([st.Page(path, title=t(title), icon=icon) for path, title, icon in JOURNEY])
    language_switch()
    try:
        state = app_state()
    except WorkspaceLimitError as exc:  # no room for a new workspace on this machine
        st.error(tm(str(exc)), icon=":material/block:")
        st.stop()
    # Drawn before the page (so it shows while a page works) and again after it, so a step the page
    # just completed is ticked at once, also when the page ends early (ui.end_page, not st.stop).
    sidebar = st.sidebar.empty()
    journey_sidebar(sidebar, device)
    recent_workspaces_sidebar(state)
    with page_run():
        navigation.run()
    journey_sidebar(sidebar, device)
