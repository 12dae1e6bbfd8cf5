"""AppTest of the Train page: empty states, a live run to the end, Stop, bad settings, failures."""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import pytest
import torch

from builder.data import SAMPLES, DataSpec, load_sample
from builder.data.sources import data_shape, prepare_data
from builder.templates import starter_spec
from builder.train import TrainConfig
from builder.workspace import Workspace
from pages.components import charts
from tests.app_helpers import button, open_page
from tests.image_fixtures import make_digits_zip

PAGE = "pages/train.py"


def make_workspace(home, sample: str | None = "iris", family: str = "mlp", design: bool = True) -> Workspace:
    """A workspace holding a sample table, its data spec and a starter design, as the Data and
    Build pages would have left it."""
    workspace = Workspace.open(None, home=home)
    if sample is not None:
        info, df = SAMPLES[sample], load_sample(sample)
        workspace.save_table(f"{sample}.csv", df.to_csv(index=False).encode(), title=f"{info.title} (sample)")
        features = [c for c in df.columns if c != info.target]
        workspace.save_state("data_spec", DataSpec(info.target, info.task, features).to_dict())
        if design:
            workspace.save_state("design", starter_spec(family, len(features), len(df)).to_dict())
    return workspace


def make_image_workspace(home, design: str | None = "cnn") -> Workspace:
    """A workspace holding a small digits zip, its image data spec and (``design``) a starter design."""
    workspace = Workspace.open(None, home=home)
    path = workspace.save_images("digits.zip", make_digits_zip(n_per_class=12, size=12), title="Digits")
    data_spec = DataSpec(None, "multiclass", [], kind="images", options={"augment": True, "size": [12, 12]})
    workspace.save_state("data_spec", data_spec.to_dict())
    if design is not None:
        shape = data_shape(prepare_data(path, data_spec), data_spec)
        workspace.save_state("design", starter_spec(design, shape.input_shape, shape.n_rows).to_dict())
    return workspace


def values(array) -> np.ndarray:
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
    return np.asarray(array)


def figures(at) -> list[dict[str, dict]]:
    """Every plotly chart on the page as {trace name: trace}."""
    return [{t.get("name"): t for t in json.loads(chart.proto.spec)["data"]} for chart in at.get("plotly_chart")]


def running_job(at):
    from pages.components.state import job_registry

    state = at.session_state["app"]
    return job_registry().get(state.workspace.token, state.job_id)


