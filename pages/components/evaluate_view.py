"""Sections of the Evaluate page, one per kind of result, all drawn from the run itself.

Everything here reads the run's own ``metrics``, ``baseline``, ``info`` and ``test_results``
(``builder.results``), never the table loaded now, so loading other data loses nothing.
"""

from __future__ import annotations

import base64
import functools
import io
import threading

import numpy as np
import pandas as pd
import streamlit as st

from builder.errors import BuilderError
from builder.evaluate import (
    BASELINE_SHORT_NAMES,
    HEADLINE_METRIC,
    METRICS,
    Comparison,
    compare_to_baseline,
    confusion,
    format_metric,
    regression_diagnostics,
    verdict,
)
from builder.export import input_columns
from builder.results import anomaly_view, baseline_short_name, forecast_comparison, forecast_lines, rescore
from builder.spec import FAMILIES, ModelSpec
from builder.trained import TrainedModel
from pages.components import charts
from pages.components.i18n import shown_as, t, tcount, tm
from pages.components.state import AppState, app_state
from pages.components.training import STOP_REASONS, baseline_delta, loss_gap_note
from pages.components.ui import trained_time

THUMB_SIDE = 112  # pixels of a misclassified image on screen (small images are enlarged, sharp)
GRID_COLUMNS = 6
QUANTILE_RANGE = (90.0, 99.9)  # the threshold picker, in % of normal rows kept under the threshold
ITEMS = {"images": "test images", "text": "test texts", "series": "test windows"}
ITEM_WORDS = {"images": "images", "text": "texts"}  # what a classifier sorts; rows otherwise


# --- the header and the metric cards -------------------------------------------------------------------


def _in_sentence(label: str) -> str:
    """A title inside a sentence: "Typical error (RMSE)" -> "typical error (RMSE)"."""
    return label[:1].lower() + label[1:]


def run_caption(trained: TrainedModel) -> str:
    """'CNN classifying images · 60 test images · trained ... on CPU' in the user's words."""
    family = tm(FAMILIES[trained.spec.family].title) if trained.spec.family in FAMILIES else trained.spec.family
    target = trained.data_spec.target
    if trained.task == "anomaly":
        what = t("scoring how unusual each row is")
    elif trained.task == "forecast":
        what = t("forecasting **{target}** {steps} ahead", target=target, steps=tcount(trained.n_outputs, "step"))
    elif trained.kind == "images":
        what = t("sorting images into classes")
    else:
        what = t("predicting **{target}**", target=target)
    rows = trained.info.get("rows", {}).get("test", "?")
    return t("{family} {what} · {rows} {items} · trained {time} on {device}", family=family, what=what, rows=rows,
             items=t(ITEMS.get(trained.kind, "test rows")), time=trained_time(trained.info), device=tm(trained.device))


KIND_WORDS = {"images": "images", "text": "texts", "series": "a time series", "table": "a table"}


def _spec_key(data_spec) -> tuple:
    return (data_spec.kind, data_spec.task, data_spec.target, tuple(sorted(data_spec.features)))


def data_differs(state: AppState) -> bool:
    """Whether the data on the Data page now is not the data the current run was trained on: another
    file (the run remembers its file's name), another use of it, or data lacking the run's inputs."""
    trained = state.trained
    if trained is None or state.data_kind is None:
        return False
    if (trained.kind == "images") != (state.data_kind == "images"):
        return True
    source = trained.info.get("source")
    if source and source != state.table_name:
        return True
    if state.data_spec is None or _spec_key(state.data_spec) != _spec_key(trained.data_spec):
        return True
    if state.images is not None:
        return list(state.images.classes) != [str(c) for c in trained.preprocessor.classes]
    return state.df is not None and not set(input_columns(trained.preprocessor)) <= set(state.df.columns)


