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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from builder import resume
from builder.errors import BuilderError
from builder.evaluate import HEADLINE_METRIC, METRICS, Comparison, compare_to_baseline, format_metric
from builder.export import TRAINED_JSON
from builder.jobs import FAILED, PAUSED, QUEUED, STOPPING, Job, JobSnapshot
from builder.pipeline import TrainedModel
from builder.spec import FAMILIES
from builder.train import Callback, TrainConfig, TrainControl
from builder.workers import TrainingRequest, save_result, train_request
from pages.components import charts
from pages.components.coach_view import coach_panel, history_from_logs
from pages.components.i18n import language, t, tm
from pages.components.state import AppState, job_registry
from pages.components.ui import trained_time

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
    name = tm(family.title) if family else t("Model")
    # " on " alone, not a "{model} on {data}" template: the catalogue's templates also read the
    # engine's sentences, and one that short would take any sentence with "on" in it.
    return f"{name}{t(' on ')}{state.table_name or t('your table')}"


def start_training(state: AppState, config: TrainConfig) -> Job:
    """Save the settings and start training in the background; the job id goes into the state.

    Raises:
        BuilderError: too many trainings already run in this workspace.
    """
    state.set_config(config)
    workspace, data = state.workspace, state.workspace.data_file()
    job_id = job_registry().new_id()
    # Cross-validation trains several models: it has no single run to checkpoint and resume.
    folder = None if config.cv_folds else str(workspace.checkpoint_folder(job_id))
    request = TrainingRequest(
        str(workspace.root), workspace.token, str(data.path), data.kind, state.data_spec.to_dict(),
        config.to_dict(), state.design.to_dict() if state.design else None, run_title(state),
        data_name=state.table_name, checkpoint_dir=folder)
    running = [j.id for j in job_registry().jobs(workspace.token) if not j.snapshot().done]
    workspace.discard_checkpoints(keep=running)  # a new start gives up any interrupted training
    resume.remember(workspace, job_id, request)
    return _submit(state, job_id, request, config)


def resume_training(state: AppState, found: resume.Interrupted) -> Job:
    """Go on with an interrupted training from its checkpoint, under its own id and settings.

    Raises:
        BuilderError: nothing to resume, or too many trainings already run in this workspace.
    """
    request = resume.resume_request(found)
    job = _submit(state, found.job_id, request, TrainConfig.from_dict(request.config))
    with job.lock:  # the chart shows the epochs done before the interruption too
        job.epoch = found.epoch
        job.epoch_logs[:] = history_logs(found.history)
    return job


def _submit(state: AppState, job_id: str, request: TrainingRequest, config: TrainConfig) -> Job:
    """Start ``request``: in a worker process when the app has them, else in a thread here."""
    registry, workspace = job_registry(), state.workspace
    if registry.pool is not None:
        job = registry.submit(workspace.token, request, request.title, config.epochs, workspace.load_run, job_id)
    else:
        source = state.data_source()

        def work(control: TrainControl, callbacks: Sequence[Callback]) -> TrainedModel:
            return train_request(request, control, list(callbacks), {}, source=source)

        def on_done(job: Job) -> None:  # worker thread: the run is saved even if nobody is watching
            job.outputs["run_id"] = save_result(request, job.result)

        job = registry.start(workspace.token, work, request.title, config.epochs, on_done, job_id)
    job.outputs["config"] = config  # the run's own settings: the coach reads its curves with them
    job.outputs["checkpoint_to_drop"] = True  # take_over_if_done drops it once the job has ended
    state.set_job(job.id)
    return job


def history_logs(history: dict | None) -> list[dict[str, float]]:
    """A saved ``History.to_dict()`` as the job's epoch logs (what the live chart draws)."""
    if not history:
        return []
    logs = []
    for i, epoch in enumerate(history.get("epoch", [])):
        entry = {"epoch": float(epoch), "loss": history["loss"][i], "val_loss": history["val_loss"][i]}
        if i < len(history.get("seconds", [])):
            entry["seconds"] = history["seconds"][i]
        for name, values in (history.get("metrics") or {}).items():
            if i < len(values):
                entry[name] = values[i]
        logs.append(entry)
    return logs


