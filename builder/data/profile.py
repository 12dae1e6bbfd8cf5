"""What is in a table, and is it fit to learn from: column profiles, task guess, health checks.

``profile_table`` describes every column (kind, missing values, distinct values, warnings) using the
same parsing rules as the preprocessor, so what the analyst sees is what the model gets.
``infer_task`` proposes regression/binary/multiclass with a reason in plain words; ``check_target``
refuses targets that cannot work; ``suggest_features`` and ``health_warnings`` turn the profile into
defaults and advice (ID columns, leakage, class imbalance).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_numeric_dtype

from builder.data.preprocess import (
    TASK_WORDS,
    TASKS,
    infer_kind,
    label_value,
    missing_mask,
    parse_numeric,
)
from builder.errors import DataError

logger = logging.getLogger(__name__)

MIN_TARGET_ROWS = 20  # fewer rows cannot be split into training, validation and test data
MAX_CLASSES = 100
MOSTLY_MISSING_PCT = 50.0
LEAKAGE_CORRELATION = 0.98
IMBALANCE_SHARE = 0.10
MULTICLASS_MAX_INTEGERS = 20  # whole-number targets with at most this many values are categories
MANY_CATEGORIES = 30  # matches the preprocessor's max_categories default
ID_NAME = re.compile(r"^(id|uuid|guid|key)$|[_ ]id$|^id[_ ]", re.IGNORECASE)


@dataclass
class ColumnProfile:
    """One column at a glance.

    Attributes:
        name: column name.
        kind: ``"numeric"``, ``"categorical"``, ``"text"``, ``"datetime"`` or ``"boolean"``.
        dtype: the pandas dtype as read from the file (e.g. ``str`` for numbers stored as text).
        n_missing: empty cells (blank, NaN, ``N/A``...).
        missing_pct: ``n_missing`` as a percentage of rows (0-100).
        n_unique: distinct non-missing values.
        examples: up to five distinct values, as text.
        warnings: plain-language notes about this column.
        id_like: a different value in every row, like a row number or customer code.
        constant: at most one distinct value.
        mostly_missing: more than half of the cells are empty.
    """

    name: str
    kind: str
    dtype: str
    n_missing: int
    missing_pct: float
    n_unique: int
    examples: list[str]
    warnings: list[str] = field(default_factory=list)
    id_like: bool = False
    constant: bool = False
    mostly_missing: bool = False


@dataclass
class TableProfile:
    """A table at a glance: its size and one ``ColumnProfile`` per column.

    ``data`` keeps a reference to the profiled frame (no copy) for the target-aware checks in
    ``health_warnings``.
    """

    n_rows: int
    n_cols: int
    columns: list[ColumnProfile]
    data: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    def column(self, name: str) -> ColumnProfile:
        """The profile of column ``name``.

        Raises:
            DataError: there is no such column (the message lists the columns).
        """
        for column in self.columns:
            if column.name == name:
                return column
        raise DataError(
            f"There is no column named '{name}'. Columns: {_names(c.name for c in self.columns)}."
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per column (name, kind, missing %, distinct values, examples, warnings)."""
        return pd.DataFrame(
            {
                "column": [c.name for c in self.columns],
                "kind": [c.kind for c in self.columns],
                "missing_pct": [c.missing_pct for c in self.columns],
                "n_unique": [c.n_unique for c in self.columns],
                "examples": [", ".join(c.examples) for c in self.columns],
                "warnings": [" ".join(c.warnings) for c in self.columns],
            }
        )


@dataclass(frozen=True)
class TaskGuess:
    """The proposed task for a target column and why, e.g. ``binary`` because it has 2 values."""

    task: str
    reason: str


def _names(names, limit: int = 30) -> str:
    names = list(names)
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# ---------------------------------------------------------------------------------------------
# Profiling
# ---------------------------------------------------------------------------------------------


def profile_table(df: pd.DataFrame) -> TableProfile:
    """Describe every column of a table.

    Args:
        df: the table as read by ``read_table``.

    Returns:
        A ``TableProfile`` (it keeps a reference to ``df`` for ``health_warnings``).
    """
    columns = [_profile_column(str(name), df[name]) for name in df.columns]
    return TableProfile(n_rows=len(df), n_cols=df.shape[1], columns=columns, data=df)


