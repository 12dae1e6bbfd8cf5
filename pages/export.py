"""Export: one zip that predicts exactly like the app, anywhere, with a check that proves it."""

from __future__ import annotations

import streamlit as st

from builder.export import PARITY_TOLERANCE
from pages.components.bundle_view import (
    BUILD_REQUEST,
    build_bundle,
    file_table,
    how_to_use,
    inputs_checked,
    model_summary,
    request_build,
    saved_bundle,
    trained_when,
)
from pages.components.i18n import t, tm
from pages.components.report_view import report_section
from pages.components.state import app_state
from pages.components.ui import empty_state, end_page, go_to, human_bytes, page_header, user_errors

state = app_state()
page_header(t("Export"), t("Take your model out of the app: one zip file that gives the same answers anywhere."))
if not state.has_model:
    empty_state(t("There is no trained model to export yet. Train one first; it takes a minute."), "Train")

saved = saved_bundle(state)

if saved is None:
    st.markdown(t(
        "{summary} The bundle packs everything needed to use it without this app: the model in two open "
        "formats (ONNX and PyTorch), its preprocessing, a ready-to-run `predict.py`, and a model card. "
        "Before anything is written, the exported model is checked against the app on your own data.",
        summary=model_summary(state),
    ))
    st.button(t("Build the bundle"), type="primary", icon=":material/package_2:", key="export_build",
              on_click=request_build, args=(state.run_id,))
    if BUILD_REQUEST in st.session_state and st.session_state.pop(BUILD_REQUEST) == state.run_id:
        # Taken (a later rerun does not build again); a request left for an earlier run is dropped.
        with st.status(t("Building the bundle (about 5 seconds)..."), expanded=True) as status:
            st.write(t("Writing the weights, the design and the preprocessing..."))
            st.write(t("Converting the network to ONNX and comparing its answers with the app..."))
            with user_errors(t("The bundle could not be built. ")):
                saved = build_bundle(state)
            if saved is None:
                status.update(label=t("The bundle could not be built"), state="error", expanded=True)
            else:
                status.update(label=t("Bundle ready in {seconds:.1f} s", seconds=saved.seconds), state="complete")
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
            t("The exported model gives the same answers as the app: largest difference {diff:.1g} on {inputs}.",
              diff=saved.parity_max_diff, inputs=inputs_checked(saved.kind, saved.parity_rows)),
            icon=":material/verified:",
        )
    else:
        st.error(
            t("The exported model does not give the same answers as the app (largest difference {diff:.2g} on "
              "{inputs}, allowed {tolerance:g}). Do not use this bundle: build it again, and if it still differs, "
              "simplify the design and train again.", diff=saved.parity_max_diff,
              inputs=inputs_checked(saved.kind, saved.parity_rows), tolerance=PARITY_TOLERANCE),
            icon=":material/error:",
        )
    if saved.parity_ok:
        st.caption(t("Both were given the same inputs; a difference this small is rounding in the last digits "
                     "and does not change what the model predicts."))
with right:
    st.download_button(
        t("Download {file}", file=saved.file_name), data=saved.data(), file_name=saved.file_name, mime="application/zip",
        type="primary", icon=":material/download:", width="stretch", disabled=not saved.parity_ok,
    )
    st.caption(t("{size}, built in {seconds:.1f} s from the model trained{when}. Of your data it holds only "
                 "{sample}.", size=human_bytes(saved.path.stat().st_size), seconds=saved.seconds,
                 when=trained_when(state), sample=tm(saved.sample_text)))
for note in saved.notes:
    st.info(tm(note), icon=":material/info:")
if not saved.parity_ok and st.button(t("Build again"), icon=":material/refresh:", key="export_build_again"):
    with st.spinner(t("Building the bundle again...")), user_errors(t("The bundle could not be built. ")):
        build_bundle(state)
        st.rerun()

st.subheader(t("What is in the bundle"))
file_table(saved)

st.subheader(t("How to use it"))
how_to_use(saved, state)

st.divider()
report_section(state)

st.divider()
st.markdown(t("**Next:** try the model on new data, or upload this bundle there to check it."))
go_to("Predict")