def missing_data_message(state: AppState) -> str:
    """Why there is nothing to train on yet, in the words of the data the user has."""
    if state.data_kind is None:
        return t("Load your data first: a table, a time series, texts, or a zip of pictures with one "
                 "folder per class.")
    if state.data_kind == "images":
        return t("Check the pictures on the Data page first: it saves the size and the augmentation to use.")
    return t("Load a table and choose the column to predict first (or what else the model should learn).")


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
    if job.outputs.pop("checkpoint_to_drop", False) and not state.workspace.read_only:
        resume.forget(state.workspace, job.id)  # it ended while the app ran: nothing is left to resume
    if job.status == FAILED or not run_id or job.result is None:
        return "failed"
    if state.run_id == run_id:
        return "finished"
    state.set_trained(job.result, run_id)
    return "adopted"


def show_failure(job: Job) -> None:
    st.error(t("Training did not finish: {error}", error=tm(job.error)), icon=":material/error:")
    if job.error_detail:
        with st.expander(t("Details for a bug report")):
            st.code(job.error_detail, language="text")
    if job.result is not None:
        st.caption(t("The model was trained but could not be saved; the previous model is still the current one."))


def _progress_text(snap: JobSnapshot) -> tuple[float, str]:
    """Share done and "Epoch 3 of 30 · about 12 s left", counting the epoch in progress."""
    fraction, eta = snap.fraction, snap.eta
    current = min(snap.epochs, snap.epoch + 1)
    if snap.status == QUEUED:
        return 0.0, t("Waiting for a free training process: other trainings started first")
    if snap.stage:  # cross-validation: "Fold 2 of 5 · Epoch 3 of 30 ..."
        share, text = _progress_text(dataclasses.replace(snap, stage=""))
        return share, f"{tm(snap.stage)} · {text}"
    if snap.training_ended:  # after the last epoch or Stop: the test scores and the baseline take seconds
        done = t("Stopped") if snap.status == STOPPING else t("Training done")
        return 1.0, t("{done} · scoring the test rows and fitting the baseline on the same split...", done=done)
    if snap.status == PAUSED:
        return fraction, t("Paused at epoch {current} of {epochs} · press Resume to go on", current=current,
                           epochs=snap.epochs)
    if snap.status == STOPPING:
        return fraction, t("Stopping at epoch {current} of {epochs} · keeping the best model so far",
                           current=current, epochs=snap.epochs)
    # The charts show the finished epochs: say how many, beside the one running now.
    if eta is None:
        template = ("Epoch {current} of {epochs} ({done} done) · estimating time left..." if snap.epoch
                    else "Epoch {current} of {epochs} · estimating time left...")
    else:
        template = ("Epoch {current} of {epochs} ({done} done) · about {time} left" if snap.epoch
                    else "Epoch {current} of {epochs} · about {time} left")
    return fraction, t(template, current=current, epochs=snap.epochs, done=snap.epoch,
                       time=_duration(eta) if eta is not None else "")


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 10:
        return t("{seconds:.1f} s", seconds=seconds)
    if seconds < 90:
        return t("{seconds:.0f} s", seconds=seconds)
    if seconds < 5400:
        return t("{minutes:.0f} min", minutes=seconds / 60)
    return t("{hours:.1f} h", hours=seconds / 3600)


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
        return charts.metric_figure(epochs, {"Validation": val_loss}, t(QUALITY_TITLES[task]), best_epoch=best_epoch)
    if task == "forecast":
        if not metrics.get("val_rmse"):
            return None
        return charts.metric_figure(epochs, {"Validation": metrics["val_rmse"]}, t(QUALITY_TITLES[task]),
                                    best_epoch=best_epoch)
    return charts.metric_history_figure(epochs, metrics, task, best_epoch)


def _best_epoch(snap: JobSnapshot) -> int | None:
    logs = snap.epoch_logs
    return int(logs[-1]["best_epoch"]) if logs and logs[-1].get("best_epoch") else None


