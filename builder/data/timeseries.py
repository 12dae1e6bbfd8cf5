"""Time series for forecasting: profile, regular grid, windows, time split, scaling.

The path from a table to training arrays is ``prepare_series``:

1. ``profile_series`` reads the time column and the value columns, sorts by time, finds the regular
   step (the median difference between time stamps; about 28-31 days counts as one calendar month)
   and explains gaps, off-step time stamps and duplicated time stamps in plain words.
2. The series is put on a regular grid (``SeriesPreprocessor.regularise``). Filling policy, applied
   the same way in the app, the CLI and an export bundle:
   - rows sharing a time stamp are merged into one step by averaging their values;
   - a time stamp off the regular step is moved to the nearest step;
   - a missing step (a gap) and an empty value get the last value before them carried forward
     (``fill="forward"``, the default) or a straight line between the values either side
     (``fill="linear"``); values missing at the very start take the first known value.
3. ``make_windows`` cuts the grid into (window -> next ``horizon`` target values) examples.
4. ``split_by_time`` gives contiguous train / validation / test blocks in time order. A window near
   the end of a block is dropped when any of its rows (inputs or targets) falls on or after the
   first target of the next block, so no value the model is tested on is ever trained on.
5. ``SeriesPreprocessor`` scales each column with the mean and spread of the training rows only.

This file imports only numpy, pandas and the standard library at the top, so it can be copied into
an export bundle next to ``preprocess.py``. The naive forecasts a model is compared with (last
value, seasonal naive, lagged ridge) live in ``builder.baselines``.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

try:
    from builder.data.preprocess import (
        cell_text,
        check_saved_state,
        detect_datetime_format,
        finite_numbers,
        missing_mask,
        parse_datetime,
        parse_numeric,
    )
    from builder.errors import DataError, SpecError
except ImportError:  # copied into an export bundle, next to preprocess.py
    from preprocess import (  # type: ignore[no-redef]
        DataError,
        cell_text,
        check_saved_state,
        detect_datetime_format,
        finite_numbers,
        missing_mask,
        parse_datetime,
        parse_numeric,
    )

    SpecError = DataError  # type: ignore[misc,assignment]

logger = logging.getLogger(__name__)

FORMAT = "builder.series-preprocessor"
FORMAT_VERSION = 1
# Fewer training examples than this and a network cannot learn anything a baseline would not.
MIN_WINDOWS = 20
FILL_WORDS = {
    "forward": "carrying the last value forward",
    "linear": "drawing a straight line between the values either side",
}
NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND
_UNITS = (("week", 7 * NS_PER_DAY), ("day", NS_PER_DAY), ("hour", 3600 * NS_PER_SECOND),
          ("minute", 60 * NS_PER_SECOND), ("second", NS_PER_SECOND))
# Median differences (in days) that mean a calendar step of this many months.
_MONTH_STEPS = ((1, 28, 31), (2, 59, 62), (3, 89, 92), (4, 120, 123), (6, 181, 184), (12, 365, 366))
# Seasons for calendar steps: months per year divided by the step.
_MONTH_SEASONS = {1: 12, 2: 6, 3: 4, 4: 3, 6: 2}


# ---------------------------------------------------------------------------------------------
# Steps: {"nanoseconds": n} for fixed steps, {"months": k} for calendar months (JSON state)
# ---------------------------------------------------------------------------------------------


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def describe_step(step: dict, count: int = 1) -> str:
    """A duration of ``count`` steps in words, e.g. ``"1 day"``, ``"5 days"``, ``"3 months"``."""
    if "months" in step:
        months = int(step["months"]) * count
        return _plural(months // 12, "year") if months % 12 == 0 else _plural(months, "month")
    total = int(step["nanoseconds"]) * count
    for word, size in _UNITS:
        if total % size == 0:
            return _plural(total // size, word)
    return f"{total / NS_PER_SECOND:g} seconds"


def suggest_season(step: dict) -> int | None:
    """The number of steps in one natural cycle: 7 for daily, 24 hourly, 12 monthly, 52 weekly.

    Sub-daily steps get the steps per day (96 for 15 minutes) unless that exceeds a week of hours
    (168), then the steps per hour (60 for 1 minute). ``None`` when no cycle fits (e.g. yearly).
    """
    if "months" in step:
        return _MONTH_SEASONS.get(int(step["months"]))
    ns = int(step["nanoseconds"])
    hour = 3600 * NS_PER_SECOND
    if ns == NS_PER_DAY:
        return 7
    if ns == 7 * NS_PER_DAY:
        return 52
    if ns < NS_PER_DAY and NS_PER_DAY % ns == 0:
        per_day = NS_PER_DAY // ns
        if per_day <= 168:
            return int(per_day) if per_day > 1 else None
        return int(hour // ns) if hour % ns == 0 else None
    return None


def _detect_step(unique_times: np.ndarray) -> dict:
    diffs = np.diff(unique_times).astype(np.int64)  # ns, all > 0
    median = float(np.median(diffs))
    days = median / NS_PER_DAY
    for months, low, high in _MONTH_STEPS:
        if low <= days <= high:
            return {"months": months}
    return {"nanoseconds": int(round(median))}


def _as_step(step: Any) -> dict:
    """Accept a step dict, a ``pd.Timedelta``/``timedelta``, a text like ``"1D"``, or a DateOffset."""
    if isinstance(step, dict) and (set(step) == {"months"} or set(step) == {"nanoseconds"}):
        value = next(iter(step.values()))
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return {k: int(v) for k, v in step.items()}
    elif isinstance(step, pd.DateOffset) and set(step.kwds) == {"months"}:
        return {"months": int(step.kwds["months"])}
    else:
        try:
            ns = int(pd.Timedelta(step).value)
        except (TypeError, ValueError):
            ns = 0
        if ns > 0:
            return {"nanoseconds": ns}
    raise DataError(
        f"The time step {step!r} is not understood. Give a duration such as '1D', '1h' or "
        "pd.Timedelta(days=1), or {'months': 1} for monthly data."
    )


def _positions(times: np.ndarray, origin: np.datetime64, step: dict) -> np.ndarray:
    """Position of each time on the grid ``origin + k * step`` (nearest step), int64."""
    if "months" in step:
        index, start = pd.DatetimeIndex(times), pd.Timestamp(origin)
        months = (index.year - start.year) * 12 + (index.month - start.month)
        return np.round(np.asarray(months, dtype=np.float64) / step["months"]).astype(np.int64)
    offsets = (times - origin).astype(np.int64)
    return np.round(offsets / step["nanoseconds"]).astype(np.int64)


def _grid_times(origin: Any, step: dict, positions: np.ndarray) -> np.ndarray:
    """Time stamps of grid positions, datetime64[ns]."""
    positions = np.asarray(positions, dtype=np.int64)
    if "months" in step:
        start = pd.Timestamp(origin)
        if start.is_month_end:  # month-end series stay on month ends (Jun 30 -> Jul 31)
            stamps = [start + pd.offsets.MonthEnd(int(p) * step["months"]) for p in positions]
        else:
            stamps = [start + pd.DateOffset(months=int(p) * step["months"]) for p in positions]
        return np.asarray(pd.DatetimeIndex(stamps, dtype="datetime64[ns]").to_numpy())
    start = np.datetime64(pd.Timestamp(origin).to_datetime64(), "ns")
    return start + positions * np.timedelta64(int(step["nanoseconds"]), "ns")


def _day(stamp: Any) -> str:
    stamp = pd.Timestamp(stamp)
    return str(stamp.date()) if stamp == stamp.normalize() else str(stamp)


# ---------------------------------------------------------------------------------------------
# Reading: times and numbers, checked, sorted
# ---------------------------------------------------------------------------------------------


def _check_columns(df: pd.DataFrame, names: list[str]) -> None:
    missing = [n for n in names if n not in df.columns]
    if missing:
        listed = ", ".join(repr(str(c)) for c in list(df.columns)[:30])
        raise DataError(
            f"The data has no column named {missing[0]!r}. Its columns are: {listed}. "
            "Choose one of those."
        )


def _read_times(values: pd.Series, name: str, fmt: str | None) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Parse the time column. Returns (times ns, rows with a time, format)."""
    blank = missing_mask(values)
    if blank.all():
        raise DataError(f"The time column {name!r} is empty. Choose the column that holds the dates or times.")
    if fmt is None and not pd.api.types.is_datetime64_any_dtype(values):
        fmt = detect_datetime_format(values)
    stamps = parse_datetime(values, fmt).to_numpy().astype("datetime64[ns]")
    bad = np.isnat(stamps) & ~blank
    if bad.any():
        example = values[bad].iloc[0]
        if bad.sum() == (~blank).sum():
            raise DataError(
                f"The time column {name!r} does not hold dates or times (for example {cell_text(example)}). "
                "Choose the column with the time stamps, written like 2024-03-02 or 2024-03-02 14:00."
            )
        raise DataError(
            f"{int(bad.sum())} value(s) of the time column {name!r} cannot be read as dates or times "
            f"(for example {cell_text(example)}). Correct those cells or remove the rows."
        )
    return stamps, ~blank, fmt


