"""Predict: new data in, predictions out, from the model just trained or from an exported bundle.

Rows for a table model (a file or a form), a file or one typed text for a text model, image files or
a zip for an image model, a history table for a forecast, rows to score for an anomaly model.
"""

from __future__ import annotations

import streamlit as st

from pages.components import predict_view as view
from pages.components.bundle_view import family_title, load_uploaded_bundle, slug, trained_when
from pages.components.i18n import shown_as, t, tcount
from pages.components.state import app_state
from pages.components.ui import empty_state, end_page, page_header, user_errors

TRAINED, BUNDLE = "The model just trained", "A bundle file"

state = app_state()
page_header(t("Predict"), t("Get predictions for new data: upload a file, or try a single case by hand."))
source = st.radio(t("Which model?"), [TRAINED, BUNDLE], horizontal=True, key="predict_source",
                  format_func=shown_as([TRAINED, BUNDLE]))

if source == TRAINED:
    if not state.has_model:
        empty_state(t("No model is trained yet. Train one, or choose '{bundle}' above to use an exported model.",
                      bundle=t(BUNDLE)), "Train")
    model, key, name = state.trained, f"run-{state.run_id}", slug(state.table_name or "model")
    sample, examples = view.usable_sample(model, state.df), view.example_images(state.images)
    st.caption(family_title(state) + t(" trained on {data}{when}.", data=state.table_name or t("your data"),
                                       when=trained_when(state)))
else:
    upload = st.file_uploader(t("The bundle (.zip) from the Export page"), type=["zip"], key="predict_bundle")
    if upload is None:
        st.info(t("Upload a bundle made on the Export page. Your trained model stays as it is."),
                icon=":material/info:")
        end_page()
    loaded = None
    with user_errors():
        key, loaded = load_uploaded_bundle(upload.getvalue())
    if loaded is None:
        if state.has_model:
            st.caption(t("Your trained model is untouched: choose '{trained}' above to use it.", trained=t(TRAINED)))
        end_page()
    model, name = loaded.bundle, slug(upload.name.removesuffix("-bundle.zip"))
    sample, examples = view.usable_sample(model, loaded.sample), loaded.sample_images
    st.caption(t("Bundle {file}, read and checked.", file=upload.name))

kind, task = model.data_spec.kind, model.data_spec.task
st.markdown(view.what_it_predicts(model))

predictions = rows = None
single = explain = False
if kind == "images":
    files = None
    with user_errors():
        files = view.image_upload(examples)
        if files is not None:
            predictions = model.predict(files[1], files=files[0])
    if files is None:
        st.info(t("Upload images (select several at once) or a zip of them."), icon=":material/info:")
        end_page()
elif task == "forecast":
    with user_errors():
        rows = view.rows_upload(model)
        if rows is None and not sample.empty:
            rows = sample
            st.caption(t("Forecasting right after the end of the data loaded on the Data page; upload a file to "
                         "forecast from another history."))
        if rows is not None:
            predictions = model.predict(rows)
    if rows is None:
        st.info(t("Upload the history: at least the last {n} steps.", n=model.preprocessor.window),
                icon=":material/info:")
        end_page()
else:
    modes = [view.UPLOAD_ROWS, view.ONE_TEXT if kind == "text" else view.ONE_ROW]
    mode = st.radio(t("What to predict"), modes, horizontal=True, key="predict_mode",
                    format_func=shown_as(modes))
    single = mode != view.UPLOAD_ROWS
    explain = view.reasons_choice(model)
    with user_errors():
        rows = view.one_row(model, key, sample) if single else view.rows_upload(model)
        if rows is not None:
            predictions = model.predict(rows)
    if rows is None:
        st.info(t("Type a text to classify.") if single else
                t("Upload a file of rows, or choose '{mode}' to try a single case.", mode=t(modes[1])),
                icon=":material/info:")
        end_page()
if predictions is None:
    end_page()
if predictions.empty:
    st.warning(t("There is nothing to predict in that file."), icon=":material/warning:")
    end_page()

# --- the predictions --------------------------------------------------------------------------------
counted = tcount(len(predictions), {"images": "image", "series": "future step"}.get(kind, "row"))
heading = "Forecast for {count}" if task == "forecast" else "Predictions for {count}"
st.subheader(t("Prediction") if single else t(heading, count=counted))
if explain:
    with user_errors():
        predictions = view.add_reasons(model, key, rows, predictions)
if kind in ("table", "text") and task != "forecast" and not single:  # one per row: keep what joins them back
    predictions = view.keep_columns(model, rows, predictions)
if kind == "images":
    view.image_results(files[1], predictions)
elif task == "forecast":
    view.forecast_results(model, rows, predictions)
elif task == "anomaly":
    view.anomaly_results(model, rows, predictions, single)
else:
    view.table_results(model, rows, predictions, single)
state.set_predicted(state.run_id if source == TRAINED else None)  # ticks Predict in the journey
view.downloads(predictions, name)
st.caption(t("One line per future step: paste it under your series in Excel.") if task == "forecast" else
           t("One line per input, in the same order as yours: paste it next to them in Excel."))