def _live_quality_figure(snap: JobSnapshot, task: str):
    """The quality chart of the epochs done so far, or ``None`` before the first one ends."""
    logs = snap.epoch_logs
    metrics = {key: [log[key] for log in logs if key in log] for key in ("accuracy", "val_accuracy", "val_rmse")}
    return quality_figure([log["epoch"] for log in logs], metrics, [log["val_loss"] for log in logs], task,
                          _best_epoch(snap))


def _live_loss_figure(snap: JobSnapshot):
    """The loss chart with the running batch loss, or ``None`` before the first batch ends."""
    logs = snap.epoch_logs
    if not (logs or snap.batch_points):  # the running batch loss moves from the first batch on
        return None
    return charts.loss_figure([log["epoch"] for log in logs], [log["loss"] for log in logs],
                              [log["val_loss"] for log in logs], [x for x, _ in snap.batch_points],
                              [y for _, y in snap.batch_points], best_epoch=_best_epoch(snap))


LIVE_FIGURES = "live_figures"  # session state: {"loss" | "quality": (what the figure shows, figure)}


def _kept_figure(name: str, shows: tuple, build: Callable[..., Any], *args: Any) -> Any:
    """``build(*args)``, built again only when what it shows changed (so never while paused)."""
    kept = st.session_state.setdefault(LIVE_FIGURES, {})
    if name not in kept or kept[name][0] != shows:
        kept[name] = (shows, build(*args))
    return kept[name][1]


def _live_charts(snap: JobSnapshot, task: str) -> None:
    """The live loss and quality charts, side by side, both redrawn on every refresh.

    Streamlit greys out an element of a fragment until the fragment's new run has sent it again, and
    the browser draws the charts one after the other. The quality figure changes only when an epoch
    ends: it is kept in between and sent first, so the browser draws it while the loss figure (new
    after every batch) is built, and it no longer waits greyed for a figure rebuilt on every refresh.
    """
    epochs_seen = (snap.id, snap.stage, task, len(snap.epoch_logs), language())
    left, right = st.columns(2)
    quality = _kept_figure("quality", epochs_seen, _live_quality_figure, snap, task)
    if quality is not None:
        right.plotly_chart(quality, key="live_metric")
    else:
        right.info(t("The quality chart appears when the first epoch ends."), icon=":material/hourglass_top:")
    batches_seen = (*epochs_seen, len(snap.batch_points), snap.batch_points[-1:])
    loss = _kept_figure("loss", batches_seen, _live_loss_figure, snap)
    if loss is not None:
        left.plotly_chart(loss, key="live_loss")
    else:  # preparing the data and the first batch: no empty axes
        left.info(t("The loss curve appears after the first batch of training."), icon=":material/hourglass_top:")


def _started_text(snap: JobSnapshot, device_label: str) -> str:
    """Where it trains and how long ago it started (pauses included, unlike the result's training time)."""
    device, ago = tm(snap.device or device_label), _duration(snap.elapsed)
    if snap.status == PAUSED:
        return t("Training on {device} · started {time} ago (pauses included; the training time counts epochs "
                 "only)", device=device, time=ago)
    return t("Training on {device} · started {time} ago", device=device, time=ago)


