"""The time-series panel of the Data page: the time column, the column to forecast, the window.

What the time column says (its step, gaps, odd and duplicated time stamps) comes from
``builder.data.timeseries.profile_series``; the window settings are checked by preparing the data
exactly as training will (``prepare_data``), so a choice the page accepts is one training accepts.
Both are cached per saved file and choice.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from builder.data import DataSpec, TableProfile
from builder.data.profile import date_columns
from builder.data.sources import prepare_data
from builder.data.timeseries import FILL_WORDS, MIN_WINDOWS, SeriesProfile, WindowSpec, describe_step, profile_series
from builder.errors import BuilderError, DataError
from pages.components.data_view import choices_placeholder, data_key, saved_for
from pages.components.i18n import t, tcount, tm
from pages.components.state import AppState
from pages.components.ui import COLOURS

MAX_DEFAULT_WINDOW = 96  # longer windows train slowly on a CPU; the user can still type more
MAX_WINDOWS = 20_000  # more windows than this: a default stride above 1 keeps training quick
FILL_LABELS = {"forward": "Repeat the last value", "linear": "Straight line between neighbours"}


# --- choices from the profile (pure, unit-tested) ------------------------------------------------------


def time_columns_first(profile: TableProfile) -> list[str]:
    """Every column, date-like ones first (each group in table order): the only date column, the
    one ``find_time_column`` takes for the CLI, is preselected."""
    dates = date_columns(profile)
    return dates + [c.name for c in profile.columns if c.name not in dates]


def value_columns(profile: TableProfile, time_column: str) -> list[str]:
    """The number columns that can be forecast or used as extra values."""
    return [c.name for c in profile.columns
            if c.kind == "numeric" and c.name != time_column and not c.constant]


def suggest_window(n_steps: int, season: int | None, val_fraction: float = 0.15,
                   test_fraction: float = 0.15, horizon: int = 1) -> WindowSpec:
    """A window that sees a few natural cycles (4, 2 or 1 season) and still leaves enough examples.

    Without a season: 4 weeks' worth of days, 2 weeks, ... down to 2 steps. The largest candidate
    that leaves at least twice ``MIN_WINDOWS`` training windows wins; else the largest that leaves
    ``MIN_WINDOWS``; else 2. Very long series get a stride so at most ``MAX_WINDOWS`` windows remain.
    """
    train_share = max(0.05, 1.0 - val_fraction - test_fraction)
    seasonal = [4 * season, 2 * season, season] if season else []
    candidates = [w for w in dict.fromkeys([*seasonal, 28, 14, 7, 4, 2]) if 2 <= w <= MAX_DEFAULT_WINDOW]

    def training_windows(window: int) -> float:
        return WindowSpec(window, horizon).n_windows(n_steps) * train_share - horizon

    window = next((w for w in candidates if training_windows(w) >= 2 * MIN_WINDOWS),
                  next((w for w in candidates if training_windows(w) >= MIN_WINDOWS), 2))
    count = WindowSpec(window, horizon).n_windows(n_steps)
    return WindowSpec(window, horizon, max(1, math.ceil(count / MAX_WINDOWS)))


# --- cached engine calls -----------------------------------------------------------------------------


@st.cache_resource(show_spinner=False, max_entries=16)
def _profile(key: str, time_column: str, columns: tuple[str, ...], fill: str, _df) -> SeriesProfile:
    return profile_series(_df, time_column, list(columns), fill=fill)


def series_profile(state: AppState, time_column: str, columns: list[str], fill: str = "forward") -> SeriesProfile:
    """The profile of the series (cached per saved file and choice).

    Raises:
        DataError: the time column holds no dates, a value column no numbers...
    """
    with st.spinner(t("Reading the time column...")):
        return _profile(data_key(state), time_column, tuple(columns), fill, state.df)


def series_step(state: AppState, spec: DataSpec) -> dict | None:
    """The series' regular step (``{"nanoseconds": n}`` or ``{"months": k}``), or ``None``."""
    try:
        columns = list(dict.fromkeys([*spec.features, spec.target]))
        return series_profile(state, spec.options["time_column"], columns, spec.option("fill", "forward")).step
    except (BuilderError, KeyError):
        return None


