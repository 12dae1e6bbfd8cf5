"""Find a better model from the Train page: a budget, one button, a live table of trials, "Use the best".

The search (``builder.search``) runs as a background job like a training. Its worker saves every
trial as a run of the workspace as soon as it ends (scored on validation rows only) and, at the
end, saves the best one again over its trial's run with its test score. The finished search's
table is kept in the workspace state, so a refresh still shows it and can still apply the best.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import streamlit as st

from builder.evaluate import HEADLINE_METRIC, METRICS, format_metric
from builder.i18n import translate
from builder.jobs import FAILED, Job
from builder.search import COMPLETE, SearchResult, TrialRecord, search
from builder.train import Callback, TrainConfig, TrainControl
from builder.trained import TrainedModel
from pages.components.i18n import language, t, tm
from pages.components.state import AppState, job_registry
from pages.components.train_settings import in_sentence
from pages.components.training import run_title
from pages.components.ui import user_errors

SEARCH_JOB = "search_job"  # workspace state: the id of the last search's job
SEARCH_STATE = "search"  # workspace state: the last finished search (its trials and best run)
DEFAULT_BUDGET_MINUTES = 2.0
POLL_SECONDS = 0.5
PARAM_LABELS = {"width": "Width ×", "depth": "Blocks", "dropout": "Dropout", "lr": "Learning rate",
                "batch_size": "Batch size", "weight_decay": "Weight decay", "schedule": "Schedule",
                "label_smoothing": "Label smoothing"}


@dataclass
class SearchProgress:
    """What the worker thread writes and the page reads, under ``lock``."""

    budget_minutes: float
    started: float = field(default_factory=time.monotonic)
    trials: list[dict[str, Any]] = field(default_factory=list)
    run_ids: dict[int, str] = field(default_factory=dict)  # trial number -> its saved run
    result: SearchResult | None = None  # set when the search ends
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, record: TrialRecord, run_id: str | None) -> None:
        with self.lock:
            self.trials.append(record.to_dict())
            if run_id:
                self.run_ids[record.number] = run_id

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(t) for t in self.trials]


def start_search(state: AppState, config: TrainConfig, budget_minutes: float) -> Job:
    """Start a search from the current design and ``config``; its job id goes into the workspace.

    Raises:
        BuilderError: too many jobs already run in this workspace.
    """
    state.set_config(config)
    source, data_spec, design, workspace = state.data_source(), state.data_spec, state.design, state.workspace
    title, data_name = run_title(state), state.table_name
    lang = language()  # the worker names the runs it saves in the language of the page that started it
    progress = SearchProgress(budget_minutes)

    def on_trial(record: TrialRecord, trained: TrainedModel | None) -> None:  # worker thread
        run_id = None
        if trained is not None:
            if data_name:
                trained.info["source"] = data_name
            run_id = workspace.save_run(trained, translate("{title}, search trial {n}", lang, title=title,
                                                           n=record.number))
        progress.add(record, run_id)

    def work(control: TrainControl, callbacks: Sequence[Callback]) -> TrainedModel:
        best, progress.result = search(source, data_spec, config, budget_minutes, spec=design, control=control,
                                       storage=workspace.search_storage(), on_trial=on_trial,
                                       name=f"search-{time.strftime('%Y%m%d-%H%M%S')}")
        return best

    def on_done(job: Job) -> None:  # worker thread: the best run gets its test score in the list
        result = progress.result
        run_id = progress.run_ids[result.best_number]
        workspace.save_run(job.result, translate("{title}, best of search (trial {n})", lang, title=title,
                                                 n=result.best_number), run_id=run_id)
        workspace.save_state(SEARCH_STATE, {"trials": progress.snapshot(), "best_number": result.best_number,
                                            "best_run_id": run_id, "task": data_spec.task})

    job = job_registry().start(workspace.token, work, t("Search: {title}", title=title), config.epochs, on_done)
    job.outputs["progress"] = progress
    job.outputs["title"] = title
    workspace.save_state(SEARCH_JOB, job.id)
    return job


def current_search(state: AppState) -> Job | None:
    """The job of this workspace's last search, if the registry still holds it."""
    job_id = state.workspace.load_state(SEARCH_JOB)
    return job_registry().get(state.workspace.token, job_id) if job_id else None


