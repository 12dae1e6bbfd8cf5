"""Why the model answers as it does: the Explain part of the Evaluate page, and its compact form on Present.

Four questions, each answered by ``builder.explain`` from the run itself (the test rows, mistakes or
forecast windows kept with it), never from the table loaded now:

1. What drives the predictions: permutation importance, one bar per original column (tables).
2. One prediction: what pushed one test row's answer up or down (tables); which pixels of a
   misclassified image, which words of a text, which past steps of the last forecast window.
3. How the prediction moves along one column: partial dependence with faint individual curves.
4. What if: change a row's values and see the new prediction beside the old one (tables).

Every engine call goes through ``st.cache_data`` keyed by the run (workspace folder, run id,
``trained_at``), the run itself passed unhashed, so reruns and page switches never recompute. The
column importance is also kept with the run (``trained.info["explanations"]``, saved once) so the
report includes it; a view-only session only reads and draws. The charts themselves are built in
``explain_charts``.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from builder.data.preprocess import parse_numeric
from builder.defaults import CLASS_TASKS
from builder.errors import BuilderError
from builder.explain import column_importance, dependence, explain_row, what_if
from builder.trained import TrainedModel
from pages.components.evaluate_view import KIND_WORDS, data_differs
from pages.components.explain_charts import (
    MAX_BARS,
    amount_words,
    attribution_figure,
    dependence_figure,
    forecast_figure,
    highlighted_text,
    image_figure,
    importance_figure,
)
from pages.components.i18n import shown_as, t, tcount, tm
from pages.components.state import AppState
from pages.components.ui import user_errors

MAX_IMPORTANCE_BARS = 30  # columns in the importance chart; a wider table's least important are left out
SHOWN_SENTENCES = 3
ID_NAME = re.compile(r"^(id|uuid|guid|key|name|code)$|[_ ](id|name|code)$|^id[_ ]", re.IGNORECASE)


# --- cached engine calls (keyed by the run; the run itself is not hashed) ---------------------------------


@st.cache_data(show_spinner=False, max_entries=64)
def _importance_cached(workspace: str, run_id: str, trained_at: str, _trained: TrainedModel) -> list[dict]:
    return [item.to_dict() for item in column_importance(_trained)]


@st.cache_data(show_spinner=False, max_entries=512)
def _explained_cached(workspace: str, run_id: str, trained_at: str, item: str, method: str, target: Any,
                      changes: str, _trained: TrainedModel, _row: Any) -> dict:
    if changes:  # a what-if: the row with some values changed (JSON of {column: value})
        return what_if(_trained, _row, json.loads(changes), target_class=target, method=method).to_dict()
    return explain_row(_trained, _row, target_class=target, method=method).to_dict()


@st.cache_data(show_spinner=False, max_entries=256)
def _dependence_cached(workspace: str, run_id: str, trained_at: str, column: str, target: Any,
                       _trained: TrainedModel, _rows: pd.DataFrame) -> dict:
    return dependence(_trained, column, rows=_rows, target_class=target).to_dict()


def _run_key(state: AppState) -> tuple[str, str, str]:
    """(workspace folder, run id, trained_at): what the caches are keyed by. A view-only session of
    the same workspace opens the same folder, so it shares what the owner computed. The thresholds
    a user can move after training (anomaly, yes/no decision) are part of the last item: they change
    the answers explained."""
    trained = state.trained
    pre = trained.preprocessor
    moved = [getattr(pre, name, None) for name in ("threshold", "decision_threshold")]
    return (str(state.workspace.root), state.run_id or f"unsaved-{id(trained)}",
            f"{trained.info.get('trained_at', '')}|{moved[0]}|{moved[1]}")


def _explain(state: AppState, item: str, row: Any, method: str, target: Any = None,
             changes: dict | None = None) -> dict:
    """``explain_row`` (or ``what_if`` with ``changes``) of ``row``, cached under ``item``."""
    changed = json.dumps(changes, sort_keys=True, default=str) if changes else ""
    with st.spinner(t("Explaining the prediction...")):
        return _explained_cached(*_run_key(state), item, method, target, changed, state.trained, row)


# --- 1. what drives the predictions ------------------------------------------------------------------------


def importance_of(state: AppState) -> list[dict]:
    """The run's column importance as plain dicts, most important first: kept with the run if it
    was computed before, else computed (cached) and, when the session may write, saved with the run.

    Raises:
        BuilderError: ``column_importance`` refuses the run (not a table, an anomaly model, no rows).
    """
    trained = state.trained
    stored = trained.info.get("explanations")
    if isinstance(stored, list) and stored and all(isinstance(i, dict) and "column" in i for i in stored):
        return stored
    with st.spinner(t("Measuring how much each column matters (a few seconds)...")):
        items = _importance_cached(*_run_key(state), trained)
    _keep_with_run(state, items)
    return items


def _keep_with_run(state: AppState, items: list[dict]) -> None:
    """Save the importance into the run once, so the report includes it; never in a view-only session."""
    if state.workspace.read_only or not state.run_id:
        return
    flag = f"explain_saved_{state.run_id}"
    if st.session_state.get(flag):
        return  # tried already in this session: a failed save is not retried on every rerun
    st.session_state[flag] = True
    state.trained.info["explanations"] = [dict(item) for item in items]
    try:
        with st.spinner(t("Saving the explanations with the model...")):
            state.workspace.update_run(state.trained, state.run_id)
    except BuilderError as exc:
        st.warning(t("The explanations could not be saved with the model (the report will lack them): {error}",
                     error=tm(exc)), icon=":material/warning:")


def importance_section(state: AppState, prefix: str = "explain") -> list[dict] | None:
    """Part 1: the importance chart and its top sentences; a short note where it does not apply."""
    trained = state.trained
    if trained.kind != "table":
        st.info(t("Column importance is about the columns of a table; this model reads {kind}. See below what "
                  "drove one of its answers.", kind=_kind_words(trained)), icon=":material/info:")
        return None
    if trained.task == "anomaly":
        st.info(t("An anomaly model has no right answers to score, so column importance does not apply. "
                  "See below what makes a row look unusual."), icon=":material/info:")
        return None
    try:
        items = importance_of(state)
    except BuilderError as exc:
        st.info(t("Column importance is not available for this run: {error}", error=tm(exc)), icon=":material/info:")
        return None
    st.plotly_chart(importance_figure(items[:MAX_IMPORTANCE_BARS], trained.task), key=f"{prefix}_importance")
    if len(items) > MAX_IMPORTANCE_BARS:
        st.caption(t("The {shown} most important of the {n} columns.", shown=MAX_IMPORTANCE_BARS, n=len(items)))
    st.markdown("\n".join(f"- {tm(item['sentence'])}" for item in items[:SHOWN_SENTENCES] if item.get("sentence")))
    st.caption(t("Each column's values were shuffled among the test rows, five times, and the test rows scored "
                 "again: the bigger the drop, the more the model leans on the column (the whiskers show how much "
                 "the five shuffles disagree; grey bars: no drop at all). It shows what the model relies on, not "
                 "what causes the outcome."))
    return items


# --- the kept rows of a table -----------------------------------------------------------------------------


def kept_rows(trained: TrainedModel) -> pd.DataFrame:
    """The raw test rows kept with a table run (anomaly models: the most unusual ones), input columns only."""
    results = trained.test_results or {}
    features = list(trained.preprocessor.features)
    if trained.task == "anomaly":
        frame = pd.DataFrame(results.get("most_unusual") or [])
    else:
        frame = pd.DataFrame(results.get("rows") or {})
    if frame.empty or not set(features) <= set(frame.columns):
        return pd.DataFrame(columns=features)
    return frame[features].reset_index(drop=True)


def id_column(rows: pd.DataFrame) -> str | None:
    """An input column that names each row (named like an ID, a different value in every row)."""
    for column in rows.columns:
        values = rows[column].dropna()
        if ID_NAME.search(str(column)) and len(values) == len(rows) > 1 and values.nunique() == len(rows):
            return str(column)
    return None


def _fmt(value: Any) -> str:
    """A number as an analyst reads it: 52,300 / 215.3 / 0.0123; other values as text."""
    if isinstance(value, bool) or value is None:
        return t("(missing)") if value is None else str(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            return str(v)
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return str(value)


def row_labels(trained: TrainedModel, rows: pd.DataFrame) -> list[str]:
    """'Test row 7 · is virginica, model said versicolor (91%)' per kept row (an ID column's value if any)."""
    results = trained.test_results or {}
    ids = id_column(rows)
    names = [f"{ids} {rows[ids].iloc[i]}" if ids else t("Test row {n}", n=i + 1) for i in range(len(rows))]
    if trained.task == "anomaly":
        scores = [r.get("anomaly_score") for r in results.get("most_unusual") or []]
        return [t("{name} · anomaly score {score}", name=n, score=_fmt(s)) for n, s in zip(names, scores, strict=False)]
    actual, predicted = results.get("actual") or [], results.get("predicted") or []
    probabilities = results.get("probabilities") or []
    labels = []
    for i, name in enumerate(names):
        if i >= len(actual):
            labels.append(name)
            continue
        sure = f" ({max(probabilities[i]):.0%})" if i < len(probabilities) else ""
        wrong = "" if str(actual[i]) == str(predicted[i]) or trained.task not in CLASS_TASKS else " ✗"
        labels.append(t("{name} · is {actual}, model said {predicted}{sure}{wrong}", name=name,
                        actual=_fmt(actual[i]), predicted=_fmt(predicted[i]), sure=sure, wrong=wrong))
    return labels


def default_row(trained: TrainedModel, n_rows: int) -> int:
    """The most interesting kept row: the most confidently wrong (classes), the largest miss
    (numbers), the most unusual (anomaly, already first); the first row otherwise."""
    results = trained.test_results or {}
    actual, predicted = (results.get("actual") or [])[:n_rows], (results.get("predicted") or [])[:n_rows]
    if trained.task == "regression" and actual:
        misses = np.abs(np.asarray(actual, dtype=float) - np.asarray(predicted, dtype=float))
        return int(np.nanargmax(misses)) if np.isfinite(misses).any() else 0
    if trained.task in CLASS_TASKS:
        probabilities = results.get("probabilities") or []
        wrong = [i for i, (a, p) in enumerate(zip(actual, predicted, strict=False)) if str(a) != str(p)]
        if wrong:
            return max(wrong, key=lambda i: max(probabilities[i]) if i < len(probabilities) else 0.0)
    return 0


# --- 2. one prediction --------------------------------------------------------------------------------------


def _output_text(trained: TrainedModel, value: float) -> str:
    return f"{value:.0%}" if trained.task in CLASS_TASKS else _fmt(value)


def _change_text(trained: TrainedModel, change: float) -> str:
    return t("{change:+.1f} points", change=change * 100) if trained.task in CLASS_TASKS else f"{change:+.4g}"


def _probability_of(explanation: dict) -> str:
    return t("Probability of {target}", target=explanation["target"])


def _flagged(explanation: dict) -> str:
    flagged = explanation.get("prediction")
    return "?" if flagged is None else (t("yes") if flagged else t("no"))


def _kind_words(trained: TrainedModel) -> str:
    return t(KIND_WORDS.get(trained.kind, trained.kind))


BRIGHT = "Bright parts of the heatmap pushed it up, dark parts down."  # the engine's words for a grey heatmap


def _image_sentence(sentence: str) -> str:
    """The engine's sentence about an image, its last words telling this page's colours."""
    if not sentence.endswith(BRIGHT):
        return tm(sentence)
    return t("{sentence} Green parts of the heatmap pushed it up, red parts down.",
             sentence=tm(sentence.removesuffix(BRIGHT).rstrip()))


def _method_toggle(key: str) -> str:
    shapley = st.toggle(t("Shapley sampling"), key=key,
                        help=t("Off: integrated gradients, fast; it follows the network's gradients from a typical "
                               "input to this one. On: Shapley value sampling, which swaps whole inputs (columns, "
                               "words, steps, patches of an image) in random orders; slower, a second opinion."))
    return "shapley" if shapley else "integrated_gradients"


def _method_caption(explanation: dict, baseline_words: str) -> None:
    error = abs(explanation.get("delta") or 0.0)
    if explanation["method"] == "shapley":
        method = t("Shapley value sampling (adds up exactly)")
    elif error >= 1e-12:
        method = t("integrated gradients (adds up to within {error:.2g})", error=error)
    else:
        method = t("integrated gradients (adds up exactly)")
    st.caption(t("The pushes add up to the difference between this answer and the answer for {baseline}. "
                 "Method: {method}.", baseline=baseline_words, method=method))


def _class_picker(trained: TrainedModel, default: Any, key: str) -> int:
    """The index of the class whose probability is explained (an index, never a label: a label 2 of
    classes [1, 2, 3] would read as the third class); the class ``default`` (a label) to start with."""
    labels = [str(c) for c in trained.preprocessor.classes]
    index = labels.index(str(default)) if str(default) in labels else (1 if len(labels) == 2 else 0)
    return st.selectbox(t("Explain the probability of"), range(len(labels)), index=index, key=key,
                        format_func=labels.__getitem__,
                        help=t("Green bars push the probability of this class up, red ones down."))


def table_explanation(trained: TrainedModel, explanation: dict, key: str, actual: Any = None) -> None:
    """The answer as cards, the per-column pushes as bars, and the sentence."""
    cards = st.columns(3)
    if trained.task == "anomaly":
        cards[0].metric(t("Anomaly score"), _fmt(explanation["output"]), border=True,
                        help=t("How badly the model rebuilds the row: high means unlike the training rows."))
        cards[1].metric(t("Flagged as unusual"), _flagged(explanation), border=True)
    else:
        if actual is not None:
            cards[0].metric(t("Actual"), _fmt(actual), border=True)
        cards[1].metric(t("The model says"), _fmt(explanation["prediction"]), border=True)
        if trained.task in CLASS_TASKS:
            change = explanation["output"] - explanation["base_value"]
            cards[2].metric(_probability_of(explanation), _output_text(trained, explanation["output"]),
                            delta=t("{change} vs a typical row", change=_change_text(trained, change)),
                            delta_color="off", border=True)
        else:
            cards[2].metric(t("For a typical row"), _fmt(explanation["base_value"]), border=True,
                            help=t("The prediction for a row with every number at its median and every category "
                                   "at its most frequent value: where the bars start from."))
    values = explanation["details"].get("values", {})
    columns = list(explanation["attributions"])
    labels = [f"{c} = {_fmt(values.get(c))}" for c in columns]
    st.plotly_chart(attribution_figure(labels, [explanation["attributions"][c] for c in columns], trained), key=key)
    if len(columns) > MAX_BARS:
        st.caption(t("The {shown} biggest pushes of the {n} columns.", shown=MAX_BARS, n=len(columns)))
    st.markdown(tm(explanation["sentence"]))


def _row_part(state: AppState, rows: pd.DataFrame, prefix: str) -> tuple[int, dict, Any]:
    """Part 2 for tables: pick a kept row, explain it. Returns (row position, explanation, class)."""
    trained, tag = state.trained, state.run_id or "unsaved"
    labels = row_labels(trained, rows)
    left, middle, right = st.columns([5, 3, 2], vertical_alignment="bottom")
    chosen = left.selectbox(t("Test row"), range(len(rows)), index=default_row(trained, len(rows)),
                            format_func=labels.__getitem__, key=f"{prefix}_row_{tag}",
                            help=t("A row of the test data the model never saw. The first one shown is the "
                                   "model's most confident mistake (numbers: its largest miss)."))
    results = trained.test_results or {}
    predicted = (results.get("predicted") or [None] * len(rows))[chosen] if trained.task != "anomaly" else None
    target = None
    if trained.task in CLASS_TASKS:
        with middle:
            target = _class_picker(trained, predicted, f"{prefix}_class_{tag}_{chosen}")
    with right:
        method = _method_toggle(f"{prefix}_method_{tag}")
    explanation = _explain(state, f"row:{chosen}", rows.iloc[[chosen]], method, target)
    actual = (results.get("actual") or [None] * len(rows))[chosen] if trained.task != "anomaly" else None
    table_explanation(trained, explanation, f"{prefix}_row_bars", actual)
    _method_caption(explanation, t("a typical row (every number at its median, every category at its most "
                                   "frequent value)"))
    return chosen, explanation, target


def _image_part(state: AppState, prefix: str) -> None:
    trained, tag = state.trained, state.run_id or "unsaved"
    mistakes = (trained.test_results or {}).get("mistakes")
    if not mistakes:
        st.info(t("This run kept no misclassified test images to explain: every test image was classified "
                  "correctly.") if mistakes == [] else
                t("This run kept no misclassified test images to explain. Train it again to keep them."),
                icon=":material/info:")
        return
    left, middle, right = st.columns([5, 3, 2], vertical_alignment="bottom")
    chosen = left.selectbox(
        t("Misclassified test image"), range(len(mistakes)), key=f"{prefix}_image_{tag}",
        format_func=shown_as(range(len(mistakes)), lambda i: t(
            "{name} · is {actual}, model said {predicted} ({confidence:.0%})",
            name=str(mistakes[i].get("file", "")).rsplit("/", 1)[-1] or t("Image {n}", n=i + 1),
            actual=mistakes[i]["actual"], predicted=mistakes[i]["predicted"], confidence=mistakes[i]["confidence"])),
        help=t("The model's most confident mistakes first."))
    item = mistakes[chosen]
    with middle:
        target = _class_picker(trained, item["predicted"], f"{prefix}_image_class_{tag}_{chosen}")
    with right:
        method = _method_toggle(f"{prefix}_image_method_{tag}")
    raw = base64.b64decode(item["image"].split(",", 1)[-1])  # the kept PNG
    explanation = _explain(state, f"mistake:{chosen}", raw, method, target)
    cards = st.columns(3)
    cards[0].metric(t("Actual"), str(item["actual"]), border=True)
    cards[1].metric(t("The model says"), str(explanation["prediction"]), border=True)
    cards[2].metric(_probability_of(explanation), _output_text(trained, explanation["output"]), border=True)
    st.plotly_chart(image_figure(item["image"], explanation["attributions"]), width="content",
                    key=f"{prefix}_image_heatmap")
    st.markdown(_image_sentence(explanation["sentence"]))
    _method_caption(explanation, t("an image of the average colour"))


def _text_part(state: AppState, prefix: str) -> None:
    trained, tag = state.trained, state.run_id or "unsaved"
    mistakes = (trained.test_results or {}).get("mistakes") or []
    left, middle, right = st.columns([5, 3, 2], vertical_alignment="bottom")
    chosen = None
    if mistakes:
        chosen = left.selectbox(
            t("Misclassified test text"), range(len(mistakes)), key=f"{prefix}_text_{tag}",
            format_func=shown_as(range(len(mistakes)), lambda i: t(
                "{text} · is {actual}, model said {predicted}",
                text=f"{mistakes[i]['text'][:60]}{'…' if len(mistakes[i]['text']) > 60 else ''}",
                actual=mistakes[i]["actual"], predicted=mistakes[i]["predicted"])),
            help=t("The model's most confident mistakes first."))
    else:
        left.caption(t("The run kept no misclassified test texts: type a text below."))
    text = st.text_area(t("The text explained: edit it to see how the answer changes"),
                        value=mistakes[chosen]["text"] if chosen is not None else "",
                        key=f"{prefix}_text_area_{tag}_{chosen}", height=90,
                        placeholder=t("Type or paste a text the model should sort"))
    if not text.strip():
        st.info(t("Type a text above to see which words drove the model's answer."), icon=":material/info:")
        return
    predicted = trained.predict(pd.DataFrame({trained.preprocessor.text_column: [text]}))["prediction"].iloc[0] \
        if chosen is None or text != mistakes[chosen]["text"] else mistakes[chosen]["predicted"]
    with middle:
        target = _class_picker(trained, predicted, f"{prefix}_text_class_{tag}_{chosen}")
    with right:
        method = _method_toggle(f"{prefix}_text_method_{tag}")
    explanation = _explain(state, f"text:{text}", text, method, target)
    card, words = st.columns([1, 3], gap="large")
    card.metric(t("The model says"), _fmt(explanation["prediction"]), border=True)
    card.metric(_probability_of(explanation), _output_text(trained, explanation["output"]), border=True)
    words.markdown(highlighted_text(explanation["attributions"]), unsafe_allow_html=True)
    totals: dict[str, float] = {}
    for word, value in explanation["attributions"]:
        totals[word] = totals.get(word, 0.0) + value
    words.plotly_chart(attribution_figure([f"'{w}'" for w in totals], list(totals.values()), trained),
                       key=f"{prefix}_text_bars")
    st.markdown(tm(explanation["sentence"]))
    _method_caption(explanation, t("an empty text") if explanation["method"] == "shapley" else
                    t("the same text with every word blanked out"))


def forecast_history(state: AppState) -> tuple[pd.DataFrame | None, str]:
    """The series up to the last test forecast's first step, as ``explain_row`` takes it, and where
    it came from: the table loaded now when it is the run's data, else the run's own kept values
    (enough when the series is the forecast column alone). ``(None, "")`` when neither has it."""
    trained = state.trained
    pre, results = trained.preprocessor, trained.test_results or {}
    horizon = int(results.get("horizon", trained.n_outputs))
    times = np.asarray(results.get("times") or [], dtype=object).reshape(-1, horizon)
    if not len(times):
        return None, ""
    start, window, time_column = pd.Timestamp(str(times[-1, 0])), int(pre.input_shape[0]), pre.time_column
    df = state.df
    if df is not None and {time_column, *pre.columns} <= set(df.columns) and not data_differs(state):
        try:
            frame = pre.regularise(df[[time_column, *pre.columns]])
            frame = frame[frame[time_column] < start]
            if len(frame) >= window:
                return frame, "loaded"
        except BuilderError:
            pass  # the run's own values below
    if list(pre.columns) != [pre.target]:
        return None, ""
    history = results.get("history") or {}
    seen = dict(zip(map(str, history.get("times", [])), history.get("values", []), strict=False))
    actual = np.asarray(results.get("actual") or [], dtype=np.float64).reshape(-1, horizon)
    for when, v in zip(times.ravel(), actual.ravel(), strict=True):
        seen.setdefault(str(when), float(v))
    frame = pd.DataFrame({time_column: pd.to_datetime(list(seen)), pre.target: list(seen.values())})
    frame = frame[frame[time_column] < start].sort_values(time_column)
    return (frame.reset_index(drop=True), "kept") if len(frame) >= window else (None, "")


def _forecast_part(state: AppState, prefix: str) -> None:
    trained, tag = state.trained, state.run_id or "unsaved"
    history, source = forecast_history(state)
    if history is None:
        st.info(t("To explain a forecast the run needs the series just before its last test forecast. This series "
                  "has several columns: load the data it was trained on on the Data page."), icon=":material/info:")
        return
    results, target = trained.test_results, trained.preprocessor.target
    horizon = int(results.get("horizon", trained.n_outputs))
    left, right = st.columns([5, 1], vertical_alignment="bottom")
    step = 1
    if horizon > 1:
        step = left.select_slider(t("Which step ahead to explain"), options=list(range(1, horizon + 1)),
                                  key=f"{prefix}_forecast_step_{tag}", format_func=shown_as(range(1, horizon + 1), lambda k: tcount(k, "step")))
    with right:
        method = _method_toggle(f"{prefix}_forecast_method_{tag}")
    explanation = _explain(state, f"window:last:{source}", history, method, step - 1)
    actual = np.asarray(results["actual"], dtype=np.float64).reshape(-1, horizon)[-1, step - 1]
    cards = st.columns(3)
    cards[0].metric(t("Forecast"), _fmt(explanation["output"]), border=True,
                    help=t("The last test forecast, {step} step(s) ahead.", step=step))
    cards[1].metric(t("What happened"), _fmt(actual), border=True)
    cards[2].metric(t("Forecast from a flat series"), _fmt(explanation["base_value"]), border=True,
                    help=t("Every past step at its training average."))
    st.plotly_chart(forecast_figure(explanation, history, target, trained), key=f"{prefix}_forecast_bars")
    st.markdown(tm(explanation["sentence"]))
    _method_caption(explanation, t("a flat series at its training average"))


# --- 3. how the prediction moves along one column -------------------------------------------------------------


def _by_importance(trained: TrainedModel, importance: list[dict] | None) -> list[str]:
    """The input columns, the most important first (the data's order without importance)."""
    features = list(trained.preprocessor.features)
    ranked = [str(i["column"]) for i in importance or [] if str(i["column"]) in features]
    return list(dict.fromkeys(ranked + features))


def dependence_section(state: AppState, rows: pd.DataFrame, importance: list[dict] | None,
                       chosen: dict | None, prefix: str = "explain") -> None:
    """Part 3: a column picker (the most important first), the curves and their sentence."""
    trained, tag = state.trained, state.run_id or "unsaved"
    pre = trained.preprocessor
    columns = _by_importance(trained, importance)
    left, right = st.columns([3, 2])
    column = left.selectbox(t("Column"), columns, key=f"{prefix}_dependence_column_{tag}",
                            help=t("The most important column first. Every test row is predicted again with this "
                                   "column set to each value along the axis, everything else kept as it is."))
    target = None
    if trained.task in CLASS_TASKS:
        predicted = Counter(str(p) for p in (trained.test_results or {}).get("predicted") or [])
        default = pre.classes[1] if trained.task == "binary" else (predicted.most_common(1) or [(None, 0)])[0][0]
        with right:
            target = _class_picker(trained, default, f"{prefix}_dependence_class_{tag}")
    with st.spinner(t("Drawing the curve along the column...")):
        curve = _dependence_cached(*_run_key(state), column, target, trained, rows)
    marked = None
    if chosen is not None and curve["kind"] == "numeric":
        number = parse_numeric(pd.Series([chosen.get(column)], dtype=object))[0]
        marked = None if np.isnan(number) else float(number)
    st.plotly_chart(dependence_figure(curve, trained, marked), key=f"{prefix}_dependence_chart")
    st.markdown(tm(curve["sentence"]))
    rows_used = t("the most unusual test rows kept with the run") if trained.task == "anomaly" else t("the test rows")
    st.caption(t("The thick line is the average over {rows}; each faint line is one row's own curve. "
                 "Lines that run apart mean the column's effect depends on the other columns.", rows=rows_used))


# --- 4. what if ------------------------------------------------------------------------------------------


def _column_states(trained: TrainedModel) -> dict[str, dict]:
    return {s["name"]: s for s in trained.preprocessor.to_dict()["columns"]}


def _missing(value: Any) -> bool:
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _number(value: Any) -> float | None:
    number = float(parse_numeric(pd.Series([value], dtype=object))[0])
    return None if math.isnan(number) else number


def _step(state: dict) -> float:
    """A +/- step of about a tenth of the column's spread, rounded to 1, 2 or 5 times a power of ten."""
    spread = float(state.get("std") or 1.0) / 10
    power = 10.0 ** math.floor(math.log10(spread)) if spread > 0 else 1.0
    return float(next(power * m for m in (1, 2, 5, 10) if power * m >= spread * 0.75))


def _options(state: dict, seen: pd.Series, current: Any) -> list[Any]:
    """The values a category (or yes/no) column can take: those the model knows, then those seen in the
    test rows, the row's own value and "missing"."""
    options: list[Any] = []
    for value in [*state.get("categories", []), *seen.dropna().tolist(), current, None]:
        if not any(str(value) == str(o) for o in options):
            options.append(value)
    return options


def what_if_inputs(trained: TrainedModel, row: dict, rows: pd.DataFrame, key: str, order: list[str],
                   shown: int) -> dict[str, Any]:
    """One input per original column, pre-filled from ``row``: numbers, seen categories, date text.
    The columns in ``order`` (the most important first); after the first ``shown``, in an expander."""
    states, values = _column_states(trained), {}
    top, rest = order[:shown], order[shown:]
    groups = [(st.container(), top)]
    if rest:
        groups.append((st.expander(t("The other {n} columns", n=len(rest))), rest))
    for place, columns in groups:
        cells = place.columns(3)
        for i, column in enumerate(columns):
            values[column] = _input(states[column], row.get(column), rows, cells[i % 3],
                                    f"{key}_{order.index(column)}")
    return values


def _input(state: dict, current: Any, rows: pd.DataFrame, cell: Any, key: str) -> Any:
    """The widget of one column: a number, a date as text, or a choice of the values seen."""
    column, kind = state["name"], state["kind"]
    if kind == "numeric":
        return cell.number_input(column, value=_number(current), step=_step(state), format="%g", key=key,
                                 help=t("Leave empty for a missing value."))
    if kind == "datetime":
        return cell.text_input(column, value="" if current is None else str(current), key=key,
                               help=t("A date written like the data writes them; empty: missing.")) or None
    options = _options(state, rows[column] if column in rows else pd.Series(dtype=object), current)
    index = next(j for j, o in enumerate(options) if str(o) == str(current))
    return cell.selectbox(column, options, index=index, key=key,
                          format_func=shown_as(options, lambda v: t("(missing)") if v is None else str(v)))


def _changed(trained: TrainedModel, row: dict, values: dict[str, Any]) -> dict[str, Any]:
    """The columns whose new value differs from the row's."""
    kinds, changes = trained.preprocessor.kinds, {}
    for column, value in values.items():
        before = row.get(column)
        if kinds[column] == "numeric":
            old = _number(before)
            same = (old is None and value is None) or (old is not None and value is not None
                                                        and math.isclose(old, float(value), rel_tol=1e-9))
        else:
            same = str(before if before is not None else "") == str(value if value is not None else "")
        if not same:
            changes[column] = value
    return changes


def what_if_section(state: AppState, rows: pd.DataFrame, chosen: int, original: dict, target: Any,
                    importance: list[dict] | None = None, prefix: str = "explain", caption: str = "",
                    compact: bool = False) -> None:
    """Part 4: a form pre-filled from the chosen row, the most important columns first; on submit the
    new answer beside the old one. ``compact`` (the Present page): fewer inputs shown before the
    rest fold away, and no pointers to the Evaluate page's other controls."""
    trained, tag = state.trained, state.run_id or "unsaved"
    row = {c: None if _missing(v) else v for c, v in rows.iloc[chosen].to_dict().items()}
    saved = f"{prefix}_whatif_changes_{tag}_{chosen}"
    with st.form(f"{prefix}_whatif_form_{tag}_{chosen}", border=True):
        if caption:
            st.caption(caption)
        values = what_if_inputs(trained, row, rows, f"{prefix}_whatif_{tag}_{chosen}",
                                _by_importance(trained, importance), 6 if compact else 9)
        if st.form_submit_button(t("See the new prediction"), icon=":material/play_arrow:", type="primary"):
            st.session_state[saved] = _changed(trained, row, values)
    changes = st.session_state.get(saved)
    if changes is None:
        return
    if not changes:
        st.info(t("Nothing was changed: change a value above, then press **See the new prediction**."),
                icon=":material/info:")
        return
    changed = _explain(state, f"row:{chosen}", rows.iloc[[chosen]], original["method"], target, changes)
    st.caption(t("Changed: {changes}",
                 changes="; ".join(f"**{c}** {_fmt(row.get(c))} → {_fmt(v)}" for c, v in changes.items())))
    scale, _ = amount_words(trained)
    reach = 1.1 * scale * max((abs(v) for e in (original, changed) for v in e["attributions"].values()), default=0.0)
    before, after = st.columns(2, gap="large")
    for column, explanation, key in ((before, original, "before"), (after, changed, "after")):
        with column:
            st.markdown(f"**{t('As it is') if key == 'before' else t('With your changes')}**")
            answer_cards(trained, explanation, original if key == "after" else None)
            shown = explanation["details"].get("values", {})
            names = list(explanation["attributions"])
            st.plotly_chart(attribution_figure([f"{c} = {_fmt(shown.get(c))}" for c in names],
                                               [explanation["attributions"][c] for c in names], trained,
                                               reach=reach or None), key=f"{prefix}_whatif_{key}")
    if trained.task in CLASS_TASKS and str(changed["prediction"]) != str(original["prediction"]):
        note = t("The model's answer changed to **{new}**; the bars still explain the probability of {old}.",
                 new=changed["prediction"], old=original["target"])
        if not compact:
            note = t("{note} Pick {new} under *Explain the probability of* above to see what speaks for the new "
                     "answer.", note=note, new=changed["prediction"])
        after.caption(note)
    st.markdown(tm(changed["sentence"]))


def answer_cards(trained: TrainedModel, explanation: dict, before: dict | None = None) -> None:
    """The answer as two cards; with ``before``, how far it moved from that answer."""
    left, right = st.columns(2)
    move = explanation["output"] - before["output"] if before is not None else None
    delta, arrow = (_change_text(trained, move), "auto") if move is not None else (None, "auto")
    if move is not None and abs(move) < (0.0005 if trained.task in CLASS_TASKS else 1e-6 * abs(before["output"])):
        delta, arrow = t("no change"), "off"  # less than the cards can show
    if trained.task == "anomaly":
        left.metric(t("Anomaly score"), _fmt(explanation["output"]), delta=delta, delta_color="off",
                    delta_arrow=arrow, border=True)
        right.metric(t("Flagged as unusual"), _flagged(explanation), border=True)
    elif trained.task in CLASS_TASKS:
        left.metric(t("The model says"), _fmt(explanation["prediction"]), border=True)
        right.metric(_probability_of(explanation), _output_text(trained, explanation["output"]),
                     delta=delta, delta_color="off", delta_arrow=arrow, border=True)
    else:
        left.metric(t("The model says"), _fmt(explanation["output"]), delta=delta, delta_color="off",
                    delta_arrow=arrow, border=True)


# --- the page parts -----------------------------------------------------------------------------------


def _title(text: str, caption: str) -> None:
    st.markdown(f"**{text}**")
    st.caption(caption)


def explain_section(state: AppState) -> None:
    """The Explain part of the Evaluate page: importance, one prediction, dependence, what-if."""
    trained = state.trained
    if trained is None:
        st.info(t("Train a model first: its explanations appear here."), icon=":material/info:")
        return
    st.subheader(t("Why the model answers as it does"))
    _title(t("What drives the predictions"), t("How much the model leans on each input column, measured on the "
                                               "test rows it never saw."))
    importance = None
    with user_errors():
        importance = importance_section(state)
    st.divider()
    _title(t("One prediction"), t("What pushed one answer up (green) or down (red), compared with a typical input."))
    if trained.kind != "table":
        with user_errors():
            {"images": _image_part, "text": _text_part, "series": _forecast_part}.get(
                trained.kind, lambda *_: st.info(t("This kind of model cannot be explained here.")))(state, "explain")
        st.info(t("Curves along a column and what-if questions are about the columns of a table; this model reads "
                  "{kind}.", kind=_kind_words(trained)), icon=":material/info:")
        return
    rows = kept_rows(trained)
    if rows.empty:
        st.info(t("This run kept no test rows to explain. Train it again to keep them."), icon=":material/info:")
        return
    chosen, original, target = None, None, None
    with user_errors():
        chosen, original, target = _row_part(state, rows, "explain")
    st.divider()
    _title(t("How the prediction moves along one column"), t("Everything else as it is in the test rows, one column "
                                                             "moved along its values, in the column's own units."))
    with user_errors():
        dependence_section(state, rows, importance, rows.iloc[chosen].to_dict() if chosen is not None else None)
    st.divider()
    _title(t("What if"), t("Change the chosen row's values and see how the model's answer moves."))
    if original is not None:
        with user_errors():
            what_if_section(state, rows, chosen, original, target, importance)


def present_explanations(state: AppState) -> None:
    """The Present page's compact explanations for a table run: the importance bars and a what-if form
    pre-filled from the first test row. Draws nothing for images, text and forecasts."""
    trained = state.trained
    if trained is None or trained.kind != "table":
        return
    rows, importance = kept_rows(trained), None
    if trained.task != "anomaly":
        st.subheader(t("What drives the predictions"))
        with user_errors():
            importance = importance_section(state, "present_explain")
    if rows.empty:
        return
    st.subheader(t("Try it: what if..."))
    with user_errors():
        results = trained.test_results or {}
        target = None
        if trained.task in CLASS_TASKS:  # the class the model gives the row (its index, see _class_picker)
            labels = [str(c) for c in trained.preprocessor.classes]
            answer = str((results.get("predicted") or [None])[0])
            target = labels.index(answer) if answer in labels else None
        original = _explain(state, "row:0", rows.iloc[[0]], "integrated_gradients", target)
        label = row_labels(trained, rows)[0]
        what_if_section(state, rows, 0, original, target, importance, "present_explain", compact=True,
                        caption=t("Starting from {row}. Change any value and press the button to see the model's "
                                  "new answer.", row=label[0].lower() + label[1:]))
