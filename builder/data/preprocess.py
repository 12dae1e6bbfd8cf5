"""Fitted preprocessing for tables: raw rows in, a float32 matrix out, model outputs back to labels.

This file is copied verbatim into every export bundle next to a standalone ``predict.py``, so it
imports only numpy, pandas and the standard library. The app, the CLI and the bundle all run this
one implementation, which is why an exported model predicts exactly what the app showed.

Each input column is handled by the step registered for its kind (``numeric``, ``boolean``,
``categorical``/``text``, ``datetime``). A step's fitted state is a plain JSON dict, so
``Preprocessor.to_dict`` is a copy of that state and a JSON round trip reproduces the transform bit
for bit. The parsing helpers (``parse_numeric``, ``infer_kind``...) are shared with the profiler, so
the column types shown to the user are the ones the model is trained on.
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from collections.abc import Callable, Iterator
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from pandas.api.types import (
    is_bool_dtype,
    is_datetime64_any_dtype,
    is_numeric_dtype,
)
from pandas.tseries.api import guess_datetime_format

try:
    from builder.errors import DataError
except ImportError:  # copied into an export bundle

    class DataError(ValueError):  # type: ignore[no-redef]
        """The data cannot be used as it is; the message says what, where and the fix."""


logger = logging.getLogger(__name__)

FORMAT = "builder.tabular-preprocessor"
FORMAT_VERSION = 1
TASKS = ("regression", "binary", "multiclass")
ANOMALY_TASK = "anomaly"  # a table without a target: the model rebuilds its input (an autoencoder)
TASK_WORDS = {
    "regression": "predicting a number (regression)",
    "binary": "a yes/no prediction (binary)",
    "multiclass": "predicting one of several categories (multiclass)",
}

# Cells that mean "no value" in exported spreadsheets. Deliberately short: "None" or "-" can be a
# real category ("Symptoms: None"), so they are left alone.
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "#n/a", "?"})
TRUE_TOKENS = frozenset({"true", "yes", "y", "t"})
FALSE_TOKENS = frozenset({"false", "no", "n", "f"})
# A text column is read as numbers (or dates) when at least this share of its values parse.
PARSE_SHARE = 0.95
# Kind detection looks at this many evenly spaced values; enough to judge, fast on 1M rows.
DETECT_SAMPLE = 50_000
DATE_SAMPLE = 5_000
# Standardised values are clipped here so float32 stays finite even for absurd outliers.
CLIP = 1e6
# Numbers are mapped through their training quantiles to normal scores (a quantile transform):
# skewed counts, prices and durations become evenly spread inputs, and outliers land at the edge
# instead of 15 standard deviations out. Measured on real tables (bench.quality): concrete
# strength R2 0.86 -> 0.91 over standardising. Saved states without "quantiles" (made before this)
# are still standardised.
QUANTILES = 128
DATE_PARTS = ("year", "month", "day of week", "day of year")
# A yes/no model answers the second class (in sorted order) when its probability is above this.
# 0.5 is what the argmax of the two probabilities gives; a user may choose another on validation
# rows (fewer false alarms, or fewer misses). Saved states without one (older bundles) read as 0.5.
DEFAULT_DECISION_THRESHOLD = 0.5

# Patterns are plain strings without look-arounds so pandas can run them in pyarrow (RE2), which
# is ~10x faster than Python's re on large columns.
_NUMBER_NOISE = "[\\s\u00a0\u202f$€£¥₹%']"  # spaces (also non-breaking), currency, %, Swiss 1'234
_ACCOUNTING_NEGATIVE = r"^\((.+)\)$"  # (5) -> -5
_EUROPEAN = r"^[+-]?\d{1,3}(?:\.\d{3})+,\d+$"  # 1.234,56
_THOUSANDS = r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$"  # 1,234,567.8
_DECIMAL_COMMA = r"^[+-]?\d+,\d+$"  # 12,5


# ---------------------------------------------------------------------------------------------
# Parsing helpers (shared with builder.data.profile)
# ---------------------------------------------------------------------------------------------


def _is_textual(values: pd.Series) -> bool:
    return not (
        is_numeric_dtype(values) or is_bool_dtype(values) or is_datetime64_any_dtype(values)
    )


def _per_unique(
    values: pd.Series, parse: Callable[[pd.Series], np.ndarray], fill: Any
) -> np.ndarray:
    """Apply ``parse`` once per distinct value and spread the results back to every row.

    Columns repeat their values, and string parsing is the slow part, so this turns an O(rows)
    regex pass into O(distinct values). Missing cells get ``fill``.
    """
    codes, uniques = pd.factorize(values)
    parsed = np.asarray(parse(pd.Series(uniques, dtype=values.dtype)))
    # Code -1 marks a missing cell; it indexes the appended fill value.
    return np.append(parsed, np.asarray([fill], dtype=parsed.dtype))[codes]


def _stripped(values: pd.Series) -> pd.Series:
    return values.astype("str").str.strip()


def missing_mask(values: pd.Series) -> np.ndarray:
    """Which cells hold no value: NaN/None/NaT, blanks, and tokens such as ``N/A`` or ``?``.

    Args:
        values: one column.

    Returns:
        A boolean array, one entry per row.
    """
    if not _is_textual(values):
        return values.isna().to_numpy()

    def blank(uniques: pd.Series) -> np.ndarray:
        return _stripped(uniques).str.lower().isin(MISSING_TOKENS).to_numpy()

    return _per_unique(values, blank, True).astype(bool)


def _parse_number_text(uniques: pd.Series) -> np.ndarray:
    text = _stripped(uniques)
    numbers = pd.to_numeric(text, errors="coerce").astype("float64")
    messy = numbers.isna() & text.notna() & ~text.str.lower().isin(MISSING_TOKENS)
    if messy.any():
        cleaned = text[messy].str.replace(_NUMBER_NOISE, "", regex=True)
        cleaned = cleaned.str.replace(_ACCOUNTING_NEGATIVE, r"-\1", regex=True)
        european = cleaned.str.match(_EUROPEAN)
        thousands = cleaned.str.match(_THOUSANDS)
        decimal_comma = cleaned.str.match(_DECIMAL_COMMA) & ~thousands  # "1,234" reads as thousands
        cleaned = cleaned.where(~european, cleaned.str.replace(".", "", regex=False))
        comma_decimal = european | decimal_comma
        cleaned = cleaned.where(~comma_decimal, cleaned.str.replace(",", ".", regex=False))
        cleaned = cleaned.where(~thousands, cleaned.str.replace(",", "", regex=False))
        numbers[messy] = pd.to_numeric(cleaned, errors="coerce").astype("float64")
    return numbers.to_numpy(dtype="float64", na_value=np.nan)


def parse_numeric(values: pd.Series) -> np.ndarray:
    """Read a column as numbers, including numbers stored as messy text.

    Understands ``"1,234"``, ``" 12 "``, ``"$5"``, ``"7%"`` (-> 7), ``"(5)"`` (-> -5), ``"1.234,5"``
    and ``"12,5"`` (decimal comma). Booleans become 0/1.

    Args:
        values: one column, of any dtype.

    Returns:
        float64 array; NaN where a cell is missing, infinite or not a number.
    """
    if is_bool_dtype(values):
        numbers = values.to_numpy(dtype="float64", na_value=np.nan)
    elif is_numeric_dtype(values):
        numbers = values.to_numpy(dtype="float64", na_value=np.nan, copy=True)
    elif is_datetime64_any_dtype(values):
        return np.full(len(values), np.nan)
    else:
        numbers = _per_unique(values, _parse_number_text, np.nan)
    numbers[~np.isfinite(numbers)] = np.nan
    return numbers


def _parse_boolean_text(uniques: pd.Series) -> np.ndarray:
    lowered = _stripped(uniques).str.lower()
    flags = np.select(
        [lowered.isin(TRUE_TOKENS), lowered.isin(FALSE_TOKENS)], [1.0, 0.0], default=np.nan
    )
    # Anything else may still be a number ("1", "0.0"): non-zero means true.
    numbers = _parse_number_text(uniques)
    from_numbers = np.where(np.isnan(numbers), np.nan, (numbers != 0).astype("float64"))
    return np.where(np.isnan(flags), from_numbers, flags)


def parse_boolean(values: pd.Series) -> np.ndarray:
    """Read a yes/no column as 1.0/0.0 (true/yes/y/t/non-zero -> 1; false/no/n/f/0 -> 0).

    Args:
        values: one column, of any dtype.

    Returns:
        float64 array of 1.0, 0.0, or NaN where the cell is missing or not a yes/no value.
    """
    if is_bool_dtype(values) or is_numeric_dtype(values):
        numbers = parse_numeric(values)
        return np.where(np.isnan(numbers), np.nan, (numbers != 0).astype("float64"))
    return _per_unique(values, _parse_boolean_text, np.nan)


def detect_datetime_format(values: pd.Series) -> str | None:
    """Find the date format that reads at least 95% of a text column, or ``None``.

    Tries ISO 8601 first, then the formats pandas guesses from the first values, both month-first
    and day-first, so ``31/12/2020`` is not misread as an invalid month-first date.

    Args:
        values: one text column (missing cells are ignored).

    Returns:
        A ``strftime`` format, ``"ISO8601"``, or ``None`` when the column is not dates.
    """
    # A format is a property of the whole column: a few thousand values are enough to find it.
    text = _stripped(_evenly_spaced(values[~missing_mask(values)], DATE_SAMPLE))
    if text.empty or text.str.contains(r"\d", regex=True).mean() < PARSE_SHARE:
        return None
    best_rate, best = 0.0, None
    for fmt in _date_format_candidates(text):
        rate = pd.to_datetime(text, format=fmt, errors="coerce", utc=True).notna().mean()
        if rate > best_rate:
            best_rate, best = rate, fmt
        if rate == 1.0:
            break
    return best if best_rate >= PARSE_SHARE else None


def _date_format_candidates(text: pd.Series) -> Iterator[str]:
    yield "ISO8601"
    seen = {"ISO8601"}
    for value in text.iloc[:5]:
        for dayfirst in (False, True):
            with warnings.catch_warnings():
                # pandas warns when dayfirst cannot apply (e.g. ISO dates); we try both anyway.
                warnings.simplefilter("ignore", UserWarning)
                guess = guess_datetime_format(value, dayfirst=dayfirst)
            # A format without a year ("%m/%d", "%H:%M") turns fractions or times into fake dates.
            if guess and ("%Y" in guess or "%y" in guess) and guess not in seen:
                seen.add(guess)
                yield guess


def parse_datetime(values: pd.Series, fmt: str | None = None) -> pd.Series:
    """Read a column as timestamps in UTC (without time zone); unreadable cells become NaT.

    Args:
        values: one column: datetime dtype, or text.
        fmt: the format found at fit time; ``None`` detects it from ``values``.

    Returns:
        A ``datetime64`` series, time-zone naive, in UTC.
    """
    if is_datetime64_any_dtype(values):
        return values if values.dt.tz is None else values.dt.tz_convert("UTC").dt.tz_localize(None)
    fmt = fmt or detect_datetime_format(values) or "mixed"

    def parse(uniques: pd.Series) -> np.ndarray:
        text = _stripped(uniques)
        text = text.mask(text.str.lower().isin(MISSING_TOKENS))
        stamps = pd.to_datetime(text, format=fmt, errors="coerce", utc=True)
        return stamps.dt.tz_localize(None).to_numpy()

    # Dates repeat (many rows per day), so parsing each distinct text once is much faster.
    return pd.Series(_per_unique(values, parse, np.datetime64("NaT")), index=values.index)


def _is_zero_one(numbers: np.ndarray) -> bool:
    present = numbers[~np.isnan(numbers)]
    ones = int((present == 1).sum())
    return bool(np.all((present == 0) | (present == 1))) and 0 < ones < present.size


def _evenly_spaced(values: pd.Series, limit: int) -> pd.Series:
    if len(values) <= limit:
        return values
    return values.iloc[np.linspace(0, len(values) - 1, limit).astype(np.int64)]


def infer_kind(values: pd.Series) -> str:
    """Decide how a column is treated: numeric, boolean, datetime, categorical or text.

    Text holding numbers (>= 95% of values parse, e.g. ``"$1,234"``) is numeric; text holding dates
    is datetime; two values such as yes/no, or numbers that are only 0 and 1, are boolean; long,
    mostly distinct strings are text; other strings are categorical.

    Args:
        values: one column.

    Returns:
        One of ``"numeric"``, ``"boolean"``, ``"datetime"``, ``"categorical"``, ``"text"``.
    """
    if is_bool_dtype(values):
        return "boolean"
    if is_datetime64_any_dtype(values):
        return "datetime"
    present = _evenly_spaced(values[~missing_mask(values)], DETECT_SAMPLE)
    if is_numeric_dtype(values):
        return "boolean" if _is_zero_one(parse_numeric(present)) else "numeric"
    if present.empty:
        return "categorical"
    text = _stripped(present)
    distinct = set(text.str.lower().unique().tolist())
    if len(distinct) == 2 and distinct & TRUE_TOKENS and distinct & FALSE_TOKENS:
        return "boolean"
    numbers = parse_numeric(present)
    if np.isfinite(numbers).mean() >= PARSE_SHARE:
        return "boolean" if _is_zero_one(numbers) else "numeric"
    if detect_datetime_format(present) is not None:
        return "datetime"
    if text.str.len().mean() >= 30 and text.nunique() > 0.5 * len(text):
        return "text"
    return "categorical"


# ---------------------------------------------------------------------------------------------
# Per-kind steps: fit -> JSON state, names, transform -> (N, width) float64
# ---------------------------------------------------------------------------------------------


class _Step(NamedTuple):
    fit: Callable[[str, str, pd.Series, dict], dict]
    names: Callable[[dict], list[str]]
    transform: Callable[[dict, pd.Series], np.ndarray]


def _center_scale(numbers: np.ndarray, name: str) -> tuple[float, float, float]:
    """Median (for imputing), mean and std of the finite values; std 0 becomes 1.

    Raises:
        DataError: the values are so large (about 1e154 and up) that their spread overflows.
    """
    present = numbers[~np.isnan(numbers)]
    if present.size == 0:
        return 0.0, 0.0, 1.0
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = float(present.mean()), float(present.std())
    if not (np.isfinite(mean) and np.isfinite(std)):
        raise DataError(
            f"The column '{name}' holds numbers too large to compute with (up to "
            f"{float(np.abs(present).max()):.3g}). Rescale it (e.g. to thousands or millions) "
            "or leave it out."
        )
    return float(np.median(present)), mean, std if std > 1e-12 else 1.0


MAX_SCALE = 1e15  # no real column spreads wider (the fit floors a spread below 1e-12 to 1)


def _scaling_problem(state: dict) -> str | None:
    """What is wrong with a saved column's centring and scaling numbers, or None.

    A bundle's numbers could have been edited: a spread of zero divides by zero, and an absurd one
    (1e30) squeezes every value to the same input, so the model would give one constant answer.
    """
    if "std" not in state:
        return None  # not a scaled column (a category's fill is its most common value)
    for key in ("fill", "mean", "std"):
        if key not in state:
            continue
        try:
            values = np.asarray(state[key], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            return f"a {key} that is not a number ({str(state[key])[:40]})"
        if not np.isfinite(values).all():
            return f"a {key} that is not a finite number"
        if key == "std" and ((values <= 0) | (values < 1e-12) | (values > MAX_SCALE)).any():
            return f"an impossible spread ({values[(values <= 1e-12) | (values > MAX_SCALE)][0]:g})"
    return None


def finite_numbers(value: Any, count: int | None = None) -> bool:
    """Whether ``value`` is a finite number, or a list of ``count`` (any number when ``None``) of
    them: what a saved state's centres, fills and spreads must be. Text, true/false and missing
    values are not numbers here."""
    items = value if isinstance(value, list) else [value]
    if count is not None and len(items) != count:
        return False
    return all(_finite_number(v) for v in items)


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):  # within 64 bits, or numpy makes a list holding it an array of objects
        return -(2**63) <= value < 2**63
    return isinstance(value, float) and math.isfinite(value)


def _saved_column_problem(state: dict, settings: dict) -> str | None:
    """What is wrong with one saved column's state, or None: its numbers (``_scaling_problem``),
    its categories (no more than its own max_categories setting: each is a model input), its
    quantile map, its fills. A bundle's preprocess.json could have been edited."""
    if not isinstance(state.get("name"), str):
        return "a name that is not a text"
    problem = _scaling_problem(state)
    if problem:
        return problem
    kind = state.get("kind")
    if kind in ("categorical", "text"):
        categories, most = state.get("categories"), settings.get("max_categories")
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            return "categories that are not a list of texts"
        if len(categories) > most:
            return f"{len(categories):,} categories, more than its setting max_categories ({most:,}) allows"
        if state.get("fill") is not None and not isinstance(state["fill"], str):
            return "a most common value that is not a text"
    elif kind == "boolean" and not finite_numbers(state.get("fill")):
        return "a fill that is not a number"
    elif kind == "datetime":
        if not all(finite_numbers(state.get(key), len(DATE_PARTS)) for key in ("fill", "mean", "std")):
            return f"a fill, mean or spread that is not a list of {len(DATE_PARTS)} numbers"
    elif kind == "numeric":
        if not isinstance(state.get("indicator"), bool):
            return "a missing-value indicator that is not true or false"
        if ("quantiles" in state or "scores" in state) and not _quantile_map_ok(state):
            return "quantiles and scores that are not two equally long lists of numbers, quantiles in order"
    return None


