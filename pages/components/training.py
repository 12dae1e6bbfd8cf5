"""Training from the Train page: start a background job, poll it live, take over its result.

The job's ``work`` and ``on_done`` run in the worker thread and never touch Streamlit: the run is
trained, evaluated and saved to the workspace even if the browser is closed half way. The page
draws the job through ``live_panel``, a fragment that reruns every half second while the job runs
and hands over to one full rerun (``st.rerun()``) when it ends.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path

import streamlit as st

from builder.errors import BuilderError
from builder.evaluate import HEADLINE_METRIC, METRICS, Comparison, compare_to_baseline, format_metric
from builder.export import TRAINED_JSON
from builder.jobs import FAILED, PAUSED, STOPPING, Job, JobSnapshot
from builder.pipeline import TrainedModel, train_model
from builder.spec import FAMILIES
from builder.train import Callback, TrainConfig, TrainControl
from builder.workspace import RunSummary
from pages.components import charts
from pages.components.coach_view import coach_panel, history_from_logs
from pages.components.state import AppState, job_registry
from pages.components.ui import trained_time, user_errors

POLL_SECONDS = 0.5

STOP_REASONS = {
    "completed": "it ran every planned epoch",
    "early_stopping": "the validation loss stopped improving (early stopping)",
    "stopped_by_user": "you pressed Stop",
    "time_limit": "the time limit was reached",
    "diverged": "the loss stopped being a number (diverged)",
    "error": "an error interrupted it",
}


def run_title(state: AppState) -> str:
    family = FAMILIES.get(state.design.family) if state.design else None
    name = family.title if family else "Model"
    return f"{name} on {state.table_name or 'your table'}"


def start_training(state: AppState, config: TrainConfig) -> Job:
    """Save the settings and start training in the background; the job id goes into the state.

    Raises:
        BuilderError: too many trainings already run in this workspace.
    """
    state.set_config(config)
    source, data_spec, design, workspace = state.data_source(), state.data_spec, state.design, state.workspace
    title, data_name = run_title(state), state.table_name

    def work(control: TrainControl, callbacks: Sequence[Callback]) -> TrainedModel:
        trained = train_model(source, data_spec, config, spec=design, callbacks=callbacks, control=control)
        if data_name:
            trained.info["source"] = data_name  # kept with the run: what it was trained on (and the model card's)
        return trained

    def on_done(job: Job) -> None:  # worker thread: the run is saved even if nobody is watching
        job.outputs["run_id"] = workspace.save_run(job.result, title)

    job = job_registry().start(workspace.token, work, title, config.epochs, on_done)
    job.outputs["config"] = config  # the run's own settings: the coach reads its curves with them
    state.set_job(job.id)
    return job


def missing_data_message(state: AppState) -> str:
    """Why there is nothing to train on yet, in the words of the data the user has."""
    if state.data_kind is None:
        return ("Load your data first: a table, a time series, texts, or a zip of pictures with one "
                "folder per class.")
    if state.data_kind == "images":
        return "Check the pictures on the Data page first: it saves the size and the augmentation to use."
    return "Load a table and choose the column to predict first (or what else the model should learn)."


def design_problems(state: AppState) -> list[str]:
    """What stops the design from training on this data (a table design on images, ...)."""
    spec = state.data_spec
    return [p.message for p in state.design.validate(spec.task, spec.kind)]


def current_job(state: AppState) -> Job | None:
    """The job this workspace last started, if the registry still holds it."""
    return job_registry().get(state.workspace.token, state.job_id) if state.job_id else None


def take_over_if_done(state: AppState, job: Job) -> str:
    """Look at the job: "running", "failed", "adopted" (its saved run just became the current model)
    or "finished" (adopted on an earlier run of the page).

    A failed job leaves the previously trained model in place. The job id stays in the state until
    the next Start or until an earlier run is opened, so the page can say how the last training ended.
    """
    if not job.snapshot().done:
        return "running"
    run_id = job.outputs.get("run_id")
    if job.status == FAILED or not run_id or job.result is None:
        return "failed"
    if state.run_id == run_id:
        return "finished"
    state.set_trained(job.result, run_id)
    return "adopted"


def show_failure(job: Job) -> None:
    st.error(f"Training did not finish: {job.error}", icon=":material/error:")
    if job.error_detail:
        with st.expander("Details for a bug report"):
            st.code(job.error_detail, language="text")
    if job.result is not None:
        st.caption("The model was trained but could not be saved; the previous model is still the current one.")


def _progress_text(snap: JobSnapshot) -> tuple[float, str]:
    """Share done and "Epoch 3 of 30 · about 12 s left", counting the epoch in progress."""
    fraction, eta = snap.fraction, snap.eta
    current = min(snap.epochs, snap.epoch + 1)
    if snap.stage:  # cross-validation: "Fold 2 of 5 · Epoch 3 of 30 ..."
        share, text = _progress_text(dataclasses.replace(snap, stage=""))
        return share, f"{snap.stage} · {text}"
    if snap.training_ended:  # after the last epoch or Stop: the test scores and the baseline take seconds
        done = "Stopped" if snap.status == STOPPING else "Training done"
        return 1.0, f"{done} · scoring the test rows and fitting the baseline on the same split..."
    if snap.status == PAUSED:
        return fraction, f"Paused at epoch {current} of {snap.epochs} · press Resume to go on"
    if snap.status == STOPPING:
        return fraction, f"Stopping at epoch {current} of {snap.epochs} · keeping the best model so far"
    left = f" · about {_duration(eta)} left" if eta is not None else " · estimating time left..."
    # The charts show the finished epochs: say how many, beside the one running now.
    done = f" ({snap.epoch} done)" if snap.epoch else ""
    return fraction, f"Epoch {current} of {snap.epochs}{done}{left}"


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


QUALITY_TITLES = {
    "forecast": "Typical forecast error, RMSE (lower is better)",
    "anomaly": "Reconstruction error on validation rows (lower is better)",
}


def quality_figure(epochs: Sequence[float], metrics: dict[str, Sequence[float]], val_loss: Sequence[float],
                   task: str, best_epoch: int | None = None):
    """The quality measure per epoch that fits the task, or ``None`` before there is one.

    Classification: accuracy; regression and forecasts: validation RMSE in the target's units; finding
    unusual rows: the validation loss, which is the reconstruction error (how far the model's copy
    of a row is from the row).
    """
    if task == "anomaly":
        if not len(val_loss):
            return None
        return charts.metric_figure(epochs, {"Validation": val_loss}, QUALITY_TITLES[task], best_epoch=best_epoch)
    if task == "forecast":
        if not metrics.get("val_rmse"):
            return None
        return charts.metric_figure(epochs, {"Validation": metrics["val_rmse"]}, QUALITY_TITLES[task],
                                    best_epoch=best_epoch)
    return charts.metric_history_figure(epochs, metrics, task, best_epoch)


def _live_charts(snap: JobSnapshot, task: str) -> None:
    logs = snap.epoch_logs
    epochs = [log["epoch"] for log in logs]
    best = int(logs[-1]["best_epoch"]) if logs and logs[-1].get("best_epoch") else None
    batch_x = [x for x, _ in snap.batch_points]
    batch_y = [y for _, y in snap.batch_points]
    left, right = st.columns(2)
    if logs or batch_x:  # the running batch loss moves from the first batch on
        left.plotly_chart(charts.loss_figure(epochs, [log["loss"] for log in logs], [log["val_loss"] for log in logs],
                                             batch_x, batch_y, best_epoch=best), key="live_loss")
    else:  # preparing the data and the first batch: no empty axes
        left.info("The loss curve appears after the first batch of training.", icon=":material/hourglass_top:")
    metrics = {key: [log[key] for log in logs if key in log] for key in ("accuracy", "val_accuracy", "val_rmse")}
    figure = quality_figure(epochs, metrics, [log["val_loss"] for log in logs], task, best)
    if figure is not None:
        right.plotly_chart(figure, key="live_metric")
    else:
        right.info("The quality chart appears when the first epoch ends.", icon=":material/hourglass_top:")


def live_panel(job: Job, task: str, device_label: str, state: AppState | None = None) -> None:
    """Progress, live charts and Stop/Pause of a running job, redrawn every half second; with
    ``state``, the coach's reading of the curves so far (read again when an epoch ends)."""

    def draw() -> None:
        snap = job.snapshot()
        if snap.done:
            st.rerun()  # once: the full run takes over the result and drops run_every
        fraction, text = _progress_text(snap)
        st.progress(fraction, text=text)
        stop, pause, device = st.columns([1, 1, 3], vertical_alignment="center")
        # Callbacks run before the redraw the click causes, so that redraw already shows the new state.
        stop.button("Stop", icon=":material/stop_circle:", disabled=snap.status == STOPPING, on_click=job.stop,
                    help="End training now and keep the best model found so far.", width="stretch")
        if snap.status == PAUSED:
            pause.button("Resume", icon=":material/play_arrow:", on_click=job.resume, width="stretch")
        else:
            pause.button("Pause", icon=":material/pause:", disabled=snap.status == STOPPING, on_click=job.pause,
                         width="stretch")
        paused = " (pauses included; the training time counts epochs only)" if snap.status == PAUSED else ""
        device.caption(f":material/memory: Training on {snap.device or device_label} · started "
                       f"{_duration(snap.elapsed)} ago{paused}")
        _live_charts(snap, task)
        if state is not None:
            coach_panel(state, history_from_logs(snap.epoch_logs), task, job.outputs.get("config"), False,
                        key=f"job_{job.id}_{snap.stage}")

    st.fragment(run_every=POLL_SECONDS)(draw)()