def _goal(data_spec) -> str:
    """'a table, predicting 'species'' in words."""
    data = t(KIND_WORDS.get(data_spec.kind, data_spec.kind))
    if data_spec.task == "anomaly":
        return t("{data}, finding unusual rows", data=data)
    if data_spec.task == "forecast":
        return t("{data}, forecasting '{target}'", data=data, target=data_spec.target)
    if data_spec.kind == "images":
        return t("{data}, sorting them into classes", data=data)
    return t("{data}, predicting '{target}'", data=data, target=data_spec.target)


def data_change_note(state: AppState) -> None:
    """A short note when other data was loaded since this run was trained; the run stays shown."""
    if not data_differs(state):
        return
    trained = state.trained
    source, goal = trained.info.get("source"), _goal(trained.data_spec)
    on = f"**{source}** ({goal})" if source else t("other data ({goal})", goal=goal)
    name = state.table_name or t("other data")
    now = (f"**{name}** ({_goal(state.data_spec)})" if state.data_spec is not None
           else t("**{name}**, not set up yet", name=name))
    st.info(t("This model was trained on {on}; the data loaded on the Data page now is {now}. The results below "
              "are still this model's, on its own test data. Train again to get a model of the new data.",
              on=on, now=now), icon=":material/swap_horiz:")


def metric_cards(trained: TrainedModel, offer_changes: bool = True) -> None:
    """The test metrics as cards, each against the baseline, then the verdict in one sentence;
    with ``offer_changes``, what to try when the baseline wins (never in a presentation)."""
    test = trained.metrics.get("test", {})
    base = trained.baseline.metrics if trained.baseline is not None else {}
    other = baseline_short_name(trained)
    comparisons = {c.metric: c for c in compare_to_baseline(trained.task, test, base, other)} if base else {}
    cards = [card for start in range(0, len(test), 3) for card in st.columns(3)]  # rows of 3: room to read
    for card, (metric, value) in zip(cards, test.items(), strict=False):
        info = METRICS[metric]
        delta, colour = baseline_delta(comparisons[metric]) if metric in comparisons else (None, "off")
        help_text = (t("{help} Baseline: {value}.", help=tm(info.help), value=format_metric(metric, base[metric]))
                     if metric in base else tm(info.help))
        card.metric(tm(info.label), format_metric(metric, value), delta=delta, delta_color=colour,
                    help=help_text, border=True)
    if trained.task == "anomaly":
        st.caption(t("An anomaly model has no right answers to score against: judge it by the rows it flags below."))
        return
    if not comparisons:
        st.info(t("This run has no baseline to compare with."), icon=":material/info:")
        return
    sentence, better = verdict_sentence(trained, comparisons, other)
    if better:
        st.success(sentence, icon=":material/thumb_up:")
    else:
        st.warning(sentence, icon=":material/lightbulb:")
    if not better and offer_changes:
        simple = "linear" if trained.task == "regression" else "logistic"
        if trained.kind == "table" and trained.spec.family != simple and st.button(
                t("Try {design} as the network's design", design=tm(FAMILIES[simple].title).lower()),
                icon=":material/swap_horiz:", key="eval_try_simple",
                help=t("Replaces the design on the Build page with the simple model and opens Train. "
                       "This model stays saved in the list of earlier runs.")):
            app_state().set_design(ModelSpec(family=simple))
            st.switch_page("pages/train.py")
        st.caption(":material/travel_explore: " + t(
            "Or let **{search}** on the Train page try larger and smaller designs and other settings within a few "
            "minutes, judged on the validation rows.", search=t("Find a better model")))
    st.caption(t("Baseline: {name}. {description}", name=tm(trained.baseline.name),
                 description=tm(trained.baseline.description)))