def _quantile_map_ok(state: dict) -> bool:
    quantiles, scores = state.get("quantiles"), state.get("scores")
    if not (isinstance(quantiles, list) and quantiles and finite_numbers(scores, len(quantiles))
            and finite_numbers(quantiles)):
        return False
    return bool(np.all(np.diff(np.asarray(quantiles, dtype=np.float64)) >= 0))


def _saved_target_problem(state: dict, task: str) -> str | None:
    """What is wrong with the saved target encoding, or None."""
    if not isinstance(state, dict):
        return "an encoding that is not an object"
    if task == "regression":
        if not ("mean" in state and "std" in state):
            return "no mean and spread"
        return _scaling_problem(state)
    classes = state.get("classes")
    labels = classes if isinstance(classes, list) else []
    if not all(isinstance(c, str | int | float) for c in labels) or len({repr(c) for c in labels}) != len(labels):
        return "classes that are not a list of distinct labels"
    if len(labels) < 2:
        return f"{len(labels)} class(es), where a model needs at least 2"
    if task == "binary" and len(labels) != 2:
        return f"{len(labels)} classes, where a yes/no (binary) model has 2"
    return None


def _standardise(numbers: np.ndarray, fill: float, mean: float, std: float) -> np.ndarray:
    filled = np.where(np.isnan(numbers), fill, numbers)
    return np.clip((filled - mean) / std, -CLIP, CLIP)


