"""The Decide part of the Evaluate page: from a scored test set to decisions.

Three parts, each drawn from the run itself (``trained.test_results``), the numbers from
``builder.decide``:

* **Choose the operating point** (yes/no models): a threshold slider scored on the VALIDATION rows
  (a threshold picked on the test rows would flatter the test score), the cheapest and the best-F1
  thresholds as one-click suggestions, "Use this threshold" to store it in the model, and the
  ROC, precision-recall, gain/lift and calibration curves of the TEST rows.
* **Metrics by segment** (tables): the headline metric per value or range of one input column,
  clearly weaker segments highlighted.
* **See the rows behind a number**: the kept test rows of one cell of the confusion matrix, or the
  largest errors of a regression model.

Entry point: ``decide_section(state)``.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from builder import decide
from builder.data.preprocess import label_value
from builder.errors import BuilderError
from builder.evaluate import METRICS, confusion
from builder.trained import TrainedModel
from builder.wording import count
from pages.components import charts
from pages.components.decide_charts import (
    calibration_figure,
    calibration_reading,
    gain_figure,
    lift_figure,
    pr_figure,
    roc_figure,
)
from pages.components.evaluate_view import GRID_COLUMNS, THUMB_SIDE, _thumbnail
from pages.components.state import AppState
from pages.components.ui import COLOURS, user_errors

SLIDER_RANGE = (0.01, 0.99)  # the threshold slider; the model itself needs 0 < t < 1
DEFAULT_COSTS = (1.0, 1.0)  # a false alarm, a missed case: equal costs = the fewest mistakes
PER_ROWS = 1_000  # savings are told per this many rows
TOP_SHARE = 0.10  # the gain reading: "checking the top 10% of rows finds ..."
WORST_ROWS = (5, 50, 10)  # regression: fewest, most and default rows with the largest errors
SEGMENT_MIN_ROWS = 10  # a segment is judged from this many rows (builder.decide's default)
WEAK_FILL = "background-color: #FCE8E6"  # a clearly weaker segment's row in the table
TASKS = ("binary", "multiclass", "regression")  # models with an answer per row
KIND_ITEMS = {"images": "images", "text": "texts"}

_SAVE_LOCK = threading.Lock()  # Streamlit's fast reruns can run two callbacks of a session at once
SAVED_KEY = "decide_threshold_saved"  # the message after "Use this threshold", shown once
ERROR_KEY = "decide_threshold_error"


def decide_section(state: AppState) -> None:
    """The three Decide parts for the session's model; parts that do not apply say so in a caption."""
    trained = state.trained
    if trained is None:
        return
    if trained.task not in TASKS:
        st.caption("Thresholds, segments and the rows behind a number apply to models that predict a class "
                   "or a number for each row.")
        return
    if not (trained.test_results or {}).get("actual"):
        st.info("This run kept no test rows to decide with. Train it again to choose a threshold and see "
                "segments.", icon=":material/info:")
        return
    with user_errors():
        operating_point(state)
    with user_errors():
        segments_part(state)
    with user_errors():
        rows_behind(state)


