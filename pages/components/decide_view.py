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
from pages.components.i18n import t, tcount, tm
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
# Where a threshold was chosen, stored with the model in English (the model card reads it) and shown
# through the catalogue.
CHOSEN_BY_HAND = "by hand on the validation rows (precision {precision}, recall {recall} there)"
CHOSEN_FOR_F1 = "on the validation rows for the best F1 score"
CHOSEN_FOR_COST = "on the validation rows for the lowest cost (false alarm {fp:g}, missed case {fn:g})"


def decide_section(state: AppState) -> None:
    """The three Decide parts for the session's model; parts that do not apply say so in a caption."""
    trained = state.trained
    if trained is None:
        return
    if trained.task not in TASKS:
        st.caption(t("Thresholds, segments and the rows behind a number apply to models that predict a class "
                     "or a number for each row."))
        return
    if not (trained.test_results or {}).get("actual"):
        st.info(t("This run kept no test rows to decide with. Train it again to choose a threshold and see "
                  "segments."), icon=":material/info:")
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
            chosen = CHOSEN_BY_HAND.format(precision=_pct(point.precision), recall=_pct(point.recall))
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
        st.session_state[SAVED_KEY] = t(
            "The model now answers **{positive}** when its probability is above **{threshold:g}**. The Predict "
            "page, the export and the model card use this threshold from now on; export the model again to get "
            "a bundle with it.", positive=positive, threshold=threshold)


def operating_point(state: AppState) -> None:
    """Binary models: the threshold slider on the validation rows, suggestions, "Use", and the test curves."""
    trained = state.trained
    if trained.task != "binary":
        if trained.task == "multiclass":
            st.caption(":material/tune: " + t(
                "No threshold to choose: that is for yes/no models, and this one chooses among {n} classes, "
                "answering the most likely one.", n=len(trained.preprocessor.classes)))
        else:
            st.caption(":material/tune: " + t("No threshold to choose: this model predicts a number, not yes or no."))
        return
    st.subheader(t("Choose the operating point"))
    pre = trained.preprocessor
    classes = list(pre.classes)
    negative, positive = (str(c) for c in classes)
    val = (trained.test_results or {}).get("val") or {}
    if not val.get("probabilities"):
        st.info(t("This run kept no validation probabilities to choose a threshold on. Train it again."),
                icon=":material/info:")
        return
    actual, probability, pos = decide.binary_inputs(val, classes)
    n_val = len(actual)
    st.caption(t("The model answers **{positive}** when its probability is above the threshold. Try thresholds on "
                 "the {n:,} validation rows: thresholds are never picked on the test rows, so the test scores above "
                 "stay an honest estimate of new data.", positive=positive, n=n_val))
    if message := st.session_state.pop(SAVED_KEY, None):
        st.success(message, icon=":material/check_circle:")
    if message := st.session_state.pop(ERROR_KEY, None):
        st.error(t("The threshold could not be saved: {message}", message=tm(message)), icon=":material/error:")

    current = float(pre.decision_threshold)
    key = f"decide_threshold_{state.run_id}"
    if key not in st.session_state:
        st.session_state[key] = _on_slider(current)
    low, high = SLIDER_RANGE
    threshold = float(st.slider(
        t("Threshold: answer {positive} above", positive=positive), low, high, step=0.01, format="%g", key=key,
        help=t("Lower it to find more of the {positive} rows at the price of more false alarms; raise it for fewer "
               "false alarms and more missed cases. Scored on the validation rows.", positive=positive)))
    chosen = pre.decision_threshold_chosen
    st.caption(t("The model's threshold now: **{threshold:g}**, chosen {chosen}.", threshold=current, chosen=tm(chosen))
               if chosen else t("The model's threshold now: **{threshold:g}** (the default: the more likely class "
                                "wins).", threshold=current))

    point = decide.at_threshold(actual, probability, threshold, pos)
    now = decide.at_threshold(actual, probability, current, pos)
    _threshold_numbers(point, now, current, negative, positive, n_val)
    test_actual, test_probability, _ = decide.binary_inputs(trained.test_results, classes)
    on_test = decide.at_threshold(test_actual, test_probability, threshold, pos)
    st.caption(t("Its effect on the {n:,} test rows: precision {precision}, recall {recall}, F1 {f1}, {alarms} and "
                 "{missed:,} missed.", n=len(test_actual), precision=_pct(on_test.precision),
                 recall=_pct(on_test.recall), f1=_pct(on_test.f1), alarms=tcount(on_test.fp, "false alarm"),
                 missed=on_test.fn))

    reasons = _suggestions(key, actual, probability, pos, threshold, current, now, positive)
    if state.workspace.read_only:
        st.caption(":material/visibility: " + t("This is a view-only link: try thresholds here; only the "
                                                 "workspace's owner can change the model's threshold."))
    else:
        st.button(t("Use this threshold"), type="primary", icon=":material/done:", key="decide_use",
                  disabled=math.isclose(threshold, current, abs_tol=1e-12),
                  on_click=use_threshold, args=(state, key, reasons, actual, probability, pos),
                  help=t("Store {threshold:g} in the model and re-save the run: the Predict page, the export and the "
                         "model card then use it. Greyed out while the slider stands on the model's threshold.",
                         threshold=threshold))
    _curves(trained, classes, on_test, negative, positive)


