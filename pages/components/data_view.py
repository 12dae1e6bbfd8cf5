"""Drawing helpers for the Data page: the drop zone and samples, the purpose of a table, the
column table, the panels for predicting a column and for finding unusual rows, and the saved choice.

The profile of a table is cached per saved file (path, modification time, size), so reruns and
page switches never profile the same table twice. Everything that is not drawing (reading,
profiling, the task guess, health checks) comes from ``builder.data``. The panels of the other
kinds of data live beside this file: ``series_view``, ``text_view`` and ``image_view``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from builder.data import (
    SAMPLES,
    DataSpec,
    TableProfile,
    check_target,
    health_warnings,
    infer_task,
    load_sample,
    profile_table,
    suggest_features,
)
from builder.data.preprocess import missing_mask, parse_numeric
from builder.data.profile import MIN_TARGET_ROWS, likely_target
from builder.data.samples import KIND_SAMPLES, kind_sample_spec, load_kind_sample
from builder.data.text import TextColumnGuess, find_text_column
from builder.data.timeseries import describe_step
from builder.errors import BuilderError
from pages.components.i18n import t, tcount, tm
from pages.components.state import AppState
from pages.components.ui import go_to, user_errors

FILE_TYPES = ["csv", "tsv", "txt", "xlsx", "xlsm", "parquet", "json", "jsonl", "zip"]
TASK_LABELS = {"regression": "A number (regression)", "binary": "Yes / no (binary)",
               "multiclass": "A category (multiclass)"}
TASK_PHRASES = {"regression": "as a number", "binary": "as yes or no", "multiclass": "as one of its categories"}
KIND_WORDS = {"numeric": "Number", "categorical": "Category", "text": "Text", "datetime": "Date",
              "boolean": "Yes / no"}
HISTOGRAM_BINS = 12
NOTE_ROW_HEIGHT = 72  # pixels: over 4rem, a table's cells wrap, so a note reads in full (3 lines)
COLUMN_TABLE_ORDER = ["Column", "Role", "Type", "Notes", "Missing", "Unique values", "Distribution", "Examples"]
UPLOAD_FAILURE_KEY = "data_upload_failure"  # (file id, where, message) of the last refused upload
NOT_LOADED = {"images": "This file was not loaded (your previous images are kept): ",
              "table": "This file was not loaded (your previous table is kept): "}
SAMPLE_SUFFIX = " (sample)"

# What a table can be used for; "table" and "anomaly" are both DataSpec.kind "table".
PURPOSES = {
    "table": (":material/target: Predict a column", "Learn one column from the others."),
    "anomaly": (":material/crisis_alert: Find unusual rows", "No column to predict: flag rows unlike the rest."),
    "series": (":material/timeline: Forecast a time series", "Predict the next values of a column over time."),
    "text": (":material/notes: Classify texts", "Read a column of written text and predict its label."),
}
SERIES_COLUMNS_MAX = 4  # a table this narrow with a date column per row reads as a time series


def purpose_label(purpose: str) -> str:
    """The purpose's label with its icon, in the session's language."""
    icon, name = PURPOSES[purpose][0].split(" ", 1)
    return f"{icon} {t(name)}"


def purpose_name(purpose: str) -> str:
    """The purpose's label without its icon ("Predict a column"), to name it in a sentence."""
    return t(PURPOSES[purpose][0].split(" ", 1)[1])


def choices_placeholder(options: list) -> str:
    """Streamlit's own placeholder of a multiselect, in the session's language (with no options,
    pass ``disabled=True`` too, as Streamlit does by itself)."""
    return t("Choose options") if options else t("No options to select")


def table_title(state: AppState) -> str:
    """The data's name as shown: a file's name as it is, a sample's title in the session's language."""
    name = state.table_name
    if name.endswith(SAMPLE_SUFFIX):
        return t("{title} (sample)", title=tm(name.removesuffix(SAMPLE_SUFFIX)))
    return name


# --- the current data, identified by its saved file ----------------------------------------------


