"""The Predict page's inputs and results for each kind of model: tables, anomaly scores, text,
images and forecasts, and the downloads (CSV and Excel, with the input columns kept to join them
back, and the top reasons of each prediction when asked for). The model is a trained run or an
uploaded bundle: both have ``predict(raw, **opts)``, ``preprocessor``, ``data_spec``, ``model``,
``task`` and ``kind``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from builder.data import SUPPORTED_TABLE_EXTENSIONS, read_table
from builder.export.predictions import (
    EXCEL_MAX_ROWS,
    REASONS,
    kept_columns,
    predictions_csv,
    predictions_excel,
    reasons_refusal,
    with_kept_columns,
    with_reasons,
)
from builder.predict_inputs import history_for_chart, images_from_uploads, summarise_anomalies, text_row
from pages.components import charts
from pages.components.bundle_view import (
    chance_column,
    fill_form,
    form_columns,
    one_row_form,
    predictions_table,
    probability_figure,
    score_against_target,
)
from pages.components.i18n import t, tcount, tm
from pages.components.ui import user_errors

UPLOAD_ROWS, ONE_ROW, ONE_TEXT = "Upload a file of rows", "Fill in one row", "Type one text"
TABLE_TYPES = [e.lstrip(".") for e in SUPPORTED_TABLE_EXTENSIONS]
IMAGE_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "zip"]
GRID_COLUMNS, MAX_THUMBNAILS = 6, 24
HISTORY_WINDOWS = 4  # the forecast chart shows this many windows of history before the forecast
REASONS_LABEL = "Add the top reasons for each prediction"
REASONS_CACHE = "predict_reasons_cache"  # session key: the reasons last found, so a rerun does not redo them


def needed_columns(model: Any) -> list[str]:
    """The columns a file of rows must hold for this model (none for images)."""
    pre, kind = model.preprocessor, model.data_spec.kind
    if kind == "images":
        return []
    if kind == "text":
        return [pre.text_column]
    if kind == "series":
        return [pre.time_column, *pre.columns]
    return list(pre.features)


def usable_sample(model: Any, df: pd.DataFrame | None) -> pd.DataFrame:
    """The loaded table when it holds every column the model needs, else an empty frame."""
    needed = needed_columns(model)
    return df if df is not None and needed and set(needed) <= set(df.columns) else pd.DataFrame()


def class_list(classes: list[str], most: int = 8) -> str:
    """'a, b and c'; past ``most`` names: 'a, b, ..., h and 2 more' (no run of dots at a sentence's end)."""
    if len(classes) <= 1:
        return "".join(classes)
    comma = t(", ")
    if len(classes) <= most:
        return comma.join(classes[:-1]) + t(" and ") + classes[-1]
    return comma.join(classes[:most]) + t(" and {n} more", n=len(classes) - most)


def prediction_counts(predictions: pd.DataFrame, kind: str) -> str:
    """'Predicted: 3 (6 images), 7 (5 images).': each answer with how often it was given, most first."""
    singular, plural = {"images": ("image", "images"), "text": ("text", "texts")}.get(kind, ("row", "rows"))
    counts = predictions["prediction"].astype(str).value_counts()
    listed = t(", ").join(f"{label} ({tcount(count, singular, plural)})" for label, count in counts.items())
    return t("Predicted: {counts}.", counts=listed)


def what_it_predicts(model: Any) -> str:
    """One sentence: what comes out of this model, from what."""
    pre, kind, task, target = model.preprocessor, model.data_spec.kind, model.data_spec.task, model.data_spec.target
    classes = [str(c) for c in pre.classes]
    shown = class_list(classes)
    if task == "forecast":
        return t("This model forecasts **'{target}'** {horizon} step(s) ahead from the last {window} steps of a "
                 "history with `{time}` and {columns}.", target=target, horizon=pre.horizon, window=pre.window,
                 time=pre.time_column, columns=t(", ").join(f"`{c}`" for c in pre.columns))
    if task == "anomaly":
        return t("This model scores how unusual each row is from {n} columns and flags rows above its threshold "
                 "({threshold:.4g}).", n=len(pre.features), threshold=pre.threshold)
    if kind == "images":
        return (t("This model sorts images into {n} classes: {classes}.", n=len(classes), classes=shown)
                + _threshold_words(pre, task))
    what = {"regression": t("a number"), "binary": t(" or ").join(classes),
            "multiclass": t("one of {n}: {classes}", n=len(classes), classes=shown)}.get(task, task)
    if kind == "text":
        said = t("This model predicts **'{target}'** ({what}) from the text in `{column}`.", target=target,
                 what=what, column=pre.text_column)
    else:
        said = t("This model predicts **'{target}'** ({what}) from {n} columns.", target=target, what=what,
                 n=len(pre.features))
    return said + _threshold_words(pre, task)


def _threshold_words(pre: Any, task: str) -> str:
    """A yes/no model's decision threshold in words, when one other than 0.5 was chosen."""
    threshold = getattr(pre, "decision_threshold", None) if task == "binary" else None
    if threshold is None or threshold == 0.5:
        return ""
    negative, positive = pre.classes
    return t(" It answers '{positive}' when the chance of '{positive}' is above {threshold:.3g}% (its decision "
             "threshold), otherwise '{negative}'.", positive=positive, negative=negative, threshold=threshold * 100)


# --- inputs -----------------------------------------------------------------------------------------------


def rows_upload(model: Any) -> pd.DataFrame | None:
    """A file of rows (or of texts, or a history), read as a table; ``None`` until one is uploaded."""
    forecast = model.data_spec.task == "forecast"
    label = (t("The history to forecast from (CSV, TSV, Excel, Parquet or JSON)") if forecast else
             t("A table of rows to predict (CSV, TSV, Excel, Parquet or JSON)"))
    upload = st.file_uploader(label, type=TABLE_TYPES, key="predict_rows")
    with st.expander(t("Which columns the file needs")):
        needed, target = needed_columns(model), model.data_spec.target
        if forecast:
            extra = t(" The newest {n} steps are used; gaps are filled as in training.", n=model.preprocessor.window)
        else:
            extra = t(" Other columns are ignored; empty cells and new categories are fine.") + (
                t(" `{target}` may be there, and then you also see how often the model was right.", target=target)
                if target else "")
        st.markdown(t("The same columns as the training data: {columns}.{extra}",
                      columns=t(", ").join(f"`{c}`" for c in needed), extra=extra))
    if upload is None:
        return None
    return read_table(upload.getvalue(), name=upload.name, drop_empty_rows=False)


def one_row(model: Any, key: str, sample: pd.DataFrame) -> pd.DataFrame | None:
    """A form: the text to classify, or one value per input column."""
    if model.data_spec.kind == "text":
        column = model.preprocessor.text_column
        text = st.text_area(t("The text ('{column}')", column=column), key=f"{key}:text", height=120,
                            placeholder=t("Type or paste a text to classify"))
        return text_row(column, text) if text.strip() else None
    columns = form_columns(model.preprocessor)
    st.button(t("Fill with a sample row"), icon=":material/casino:", on_click=fill_form, args=(key, columns, sample),
              disabled=sample.empty, help=t("Copies a row of the training data (the next one on each click)."))
    with st.container(border=True):
        return one_row_form(key, columns)


def example_images(images: Any, count: int = 12) -> list[tuple[str, bytes]]:
    """Evenly spaced images of the loaded image zip (an ``ImageSet``), so most classes show up."""
    if images is None or not len(images):
        return []
    picks = np.unique(np.linspace(0, len(images) - 1, min(count, len(images))).round().astype(int))
    return [(images.paths[i], images.data[i]) for i in picks]


def image_upload(examples: list[tuple[str, bytes]]) -> tuple[list[str], list[bytes]] | None:
    """Uploaded images (files and zips), or the example images when the user asks for them."""
    uploads = st.file_uploader(t("Images to sort (PNG, JPEG, BMP or GIF files, or a .zip of them)"),
                               type=IMAGE_TYPES, accept_multiple_files=True, key="predict_images")
    if uploads:
        return images_from_uploads([(u.name, u.getvalue()) for u in uploads])
    if examples and st.toggle(t("Try {n} example images", n=len(examples)), key="predict_examples",
                              help=t("Images from the training data (or the bundle's examples), to see the model "
                                     "work.")):
        return [name for name, _ in examples], [data for _, data in examples]
    return None


def reasons_choice(model: Any) -> bool:
    """The checkbox that adds the top reasons (table and text models that predict a class or a
    number; nothing is shown for other models, which have none): whether it is ticked."""
    if reasons_refusal(model.data_spec.kind, model.data_spec.task) is not None:
        return False
    spec = model.data_spec
    words = t("words") if spec.kind == "text" else t("columns")
    if spec.task == "binary":
        moved = t("the chance of '{label}'", label=model.preprocessor.classes[-1])
    elif spec.task == "multiclass":
        moved = t("the chance of the predicted class")
    else:
        moved = t("the predicted {target}", target=spec.target)
    example = "'refund' (raises)" if spec.kind == "text" else "age = 72 (raises)"  # a reason as the table says it
    return st.checkbox(t(REASONS_LABEL), value=False, key="predict_reasons",
                       help=t("Adds reason_1 to reason_{n} to the table and to the downloads: the {n} {words} that "
                              "pushed each prediction most, and whether each raises or lowers {moved}, e.g. "
                              "\"{example}\". Measured against a typical row; it takes a few seconds per thousand "
                              "rows.", n=REASONS, words=words, moved=moved, example=example))


def add_reasons(model: Any, key: str, rows: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """The predictions with ``reason_1`` .. ``reason_3`` after them, under a spinner. The last answer
    is kept for the session, so changing the kept columns (a rerun) does not explain the rows again."""
    token = _rows_token(key, rows)
    cached = st.session_state.get(REASONS_CACHE)
    if token is not None and cached is not None and cached[0] == token and len(cached[1]) == len(predictions):
        reasons = cached[1]
    else:
        noun = "text" if model.data_spec.kind == "text" else "row"
        with st.spinner(t("Finding what pushed each prediction ({count})...", count=tcount(len(rows), noun))):
            explained = with_reasons(model, rows, predictions, REASONS)
        reasons = explained.iloc[:, len(predictions.columns):]
        st.session_state[REASONS_CACHE] = (token, reasons)
    return pd.concat([predictions.reset_index(drop=True), reasons.reset_index(drop=True)], axis=1)


def _rows_token(key: str, rows: pd.DataFrame) -> str | None:
    """What the reasons depend on: the model (``key``) and the rows' values; ``None`` if they cannot be hashed."""
    try:
        hashed = pd.util.hash_pandas_object(rows, index=False).to_numpy()
    except (TypeError, ValueError):
        return None
    digest = hashlib.sha256(hashed.tobytes())
    digest.update("\x1f".join(map(str, rows.columns)).encode())
    return f"{key}:{digest.hexdigest()}"


def reason_columns(predictions: pd.DataFrame) -> list[str]:
    """The ``reason_<i>`` columns of the predictions, in order."""
    return [c for c in predictions.columns if str(c).startswith("reason_") and str(c)[7:].isdigit()]


# --- results --------------------------------------------------------------------------------------------


def keep_columns(model: Any, rows: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """A choice of the file's columns to keep with the predictions (the ID-like ones preselected, as
    ``python -m builder predict`` keeps them); returns them first, then the predictions."""
    spec = model.data_spec
    taken = [str(c) for c in predictions.columns]
    options = [c for c in rows.columns if str(c) not in taken]
    default = kept_columns(rows, None, exclude=[*spec.features, *([spec.target] if spec.target else [])],
                           taken=taken)
    # One choice per set of columns: a file with other columns starts again from its own ID-like ones.
    key = "predict_keep:" + hashlib.sha256("\x1f".join(map(str, rows.columns)).encode()).hexdigest()[:16]
    chosen = st.multiselect(t("Columns of your file to keep with the predictions"), options, default=default,
                            key=key, help=t("They come first in the table and in the downloads, so the predictions "
                                            "join back to your rows. Columns that identify a row (a different value "
                                            "in every row, such as a customer number) are chosen for you."))
    return with_kept_columns(predictions, rows, chosen)


def range_notes(model: Any, rows: pd.DataFrame, single: bool = False) -> pd.Series | None:
    """Per row, the inputs outside what a table model saw in training ("" when none), with a warning
    that counts the rows; ``None`` for other kinds of model."""
    if model.data_spec.kind != "table":
        return None
    from builder.decide import out_of_range

    notes = out_of_range(model.preprocessor, rows).reset_index(drop=True)
    flagged = int((notes != "").sum())
    if single and flagged:
        st.warning(t("This row has values outside what the model saw in training ({values}), so its answer is "
                     "less reliable.", values=tm(notes.iloc[0])), icon=":material/warning:")
    elif flagged:
        template = ("{n:,} row has values outside what the model saw in training: their predictions are less "
                    "reliable. The out_of_range column says which values." if flagged == 1 else
                    "{n:,} rows have values outside what the model saw in training: their predictions are less "
                    "reliable. The out_of_range column says which values.")
        st.warning(t(template, n=flagged), icon=":material/warning:")
    return notes


def downloads(table: pd.DataFrame, name: str) -> None:
    """The predictions as CSV and, beside it, as Excel (made only when asked for: it takes longer)."""
    csv_cell, excel_cell, _ = st.columns([1, 1, 1])
    csv_cell.download_button(t("Download predictions (CSV)"), data=predictions_csv(table),
                             file_name=f"{name}-predictions.csv", mime="text/csv", icon=":material/download:",
                             type="primary", on_click="ignore", width="stretch")
    too_big = len(table) > EXCEL_MAX_ROWS
    excel_cell.download_button(
        t("Download predictions (Excel)"), data=b"" if too_big else (lambda: predictions_excel(table)),
        file_name=f"{name}-predictions.xlsx", icon=":material/table:", on_click="ignore", width="stretch",
        mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", disabled=too_big,
        help=t("An Excel sheet holds at most {n:,} rows: download the CSV.", n=EXCEL_MAX_ROWS) if too_big else None)


def table_results(model: Any, rows: pd.DataFrame, predictions: pd.DataFrame, single: bool) -> None:
    """Classification or regression of rows (or texts): the answer of one row, or the table."""
    task, target = model.data_spec.task, model.data_spec.target
    has_chances = task in ("binary", "multiclass")
    notes = range_notes(model, rows, single)
    if single:
        left, right = st.columns([2, 3], gap="large")
        label = predictions["prediction"].iloc[0]
        left.metric(t("Predicted {target}", target=target), f"{label:,.4g}" if task == "regression" else str(label),
                    border=True, help=t("The model's answer for this row."))
        if has_chances:
            left.caption(t("The model gives '{label}' a {chance:.0%} chance.", label=label,
                           chance=predictions[f"probability_{label}"].iloc[0]))
        if asked := reason_columns(predictions):
            reasons = [str(v) for v in predictions[asked].iloc[0] if isinstance(v, str)]
            left.caption(t("What pushed it most: {reasons}.", reasons="; ".join(reasons)) if reasons else
                         t("Nothing pushed it: the inputs the model uses are at their typical values."))
        if has_chances:
            right.plotly_chart(probability_figure(predictions), config={"displayModeBar": False})
        return
    shown = predictions if notes is None else predictions.assign(out_of_range=notes.to_numpy())
    predictions_table(rows, shown, needed_columns(model), target)
    if has_chances:
        st.caption(prediction_counts(predictions, model.data_spec.kind))
    if (scored := score_against_target(rows, predictions, target, task)) is not None:
        st.info(scored, icon=":material/fact_check:")


def anomaly_results(model: Any, rows: pd.DataFrame, scored: pd.DataFrame, single: bool) -> None:
    if single:
        left, right = st.columns(2)
        left.metric(t("Anomaly score"), f"{scored['anomaly_score'].iloc[0]:.4g}", border=True,
                    help=t("How badly the model rebuilds this row; above {threshold:.4g} is unusual.",
                           threshold=model.preprocessor.threshold))
        right.metric(t("Unusual?"), t("yes") if bool(scored["is_anomaly"].iloc[0]) else t("no"), border=True)
        return
    st.metric(t("Rows flagged"), f"{int(scored['is_anomaly'].sum()):,}{t(' of ')}{len(scored):,}", border=True)
    st.info(tm(summarise_anomalies(scored)), icon=":material/fact_check:")
    notes = range_notes(model, rows)
    if notes is not None:
        scored = scored.assign(out_of_range=notes.to_numpy())
    shown = [c for c in needed_columns(model) if c in rows.columns and c not in scored.columns]
    table = pd.concat([scored.reset_index(drop=True), rows[shown].reset_index(drop=True)], axis=1)
    table.insert(0, "row", np.arange(1, len(table) + 1))
    table = table.sort_values(["is_anomaly", "anomaly_score"], ascending=False, kind="stable")
    st.dataframe(table, hide_index=True, width="stretch", key="anomaly_table", column_config={
        "row": st.column_config.NumberColumn(t("Row"), help=t("Position in your file.")),
        "anomaly_score": st.column_config.NumberColumn(t("Anomaly score"), format="%.4g"),
        "is_anomaly": st.column_config.CheckboxColumn(t("Unusual?"))})
    st.caption(t("Most unusual first; the download keeps your rows' order."))


def known_label(path: str, classes: list[str]) -> str | None:
    """The true class of an image whose folder names it (the example images, a zip of class
    folders): the folder, when it is one of the model's classes; else ``None``."""
    parts = str(path).replace("\\", "/").rsplit("/", 2)
    return parts[-2] if len(parts) >= 2 and parts[-2] in classes else None


def image_results(data: list[bytes], predictions: pd.DataFrame) -> None:
    classes = [c.removeprefix("probability_") for c in predictions.columns if c.startswith("probability_")]
    for start in range(0, min(len(data), MAX_THUMBNAILS), GRID_COLUMNS):
        for cell, i in zip(st.columns(GRID_COLUMNS), range(start, min(start + GRID_COLUMNS, len(data))), strict=False):
            label = predictions["prediction"].iloc[i]
            chance = f" ({predictions[f'probability_{label}'].iloc[i]:.0%})" if classes else ""
            cell.image(data[i], width=112, caption=f"{label}{chance}")
            path = str(predictions["file"].iloc[i])
            truth = known_label(path, classes)
            name = path.replace("\\", "/").rsplit("/", 1)[-1]
            if truth is None:
                cell.caption(name)
            else:  # the folder says what it really is: show it, and whether the model got it
                mark = ":material/check: " if str(truth) == str(label) else ":material/close: "
                cell.caption(mark + t("really {truth} · {name}", truth=truth, name=name))
    if len(data) > MAX_THUMBNAILS:
        st.caption(t("The first {n} of {total:,} images; the table has them all.", n=MAX_THUMBNAILS, total=len(data)))
    config: dict[str, Any] = {c: chance_column(c) for c in predictions.columns if c.startswith("probability_")}
    st.dataframe(predictions, hide_index=True, width="stretch", key="image_predictions", column_config=config)
    st.caption(prediction_counts(predictions, "images"))


def forecast_results(model: Any, history: pd.DataFrame, forecast: pd.DataFrame) -> None:
    pre = model.preprocessor
    with user_errors():
        recent = history_for_chart(pre, history, HISTORY_WINDOWS * int(pre.window))
        chart_forecast = pd.DataFrame({"time": pd.to_datetime(forecast[pre.time_column]),
                                       "prediction": forecast["prediction"]})
        st.plotly_chart(charts.future_forecast_figure(recent, chart_forecast, pre.target), key="future_forecast")
    times = pd.to_datetime(forecast[pre.time_column])
    daily = bool((times == times.dt.normalize()).all())  # whole days: no 00:00:00 on every line
    st.dataframe(forecast, hide_index=True, width="stretch", key="forecast_table", column_config={
        pre.time_column: st.column_config.DatetimeColumn(format="YYYY-MM-DD" if daily else "YYYY-MM-DD HH:mm"),
        "prediction": st.column_config.NumberColumn(t("Forecast of {target}", target=pre.target), format="%.4g")})