def _threshold_numbers(point: decide.ThresholdPoint, now: decide.ThresholdPoint, current: float,
                       negative: str, positive: str, n_val: int) -> None:
    """Precision, recall and F1 as cards (against the model's threshold), the counts as a 2x2 table."""
    left, right = st.columns([3, 2], gap="large")
    with left:
        cards = st.columns(3)
        same = math.isclose(point.threshold, current, abs_tol=1e-12)
        for card, (label, value, before, help_text) in zip(cards, (
            (t("Precision"), point.precision, now.precision,
             t("Of the validation rows the model flags as {positive}, the share that really are.", positive=positive)),
            (t("Recall"), point.recall, now.recall,
             t("Of the validation rows that really are {positive}, the share the model flags.", positive=positive)),
            ("F1", point.f1, now.f1, t("The balance of precision and recall: high only when both are.")),
        ), strict=True):
            delta = None if same else t("{change:+.1f} points vs {threshold:g}", change=(value - before) * 100,
                                        threshold=current)
            card.metric(label, _pct(value), delta=delta, help=help_text, border=True)
        found = (t("{n:,} {positive} row", n=point.tp, positive=positive) if point.tp == 1
                 else t("{n:,} {positive} rows", n=point.tp, positive=positive))
        st.caption(t("{found} found and {missed:,} missed; {alarms} and {left} rightly left as {negative}. {share} of "
                     "the {n:,} validation rows are flagged.", found=found, missed=point.fn,
                     alarms=tcount(point.fp, "false alarm"), left=tcount(point.tn, "row"), negative=negative,
                     share=_pct(point.flagged_share), n=n_val))
    with right:
        table = pd.DataFrame([[point.tn, point.fp], [point.fn, point.tp]],
                             index=[t("Really {label}", label=negative), t("Really {label}", label=positive)],
                             columns=[t("Model says {label}", label=negative), t("Model says {label}", label=positive)])
        st.dataframe(table, width="stretch", key="decide_counts")
        st.caption(t("Validation rows at this threshold: the diagonal is right, the rest are mistakes."))


