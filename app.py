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
from builder.train import warm_up
from pages.components.build_view import design_ready
from pages.components.evaluate_view import data_differs
from pages.components.state import app_state, view_only_link
from pages.components.ui import JOURNEY, PAGE_BY_TITLE, page_run, trained_time

# The icon ships with the app: a named Material icon would be fetched from the internet on every load.
ICON = Path(__file__).parent / "pages" / "components" / "assets" / "icon.png"
st.set_page_config(page_title="Model Builder", page_icon=str(ICON), layout="wide")


@st.cache_resource(show_spinner="Starting the training engine...")
def start_engine() -> str:
    """Once per process: keep a core for the web server, and warm up torch's first optimizer."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cap_threads_for_server()
    warm_up()
    choice = choose_device("auto")
    return f"{choice.label}. {choice.reason[:1].upper()}{choice.reason[1:]}."


def model_goal(trained) -> str:
    """What the session's model does, in a few words: "predicts 'churn'", "sorts images"."""
    if trained.kind == "images":
        return "sorts images"
    if trained.task == "anomaly":
        return "finds unusual rows"
    verb = "forecasts" if trained.task == "forecast" else "predicts"
    return f"{verb} '{trained.data_spec.target}'"


def journey_sidebar(slot, device_text: str) -> None:
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
        st.markdown("**Your journey**")
        st.markdown("  \n".join(
            f"{':material/check_circle:' if done[title] else ':material/radio_button_unchecked:'} {title}"
            for _, title, _ in JOURNEY
        ))
        if state.table_name:
            st.caption(f"Data: {state.table_name}")
        if state.trained is not None:  # the model may come from an earlier table: say which
            trained = state.trained
            when = trained_time(trained.info)
            source = trained.info.get("source")
            st.caption(f"Model: {model_goal(trained)}{f' from {source}' if source else ''}, "
                       f"trained{f' {when}' if when else ''}")
            if other_data:
                st.caption(":material/warning: That model was made for other data than the data loaded "
                           "now: train again on Train to use this data.")
        st.caption(f":material/memory: {device_text}")
        st.caption("Bookmark this page's address to come back to your work.")


def view_only_sidebar() -> None:
    st.sidebar.markdown("**View-only link**")
    st.sidebar.caption("You are looking at someone's model. Nothing here can be changed, started or "
                       "deleted from this link.")


device_text = start_engine()
if view_only_link():
    # A view-only link sees the presentation alone; the workspace itself refuses any change.
    try:
        app_state()
    except ReadOnlyError as exc:
        st.error(str(exc), icon=":material/link_off:")
        st.stop()
    path, icon = PAGE_BY_TITLE["Present"]
    navigation = st.navigation([st.Page(path, title="Present", icon=icon)], position="hidden")
    view_only_sidebar()
    with page_run():
        navigation.run()
else:
    navigation = st.navigation([st.Page(path, title=title, icon=icon) for path, title, icon in JOURNEY])
    # Drawn before the page (so it shows while a page works) and again after it, so a step the page
    # just completed is ticked at once, also when the page ends early (ui.end_page, not st.stop).
    sidebar = st.sidebar.empty()
    journey_sidebar(sidebar, device_text)
    with page_run():
        navigation.run()
    journey_sidebar(sidebar, device_text)
