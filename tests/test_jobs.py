"""Background jobs: the worker records events for the UI, stop/pause reach it, errors are kept as
plain messages, jobs are visible only to their owner, and the registry stays bounded."""

from __future__ import annotations

import threading
import time

import pytest

from builder.errors import BuilderError, DataError
from builder.jobs import FAILED, FINISHED, STOPPED, JobRegistry


def fake_training(epochs: int, steps: int = 4, gate: threading.Event | None = None):
    """A stand-in for train_model that emits the real event sequence and honours the control."""

    def work(control, callbacks):
        for cb in callbacks:
            cb.on_train_begin({"device": "CPU, 2 threads", "epochs": epochs, "batches_per_epoch": steps})
        for epoch in range(1, epochs + 1):
            for step in range(steps):
                if gate is not None:
                    gate.wait(5)
                control.wait_if_paused()
                if control.stopped:
                    return {"epochs_run": epoch - 1}
                for cb in callbacks:
                    cb.on_batch_end((epoch - 1) * steps + step + 1, {"loss": 1.0 / epoch})
            for cb in callbacks:
                cb.on_epoch_end(epoch, {"loss": 1.0 / epoch, "val_loss": 1.1 / epoch, "note": "skip"})
        return {"epochs_run": epochs}

    return work


def test_a_job_records_progress_and_finishes_with_its_result():
    registry = JobRegistry()
    job = registry.start("owner-a", fake_training(3), "MLP on iris", epochs=3,
                         on_done=lambda j: j.outputs.update(run_id="run-1"))
    assert job.wait(5)
    snap = job.snapshot()
    assert snap.status == FINISHED and snap.done and snap.fraction == 1.0
    assert [d["epoch"] for d in snap.epoch_logs] == [1.0, 2.0, 3.0]
    assert "note" not in snap.epoch_logs[0] and snap.epoch_logs[2]["val_loss"] == pytest.approx(1.1 / 3)
    assert snap.batch_points[0] == (0.25, 1.0) and len(snap.batch_points) == 12
    assert snap.device == "CPU, 2 threads" and snap.eta is None
    assert job.result == {"epochs_run": 3} and job.outputs["run_id"] == "run-1"


def test_stop_and_pause_reach_the_worker():
    registry = JobRegistry()
    gate = threading.Event()
    job = registry.start("owner-a", fake_training(50, gate=gate), "long", epochs=50)
    job.pause()
    gate.set()
    time.sleep(0.2)
    assert job.snapshot().status == "paused"
    paused_at = len(job.snapshot().batch_points)
    time.sleep(0.2)
    assert len(job.snapshot().batch_points) == paused_at
    job.stop()
    assert job.snapshot().status in ("stopping", STOPPED)
    job.resume()
    assert job.wait(5)
    assert job.snapshot().status == STOPPED


def test_user_errors_are_kept_as_messages_and_bugs_with_details():
    registry = JobRegistry()

    def bad_data(control, callbacks):
        raise DataError("The column 'price' is missing.")

    def bug(control, callbacks):
        raise KeyError("oops")

    job = registry.start("o", bad_data, "x", 1)
    job.wait(5)
    assert job.snapshot().status == FAILED and job.snapshot().error == "The column 'price' is missing."
    assert job.error_detail is None
    job = registry.start("o", bug, "y", 1)
    job.wait(5)
    assert job.status == FAILED and "Unexpected error" in job.error and "KeyError" in job.error_detail


def test_an_error_while_saving_marks_the_job_failed_but_keeps_the_result():
    registry = JobRegistry()

    def broken_save(job):
        raise BuilderError("The disk is full.")

    job = registry.start("o", fake_training(1), "x", 1, on_done=broken_save)
    job.wait(5)
    assert job.status == FAILED and job.error == "The disk is full." and job.result == {"epochs_run": 1}


def test_jobs_are_visible_only_to_their_owner_and_running_jobs_are_limited():
    registry = JobRegistry(max_running_per_owner=1)
    gate = threading.Event()
    job = registry.start("alice", fake_training(1, gate=gate), "x", 1)
    assert registry.get("alice", job.id) is job
    assert registry.get("bob", job.id) is None and registry.get("alice", None) is None
    assert registry.jobs("bob") == []
    with pytest.raises(BuilderError, match="already running"):
        registry.start("alice", fake_training(1), "y", 1)
    registry.start("bob", fake_training(1), "z", 1).wait(5)
    gate.set()
    registry.stop_all()


def test_registry_evicts_the_oldest_finished_jobs():
    registry = JobRegistry(max_jobs=3)
    jobs = [registry.start("o", fake_training(1), str(i), 1) for i in range(3)]
    for job in jobs:
        job.wait(5)
    newest = registry.start("o", fake_training(1), "new", 1)
    newest.wait(5)
    assert registry.get("o", jobs[0].id) is None and registry.get("o", newest.id) is newest
    assert len(registry.jobs("o")) == 3


def test_after_the_last_epoch_the_job_says_it_is_scoring_not_silent():
    scoring = threading.Event()

    def work(control, callbacks):
        fake_training(1)(control, callbacks)
        for cb in callbacks:
            cb.on_train_end(None)  # fit() returned; the baseline and test scores follow
        scoring.wait(5)
        return {}

    job = JobRegistry().start("owner-a", work, "CNN on photos", epochs=1)
    deadline = time.monotonic() + 5
    while not job.snapshot().training_ended and time.monotonic() < deadline:
        time.sleep(0.01)
    from pages.components.training import _progress_text

    assert _progress_text(job.snapshot()) == (
        1.0, "Training done · scoring the test rows and fitting the baseline on the same split...")
    scoring.set()
    assert job.wait(5)