# --- choose the operating point ----------------------------------------------------------------------


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _amount(value: float) -> str:
    """A cost as people write it: 1,250 / 37 / 4.2 / 0.35."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2g}" if abs(value) < 10 else f"{value:.0f}"


def _on_slider(threshold: float) -> float:
    """A threshold the slider can show (it runs from 0.01 to 0.99)."""
    low, high = SLIDER_RANGE
    return float(min(max(threshold, low), high))


def _move(key: str, threshold: float) -> None:
    st.session_state[key] = threshold


def _cost(point: decide.ThresholdPoint, costs: tuple[float, float]) -> float:
    return costs[0] * point.fp + costs[1] * point.fn


def use_threshold(state: AppState, key: str, reasons: list[tuple[float, str]], actual: list,
                  probability: np.ndarray, positive: Any) -> None:
    """Button callback: store the slider's threshold in the model, re-save the run, mark the bundle stale.

    Args:
        reasons: ``(threshold, words)`` of the suggestions shown; the words say where it was chosen
            when the slider stands on one of them ("on the validation rows for the best F1 score").
    """
    with _SAVE_LOCK:
        threshold = float(st.session_state[key])
        chosen = next((why for t, why in reasons if math.isclose(t, threshold, abs_tol=1e-12)), None)
        if chosen is None:
            point = decide.at_threshold(actual, probability, threshold, positive)
            chosen = (f"by hand on the validation rows (precision {_pct(point.precision)}, "
                      f"recall {_pct(point.recall)} there)")
        pre = state.trained.preprocessor
        before = (pre.decision_threshold, pre.decision_threshold_chosen)
        try:
            pre.set_decision_threshold(threshold, chosen=chosen)
            if state.run_id:
                state.workspace.update_run(state.trained, state.run_id)
                state.workspace.save_state("bundle", None)  # a bundle built before has the old threshold
            state.exported = False
        except BuilderError as exc:
            pre.set_decision_threshold(before[0], chosen=before[1])  # memory stays as saved
            st.session_state[ERROR_KEY] = str(exc)
            return
        st.session_state[SAVED_KEY] = (
            f"The model now answers **{positive}** when its probability is above **{threshold:g}**. The Predict "
            "page, the export and the model card use this threshold from now on; export the model again to get "
            "a bundle with it.")


def operating_point(state: AppState) -> None:
    """Binary models: the threshold slider on the validation rows, suggestions, "Use", and the test curves."""
    trained = state.trained
    if trained.task != "binary":
        if trained.task == "multiclass":
            st.caption(f":material/tune: No threshold to choose: that is for yes/no models, and this one chooses "
                       f"among {len(trained.preprocessor.classes)} classes, answering the most likely one.")
        else:
            st.caption(":material/tune: No threshold to choose: this model predicts a number, not yes or no.")
        return
    st.subheader("Choose the operating point")
    pre = trained.preprocessor
    classes = list(pre.classes)
    negative, positive = (str(c) for c in classes)
    val = (trained.test_results or {}).get("val") or {}
    if not val.get("probabilities"):
        st.info("This run kept no validation probabilities to choose a threshold on. Train it again.",
                icon=":material/info:")
        return
    actual, probability, pos = decide.binary_inputs(val, classes)
    n_val = len(actual)
    st.caption(f"The model answers **{positive}** when its probability is above the threshold. Try thresholds "
               f"on the {n_val:,} validation rows: thresholds are never picked on the test rows, so the test "
               "scores above stay an honest estimate of new data.")
    if message := st.session_state.pop(SAVED_KEY, None):
        st.success(message, icon=":material/check_circle:")
    if message := st.session_state.pop(ERROR_KEY, None):
        st.error(f"The threshold could not be saved: {message}", icon=":material/error:")

    current = float(pre.decision_threshold)
    key = f"decide_threshold_{state.run_id}"
    if key not in st.session_state:
        st.session_state[key] = _on_slider(current)
    low, high = SLIDER_RANGE
    threshold = float(st.slider(
        f"Threshold: answer {positive} above", low, high, step=0.01, format="%g", key=key,
        help=f"Lower it to find more of the {positive} rows at the price of more false alarms; raise it for "
             "fewer false alarms and more missed cases. Scored on the validation rows."))
    chosen = pre.decision_threshold_chosen
    st.caption(f"The model's threshold now: **{current:g}**"
               + (f", chosen {chosen}." if chosen else " (the default: the more likely class wins)."))

    point = decide.at_threshold(actual, probability, threshold, pos)
    now = decide.at_threshold(actual, probability, current, pos)
    _threshold_numbers(point, now, current, negative, positive, n_val)
    test_actual, test_probability, _ = decide.binary_inputs(trained.test_results, classes)
    on_test = decide.at_threshold(test_actual, test_probability, threshold, pos)
    st.caption(f"Its effect on the {len(test_actual):,} test rows: precision {_pct(on_test.precision)}, "
               f"recall {_pct(on_test.recall)}, F1 {_pct(on_test.f1)}, {count(on_test.fp, 'false alarm')} and "
               f"{on_test.fn:,} missed.")

    reasons = _suggestions(key, actual, probability, pos, threshold, current, now, positive)
    if state.workspace.read_only:
        st.caption(":material/visibility: This is a view-only link: try thresholds here; only the workspace's "
                   "owner can change the model's threshold.")
    else:
        st.button("Use this threshold", type="primary", icon=":material/done:", key="decide_use",
                  disabled=math.isclose(threshold, current, abs_tol=1e-12),
                  on_click=use_threshold, args=(state, key, reasons, actual, probability, pos),
                  help=f"Store {threshold:g} in the model and re-save the run: the Predict page, the export and "
                       "the model card then use it. Greyed out while the slider stands on the model's threshold.")
    _curves(trained, classes, on_test, negative, positive)


def _threshold_numbers(point: decide.ThresholdPoint, now: decide.ThresholdPoint, current: float,
                       negative: str, positive: str, n_val: int) -> None:
    """Precision, recall and F1 as cards (against the model's threshold), the counts as a 2x2 table."""
    left, right = st.columns([3, 2], gap="large")
    with left:
        cards = st.columns(3)
        same = math.isclose(point.threshold, current, abs_tol=1e-12)
        for card, (label, value, before, help_text) in zip(cards, (
            ("Precision", point.precision, now.precision,
             f"Of the validation rows the model flags as {positive}, the share that really are."),
            ("Recall", point.recall, now.recall,
             f"Of the validation rows that really are {positive}, the share the model flags."),
            ("F1", point.f1, now.f1, "The balance of precision and recall: high only when both are."),
        ), strict=True):
            delta = None if same else f"{(value - before) * 100:+.1f} points vs {current:g}"
            card.metric(label, _pct(value), delta=delta, help=help_text, border=True)
        st.caption(f"{count(point.tp, f'{positive} row')} found and {point.fn:,} missed; "
                   f"{count(point.fp, 'false alarm')} and {count(point.tn, 'row')} rightly left as {negative}. {_pct(point.flagged_share)} of the {n_val:,} "
                   "validation rows are flagged.")
    with right:
        table = pd.DataFrame([[point.tn, point.fp], [point.fn, point.tp]],
                             index=[f"Really {negative}", f"Really {positive}"],
                             columns=[f"Model says {negative}", f"Model says {positive}"])
        st.dataframe(table, width="stretch", key="decide_counts")
        st.caption("Validation rows at this threshold: the diagonal is right, the rest are mistakes.")


def _suggestions(key: str, actual: list, probability: np.ndarray, positive_class: Any, threshold: float,
                 current: float, now: decide.ThresholdPoint, positive: str) -> list[tuple[float, str]]:
    """The best-F1 and the cheapest thresholds with a button each; returns ``(threshold, words)`` of both."""
    reasons: list[tuple[float, str]] = []
    best_col, cost_col = st.columns(2, gap="large")
    with best_col.container(border=True):
        st.markdown("**Best balance (F1)**")
        try:
            best = decide.best_f1_threshold(actual, probability, positive_class)
        except BuilderError as exc:
            st.caption(str(exc))
        else:
            target = _on_slider(best.threshold)
            st.markdown(f"Best F1: **{best.threshold:g}** (F1 {_pct(best.f1)} on the validation rows, against "
                        f"{_pct(now.f1)} at {current:g}).")
            st.button(f"Move the slider to {target:g}", key="decide_to_f1", on_click=_move, args=(key, target),
                      disabled=math.isclose(target, threshold, abs_tol=1e-12), icon=":material/balance:")
            reasons.append((target, "on the validation rows for the best F1 score"))
    with cost_col.container(border=True):
        st.markdown("**Lowest cost of mistakes**")
        left, right = st.columns(2)
        costs = (
            float(left.number_input("Cost of a false alarm", min_value=0.0, value=DEFAULT_COSTS[0], step=1.0, format="%g",
                                    key="decide_cost_fp",
                                    help=f"What it costs when the model flags a row that is not {positive}, "
                                         "e.g. the time to check it. Any unit, as long as both use the same.")),
            float(right.number_input("Cost of a missed case", min_value=0.0, value=DEFAULT_COSTS[1], step=1.0, format="%g",
                                     key="decide_cost_fn",
                                     help=f"What it costs when the model misses a real {positive} row, e.g. a "
                                          "lost customer or an undetected fault.")),
        )
        try:
            cheapest = decide.cheapest_threshold(actual, probability, positive_class, *costs)
        except BuilderError as exc:
            st.caption(str(exc))
            return reasons
        saved = (_cost(now, costs) - cheapest.cost) / len(actual) * PER_ROWS
        if saved > 1e-9:
            text = (f"Cheapest threshold: **{cheapest.threshold:g}** (saves {_amount(saved)} per "
                    f"{PER_ROWS:,} rows against {current:g})")
        else:
            text = f"Cheapest threshold: **{cheapest.threshold:g}** (no cheaper than {current:g} on these rows)"
        st.markdown(f"{text}; it costs {_amount(cheapest.cost / len(actual) * PER_ROWS)} per {PER_ROWS:,} "
                    "validation rows.")
        target = _on_slider(cheapest.threshold)
        st.button(f"Move the slider to {target:g}", key="decide_to_cost", on_click=_move, args=(key, target),
                  disabled=math.isclose(target, threshold, abs_tol=1e-12), icon=":material/savings:")
        reasons.insert(0, (target, f"on the validation rows for the lowest cost (false alarm {costs[0]:g}, "
                                   f"missed case {costs[1]:g})"))
    return reasons


# --- the curves of the test rows ----------------------------------------------------------------------


def _curves(trained: TrainedModel, classes: list, on_test: decide.ThresholdPoint, negative: str,
            positive: str) -> None:
    st.markdown("**How well the model ranks the test rows**")
    try:
        curves = decide.binary_curves(*decide.binary_inputs(trained.test_results, classes))
    except BuilderError as exc:
        st.caption(f"No curves: {exc}")
        return
    st.caption(f"Drawn on the {curves.rows:,} test rows ({curves.positives:,} of them {positive}); the validation "
               "rows chose the threshold. The dot marks the slider's threshold.")
    roc, pr, gain, calibration = st.tabs(["ROC", "Precision and recall", "Gain and lift", "Calibration"])
    with roc:
        st.plotly_chart(roc_figure(curves, on_test, negative, positive), key="decide_roc")
        st.caption(f"AUC {curves.auc:.3f}: a random {positive} row gets a higher probability than a random "
                   f"{negative} row {curves.auc:.0%} of the time (50% is guessing, 100% perfect).")
    with pr:
        st.plotly_chart(pr_figure(curves, on_test, positive), key="decide_pr")
        st.caption(f"Average precision {curves.average_precision:.3f}, against {curves.base_rate:.3f} for flagging "
                   f"rows at random: the longer the curve stays high, the more {positive} rows can be found "
                   "before false alarms pile up.")
    with gain:
        left, right = st.columns(2)
        left.plotly_chart(gain_figure(curves, positive), key="decide_gain")
        right.plotly_chart(lift_figure(curves), key="decide_lift")
        top = int(round(TOP_SHARE * 100))
        st.caption(f"Checking the top {top}% of rows by probability finds {curves.gain_found[top]:.0%} of the "
                   f"{positive} rows, {curves.lift[top - 1]:.1f} times as many as checking rows at random.")
    with calibration:
        st.plotly_chart(calibration_figure(curves, positive), key="decide_calibration")
        st.caption(calibration_reading(curves, positive))


# --- metrics by segment ---------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=64)
def _cached_segments(run_key: tuple, column: str, _trained: TrainedModel) -> decide.SegmentTable:
    # Keyed by the run (workspace folder, run id, training time) and the column: a run's test results
    # never change after training, so the table is computed once per column, not on every rerun.
    return _segments(_trained, column)


def _segments(trained: TrainedModel, column: str) -> decide.SegmentTable:
    results = trained.test_results
    return decide.segment_metrics(trained.task, results["actual"], results["predicted"], results["rows"][column],
                                  probabilities=results.get("probabilities"), classes=trained.preprocessor.classes,
                                  min_rows=SEGMENT_MIN_ROWS, column=column)


def _default_column(rows: dict[str, list]) -> int:
    """The first column with a handful of values of enough rows each (a region, a plan), else the first
    with many values (cut into ranges), else the first column."""
    counts = [pd.Series([str(v) for v in values]).value_counts() for values in rows.values()]
    for i, per_value in enumerate(counts):
        if 2 <= len(per_value) <= 12 and per_value.min() >= SEGMENT_MIN_ROWS:
            return i
    return next((i for i, per_value in enumerate(counts) if len(per_value) > 20), 0)  # builder.decide bins from 21


def segments_part(state: AppState) -> None:
    trained = state.trained
    st.subheader("Metrics by segment")
    results = trained.test_results
    rows = results.get("rows")
    if trained.kind != "table" or not rows:
        what = KIND_ITEMS.get(trained.kind)
        st.caption(f"Segments split the test rows by an input column; this model reads {what}, so there are none."
                   if what else "This run kept no input columns of its test rows to split by. Train it again.")
        return
    columns = list(rows)
    column = st.selectbox("Split the test rows by", columns, index=_default_column(rows),
                          key=f"decide_segment_column_{state.run_id}",
                          help="Each value of the column (or range, for numbers with many values) is one segment; "
                               f"segments of fewer than {SEGMENT_MIN_ROWS} rows are shown but not judged.")
    if state.run_id:
        run_key = (str(state.workspace.root), state.run_id, str(trained.info.get("trained_at")))
        table = _cached_segments(run_key, column, trained)
    else:
        table = _segments(trained, column)
    info = METRICS[table.metric]
    points = info.unit == "points"
    scale = 100.0 if points else 1.0
    whole = table.overall.get(table.metric)
    frame = segment_frame(table)
    label = info.label
    styled = frame.style.apply(lambda row: [WEAK_FILL if row["Clearly weaker"] else "" for _ in row], axis=1)
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.dataframe(styled, hide_index=True, width="stretch", key="decide_segments", column_config={
            label: st.column_config.NumberColumn(label, format="%.1f%%" if points else "%.4g", help=info.help),
            "Difference to all rows": st.column_config.NumberColumn(
                format="%+.1f points" if points else "%+.4g",
                help="The segment's score minus the score on all rows" + (
                    ": below 0 is worse." if info.higher_is_better else ": above 0 is worse.")),
            "Why": st.column_config.TextColumn(width="large"),
        })
    with right:
        st.plotly_chart(segment_figure(table, scale), key="decide_segment_chart")
    which = (f"the first {table.rows:,} test rows kept with the run" if table.rows < len(results["actual"])
             else f"the {table.rows:,} test rows")
    ranges = f" '{column}' has many values, so it is cut into ranges of about equal rows." if table.binned else ""
    whole_text = f"{info.label} on all of them: {whole * scale:.1f}%." if points else \
        f"{info.label} on all of them: {whole:.4g}."
    st.caption(f"Scored on {which}. {whole_text}{ranges}")
    if table.weak:
        st.warning(table.summary, icon=":material/warning:")
    else:
        st.caption(f":material/check: {table.summary}")


def segment_frame(table: decide.SegmentTable) -> pd.DataFrame:
    """Segment, rows, the headline metric (in % for accuracy), the difference to all rows, weaker, why."""
    info = METRICS[table.metric]
    scale = 100.0 if info.unit == "points" else 1.0
    whole = table.overall.get(table.metric)
    records = []
    for segment in table.segments:
        value = segment.metrics.get(table.metric)
        known = value is not None and whole is not None and math.isfinite(value)
        records.append({"Segment": segment.label, "Rows": segment.rows,
                        info.label: value * scale if known else None,
                        "Difference to all rows": (value - whole) * scale if known else None,
                        "Clearly weaker": segment.weak, "Why": segment.reason})
    return pd.DataFrame(records, columns=["Segment", "Rows", info.label, "Difference to all rows",
                                          "Clearly weaker", "Why"])


def _metric_text(value: float, suffix: str) -> str:
    return f"{value:.1f}%" if suffix else f"{value:.4g}"


def segment_figure(table: decide.SegmentTable, scale: float) -> go.Figure:
    """The headline metric per segment as bars (clearly weaker ones red), all rows as a dashed line."""
    info = METRICS[table.metric]
    values = [(s.metrics.get(table.metric) or 0.0) * scale for s in table.segments]
    suffix = "%" if scale != 1.0 else ""
    fig = charts._layout(go.Figure(), "", f"{info.label} ({'higher' if info.higher_is_better else 'lower'} is better)")
    fig.add_trace(go.Bar(
        x=[s.label for s in table.segments], y=values, name="Segment", showlegend=False,
        marker=dict(color=[COLOURS["bad"] if s.weak else COLOURS["model"] for s in table.segments]),
        customdata=[s.rows for s in table.segments],
        hovertemplate=f"%{{x}}: %{{y:{'.1f' if suffix else '.4g'}}}{suffix} on %{{customdata}} rows<extra></extra>"))
    whole = table.overall.get(table.metric)
    if whole is not None:
        line = dict(color=COLOURS["baseline"], dash="dash", width=1.5)
        fig.add_hline(y=whole * scale, line=line)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=line,  # the line's legend entry
                                 name=f"All rows: {_metric_text(whole * scale, suffix)}"))
    fig.update_layout(hovermode="closest", showlegend=True)
    fig.update_xaxes(type="category")
    if suffix:
        fig.update_yaxes(ticksuffix="%")
    return fig