def _profile_column(name: str, values: pd.Series) -> ColumnProfile:
    n_rows = len(values)
    missing = missing_mask(values)
    present = values[~missing]
    kind = infer_kind(values)
    n_unique = int(present.nunique())
    n_missing = int(missing.sum())
    missing_pct = round(100.0 * n_missing / n_rows, 1) if n_rows else 0.0
    examples = [str(v) for v in pd.unique(present.iloc[:1000])[:5]]
    profile = ColumnProfile(
        name=name,
        kind=kind,
        dtype=str(values.dtype),
        n_missing=n_missing,
        missing_pct=missing_pct,
        n_unique=n_unique,
        examples=examples,
        id_like=_looks_like_id(name, kind, present, n_rows, n_unique),
        constant=n_unique <= 1,
        mostly_missing=missing_pct > MOSTLY_MISSING_PCT,
    )
    profile.warnings = _column_warnings(profile, values, present)
    return profile


def _looks_like_id(name: str, kind: str, present: pd.Series, n_rows: int, n_unique: int) -> bool:
    """Unique in every row, and text codes or whole numbers counting up (or named like an ID)."""
    if n_rows < MIN_TARGET_ROWS or n_unique != n_rows:
        return False
    if kind == "categorical":
        return True
    if kind == "numeric":
        numbers = parse_numeric(present)
        if not np.all(numbers == np.round(numbers)):
            return False  # distinct measurements (prices, weights) are data, not identifiers
        counting = bool(numbers.max() - numbers.min() == n_rows - 1 or np.all(np.diff(numbers) > 0))
        return counting or bool(ID_NAME.search(name))
    return False


def _column_warnings(profile: ColumnProfile, values: pd.Series, present: pd.Series) -> list[str]:
    name = profile.name
    if profile.n_unique == 0:
        return [f"'{name}' is empty (no values), so it is left out of the inputs."]
    notes = []
    if profile.id_like:
        notes.append(
            f"'{name}' looks like a row ID (a different value in every row); it carries no pattern "
            "to learn, so it is left out of the inputs."
        )
    if profile.constant:
        notes.append(
            f"'{name}' has the same value ('{profile.examples[0]}') in every row, so it cannot "
            "help a prediction; it is left out of the inputs."
        )
    if profile.mostly_missing:
        notes.append(
            f"'{name}' is {profile.missing_pct:.0f}% empty, so it is left out of the inputs "
            "by default."
        )
    text_stored = not (
        is_numeric_dtype(values) or is_bool_dtype(values) or is_datetime64_any_dtype(values)
    )
    if profile.kind == "numeric" and text_stored:
        notes.extend(_numbers_as_text_notes(name, present))
    if profile.kind == "datetime" and text_stored:
        notes.append(
            f"'{name}' holds dates written as text (e.g. '{profile.examples[0]}'); they are used "
            "as year, month, day of week and day of year."
        )
    many = profile.n_unique > MANY_CATEGORIES and not profile.id_like
    if profile.kind in ("categorical", "text") and many:
        notes.append(
            f"'{name}' has {profile.n_unique} different values; the most frequent get their own "
            "input and the rest are grouped as 'other'."
        )
    return notes


def _numbers_as_text_notes(name: str, present: pd.Series) -> list[str]:
    numbers = parse_numeric(present)
    text = present.astype("str").str.strip()
    messy = text[pd.to_numeric(text, errors="coerce").isna() & ~np.isnan(numbers)]
    notes = []
    if len(messy):
        notes.append(
            f"'{name}' holds numbers written as text (e.g. '{messy.iloc[0]}'); they are read "
            "as numbers."
        )
    bad = text[np.isnan(numbers)]
    if len(bad):
        notes.append(
            f"{len(bad)} value(s) in '{name}' are not numbers (e.g. '{bad.iloc[0]}') and are "
            "treated as missing."
        )
    return notes


# ---------------------------------------------------------------------------------------------
# The column to predict
# ---------------------------------------------------------------------------------------------