def _fit_numeric(name: str, kind: str, values: pd.Series, settings: dict) -> dict:
    numbers = parse_numeric(values)
    fill, mean, std = _center_scale(numbers, name)
    # The indicator lets the model learn that "missing" itself carries information.
    indicator = bool(np.isnan(numbers).any())
    state = {"name": name, "kind": kind, "fill": fill, "mean": mean, "std": std, "indicator": indicator}
    if settings.get("numeric_scaling", "quantile") == "quantile":
        state["quantiles"], state["scores"] = _quantile_map(numbers[~np.isnan(numbers)])
    return state


def _quantile_map(present: np.ndarray) -> tuple[list[float], list[float]]:
    """Training quantiles of a column and the standard normal scores they map to.

    One point per distinct quantile value (a column with few distinct values gets one point per
    value, scored at the middle of its share of the rows), so ``np.interp`` can map any number.
    """
    if present.size == 0:
        return [0.0], [0.0]
    n = min(QUANTILES, present.size)
    levels = (np.arange(n) + 0.5) / n  # mid-points: the scores stay within about +-2.7
    quantiles = np.quantile(present, levels)
    scores = np.array([NormalDist().inv_cdf(p) for p in levels])
    distinct, inverse = np.unique(quantiles, return_inverse=True)
    mean_scores = np.bincount(inverse, weights=scores) / np.bincount(inverse)
    if len(distinct) == 1:
        mean_scores[:] = 0.0  # a constant column carries nothing: keep it at zero
    return distinct.tolist(), mean_scores.tolist()