def verdict_sentence(trained: TrainedModel, comparisons: dict[str, Comparison], other: str | None) -> tuple[str, bool]:
    """(the verdict, whether the network wins). When it does not, the advice follows the run's own
    training history (``training_advice``), not a fixed "train longer"."""
    if trained.task == "forecast":
        found = forecast_comparison(trained.metrics.get("test", {}), trained.info.get("forecast_baselines") or {})
        if found.beats_best or found.best is None:
            return tm(found.verdict), found.beats_best
        baselines = trained.info["forecast_baselines"]
        model, base = float(trained.metrics["test"]["rmse"]), float(baselines[found.best]["rmse"])
        beaten = [tm(name) for name in baselines if float(baselines[name].get("rmse", np.inf)) > model]
        best = tm(found.best)
        fields = dict(best=best, model=format_metric("rmse", model), base=format_metric("rmse", base),
                      advice=training_advice(trained, t("the {best} forecast", best=best)))
        if beaten:
            return t("The network does not beat the {best} forecast: typical error (RMSE) {model} against {base}. "
                     "It does beat {names}. {advice}", names=_and(beaten), **fields), False
        return t("The network does not beat the {best} forecast: typical error (RMSE) {model} against {base}. "
                 "{advice}", **fields), False
    headline = comparisons.get(HEADLINE_METRIC[trained.task])
    if headline is None or headline.better:
        return tm(verdict(trained.task, list(comparisons.values()), other)), headline is not None
    name = tm(other or BASELINE_SHORT_NAMES[trained.task])
    fields = dict(name=name, what=_in_sentence(tm(headline.label)), advice=training_advice(trained, name),
                  model=format_metric(headline.metric, headline.model),
                  base=format_metric(headline.metric, headline.baseline))
    if headline.sentence.startswith("about the same"):
        return t("The network is about as good as {name} on {what}: {model} against {base}. {advice}", **fields), False
    return t("The network does not beat {name} on {what}: {model} against {base}. {advice}", **fields), False


def _and(names: list[str]) -> str:
    """"a and b and c", in the session's language."""
    return functools.reduce(lambda first, second: t("{first} and {second}", first=first, second=second), names)