def infer_task(series: pd.Series) -> TaskGuess:
    """Propose the task for predicting ``series``, with a reason in plain words.

    Two distinct values -> binary; whole numbers with at most 20 values (and at least 5 rows per
    value on average) -> multiclass; other numbers -> regression; other text -> multiclass.

    Args:
        series: the candidate target column (its ``name`` is used in the reason).

    Returns:
        A ``TaskGuess`` such as ``("binary", "'survived' has 2 distinct values (0, 1) -> yes/no
        prediction (binary)")``.

    Raises:
        DataError: the column has no values at all.
    """
    name = series.name
    present = series[~missing_mask(series)]
    if present.empty:
        raise DataError(_empty_target_message(name))
    kind = infer_kind(series)
    if kind in ("numeric", "boolean") and not np.isnan(numbers := parse_numeric(present)).all():
        numbers = numbers[~np.isnan(numbers)]
        distinct = np.unique(numbers)
        labels = [label_value(v) for v in distinct]
        whole = bool(np.all(distinct == np.round(distinct)))
        if len(distinct) <= 2:
            return _binary_guess(name, labels)
        if whole and len(distinct) <= MULTICLASS_MAX_INTEGERS and 5 * len(distinct) <= len(numbers):
            return TaskGuess(
                "multiclass",
                f"'{name}' has {len(distinct)} distinct whole numbers -> one of {len(distinct)} "
                "categories (multiclass)",
            )
        return TaskGuess(
            "regression",
            f"'{name}' holds numbers with {len(distinct)} distinct values -> "
            "predicting a number (regression)",
        )
    labels = _class_counts(present).index.tolist()
    if len(labels) <= 2:
        return _binary_guess(name, labels)
    return TaskGuess(
        "multiclass",
        f"'{name}' has {len(labels)} distinct values -> "
        f"one of {len(labels)} categories (multiclass)",
    )


def _empty_target_message(name: object) -> str:
    return f"'{name}' has no values, so it cannot be the column to predict. Choose another column."


def _binary_guess(name: str, labels: list) -> TaskGuess:
    if len(labels) < 2:
        return TaskGuess(
            "binary",
            f"'{name}' has only one value ('{labels[0]}'); a column to predict needs at least two",
        )
    shown = ", ".join(str(v) for v in sorted(labels, key=str))
    reason = f"'{name}' has 2 distinct values ({shown}) -> yes/no prediction (binary)"
    return TaskGuess("binary", reason)


def _class_counts(present: pd.Series) -> pd.Series:
    """Rows per class, keyed the way the preprocessor keys labels (1 and 1.0 are one class)."""
    counts = present.value_counts()
    keys = [str(label_value(v)) for v in counts.index]
    return counts.groupby(keys, sort=False).sum().sort_values(ascending=False, kind="stable")


def check_target(df: pd.DataFrame, target: str, task: str) -> None:
    """Refuse a column to predict (or a task) that cannot work, with the reason and the fix.

    Args:
        df: the table.
        target: the column to predict.
        task: ``"regression"``, ``"binary"`` or ``"multiclass"``.

    Raises:
        DataError: the column is not in the table, is empty or constant, is text for a regression,
            has too few usable rows (< 20), the wrong number of classes, or a class with one row.
    """
    if target not in df.columns:
        raise DataError(
            f"The column to predict, '{target}', is not in the table. "
            f"Columns: {_names(df.columns)}."
        )
    if task not in TASKS:
        raise DataError(f"The task '{task}' is not known. Choose one of: {', '.join(TASKS)}.")
    values = df[target]
    present = values[~missing_mask(values)]
    if present.empty:
        raise DataError(_empty_target_message(target))
    counts = _class_counts(present)
    if len(counts) == 1:
        raise DataError(
            f"'{target}' has the same value ('{counts.index[0]}') in every row, so there is "
            "nothing to predict. Choose another column."
        )
    numbers = parse_numeric(present)
    numeric = np.mean(~np.isnan(numbers)) >= 0.95
    if task == "regression" and not numeric:
        example = present[np.isnan(numbers)].iloc[0]
        raise DataError(
            f"'{target}' holds text (e.g. '{example}'), so it cannot be predicted as a number "
            "(regression). Choose binary or multiclass, or another column."
        )
    usable = int((~np.isnan(numbers)).sum()) if task == "regression" else len(present)
    if usable < MIN_TARGET_ROWS:
        raise DataError(
            f"Only {usable} rows have a value in '{target}'; at least {MIN_TARGET_ROWS} are needed "
            "to train and test a model. Add rows or fill in the missing values."
        )
    if task == "regression":
        return
    if task == "binary" and len(counts) != 2:
        raise DataError(
            f"'{target}' has {len(counts)} distinct values but {TASK_WORDS['binary']} "
            "needs exactly 2. "
            "Choose multiclass" + (" or regression" if numeric else "") + ", or another column."
        )
    if len(counts) > MAX_CLASSES:
        advice = "Choose regression to predict it as a number" if numeric else (
            "Group rare values together, or choose another column"
        )
        raise DataError(
            f"'{target}' has {len(counts)} distinct values; predicting one of more than "
            f"{MAX_CLASSES} categories is not supported. {advice}."
        )
    single = counts.index[counts == 1].tolist()
    if single:
        which = f"The value '{single[0]}' appears" if len(single) == 1 else (
            f"The values {_names(single, limit=10)} appear"
        )
        raise DataError(
            f"{which} in only one row of '{target}'; every category needs at least 2 rows so it "
            "can be both learned and tested. Remove those rows or merge them into a similar "
            "category."
        )