def data_key(state: AppState) -> str:
    """A key that changes whenever new data is saved (even a file with the same name)."""
    data = state.workspace.data_file()
    if data is None:
        return "none"
    stat = data.path.stat()
    return f"{data.path}|{stat.st_mtime_ns}|{stat.st_size}"


table_key = data_key  # the Build page keys its caches with it


def widget_suffix(state: AppState) -> str:
    """A short suffix for widget keys, so every new data file starts with fresh widgets."""
    return hashlib.sha1(data_key(state).encode()).hexdigest()[:10]


@st.cache_resource(show_spinner=False, max_entries=8)
def _profile(key: str, _df: pd.DataFrame) -> tuple[TableProfile, list[list[int]]]:
    # Keyed by the saved file (``key``): the frame itself is not hashed (big tables hash slowly).
    profile = profile_table(_df)
    return profile, [value_counts_sketch(_df[c.name], c.kind) for c in profile.columns]


def table_profile(state: AppState) -> tuple[TableProfile, list[list[int]]]:
    """The table's profile and, per column, the counts for its mini histogram."""
    with st.spinner(t("Looking at every column...")):
        return _profile(data_key(state), state.df)


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


# --- choosing data ----------------------------------------------------------------------------------


def _card(column, title: str, description: str, key: str, icon: str) -> bool:
    # Cards of one height, text at the top and the button at the bottom, whatever the text length.
    with column.container(border=True, height="stretch", vertical_alignment="distribute"):
        with st.container(gap="small"):
            st.markdown(f"**{title}**")
            st.caption(description)
        return st.button(t("Use this sample"), key=key, icon=icon, width="stretch")


def sample_cards() -> str | None:
    """One small card per sample: tables in the first row, then pictures, a series and texts."""
    picked = None
    tables = st.columns(len(SAMPLES))
    for column, (name, sample) in zip(tables, SAMPLES.items(), strict=True):
        if _card(column, tm(sample.title), tm(sample.description), f"sample_{name}", ":material/table_chart:"):
            picked = name
    icons = {"images": ":material/image:", "series": ":material/timeline:", "text": ":material/notes:"}
    others = st.columns(len(SAMPLES))
    for column, (name, sample) in zip(others, KIND_SAMPLES.items(), strict=False):
        if _card(column, tm(sample.title), tm(sample.description), f"sample_{name}", icons[sample.kind]):
            picked = name
    return picked


def use_sample(state: AppState, name: str) -> bool:
    with user_errors():
        if name in KIND_SAMPLES:
            sample = KIND_SAMPLES[name]
            with st.spinner(t("Preparing the sample {title}...", title=tm(sample.title).lower())):
                data = load_kind_sample(name)
                if isinstance(data, bytes):
                    state.set_images(sample.file_name, data, title=f"{sample.title}{SAMPLE_SUFFIX}")
                else:
                    state.set_sample(Path(sample.file_name).stem, sample.title, data)
            state.set_data_spec(kind_sample_spec(name))  # the choices the sample is meant for
        else:
            state.set_sample(name, SAMPLES[name].title, load_sample(name))
        return True
    return False


def use_upload(state: AppState, uploaded) -> bool:
    """Keep an uploaded table or image zip; a bad file shows why here and the previous data stays.

    A refused file is not read again on every rerun: its message is remembered by the upload's id.
    """
    failure = st.session_state.get(UPLOAD_FAILURE_KEY)
    if failure and failure[0] == uploaded.file_id:
        st.error(f"{t(failure[1])}{tm(failure[2])}", icon=":material/error:")
        return False
    where = NOT_LOADED.get(state.data_kind, "This file was not loaded: ")
    with user_errors(t(where)):
        try:
            with st.spinner(t("Reading {name}...", name=uploaded.name)):
                if uploaded.name.lower().endswith(".zip"):
                    state.set_images(uploaded.name, uploaded.getvalue())
                else:
                    state.set_table(uploaded.name, uploaded.getvalue())
            return True
        except BuilderError as exc:
            st.session_state[UPLOAD_FAILURE_KEY] = (uploaded.file_id, where, str(exc))
            st.error(f"{t(where)}{tm(exc)}", icon=":material/error:")
    return False


