"""Drawing helpers for the Data page: the drop zone and samples, the column table, the target panel.

The profile of a table is cached per saved file (path, modification time, size), so reruns and
page switches never profile the same table twice. Everything that is not drawing (reading,
profiling, the task guess, health checks) comes from ``builder.data``.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import streamlit as st

from builder.data import SAMPLES, TableProfile, infer_task, load_sample, profile_table, suggest_features
from builder.data.preprocess import missing_mask, parse_numeric
from pages.components.state import AppState
from pages.components.ui import user_errors

FILE_TYPES = ["csv", "tsv", "txt", "xlsx", "xlsm", "parquet", "json", "jsonl"]
TASK_LABELS = {"regression": "A number (regression)", "binary": "Yes / no (binary)",
               "multiclass": "A category (multiclass)"}
TASK_PHRASES = {"regression": "as a number", "binary": "as yes or no", "multiclass": "as one of its categories"}
KIND_WORDS = {"numeric": "Number", "categorical": "Category", "text": "Text", "datetime": "Date",
              "boolean": "Yes / no"}
HISTOGRAM_BINS = 12


# --- the current table, identified by its saved file -----------------------------------------------


def table_key(state: AppState) -> str:
    """A key that changes whenever a new table is saved (even one with the same name)."""
    table = state.workspace.table_path()
    if table is None:
        return "none"
    stat = table[1].stat()
    return f"{table[1]}|{stat.st_mtime_ns}|{stat.st_size}"


def widget_suffix(state: AppState) -> str:
    """A short suffix for widget keys, so every new table starts with fresh widgets."""
    return hashlib.sha1(table_key(state).encode()).hexdigest()[:10]


@st.cache_resource(show_spinner="Looking at every column...", max_entries=8)
def _profile(key: str, _df: pd.DataFrame) -> tuple[TableProfile, list[list[int]]]:
    # Keyed by the saved file (``key``): the frame itself is not hashed (big tables hash slowly).
    profile = profile_table(_df)
    return profile, [value_counts_sketch(_df[c.name], c.kind) for c in profile.columns]


def table_profile(state: AppState) -> tuple[TableProfile, list[list[int]]]:
    """The table's profile and, per column, the counts for its mini histogram."""
    return _profile(table_key(state), state.df)


def value_counts_sketch(values: pd.Series, kind: str) -> list[int]:
    """Counts for a mini histogram: binned numbers, or the most frequent categories (largest first)."""
    present = values[~missing_mask(values)]
    if present.empty:
        return []
    if kind == "numeric":
        numbers = parse_numeric(present)
        numbers = numbers[~np.isnan(numbers)]
        if numbers.size and np.unique(numbers[:5000]).size > HISTOGRAM_BINS:
            return np.histogram(numbers, bins=HISTOGRAM_BINS)[0].astype(int).tolist()
    return present.astype("str").value_counts().head(HISTOGRAM_BINS).astype(int).tolist()


# --- choosing a table -----------------------------------------------------------------------------


def sample_cards() -> str | None:
    """One small card per sample; returns the name of the sample picked in this run, if any."""
    picked = None
    columns = st.columns(len(SAMPLES))
    for column, (name, sample) in zip(columns, SAMPLES.items(), strict=False):
        # Cards of one height, text at the top and the button at the bottom, whatever the text length.
        with column.container(border=True, height="stretch", vertical_alignment="distribute"):
            with st.container(gap="small"):
                st.markdown(f"**{sample.title}**")
                st.caption(sample.description)
            if st.button("Use this sample", key=f"sample_{name}", icon=":material/science:",
                         width="stretch"):
                picked = name
    return picked


def use_sample(state: AppState, name: str) -> bool:
    with user_errors():
        sample = SAMPLES[name]
        state.set_sample(name, sample.title, load_sample(name))
        return True
    return False


def use_upload(state: AppState, uploaded) -> bool:
    """Keep an uploaded file; a bad file shows why here and the previous table stays."""
    with user_errors("This file was not loaded (your previous table is kept): "):
        with st.spinner(f"Reading {uploaded.name}..."):
            state.set_table(uploaded.name, uploaded.getvalue())
        return True
    return False