def baseline_delta(comparison: Comparison) -> tuple[str, str]:
    """The st.metric delta and colour for one metric against the baseline.

    Shares read "+6.2 points vs logistic regression"; errors "-12% vs ridge regression" with the
    colours inverted (lower is better), so green always means the network is ahead.
    """
    sentence = comparison.sentence
    if sentence.startswith("about the same"):
        return sentence, "off"
    if METRICS[comparison.metric].higher_is_better:
        return sentence, "normal"
    if not comparison.baseline:  # an exact baseline: no percentage, keep the sentence
        return sentence, "inverse"
    percent = (comparison.model - comparison.baseline) / abs(comparison.baseline) * 100
    return f"{percent:+.1f}% vs {sentence.split(' than ', 1)[-1]}", "inverse"


def result_summary(trained: TrainedModel, with_curves: bool = False) -> None:
    """What the current model is: epochs, why it stopped, best epoch, time, device, test score,
    and (``with_curves``) its loss and quality curves."""
    history = trained.history
    headline = HEADLINE_METRIC[trained.task]
    test = trained.metrics.get("test", {})
    why = STOP_REASONS.get(history.stopped_reason, history.stopped_reason)
    if trained.info.get("warning"):
        st.warning(trained.info["warning"], icon=":material/warning:")
    cards = st.columns([1, 1, 1, 2])  # the test score's card has room for its baseline sentence
    cards[0].metric("Epochs run", history.epochs_run, help=f"Training stopped because {why}.", border=True)
    cards[1].metric("Best epoch", history.best_epoch or "none", border=True,
                    help="The epoch with the lowest validation loss: its model is the one kept.")
    cards[2].metric("Training time", _duration(trained.seconds), help=f"On {trained.device}; pauses not counted.",
                    border=True)
    if headline in test:
        info = METRICS[headline]
        delta, colour = None, "off"
        if trained.baseline is not None:
            found = compare_to_baseline(trained.task, test, trained.baseline.metrics)
            delta, colour = next((baseline_delta(c) for c in found if c.metric == headline), (None, "off"))
        cards[3].metric(f"Test {info.label[0].lower()}{info.label[1:]}", format_metric(headline, test[headline]),
                        delta=delta, delta_color=colour, border=True,
                        help=f"{info.help} Measured on rows kept aside for the final score.")
    st.caption(f"Stopped because {why}. Trained on {trained.device}.{_task_note(trained)}")
    if trained.info.get("cross_validation"):
        cv_summary(trained.info["cross_validation"])
    if with_curves:
        loss = charts.loss_figure(history.epoch, history.loss, history.val_loss, best_epoch=history.best_epoch)
        metric = quality_figure(history.epoch, history.metrics, history.val_loss, trained.task, history.best_epoch)
        left, right = st.columns(2, gap="large")
        left.plotly_chart(loss, key="result_loss")
        if metric is not None:
            right.plotly_chart(metric, key="result_metric")
        if note := loss_gap_note(trained):
            st.caption(note)