def _read_numbers(values: pd.Series, name: str) -> np.ndarray:
    numbers = parse_numeric(values)
    bad = np.isnan(numbers) & ~missing_mask(values)
    if bad.any():
        raise DataError(
            f"{int(bad.sum())} value(s) of {name!r} are not numbers (for example "
            f"{cell_text(values[bad].iloc[0])}). A forecast needs numbers: correct or clear those cells, "
            "or leave the column out."
        )
    if np.isnan(numbers).all():
        raise DataError(f"The column {name!r} has no numbers at all. Choose a column with values to forecast.")
    return numbers


def _read_series(
    df: pd.DataFrame, time_column: str, columns: list[str], fmt: str | None
) -> tuple[np.ndarray, np.ndarray, str | None, int]:
    """(times sorted (n,) ns, values (n, F) float64 in the same order, format, rows without time)."""
    _check_columns(df, [time_column, *columns])
    if time_column in columns:
        raise DataError(
            f"{time_column!r} is the time column, so it cannot also be a value column. Remove it from the values."
        )
    times, has_time, fmt = _read_times(df[time_column], time_column, fmt)
    values = np.column_stack([_read_numbers(df[c], c) for c in columns])  # (n, F)
    order = np.argsort(times[has_time], kind="stable")
    return times[has_time][order], values[has_time][order], fmt, int((~has_time).sum())