# --- the rows behind a number -----------------------------------------------------------------------------


def _keys(values: Any) -> np.ndarray:
    """Labels as comparable text (1, 1.0 and "1" alike), as the engine compares them."""
    return np.asarray([str(label_value(v)) for v in values], dtype=object)


def _free_name(name: str, taken: Any) -> str:
    while name in taken:
        name += " "
    return name


def biggest_mistake(counts: np.ndarray) -> tuple[int, int]:
    """(true, predicted) class positions of the largest off-diagonal cell; the first class when none."""
    off = np.asarray(counts, dtype=np.int64).copy()
    np.fill_diagonal(off, -1)
    if off.size == 0 or off.max() <= 0:
        return 0, 0
    i, j = np.unravel_index(int(np.argmax(off)), off.shape)
    return int(i), int(j)


def rows_behind(state: AppState) -> None:
    trained = state.trained
    st.subheader("See the rows behind a number")
    if trained.task == "regression":
        _largest_errors(state)
        return
    results = trained.test_results
    classes = list(trained.preprocessor.classes)
    labels = [str(c) for c in classes]
    matrix = confusion(results["actual"], results["predicted"], classes)
    i, j = biggest_mistake(matrix.counts)
    items = KIND_ITEMS.get(trained.kind, "rows")
    st.caption(f"Pick a cell of the confusion matrix to see its test {items}: by default the biggest mix-up.")
    left, right = st.columns(2)
    really = left.selectbox("Really", labels, index=i, key=f"decide_cell_actual_{state.run_id}",
                            help=f"The true class of the test {items}.")
    said = right.selectbox("The model said", labels, index=j, key=f"decide_cell_predicted_{state.run_id}",
                           help="The class the model answered.")
    a, p = labels.index(really), labels.index(said)
    count = int(matrix.counts[a, p])
    if np.trace(matrix.counts) == matrix.counts.sum():
        st.caption(f"The model got all the test {items} right: there is no mix-up to look at, only the classes.")
    st.markdown(f"**{count:,}** test {items} are really **{really}** and the model said **{said}**.")
    if trained.kind in ("images", "text"):
        _kept_mistakes(trained, classes[a], classes[p], a == p)
    else:
        _cell_rows(trained, classes, a, p, count)
    if trained.task == "binary" and getattr(trained.preprocessor, "decision_threshold_chosen", None):
        st.caption("These are the answers the model gave when the run was evaluated; a threshold chosen since "
                   "applies to its predictions from now on.")


