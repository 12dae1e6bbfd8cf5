"""Evaluate: how good the model is on rows it never saw, against a simple baseline, in pictures."""

from __future__ import annotations

import numpy as np
import streamlit as st

from builder.evaluate import (
    HEADLINE_METRIC,
    METRICS,
    compare_to_baseline,
    confusion,
    format_metric,
    regression_diagnostics,
    verdict,
)
from builder.pipeline import TrainedModel
from builder.spec import FAMILIES, ModelSpec
from pages.components import charts
from pages.components.state import app_state
from pages.components.training import STOP_REASONS, baseline_delta
from pages.components.ui import empty_state, go_to, page_header, user_errors


def metric_cards(trained: TrainedModel) -> None:
    test = trained.metrics.get("test", {})
    base = trained.baseline.metrics if trained.baseline is not None else {}
    comparisons = {c.metric: c for c in compare_to_baseline(trained.task, test, base)} if base else {}
    cards = [card for start in range(0, len(test), 3) for card in st.columns(3)]  # rows of 3: room to read
    for card, (metric, value) in zip(cards, test.items(), strict=False):
        info = METRICS[metric]
        delta, colour = baseline_delta(comparisons[metric]) if metric in comparisons else (None, "off")
        baseline_text = f" Baseline: {format_metric(metric, base[metric])}." if metric in base else ""
        card.metric(info.label, format_metric(metric, value), delta=delta, delta_color=colour,
                    help=f"{info.help}{baseline_text}", border=True)
    if not comparisons:
        st.info("This run has no baseline to compare with.", icon=":material/info:")
        return
    sentence = verdict(trained.task, list(comparisons.values()))
    headline = comparisons.get(HEADLINE_METRIC[trained.task])
    if headline is not None and headline.better:
        st.success(sentence, icon=":material/thumb_up:")
    else:
        st.warning(sentence, icon=":material/lightbulb:")
        simple = "linear" if trained.task == "regression" else "logistic"
        if trained.spec.family != simple and st.button(
                f"Try {FAMILIES[simple].title.lower()} as the network's design", icon=":material/swap_horiz:",
                help="Replaces the design on the Build page with the simple model and opens Train. "
                     "This model stays saved in the list of earlier runs."):
            state = app_state()
            state.set_design(ModelSpec(family=simple))
            st.switch_page("pages/train.py")
    st.caption(f"Baseline: {trained.baseline.name}. {trained.baseline.description}")


def classification_plots(trained: TrainedModel, actual: np.ndarray, predicted: np.ndarray) -> None:
    matrix = confusion(actual, predicted, trained.preprocessor.classes)
    left, right = st.columns(2, gap="large")
    with left:
        st.markdown("**Where the model goes wrong**")
        shares = st.toggle("Show shares of each true class", key="eval_shares")
        st.plotly_chart(charts.confusion_figure(matrix.classes, matrix.counts, matrix.normalized, shares),
                        key="confusion")
        st.caption("Each row is what the rows really are, each column what the model said. "
                   "The diagonal holds the right answers; everything else is a mix-up.")
    with right:
        st.markdown("**Per class**")
        table = charts.per_class_table(matrix.classes, matrix.counts)
        share = {"format": "%.1f%%", "min_value": 0, "max_value": 100}
        st.dataframe(table, hide_index=True, width="stretch", column_config={
            "Precision": st.column_config.ProgressColumn(
                "Precision", **share, help="When the model says this class, how often it is right."),
            "Recall": st.column_config.ProgressColumn(
                "Recall", **share, help="Of the rows truly in this class, the share the model finds."),
        })


def regression_plots(trained: TrainedModel, actual: np.ndarray, predicted: np.ndarray) -> None:
    diagnostics = regression_diagnostics(actual, predicted)
    target = trained.data_spec.target
    left, right = st.columns(2, gap="large")
    with left:
        st.markdown("**Predicted against actual**")
        st.plotly_chart(charts.predicted_vs_actual_figure(diagnostics.actual, diagnostics.predicted, target),
                        key="pred_vs_actual")
        st.caption("Each dot is a test row. Dots on the dashed line are predicted exactly; "
                   "the further from it, the bigger the miss.")
    with right:
        st.markdown("**How big the misses are**")
        spread, pattern = st.tabs(["Spread of errors", "Errors by prediction"])
        spread.plotly_chart(charts.residual_histogram(diagnostics.residuals, target), key="residual_hist")
        spread.caption("Errors bunched around 0 are good; a long tail means some rows are badly missed.")
        pattern.plotly_chart(charts.residual_scatter(diagnostics.predicted, diagnostics.residuals, target),
                             key="residual_scatter")
        pattern.caption("A shapeless band around 0 is good; a funnel or curve means the model misses a pattern.")


state = app_state()
page_header("Evaluate", "How good the model is on test rows it never saw while training, next to a simple baseline.")
if not state.has_model:
    empty_state("Train a model first: its results appear here.", "Train", "Go to Train")
trained = state.trained
family = FAMILIES[trained.spec.family].title if trained.spec.family in FAMILIES else trained.spec.family
st.caption(f"{family} predicting **{trained.data_spec.target}** · {trained.info.get('rows', {}).get('test', '?')} "
           f"test rows · trained {trained.info.get('trained_at', '')} on {trained.device}")
metric_cards(trained)

st.subheader("Test rows in detail")
with user_errors():
    # The run keeps its own test answers, so these charts never depend on the table loaded now.
    results = trained.test_results or {"actual": [], "predicted": []}
    actual, predicted = np.asarray(results["actual"]), np.asarray(results["predicted"])
    if not len(actual):
        st.info("This run kept no test rows to draw. Train it again to see the detailed charts.",
                icon=":material/info:")
    elif trained.task == "regression":
        regression_plots(trained, actual.astype(np.float64), predicted.astype(np.float64))
    else:
        classification_plots(trained, actual, predicted)

st.subheader("How training went")
history = trained.history
loss, metric = charts.history_figures(history, trained.task)
left, right = st.columns(2, gap="large")
left.plotly_chart(loss, key="history_loss")
if metric is not None:
    right.plotly_chart(metric, key="history_metric")
st.caption(f"{history.epochs_run} epochs; training stopped because "
           f"{STOP_REASONS.get(history.stopped_reason, history.stopped_reason)}. The model kept is the one of "
           f"epoch {history.best_epoch}, where the validation loss was lowest. Validation far above training "
           "means the model memorises rather than learns.")
go_to("Export", "Next: export the model")