@dataclass(frozen=True)
class SeriesPreview:
    """The regular series and where its training, validation and test windows end."""

    times: np.ndarray  # (N,) datetime64 of the regular grid
    values: np.ndarray  # (N,) the column to forecast, gaps filled, original units
    ends: dict[str, np.ndarray]  # "train"/"val"/"test" -> (M,) last input row of each window
    window: int
    horizon: int


@st.cache_resource(show_spinner=False, max_entries=4)
def _preview(key: str, spec_json: str, val: float, test: float, seed: int, _df) -> SeriesPreview:
    spec = DataSpec.from_dict(json.loads(spec_json))
    prepared = prepare_data(_df, spec, val, test, seed)
    return SeriesPreview(times=prepared.times, values=prepared.target_values,
                         ends={s: prepared.ends(s) for s in ("train", "val", "test")},
                         window=int(spec.options["window"]), horizon=int(spec.options["horizon"]))


def series_preview(state: AppState, spec: DataSpec) -> SeriesPreview:
    """Prepare the series as training will (cached).

    Raises:
        DataError: too few rows for the window, bad shares...: the message says what to change.
    """
    config = state.config
    with st.spinner(t("Cutting the series into windows...")):
        return _preview(data_key(state), json.dumps(spec.to_dict(), sort_keys=True), config.val_fraction,
                        config.test_fraction, config.seed, state.df)


# --- pictures ----------------------------------------------------------------------------------------


def window_figure(preview: SeriesPreview, target: str) -> go.Figure:
    """One training window on the real series: the past the model sees, then the steps it forecasts."""
    end = int(preview.ends["train"][-1])  # the newest training window
    start, stop = end - preview.window + 1, end + preview.horizon
    context = max(preview.window // 2, preview.horizon, 4)
    lo, hi = max(0, start - context), min(len(preview.times) - 1, stop + context)
    times, values = preview.times, preview.values
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=times[lo:hi + 1], y=values[lo:hi + 1], name=f"'{target}'", mode="lines",
                             line=dict(color=COLOURS["baseline"], width=1.5), hovertemplate="%{y:.4g}"))
    fig.add_trace(go.Scatter(x=times[start:end + 1], y=values[start:end + 1], mode="lines+markers",
                             name=t("What the model sees ({n} steps)", n=preview.window),
                             line=dict(color=COLOURS["train"], width=3), marker=dict(size=5),
                             hovertemplate="%{y:.4g}"))
    fig.add_trace(go.Scatter(x=times[end:stop + 1], y=values[end:stop + 1], mode="lines+markers",
                             name=t("What it forecasts ({steps})", steps=tcount(preview.horizon, "step")),
                             line=dict(color=COLOURS["validation"], width=3, dash="dot"), marker=dict(size=8),
                             hovertemplate="%{y:.4g}"))
    for first, last, colour in ((start, end, COLOURS["train"]), (end + 1, stop, COLOURS["validation"])):
        fig.add_vrect(x0=times[first], x1=times[last], fillcolor=colour, opacity=0.08, line_width=0)
    fig.update_layout(template="plotly_white", height=260, margin=dict(l=10, r=10, t=30, b=10),
                      hovermode="x unified", legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))
    fig.update_yaxes(title_text=target)
    return fig


def split_sentence(preview: SeriesPreview) -> str:
    """Which dates each block forecasts, oldest first: the split is by time, never shuffled."""
    parts = []
    for name, part in (("train", "learns from {first} to {last} ({n:,} windows)"),
                       ("val", "is tuned on {first} to {last} ({n:,} windows)"),
                       ("test", "is tested on {first} to {last} ({n:,} windows)")):
        ends = preview.ends[name]
        if ends.size:
            first = np.datetime_as_string(preview.times[ends[0] + 1], unit="D")
            last = np.datetime_as_string(preview.times[ends[-1] + preview.horizon], unit="D")
            parts.append(t(part, first=first, last=last, n=ends.size))
    return t("The split is by time, never shuffled: the model {parts}. Like a real forecast, it is always "
             "judged on a future it has not seen.", parts=t(", ").join(parts))


# --- the panel -------------------------------------------------------------------------------------


def _messages(profile: SeriesProfile) -> None:
    with st.container(border=True):
        st.markdown(f"**{t('What the time column says')}**")
        for message in profile.messages:
            calm = message.startswith(("One value every", "No gaps", "Suggested season", "No natural season"))
            st.markdown(f"{':material/check_circle:' if calm else ':material/warning:'} {tm(message)}")