def _numeric_names(state: dict) -> list[str]:
    name = state["name"]
    return [name, f"{name} (missing)"] if state["indicator"] else [name]


def _transform_numeric(state: dict, values: pd.Series) -> np.ndarray:
    numbers = parse_numeric(values)
    if "quantiles" in state:
        filled = np.where(np.isnan(numbers), state["fill"], numbers)
        scaled = np.interp(filled, state["quantiles"], state["scores"])  # ends held beyond the range
    else:
        scaled = _standardise(numbers, state["fill"], state["mean"], state["std"])
    if state["indicator"]:
        return np.column_stack([scaled, np.isnan(numbers).astype("float64")])
    return scaled[:, None]


def _fit_boolean(name: str, kind: str, values: pd.Series, settings: dict) -> dict:
    flags = parse_boolean(values)
    present = flags[~np.isnan(flags)]
    fill = 1.0 if present.size and present.mean() > 0.5 else 0.0  # the most frequent value
    return {"name": name, "kind": kind, "fill": fill}


def _transform_boolean(state: dict, values: pd.Series) -> np.ndarray:
    flags = parse_boolean(values)
    return np.where(np.isnan(flags), state["fill"], flags)[:, None]


def _category_counts(values: pd.Series) -> pd.Series:
    """Rows per category, with surrounding spaces ignored and missing tokens left out."""
    counts = values.value_counts()
    keys = _stripped(pd.Series(counts.index, dtype=values.dtype))
    keep = ~keys.str.lower().isin(MISSING_TOKENS).to_numpy()
    return counts[keep].groupby(keys[keep].to_numpy()).sum()


def _fit_categorical(name: str, kind: str, values: pd.Series, settings: dict) -> dict:
    counts = _category_counts(values)
    # Most frequent first, ties by name, so the same data always gives the same columns.
    counts = counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable")
    kept = counts[counts >= settings["min_category_count"]].iloc[: settings["max_categories"]]
    fill = str(counts.index[0]) if len(counts) else None  # the most frequent value
    return {"name": name, "kind": kind, "categories": [str(c) for c in kept.index], "fill": fill}


def _categorical_names(state: dict) -> list[str]:
    name = state["name"]
    return [f"{name}={c}" for c in state["categories"]] + [f"{name}=(other)"]


def _transform_categorical(state: dict, values: pd.Series) -> np.ndarray:
    categories = state["categories"]
    other = len(categories)  # unseen and rare values land in the last, "(other)" column
    lookup = pd.Index(categories, dtype="str")
    fill = lookup.get_indexer([state["fill"]])[0] if state["fill"] is not None else -1
    fill = other if fill < 0 else fill

    def column_of(uniques: pd.Series) -> np.ndarray:
        text = _stripped(uniques)
        codes = np.where(text.str.lower().isin(MISSING_TOKENS), fill, lookup.get_indexer(text))
        return np.where(codes < 0, other, codes)

    codes = _per_unique(values, column_of, fill)
    onehot = np.zeros((len(values), other + 1))
    onehot[np.arange(len(values)), codes] = 1.0
    return onehot


def _date_parts(values: pd.Series, fmt: str | None) -> np.ndarray:
    stamps = parse_datetime(values, fmt).dt
    parts = (stamps.year, stamps.month, stamps.day_of_week, stamps.day_of_year)
    return np.column_stack([p.to_numpy(dtype="float64", na_value=np.nan) for p in parts])


def _fit_datetime(name: str, kind: str, values: pd.Series, settings: dict) -> dict:
    fmt = detect_datetime_format(values) if _is_textual(values) else None
    stats = [_center_scale(column, name) for column in _date_parts(values, fmt).T]
    return {
        "name": name,
        "kind": kind,
        "format": fmt,
        "fill": [s[0] for s in stats],
        "mean": [s[1] for s in stats],
        "std": [s[2] for s in stats],
    }


def _datetime_names(state: dict) -> list[str]:
    return [f"{state['name']} ({part})" for part in DATE_PARTS]


def _transform_datetime(state: dict, values: pd.Series) -> np.ndarray:
    parts = _date_parts(values, state["format"])
    return np.column_stack(
        [
            _standardise(parts[:, i], state["fill"][i], state["mean"][i], state["std"][i])
            for i in range(len(DATE_PARTS))
        ]
    )


_STEPS: dict[str, _Step] = {
    "numeric": _Step(_fit_numeric, _numeric_names, _transform_numeric),
    "boolean": _Step(_fit_boolean, lambda state: [state["name"]], _transform_boolean),
    "categorical": _Step(_fit_categorical, _categorical_names, _transform_categorical),
    # Free text in a table gets the categorical treatment: frequent values one-hot, the rest other.
    "text": _Step(_fit_categorical, _categorical_names, _transform_categorical),
    "datetime": _Step(_fit_datetime, _datetime_names, _transform_datetime),
}


# ---------------------------------------------------------------------------------------------
# Target labels
# ---------------------------------------------------------------------------------------------