def _cell_rows(trained: TrainedModel, classes: list, a: int, p: int, count: int) -> None:
    """Tables: the kept raw test rows of one cell, the most confident answers first."""
    results = trained.test_results
    rows = pd.DataFrame(results.get("rows") or {})
    if rows.empty:
        st.caption("This run kept no input columns of its test rows. Train it again to see them.")
        return
    n = len(rows)
    actual, predicted = _keys(results["actual"][:n]), _keys(results["predicted"][:n])
    positions = np.flatnonzero((actual == str(label_value(classes[a]))) & (predicted == str(label_value(classes[p]))))
    front = {_free_name("Really", rows.columns): [str(v) for v in np.asarray(results["actual"], dtype=object)[positions]],
             _free_name("Model said", rows.columns): [str(v) for v in
                                                      np.asarray(results["predicted"], dtype=object)[positions]]}
    proba = results.get("probabilities")
    probability_column = None
    if proba:
        probability_column = _free_name(f"Probability of {classes[p]}", rows.columns)
        front[probability_column] = np.asarray(proba, dtype=np.float64)[positions, p]
    table = pd.concat([pd.DataFrame(front), rows.iloc[positions].reset_index(drop=True)], axis=1)
    if probability_column:
        table = table.sort_values(probability_column, ascending=False, kind="stable")
    if table.empty:
        st.caption("No kept test row falls in this cell.")
        return
    config = {probability_column: st.column_config.ProgressColumn(
        format="percent", min_value=0.0, max_value=1.0,
        help="How sure the model was of its answer: high on a mistake means confidently wrong.")} \
        if probability_column else {}
    st.dataframe(table, hide_index=True, width="stretch", key="decide_cell_rows", column_config=config)
    if len(table) < count:
        st.caption(f"{len(table):,} of the {count:,} are among the first {n:,} test rows kept with the run.")