def _number(place, label: str, value: int, key: str, low: int, help_text: str, step: dict) -> int:
    number = place.number_input(label, min_value=low, value=max(low, int(value)), step=1, key=key, help=help_text)
    place.caption(f"= {tm(describe_step(step, int(number)))}")
    return int(number)


def series_panel(state: AppState, profile: TableProfile, suffix: str) -> tuple[DataSpec | None, dict[str, str]]:
    """Time column, column to forecast, extra values and the window; the spec (``None`` if unusable)."""
    saved = saved_for(state, "series")
    options = saved.options if saved else {}
    times = time_columns_first(profile)
    when, what, extra = st.columns(3, gap="medium")
    time_column = when.selectbox(
        t("The time column"), times, key=f"data_time_{suffix}",
        index=times.index(options["time_column"]) if options.get("time_column") in times else 0,
        help=t("The date or time of each row. Columns that look like dates are listed first."))
    values = value_columns(profile, time_column)
    if not values:
        st.error(t("No column besides '{column}' holds numbers, so there is nothing to forecast. Choose a "
                   "table with a column of numbers measured over time.", column=time_column),
                 icon=":material/error:")
        return None, {time_column: "Time"}
    target = what.selectbox(t("The column to forecast"), values, key=f"data_forecast_{suffix}_{time_column}",
                            index=values.index(saved.target) if saved and saved.target in values else 0,
                            help=t("The numbers the model should predict for the coming steps."))
    others = [v for v in values if v != target]
    extras = extra.multiselect(t("Other value columns (optional)"), others, key=f"data_extras_{suffix}_{target}",
                               default=[f for f in (saved.features if saved else []) if f in others],
                               placeholder=choices_placeholder(others), disabled=not others,
                               help=t("Other numbers measured at the same times that may help, e.g. the "
                                      "temperature or a price. The model sees their past, never their future."))
    roles = {time_column: "Time", target: "Forecast", **{e: "Input" for e in extras}}
    fill_key = f"data_fill_{suffix}"
    fill = st.session_state.get(fill_key, options.get("fill", "forward"))
    try:
        profile_ts = series_profile(state, time_column, [target, *extras], fill)
    except DataError as exc:
        st.error(tm(exc), icon=":material/error:")
        return None, roles
    _messages(profile_ts)
    suggested = suggest_window(profile_ts.n_steps, profile_ts.suggested_season,
                               state.config.val_fraction, state.config.test_fraction)
    same = options.get("time_column") == time_column
    w, h, s, f = st.columns(4, gap="medium")
    key = f"{suffix}_{time_column}"
    step = profile_ts.step
    window = _number(w, t("Past steps seen (window)"), (options.get("window") if same else None) or suggested.window,
                     f"data_window_{key}", 2, t("How far back the model looks for each forecast. A few "
                                                "natural cycles (e.g. 4 weeks of days) usually work well."), step)
    horizon = _number(h, t("Steps ahead (horizon)"), (options.get("horizon") if same else None) or suggested.horizon,
                      f"data_horizon_{key}", 1, t("How many steps ahead the model predicts at once."), step)
    stride = _number(s, t("Steps between examples (stride)"),
                     (options.get("stride") if same else None) or suggested.stride, f"data_stride_{key}", 1,
                     t("1 makes a training example at every step; larger values make fewer examples and train "
                       "faster."), step)
    # No tooltip here: it would open over the gaps it explains, in the box just above.
    f.selectbox(t("Fill gaps by"), list(FILL_WORDS), key=fill_key, index=list(FILL_WORDS).index(fill),
                format_func={k: t(v) for k, v in FILL_LABELS.items()}.get)
    f.caption(t("Missing steps and empty values are filled before training, the same way as when the model "
                "predicts."))
    spec = DataSpec(target, "forecast", [target, *extras], kind="series",
                    options={"time_column": time_column, "window": window, "horizon": horizon,
                             "stride": stride, "fill": fill})
    try:
        preview = series_preview(state, spec)
    except DataError as exc:
        st.error(tm(exc), icon=":material/error:")
        return None, roles
    st.plotly_chart(window_figure(preview, target), key="data_window_picture")
    st.info(split_sentence(preview), icon=":material/schedule:")
    return spec, roles