# --- the column table -------------------------------------------------------------------------------


def column_table(profile: TableProfile, sketches: list[list[int]], roles: dict[str, str]) -> None:
    frame = pd.DataFrame({
        "Column": [c.name for c in profile.columns],
        "Role": [roles.get(c.name, "Left out") for c in profile.columns],
        "Type": [KIND_WORDS.get(c.kind, c.kind) for c in profile.columns],
        "Missing": [c.missing_pct for c in profile.columns],
        "Unique values": [c.n_unique for c in profile.columns],
        "Distribution": sketches,
        "Examples": [", ".join(c.examples[:3]) for c in profile.columns],
        "Notes": [" ".join(c.warnings) for c in profile.columns],
    })
    st.dataframe(frame, hide_index=True, width="stretch", column_config={
        "Role": st.column_config.TextColumn(help="Predicted, used as an input, or left out."),
        "Type": st.column_config.TextColumn(help="How the model reads the column."),
        "Missing": st.column_config.ProgressColumn("Missing", help="Share of empty cells.", format="%.0f%%",
                                                   min_value=0, max_value=100, width="small"),
        "Unique values": st.column_config.NumberColumn(help="How many different values the column has."),
        "Distribution": st.column_config.BarChartColumn(
            "Distribution", help="Numbers: how values spread from low to high. Others: the most "
                                 "frequent values, largest first.", width="small"),
        "Notes": st.column_config.TextColumn(width="large"),
    })
    notes = [(c.name, note) for c in profile.columns for note in c.warnings]
    if notes:  # table cells cut long text: the notes in full, one per line
        with st.expander(f"Notes on {len({name for name, _ in notes})} column(s)", icon=":material/sticky_note_2:"):
            st.markdown("\n".join(f"- {note}" for _, note in notes))


# --- the column to predict ---------------------------------------------------------------------------


def default_target(state: AppState, profile: TableProfile) -> str:
    """The saved target, a sample's own target, or the last column that is not an ID."""
    names = [c.name for c in profile.columns]
    if state.data_spec is not None and state.data_spec.target in names:
        return state.data_spec.target
    for sample in SAMPLES.values():
        if state.table_name == f"{sample.title} (sample)" and sample.target in names:
            return sample.target
    usable = [c.name for c in profile.columns if not (c.id_like or c.constant or c.n_unique == 0)]
    return (usable or names)[-1]


def task_and_features(state: AppState, profile: TableProfile, target: str, suffix: str, inputs_place):
    """The task (guessed, changeable) and the input columns for ``target`` (drawn in ``inputs_place``).

    Returns ``(None, [])`` when the column cannot be predicted at all (the reason is shown).
    """
    guess = None
    with user_errors():
        guess = infer_task(state.df[target])
    if guess is None:
        return None, []
    saved = state.data_spec if state.data_spec is not None and state.data_spec.target == target else None
    tasks = list(TASK_LABELS)
    task = st.radio("What kind of prediction?", tasks, format_func=TASK_LABELS.get,
                    index=tasks.index(saved.task if saved else guess.task), key=f"data_task_{suffix}_{target}",
                    help="Guessed from the column; change it if the guess is wrong.")
    st.caption(f":material/lightbulb: Suggested: {guess.reason.replace(' -> ', ' → ')}.")
    options = [c.name for c in profile.columns if c.name != target]
    default = saved.features if saved else suggest_features(profile, target)
    features = inputs_place.multiselect("Columns to learn from", options, default=[f for f in default if f in options],
                              key=f"data_features_{suffix}_{target}",
                              help="The model sees only these columns. Leave out anything that would "
                                   "not be known when you make a prediction.")
    return task, features


def left_out_notes(profile: TableProfile, target: str, features: list[str]) -> list[str]:
    """Why each column that is not an input is left out (its own note, or the user's choice)."""
    notes = []
    for column in profile.columns:
        if column.name == target or column.name in features:
            continue
        reason = column.warnings[0] if column.warnings and (column.id_like or column.constant or
                                                            column.mostly_missing or column.n_unique == 0) \
            else f"'{column.name}': you left it out."
        notes.append(reason)
    return notes