def _check_fill(fill: str) -> str:
    if fill not in FILL_WORDS:
        raise SpecError(
            f"The fill setting must be one of {', '.join(map(repr, FILL_WORDS))}; got {fill!r}. "
            "Use 'forward' to carry the last value forward."
        )
    return fill


# ---------------------------------------------------------------------------------------------
# Profile
# ---------------------------------------------------------------------------------------------


class Gap(NamedTuple):
    """Missing steps between two time stamps."""

    after: pd.Timestamp  # the last time stamp before the gap
    missing_steps: int
    duration: str  # e.g. "5 days"


@dataclass
class SeriesProfile:
    """What a time series looks like, with one plain sentence per finding in ``messages``.

    Attributes:
        step: the regular step as JSON, ``{"nanoseconds": n}`` or ``{"months": k}``.
        step_text: the step in words ("1 day").
        n_steps: length of the regular grid from ``start`` to ``end``.
        gaps: every run of missing steps, in time order; ``longest_gap`` the largest.
        n_duplicates: time stamps that occur more than once (their values are averaged).
        n_irregular: time stamps off the regular step (moved to the nearest step).
        missing_values: empty cells per value column (filled by ``fill``).
        suggested_season: steps per natural cycle (7 daily, 24 hourly, 12 monthly) or ``None``.
    """

    time_column: str
    value_columns: list[str]
    n_rows: int
    start: pd.Timestamp
    end: pd.Timestamp
    step: dict
    step_text: str
    n_steps: int
    gaps: list[Gap]
    n_duplicates: int
    duplicate_examples: list[str]
    n_irregular: int
    irregular_examples: list[str]
    missing_values: dict[str, int]
    rows_without_time: int
    suggested_season: int | None
    fill: str
    messages: list[str] = field(default_factory=list)

    @property
    def n_gaps(self) -> int:
        """How many runs of missing steps there are."""
        return len(self.gaps)

    @property
    def missing_steps(self) -> int:
        """Missing steps over all gaps."""
        return sum(g.missing_steps for g in self.gaps)

    @property
    def longest_gap(self) -> Gap | None:
        """The gap with the most missing steps (the first one on a tie)."""
        return max(self.gaps, key=lambda g: g.missing_steps) if self.gaps else None


def profile_series(
    df: pd.DataFrame, time_column: str, value_columns: list[str], fill: str = "forward"
) -> SeriesProfile:
    """Check a time series and explain its step, gaps, odd and duplicated time stamps.

    Args:
        df: the table as read (raw values; times and numbers may be text).
        time_column: the column with the time stamps.
        value_columns: the numeric columns of the series.
        fill: how missing steps and values are filled: ``"forward"`` or ``"linear"``.

    Returns:
        A ``SeriesProfile``; ``messages`` holds one sentence per finding for the analyst.

    Raises:
        DataError: unknown columns, times that cannot be read, values that are not numbers, or
            fewer than two distinct time stamps.
        SpecError: an unknown fill setting.
    """
    fill = _check_fill(fill)
    columns = list(dict.fromkeys(value_columns))
    if not columns:
        raise DataError("No value columns are selected. Choose at least one numeric column to forecast.")
    times, values, _, no_time = _read_series(df, time_column, columns, None)
    unique, counts = np.unique(times, return_counts=True)
    if unique.size < 2:
        raise DataError(
            f"The time column {time_column!r} has fewer than two different time stamps, so there is "
            "no series to forecast. Choose the column with the time stamps."
        )
    step = _detect_step(unique)
    positions = _positions(unique, unique[0], step)
    on_grid = _grid_times(unique[0], step, positions) == unique
    collided = np.concatenate([[False], np.diff(positions) == 0])  # two times moved to one step
    irregular = ~on_grid | collided
    grid_positions = np.unique(positions)
    jumps = np.diff(grid_positions)
    gap_at = np.flatnonzero(jumps > 1)
    last_before = {int(p): unique[positions == p].max() for p in grid_positions[gap_at]}
    gaps = [
        Gap(pd.Timestamp(last_before[int(grid_positions[i])]), int(jumps[i] - 1), describe_step(step, int(jumps[i] - 1)))
        for i in gap_at
    ]
    duplicated = unique[counts > 1]
    profile = SeriesProfile(
        time_column=time_column,
        value_columns=columns,
        n_rows=len(times),
        start=pd.Timestamp(unique[0]),
        end=pd.Timestamp(unique[-1]),
        step=step,
        step_text=describe_step(step),
        n_steps=int(grid_positions[-1] + 1),
        gaps=gaps,
        n_duplicates=int(duplicated.size),
        duplicate_examples=[_day(t) for t in duplicated[:5]],
        n_irregular=int(irregular.sum()),
        irregular_examples=[_day(t) for t in unique[irregular][:5]],
        missing_values={c: int(np.isnan(values[:, i]).sum()) for i, c in enumerate(columns)},
        rows_without_time=no_time,
        suggested_season=suggest_season(step),
        fill=fill,
    )
    profile.messages = _profile_messages(profile, counts)
    return profile