def _kept_mistakes(trained: TrainedModel, really: Any, said: Any, diagonal: bool) -> None:
    """Images and texts: the kept mistakes (the most confident ones) of one cell."""
    items = KIND_ITEMS[trained.kind]
    if diagonal:
        st.caption(f"Only mistakes keep their {items} with the run: pick two different classes.")
        return
    mistakes = (trained.test_results or {}).get("mistakes") or []
    key_a, key_p = str(label_value(really)), str(label_value(said))
    picked = [m for m in mistakes if str(label_value(m["actual"])) == key_a and str(label_value(m["predicted"])) == key_p]
    if not picked:
        st.caption(f"None of the {len(mistakes)} most confident mistakes kept with the run is of this kind.")
        return
    if trained.kind == "images":
        for start in range(0, len(picked), GRID_COLUMNS):
            for cell, item in zip(st.columns(GRID_COLUMNS), picked[start:start + GRID_COLUMNS], strict=False):
                cell.image(_thumbnail(item["image"]), width=THUMB_SIDE,
                           caption=f"{item['confidence']:.0%} sure: {item['predicted']}")
                cell.caption(str(item.get("file", "")).rsplit("/", 1)[-1], help=str(item.get("file", "")))
    else:
        table = pd.DataFrame({"Text": [m["text"] for m in picked],
                              "Confidence": [float(m["confidence"]) for m in picked]})
        st.dataframe(table, hide_index=True, width="stretch", key="decide_cell_texts", column_config={
            "Text": st.column_config.TextColumn(width="large"),
            "Confidence": st.column_config.ProgressColumn(
                format="percent", min_value=0.0, max_value=1.0,
                help="The chance the model gave its (wrong) answer: high means confidently wrong."),
        })
    st.caption(f"{len(picked)} of the {len(mistakes)} most confident mistakes kept with the run, the most "
               "confident first.")