def _suggestions(key: str, actual: list, probability: np.ndarray, positive_class: Any, threshold: float,
                 current: float, now: decide.ThresholdPoint, positive: str) -> list[tuple[float, str]]:
    """The best-F1 and the cheapest thresholds with a button each; returns ``(threshold, words)`` of both."""
    reasons: list[tuple[float, str]] = []
    best_col, cost_col = st.columns(2, gap="large")
    with best_col.container(border=True):
        st.markdown(t("**Best balance (F1)**"))
        try:
            best = decide.best_f1_threshold(actual, probability, positive_class)
        except BuilderError as exc:
            st.caption(tm(str(exc)))
        else:
            target = _on_slider(best.threshold)
            st.markdown(t("Best F1: **{threshold:g}** (F1 {f1} on the validation rows, against {now} at {current:g}).",
                          threshold=best.threshold, f1=_pct(best.f1), now=_pct(now.f1), current=current))
            st.button(t("Move the slider to {threshold:g}", threshold=target), key="decide_to_f1", on_click=_move,
                      args=(key, target), disabled=math.isclose(target, threshold, abs_tol=1e-12),
                      icon=":material/balance:")
            reasons.append((target, CHOSEN_FOR_F1))
    with cost_col.container(border=True):
        st.markdown(t("**Lowest cost of mistakes**"))
        left, right = st.columns(2)
        costs = (
            float(left.number_input(t("Cost of a false alarm"), min_value=0.0, value=DEFAULT_COSTS[0], step=1.0,
                                    format="%g", key="decide_cost_fp",
                                    help=t("What it costs when the model flags a row that is not {positive}, e.g. the "
                                           "time to check it. Any unit, as long as both use the same.",
                                           positive=positive))),
            float(right.number_input(t("Cost of a missed case"), min_value=0.0, value=DEFAULT_COSTS[1], step=1.0,
                                     format="%g", key="decide_cost_fn",
                                     help=t("What it costs when the model misses a real {positive} row, e.g. a lost "
                                            "customer or an undetected fault.", positive=positive))),
        )
        try:
            cheapest = decide.cheapest_threshold(actual, probability, positive_class, *costs)
        except BuilderError as exc:
            st.caption(tm(str(exc)))
            return reasons
        saved = (_cost(now, costs) - cheapest.cost) / len(actual) * PER_ROWS
        if saved > 1e-9:
            text = t("Cheapest threshold: **{threshold:g}** (saves {saved} per {per:,} rows against {current:g})",
                     threshold=cheapest.threshold, saved=_amount(saved), per=PER_ROWS, current=current)
        else:
            text = t("Cheapest threshold: **{threshold:g}** (no cheaper than {current:g} on these rows)",
                     threshold=cheapest.threshold, current=current)
        st.markdown(t("{cheapest}; it costs {cost} per {per:,} validation rows.", cheapest=text,
                      cost=_amount(cheapest.cost / len(actual) * PER_ROWS), per=PER_ROWS))
        target = _on_slider(cheapest.threshold)
        st.button(t("Move the slider to {threshold:g}", threshold=target), key="decide_to_cost", on_click=_move,
                  args=(key, target), disabled=math.isclose(target, threshold, abs_tol=1e-12),
                  icon=":material/savings:")
        reasons.insert(0, (target, CHOSEN_FOR_COST.format(fp=costs[0], fn=costs[1])))
    return reasons


# --- the curves of the test rows ----------------------------------------------------------------------