def poll_until(at, done, timeout: float = 45.0):
    """run_every never fires in AppTest: rerun the page until ``done(at)``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        if done(at):
            return at
        time.sleep(0.2)
    raise AssertionError("the page did not reach the expected state in time")


def test_without_data_the_page_points_to_data(app, builder_home):
    at = open_page(app, make_workspace(builder_home, sample=None), PAGE)
    assert "Load your data first" in at.info[0].value and "zip of pictures" in at.info[0].value
    assert not at.exception


def test_without_design_the_page_points_to_build(app, builder_home):
    at = open_page(app, make_workspace(builder_home, design=False), PAGE)
    assert "model design" in at.info[0].value


def test_training_runs_live_to_the_end_and_is_saved(app, builder_home):
    workspace = make_workspace(builder_home, "iris")
    at = open_page(app, workspace, PAGE)
    assert at.number_input(key="train_epochs").value == TrainConfig().epochs  # defaults from TrainConfig
    at.number_input(key="train_epochs").set_value(4)
    at.number_input(key="train_early_stopping_patience").set_value(0)
    at.button(key="train_start").click().run()
    assert not at.exception
    poll_until(at, lambda at: at.session_state["app"].has_model)

    state = at.session_state["app"]
    assert state.trained.history.epochs_run == 4
    assert state.trained.info["source"] == "Iris flowers (sample)"  # the run remembers its data
    assert any("Training finished" in s.value for s in at.success)
    runs = workspace.list_runs()
    assert [r.id for r in runs] == [state.run_id]
    assert runs[0].headline["accuracy"] > 0
    loss = next(f for f in figures(at) if "Validation" in f and "Training" in f)
    assert len(values(loss["Training"]["y"])) == 4 and len(values(loss["Validation"]["y"])) == 4
    assert any(m.label == "Epochs run" and m.value == "4" for m in at.metric)
    assert any(link.proto.page == "evaluate" for link in at.get("page_link"))
    assert any(b.label == "Open" for b in at.button) is False  # the only run is the current one
    at.switch_page("pages/evaluate.py").run()  # the data it was trained on is still loaded: no note
    assert at.metric and not any("This model was trained on" in i.value for i in at.info)


def test_stop_keeps_the_history_and_a_page_switch_finds_the_job_again(app, builder_home):
    at = open_page(app, make_workspace(builder_home, "breast_cancer"), PAGE)
    at.number_input(key="train_epochs").set_value(100_000)
    at.number_input(key="train_batch_size").set_value(8)
    at.number_input(key="train_early_stopping_patience").set_value(0)
    at.button(key="train_start").click().run()
    job = running_job(at)
    deadline = time.monotonic() + 30
    while job.snapshot().epoch < 2 and time.monotonic() < deadline:
        time.sleep(0.1)

    at.switch_page("pages/evaluate.py").run()
    at.switch_page(PAGE).run()  # the running job is found again, with its live charts
    assert "Epoch" in at.get("progress")[0].proto.text
    live = next(f for f in figures(at) if charts.LIVE_TRACE in f)
    assert len(values(live["Validation"]["y"])) >= 2

    button(at, "Pause").click().run()  # shown at once, in the run that handles the click
    assert at.get("progress")[0].proto.text.startswith("Paused at epoch")
    assert any(b.label == "Resume" for b in at.button)
    assert any("pauses included" in c.value for c in at.caption)
    button(at, "Resume").click().run()
    assert at.get("progress")[0].proto.text.startswith("Epoch") and any(b.label == "Pause" for b in at.button)
    button(at, "Stop").click().run()
    poll_until(at, lambda at: at.session_state["app"].has_model)
    history = at.session_state["app"].trained.history
    assert history.stopped_reason == "stopped_by_user"
    assert history.epochs_run >= 2 and len(history.loss) == len(history.val_loss) == history.epochs_run
    assert "you pressed Stop" in " ".join(c.value for c in at.caption)


@pytest.mark.parametrize("key, value, message", [
    ("train_lr", 0.0, "Learning rate ('lr') must be a number above 0 and at most 10; got 0"),
    ("train_val_fraction", 0.6, "Validation share ('val_fraction') must be"),
])
def test_a_bad_setting_shows_its_message_and_blocks_start(app, builder_home, key, value, message):
    at = open_page(app, make_workspace(builder_home), PAGE)
    at.number_input(key=key).set_value(value).run()
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="train_start").disabled


def test_a_failed_job_shows_its_plain_error(app, builder_home, monkeypatch):
    from builder import pipeline
    from builder.errors import DataError

    def failing(*args, **kwargs):
        raise DataError("'species' holds text, so it cannot be predicted as a number.")

    monkeypatch.setattr(pipeline, "train_model", failing)  # what the job runs, in its thread
    at = open_page(app, make_workspace(builder_home, "iris"), PAGE)
    at.button(key="train_start").click().run()
    poll_until(at, lambda at: any("Training did not finish" in e.value for e in at.error))
    assert any("'species' holds text" in e.value for e in at.error), [e.value for e in at.error]
    assert not at.session_state["app"].has_model
    assert not at.button(key="train_start").disabled  # the user can fix the data and try again


def test_a_design_for_another_task_is_refused_before_training(app, builder_home):
    # A linear-regression design cannot predict a category: said at once, next to a disabled Start.
    at = open_page(app, make_workspace(builder_home, "iris", family="linear"), PAGE)
    assert any("does not fit your data: Linear regression cannot do" in e.value for e in at.error)
    assert at.button(key="train_start").disabled


def test_earlier_runs_are_listed_found_reopened_renamed_compared_and_deleted(app, builder_home):
    workspace = make_workspace(builder_home, "iris")
    at = open_page(app, workspace, PAGE)
    at.number_input(key="train_epochs").set_value(2)
    for _ in range(2):
        at.button(key="train_start").click().run()
        poll_until(at, lambda at: any("Training finished" in s.value for s in at.success))
        time.sleep(1.1)  # run ids carry the second they were saved in
    first, second = sorted(r.id for r in workspace.list_runs())
    assert at.session_state["app"].run_id == second
    table = at.dataframe(key="runs_table").value  # newest first, each with its own trained_at
    assert list(table["created"]) == [workspace.load_run(run).info["trained_at"] for run in (second, first)]
    assert table["title"][0].endswith("✓") and table["score"][0].endswith("%")

    def pick(*rows: int):
        at.session_state["runs_table"] = {"selection": {"rows": list(rows), "columns": [], "cells": []}}
        return at.run()

    pick(1)  # the older run: open it, its design and settings come back too
    at.button(key="runs_open").click().run()
    assert at.session_state["app"].run_id == first
    at.text_input(key=f"runs_title_{first}").set_value("The first try")
    next(b for b in at.button if b.label == "Rename").click().run()
    assert {r.id: r.title for r in workspace.list_runs()}[first] == "The first try"
    at.text_input(key="runs_search").set_value("first try").run()
    assert list(at.dataframe(key="runs_table").value["title"]) == ["The first try ✓"]
    at.text_input(key="runs_search").set_value("").run()

    pick(0, 1)  # both: their curves overlaid and their metrics side by side
    names = {trace.get("name") for c in at.get("plotly_chart") for trace in json.loads(c.proto.spec)["data"]}
    assert {"The first try", "MLP (neural network) on Iris flowers (sample)"} <= names
    compared = at.dataframe[-1].value
    assert list(compared.columns)[0] == "Metric" and len(compared.columns) == 3

    pick(0)  # the newer run: delete it
    at.button(key="runs_delete").click().run()
    assert [r.id for r in workspace.list_runs()] == [first]


@pytest.mark.parametrize("status, expected", [
    ("running", "Epoch 3 of 10 (2 done) · about 16 s left"),  # 2 s per epoch (pauses excluded) x 8 left
    ("paused", "Paused at epoch 3 of 10"),
    ("stopping", "Stopping at epoch 3 of 10"),
])
def test_progress_text_counts_the_epoch_in_progress(status, expected):
    from builder.jobs import JobSnapshot
    from pages.components.training import _progress_text

    logs = tuple({"epoch": float(e), "seconds": 2.0} for e in (1, 2))
    snap = JobSnapshot(id="x", title="t", status=status, epoch=2, epochs=10, elapsed=60.0,
                       epoch_logs=logs, batch_points=((2.0, 0.5),), device="CPU", error=None)
    fraction, text = _progress_text(snap)
    assert fraction == pytest.approx(0.2) and text.startswith(expected)


def test_after_stop_the_progress_says_what_happens_while_the_test_rows_are_scored():
    from builder.jobs import JobSnapshot
    from pages.components.training import _progress_text

    snap = JobSnapshot(id="x", title="t", status="stopping", epoch=2, epochs=100, elapsed=60.0, epoch_logs=(),
                       batch_points=(), device="CPU", error=None, training_ended=True)
    assert _progress_text(snap) == (1.0, "Stopped · scoring the test rows and fitting the baseline on the same "
                                         "split...")


def test_an_image_model_trains_through_the_job_and_shows_its_result(app, builder_home):
    workspace = make_image_workspace(builder_home)
    at = open_page(app, workspace, PAGE)
    at.number_input(key="train_epochs").set_value(3)
    at.button(key="train_start").click().run()
    assert not at.exception
    poll_until(at, lambda at: at.session_state["app"].has_model, timeout=90)
    trained = at.session_state["app"].trained
    assert trained.kind == "images" and trained.spec.family == "cnn" and trained.history.epochs_run == 3
    assert trained.preprocessor.input_shape == (1, 12, 12)
    assert any("Training finished" in s.value for s in at.success)
    assert any(m.label == "Test accuracy" for m in at.metric)
    charts_shown = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    accuracy = next(c for c in charts_shown if "Accuracy" in c["layout"]["yaxis"]["title"]["text"])
    assert [len(values(t["y"])) for t in accuracy["data"]] == [3, 3]  # training and validation
    assert workspace.list_runs()[0].title == "CNN (convolutional network) on Digits"
    assert trained.info["source"] == "Digits"


def test_a_design_that_does_not_fit_the_data_says_why_and_blocks_start(app, builder_home):
    workspace = make_image_workspace(builder_home, design=None)
    workspace.save_state("design", starter_spec("mlp", 4, 150).to_dict())  # a table design on pictures
    at = open_page(app, workspace, PAGE)
    assert any("does not fit your data" in e.value and "CNN" in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="train_start").disabled
    assert any(link.proto.page == "build" for link in at.get("page_link"))


def test_the_missing_data_message_fits_what_is_loaded(builder_home):
    from pages.components.state import AppState
    from pages.components.training import missing_data_message

    state = AppState(workspace=make_image_workspace(builder_home, design=None))
    assert "Load your data first" in missing_data_message(state)
    state.images = object()  # pictures loaded, their choices not saved
    assert "Check the pictures on the Data page" in missing_data_message(state)


@pytest.mark.parametrize("task, logs_key, title", [
    ("forecast", "val_rmse", "forecast error"),
    ("anomaly", None, "Reconstruction error"),
])
def test_quality_chart_fits_forecasts_and_unusual_rows(task, logs_key, title):
    from pages.components.training import quality_figure

    metrics = {logs_key: [3.0, 2.0]} if logs_key else {}
    figure = quality_figure([1, 2], metrics, [0.5, 0.4], task, best_epoch=2)
    assert title in figure.layout.yaxis.title.text
    assert list(values(figure.data[0].y)) == ([3.0, 2.0] if logs_key else [0.5, 0.4])
    assert quality_figure([], {}, [], task) is None


def test_the_live_loss_chart_never_shows_empty_axes(app, builder_home, monkeypatch):
    """Before the first batch: a note (no empty axes); from the first batch: the running loss, a dot."""
    import threading

    from builder import pipeline
    from builder.errors import DataError

    batch, release = threading.Event(), threading.Event()

    def slow_start(source, data_spec, config, spec=None, callbacks=(), control=None, **checkpoints):
        batch.wait(30)  # preparing the data: nothing to draw yet
        for callback in callbacks:
            callback.on_train_begin({"device": "CPU", "epochs": config.epochs, "batches_per_epoch": 4})
            callback.on_batch_end(1, {"epoch": 1, "epochs": config.epochs, "batch": 1, "batches": 4, "loss": 0.9})
        release.wait(30)
        raise DataError("stopped by the test")

    monkeypatch.setattr(pipeline, "train_model", slow_start)
    at = open_page(app, make_workspace(builder_home, "iris"), PAGE)
    at.button(key="train_start").click().run()
    try:
        at.run()
        assert any("loss curve appears after the first batch" in i.value for i in at.info), [i.value for i in at.info]
        assert not any(charts.LIVE_TRACE in f or "Validation" in f for f in figures(at))  # no empty axes
        batch.set()
        at = poll_until(at, lambda at: any(charts.LIVE_TRACE in f for f in figures(at)))
        live = next(f for f in figures(at) if charts.LIVE_TRACE in f)[charts.LIVE_TRACE]
        assert live["mode"] == "markers" and list(values(live["y"])) == [0.9]  # one point: a dot, not an empty line
    finally:
        batch.set()
        release.set()


def test_a_halved_batch_is_said_on_the_page_during_and_after_training(app, builder_home, monkeypatch):
    """Out of GPU memory (simulated on the CPU): the live panel and the result both say the batch was
    halved, in the engine's words."""
    from builder import train as train_module

    real_epoch = train_module._Trainer._train_epoch

    def runs_out_once(self, epoch):
        if self.batch_size > 8:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_epoch(self, epoch)

    monkeypatch.setattr(train_module._Trainer, "_train_epoch", runs_out_once)
    at = open_page(app, make_workspace(builder_home, "iris"), PAGE)
    at.number_input(key="train_epochs").set_value(3)
    at.button(key="train_start").click().run()
    poll_until(at, lambda at: any("Training finished" in s.value for s in at.success))
    notes = [i.value for i in at.info if "ran out of memory" in i.value]
    assert len(notes) == 3 and "training went on with batch size 8" in notes[-1]  # 64 -> 32 -> 16 -> 8
    assert at.session_state["app"].trained.history.notes == notes
