"""The predictions file as an analyst takes it away: input columns kept beside the predictions
(ID-like ones by default, so the rows join back to her data), written as CSV or Excel.

The Predict page and ``python -m builder predict`` both build the file here, so a download and a
command give the same columns. Kept columns come first, in the order of the input file, then the
model's own columns (``prediction``, ``probability_<class>``...), then, when asked for, the top
reasons of each prediction (``reason_1`` .. ``reason_k``: the columns, or words, that pushed it most).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

# The profile's own rule for ID-like names (not a second one), for files too short for its row test.
from builder.data.profile import ID_NAME, MIN_TARGET_ROWS, profile_table
from builder.errors import DataError, SpecError

EXCEL_SUFFIX = ".xlsx"
EXCEL_MAX_ROWS = 1_048_575  # an Excel sheet holds 1,048,576 rows, the header is one of them
EXCEL_SHEET = "predictions"
REASONS = 3  # reasons per prediction unless asked otherwise
MAX_REASONS = 20  # more reasons than this per row is not a reason any more, it is the whole row


def id_like_columns(rows: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """The columns of ``rows`` that identify a row, as the Data page judges them.

    The profile's rule (a different value in every row: text codes, or whole numbers counting up
    or named like an ID) needs ``MIN_TARGET_ROWS`` rows to judge; in a shorter file a column named
    like an ID (``id``, ``customer_id``, ``uuid``...) with a different value in every row counts.

    Args:
        rows: the rows to predict, as read.
        exclude: columns that are never ID-like here (the model's inputs and its target).

    Returns:
        Column names in the order of ``rows``.
    """
    others = [c for c in rows.columns if str(c) not in set(map(str, exclude))]
    if not others or rows.empty:
        return []
    if len(rows) >= MIN_TARGET_ROWS:
        profiled = profile_table(rows[others])
        return [c for c, column in zip(others, profiled.columns, strict=True) if column.id_like]
    return [c for c in others if ID_NAME.search(str(c)) and rows[c].notna().all() and rows[c].is_unique]


def kept_columns(rows: pd.DataFrame, keep: Sequence[str] | None, exclude: Sequence[str] = (),
                 taken: Sequence[str] = (), option: str = "The column(s) to keep") -> list[str]:
    """The input columns to keep beside the predictions.

    Args:
        rows: the rows to predict, as read.
        keep: the columns asked for; ``None`` keeps the ID-like ones (``id_like_columns``).
        exclude: columns never kept by default (the model's inputs and target); they can be asked for.
        taken: the predictions' own column names; an input column of the same name is not kept
            by default, and asking for it is an error.
        option: how the message names the request (the CLI says ``--keep``).

    Raises:
        DataError: an asked-for column is not in ``rows`` (the message lists the columns there), or
            has the name of a predictions column.
    """
    taken_names = set(map(str, taken))
    if keep is None:
        return [c for c in id_like_columns(rows, exclude) if str(c) not in taken_names]
    by_name = {str(c): c for c in rows.columns}
    asked = list(dict.fromkeys(str(c).strip() for c in keep if str(c).strip()))
    unknown = [c for c in asked if c not in by_name]
    if unknown:
        listed = ", ".join(f"'{c}'" for c in unknown)
        available = ", ".join(f"'{c}'" for c in list(by_name)[:40])
        more = f" and {len(by_name) - 40} more" if len(by_name) > 40 else ""
        raise DataError(f"{option} names {listed}, but the data has no such column. Its columns are: "
                        f"{available}{more}.")
    clash = [c for c in asked if c in taken_names]
    if clash:
        raise DataError(f"{option}: '{clash[0]}' is also the name of a column of the predictions. Rename it in "
                        "the data to keep it.")
    return [by_name[c] for c in asked]


def with_kept_columns(predictions: pd.DataFrame, rows: pd.DataFrame, columns: Sequence[Any]) -> pd.DataFrame:
    """``columns`` of ``rows`` first, then the predictions; row ``i`` of each belongs together.

    Raises:
        DataError: the predictions are not one per row (a forecast, say), so nothing lines up.
    """
    if not columns:
        return predictions
    if len(rows) != len(predictions):
        raise DataError(f"There are {len(predictions)} predictions for {len(rows)} rows, so input columns cannot "
                        "be kept beside them.")
    kept = rows[list(columns)].reset_index(drop=True)
    return pd.concat([kept, predictions.reset_index(drop=True)], axis=1)


def reasons_refusal(kind: str, task: str | None, asked: str = "Top reasons") -> str | None:
    """Why a model's predictions cannot get their top reasons, in one sentence; ``None`` when they can.

    Reasons name the columns of a table (or the words of a text) that pushed each prediction, so
    they exist for table and text models that predict a class or a number.

    Args:
        kind: the kind of data the model reads ("table", "text", "images", "series").
        task: its task.
        asked: how the sentence names the request (the CLI says ``--explain``).
    """
    if kind in ("table", "text") and task not in ("forecast", "anomaly"):
        return None
    what = ("an image model" if kind == "images" else "a forecast" if task == "forecast" or kind == "series"
            else "an anomaly model" if task == "anomaly" else f"a model of {kind} data")
    return (f"{asked} work for table and text models that predict a class or a number (they name the columns, "
            f"or words, that pushed each prediction most), but this is {what}")


def with_reasons(model: Any, rows: pd.DataFrame, predictions: pd.DataFrame, k: int = REASONS) -> pd.DataFrame:
    """The predictions, then ``reason_1`` .. ``reason_k``: the columns (or words) that pushed each most.

    One batched pass of ``builder.explain.top_reasons`` over all the rows (integrated gradients
    against a typical row), e.g. "age = 72 (raises)" or "'refund' (lowers)"; empty where a row has
    fewer than ``k`` columns that moved it.

    Args:
        model: a trained run or a read bundle (``model``, ``preprocessor``, ``task``, ``kind``).
        rows: the raw rows predicted, one per prediction, in the same order.
        predictions: their predictions.
        k: reasons per prediction, 1 to ``MAX_REASONS``.

    Raises:
        SpecError: a model without reasons (``reasons_refusal``), or ``k`` out of range.
        DataError: the predictions are not one per row, or the rows cannot be read.
    """
    from builder.explain import top_reasons

    refusal = reasons_refusal(model.kind, model.task)
    if refusal is not None:
        raise SpecError(f"{refusal}.")
    if not isinstance(k, int) or not 1 <= k <= MAX_REASONS:
        raise SpecError(f"Give from 1 to {MAX_REASONS} reasons per prediction; got {k!r}.")
    if len(rows) != len(predictions):
        raise DataError(f"There are {len(predictions)} predictions for {len(rows)} rows, so their reasons cannot "
                        "be put beside them.")
    reasons = top_reasons(model, rows.reset_index(drop=True), k=k)
    return pd.concat([predictions.reset_index(drop=True), reasons.reset_index(drop=True)], axis=1)


def predictions_csv(predictions: pd.DataFrame) -> bytes:
    """The predictions as CSV bytes (UTF-8, no index column)."""
    return predictions.to_csv(index=False).encode("utf-8")


def predictions_excel(predictions: pd.DataFrame) -> bytes:
    """The predictions as an Excel workbook (one sheet, ``predictions``), as bytes.

    Raises:
        DataError: more rows than an Excel sheet holds.
    """
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    if len(predictions) > EXCEL_MAX_ROWS:
        raise DataError(f"There are {len(predictions):,} predictions, more than the {EXCEL_MAX_ROWS:,} rows an Excel "
                        "sheet holds. Write a .csv file instead.")
    sheet = predictions.copy()
    for name in sheet.columns:
        values = sheet[name]
        if isinstance(values.dtype, pd.DatetimeTZDtype):  # Excel has no time zones: local clock time
            sheet[name] = values.dt.tz_localize(None)
        elif values.dtype == object or pd.api.types.is_string_dtype(values):
            # Control characters (other than tab and new line) are not allowed in an Excel cell.
            sheet[name] = values.map(lambda v: ILLEGAL_CHARACTERS_RE.sub("", v) if isinstance(v, str) else v)
    buffer = io.BytesIO()
    sheet.to_excel(buffer, index=False, sheet_name=EXCEL_SHEET, engine="openpyxl")
    return buffer.getvalue()


def is_excel_name(path: str | Path) -> bool:
    """Whether a file name asks for Excel (``.xlsx``)."""
    return Path(path).suffix.lower() == EXCEL_SUFFIX


def write_predictions(predictions: pd.DataFrame, path: str | Path) -> None:
    """Write the predictions to ``path``: Excel when the name ends in ``.xlsx``, else CSV.

    Raises:
        DataError: too many rows for an Excel sheet.
    """
    data = predictions_excel(predictions) if is_excel_name(path) else predictions_csv(predictions)
    Path(path).parent.mkdir(parents=True, exist_ok=True)  # made now, once there is something to write
    Path(path).write_bytes(data)