def _curves(trained: TrainedModel, classes: list, on_test: decide.ThresholdPoint, negative: str,
            positive: str) -> None:
    st.markdown(t("**How well the model ranks the test rows**"))
    try:
        curves = decide.binary_curves(*decide.binary_inputs(trained.test_results, classes))
    except BuilderError as exc:
        st.caption(t("No curves: {error}", error=tm(str(exc))))
        return
    st.caption(t("Drawn on the {n:,} test rows ({positives:,} of them {positive}); the validation rows chose the "
                 "threshold. The dot marks the slider's threshold.", n=curves.rows, positives=curves.positives,
                 positive=positive))
    roc, pr, gain, calibration = st.tabs(["ROC", t("Precision and recall"), t("Gain and lift"), t("Calibration")])
    with roc:
        st.plotly_chart(roc_figure(curves, on_test, negative, positive), key="decide_roc")
        st.caption(t("AUC {auc:.3f}: a random {positive} row gets a higher probability than a random {negative} row "
                     "{auc:.0%} of the time (50% is guessing, 100% perfect).", auc=curves.auc, positive=positive,
                     negative=negative))
    with pr:
        st.plotly_chart(pr_figure(curves, on_test, positive), key="decide_pr")
        st.caption(t("Average precision {ap:.3f}, against {base:.3f} for flagging rows at random: the longer the "
                     "curve stays high, the more {positive} rows can be found before false alarms pile up.",
                     ap=curves.average_precision, base=curves.base_rate, positive=positive))
    with gain:
        left, right = st.columns(2)
        left.plotly_chart(gain_figure(curves, positive), key="decide_gain")
        right.plotly_chart(lift_figure(curves), key="decide_lift")
        top = int(round(TOP_SHARE * 100))
        st.caption(t("Checking the top {top}% of rows by probability finds {found:.0%} of the {positive} rows, "
                     "{lift:.1f} times as many as checking rows at random.", top=top,
                     found=curves.gain_found[top], positive=positive, lift=curves.lift[top - 1]))
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
    st.subheader(t("Metrics by segment"))
    results = trained.test_results
    rows = results.get("rows")
    if trained.kind != "table" or not rows:
        what = KIND_ITEMS.get(trained.kind)
        st.caption(t("Segments split the test rows by an input column; this model reads {what}, so there are none.",
                     what=t(what)) if what else
                   t("This run kept no input columns of its test rows to split by. Train it again."))
        return
    columns = list(rows)
    column = st.selectbox(t("Split the test rows by"), columns, index=_default_column(rows),
                          key=f"decide_segment_column_{state.run_id}",
                          help=t("Each value of the column (or range, for numbers with many values) is one segment; "
                                 "segments of fewer than {n} rows are shown but not judged.", n=SEGMENT_MIN_ROWS))
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
    frame["Why"] = frame["Why"].map(tm)
    label = info.label
    styled = frame.style.apply(lambda row: [WEAK_FILL if row["Clearly weaker"] else "" for _ in row], axis=1)
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.dataframe(styled, hide_index=True, width="stretch", key="decide_segments", column_config={
            "Segment": st.column_config.TextColumn(t("Segment")),
            "Rows": st.column_config.NumberColumn(t("Rows")),
            label: st.column_config.NumberColumn(tm(label), format="%.1f%%" if points else "%.4g", help=tm(info.help)),
            "Difference to all rows": st.column_config.NumberColumn(
                t("Difference to all rows"), format=t("%+.1f points") if points else "%+.4g",
                help=t("The segment's score minus the score on all rows: below 0 is worse.") if info.higher_is_better
                else t("The segment's score minus the score on all rows: above 0 is worse.")),
            "Clearly weaker": st.column_config.CheckboxColumn(t("Clearly weaker")),
            "Why": st.column_config.TextColumn(t("Why"), width="large"),
        })
    with right:
        st.plotly_chart(segment_figure(table, scale), key="decide_segment_chart")
    which = (t("the first {n:,} test rows kept with the run", n=table.rows) if table.rows < len(results["actual"])
             else t("the {n:,} test rows", n=table.rows))
    whole_text = t("{metric} on all of them: {value}.", metric=tm(info.label),
                   value=_metric_text(whole * scale, "%" if points else ""))
    scored = t("Scored on {which}. {overall}", which=which, overall=whole_text)
    if table.binned:
        scored = t("{scored} '{column}' has many values, so it is cut into ranges of about equal rows.",
                   scored=scored, column=column)
    st.caption(scored)
    if table.weak:
        st.warning(tm(table.summary), icon=":material/warning:")
    else:
        st.caption(":material/check: " + tm(table.summary))


def segment_frame(table: decide.SegmentTable) -> pd.DataFrame:
    """Segment, rows, the headline metric (in % for accuracy), the difference to all rows, weaker, why."""
    info = METRICS[table.metric]
    scale = 100.0 if info.unit == "points" else 1.0
    whole = table.overall.get(table.metric)
    records = []
    for segment in table.segments:
        value = segment.metrics.get(table.metric)
        known = value is not None and whole is not None and math.isfinite(value)
        records.append({"Segment": _segment_name(segment.label), "Rows": segment.rows,
                        info.label: value * scale if known else None,
                        "Difference to all rows": (value - whole) * scale if known else None,
                        "Clearly weaker": segment.weak, "Why": segment.reason})
    return pd.DataFrame(records, columns=["Segment", "Rows", info.label, "Difference to all rows",
                                          "Clearly weaker", "Why"])


def _segment_name(label: str) -> str:
    """A segment as shown: a value or range as it is, the engine's "(missing)" and "(other values)" translated."""
    return t(label) if label in (decide.MISSING_SEGMENT, decide.OTHER_SEGMENT) else label


def _metric_text(value: float, suffix: str) -> str:
    return f"{value:.1f}%" if suffix else f"{value:.4g}"