def training_advice(trained: TrainedModel, simple: str) -> str:
    """What to try when the network does not beat ``simple`` (the baseline), read from how its
    training went: more epochs only where the validation loss was still falling at the end."""
    history = trained.history
    run, best, reason = history.epochs_run, history.best_epoch, history.stopped_reason
    smaller = t("a simpler design (fewer or narrower layers, more dropout)")
    if trained.task == "forecast" or trained.kind == "table":
        instead = t("; or use {simple}: it is simpler and does at least as well", simple=simple)
    else:
        instead = t("; or bring more examples of each class")
    if reason == "diverged":
        return t("Training diverged (the loss stopped being a number at epoch {epoch}): train again with a "
                 "smaller learning rate, e.g. {lr:g}.", epoch=run + 1, lr=trained.config.lr / 10)
    if reason == "early_stopping" or (best and run - best >= max(3, run // 5)):  # a plateau, long before the end
        how = (t("Early stopping ended training at epoch {run}", run=run) if reason == "early_stopping"
               else t("Training ran {run} epochs", run=run))
        return t("{how}, and the validation loss was lowest at epoch {best}: more epochs would not help, since "
                 "after that the network only learned its training data by heart. Try {smaller}{instead}.",
                 how=how, best=best, smaller=smaller, instead=instead)
    if best and run - best <= 1:  # still improving when it ended: more time is the obvious thing to try
        if reason == "stopped_by_user":
            why = t("you stopped it at epoch {run}", run=run)
        elif reason == "time_limit":
            why = t("the time limit ended it at epoch {run}", run=run)
        else:
            why = t("it ended at epoch {run}", run=run)
        return t("The validation loss was still falling when {why}: train for more epochs, or with a larger "
                 "learning rate{instead}.", why=why, instead=instead)
    return t("Try a smaller learning rate or {smaller}{instead}.", smaller=smaller, instead=instead)


# --- regression and classification --------------------------------------------------------------------


def classification_plots(trained: TrainedModel, actual: np.ndarray, predicted: np.ndarray) -> None:
    matrix = confusion(actual, predicted, trained.preprocessor.classes)
    items = ITEM_WORDS.get(trained.kind, "rows")  # what was classified: rows, images or texts
    left, right = st.columns(2, gap="large")
    with left:
        st.markdown(t("**Where the model goes wrong**"))
        shares = st.toggle(t("Show shares of each true class"), key="eval_shares")
        st.plotly_chart(charts.confusion_figure(matrix.classes, matrix.counts, matrix.normalized, shares, items),
                        key="confusion")
        st.caption(t("Each row is what the {items} really are, each column what the model said. The diagonal "
                     "holds the right answers; everything else is a mix-up.", items=t(items)))
    with right:
        st.markdown(t("**Per class**"))
        table = charts.per_class_table(matrix.classes, matrix.counts, items)
        st.dataframe(table, hide_index=True, width="stretch", column_config=charts.per_class_columns(items))


def regression_plots(trained: TrainedModel, actual: np.ndarray, predicted: np.ndarray) -> None:
    diagnostics = regression_diagnostics(actual, predicted)
    target = trained.data_spec.target
    left, right = st.columns(2, gap="large")
    with left:
        st.markdown(t("**Predicted against actual**"))
        st.plotly_chart(charts.predicted_vs_actual_figure(diagnostics.actual, diagnostics.predicted, target),
                        key="pred_vs_actual")
        st.caption(t("Each dot is a test row. Dots on the dashed line are predicted exactly; "
                     "the further from it, the bigger the miss."))
    with right:
        st.markdown(t("**How big the misses are**"))
        spread, pattern = st.tabs([t("Spread of errors"), t("Errors by prediction")])
        spread.plotly_chart(charts.residual_histogram(diagnostics.residuals, target), key="residual_hist")
        spread.caption(t("Errors bunched around 0 are good; a long tail means some rows are badly missed."))
        pattern.plotly_chart(charts.residual_scatter(diagnostics.predicted, diagnostics.residuals, target),
                             key="residual_scatter")
        pattern.caption(t("A shapeless band around 0 is good; a funnel or curve means the model misses a pattern."))


def predictions_section(trained: TrainedModel) -> None:
    """Tables, images and text: the confusion matrix or the residual plots, then the mistakes."""
    results = trained.test_results or {"actual": [], "predicted": []}
    actual, predicted = np.asarray(results.get("actual", [])), np.asarray(results.get("predicted", []))
    if not len(actual):
        st.info(t("This run kept no test rows to draw. Train it again to see the detailed charts."),
                icon=":material/info:")
    elif trained.task == "regression":
        regression_plots(trained, actual.astype(np.float64), predicted.astype(np.float64))
    else:
        classification_plots(trained, actual, predicted)
    if trained.kind == "images" and "mistakes" in results:
        image_mistakes(results["mistakes"])
    elif trained.kind == "text" and "mistakes" in results:
        text_mistakes(results["mistakes"])


def _thumbnail(data_uri: str) -> bytes:
    """A kept PNG enlarged to about ``THUMB_SIDE`` pixels with sharp pixels (no blur)."""
    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(data_uri.split(",", 1)[-1])))
    scale = max(1, THUMB_SIDE // max(image.size))
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def image_mistakes(mistakes: list[dict]) -> None:
    st.markdown(t("**Test images the model got wrong**"))
    if not mistakes:
        st.success(t("Every test image was classified correctly."), icon=":material/check_circle:")
        return
    st.caption(t("The {n} most confident mistakes first. Look for a pattern: blurry, cropped or mislabelled images "
                 "are worth fixing in the data.", n=len(mistakes)))
    for start in range(0, len(mistakes), GRID_COLUMNS):
        for cell, item in zip(st.columns(GRID_COLUMNS), mistakes[start:start + GRID_COLUMNS], strict=False):
            cell.image(_thumbnail(item["image"]), width=THUMB_SIDE,
                       caption=t("is {actual}, model said {predicted} ({confidence:.0%})", actual=item["actual"],
                                 predicted=item["predicted"], confidence=item["confidence"]))
            cell.caption(str(item.get("file", "")).rsplit("/", 1)[-1], help=str(item.get("file", "")))


def text_mistakes(mistakes: list[dict]) -> None:
    st.markdown(t("**Test texts the model got wrong**"))
    if not mistakes:
        st.success(t("Every test text was classified correctly."), icon=":material/check_circle:")
        return
    table = pd.DataFrame({"Text": [m["text"] for m in mistakes], "Actual": [str(m["actual"]) for m in mistakes],
                          "Predicted": [str(m["predicted"]) for m in mistakes],
                          "Confidence": [float(m["confidence"]) for m in mistakes]})
    st.dataframe(table, hide_index=True, width="stretch", key="text_mistakes", column_config={
        "Text": st.column_config.TextColumn(t("Text"), width="large"),
        "Actual": st.column_config.TextColumn(t("Actual")),
        "Predicted": st.column_config.TextColumn(t("Predicted")),
        "Confidence": st.column_config.ProgressColumn(
            t("Confidence"), format="percent", min_value=0.0, max_value=1.0,
            help=t("The chance the model gave its (wrong) answer: high means confidently wrong.")),
    })
    st.caption(t("The {n} most confident mistakes first. Texts that even a person finds ambiguous are fine; clear "
                 "ones point to missing words or mislabelled examples.", n=len(mistakes)))


# --- forecasts ------------------------------------------------------------------------------------------


def forecast_section(trained: TrainedModel) -> None:
    results = trained.test_results or {}
    horizon, target = int(results.get("horizon", trained.n_outputs)), trained.data_spec.target
    step: int | None = 1
    if horizon > 1:
        left, right = st.columns([2, 3])
        views = ["Along the test period", "The last forecast in full"]
        whole = left.radio(t("Show"), views, horizontal=True, key="eval_forecast_view",
                           format_func=shown_as(views)) == "The last forecast in full"
        steps = list(range(1, horizon + 1))
        step = None if whole else right.select_slider(
            t("How far ahead"), options=steps, key="eval_forecast_step",
            format_func=shown_as(steps, lambda k: tcount(k, "step")),
            help=t("Each point is the forecast made this many steps before it. Further ahead is harder."))
    lines = forecast_lines(results, step)
    comparison = forecast_comparison(trained.metrics.get("test", {}), trained.info.get("forecast_baselines") or {})
    chart, errors = st.tabs([t("Forecast against actual"), t("Forecast errors")])
    chart.plotly_chart(charts.forecast_figure(lines, target, comparison.best), key="forecast_chart")
    chart.caption(t("The blue line is the network's forecast, the dark line what happened. Click a simple forecast "
                    "in the legend to show or hide it."))
    errors.plotly_chart(charts.residual_histogram(lines.residuals, target), key="forecast_residuals")
    errors.caption(t("Actual minus forecast, {label}: bunched around 0 is good; off-centre means the forecasts run "
                     "high or low.", label=tm(lines.label)))
    st.markdown(t("**The network against simple forecasts**"))
    st.dataframe(forecast_table(comparison.table), hide_index=True, width="stretch", key="forecast_comparison",
                 column_config={"Forecast": st.column_config.TextColumn(t("Forecast")), **{
                     METRICS[metric].label: st.column_config.NumberColumn(
                         tm(METRICS[metric].label), format=number, help=tm(METRICS[metric].help))
                     for metric, number in (("rmse", "%.4g"), ("mae", "%.4g"), ("r2", "%.3f"))}})
    st.caption(t("Last value repeats the last known value; seasonal naive repeats the value one season earlier; "
                 "lagged ridge is a linear model on the same window of past values."))


def forecast_table(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison table with its metrics under their labels ("Typical error (RMSE)") and the forecasts
    named in the session's language."""
    table = table.rename(columns={metric: METRICS[metric].label for metric in ("rmse", "mae", "r2")})
    return table.assign(Forecast=table["Forecast"].map(t))


# --- anomaly detection -----------------------------------------------------------------------------------


_SAVE_LOCK = threading.Lock()  # Streamlit's fast reruns can run two callbacks of a session at once
THRESHOLD_ERROR = "eval_threshold_error"


def save_threshold(state: AppState, key: str) -> None:
    """Slider callback: move the run's threshold and save the run, so the export uses it too."""
    with _SAVE_LOCK:
        quantile = st.session_state[key] / 100  # read under the lock: the latest position wins
        try:
            rescore(state.trained, quantile)
            if state.run_id:
                state.workspace.update_run(state.trained, state.run_id)
                state.workspace.save_state("bundle", None)  # a bundle built before has the old threshold
                state.exported = False
        except BuilderError as exc:
            st.session_state[THRESHOLD_ERROR] = str(exc)


def anomaly_section(state: AppState) -> None:
    view = anomaly_view(state.trained.test_results or {})
    if not len(view.val_errors):
        st.info(t("This run kept no anomaly scores to draw. Train it again to see them."), icon=":material/info:")
        return
    if message := st.session_state.pop(THRESHOLD_ERROR, None):
        st.error(t("The new threshold could not be saved: {message}", message=tm(message)), icon=":material/error:")
    key = f"eval_quantile_{state.run_id}"
    low, high = QUANTILE_RANGE
    st.slider(t("Normal rows kept under the threshold"), low, high, float(np.clip(view.quantile * 100, low, high)),
              step=0.1, format="%.1f%%", key=key, on_change=save_threshold, args=(state, key),
              help=t("The threshold is set so this share of the validation rows (rows like the training data) "
                     "scores below it. Lower it to flag more rows, raise it for fewer false alarms. "
                     "The change is saved with the model and goes into its export."))
    n_test = len(view.test_errors)
    left, right = st.columns([1, 2], gap="large")
    left.metric(t("Test rows flagged"), t("{flagged:,} of {total:,}", flagged=view.flagged, total=n_test),
                border=True, help=t("Test rows whose anomaly score is above the threshold."))
    left.metric(t("Threshold"), f"{view.threshold:.4g}", border=True,
                help=t("Anomaly score (reconstruction error) above which a row is flagged."))
    right.plotly_chart(charts.error_histogram(view.val_errors, view.test_errors, view.threshold),
                       key="anomaly_histogram")
    right.caption(t("Rows right of the dashed line are flagged. Validation rows are like the training data; "
                    "a test row far out on the right is unlike anything the model learnt."))
    st.markdown(t("**Flagged test rows, most unusual first**"))
    if view.rows.empty:
        st.success(t("No test row is above the threshold."), icon=":material/check_circle:")
        return
    st.dataframe(view.rows, hide_index=True, width="stretch", key="flagged_rows", column_config={
        "anomaly_score": st.column_config.NumberColumn(t("Anomaly score"), format="%.4g")})
    if view.flagged > len(view.rows):
        st.caption(t("The {shown} most unusual of the {flagged:,} flagged rows are kept with the run.",
                     shown=len(view.rows), flagged=view.flagged))


# --- training curves ----------------------------------------------------------------------------------


def training_history(trained: TrainedModel) -> None:
    history = trained.history
    loss, metric = charts.history_figures(history, trained.task)
    left, right = st.columns(2, gap="large")
    left.plotly_chart(loss, key="history_loss")
    if metric is not None:
        right.plotly_chart(metric, key="history_metric")
    st.caption(t("{epochs} epochs; training stopped because {reason}. The model kept is the one of epoch {best}, "
                 "where the validation loss was lowest. {note}", epochs=history.epochs_run,
                 reason=tm(STOP_REASONS.get(history.stopped_reason, history.stopped_reason)),
                 best=history.best_epoch, note=loss_gap_note(trained)))