# --- what the table is for ------------------------------------------------------------------------


def purpose_of(spec: DataSpec | None) -> str | None:
    """The purpose (a key of ``PURPOSES``) a saved data spec stands for, or ``None``."""
    if spec is None or spec.kind == "images":
        return None
    if spec.kind == "table":
        return "anomaly" if spec.task == "anomaly" else "table"
    return spec.kind


def saved_for(state: AppState, purpose: str) -> DataSpec | None:
    """The saved data spec when it is one of ``purpose`` (so its choices are the widgets' defaults)."""
    return state.data_spec if purpose_of(state.data_spec) == purpose else None


def guess_purpose(profile: TableProfile, text: TextColumnGuess | None = None) -> tuple[str, str | None]:
    """What a table most likely is for, and why (``None`` when it is a plain table).

    A table whose signal is a free-text column (``find_text_column``, as the CLI decides: the text
    and at most a few other columns) is texts to classify; a narrow table with a date in (nearly)
    every row and a number column is a time series. Anything else: predict a column.
    ``text``: the text guess when the caller has it (it reads the texts: worth caching).
    """
    kinds = {c.name: c.kind for c in profile.columns}
    guess = text if text is not None else text_guess(profile)
    if guess is not None and guess.column is not None:
        return "text", guess.reason
    dates = [c.name for c in profile.columns if c.kind == "datetime" and c.n_unique >= 0.8 * profile.n_rows]
    if dates and "numeric" in kinds.values() and profile.n_cols <= SERIES_COLUMNS_MAX:
        return "series", f"'{dates[0]}' holds a date for every row"
    return "table", None


def text_guess(profile: TableProfile) -> TextColumnGuess | None:
    """The engine's answer (the CLI's too) to "is this table texts to classify, and which column?";
    ``None`` for a profile without its table."""
    if profile.data is None:
        return None
    return find_text_column(profile.data, None, profile)


@st.cache_data(show_spinner=False, max_entries=16)
def cached_text_guess(key: str, _profile: TableProfile) -> TextColumnGuess | None:
    """``text_guess`` once per table (``key``: ``data_key``)."""
    return text_guess(_profile)


def purpose_choice(state: AppState, profile: TableProfile, suffix: str) -> str:
    """The radio that says what the table is for (saved choice, else the guess)."""
    guess, why = guess_purpose(profile, cached_text_guess(data_key(state), profile))
    start = purpose_of(state.data_spec) or guess
    names = list(PURPOSES)
    purpose = st.radio(t("What should the model do?"), names, index=names.index(start), horizontal=True,
                       format_func={p: purpose_label(p) for p in names}.get,
                       captions=[t(PURPOSES[p][1]) for p in names],
                       key=f"data_purpose_{suffix}")
    if why and purpose == guess:
        st.caption(":material/lightbulb: " + t("Suggested because {why}.", why=tm(why)))
    return purpose


# --- the column table ----------------------------------------------------------------------------


def column_table(profile: TableProfile, sketches: list[list[int]], roles: dict[str, str],
                 notes: bool = True) -> None:
    """One row per column; ``notes``: also how a table model reads each column (not for texts or series).

    The headers and words are the session's language; the frame's own column names stay English.
    """
    frame = pd.DataFrame({
        "Column": [c.name for c in profile.columns],
        "Role": [t(roles.get(c.name, "Left out")) for c in profile.columns],
        "Type": [t(KIND_WORDS.get(c.kind, c.kind)) for c in profile.columns],
        "Missing": [c.missing_pct for c in profile.columns],
        "Unique values": [c.n_unique for c in profile.columns],
        "Distribution": sketches,
        "Examples": [", ".join(c.examples[:3]) for c in profile.columns],
        "Notes": [" ".join(tm(w) for w in c.warnings) if notes else "" for c in profile.columns],
    })
    # The notes come right after the column's type, wrapped in taller rows, so they read in full at the
    # usual page width; the examples come last (the first rows show them too). No notes: no column.
    noted = bool(frame["Notes"].str.len().gt(0).any())
    st.dataframe(frame, hide_index=True, width="stretch", row_height=NOTE_ROW_HEIGHT if noted else None,
                 column_order=[c for c in COLUMN_TABLE_ORDER if noted or c != "Notes"],
                 column_config=_column_table_config())
    # The notes in full, one per line; a left-out column's note is in the "left out, and why" list
    # already, so each note is said once.
    found = [(c.name, note) for c in profile.columns if c.name in roles for note in c.warnings] if notes else []
    if found:
        columns = tcount(len({name for name, _ in found}), "column")
        with st.expander(t("Notes on {columns}", columns=columns), icon=":material/sticky_note_2:"):
            st.markdown("\n".join(f"- {tm(note)}" for _, note in found))