def segment_figure(table: decide.SegmentTable, scale: float) -> go.Figure:
    """The headline metric per segment as bars (clearly weaker ones red), all rows as a dashed line."""
    info = METRICS[table.metric]
    values = [(s.metrics.get(table.metric) or 0.0) * scale for s in table.segments]
    suffix = "%" if scale != 1.0 else ""
    better = "{metric} (higher is better)" if info.higher_is_better else "{metric} (lower is better)"
    fig = charts.layout(go.Figure(), "", t(better, metric=tm(info.label)))
    fig.add_trace(go.Bar(
        x=[_segment_name(s.label) for s in table.segments], y=values, name=t("Segment"), showlegend=False,
        marker=dict(color=[COLOURS["bad"] if s.weak else COLOURS["model"] for s in table.segments]),
        customdata=[s.rows for s in table.segments],
        hovertemplate=t("%{{x}}: %{{y:{number}}}{suffix} on %{{customdata}} rows<extra></extra>",
                        number=".1f" if suffix else ".4g", suffix=suffix)))
    whole = table.overall.get(table.metric)
    if whole is not None:
        line = dict(color=COLOURS["baseline"], dash="dash", width=1.5)
        fig.add_hline(y=whole * scale, line=line)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=line,  # the line's legend entry
                                 name=t("All rows: {value}", value=_metric_text(whole * scale, suffix))))
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
    st.subheader(t("See the rows behind a number"))
    if trained.task == "regression":
        _largest_errors(state)
        return
    results = trained.test_results
    classes = list(trained.preprocessor.classes)
    labels = [str(c) for c in classes]
    matrix = confusion(results["actual"], results["predicted"], classes)
    i, j = biggest_mistake(matrix.counts)
    items = KIND_ITEMS.get(trained.kind, "rows")
    st.caption(t("Pick a cell of the confusion matrix to see its test {items}: by default the biggest mix-up.",
                 items=t(items)))
    left, right = st.columns(2)
    really = left.selectbox(t("Really"), labels, index=i, key=f"decide_cell_actual_{state.run_id}",
                            help=t("The true class of the test {items}.", items=t(items)))
    said = right.selectbox(t("The model said"), labels, index=j, key=f"decide_cell_predicted_{state.run_id}",
                           help=t("The class the model answered."))
    a, p = labels.index(really), labels.index(said)
    count = int(matrix.counts[a, p])
    if np.trace(matrix.counts) == matrix.counts.sum():
        st.caption(t("The model got all the test {items} right: there is no mix-up to look at, only the classes.",
                     items=t(items)))
    st.markdown(t("**{n:,}** test {items} are really **{really}** and the model said **{said}**.", n=count,
                  items=t(items), really=really, said=said))
    if trained.kind in ("images", "text"):
        _kept_mistakes(trained, classes[a], classes[p], a == p)
    else:
        _cell_rows(trained, classes, a, p, count)
    if trained.task == "binary" and getattr(trained.preprocessor, "decision_threshold_chosen", None):
        st.caption(t("These are the answers the model gave when the run was evaluated; a threshold chosen since "
                     "applies to its predictions from now on."))


def _cell_rows(trained: TrainedModel, classes: list, a: int, p: int, count: int) -> None:
    """Tables: the kept raw test rows of one cell, the most confident answers first."""
    results = trained.test_results
    rows = pd.DataFrame(results.get("rows") or {})
    if rows.empty:
        st.caption(t("This run kept no input columns of its test rows. Train it again to see them."))
        return
    n = len(rows)
    actual, predicted = _keys(results["actual"][:n]), _keys(results["predicted"][:n])
    positions = np.flatnonzero((actual == str(label_value(classes[a]))) & (predicted == str(label_value(classes[p]))))
    really, said = _free_name("Really", rows.columns), _free_name("Model said", rows.columns)
    front = {really: [str(v) for v in np.asarray(results["actual"], dtype=object)[positions]],
             said: [str(v) for v in np.asarray(results["predicted"], dtype=object)[positions]]}
    config = {really: st.column_config.TextColumn(t("Really")), said: st.column_config.TextColumn(t("Model said"))}
    proba = results.get("probabilities")
    probability_column = None
    if proba:
        probability_column = _free_name(f"Probability of {classes[p]}", rows.columns)
        front[probability_column] = np.asarray(proba, dtype=np.float64)[positions, p]
        config[probability_column] = st.column_config.ProgressColumn(
            t("Probability of {label}", label=classes[p]), format="percent", min_value=0.0, max_value=1.0,
            help=t("How sure the model was of its answer: high on a mistake means confidently wrong."))
    table = pd.concat([pd.DataFrame(front), rows.iloc[positions].reset_index(drop=True)], axis=1)
    if probability_column:
        table = table.sort_values(probability_column, ascending=False, kind="stable")
    if table.empty:
        st.caption(t("No kept test row falls in this cell."))
        return
    st.dataframe(table, hide_index=True, width="stretch", key="decide_cell_rows", column_config=config)
    if len(table) < count:
        st.caption(t("{shown:,} of the {count:,} are among the first {n:,} test rows kept with the run.",
                     shown=len(table), count=count, n=n))


