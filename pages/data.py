"""Data: bring a table, a time series, texts or a zip of pictures (or a sample), see what is in it,
and say what the model should learn from it."""

from __future__ import annotations

import streamlit as st

from pages.components.data_view import (
    FILE_TYPES,
    anomaly_panel,
    purpose_choice,
    sample_cards,
    save_choice,
    table_overview,
    table_panel,
    table_profile,
    table_tabs,
    table_title,
    use_sample,
    use_upload,
    widget_suffix,
)
from pages.components.i18n import t
from pages.components.image_view import image_panel
from pages.components.series_view import series_panel
from pages.components.state import app_state
from pages.components.text_view import text_panel
from pages.components.ui import end_page, page_header

PANELS = {"table": table_panel, "anomaly": anomaly_panel, "series": series_panel, "text": text_panel}

state = app_state()
suffix = widget_suffix(state)
page_header(t("Data"), t("Bring a table with one row per example (also a time series, or a column of texts), or "
                         "a zip of pictures with one folder per class. Then say what the model should learn."))

# --- 1. the data ------------------------------------------------------------------------------------------
loader = st.expander(t("Use other data (now: {name})", name=table_title(state)), icon=":material/upload_file:") \
    if state.data_kind is not None else st.container()
with loader:
    uploaded = st.file_uploader(
        t("Drop a table here, or a zip of pictures"), type=FILE_TYPES, key=f"data_upload_{suffix}",
        help=t("Tables: CSV, TSV or TXT (any separator), Excel (.xlsx), Parquet or JSON, the first row "
               "holding the column names. Pictures: a .zip with one folder per class (PNG, JPEG, BMP or "
               "GIF; any sizes). Up to 200 MB."))
    st.markdown(f"**{t('Or try a sample')}**")
    picked = sample_cards()
if uploaded is not None and use_upload(state, uploaded):
    st.rerun()
if picked is not None and use_sample(state, picked):
    st.rerun()

if state.data_kind is None:
    st.info(t("Upload a table or pick a sample to begin; pictures come as a zip with one folder per class. "
              "Your files stay on this computer."), icon=":material/info:")
    end_page()

# --- 2. pictures: what is in the zip, the size and the augmentation ------------------------------------
if state.data_kind == "images":
    save_choice(state, image_panel(state, suffix))
    end_page()

# --- 2. a table: what is in it, and what the model should do with it -------------------------------------
profile, sketches = table_profile(state)
st.subheader(table_title(state), anchor=False)
table_overview(profile)
looking = st.container()  # filled last: the roles it shows follow the choices below

st.subheader(f":material/target: {t('What the model should do')}", anchor=False)
purpose = purpose_choice(state, profile, suffix)
spec, roles = PANELS[purpose](state, profile, suffix)
save_choice(state, spec)

with looking:
    table_tabs(state.df, profile, sketches, roles, notes=purpose in ("table", "anomaly"))
