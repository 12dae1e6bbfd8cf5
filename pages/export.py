"""Export: one zip that predicts exactly like the app, anywhere, with a check that proves it."""

from __future__ import annotations

import streamlit as st

from builder.export import PARITY_TOLERANCE
from pages.components.bundle_view import (
    BUILD_REQUEST,
    build_bundle,
    file_table,
    how_to_use,
    inputs_word,
    model_summary,
    request_build,
    saved_bundle,
    trained_when,
)
from pages.components.report_view import report_section
from pages.components.state import app_state
from pages.components.ui import empty_state, end_page, go_to, human_bytes, page_header, user_errors

state = app_state()
page_header("Export", "Take your model out of the app: one zip file that gives the same answers anywhere.")
if not state.has_model:
    empty_state("There is no trained model to export yet. Train one first; it takes a minute.", "Train",
                "Go to Train")

saved = saved_bundle(state)

if saved is None:
    st.markdown(
        f"{model_summary(state)} "
        "The bundle packs everything needed to use it without this app: the model in two open formats "
        "(ONNX and PyTorch), its preprocessing, a ready-to-run `predict.py`, and a model card. "
        "Before anything is written, the exported model is checked against the app on your own data."
    )
    st.button("Build the bundle", type="primary", icon=":material/package_2:", key="export_build",
              on_click=request_build, args=(state.run_id,))
    if BUILD_REQUEST in st.session_state and st.session_state.pop(BUILD_REQUEST) == state.run_id:
        # Taken (a later rerun does not build again); a request left for an earlier run is dropped.
        with st.status("Building the bundle (about 5 seconds)...", expanded=True) as status:
            st.write("Writing the weights, the design and the preprocessing...")
            st.write("Converting the network to ONNX and comparing its answers with the app...")
            with user_errors("The bundle could not be built. "):
                saved = build_bundle(state)
            if saved is None:
                status.update(label="The bundle could not be built", state="error", expanded=True)
            else:
                status.update(label=f"Bundle ready in {saved.seconds:.1f} s", state="complete")
    if saved is None:
        st.divider()
        report_section(state)  # the report needs no bundle
        end_page()

state.exported = True

# --- the result -----------------------------------------------------------------------------------
left, right = st.columns([3, 2], gap="large")
with left:
    if saved.parity_ok:
        st.success(
            f"The exported model gives the same answers as the app: largest difference "
            f"{saved.parity_max_diff:.1g} on {saved.parity_rows:,} {inputs_word(saved.kind)}.",
            icon=":material/verified:",
        )
    else:
        st.error(
            f"The exported model does not give the same answers as the app (largest difference "
            f"{saved.parity_max_diff:.2g} on {saved.parity_rows:,} {inputs_word(saved.kind)}, allowed {PARITY_TOLERANCE:g}). "
            "Do not use this bundle: build it again, and if it still differs, simplify the design and train again.",
            icon=":material/error:",
        )
    if saved.parity_ok:
        st.caption("Both were given the same inputs; a difference this small is rounding in the last digits "
                   "and does not change what the model predicts.")
with right:
    st.download_button(
        f"Download {saved.file_name}", data=saved.data(), file_name=saved.file_name, mime="application/zip",
        type="primary", icon=":material/download:", width="stretch", disabled=not saved.parity_ok,
    )
    st.caption(f"{human_bytes(saved.path.stat().st_size)}, built in {saved.seconds:.1f} s from the model trained"
               f"{trained_when(state)}. "
               f"Of your data it holds only {saved.sample_text}.")
for note in saved.notes:
    st.info(note, icon=":material/info:")
if not saved.parity_ok and st.button("Build again", icon=":material/refresh:"):
    with st.spinner("Building the bundle again..."), user_errors("The bundle could not be built. "):
        build_bundle(state)
        st.rerun()

st.subheader("What is in the bundle")
file_table(saved)

st.subheader("How to use it")
how_to_use(saved, state)

st.divider()
report_section(state)

st.divider()
st.markdown("**Next:** try the model on new data, or upload this bundle there to check it.")
go_to("Predict", "Go to Predict")