# ---------------------------------------------------------------------------------------------
# Defaults and advice
# ---------------------------------------------------------------------------------------------


# Words in a column's name that say "this is the answer", strongest first. Only whole words count
# ("pclass" is a passenger class, not a class label), so a guess is made only where the name says it.
TARGET_WORDS = ("target", "label", "outcome", "y", "class", "survived", "churn", "churned", "default",
                "defaulted", "fraud", "response", "result", "diagnosis", "species", "price", "quality",
                "rating", "grade", "sales", "converted", "approved", "status")


def likely_target(profile: TableProfile) -> str | None:
    """The column a table most likely wants predicted, judged by its name alone, or ``None``.

    A column whose name has one of ``TARGET_WORDS`` as a whole word ("Survived", "churn_flag",
    "target") is a likely answer; ID-like, constant and empty columns never are. Without such a
    name there is no guess: the last column is as often a passenger class as an outcome, so the
    Data page asks instead of choosing.
    """
    best: tuple[int, int] | None = None
    for position, column in enumerate(profile.columns):
        if column.id_like or column.constant or column.n_unique == 0:
            continue
        words = re.findall(r"[a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", column.name).lower())
        ranks = [TARGET_WORDS.index(w) for w in words if w in TARGET_WORDS]
        if ranks and (best is None or min(ranks) < best[0]):
            best = (min(ranks), position)
    return profile.columns[best[1]].name if best is not None else None


def suggest_features(profile: TableProfile, target: str | None) -> list[str]:
    """Default input columns: all but the target and ID-like, constant or mostly-empty columns.

    Args:
        profile: the table's profile.
        target: the column to predict (excluded), or ``None``.

    Returns:
        Column names in table order.
    """
    return [
        c.name
        for c in profile.columns
        if c.name != target and not (c.id_like or c.constant or c.mostly_missing)
    ]


def date_columns(profile: TableProfile) -> list[str]:
    """The columns whose values read as dates or times, in table order."""
    return [c.name for c in profile.columns if c.kind == "datetime"]


def find_time_column(profile: TableProfile) -> str | None:
    """The time column of a series when the table leaves no doubt: its only column of dates.

    The Data page preselects it and ``train --task forecast`` takes it without ``--time-column``.

    Args:
        profile: the table's profile.

    Returns:
        The name of the one date-like column, or ``None`` when no column holds dates (the caller
        explains what a time column is in its own words).

    Raises:
        DataError: several columns hold dates; the message names them all.
    """
    dates = date_columns(profile)
    if len(dates) > 1:
        raise DataError(
            f"Several columns hold dates ({_names(dates)}), so the time column of the series is "
            "not clear: choose the one with its time stamps."
        )
    return dates[0] if dates else None


def numeric_columns(profile: TableProfile, exclude: tuple[str, ...] = ()) -> list[str]:
    """Columns of numbers that can be a series to forecast (not constant), in table order."""
    return [c.name for c in profile.columns
            if c.kind == "numeric" and not c.constant and c.name not in exclude]


