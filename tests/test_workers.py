"""Training in worker processes: jobs queue for a free worker, report their progress, stop, pause
while queued, save their run; a worker that dies fails its own job only and is replaced; a worker
whose server is killed stops, keeps its checkpoint and exits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from builder.checkpoints import read_checkpoint
from builder.data import DataSpec, load_sample
from builder.jobs import FAILED, FINISHED, QUEUED, STOPPED, JobRegistry
from builder.train import TrainConfig
from builder.workers import TrainingRequest, WorkerPool, died_message
from builder.workspace import Workspace
from tests.conftest import APP_FILE

REPO_ROOT = os.path.dirname(APP_FILE)


@pytest.fixture(scope="module")
def registry():
    registry = JobRegistry(pool=WorkerPool(workers=1, threads=1))
    yield registry
    registry.stop_all()


@pytest.fixture(scope="module")
def iris_workspace(tmp_path_factory):
    workspace = Workspace.open(None, home=tmp_path_factory.mktemp("workers"))
    workspace.save_table("iris.csv", load_sample("iris").to_csv(index=False).encode())
    return workspace


def request(workspace: Workspace, epochs: int, **extra) -> TrainingRequest:
    name, path = workspace.table_path()
    spec = DataSpec("species", "multiclass", ["sepal length (cm)", "sepal width (cm)", "petal length (cm)",
                                                "petal width (cm)"])
    config = TrainConfig(epochs=epochs, batch_size=8, lr=0.01, early_stopping_patience=None, seed=0)
    return TrainingRequest(str(workspace.root), workspace.token, str(path), "table", spec.to_dict(),
                           config.to_dict(), None, f"MLP, {epochs} epochs", data_name=name, **extra)


def submit(registry, workspace, epochs, **extra):
    return registry.submit(workspace.token, request(workspace, epochs, **extra), "test run", epochs,
                           workspace.load_run)


def wait_for(condition, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_second_job_queues_until_the_worker_is_free_and_both_save_their_run(registry, iris_workspace):
    first = submit(registry, iris_workspace, epochs=30)
    second = submit(registry, iris_workspace, epochs=3)
    assert second.snapshot().status == QUEUED and registry.queued_ahead(second) == 0
    assert first.wait(180) and second.wait(180)
    for job, epochs in ((first, 30), (second, 3)):
        snap = job.snapshot()
        assert snap.status == FINISHED, snap.error
        assert [int(log["epoch"]) for log in snap.epoch_logs] == list(range(1, epochs + 1))
        assert snap.batch_points and snap.device.startswith("CPU")
        assert job.result.history.epochs_run == epochs and job.result.metrics["test"]["accuracy"] > 0.5
        assert job.outputs["run_id"] in {run.id for run in iris_workspace.list_runs()}


def test_stop_ends_a_running_job_with_its_best_epoch_and_a_pause_asked_while_queued_holds(registry, iris_workspace):
    running = submit(registry, iris_workspace, epochs=400)
    waiting = submit(registry, iris_workspace, epochs=400)
    waiting.pause()
    wait_for(lambda: running.snapshot().epoch >= 2)
    running.stop()
    assert running.wait(120) and running.snapshot().status == STOPPED
    assert 2 <= running.result.history.epochs_run < 400
    wait_for(lambda: waiting.snapshot().status != QUEUED)
    time.sleep(1.0)
    assert waiting.snapshot().status == "paused" and waiting.snapshot().epoch == 0
    waiting.stop()
    assert waiting.wait(120) and waiting.snapshot().status == STOPPED


def test_a_worker_that_dies_fails_its_own_job_and_is_replaced(registry, iris_workspace):
    doomed = submit(registry, iris_workspace, epochs=400)
    wait_for(lambda: doomed.snapshot().epoch >= 1)
    worker = registry.pool._workers[0]
    os.kill(worker.process.pid, signal.SIGKILL)
    assert doomed.wait(30)
    snap = doomed.snapshot()
    assert snap.status == FAILED and snap.error == died_message(-9) and "killed" in snap.error
    after = submit(registry, iris_workspace, epochs=2)  # a fresh worker took its place
    assert after.wait(180) and after.snapshot().status == FINISHED


def test_a_worker_whose_server_is_killed_stops_keeps_its_checkpoint_and_exits(tmp_path):
    workspace = Workspace.open(None, home=tmp_path)
    workspace.save_table("iris.csv", load_sample("iris").to_csv(index=False).encode())
    checkpoints = tmp_path / "checkpoint"
    job_request = request(workspace, 2000, checkpoint_dir=str(checkpoints))
    server = textwrap.dedent(f"""
        import json, sys, time
        from builder.jobs import JobRegistry
        from builder.workers import TrainingRequest, WorkerPool
        from builder.workspace import Workspace
        registry = JobRegistry(pool=WorkerPool(workers=1, threads=1))
        request = TrainingRequest(**json.loads({json.dumps(json.dumps(job_request.__dict__))}))
        job = registry.submit(request.token, request, "t", 2000, lambda run_id: None)
        while job.snapshot().epoch < 2:
            time.sleep(0.05)
        print(registry.pool._workers[0].process.pid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", server], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "BUILDER_HOME": str(tmp_path)})
    worker_pid = int(parent.stdout.readline())
    parent.kill()  # SIGKILL: the server gets no chance to say anything
    parent.wait()

    def gone() -> bool:
        try:
            os.kill(worker_pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, timeout=60)
    state = read_checkpoint(checkpoints).state
    assert 2 <= state["epoch"] < 2000 and state["finished"] is None  # resumable
    assert workspace.list_runs() == []  # nothing half-saved