def cv_summary(cv: dict) -> None:
    """The cross-validation table: each metric's mean ± spread over the folds, network vs baseline."""
    rows = cv_rows(cv)
    if not rows:
        return
    st.markdown(f"**Cross-validation, {cv.get('completed', cv['folds'])} of {cv['folds']} folds** "
                f"({cv.get('method', '')})")
    st.dataframe(rows, hide_index=True)
    if cv.get("refit_epochs"):
        st.caption(f"The final model learnt from every row outside the test set for {cv['refit_epochs']} "
                   "epochs, the median best epoch of the folds; its test score is above.")


def cv_rows(cv: dict) -> list[dict[str, str]]:
    """One row per metric: "0.972 ± 0.011" for the network and the baseline."""
    network, baseline = cv.get("network") or {}, cv.get("baseline") or {}

    def shown(name: str, value: float) -> str:
        try:
            return format_metric(name, value)
        except BuilderError:  # a metric without a display rule (reconstruction error...)
            return f"{value:.4g}"

    def spread(values: dict | None, name: str) -> str:
        if not values:
            return "-"
        return f"{shown(name, values['mean'])} ± {shown(name, values['std'])}"

    return [{"Metric": METRICS[name].label if name in METRICS else name,
             "Network (mean ± spread)": spread(network[name], name),
             f"{cv.get('baseline_name') or 'Baseline'}": spread(baseline.get(name), name)}
            for name in network]