def health_warnings(profile: TableProfile, target: str | None) -> list[str]:
    """Plain-language warnings about using this table to predict ``target``.

    Covers columns left out by default (ID-like, constant, mostly empty), rows without a target,
    leakage (an input that determines the target, or correlates with it above 0.98) and class
    imbalance (the rarest class under 10% of rows).

    Args:
        profile: the table's profile (from ``profile_table``, which keeps the data).
        target: the column to predict, or ``None`` for checks that need no target.

    Returns:
        Warnings, most important first; empty when all is well.
    """
    others = [c for c in profile.columns if c.name != target]
    left_out = [c for c in others if c.id_like or c.constant or c.mostly_missing]
    notes = [c.warnings[0] for c in left_out]
    data = profile.data
    if target is None or data is None or target not in data.columns:
        return notes
    y = data[target]
    n_missing = int(missing_mask(y).sum())
    if n_missing:
        notes.append(
            f"{n_missing} row(s) have no value in '{target}'; they are left out of training "
            "and testing."
        )
    try:
        task = infer_task(y).task
    except DataError:
        return notes
    candidates = [c for c in others if not (c.id_like or c.constant or c.mostly_missing)]
    leaks = _leakage_warnings(data, target, candidates)
    imbalance = _imbalance_warning(y, target) if task != "regression" else []
    return leaks + imbalance + notes


def _leakage_warnings(
    data: pd.DataFrame, target: str, candidates: list[ColumnProfile]
) -> list[str]:
    y = data[target]
    has_y = ~missing_mask(y)
    y_numbers = parse_numeric(y)
    y_is_number = np.mean(~np.isnan(y_numbers[has_y])) >= 0.95
    # Target values compared as text (1 and "1" are one answer), numbered once for every column.
    y_codes = pd.factorize(y.astype("str"))[0]
    notes = []
    for column in candidates:
        x = data[column.name]
        if column.kind in ("numeric", "boolean") and y_is_number:
            r = _correlation(parse_numeric(x), y_numbers)
            if abs(r) > LEAKAGE_CORRELATION:
                notes.append(
                    f"'{column.name}' moves almost exactly with '{target}' (correlation "
                    f"{r:.2f}): it may be another form of the answer (leakage). Leave it out "
                    "unless it will be known when you make predictions."
                )
                continue
        # A column with a value per row trivially "determines" anything: require repeated values.
        if 2 <= column.n_unique <= has_y.sum() / 2 and _determines(x, y_codes, has_y):
            notes.append(
                f"Each value of '{column.name}' always comes with the same value of '{target}': it "
                "may give the answer away (leakage). Leave it out unless it will be known when you "
                "make predictions."
            )
    return notes


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    both = ~np.isnan(x) & ~np.isnan(y)
    if both.sum() < 10 or np.std(x[both]) == 0 or np.std(y[both]) == 0:
        return 0.0
    return float(np.corrcoef(x[both], y[both])[0, 1])


def _determines(x: pd.Series, y_codes: np.ndarray, has_y: np.ndarray) -> bool:
    """True when every value of ``x`` always comes with one and the same target value.

    ``y_codes`` numbers the target's values (``pd.factorize``). Each value of ``x`` determines the
    target exactly when there are no more distinct (value, target) pairs than values: two integer
    arrays hashed, where grouping the target's text by ``x`` held ~100 MB on 1M rows.
    """
    keep = ~missing_mask(x) & has_y
    if keep.sum() < MIN_TARGET_ROWS:
        return False
    x_codes, values = pd.factorize(x[keep].to_numpy())
    if len(values) < 2:
        return False
    pairs = x_codes.astype(np.int64) * (int(y_codes.max()) + 1) + y_codes[keep]
    return len(pd.unique(pairs)) == len(values)


def _imbalance_warning(y: pd.Series, target: str) -> list[str]:
    counts = _class_counts(y[~missing_mask(y)])
    share = counts.iloc[-1] / counts.sum()
    if len(counts) < 2 or share >= IMBALANCE_SHARE:
        return []
    return [
        f"Only {100 * share:.1f}% of rows have '{target}' = '{counts.index[-1]}' (the rarest "
        "value): the model may learn to ignore it, and accuracy can look high even then. Judge "
        "the model by its F1 score and confusion matrix."
    ]