def live_panel(job: Job, task: str, device_label: str, state: AppState | None = None) -> None:
    """Progress, live charts and Stop/Pause of a running job, redrawn every half second; with
    ``state``, the coach's reading of the curves so far (read again when an epoch ends)."""

    def draw() -> None:
        snap = job.snapshot()
        if snap.done:
            st.rerun()  # once: the full run takes over the result and drops run_every
        fraction, text = _progress_text(snap)  # one snapshot for the label and the charts: they agree
        st.progress(fraction, text=text)
        for note in snap.notes:  # out of device memory: the batch was halved and training went on
            st.warning(tm(note), icon=":material/memory:")
        stop, pause, device = st.columns([1, 1, 3], vertical_alignment="center")
        # Callbacks run before the redraw the click causes, so that redraw already shows the new state.
        stop.button(t("Stop"), icon=":material/stop_circle:", disabled=snap.status == STOPPING, on_click=job.stop,
                    help=t("End training now and keep the best model found so far."), width="stretch")
        if snap.status == PAUSED:
            pause.button(t("Resume"), icon=":material/play_arrow:", on_click=job.resume, width="stretch")
        else:
            pause.button(t("Pause"), icon=":material/pause:", disabled=snap.status == STOPPING, on_click=job.pause,
                         width="stretch")
        device.caption(f":material/memory: {_started_text(snap, device_label)}")
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
        return tm(sentence), "off"
    if METRICS[comparison.metric].higher_is_better:
        return tm(sentence), "normal"
    if not comparison.baseline:  # an exact baseline: no percentage, keep the sentence
        return tm(sentence), "inverse"
    percent = (comparison.model - comparison.baseline) / abs(comparison.baseline) * 100
    return t("{percent:+.1f}% vs {baseline}", percent=percent, baseline=tm(sentence.split(" than ", 1)[-1])), "inverse"


def stop_reason(reason: str) -> str:
    """Why training stopped, as the end of "Training stopped because ..."."""
    return t(STOP_REASONS[reason]) if reason in STOP_REASONS else tm(reason)


def training_seconds(trained: TrainedModel) -> float:
    """The time the epochs took, pauses excluded (each epoch's own time); the run's time for a run
    without per-epoch times. The live view's "started ... ago" counts pauses; this does not."""
    return float(sum(trained.history.seconds)) if trained.history.seconds else trained.seconds


def _first_lower(text: str) -> str:
    return text[:1].lower() + text[1:]


def _metric_in_sentence(label: str) -> str:
    """An engine label inside a sentence: its first letter lower case in English, else translated."""
    shown = tm(label)
    return _first_lower(label) if shown == label else shown


def result_summary(trained: TrainedModel, with_curves: bool = False) -> None:
    """What the current model is: epochs, why it stopped, best epoch, time, device, test score,
    and (``with_curves``) its loss and quality curves."""
    history = trained.history
    headline = HEADLINE_METRIC[trained.task]
    test = trained.metrics.get("test", {})
    why = stop_reason(history.stopped_reason)
    device = tm(trained.device)
    if trained.info.get("warning"):
        st.warning(tm(trained.info["warning"]), icon=":material/warning:")
    for note in history.notes:
        st.info(tm(note), icon=":material/memory:")
    cards = st.columns([1, 1, 1, 2])  # the test score's card has room for its baseline sentence
    cards[0].metric(t("Epochs run"), history.epochs_run, help=t("Training stopped because {why}.", why=why),
                    border=True)
    cards[1].metric(t("Best epoch"), history.best_epoch or t("none"), border=True,
                    help=t("The epoch with the lowest validation loss: its model is the one kept."))
    cards[2].metric(t("Training time"), _duration(training_seconds(trained)),
                    help=t("On {device}; pauses not counted.", device=device), border=True)
    if headline in test:
        info = METRICS[headline]
        delta, colour = None, "off"
        if trained.baseline is not None:
            found = compare_to_baseline(trained.task, test, trained.baseline.metrics)
            delta, colour = next((baseline_delta(c) for c in found if c.metric == headline), (None, "off"))
        cards[3].metric(t("Test {metric}", metric=_metric_in_sentence(info.label)), format_metric(headline, test[headline]),
                        delta=delta, delta_color=colour, border=True,
                        help=t("{help} Measured on rows kept aside for the final score.", help=tm(info.help)))
    if note := _task_note(trained):
        st.caption(t("Stopped because {why}. Trained on {device}. {note}", why=why, device=device, note=note))
    else:
        st.caption(t("Stopped because {why}. Trained on {device}.", why=why, device=device))
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
    st.markdown(t("**Cross-validation, {completed} of {folds} folds** ({method})",
                  completed=cv.get("completed", cv["folds"]), folds=cv["folds"], method=tm(cv.get("method", ""))))
    st.dataframe(rows, hide_index=True)
    if cv.get("refit_epochs"):
        st.caption(t("The final model learnt from every row outside the test set for {epochs} epochs, the median "
                     "best epoch of the folds; its test score is above.", epochs=cv["refit_epochs"]))


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

    baseline_name = tm(cv["baseline_name"]) if cv.get("baseline_name") else t("Baseline")
    return [{t("Metric"): tm(METRICS[name].label) if name in METRICS else name,
             t("Network (mean ± spread)"): spread(network[name], name),
             baseline_name: spread(baseline.get(name), name)}
            for name in network]