def _profile_messages(p: SeriesProfile, counts: np.ndarray) -> list[str]:
    how = FILL_WORDS[p.fill]
    messages = [
        f"One value every {p.step_text} from {_day(p.start)} to {_day(p.end)} "
        f"({p.n_steps} steps on the regular grid, {p.n_rows} rows)."
    ]
    if p.gaps:
        longest = p.longest_gap
        assert longest is not None
        lead = "1 gap" if len(p.gaps) == 1 else f"{len(p.gaps)} gaps"
        messages.append(
            f"{lead}: the longest misses {longest.duration} after {_day(longest.after)}; "
            f"{p.missing_steps} missing step(s) in all, filled by {how}."
        )
    else:
        messages.append("No gaps: every step has a value.")
    if p.n_duplicates:
        most = int(counts.max())
        messages.append(
            f"{_plural(p.n_duplicates, 'time stamp')} {'occurs' if p.n_duplicates == 1 else 'occur'} more than once (e.g. "
            f"{', '.join(p.duplicate_examples[:3])}, up to {most} times); the values of one time "
            "stamp are averaged."
        )
    if p.n_irregular:
        messages.append(
            f"{_plural(p.n_irregular, 'time stamp')} {'is' if p.n_irregular == 1 else 'are'} off the regular {p.step_text} step (e.g. "
            f"{', '.join(p.irregular_examples[:3])}); each is moved to the nearest step."
        )
    for name, count in p.missing_values.items():
        if count:
            messages.append(f"{name!r} has {_plural(count, 'empty value')}, filled by {how}.")
    if p.rows_without_time:
        messages.append(f"{_plural(p.rows_without_time, 'row')} without a time stamp: left out.")
    if p.suggested_season:
        messages.append(
            f"Suggested season: {p.suggested_season} steps (one cycle of {describe_step(p.step, p.suggested_season)})."
        )
    else:
        messages.append(f"No natural season for a {p.step_text} step; the seasonal baseline repeats the last value.")
    return messages


# ---------------------------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


@dataclass(frozen=True)
class WindowSpec:
    """How the series is cut into training examples.

    Attributes:
        window: past steps the model sees (>= 2).
        horizon: future steps it predicts (>= 1).
        stride: steps between the starts of two windows (>= 1; 1 uses every possible window).
    """

    window: int = 28
    horizon: int = 1
    stride: int = 1

    def __post_init__(self) -> None:
        for name, low, fix in (
            ("window", 2, "the model needs at least 2 past steps to see a change; use 2 or more"),
            ("horizon", 1, "use 1 to predict the next step"),
            ("stride", 1, "use 1 to make a window at every step"),
        ):
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                raise SpecError(
                    f"The '{name}' setting must be a whole number >= {low}; got {value!r}. Fix: {fix}."
                )

    def n_windows(self, n_steps: int) -> int:
        """How many windows ``n_steps`` rows give."""
        span = self.window + self.horizon
        return 0 if n_steps < span else (n_steps - span) // self.stride + 1

    def check_rows(self, n_steps: int, needed: int = MIN_WINDOWS) -> None:
        """Raise unless ``n_steps`` rows give at least ``needed`` windows.

        Raises:
            DataError: too few rows, naming the settings and the largest window that would fit.
        """
        got = self.n_windows(n_steps)
        if got >= needed:
            return
        rows = self.window + self.horizon + (needed - 1) * self.stride
        fixes = []
        best_window = n_steps - self.horizon - (needed - 1) * self.stride
        if best_window >= 2 and best_window < self.window:
            fixes.append(f"lower 'window' to {best_window} or less")
        if self.horizon > 1:
            fixes.append("lower 'horizon'")
        if self.stride > 1:
            fixes.append("lower 'stride'")
        fixes.append("use a longer history" if fixes else f"use a history of at least {rows} steps")
        raise DataError(
            f"With window={self.window}, horizon={self.horizon} and stride={self.stride}, the "
            f"{n_steps} time steps give {got} example window(s); at least {needed} are needed "
            f"({rows} steps). Fix: {', or '.join(fixes)}."
        )

    def end_positions(self, n_steps: int) -> np.ndarray:
        """Position of the last input row of each window, aligned so the newest data is used."""
        count = self.n_windows(n_steps)
        last = n_steps - self.horizon - 1
        return last - self.stride * np.arange(count - 1, -1, -1, dtype=np.int64)

    def to_dict(self) -> dict:
        """Plain JSON form."""
        return {"window": self.window, "horizon": self.horizon, "stride": self.stride}