def _column_table_config() -> dict:
    """Headers and widths (pixels) of the column table: everything up to the distribution fits a
    page of the usual width beside the sidebar (about 900 pixels)."""
    return {
        "Column": st.column_config.TextColumn(t("Column"), width=130, pinned=True),
        "Role": st.column_config.TextColumn(t("Role"), help=t("How the model uses the column, or left out."),
                                            width=80),
        "Type": st.column_config.TextColumn(t("Type"), help=t("How the model reads the column."), width=80),
        "Notes": st.column_config.TextColumn(t("Notes"), width=300),
        "Missing": st.column_config.ProgressColumn(t("Missing"), help=t("Share of empty cells."), format="%.0f%%",
                                                   min_value=0, max_value=100, width=75),
        "Unique values": st.column_config.NumberColumn(
            t("Unique values"), help=t("How many different values the column has."), width=100),
        "Distribution": st.column_config.BarChartColumn(
            t("Distribution"), help=t("Numbers: how values spread from low to high. Others: the most "
                                      "frequent values, largest first."), width=85),
        "Examples": st.column_config.TextColumn(t("Examples"), width="medium"),
    }


def table_overview(profile: TableProfile) -> None:
    """Rows, columns, empty cells and number columns as four cards."""
    rows, cols, missing, numeric = st.columns(4)
    rows.metric(t("Rows"), f"{profile.n_rows:,}", help=t("Examples the model can learn from."), border=True)
    cols.metric(t("Columns"), f"{profile.n_cols:,}", help=t("Facts per example, the column to predict included."),
                border=True)
    cells = max(profile.n_rows * profile.n_cols, 1)
    missing.metric(t("Empty cells"), f"{100 * sum(c.n_missing for c in profile.columns) / cells:.1f}%",
                   help=t("Share of all cells with no value. The model fills them in for you."), border=True)
    numeric.metric(t("Number columns"), sum(c.kind == "numeric" for c in profile.columns), border=True,
                   help=t("Columns read as numbers; the others are categories, yes/no, dates or text."))


def table_tabs(df: pd.DataFrame, profile: TableProfile, sketches: list[list[int]], roles: dict[str, str],
               notes: bool = True) -> None:
    by_column, preview = st.tabs([f":material/view_column: {t('Columns')}", f":material/table_rows: {t('First rows')}"])
    with by_column:
        column_table(profile, sketches, roles, notes)
    with preview:
        st.dataframe(df.head(200), width="stretch", hide_index=True)
        st.caption(t("The first {shown} of {total:,} rows, as read from the file.", shown=min(200, len(df)),
                     total=len(df)))


# --- predict a column ---------------------------------------------------------------------------------


def default_target(state: AppState, profile: TableProfile) -> str | None:
    """The saved target, a sample's own target, a column whose name says it is the answer
    (``likely_target``), or ``None``: then the page asks, and nothing is saved until it is answered."""
    names = [c.name for c in profile.columns]
    saved = saved_for(state, "table")
    if saved is not None and saved.target in names:
        return saved.target
    for sample in SAMPLES.values():
        if state.table_name == f"{sample.title}{SAMPLE_SUFFIX}" and sample.target in names:
            return sample.target
    return likely_target(profile)