def _kept_mistakes(trained: TrainedModel, really: Any, said: Any, diagonal: bool) -> None:
    """Images and texts: the kept mistakes (the most confident ones) of one cell."""
    items = KIND_ITEMS[trained.kind]
    if diagonal:
        st.caption(t("Only mistakes keep their {items} with the run: pick two different classes.", items=t(items)))
        return
    mistakes = (trained.test_results or {}).get("mistakes") or []
    key_a, key_p = str(label_value(really)), str(label_value(said))
    picked = [m for m in mistakes if str(label_value(m["actual"])) == key_a and str(label_value(m["predicted"])) == key_p]
    if not picked:
        st.caption(t("None of the {n} most confident mistakes kept with the run is of this kind.", n=len(mistakes)))
        return
    if trained.kind == "images":
        for start in range(0, len(picked), GRID_COLUMNS):
            for cell, item in zip(st.columns(GRID_COLUMNS), picked[start:start + GRID_COLUMNS], strict=False):
                cell.image(_thumbnail(item["image"]), width=THUMB_SIDE,
                           caption=t("{confidence:.0%} sure: {predicted}", confidence=item["confidence"],
                                     predicted=item["predicted"]))
                cell.caption(str(item.get("file", "")).rsplit("/", 1)[-1], help=str(item.get("file", "")))
    else:
        table = pd.DataFrame({"Text": [m["text"] for m in picked],
                              "Confidence": [float(m["confidence"]) for m in picked]})
        st.dataframe(table, hide_index=True, width="stretch", key="decide_cell_texts", column_config={
            "Text": st.column_config.TextColumn(t("Text"), width="large"),
            "Confidence": st.column_config.ProgressColumn(
                t("Confidence"), format="percent", min_value=0.0, max_value=1.0,
                help=t("The chance the model gave its (wrong) answer: high means confidently wrong.")),
        })
    st.caption(t("{shown} of the {n} most confident mistakes kept with the run, the most confident first.",
                 shown=len(picked), n=len(mistakes)))


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
    shown = st.slider(t("How many rows"), low, min(high, max(low, n)), min(default, max(low, n)), step=1,
                      key=f"decide_worst_{state.run_id}", help=t("The test rows the model misses the most."))
    errors = actual[:n] - predicted[:n]  # (n,) positive: predicted too low
    top = np.argsort(-np.abs(errors), kind="stable")[:shown]
    taken = rows.columns if not rows.empty else []
    labels = {_free_name(f"Actual {target}", taken): t("Actual {target}", target=target),
              _free_name("Predicted", taken): t("Predicted"),
              _free_name("Error (actual − predicted)", taken): t("Error (actual − predicted)")}
    front = pd.DataFrame(dict(zip(labels, (actual[top], predicted[top], errors[top]), strict=True)))
    table = pd.concat([front, rows.iloc[top].reset_index(drop=True)], axis=1) if not rows.empty else front
    st.dataframe(table, hide_index=True, width="stretch", key="decide_worst_rows", column_config={
        name: st.column_config.NumberColumn(label, format="%.4g") for name, label in labels.items()})
    largest = (t("The {shown} largest errors among the first {n:,} test rows kept with the run, the largest first.",
                 shown=len(top), n=n) if n < len(actual) else t("The {shown} largest errors, the largest first.",
                                                                shown=len(top)))
    st.caption(t("{largest} A positive error means the model predicted too low. Look for what these rows share: a "
                 "rare category, extreme values, a data error.", largest=largest))
