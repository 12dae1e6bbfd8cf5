"""Present: the trained model for a room of stakeholders, with every editing control hidden.

The big numbers against the baseline, the key chart and what drives the predictions, full width.
A view-only link (``?view=``) opens this page alone; the owner also finds the share panel here.
"""

from __future__ import annotations

import streamlit as st

from pages.components import evaluate_view as view
from pages.components import present_view as present
from pages.components.explain_view import present_explanations
from pages.components.i18n import t
from pages.components.state import app_state
from pages.components.ui import empty_state, end_page, user_errors

state = app_state()
viewer = state.workspace.read_only
if not state.has_model:
    if viewer:
        st.title(t("Nothing to show yet"))
        st.info(t("The owner of this link has not trained a model yet. Try again later."), icon=":material/info:")
        end_page()
    st.title(t("Present"))
    empty_state(t("Train a model first: this page then presents it to your audience."), "Train")

trained = state.trained
st.title(present.headline(trained))
st.caption(present.run_facts(trained))
view.metric_cards(trained, offer_changes=False)

with user_errors():
    if trained.task == "forecast":
        st.subheader(t("The forecast over a period it never saw"))
        view.forecast_section(trained)
    elif trained.task != "anomaly":
        st.subheader(t("Its answers on data it never saw"))
        view.predictions_section(trained)

present_explanations(state)

if not viewer:
    st.divider()
    present.share_panel(state)
