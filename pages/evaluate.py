"""Evaluate: how good the model is on data it never saw, against a simple baseline (forecasts: simple
forecasts; unusual rows: no baseline, the flagged rows), in pictures.

Every section reads the run itself (its metrics, baseline and kept test results), so loading other
data on the Data page changes nothing here.
"""

from __future__ import annotations

import streamlit as st

from pages.components import evaluate_view as view
from pages.components.decide_view import decide_section
from pages.components.explain_view import explain_section
from pages.components.i18n import t
from pages.components.state import app_state
from pages.components.training import cv_summary
from pages.components.ui import empty_state, go_to, page_header, user_errors

SECTION_TITLES = {"forecast": "The forecast over the test period", "anomaly": "Unusual rows"}

SUBTITLES = {
    "anomaly": "Which test rows the model flags as unusual: rows it never saw while training, scored against a "
               "threshold you can move.",
    "forecast": "How well the model forecasts a test period it never saw while training, next to simple forecasts.",
}

state = app_state()
task = state.trained.task if state.has_model else None
page_header(t("Evaluate"), t(SUBTITLES.get(task, "How good the model is on test data it never saw while training, "
                                                "next to a simple baseline.")))
if not state.has_model:
    empty_state(t("Train a model first: its results appear here."), "Train", t("Go to Train"))
trained = state.trained
st.caption(view.run_caption(trained))
view.data_change_note(state)
view.metric_cards(trained)
if cross_validation := trained.info.get("cross_validation"):
    cv_summary(cross_validation)

results, explain, decide, history = st.tabs([
    ":material/fact_check: " + t(SECTION_TITLES.get(trained.task, "Test data in detail")),
    ":material/psychology: " + t("Why it answers so"), ":material/tune: " + t("Decide"),
    ":material/show_chart: " + t("How training went")])
with results, user_errors():
    if trained.task == "forecast":
        view.forecast_section(trained)
    elif trained.task == "anomaly":
        view.anomaly_section(state)
    else:
        view.predictions_section(trained)
with explain:
    explain_section(state)
with decide:
    decide_section(state)
with history:
    view.training_history(trained)
go_to("Export", t("Next: export the model"))
go_to("Present", t("Or present it to your audience"))
