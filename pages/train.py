"""Train: a few settings, one Start button, live progress and curves, the result, earlier runs."""

from __future__ import annotations

import streamlit as st

from builder.device import choose_device
from builder.errors import BuilderError
from pages.components import charts
from pages.components.coach_view import coach_panel
from pages.components.i18n import t, tm
from pages.components.resume_view import interrupted_panel
from pages.components.runs_view import runs_panel
from pages.components.search_view import search_button, search_panel, search_results
from pages.components.state import app_state
from pages.components.train_settings import forget_widgets, settings_form
from pages.components.training import (
    current_job,
    design_problems,
    live_panel,
    missing_data_message,
    result_summary,
    show_failure,
    start_training,
    take_over_if_done,
)
from pages.components.ui import empty_state, go_to, page_header, user_errors


def device_badge(preference: str) -> bool:
    """Where training will run and why; False when the chosen device is not available."""
    try:
        choice = choose_device(preference)
    except BuilderError as exc:
        st.warning(tm(str(exc)), icon=":material/memory:")
        return False
    st.badge(tm(choice.label), icon=":material/memory:", color="green" if choice.device.type != "cpu" else "blue")
    st.caption(t("Why: {reason}.", reason=tm(choice.reason)))
    return True


state = app_state()
page_header(t("Train"), t("Teach the model from your data. The charts update live; you can switch pages and come "
                          "back."))
if not state.has_data:
    empty_state(missing_data_message(state), "Data")
if not state.has_design:
    empty_state(t("Choose a model design first."), "Build")
unfit = design_problems(state)

job = current_job(state)
status = take_over_if_done(state, job) if job is not None else None
if job is None and not state.workspace.read_only:
    interrupted_panel(state)  # the app stopped while it trained: offer to go on
running = status == "running"
searching = not running and search_panel(state)  # a running search gets the width too

if running:  # the live run gets the whole width; its settings wait, read-only, underneath
    st.subheader(t("Training: {title}", title=job.title))
    live_panel(job, state.data_spec.task, choose_device(state.config.device).label, state)
    with st.expander(t("Settings of this run")):
        settings_form(state.config, disabled=True, task=state.data_spec.task)
elif not searching:
    if status == "failed":
        show_failure(job)
    side, main = st.columns([3, 2], gap="large")
    with side:
        config = settings_form(state.config, disabled=False, task=state.data_spec.task,
                               class_counts=state.class_counts())
        problems = config.problems()
        for problem in problems:
            st.error(tm(problem), icon=":material/error:")
        if not problems:
            config = config.validate()  # canonical values (e.g. class weights typed as text)
        if not problems and config != state.config:
            state.set_config(config)  # remembered without a Start too: a refresh keeps the settings
        if st.button(t("Suggested settings for this data"), icon=":material/auto_fix_high:", key="train_suggest",
                     help=t("Start again from the settings chosen for the kind and size of your data "
                            "(your seed, device and shares are kept).")):
            forget_widgets()
            state.suggest_config()
            st.rerun()
    with main:
        st.subheader(t("Start"))
        available = device_badge(config.device)
        for problem in unfit:
            st.error(t("The design does not fit your data: {problem}", problem=tm(problem)),
                     icon=":material/account_tree:")
        if st.button(t("Start training"), type="primary", icon=":material/play_arrow:", width="stretch",
                     disabled=bool(problems or unfit) or not available, key="train_start"):
            with user_errors():
                start_training(state, config)
                st.rerun()
        search_button(state, config, disabled=bool(problems or unfit) or not available)
        if unfit:
            go_to("Build", t("Fix the design on the Build page"))
        if problems:
            st.caption(":material/arrow_back: " + t("Fix the {n} setting(s) marked in red to start.", n=len(problems)))
        st.caption(t("Training runs on this computer; your data never leaves it. You can stop at any time "
                     "and keep the best model so far."))
        if not state.has_model:
            st.plotly_chart(charts.waiting_figure(t("Your loss curve appears here as soon as training starts.")),
                            key="preview")
    if state.has_model:
        st.divider()
        st.subheader(t("Current model"))
        if status in ("adopted", "finished"):
            st.success(t("Training finished and the model was saved in this workspace."),
                       icon=":material/check_circle:")
        result_summary(state.trained, with_curves=True)
        coach_panel(state, state.trained.history, state.trained.task, state.trained.config, True,
                    key=f"run_{state.run_id}")
        go_to("Evaluate", t("Next: see how good the model is"))
    search_results(state)
runs_panel(state)
