"""Build: pick a model family, shape its layers, and see sizes, parameters and problems live."""

from __future__ import annotations

import streamlit as st

from builder.spec import FAMILIES, ModelSpec
from builder.wording import count
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
from pages.components.state import app_state
from pages.components.ui import empty_state, go_to, page_header, user_errors

state = app_state()
page_header("Build", "Design the model: start from a family, then add, remove or resize layers. "
                     "Sizes and problems update as you type.")

if not state.has_data:
    empty_state("Choose your data first: the model's size follows from your data and what it should "
                "predict.", "Data", "Go to Data to pick a table")

shape = None
with user_errors("Your data cannot be prepared for a model yet: "):
    shape = data_shape_of(state)
if shape is None:
    empty_state("Fix the data on the Data page, then come back.", "Data", "Go to Data")

if state.design is None:  # a good default: the starter of the family made for this data
    state.set_design(first_design(shape), record_undo=False)
    shape = data_shape_of(state)  # text: the data as that design reads it (a bag of n-grams, or words)
design: ModelSpec = state.design

misfit = family_misfit_notice(design, shape)  # the one message for a design made for other data
st.subheader("1. Start from a family", anchor=False)
family_cards(design, shape)

report = build_infer(design, shape)
problems = design_problems(design, report, shape)

st.subheader("2. Shape the layers", anchor=False)
st.caption(data_caption(shape))
if design.effective_family() != design.family:
    st.info(f"Your {FAMILIES[design.family].title.lower()} now has hidden layers, so it is an MLP "
            "(neural network): it can learn curved patterns, and is harder to explain.",
            icon=":material/info:")

editor_side, picture_side = st.columns([7, 3], gap="large")
with editor_side:
    st.markdown("**Layers**, from the input down. Edit a cell, or type a layer in the empty last row.")
    layer_editor(state, report)
    layer_toolbar(state, shape)
    if misfit is None:
        problem_list(problems, shape)
    init_choice(state)
with picture_side:
    st.markdown("**The network**")
    network_diagram(report, shape)

st.subheader("3. Check sizes and parameters", anchor=False)
shape_panel(report, state.config.batch_size)

st.subheader("4. Save, or go on", anchor=False)
save_side, load_side, next_side = st.columns(3, gap="large")
with save_side:
    st.download_button("Save design", data=design_file_bytes(design), file_name="design.json",
                       mime="application/json", icon=":material/save:",
                       help="Download this design to reuse it later or share it.")
with load_side:
    uploaded = st.file_uploader("Load a design", type=["json"], key=LOAD_KEY, on_change=on_design_upload,
                                help="A design.json saved from this page. It replaces the layers above "
                                     "(Undo brings them back).")
    if uploaded is not None:  # applied once by the callback; a bad file is explained here
        with user_errors(f"'{uploaded.name}' was not loaded, your design is unchanged. "):
            ModelSpec.from_json(uploaded.getvalue())
with next_side:
    if misfit is not None:
        st.caption(":material/arrow_upward: This design was made for other data: start from the family "
                   "offered at the top to train on this data.")
    elif problems:
        st.warning(f"Fix the {count(len(problems), 'problem')} next to the layers before training.",
                   icon=":material/warning:")
    else:
        st.success(f"Ready to train: {report.total_params:,} parameters.", icon=":material/check_circle:")
        go_to("Train", "Next: train this model")
