"""Predict: new rows in, predictions out, from the model just trained or from an exported bundle."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from builder.data import SUPPORTED_TABLE_EXTENSIONS, read_table
from pages.components.bundle_view import (
    family_title,
    fill_form,
    form_columns,
    load_uploaded_bundle,
    one_row_form,
    predictions_csv,
    predictions_table,
    probability_figure,
    score_against_target,
    slug,
    trained_when,
)
from pages.components.state import app_state
from pages.components.ui import empty_state, page_header, user_errors

TRAINED, BUNDLE = "The model just trained", "A bundle file"
UPLOAD_ROWS, ONE_ROW = "Upload a file of rows", "Fill in one row"

state = app_state()
page_header("Predict", "Get predictions for new rows: upload a file of rows or fill in one row by hand.")
# Both choices first, so they are always on the page and keep their values whatever happens below.
source_column, mode_column = st.columns(2)
source = source_column.radio("Which model?", [TRAINED, BUNDLE], horizontal=True, key="predict_source")
mode = mode_column.radio("Rows to predict", [UPLOAD_ROWS, ONE_ROW], horizontal=True, key="predict_mode")

if source == TRAINED:
    if not state.has_model:
        empty_state("No model is trained yet. Train one, or choose 'A bundle file' above to use an exported model.",
                    "Train", "Go to Train")
    model, key, name = state.trained, f"run-{state.run_id}", slug(state.table_name or "model")
    features = model.preprocessor.features
    sample = state.df if state.df is not None and set(features) <= set(state.df.columns) else pd.DataFrame()
    st.caption(f"{family_title(state)} trained on {state.table_name or 'your table'}{trained_when(state)}.")
else:
    upload = st.file_uploader("The bundle (.zip) from the Export page", type=["zip"], key="predict_bundle")
    if upload is None:
        st.info("Upload a bundle made on the Export page. Your trained model stays as it is.", icon=":material/info:")
        st.stop()
    loaded = None
    with user_errors():
        key, loaded = load_uploaded_bundle(upload.getvalue())
    if loaded is None:
        if state.has_model:
            st.caption("Your trained model is untouched: choose 'The model just trained' above to use it.")
        st.stop()
    model, sample, name = loaded.bundle, loaded.sample, slug(upload.name.removesuffix("-bundle.zip"))
    st.caption(f"Bundle {upload.name}, read and checked.")

preprocessor, target, task = model.preprocessor, model.data_spec.target, model.data_spec.task
features, classes = preprocessor.features, preprocessor.classes
what = {"regression": "a number", "binary": " or ".join(map(str, classes)),
        "multiclass": f"one of {len(classes)}: {', '.join(map(str, classes[:8]))}{', ...' if len(classes) > 8 else ''}"}
st.markdown(f"This model predicts **'{target}'** ({what.get(task, task)}) from {len(features)} columns.")

rows = predictions = None
if mode == UPLOAD_ROWS:
    rows_file = st.file_uploader("A table of rows to predict (CSV, TSV, Excel, Parquet or JSON)",
                                 type=[e.lstrip(".") for e in SUPPORTED_TABLE_EXTENSIONS], key="predict_rows")
    with st.expander("Which columns the file needs"):
        st.markdown(f"The same columns as the training data: {', '.join(f'`{c}`' for c in features)}. "
                    f"Other columns are ignored; `{target}` may be there, and then you also see how often the "
                    "model was right. Empty cells and new categories are fine.")
    if rows_file is None:
        st.info("Upload a file of rows, or choose 'Fill in one row' to try a single case.", icon=":material/info:")
        st.stop()
    with user_errors():
        rows = read_table(rows_file.getvalue(), name=rows_file.name, drop_empty_rows=False)
        predictions = model.predict(rows)
else:
    columns = form_columns(preprocessor)
    st.button("Fill with a sample row", icon=":material/casino:", on_click=fill_form, args=(key, columns, sample),
              disabled=sample.empty, help="Copies a row of the training data (the next one on each click).")
    with st.container(border=True):
        rows = one_row_form(key, columns)
    with user_errors():
        predictions = model.predict(rows)
if predictions is None:
    st.stop()
if predictions.empty:
    st.warning("The file has no rows to predict.", icon=":material/warning:")
    st.stop()

# --- the predictions --------------------------------------------------------------------------------
st.subheader("Prediction" if len(predictions) == 1 else f"Predictions for {len(predictions):,} rows")
has_chances = task in ("binary", "multiclass")
if len(predictions) == 1:
    left, right = st.columns([2, 3], gap="large")
    label = predictions["prediction"].iloc[0]
    shown = f"{label:,.4g}" if task == "regression" else str(label)
    chance = predictions[f"probability_{label}"].iloc[0] if has_chances else None
    left.metric(f"Predicted {target}", shown, border=True, help="The model's answer for this row.")
    if has_chances:
        left.caption(f"The model gives '{label}' a {chance:.0%} chance.")
        right.plotly_chart(probability_figure(predictions), config={"displayModeBar": False})
if mode == UPLOAD_ROWS:
    predictions_table(rows, predictions, features, target)
    if has_chances and len(predictions) > 1:
        counts = predictions["prediction"].astype(str).value_counts()
        st.caption("Predicted: " + ", ".join(f"{label} {count:,}" for label, count in counts.items()) + ".")
    if (scored := score_against_target(rows, predictions, target, task)) is not None:
        st.info(scored, icon=":material/fact_check:")
st.download_button("Download predictions (CSV)", data=predictions_csv(predictions),
                   file_name=f"{name}-predictions.csv", mime="text/csv", icon=":material/download:",
                   type="primary", on_click="ignore")
st.caption("One line per row, in the same order as your rows: paste it next to them in Excel.")