def task_and_features(state: AppState, profile: TableProfile, target: str, suffix: str, inputs_place):
    """The task (guessed, changeable) and the input columns for ``target`` (drawn in ``inputs_place``).

    Returns ``(None, [])`` when the column cannot be predicted at all (the reason is shown).
    """
    guess = None
    with user_errors():
        guess = infer_task(state.df[target])
    if guess is None:
        return None, []
    saved = saved_for(state, "table")
    saved = saved if saved is not None and saved.target == target else None
    tasks = list(TASK_LABELS)
    task = st.radio(t("What kind of prediction?"), tasks, format_func={k: t(v) for k, v in TASK_LABELS.items()}.get,
                    index=tasks.index(saved.task if saved else guess.task), key=f"data_task_{suffix}_{target}",
                    help=t("Guessed from the column; change it if the guess is wrong."))
    st.caption(":material/lightbulb: " + t("Suggested: {reason}.", reason=tm(guess.reason).replace("->", "→")))
    options = [c.name for c in profile.columns if c.name != target]
    default = saved.features if saved else suggest_features(profile, target)
    features = inputs_place.multiselect(t("Columns to learn from"), options,
                                        default=[f for f in default if f in options],
                                        key=f"data_features_{suffix}_{target}",
                                        placeholder=choices_placeholder(options), disabled=not options,
                                        help=t("The model sees only these columns. Leave out anything that would "
                                               "not be known when you make a prediction."))
    return task, features


def left_out_notes(profile: TableProfile, target: str | None, features: list[str]) -> list[str]:
    """Why each column that is not an input is left out (its own note, or the user's choice)."""
    notes = []
    for column in profile.columns:
        if column.name == target or column.name in features:
            continue
        reason = tm(column.warnings[0]) if column.warnings and (column.id_like or column.constant or
                                                                column.mostly_missing or column.n_unique == 0) \
            else t("'{name}': you left it out.", name=column.name)
        notes.append(reason)
    return notes


def table_warnings(profile: TableProfile, target: str | None) -> list[str]:
    """``health_warnings`` less the notes of single columns, which the column table and the
    "left out, and why" list already give: each message is said once on the page."""
    column_notes = {note for column in profile.columns for note in column.warnings}
    return [warning for warning in health_warnings(profile, target) if warning not in column_notes]


def _left_out(profile: TableProfile, target: str | None, features: list[str]) -> None:
    left_out = left_out_notes(profile, target, features)
    if left_out:
        with st.expander(t("{columns} left out, and why", columns=tcount(len(left_out), "column")),
                         icon=":material/visibility_off:"):
            st.markdown("\n".join(f"- {note}" for note in left_out))


def table_panel(state: AppState, profile: TableProfile, suffix: str) -> tuple[DataSpec | None, dict[str, str]]:
    """The column to predict, the task and the inputs; the spec (``None`` if unusable) and roles."""
    pick, inputs = st.columns(2, gap="large")
    with pick:
        names = [c.name for c in profile.columns]
        start = default_target(state, profile)
        target = st.selectbox(t("The column to predict"), names, index=names.index(start) if start else None,
                              key=f"data_target_{suffix}", placeholder=t("Choose the column to predict"),
                              help=t("The answer you want the model to give for new rows."))
        if target is None:
            st.info(t("Which column should the model learn to predict? Choose it above: no column's name "
                      "says it is the answer, and nothing is saved until you choose."), icon=":material/help:")
            return None, {}
        task, features = task_and_features(state, profile, target, suffix, inputs)
    with inputs:
        _left_out(profile, target, features)
    spec = None
    if task is not None:
        with user_errors():
            check_target(state.df, target, task)
            if not features:
                st.error(t("Choose at least one column to learn from."), icon=":material/error:")
            else:
                spec = DataSpec(target=target, task=task, features=list(features))
    if spec is not None:  # warnings about a target that cannot be used would only bury its one error
        for warning in table_warnings(profile, target):
            st.warning(tm(warning), icon=":material/warning:")
        for name in (f for f in features if profile.column(f).kind == "text"):  # never drop words silently
            st.warning(t("'{name}' holds free text, which a table model reads only as categories (whole "
                         "texts that repeat), not word by word. To learn from its words, choose "
                         "'{purpose}' above.", name=name, purpose=purpose_name("text")), icon=":material/warning:")
    return spec, {target: "Predicted", **{f: "Input" for f in features}}