def _largest_errors(state: AppState) -> None:
    """Regression: the kept test rows with the largest errors."""
    trained = state.trained
    results = trained.test_results
    target = trained.data_spec.target
    actual = np.asarray(results["actual"], dtype=np.float64)
    predicted = np.asarray(results["predicted"], dtype=np.float64)
    rows = pd.DataFrame(results.get("rows") or {})
    n = len(rows) if not rows.empty else len(actual)
    low, high, default = WORST_ROWS
    shown = st.slider("How many rows", low, min(high, max(low, n)), min(default, max(low, n)), step=1,
                      key=f"decide_worst_{state.run_id}", help="The test rows the model misses the most.")
    errors = actual[:n] - predicted[:n]  # (n,) positive: predicted too low
    top = np.argsort(-np.abs(errors), kind="stable")[:shown]
    taken = rows.columns if not rows.empty else []
    front = pd.DataFrame({_free_name(f"Actual {target}", taken): actual[top],
                          _free_name("Predicted", taken): predicted[top],
                          _free_name("Error (actual − predicted)", taken): errors[top]})
    table = pd.concat([front, rows.iloc[top].reset_index(drop=True)], axis=1) if not rows.empty else front
    st.dataframe(table, hide_index=True, width="stretch", key="decide_worst_rows", column_config={
        name: st.column_config.NumberColumn(format="%.4g") for name in front.columns})
    among = f" among the first {n:,} test rows kept with the run" if n < len(actual) else ""
    st.caption(f"The {len(top)} largest errors{among}, the largest first. A positive error means the model "
               "predicted too low. Look for what these rows share: a rare category, extreme values, a data error.")