LOSS_GAP = 1.3  # one loss this many times the other, at the kept epoch, is "far above" it


DROPOUT, AUGMENTATION = "dropout", "the picture variations (augmentation)"
EXPECTED_GAP = {  # what acts while training only -> why the training loss reads higher
    (DROPOUT,): "Training far above validation is expected here: dropout acts only while training, so the model "
                "is scored on harder inputs during training than during validation. It is not a problem.",
    (AUGMENTATION,): "Training far above validation is expected here: the picture variations (augmentation) acts "
                     "only while training, so the model is scored on harder inputs during training than during "
                     "validation. It is not a problem.",
    (DROPOUT, AUGMENTATION): "Training far above validation is expected here: dropout and the picture variations "
                             "(augmentation) act only while training, so the model is scored on harder inputs "
                             "during training than during validation. It is not a problem.",
}


def train_only_parts(trained: TrainedModel) -> list[str]:
    """What acts while training only and makes the training loss read higher than the validation loss."""
    parts = []
    layers = trained.spec.layers
    if any((layer.type.startswith("Dropout") and float(layer.params.get("p", 0) or 0) > 0)
           or float(layer.params.get("dropout", 0) or 0) > 0 for layer in layers):
        parts.append(DROPOUT)
    if trained.kind == "images" and trained.data_spec.option("augment", False):
        parts.append(AUGMENTATION)
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
        parts = tuple(train_only_parts(trained))
        if parts:
            return t(EXPECTED_GAP[parts])
        return t("Training above validation is fine: the training loss is averaged over each epoch while the "
                 "model is still learning, the validation loss is measured at the epoch's end (and a small "
                 "validation set can simply be easier).")
    if val > LOSS_GAP * train:
        return t("Validation far above training means the model memorises its training data rather than "
                 "learning what carries over; early stopping keeps the best epoch, and a simpler design or "
                 "more dropout narrows the gap.")
    return t("Training and validation stay close: the model learns what carries over to new data. "
             "Validation far above training would mean it memorises.")


def _task_note(trained: TrainedModel) -> str:
    """One more sentence for forecasts and unusual rows, whose scores read differently ("" for others)."""
    test = trained.metrics.get("test", {})
    if trained.task == "anomaly" and "flagged_share" in test:
        return t("{share:.1%} of the test rows score above the threshold and are flagged as unusual.",
                 share=test["flagged_share"])
    if trained.task == "forecast":
        return t("The error is over every forecast step ({horizon} per window) of the newest, held-back windows.",
                 horizon=trained.data_spec.option("horizon", 1))
    return ""


@st.cache_data(show_spinner=False, max_entries=256)
def _saved_trained_at(path: str, mtime_ns: int) -> str:
    """The ``trained_at`` of a saved run's ``trained.json`` (keyed by its path and modification time)."""
    try:
        return trained_time(json.loads(Path(path).read_text(encoding="utf-8")).get("info"))
    except (OSError, ValueError, AttributeError):
        return ""


def run_trained_at(state: AppState, run_id: str, saved: str) -> str:
    """When a listed run was trained, as the other pages say it (its ``trained_at``; the list's own
    time, ``saved``, is when the run was saved, seconds later). Falls back to ``saved`` for old runs."""
    if run_id == state.run_id and state.trained is not None and trained_time(state.trained.info):
        return trained_time(state.trained.info)
    path = state.workspace.root / "runs" / run_id / TRAINED_JSON
    try:
        found = _saved_trained_at(str(path), path.stat().st_mtime_ns)
    except OSError:
        found = ""
    return found or saved