# --- find unusual rows --------------------------------------------------------------------------------


def anomaly_panel(state: AppState, profile: TableProfile, suffix: str) -> tuple[DataSpec | None, dict[str, str]]:
    """The columns to look at when no column is predicted; the spec (``None`` if unusable) and roles."""
    st.caption(t("The model learns what ordinary rows look like by squeezing each row and rebuilding it. "
                 "Rows it rebuilds badly are unlike the rest: those are flagged as unusual, with a score."))
    saved = saved_for(state, "anomaly")
    names = [c.name for c in profile.columns]
    default = saved.features if saved else suggest_features(profile, None)
    features = st.multiselect(t("Columns to look at"), names, default=[f for f in default if f in names],
                              key=f"data_anomaly_features_{suffix}",
                              placeholder=choices_placeholder(names), disabled=not names,
                              help=t("A row is unusual when these values do not fit together the way they "
                                     "usually do. Leave out IDs and anything that is different in every row."))
    _left_out(profile, None, features)
    if profile.n_rows < MIN_TARGET_ROWS:
        st.error(t("The table has {rows} rows; finding unusual rows needs at least {minimum}. Use a longer "
                   "table.", rows=profile.n_rows, minimum=MIN_TARGET_ROWS), icon=":material/error:")
        return None, {}
    if not features:
        st.error(t("Choose at least one column to look at."), icon=":material/error:")
        return None, {}
    for warning in table_warnings(profile, None):
        st.warning(tm(warning), icon=":material/warning:")
    return DataSpec(target=None, task="anomaly", features=list(features)), {f: "Input" for f in features}


# --- the saved choice ---------------------------------------------------------------------------------


def describe_spec(state: AppState, spec: DataSpec) -> str:
    """One sentence for the analyst: what the model will learn from what."""
    options = spec.options
    if spec.kind == "images":
        height, width = options.get("size") or ("?", "?")
        n_classes = len(state.images.classes) if state.images is not None else 0
        return t("the model will tell **{n} classes** of pictures apart, looking at {width}x{height} pixels.",
                 n=n_classes, width=width, height=height)
    if spec.kind == "series":
        from pages.components.series_view import series_step  # series_view imports this module

        step = series_step(state, spec)
        window, horizon = int(options.get("window", 0)), int(options.get("horizon", 0))

        def span(n: int) -> str:
            steps = tcount(n, "step")
            return f"{tm(describe_step(step, n))} ({steps})" if step else steps

        return t("the model will forecast **{target}** {ahead} ahead from the past {past}.", target=spec.target,
                 ahead=span(horizon), past=span(window))
    if spec.kind == "text":
        labels = state.df[spec.target].nunique() if state.df is not None else 0
        return t("the model will read **{text}** and predict **{target}** ({labels} labels).",
                 text=options.get("text_column"), target=spec.target, labels=labels)
    columns = tcount(len(spec.features), "column")
    if spec.task == "anomaly":
        return t("the model will learn what ordinary rows look like from {columns} and score how unusual each "
                 "row is.", columns=columns)
    return t("the model will predict **{target}** {how} from {columns}.", target=spec.target,
             how=t(TASK_PHRASES[spec.task]), columns=columns)


def save_choice(state: AppState, spec: DataSpec | None) -> None:
    """Save the data spec (``None`` when the choice cannot work) and point to the next step."""
    if spec != state.data_spec:
        state.set_data_spec(spec)
    if spec is not None:
        st.success(t("Saved: {what}", what=describe_spec(state, spec)), icon=":material/check_circle:")
        go_to("Build", t("Next: build the model"))