LOSS_GAP = 1.3  # one loss this many times the other, at the kept epoch, is "far above" it


def train_only_parts(trained: TrainedModel) -> list[str]:
    """What acts while training only and makes the training loss read higher than the validation loss."""
    parts = []
    layers = trained.spec.layers
    if any((layer.type.startswith("Dropout") and float(layer.params.get("p", 0) or 0) > 0)
           or float(layer.params.get("dropout", 0) or 0) > 0 for layer in layers):
        parts.append("dropout")
    if trained.kind == "images" and trained.data_spec.option("augment", False):
        parts.append("the picture variations (augmentation)")
    return parts


def loss_gap_note(trained: TrainedModel) -> str:
    """One or two sentences on the gap between the training and validation loss of the kept epoch,
    explaining the case the chart shows (either one far above the other, or both close)."""
    history = trained.history
    if not history.epoch:
        return ""
    i = history.epoch.index(history.best_epoch) if history.best_epoch in history.epoch else -1
    train, val = float(history.loss[i]), float(history.val_loss[i])
    if not (math.isfinite(train) and math.isfinite(val)) or train <= 0 or val <= 0:
        return ""
    if train > LOSS_GAP * val:
        parts = train_only_parts(trained)
        if parts:
            acting = " and ".join(parts)
            return (f"Training far above validation is expected here: {acting} "
                    f"{'act' if len(parts) > 1 else 'acts'} only while training, so the model is scored on "
                    "harder inputs during training than during validation. It is not a problem.")
        return ("Training above validation is fine: the training loss is averaged over each epoch while the "
                "model is still learning, the validation loss is measured at the epoch's end (and a small "
                "validation set can simply be easier).")
    if val > LOSS_GAP * train:
        return ("Validation far above training means the model memorises its training data rather than "
                "learning what carries over; early stopping keeps the best epoch, and a simpler design or "
                "more dropout narrows the gap.")
    return ("Training and validation stay close: the model learns what carries over to new data. "
            "Validation far above training would mean it memorises.")


def _task_note(trained: TrainedModel) -> str:
    """One more sentence for forecasts and unusual rows, whose scores read differently."""
    test = trained.metrics.get("test", {})
    if trained.task == "anomaly" and "flagged_share" in test:
        return f" {test['flagged_share']:.1%} of the test rows score above the threshold and are flagged as unusual."
    if trained.task == "forecast":
        horizon = trained.data_spec.option("horizon", 1)
        return f" The error is over every forecast step ({horizon} per window) of the newest, held-back windows."
    return ""


@st.cache_data(show_spinner=False, max_entries=256)
def _saved_trained_at(path: str, mtime_ns: int) -> str:
    """The ``trained_at`` of a saved run's ``trained.json`` (keyed by its path and modification time)."""
    try:
        return trained_time(json.loads(Path(path).read_text(encoding="utf-8")).get("info"))
    except (OSError, ValueError, AttributeError):
        return ""


def run_trained_at(state: AppState, run: RunSummary) -> str:
    """When a listed run was trained, as the other pages say it (its ``trained_at``; the list's own
    time is when the run was saved, seconds later). Falls back to that saved time for old runs."""
    if run.id == state.run_id and state.trained is not None and trained_time(state.trained.info):
        return trained_time(state.trained.info)
    path = state.workspace.root / "runs" / run.id / TRAINED_JSON
    try:
        found = _saved_trained_at(str(path), path.stat().st_mtime_ns)
    except OSError:
        found = ""
    return found or run.created


def earlier_runs(state: AppState) -> None:
    runs = state.workspace.list_runs()
    if not runs:
        return
    st.subheader("Earlier runs in this workspace")
    for run in runs[:10]:
        metric = HEADLINE_METRIC.get(run.task)
        if metric in run.headline:
            score = f"Test {metric}: {format_metric(metric, run.headline[metric])}"
        elif metric in run.validation:  # a search trial: scored on the validation rows only
            score = f"Validation {metric}: {format_metric(metric, run.validation[metric])}"
        else:
            score = "no score"
        with st.container(border=True):
            title, when, value, button = st.columns([4, 2, 2, 1.4], vertical_alignment="center")
            title.markdown(f"**{run.title}**")
            when.caption(run_trained_at(state, run))
            value.caption(score)
            if run.id == state.run_id:
                button.badge("Current", icon=":material/check:", color="green")
            elif button.button("Open", key=f"open_{run.id}", icon=":material/folder_open:"):
                with user_errors():
                    state.set_trained(state.workspace.load_run(run.id), run.id)
                    state.set_job(None)  # the last training's result is no longer the one shown
                    st.rerun()