def label_value(value: Any) -> Any:
    """A class label as a plain JSON value: 1.0 -> 1, numpy ints -> int, others -> str."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(value) if float(value).is_integer() else float(value)
    return str(value)


def check_saved_state(state: Any, fmt: str, version: int, what: str, extra: str = "") -> None:
    """Refuse a preprocess.json made for another kind of data or by another version.

    Args:
        state: the loaded JSON.
        fmt, version: what this code reads (its module's ``FORMAT`` and ``FORMAT_VERSION``).
        what: the kind in words for the message: "table", "image", "text", "time-series".
        extra: a further key that must match too, as ``"key=value"`` (text: its tokenizer).

    Raises:
        DataError: another format, another version, or not a JSON object at all.
    """
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise DataError(
            f"This is not a saved {what} preprocessing file (its 'format' is not {fmt!r}). "
            "Use the preprocess.json from the same export bundle as the model."
        )
    key, _, expected = extra.partition("=")
    if state.get("version") != version or (key and state.get(key) != expected):
        got = f"version {state.get('version')!r}" + (f" with {key} {state.get(key)!r}" if key else "")
        reads = f"version {version}" + (f" with {expected!r}" if key else "")
        raise DataError(
            f"The {what} preprocessing file has {got}, but this code reads {reads}. "
            "Export the model again with this version of the app."
        )


def cell_text(value: Any) -> str:
    """A cell as a message quotes it: ``12`` or ``0.5`` for numbers (never ``np.int64(12)``),
    ``'abc'`` for text."""
    plain = label_value(value)
    return repr(plain) if isinstance(plain, str) else str(plain)


def _sorted_labels(labels: list[Any]) -> list[Any]:
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in labels):
        return sorted(labels)
    if all(isinstance(v, bool) for v in labels):
        return sorted(labels)
    return sorted(labels, key=str)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    # exp of a negative number only, so large logits of either sign never overflow.
    e = np.exp(-np.abs(logits))
    return np.where(logits >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def output_matrix(outputs: np.ndarray, n_outputs: int, per: str, purpose: str) -> np.ndarray:
    """Model outputs as float64 ``(N, n_outputs)``; a 1-D array is one output per ``per``.

    Raises:
        DataError: the width does not match, e.g. "The model gave 2 output value(s) per row, but
            predicting one of 3 classes needs 3." (``purpose`` words the second half).
    """
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim == 1:
        out = out[:, None]
    if out.ndim != 2 or out.shape[1] != n_outputs:
        width = out.shape[1] if out.ndim == 2 else out.shape
        raise DataError(
            f"The model gave {width} output value(s) per {per}, but {purpose} needs {n_outputs}. "
            "The model and its preprocessing do not belong together: export them again from the "
            "same run."
        )
    return out


def decode_class_outputs(outputs: np.ndarray, task: str, classes: list[Any],
                         threshold: float = DEFAULT_DECISION_THRESHOLD) -> pd.DataFrame:
    """Raw class outputs as ``prediction`` plus one ``probability_<class>`` column per class.

    The one decoder of class outputs: the table, image and text preprocessors all call it, so a
    label decodes the same way in the app, the CLI and every bundle's predict.py.

    Args:
        outputs: ``(N, 1)`` logits for a yes/no task, ``(N, k)`` logits for k classes.
        task: ``"binary"`` or ``"multiclass"``.
        classes: the labels in output order, as written in the training data.
        threshold: yes/no only: the second class is the answer when its probability is above
            this (at 0.5 exactly what the larger probability gives).
    """
    if task == "binary":
        positive = _sigmoid(outputs[:, 0])
        probabilities = np.column_stack([1.0 - positive, positive])  # (N, 2)
        picked = (positive > threshold).astype(np.int64)  # (N,) 1 = the second class
    else:
        probabilities = _softmax(outputs)  # (N, k)
        picked = probabilities.argmax(axis=1)
    labels = np.asarray(classes, dtype=object)[picked]
    frame = {"prediction": pd.Series(labels.tolist())}  # ints stay ints, text stays text
    for i, label in enumerate(classes):
        frame[f"probability_{label}"] = probabilities[:, i]
    return pd.DataFrame(frame)


def check_decision_threshold(threshold: Any, task: str | None, name: str = "The decision threshold") -> float:
    """A decision threshold as a float, or a plain error.

    Args:
        threshold: the value given (a number strictly between 0 and 1).
        task: the model's task; only ``"binary"`` has a decision threshold.
        name: how the message names the value (the CLI says ``--threshold``).

    Raises:
        DataError: not a yes/no model, or not a number strictly between 0 and 1.
    """
    if task != "binary":
        words = {**TASK_WORDS, ANOMALY_TASK: "finding unusual rows (anomaly detection)",
                 "forecast": "forecasting a series"}.get(str(task), f"the task {task!r}")
        raise DataError(f"{name} applies only to a yes/no (binary) model, and this one is for {words}.")
    number = None
    if isinstance(threshold, int | float | np.integer | np.floating) and not isinstance(threshold, bool | np.bool_):
        number = float(threshold)
    if number is None or not 0.0 < number < 1.0:  # NaN fails the comparison too
        shown = cell_text(threshold) if number is not None else repr(threshold)
        raise DataError(f"{name} must be a number between 0 and 1 (not 0 or 1 themselves), such as 0.5 "
                        f"or 0.7; got {shown}.")
    return number


class DecisionThreshold:
    """The decision threshold of a yes/no model, shared by the table, text and image preprocessors.

    A yes/no model answers its second class when that class's probability is above the threshold:
    0.5 unless one was chosen (``set_decision_threshold``). It is part of the preprocessor's JSON
    state (``decision_threshold``, and ``decision_threshold_chosen`` when it says where it was
    chosen), so it travels in a bundle's preprocess.json and the app, the CLI and predict.py
    decode the same labels. The class using it provides ``task``.
    """

    _decision_threshold: float = DEFAULT_DECISION_THRESHOLD  # until set or read from saved state
    _decision_chosen: str | None = None

    def set_decision_threshold(self, threshold: float, chosen: str | None = None) -> None:
        """Answer the second class when its probability is above ``threshold`` (yes/no models).

        Args:
            threshold: strictly between 0 and 1 (0.5: the larger probability wins).
            chosen: where and how it was chosen, in words that follow "chosen", e.g. "on the
                validation rows for the best F1 score"; the model card repeats it.

        Raises:
            DataError: not a yes/no model, or a value outside (0, 1).
        """
        self._decision_threshold = check_decision_threshold(threshold, self.task)
        self._decision_chosen = (str(chosen).strip() or None) if chosen is not None else None

    @property
    def decision_threshold(self) -> float | None:
        """The yes/no decision threshold (0.5 unless chosen); ``None`` for other tasks."""
        return float(self._decision_threshold) if self.task == "binary" else None

    @property
    def decision_threshold_chosen(self) -> str | None:
        """Where the threshold was chosen, as given to ``set_decision_threshold`` (``None``: the default)."""
        return self._decision_chosen if self.task == "binary" else None

    def _decision_state(self) -> dict:
        """The JSON keys ``to_dict`` adds: the threshold of a yes/no model (nothing otherwise)."""
        if self.task != "binary":
            return {}
        state: dict[str, Any] = {"decision_threshold": float(self._decision_threshold)}
        if self._decision_chosen:
            state["decision_threshold_chosen"] = self._decision_chosen
        return state

    def _load_decision_state(self, state: dict) -> None:
        """Read the threshold back from saved state; a state without one (older bundles) reads 0.5.

        Raises:
            DataError: the saved value is not a number strictly between 0 and 1.
        """
        value = state.get("decision_threshold", DEFAULT_DECISION_THRESHOLD)
        chosen = state.get("decision_threshold_chosen")
        try:
            self._decision_threshold = check_decision_threshold(value, "binary")
        except DataError:
            raise DataError(f"The preprocessing file's decision_threshold, {value!r}, is not a number between "
                            "0 and 1. Export the model again, or correct it in preprocess.json.") from None
        self._decision_chosen = str(chosen) if chosen else None


def _quote_list(names: list[Any], limit: int = 20) -> str:
    shown = ", ".join(repr(str(n)) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _fit_target(values: pd.Series, task: str, target: str, classes: list[Any] | None) -> dict:
    """Target scaling (regression) or the sorted class labels (classification)."""
    present = values[~missing_mask(values)]
    if task == "regression":
        numbers = parse_numeric(present)
        numbers = numbers[~np.isnan(numbers)]
        if numbers.size == 0:
            raise DataError(
                f"'{target}' has no numbers in the training rows, so it cannot be "
                "predicted as a number. Choose another column or another task."
            )
        _, mean, std = _center_scale(numbers, target)
        return {"mean": mean, "std": std}
    if classes is None:
        classes = pd.unique(present).tolist()
    labels = _sorted_labels(list({str(v): v for v in map(label_value, classes)}.values()))
    if task == "binary" and len(labels) != 2:
        raise DataError(
            f"'{target}' has {len(labels)} distinct value(s) ({_quote_list(labels)}) "
            "but a yes/no prediction (binary) needs exactly 2. "
            "Choose multiclass, or another column."
        )
    if len(labels) < 2:
        raise DataError(
            f"'{target}' has only one value ({_quote_list(labels)}), so there is nothing "
            "to predict. Choose another column."
        )
    return {"classes": labels}


# ---------------------------------------------------------------------------------------------
# The preprocessor
# ---------------------------------------------------------------------------------------------


class Preprocessor(DecisionThreshold):
    """Turns raw table rows into a float32 matrix and model outputs back into predictions.

    Fit it on the training split only; then ``transform`` any rows that have the input columns
    (extra columns, including the target, are ignored). Missing values, unseen categories and
    numbers written as text are all handled, and the output never contains NaN.

    Args:
        max_categories: most one-hot columns per categorical input; rarer values go to "(other)".
        min_category_count: a category needs this many training rows to get its own column.
        numeric_scaling: "quantile" maps numbers through their training quantiles to normal
            scores (see ``QUANTILES``); "standard" subtracts the mean and divides by the std.
    """

    def __init__(self, max_categories: int = 30, min_category_count: int = 5, numeric_scaling: str = "quantile"):
        if numeric_scaling not in ("quantile", "standard"):
            raise DataError(f"Numbers are scaled by 'quantile' or 'standard'; got {numeric_scaling!r}.")
        self.max_categories = max_categories
        self.min_category_count = min_category_count
        self.numeric_scaling = numeric_scaling
        self._columns: list[dict] | None = None  # one JSON state per input column, in order
        self._target_state: dict | None = None
        self._task: str | None = None
        self._target: str | None = None
        self._anomaly: dict | None = None  # {"threshold", "quantile"} of an anomaly model

    # -- fitting --------------------------------------------------------------------------------

    def fit(
        self,
        df: pd.DataFrame,
        target: str | None,
        task: str,
        features: list[str],
        classes: list[Any] | None = None,
    ) -> Preprocessor:
        """Learn every step from the training rows.

        Args:
            df: the training split (raw values, as read from the file).
            target: the column to predict, or ``None`` for models without one (e.g. anomaly).
            task: ``"regression"``, ``"binary"`` or ``"multiclass"`` (any name when no target).
            features: the input columns, in the order the model sees them.
            classes: all class labels for classification; defaults to those in ``df`` (pass the
                labels of the whole table so a class missing from this split still decodes).

        Returns:
            ``self``, fitted.

        Raises:
            DataError: unknown task, no or unknown input columns, or an unusable target.
        """
        if target is not None and task not in TASKS:
            raise DataError(
                f"The task {task!r} is not known. Choose one of: {', '.join(TASKS)}."
            )
        features = list(dict.fromkeys(features))
        if not features:
            raise DataError(
                "No input columns are selected. Choose at least one column to learn from."
            )
        if target is not None and target in features:
            raise DataError(
                f"'{target}' is the column to predict, so it cannot also be an input. "
                "Remove it from the input columns."
            )
        self._check_columns(df, features + ([target] if target is not None else []))
        settings = {
            "max_categories": self.max_categories,
            "min_category_count": self.min_category_count,
            "numeric_scaling": self.numeric_scaling,
        }
        columns = []
        for name in features:
            kind = infer_kind(df[name])
            columns.append(_STEPS[kind].fit(name, kind, df[name], settings))
        target_state = None if target is None else _fit_target(df[target], task, target, classes)
        # Assign only once everything fitted, so a failed refit leaves the old state intact.
        self._task, self._target, self._target_state = task, target, target_state
        self._columns = columns
        logger.info(
            "Fitted preprocessing on %d rows: %d input columns -> %d features",
            len(df), len(features), self.n_features,
        )
        return self

    # -- using --------------------------------------------------------------------------------

    def transform(self, df: pd.DataFrame, out: np.ndarray | None = None) -> np.ndarray:
        """Turn raw rows into the model's input matrix.

        Args:
            df: rows with (at least) the input columns; the target and other columns are ignored.
            out: the float32 ``(N, n_features)`` matrix to fill (the caller's contract, not
                checked), e.g. a column-major one: filled column by column, it takes memory only as
                its columns are written. ``None``: a new row-major one.

        Returns:
            float32 array ``(N, n_features)`` (``out`` when given), free of NaN and infinity.

        Raises:
            DataError: an input column is missing from ``df``.
        """
        columns = self._fitted_columns()
        self._check_columns(df, [c["name"] for c in columns])
        widths = [len(_STEPS[c["kind"]].names(c)) for c in columns]
        # Each column's float64 block goes straight into one float32 matrix: peak memory is that
        # matrix plus one block, not every block, their concatenation and its float32 copy.
        if out is None:
            out = np.empty((len(df), sum(widths)), dtype=np.float32)  # (N, F)
        start = 0
        for column, width in zip(columns, widths, strict=True):
            out[:, start:start + width] = _STEPS[column["kind"]].transform(column, df[column["name"]])
            start += width
        return out

    def encode_target(self, series: pd.Series) -> np.ndarray:
        """Encode the target column for training.

        Args:
            series: target values of the rows being encoded (no missing values).

        Returns:
            regression: float32 ``(N, 1)`` standardised; binary: float32 ``(N, 1)`` of 0/1 (1 is
            the second class in sorted order); multiclass: int64 ``(N,)`` class indexes.

        Raises:
            DataError: a value is missing, not a number (regression) or not a known class.
        """
        state = self._fitted_target()
        name = self._target
        if self._task == "regression":
            numbers = parse_numeric(series)
            bad = np.isnan(numbers)
            if bad.any():
                example = series[bad].iloc[0]
                raise DataError(
                    f"{int(bad.sum())} row(s) of '{name}' have no usable number (for example "
                    f"{cell_text(example)}). Remove those rows or fill in the values."
                )
            scaled = (numbers - state["mean"]) / state["std"]
            return scaled.astype(np.float32)[:, None]  # (N, 1)
        classes = state["classes"]
        index = {str(label): i for i, label in enumerate(classes)}

        def class_codes(uniques: pd.Series) -> np.ndarray:
            # Compare through the JSON label, so 1, 1.0 and np.int64(1) are all class "1".
            return np.array([index.get(str(label_value(v)), -1) for v in uniques], dtype=np.int64)

        codes = pd.Series(_per_unique(series, class_codes, -2), index=series.index)  # -2: missing
        if (codes == -2).any():
            raise DataError(
                f"{int((codes == -2).sum())} row(s) have no value in '{name}'. "
                "Remove those rows or fill in the values."
            )
        if (codes == -1).any():
            unknown = pd.unique(series[codes == -1]).tolist()
            raise DataError(
                f"'{name}' contains {_quote_list(unknown)}, which did not appear when the model "
                f"was set up (known values: {_quote_list(classes)}). Remove those rows."
            )
        if self._task == "binary":
            return codes.to_numpy(dtype=np.float32)[:, None]  # (N, 1)
        return codes.to_numpy(dtype=np.int64)  # (N,)

    def decode_outputs(self, outputs: np.ndarray) -> pd.DataFrame:
        """Turn raw model outputs into predictions in the user's terms.

        Args:
            outputs: ``(N, n_outputs)`` raw outputs: a scaled number (regression), one logit
                (binary) or k logits (multiclass). A 1-D array is read as one output per row.

        Returns:
            A frame with ``prediction`` (the number in original units, or the label as written in
            the training data) and, for classification, one ``probability_<class>`` column per
            class.

        Raises:
            DataError: the number of outputs per row does not match this task.
        """
        state = self._fitted_target()
        out = output_matrix(outputs, self.n_outputs, "row", f"{TASK_WORDS[self._task]} of '{self._target}'")
        if self._task == "regression":
            return pd.DataFrame({"prediction": out[:, 0] * state["std"] + state["mean"]})
        return decode_class_outputs(out, self._task, state["classes"], self._decision_threshold)

    def predict_with(self, df: pd.DataFrame, run: Callable[[np.ndarray], np.ndarray]) -> pd.DataFrame:
        """Predictions for raw rows, the same in the app and in an export bundle.

        Args:
            df: raw rows with the input columns.
            run: the model: preprocessed rows ``(N, F)`` -> raw outputs (torch in the app,
                onnxruntime in ``predict.py``).

        Returns:
            ``decode_outputs`` of the outputs; for an anomaly model, ``anomaly_score`` and
            ``is_anomaly`` per row (``score_reconstruction``).
        """
        X = self.transform(df)
        outputs = run(X)
        if self.task == ANOMALY_TASK:
            return self.score_reconstruction(X, outputs)
        return self.decode_outputs(outputs)

    # -- anomaly detection (task "anomaly": the model rebuilds its input) -----------------------

    @staticmethod
    def reconstruction_errors(X: np.ndarray, outputs: np.ndarray) -> np.ndarray:
        """Mean squared difference between each row and its reconstruction: float64 ``(N,)``.

        Raises:
            DataError: the outputs are not as wide as the rows.
        """
        X = np.asarray(X, dtype=np.float64)
        out = np.asarray(outputs, dtype=np.float64)
        if out.shape != X.shape:
            raise DataError(
                f"An anomaly model must give back rows as wide as it takes ({X.shape[-1]} values); "
                f"this one gives shape {out.shape[1:]}. Let the builder size the output layer."
            )
        return ((out - X) ** 2).mean(axis=1) if len(X) else np.zeros(0)

    def set_threshold(self, threshold: float, quantile: float | None = None) -> None:
        """Rows whose ``anomaly_score`` is above ``threshold`` are flagged ``is_anomaly``.

        Args:
            threshold: a reconstruction error (non-negative, finite).
            quantile: the share of validation rows at or below it, kept to explain it.

        Raises:
            DataError: not an anomaly model, or a threshold that is not a finite number >= 0.
        """
        if self.task != ANOMALY_TASK:
            raise DataError("Only an anomaly model has a threshold; this one predicts "
                            f"'{self._target}'.")
        if not isinstance(threshold, int | float) or not np.isfinite(threshold) or threshold < 0:
            raise DataError(f"The anomaly threshold must be a number of 0 or more; got {threshold!r}.")
        self._anomaly = {"threshold": float(threshold),
                         "quantile": None if quantile is None else float(quantile)}

    @property
    def threshold(self) -> float | None:
        """The anomaly threshold (``None`` until set, and for models with a target)."""
        return None if self._anomaly is None else self._anomaly["threshold"]

    @property
    def threshold_quantile(self) -> float | None:
        """The share of validation rows at or below the threshold, when it was set that way."""
        return None if self._anomaly is None else self._anomaly.get("quantile")

    def score_reconstruction(self, X: np.ndarray, outputs: np.ndarray) -> pd.DataFrame:
        """``anomaly_score`` (reconstruction error) and ``is_anomaly`` (above the threshold) per row.

        Raises:
            DataError: no threshold is set yet, or the outputs do not match the rows.
        """
        if self.threshold is None:
            raise DataError("This anomaly model has no threshold yet: train it again, or set one.")
        scores = self.reconstruction_errors(X, outputs)
        return pd.DataFrame({"anomaly_score": scores, "is_anomaly": scores > self.threshold})

    # -- description ------------------------------------------------------------------------------

    @property
    def task(self) -> str:
        """The task this preprocessor was fitted for."""
        self._fitted_columns()
        return self._task  # type: ignore[return-value]

    @property
    def target(self) -> str | None:
        """The column to predict (``None`` when there is none)."""
        self._fitted_columns()
        return self._target

    @property
    def features(self) -> list[str]:
        """The input columns, in the order they are read."""
        return [c["name"] for c in self._fitted_columns()]

    @property
    def kinds(self) -> dict[str, str]:
        """Input column -> kind (numeric, boolean, categorical, text, datetime)."""
        return {c["name"]: c["kind"] for c in self._fitted_columns()}

    @property
    def feature_names(self) -> list[str]:
        """Names of the output matrix columns, e.g. ``age``, ``age (missing)``, ``color=red``."""
        return [n for c in self._fitted_columns() for n in _STEPS[c["kind"]].names(c)]

    @property
    def n_features(self) -> int:
        """Width of the matrix ``transform`` returns."""
        return len(self.feature_names)

    @property
    def classes(self) -> list[Any]:
        """Class labels in output order, as written in the training data (empty for regression)."""
        self._fitted_columns()
        return list((self._target_state or {}).get("classes", []))

    @property
    def n_outputs(self) -> int:
        """Outputs per row the model needs: 1 (regression, binary), the number of classes, or
        the number of features (an anomaly model rebuilds its input)."""
        if self.task == ANOMALY_TASK:
            return self.n_features
        return len(self.classes) if self.task == "multiclass" else 1

    @property
    def input_shape(self) -> tuple[int]:
        """Shape of one model input: ``(n_features,)``."""
        return (self.n_features,)

    @property
    def target_scale(self) -> float:
        """Multiply a training-units error by this for original units (1.0 unless regression)."""
        self._fitted_columns()
        if self._task == "regression" and self._target_state is not None:
            return float(self._target_state["std"])
        return 1.0

    # -- persistence ----------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The fitted state as plain JSON (dicts, lists, str, float, int, bool, None)."""
        return copy.deepcopy(
            {
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "task": self.task,
                "target": self._target,
                "settings": {
                    "max_categories": self.max_categories,
                    "min_category_count": self.min_category_count,
                },
                "columns": self._fitted_columns(),
                "target_encoding": self._target_state,
                **({"anomaly": self._anomaly} if self._anomaly is not None else {}),
                **self._decision_state(),
            }
        )

    @classmethod
    def from_dict(cls, state: dict) -> Preprocessor:
        """Rebuild a fitted preprocessor from ``to_dict`` output (e.g. a bundle's preprocess.json).

        Raises:
            DataError: the state is not preprocessing state, has an unsupported version, or
                is damaged.
        """
        check_saved_state(state, FORMAT, FORMAT_VERSION, "table")
        try:
            columns = copy.deepcopy(list(state["columns"]))
            unknown = [c.get("kind") for c in columns if c.get("kind") not in _STEPS]
            settings = dict(state["settings"])
            for key in ("max_categories", "min_category_count"):
                if key in settings and not (type(settings[key]) is int and settings[key] >= 1):
                    raise KeyError(f"settings: {key}")
            pre = cls(**settings)
            pre._task, pre._target = state["task"], state["target"]
            if pre._task not in (*TASKS, ANOMALY_TASK):
                raise KeyError("task")
            pre._target_state = copy.deepcopy(state["target_encoding"])
            if (pre._target_state is None) != (pre._task == ANOMALY_TASK):
                raise KeyError("target_encoding")
            pre._anomaly = copy.deepcopy(state.get("anomaly"))
            if pre._anomaly is not None and not finite_numbers(pre._anomaly["threshold"]):
                raise KeyError("anomaly threshold")
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise DataError(
                f"The preprocessing file is incomplete or damaged (problem with {error}). "
                "Export the model again."
            ) from None
        if unknown:
            raise DataError(
                f"The preprocessing file uses unknown column kinds {_quote_list(unknown)}. "
                "Export the model again with this version of the app."
            )
        parts = [(repr(c.get("name")), _saved_column_problem(c, {"max_categories": pre.max_categories})) for c in columns]
        if pre._target_state is not None:
            parts.append(("the target", _saved_target_problem(pre._target_state, pre._task)))
        for where, problem in parts:
            if problem:
                raise DataError(f"The preprocessing file is damaged: {where} has {problem}. Export the model again.")
        pre._columns = columns
        pre._load_decision_state(state)
        return pre

    # -- internals ------------------------------------------------------------------------------

    def _fitted_columns(self) -> list[dict]:
        if self._columns is None:
            raise RuntimeError("The preprocessor is not fitted yet: call fit() first.")
        return self._columns

    def _fitted_target(self) -> dict:
        self._fitted_columns()
        if self._target_state is None:
            raise DataError(
                "This model has no column to predict, so it has no target to encode or decode."
            )
        return self._target_state

    @staticmethod
    def _check_columns(df: pd.DataFrame, needed: list[str]) -> None:
        missing = [name for name in needed if name not in df.columns]
        if missing:
            what = (
                f"has no column named '{missing[0]}'"
                if len(missing) == 1
                else f"is missing {len(missing)} needed columns: {_quote_list(missing)}"
            )
            # The full list helps with a few columns; with dozens it buries the missing ones.
            expected = f" Expected columns: {_quote_list(needed)}." if len(needed) <= 12 else ""
            raise DataError(
                f"The data {what}.{expected} Add {'it' if len(missing) == 1 else 'them'} with the "
                "same names as in the training data (values may be left empty)."
            )
