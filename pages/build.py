"""Build: pick a model family, shape its layers, and see sizes, parameters and problems live."""

from __future__ import annotations

import streamlit as st

from builder.spec import FAMILIES, ModelSpec
from pages.components.build_view import (
    LOAD_KEY,
    build_infer,
    data_caption,
    data_shape_of,
    design_file_bytes,
    design_problems,
    family_cards,
    family_misfit_notice,
    first_design,
    init_choice,
    layer_editor,
    layer_toolbar,
    network_diagram,
    on_design_upload,
    problem_list,
    shape_panel,
)
from pages.components.i18n import t, tcount
from pages.components.state import app_state
from pages.components.train_settings import in_sentence
from pages.components.ui import empty_state, go_to, page_header, user_errors

state = app_state()
page_header(t("Build"), t("Design the model: start from a family, then add, remove or resize layers. "
                          "Sizes and problems update as you type."))

if not state.has_data:
    empty_state(t("Choose your data first: the model's size follows from your data and what it should "
                  "predict."), "Data", t("Go to Data to pick a table"))

shape = None
with user_errors(t("Your data cannot be prepared for a model yet: ")):
    shape = data_shape_of(state)
if shape is None:
    empty_state(t("Fix the data on the Data page, then come back."), "Data")

if state.design is None:  # a good default: the starter of the family made for this data
    state.set_design(first_design(shape), record_undo=False)
    shape = data_shape_of(state)  # text: the data as that design reads it (a bag of n-grams, or words)
design: ModelSpec = state.design

misfit = family_misfit_notice(design, shape)  # the one message for a design made for other data
st.subheader(t("1. Start from a family"), anchor=False)
family_cards(design, shape)

report = build_infer(design, shape)
problems = design_problems(design, report, shape)

st.subheader(t("2. Shape the layers"), anchor=False)
st.caption(data_caption(shape))
if design.effective_family() != design.family:
    st.info(t("Your {family} now has hidden layers, so it is an MLP (neural network): it can learn curved "
              "patterns, and is harder to explain.", family=in_sentence(FAMILIES[design.family].title)),
            icon=":material/info:")

editor_side, picture_side = st.columns([7, 3], gap="large")
with editor_side:
    st.markdown(t("**Layers**, from the input down. Edit a cell, or type a layer in the empty last row."))
    layer_editor(state, report)
    layer_toolbar(state, shape)
    if misfit is None:
        problem_list(problems, shape)
    init_choice(state)
with picture_side:
    st.markdown(t("**The network**"))
    network_diagram(report, shape)

st.subheader(t("3. Check sizes and parameters"), anchor=False)
shape_panel(report, state.config.batch_size)

st.subheader(t("4. Save, or go on"), anchor=False)
save_side, load_side, next_side = st.columns(3, gap="large")
with save_side:
    st.download_button(t("Save design"), data=design_file_bytes(design), file_name="design.json",
                       mime="application/json", icon=":material/save:",
                       help=t("Download this design to reuse it later or share it."))
with load_side:
    uploaded = st.file_uploader(t("Load a design"), type=["json"], key=LOAD_KEY, on_change=on_design_upload,
                                help=t("A design.json saved from this page. It replaces the layers above "
                                       "(Undo brings them back)."))
    if uploaded is not None:  # applied once by the callback; a bad file is explained here
        with user_errors(t("'{name}' was not loaded, your design is unchanged. ", name=uploaded.name)):
            ModelSpec.from_json(uploaded.getvalue())
with next_side:
    if misfit is not None:
        st.caption(":material/arrow_upward: " + t("This design was made for other data: start from the family "
                                                  "offered at the top to train on this data."))
    elif problems:
        st.warning(t("Fix the {problems} next to the layers before training.",
                     problems=tcount(len(problems), "problem")), icon=":material/warning:")
    else:
        st.success(t("Ready to train: {n:,} parameters.", n=report.total_params), icon=":material/check_circle:")
        go_to("Train", t("Next: train this model"))