def search_button(state: AppState, config: TrainConfig, disabled: bool) -> None:
    """The budget and the "Find a better model" button, under Start."""
    budget, button = st.columns([1, 2], vertical_alignment="bottom")
    minutes = budget.number_input(t("Search minutes"), min_value=0.1, max_value=600.0, value=DEFAULT_BUDGET_MINUTES,
                                  step=0.5, format="%g", key="search_budget", disabled=disabled,
                                  help=t("How long the search may take, all trials together."))
    if button.button(t("Find a better model"), icon=":material/travel_explore:", width="stretch",
                     disabled=disabled, key="search_start",
                     help=t("Try larger and smaller versions of this design and other training settings "
                            "for the minutes given, and keep the best. The first trial is your design and "
                            "settings as they are; trials are compared on the validation rows only.")):
        with user_errors():
            start_search(state, config, float(minutes))
            st.rerun()


def search_panel(state: AppState) -> bool:
    """A running search's live table and Stop button; True while a search runs."""
    job = current_search(state)
    if job is None or job.snapshot().done:
        return False
    progress: SearchProgress = job.outputs["progress"]
    task = state.data_spec.task
    st.subheader(t("Finding a better model: {title}", title=job.outputs.get("title", job.title)))

    def draw() -> None:
        if job.snapshot().done:
            st.rerun()  # once: the full run shows the result and drops run_every
        budget = 60 * progress.budget_minutes
        elapsed = time.monotonic() - progress.started
        trials = progress.snapshot()
        st.progress(min(1.0, elapsed / budget),
                    text=t("Trial {n} · {elapsed:.0f} s of {budget:.0f} s · every trial is scored on the "
                           "validation rows; the test rows wait for the best one", n=len(trials) + 1,
                           elapsed=elapsed, budget=budget))
        if st.button(t("Stop"), icon=":material/stop_circle:", key="search_stop",
                     help=t("End the search now and keep the best trial so far.")):
            job.stop()
        trial_table(trials, task)

    st.fragment(run_every=POLL_SECONDS)(draw)()
    return True


def search_results(state: AppState) -> None:
    """The last search: how it ended, its table and "Use the best"."""
    job = current_search(state)
    if job is not None and job.status == FAILED:
        st.error(t("The search did not finish: {error}", error=tm(job.error)), icon=":material/error:")
    found = state.workspace.load_state(SEARCH_STATE)
    if not isinstance(found, dict) or not found.get("trials"):
        return
    st.divider()
    st.subheader(t("Last search"))
    best, run_id = found["best_number"], found["best_run_id"]
    trial_table(found["trials"], found.get("task", ""), best)
    if state.run_id == run_id:
        st.success(t("Trial {n}, the best, is the current model: its design and settings are applied.", n=best),
                   icon=":material/check_circle:")
    elif st.button(t("Use the best (trial {n})", n=best), type="primary", icon=":material/done_all:", key="search_use"):
        with user_errors():
            trained = state.workspace.load_run(run_id)
            state.set_design(trained.spec)
            state.set_config(trained.config)
            state.set_trained(trained, run_id)
            state.set_job(None)  # the last training's result is no longer the one shown
            st.rerun()


def trial_table(trials: list[dict[str, Any]], task: str, best: int | None = None) -> None:
    """One row per trial: its validation score, state and what it tried; the best is starred."""
    st.dataframe(trials_frame(trials, task, best), hide_index=True, width="stretch")


def trials_frame(trials: list[dict[str, Any]], task: str, best: int | None = None) -> pd.DataFrame:
    """The trial table as a frame (``best`` defaults to the lowest validation loss so far)."""
    metric = HEADLINE_METRIC.get(task)
    if best is None:
        done = [t for t in trials if t["state"] == COMPLETE and t["val_loss"] is not None]
        best = min(done, key=lambda t: t["val_loss"])["number"] if done else None
    short = METRICS[metric].short if metric in METRICS else "score"
    label = t("Validation {metric}", metric=short if short.isupper() else in_sentence(short))
    rows = []
    for trial in trials:
        score = trial["validation"].get(metric)
        trial_state = t(trial["state"])  # complete, pruned or failed
        rows.append({
            t("Trial"): f"{trial['number']} ★" if trial["number"] == best else str(trial["number"]),
            label: format_metric(metric, score) if score is not None else "",
            t("Validation loss"): trial["val_loss"],
            t("State"): f"{trial_state}: {tm(trial['note'])}" if trial["note"] else trial_state,
            t("Epochs"): trial["epochs"],
            t("Seconds"): round(trial["seconds"], 1),
            **{t(PARAM_LABELS[k]) if k in PARAM_LABELS else k: v for k, v in trial["params"].items()},
        })
    return pd.DataFrame(rows)
