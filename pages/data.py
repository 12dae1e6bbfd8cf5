"""Data: bring a table (or a sample), see what is in it, and choose the column to predict."""

from __future__ import annotations

import streamlit as st

from builder.data import DataSpec, check_target, health_warnings
from pages.components.data_view import (
    FILE_TYPES,
    TASK_PHRASES,
    column_table,
    default_target,
    left_out_notes,
    sample_cards,
    table_profile,
    task_and_features,
    use_sample,
    use_upload,
    widget_suffix,
)
from pages.components.state import app_state
from pages.components.ui import go_to, page_header, user_errors

state = app_state()
suffix = widget_suffix(state)
page_header("Data", "Bring a table with one row per example and one column per fact, then choose "
                    "the column the model should learn to predict.")

# --- 1. the table -------------------------------------------------------------------------------------
loader = st.expander(f"Use another table (now: {state.table_name})", icon=":material/upload_file:") \
    if state.df is not None else st.container()
with loader:
    uploaded = st.file_uploader(
        "Drop a table here", type=FILE_TYPES, key=f"data_upload_{suffix}",
        help="CSV, TSV or TXT (any separator), Excel (.xlsx), Parquet or JSON, up to 200 MB. "
             "The first row holds the column names.")
    st.markdown("**Or try a sample**")
    picked = sample_cards()
if uploaded is not None and use_upload(state, uploaded):
    st.rerun()
if picked is not None and use_sample(state, picked):
    st.rerun()

if state.df is None:
    st.info("Upload a table or pick a sample to begin. Your file stays on this computer.",
            icon=":material/info:")
    st.stop()

df = state.df
profile, sketches = table_profile(state)

# --- 2. what is in it ---------------------------------------------------------------------------------
st.subheader(state.table_name, anchor=False)
rows, cols, missing, numeric = st.columns(4)
rows.metric("Rows", f"{profile.n_rows:,}", help="Examples the model can learn from.", border=True)
cols.metric("Columns", f"{profile.n_cols:,}", help="Facts per example, the column to predict included.",
            border=True)
cells = max(profile.n_rows * profile.n_cols, 1)
missing.metric("Empty cells", f"{100 * sum(c.n_missing for c in profile.columns) / cells:.1f}%",
               help="Share of all cells with no value. The model fills them in for you.", border=True)
numeric.metric("Number columns", sum(c.kind == "numeric" for c in profile.columns), border=True,
               help="Columns read as numbers; the others are categories, yes/no, dates or text.")
looking = st.container()  # filled last: the roles it shows follow the choices below

# --- 3. the column to predict and the inputs ------------------------------------------------------------
st.subheader(":material/target: What to predict", anchor=False)
pick, inputs = st.columns(2, gap="large")
with pick:
    names = [c.name for c in profile.columns]
    start = default_target(state, profile)
    target = st.selectbox("The column to predict", names, index=names.index(start), key=f"data_target_{suffix}",
                          help="The answer you want the model to give for new rows.")
    task, features = task_and_features(state, profile, target, suffix, inputs)
with inputs:
    left_out = left_out_notes(profile, target, features)
    if left_out:
        with st.expander(f"{len(left_out)} column(s) left out, and why", icon=":material/visibility_off:"):
            st.markdown("\n".join(f"- {note}" for note in left_out))
spec = None
if task is not None:
    with user_errors():
        check_target(df, target, task)
        if not features:
            st.error("Choose at least one column to learn from.", icon=":material/error:")
        else:
            spec = DataSpec(target=target, task=task, features=list(features))
if spec is not None:  # warnings about a target that cannot be used would only bury its one error
    for warning in health_warnings(profile, target):
        st.warning(warning, icon=":material/warning:")
if spec != state.data_spec:
    state.set_data_spec(spec)
if spec is not None:
    st.success(f"Saved: the model will predict **{target}** {TASK_PHRASES[task]} from "
               f"{len(features)} column(s).", icon=":material/check_circle:")
    go_to("Build", "Next: build the model")

with looking:
    roles = {target: "Predicted", **{f: "Input" for f in features}}
    by_column, preview = st.tabs([":material/view_column: Columns", ":material/table_rows: First rows"])
    with by_column:
        column_table(profile, sketches, roles)
    with preview:
        st.dataframe(df.head(200), width="stretch", hide_index=True)
        st.caption(f"The first {min(200, len(df))} of {len(df):,} rows, as read from the file.")