def make_windows(
    values: np.ndarray, target_index: int, spec: WindowSpec
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut a regular series into (past ``window`` rows -> next ``horizon`` target values).

    Windows are aligned to the end of the series: the last window's targets are the last rows.

    Args:
        values: ``(N, F)`` array (scaled or not); a 1-D array is one column.
        target_index: the column to predict.
        spec: window, horizon and stride.

    Returns:
        ``X`` float32 ``(M, window, F)``, ``y`` float32 ``(M, horizon)`` and ``end_positions``
        int64 ``(M,)``: the row of each window's last input, so ``y[i]`` is the target at rows
        ``end_positions[i] + 1 ... end_positions[i] + horizon``.

    Raises:
        DataError: ``target_index`` outside the columns, or fewer rows than one window needs.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    n_steps, n_features = values.shape
    if not _is_int(target_index) or not 0 <= target_index < n_features:
        raise DataError(f"The target column number {target_index!r} is not one of the {n_features} column(s).")
    ends = spec.end_positions(n_steps)
    if ends.size == 0:
        raise DataError(
            f"With window={spec.window} and horizon={spec.horizon}, {n_steps} time steps are too few for "
            f"even one example ({spec.window + spec.horizon} needed). Lower 'window' or 'horizon'."
        )
    starts = ends - spec.window + 1
    views = np.lib.stride_tricks.sliding_window_view(values, spec.window, axis=0)  # (N-w+1, F, w)
    X = views[starts].transpose(0, 2, 1).astype(np.float32)  # (M, window, F)
    offsets = ends[:, None] + np.arange(1, spec.horizon + 1)  # (M, horizon)
    y = values[offsets, target_index].astype(np.float32)  # (M, horizon)
    return X, y, ends


class TimeSplit(NamedTuple):
    """Window indexes of each block (time order) and how many windows were dropped at the cuts."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    dropped: int


def _check_fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise DataError(f"The '{name}' setting must be a share between 0 and 1 (e.g. 0.15); got {value!r}.")
    return float(value)


def split_by_time(
    windows: int | np.ndarray,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    spec: WindowSpec | None = None,
) -> TimeSplit:
    """Contiguous train / validation / test blocks of windows, in time order, never shuffled.

    The newest windows are the test block, the ones before them validation, the rest training.
    No leakage: a window of an earlier block is dropped when any of its rows (inputs or targets)
    reaches the first target row of the next block, so every training target comes before every
    validation and test target and no training input is a test target.

    Args:
        windows: the windows' ``end_positions`` (from ``make_windows``), or their count (then
            read as consecutive positions, as with stride 1).
        val_fraction: share of windows for validation (0 for none).
        test_fraction: share of windows for the final test (0 for none).
        spec: the window settings (the horizon decides how many windows the cut drops);
            ``None`` means horizon 1, which drops nothing.

    Returns:
        A ``TimeSplit`` of window indexes (positions in ``windows``).

    Raises:
        DataError: a fraction outside [0, 1), fractions that leave no training windows.
    """
    val_fraction = _check_fraction("val_fraction", val_fraction)
    test_fraction = _check_fraction("test_fraction", test_fraction)
    ends = np.arange(windows, dtype=np.int64) if _is_int(windows) else np.asarray(windows, dtype=np.int64)
    horizon = spec.horizon if spec is not None else 1
    total = ends.size
    n_test = math.ceil(test_fraction * total) if test_fraction else 0
    n_val = math.ceil(val_fraction * total) if val_fraction else 0
    n_train = total - n_val - n_test
    if val_fraction + test_fraction >= 0.9 or n_train < 1:
        raise DataError(
            f"val_fraction={val_fraction:g} and test_fraction={test_fraction:g} leave "
            f"{max(n_train, 0)} of {total} windows for training. Lower them (e.g. 0.15 each)."
        )
    blocks = [np.arange(0, n_train), np.arange(n_train, n_train + n_val), np.arange(n_train + n_val, total)]
    dropped = 0
    for i in range(len(blocks) - 1):
        later = next((b for b in blocks[i + 1:] if b.size), None)
        if later is None:
            continue
        first_target = ends[later[0]] + 1
        keep = ends[blocks[i]] + horizon < first_target  # all rows of the window before it
        dropped += int((~keep).sum())
        blocks[i] = blocks[i][keep]
    if blocks[0].size == 0:
        raise DataError(
            f"After leaving a gap of horizon={horizon} steps before the validation and test windows, "
            "no training windows remain. Lower 'horizon' or the fractions, or use a longer history."
        )
    return TimeSplit(blocks[0], blocks[1], blocks[2], dropped)


# ---------------------------------------------------------------------------------------------
# The series preprocessor (JSON state, copied into bundles)
# ---------------------------------------------------------------------------------------------


class SeriesPreprocessor:
    """Raw rows with a time column in, a regular scaled ``(N, F)`` array out, and back.

    Fit it on the table with ``train_rows`` set to the number of grid rows the training windows
    use, so the scaling sees nothing of validation or test. Then ``transform`` any table with the
    same columns (its own first time stamp starts its grid).

    Args:
        fill: ``"forward"`` (carry the last value forward) or ``"linear"`` (straight line).
    """

    def __init__(self, fill: str = "forward"):
        self.fill = _check_fill(fill)
        self._state: dict | None = None

    def fit(
        self,
        df: pd.DataFrame,
        time_column: str,
        value_columns: list[str],
        target_column: str,
        train_rows: int | None = None,
        step: Any = None,
    ) -> SeriesPreprocessor:
        """Learn the step, the time format and each column's scaling.

        Args:
            df: the whole series as read.
            time_column: the time stamps.
            value_columns: the input series; ``target_column`` is added (last) when absent.
            target_column: the series to forecast.
            train_rows: scaling uses only the first ``train_rows`` rows of the regular grid
                (``None``: all rows, only right when ``df`` is the training part).
            step: the step (see ``forecast_frame``); ``None`` detects it.

        Returns:
            ``self``, fitted.

        Raises:
            DataError: unreadable times or values, unknown columns, too few time stamps.
        """
        columns = list(dict.fromkeys([*value_columns, target_column]))
        times, _, fmt, _ = _read_series(df, time_column, columns, None)
        unique = np.unique(times)
        if unique.size < 2:
            raise DataError(
                f"The time column {time_column!r} has fewer than two different time stamps. "
                "Choose the column with the time stamps."
            )
        step = _detect_step(unique) if step is None else _as_step(step)
        state = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "time_column": time_column,
            "time_format": fmt,
            "target": target_column,
            "fill": self.fill,
            "step": step,
            "season": suggest_season(step),
            "columns": [{"name": c, "mean": 0.0, "std": 1.0} for c in columns],
        }
        frame = _regularise(df, state)
        rows = len(frame) if train_rows is None else int(train_rows)
        if not 1 <= rows <= len(frame):
            raise DataError(f"train_rows={train_rows!r} must be between 1 and the {len(frame)} rows of the series.")
        for column in state["columns"]:
            part = frame[column["name"]].to_numpy(dtype=np.float64)[:rows]
            std = float(part.std())
            column["mean"], column["std"] = float(part.mean()), std if std > 1e-12 else 1.0
        self._state = state
        logger.info("Fitted series preprocessing on %d of %d steps (%s step)", rows, len(frame), describe_step(step))
        return self

    def regularise(self, df: pd.DataFrame) -> pd.DataFrame:
        """The series on its regular grid, in original units, gaps and empty values filled.

        Returns:
            A frame with the time column (datetime64) and the value columns (float64).
        """
        return _regularise(df, self._fitted())

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """Regularise and scale: float32 ``(N, F)``, columns in ``columns`` order, no NaN."""
        state = self._fitted()
        frame = _regularise(df, state)
        means = np.array([c["mean"] for c in state["columns"]])
        stds = np.array([c["std"] for c in state["columns"]])
        raw = frame[self.columns].to_numpy(dtype=np.float64)  # (N, F)
        return ((raw - means) / stds).astype(np.float32)

    @property
    def target_scale(self) -> float:
        """Multiply an error in training units by this for original units (the target's spread)."""
        return float(self._fitted()["columns"][self.target_index]["std"])

    def inverse_target(self, y_scaled: np.ndarray) -> np.ndarray:
        """Scaled target values (any shape) back to original units, float64."""
        column = self._fitted()["columns"][self.target_index]
        return np.asarray(y_scaled, dtype=np.float64) * column["std"] + column["mean"]

    def forecast_frame(self, last_time: Any, step: Any, predictions: np.ndarray) -> pd.DataFrame:
        """Predictions with the time stamp of each predicted step.

        Args:
            last_time: the time of the last known row.
            step: the step, ``None`` for the fitted one; a ``{"nanoseconds": n}``/``{"months": k}``
                dict, a ``pd.Timedelta``, a text such as ``"1D"``, or ``pd.DateOffset(months=k)``.
            predictions: ``(horizon,)`` values in original units.

        Returns:
            A frame with ``time`` (``last_time + k * step`` for k = 1..horizon) and ``prediction``.
        """
        step = self._fitted()["step"] if step is None else _as_step(step)
        values = np.asarray(predictions, dtype=np.float64).reshape(-1)
        times = _grid_times(pd.Timestamp(last_time), step, np.arange(1, values.size + 1))
        return pd.DataFrame({"time": times, "prediction": values})

    def set_window(self, window: int, horizon: int) -> None:
        """Remember the window and horizon the model is trained with (``predict_with`` needs them),
        and the season its forecasts start from (see ``encode_change``)."""
        state = self._fitted()
        state["window"], state["horizon"] = int(window), int(horizon)
        season = state.get("season")
        state["predicts"] = "change"
        state["reference_season"] = int(season) if season and 1 < season <= window else 1

    def _reference(self, X: np.ndarray) -> np.ndarray:
        """The naive forecast each window starts from, scaled: ``(M, horizon)``.

        Step k repeats the target value one season before it (the last such value inside the
        window); with no season (1) that is the last value for every step.
        """
        state = self._fitted()
        season, window = state["reference_season"], int(np.shape(X)[1])
        k = np.arange(1, int(state["horizon"]) + 1)
        source = window - 1 + k - season * np.ceil(k / season).astype(np.int64)  # (horizon,) in [0, window)
        return np.asarray(X, dtype=np.float64)[:, source, self.target_index]

    def encode_change(self, X: np.ndarray, y_scaled: np.ndarray) -> np.ndarray:
        """Training targets: each future value minus its naive forecast (scaled units).

        Networks extrapolate a level they never saw in training badly (a trend carries the test
        period above every training value); the change from the naive forecast (the value one
        season earlier, or the last value) stays in range, and an output of zero *is* the naive
        forecast, so training starts from a fair guess and learns what the naive rule misses.
        """
        if self._fitted().get("predicts") != "change":
            return np.asarray(y_scaled, dtype=np.float32)
        return (y_scaled - self._reference(X)).astype(np.float32)

    def decode_forecast(self, X: np.ndarray, outputs: np.ndarray) -> np.ndarray:
        """Model outputs ``(M, horizon)`` for inputs ``X`` ``(M, window, F)`` -> values in original units."""
        out = np.asarray(outputs, dtype=np.float64).reshape(len(X), -1)
        if self._fitted().get("predicts") == "change":
            out = out + self._reference(X)
        return self.inverse_target(out)

    @property
    def window(self) -> int | None:
        """Past steps one model input holds (``None`` before ``set_window``)."""
        return self._fitted().get("window")

    @property
    def horizon(self) -> int | None:
        """Future steps the model predicts (``None`` before ``set_window``)."""
        return self._fitted().get("horizon")

    @property
    def input_shape(self) -> tuple[int, int]:
        """Shape of one model input: ``(window, n_features)``."""
        return (self._window_or_fail(), self.n_features)

    @property
    def n_outputs(self) -> int:
        """Outputs per input: one per future step."""
        if self.horizon is None:
            self._window_or_fail()
        return int(self.horizon)

    @property
    def task(self) -> str:
        """Always ``"forecast"``."""
        return "forecast"

    @property
    def classes(self) -> list:
        """A forecast has no classes."""
        return []

    def last_window(self, df: pd.DataFrame) -> tuple[np.ndarray, Any]:
        """The model input for forecasting after the end of ``df``, and the time of its last step.

        Returns:
            ``(X, last_time)``: float32 ``(1, window, F)`` and a ``pd.Timestamp``.

        Raises:
            DataError: fewer rows (after filling gaps) than one window needs.
        """
        window = self._window_or_fail()
        frame = self.regularise(df)
        if len(frame) < window:
            raise DataError(
                f"Forecasting needs the last {window} steps of the series, but the data covers only "
                f"{len(frame)}. Give at least {window} rows of history (more is fine: the newest are used)."
            )
        values = self.transform(df)  # (N, F)
        return values[None, -window:], pd.Timestamp(frame[self.time_column].iloc[-1])

    def predict_with(self, df: pd.DataFrame, run: Callable[[np.ndarray], np.ndarray]) -> pd.DataFrame:
        """Forecast the steps after the end of ``df``, the same in the app and in an export bundle.

        Args:
            df: the history: the time column and the value columns (the newest ``window`` steps
                are used; gaps are filled as in training).
            run: the model: ``(1, window, F)`` -> ``(1, horizon)`` raw outputs (see ``decode_forecast``).

        Returns:
            One row per future step: the time stamp (in a column named like the time column)
            and ``prediction`` in original units.
        """
        X, last_time = self.last_window(df)
        frame = self.forecast_frame(last_time, None, self.decode_forecast(X, run(X))[0])
        return frame.rename(columns={"time": self.time_column})

    def _window_or_fail(self) -> int:
        window = self.window
        if window is None:
            raise DataError("This series preprocessing has no window yet: it was not saved with a model.")
        return int(window)

    # -- description ------------------------------------------------------------------------------

    @property
    def columns(self) -> list[str]:
        """The series columns in array order (the target included)."""
        return [c["name"] for c in self._fitted()["columns"]]

    @property
    def target(self) -> str:
        """The series to forecast."""
        return self._fitted()["target"]

    @property
    def target_index(self) -> int:
        """Position of the target in ``columns``."""
        return self.columns.index(self.target)

    @property
    def time_column(self) -> str:
        """The column with the time stamps."""
        return self._fitted()["time_column"]

    @property
    def step(self) -> dict:
        """The regular step as JSON."""
        return dict(self._fitted()["step"])

    @property
    def season(self) -> int | None:
        """Steps per natural cycle, from the step."""
        return self._fitted()["season"]

    @property
    def n_features(self) -> int:
        """Width of the array ``transform`` returns."""
        return len(self._fitted()["columns"])

    # -- persistence ----------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The fitted state as plain JSON."""
        return copy.deepcopy(self._fitted())

    @classmethod
    def from_dict(cls, state: dict) -> SeriesPreprocessor:
        """Rebuild from ``to_dict`` output.

        Raises:
            DataError: not series preprocessing state, another version, or damaged.
        """
        check_saved_state(state, FORMAT, FORMAT_VERSION, "time-series")
        try:
            pre = cls(fill=state["fill"])
            _as_step(state["step"])
            names = [c["name"] for c in state["columns"]]
            ok = state["target"] in names and all(isinstance(name, str) for name in names)
            # Finite centres and positive spreads: text, NaN or 0 would break or flatten every input.
            ok = ok and all(finite_numbers(c["mean"]) and finite_numbers(c["std"]) and c["std"] > 0
                            for c in state["columns"])
            ok = ok and all(state.get(key) is None or (type(state[key]) is int and state[key] >= 1)
                            for key in ("window", "horizon", "season", "reference_season"))
            # The naive forecast repeats a value one season back inside the window.
            ok = ok and state.get("reference_season", 1) <= (state.get("window") or 1)
            ok = ok and isinstance(state["time_column"], str) and isinstance(state.get("time_format") or "", str)
        except (KeyError, TypeError, AttributeError, SpecError, DataError):
            ok = False
        if not ok:
            raise DataError("The time-series preprocessing file is incomplete or damaged. Export the model again.")
        pre._state = copy.deepcopy(state)
        return pre

    def _fitted(self) -> dict:
        if self._state is None:
            raise RuntimeError("The series preprocessor is not fitted yet: call fit() first.")
        return self._state


def _regularise(df: pd.DataFrame, state: dict) -> pd.DataFrame:
    """Put rows on the regular grid (see the module docstring for the filling policy)."""
    names = [c["name"] for c in state["columns"]]
    time_column, step = state["time_column"], state["step"]
    times, values, _, _ = _read_series(df, time_column, names, state["time_format"])
    if times.size == 0:
        raise DataError(f"No row has a time stamp in {time_column!r}.")
    positions = _positions(times, times[0], step)
    merged = pd.DataFrame(values, columns=names).groupby(positions).mean()  # duplicates averaged
    grid = np.arange(int(positions[-1]) + 1)
    frame = merged.reindex(grid)
    if state["fill"] == "linear":
        frame = frame.interpolate(method="linear", limit_direction="both")
    frame = frame.ffill().bfill()  # leading values take the first known value
    frame.insert(0, time_column, _grid_times(times[0], step, grid))
    return frame.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# From a table to training arrays
# ---------------------------------------------------------------------------------------------


@dataclass
class PreparedSeries:
    """Everything training and evaluation need from a time series.

    Attributes:
        X_train, X_val, X_test: float32 ``(M, window, F)`` scaled inputs.
        y_train, y_val, y_test: float32 ``(M, horizon)`` training targets: the change of the scaled
            target from the window's last value (``SeriesPreprocessor.decode_forecast`` undoes it).
        end_train, end_val, end_test: grid row of each window's last input.
        times_train, times_val, times_test: datetime64 ``(M, horizon)``: the time of each target.
        times: datetime64 ``(N,)`` the regular grid; target_values: float64 ``(N,)`` the target
            in original units on that grid (filled), for baselines and charts.
        input_shape: ``(window, F)``; n_outputs: the horizon.
    """

    preprocessor: SeriesPreprocessor
    profile: SeriesProfile
    spec: WindowSpec
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    end_train: np.ndarray
    end_val: np.ndarray
    end_test: np.ndarray
    times_train: np.ndarray
    times_val: np.ndarray
    times_test: np.ndarray
    times: np.ndarray
    target_values: np.ndarray
    input_shape: tuple[int, int]
    n_outputs: int
    dropped: int

    @property
    def season(self) -> int | None:
        """Suggested season of the series (steps per cycle)."""
        return self.profile.suggested_season

    def ends(self, split: str) -> np.ndarray:
        """End positions of the "train", "val" or "test" windows."""
        return {"train": self.end_train, "val": self.end_val, "test": self.end_test}[split]

    def true_targets(self, split: str) -> np.ndarray:
        """The answers of a split's windows in original units, float64 ``(M, horizon)``."""
        ends = self.ends(split)
        return self.target_values[ends[:, None] + np.arange(1, self.n_outputs + 1)]


def prepare_series(
    df: pd.DataFrame,
    time_column: str,
    value_columns: list[str],
    target_column: str,
    window_spec: WindowSpec | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    fill: str = "forward",
    windows: TimeSplit | None = None,
) -> PreparedSeries:
    """Profile, regularise, window, split by time and scale a series for training.

    Args:
        df: the table as read.
        time_column: the time stamps.
        value_columns: the input series (the target is added when absent).
        target_column: the series to forecast.
        window_spec: window, horizon, stride (default ``WindowSpec()``).
        val_fraction, test_fraction: shares of windows, newest last.
        fill: ``"forward"`` or ``"linear"`` (see the module docstring).
        windows: the blocks chosen by the caller (window indexes in time order, as
            ``split_by_time`` gives them), e.g. a cross-validation fold's expanding training
            block; replaces both fractions. ``None``: ``split_by_time``.

    Returns:
        A ``PreparedSeries``; scaling is fitted on the rows of the training windows only.

    Raises:
        DataError: unusable columns, times or values, too few rows for the windows, bad fractions.
    """
    spec = window_spec or WindowSpec()
    columns = list(dict.fromkeys([*value_columns, target_column]))
    profile = profile_series(df, time_column, columns, fill=fill)
    spec.check_rows(profile.n_steps)
    ends = spec.end_positions(profile.n_steps)
    split = split_by_time(ends, val_fraction, test_fraction, spec) if windows is None else windows
    if not split.train.size:
        raise DataError("No training windows are left before the validation windows: use fewer "
                        "cross-validation folds or a longer history.")
    train_rows = int(ends[split.train[-1]] + spec.horizon + 1)  # inputs and targets of training
    pre = SeriesPreprocessor(fill=fill).fit(
        df, time_column, columns, target_column, train_rows=train_rows, step=profile.step
    )
    pre.set_window(spec.window, spec.horizon)
    frame = pre.regularise(df)
    values = pre.transform(df)  # (N, F)
    X, y, ends = make_windows(values, pre.target_index, spec)
    y = pre.encode_change(X, y)  # the model learns the change from the last known value
    grid_times = frame[time_column].to_numpy().astype("datetime64[ns]")
    target_times = grid_times[ends[:, None] + np.arange(1, spec.horizon + 1)]  # (M, horizon)
    parts = {"train": split.train, "val": split.val, "test": split.test}
    logger.info(
        "Prepared %d training, %d validation and %d test windows (%d dropped at the cuts)",
        split.train.size, split.val.size, split.test.size, split.dropped,
    )
    return PreparedSeries(
        preprocessor=pre,
        profile=profile,
        spec=spec,
        X_train=X[parts["train"]], y_train=y[parts["train"]],
        X_val=X[parts["val"]], y_val=y[parts["val"]],
        X_test=X[parts["test"]], y_test=y[parts["test"]],
        end_train=ends[parts["train"]], end_val=ends[parts["val"]], end_test=ends[parts["test"]],
        times_train=target_times[parts["train"]],
        times_val=target_times[parts["val"]],
        times_test=target_times[parts["test"]],
        times=grid_times,
        target_values=frame[target_column].to_numpy(dtype=np.float64),
        input_shape=(spec.window, pre.n_features),
        n_outputs=spec.horizon,
        dropped=split.dropped,
    )
