"""The workspace's earlier runs, from the run store: find, sort, reopen, rename, delete, export and
compare them.

One table lists the runs (filtered by words and task, sorted by date, title or score). Pick one to
reopen it (its model becomes the current one, and its design and settings go back into Build and
Train), rename it, delete it or download its bundle; pick several to compare them: their validation
curves overlaid and one table of their test metrics, each against its own baseline.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from builder.evaluate import HEADLINE_METRIC, METRICS, format_metric
from builder.runs import METRIC_ORDER, RunRecord, RunStore
from pages.components import charts
from pages.components.i18n import shown_as, t, tm
from pages.components.state import AppState
from pages.components.training import run_trained_at
from pages.components.ui import user_errors

ORDERS = {  # what the sort box offers: (RunStore order, newest/largest first)
    "Newest first": ("created", True),
    "Oldest first": ("created", False),
    "Title": ("title", False),
    "Best test score": ("score", True),
}
ALL_TASKS = "All tasks"
EXPORT_KEY = "runs_export"  # session: {run id: bundle bytes} made on a click


def run_store(state: AppState) -> RunStore:
    return RunStore(state.workspace.root.parent)


def runs_panel(state: AppState) -> None:
    """The earlier-runs section of the Train page (nothing when the workspace has no run yet)."""
    store, token = run_store(state), state.workspace.token
    everything = store.list(workspace=token)
    if not everything:
        return
    st.subheader(t("Earlier runs in this workspace"))
    search_column, task_column, order_column = st.columns([3, 2, 2])
    search = search_column.text_input(t("Find"), key="runs_search", placeholder=t("words of the title, model or data"))
    tasks = [ALL_TASKS, *dict.fromkeys(r.task for r in everything)]
    task = task_column.selectbox(t("Task"), tasks, key="runs_task",
                                 format_func=shown_as(tasks, lambda name: t(name) if name == ALL_TASKS else tm(name)))
    order = order_column.selectbox(t("Sort by"), list(ORDERS), key="runs_order", format_func=shown_as(ORDERS))
    records = _listed(store, token, None if task == ALL_TASKS else task, search, order)
    if not records:
        st.info(t("No run matches: clear the search or pick all tasks."), icon=":material/search_off:")
        return
    event = st.dataframe(runs_table(records, state), hide_index=True, width="stretch", key="runs_table",
                         on_select="rerun", selection_mode="multi-row", column_config=_columns())
    picked = [records[i] for i in event.selection.rows if i < len(records)]
    if not picked:
        st.caption(t("Pick a run to open, rename, export or delete it; pick several to compare them."))
    elif len(picked) == 1:
        _one_run(state, store, picked[0])
    else:
        compare_runs(store, token, picked)


def _listed(store: RunStore, token: str, task: str | None, search: str, order: str) -> list[RunRecord]:
    column, descending = ORDERS[order]
    if column == "score":  # by the headline metric of the task shown (accuracy, RMSE...)
        metric = HEADLINE_METRIC.get(task or "", "")
        if not metric:
            column = "created"
        else:
            column = METRIC_ORDER + metric
            descending = METRICS[metric].higher_is_better  # errors (RMSE, MAE): smallest first
    return store.list(workspace=token, task=task, search=search or None, order=column, descending=descending)


def runs_table(records: list[RunRecord], state: AppState) -> pd.DataFrame:
    """One row per run: what a person needs to tell them apart (the data, in English keys)."""
    rows = []
    for record in records:
        metric = HEADLINE_METRIC.get(record.task)
        value = record.headline.get(metric) if metric else None
        base = ((record.baseline or {}).get("test") or {}).get(metric) if metric else None
        rows.append({
            "title": record.title + (" ✓" if record.id == state.run_id else ""),
            "created": run_trained_at(state, record.id, record.created),
            "task": tm(record.task),
            "score": format_metric(metric, value) if isinstance(value, int | float) else "",
            "baseline": format_metric(metric, base) if isinstance(base, int | float) else "",
            "epochs": record.epochs,
            "status": tm(record.status) if record.health == "ok" else tm(record.health),
        })
    return pd.DataFrame(rows)


def _columns() -> dict:
    return {
        "title": st.column_config.TextColumn(t("Run"), width="large"),
        "created": st.column_config.TextColumn(t("Trained")),
        "task": st.column_config.TextColumn(t("Task")),
        "score": st.column_config.TextColumn(t("Test score"), help=t("The task's main metric on the test rows.")),
        "baseline": st.column_config.TextColumn(t("Baseline"), help=t("The same metric of the simple baseline, "
                                                                       "fitted on the same split.")),
        "epochs": st.column_config.NumberColumn(t("Epochs")),
        "status": st.column_config.TextColumn(t("Status")),
    }


def _one_run(state: AppState, store: RunStore, record: RunRecord) -> None:
    """Open, rename, export or delete the run picked."""
    open_column, export_column, delete_column = st.columns(3)
    if record.id == state.run_id:
        open_column.caption(":material/check: " + t("This is the current model."))
    elif open_column.button(t("Open in Build and Train"), icon=":material/folder_open:", key="runs_open",
                            width="stretch", disabled=record.health != "ok",
                            help=t("Make this run the current model, and put its design and settings back "
                                   "into Build and Train.")):
        with user_errors():
            trained = state.workspace.load_run(record.id)
            state.set_trained(trained, record.id)
            state.set_design(trained.spec)
            state.set_config(trained.config)
            state.set_job(None)
            st.rerun()
    _export_button(export_column, store, record)
    with delete_column.popover(t("Delete"), icon=":material/delete:", width="stretch"):
        st.caption(t("The run '{title}' and its files go for good.", title=record.title))
        if st.button(t("Delete this run"), type="primary", key="runs_delete"):
            with user_errors():
                state.workspace.delete_run(record.id)
                if record.id == state.run_id:
                    state.set_trained(None, None)
                st.rerun()
    with st.form("runs_rename", border=False):
        name, save = st.columns([4, 1], vertical_alignment="bottom")
        title = name.text_input(t("New title"), value=record.title, key=f"runs_title_{record.id}")
        if save.form_submit_button(t("Rename"), width="stretch"):
            with user_errors():
                state.workspace.rename_run(record.id, title)
                st.rerun()


def _export_button(column, store: RunStore, record: RunRecord) -> None:
    """"Make the bundle" (seconds: ONNX export and its parity check), then its download."""
    made = st.session_state.setdefault(EXPORT_KEY, {})
    if record.id in made:
        column.download_button(t("Download the bundle"), made[record.id], file_name=f"{record.id}.zip",
                               mime="application/zip", icon=":material/download:", key="runs_download",
                               width="stretch")
        return
    if column.button(t("Make its bundle"), icon=":material/inventory_2:", key="runs_export_make", width="stretch",
                     disabled=record.health != "ok", help=t("The same bundle as the Export page's, for this run.")):
        with user_errors(), st.spinner(t("Exporting the run: ONNX and its check take a few seconds...")):
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "bundle.zip"
                store.export_bundle(record.id, path)
                made[record.id] = path.read_bytes()
            st.rerun()


def compare_runs(store: RunStore, token: str, records: list[RunRecord]) -> None:
    """The runs side by side: validation loss per epoch overlaid, and their test metrics."""
    with user_errors():
        found = store.compare([r.id for r in records], workspace=token)
        if found["note"]:
            st.caption(tm(found["note"]))
        names = run_names(records)
        curves = {names[record.id]: store.history(record.id, workspace=token) for record in records}
        st.plotly_chart(comparison_figure(curves), key="runs_compare_chart")
        st.dataframe(comparison_table(found, names), hide_index=True, width="stretch")


def run_names(records: list[RunRecord]) -> dict[str, str]:
    """Run id -> its title, with its id's end when two runs share a title."""
    titles = [r.title for r in records]
    return {r.id: r.title if titles.count(r.title) == 1 else f"{r.title} · {r.id[-4:]}" for r in records}


def comparison_figure(curves: dict[str, dict]) -> go.Figure:
    """Each run's validation loss per epoch (its saved history), one line per run."""
    fig = go.Figure()
    for title, history in curves.items():
        fig.add_trace(go.Scatter(x=history.get("epoch", []), y=history.get("val_loss", []), mode="lines",
                                 name=title))
    return charts.layout(fig, t("Epoch"), t("Validation loss (lower is better)"))


def comparison_table(found: dict, names: dict[str, str]) -> pd.DataFrame:
    """One row per metric, one column per run: "91.2% (baseline 88.1%)", each against its own baseline."""
    titles = [names[run["id"]] for run in found["runs"]]
    rows = []
    for metric in found["metrics"]:
        row = {t("Metric"): tm(metric["label"])}
        for title, value in zip(titles, metric["values"], strict=True):
            if value is None:
                row[title] = ""
                continue
            text = format_metric(metric["metric"], value["run"])
            if value["difference"] is not None:
                text += t(" (baseline {baseline})", baseline=format_metric(metric["metric"], value["baseline"]))
            row[title] = text
        rows.append(row)
    return pd.DataFrame(rows)
