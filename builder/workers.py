"""Training in worker processes, so the web server stays quick while models train.

In threads, two trainings made a fresh page load take 22-34 s instead of 2-3 s: the server shared
its interpreter with them. ``WorkerPool`` keeps training out of the server's process:

- A few long-lived processes start with the app (spawned, torch imported and its first optimizer
  warmed, so the first chart point still comes within seconds), at a lower scheduling priority than
  the server (``nice``), each training on its share of the cores.
- Jobs queue first in, first out; an idle worker takes the next. With GPUs, there is one worker per
  GPU (so one job per GPU at a time), each pinned to its own.
- A job's progress comes back as small events on one queue. A listener thread in the server plays
  them into the ``Job`` through the same ``JobRecorder`` a thread would use, so pages read the same
  ``JobSnapshot`` whichever way a job runs.
- Stop and pause are two shared events per worker that ``fit`` reads between batches.
- The worker saves the finished run into the workspace itself; the server loads it back.
- A worker that dies (killed for memory, crashed) fails its own job only, and a fresh worker takes
  its place. A worker whose server has gone stops at the next batch and exits without saving: the
  checkpoint of the last finished epoch is on disk, and the Train page offers to resume from it.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing as mp
import os
import queue
import sys
import threading
import time
import traceback
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.errors import BuilderError
from builder.memory import return_big_blocks_to_the_system
from builder.train import TrainControl

log = logging.getLogger(__name__)

WORKERS_ENV = "BUILDER_TRAINING_WORKERS"  # how many trainings run at once; 0: in the server's threads
DEFAULT_WORKERS = 2
NICENESS = 10  # below the server: page loads first, training with what is left
PARENT_CHECK_S = 0.5  # how often a worker looks whether its server is still there
MONITOR_S = 1.0  # how often the server looks whether its workers are still alive


def configured_workers() -> int:
    """The number of worker processes the setting asks for (0: train in threads)."""
    text = os.environ.get(WORKERS_ENV, str(DEFAULT_WORKERS)).strip()
    try:
        return max(0, int(text))
    except ValueError:
        log.warning("%s=%r is not a whole number: using %d", WORKERS_ENV, text, DEFAULT_WORKERS)
        return DEFAULT_WORKERS


@dataclass(frozen=True)
class TrainingRequest:
    """Everything a worker needs to train one run, as plain values (it crosses a process boundary).

    The data is the workspace's saved file (a table or an image zip), read again by the worker.
    """

    workspace_root: str
    token: str
    data_file: str
    data_kind: str  # "table" (also text and series) or "images"
    data_spec: dict[str, Any]
    config: dict[str, Any]
    design: dict[str, Any] | None
    title: str
    data_name: str | None = None
    checkpoint_dir: str | None = None
    resume_from: str | None = None


# --------------------------------------------------------------------------------------------------
# The worker process


class SharedControl(TrainControl):
    """``TrainControl`` over events shared between the server and one worker process."""

    def __init__(self, stop: Any, running: Any) -> None:  # noqa: D107 - see the class
        self._stop, self._running, self._lock = stop, running, threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._stop.clear()
            self._running.set()


class _EventSender:
    """The training callback in a worker: each event goes to the server's queue."""

    def __init__(self, job_id: str, events: Any):
        self.job_id, self.events = job_id, events

    def _send(self, kind: str, *payload: Any) -> None:
        self.events.put((kind, self.job_id, payload))

    def on_train_begin(self, info: dict[str, Any]) -> None:
        self._send("on_train_begin", _plain(info))

    def on_batch_end(self, step: int, logs: dict[str, Any]) -> None:
        self._send("on_batch_end", step, _plain(logs))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self._send("on_epoch_end", epoch, _plain(logs))

    def on_batch_size_changed(self, batch_size: int, batches_per_epoch: int, note: str) -> None:
        self._send("on_batch_size_changed", batch_size, batches_per_epoch, note)

    def on_train_end(self, history: Any) -> None:
        self._send("on_train_end", None)


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Only what pickles small and safely: numbers, text, flags, and dicts of them."""
    return {k: v for k, v in values.items() if isinstance(v, int | float | str | bool | dict | type(None))}


def _lower_priority() -> None:
    try:
        os.nice(NICENESS)
    except (AttributeError, OSError):  # Windows has no nice; a refusal costs only responsiveness
        log.info("could not lower the training worker's priority")


def _watch_parent(parent_pid: int, control: SharedControl, orphaned: threading.Event) -> None:
    """Stop the training in progress once the server is gone (its pid is no longer our parent)."""
    while os.getppid() == parent_pid:
        time.sleep(PARENT_CHECK_S)
    orphaned.set()
    control.stop()


def _read_source(request: TrainingRequest, cache: dict[tuple, Any]) -> Any:
    """The table (kept for the next job on the same file) or the image zip's path."""
    path = Path(request.data_file)
    if request.data_kind == "images":
        return path
    from builder.data import read_table

    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in cache:
        cache.clear()  # one table at a time: a worker should not hold several big tables
        cache[key] = read_table(path, name=request.data_name or path.name)
    return cache[key]


def train_request(request: TrainingRequest, control: TrainControl, callbacks: list, cache: dict,
                  source: Any = None) -> Any:
    """Train ``request``; return the ``TrainedModel``.

    Args:
        source: the data already in memory (the app's own table), instead of reading the file again.
    """
    from builder.data import DataSpec
    from builder.pipeline import train_model
    from builder.spec import ModelSpec
    from builder.train_config import TrainConfig

    source = _read_source(request, cache) if source is None else source
    design = ModelSpec.from_dict(request.design) if request.design else None
    trained = train_model(source, DataSpec.from_dict(request.data_spec), TrainConfig.from_dict(request.config),
                          spec=design, callbacks=callbacks, control=control,
                          checkpoint_dir=request.checkpoint_dir, resume_from=request.resume_from)
    if request.data_name:
        trained.info["source"] = request.data_name
    return trained


def save_result(request: TrainingRequest, trained: Any) -> str:
    """Save the trained run in the request's workspace; return its id."""
    from builder.workspace import Workspace

    return Workspace(Path(request.workspace_root), request.token).save_run(trained, request.title)


def _serve(tasks: Any, events: Any, stop: Any, running: Any, parent_pid: int, threads: int, gpu: int | None) -> None:
    """A worker process's life: warm up, then train one request after another."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    _lower_priority()
    return_big_blocks_to_the_system()
    import torch

    from builder.train import warm_up

    torch.set_num_threads(threads)
    warm_up()
    control, orphaned, cache = SharedControl(stop, running), threading.Event(), {}
    threading.Thread(target=_watch_parent, args=(parent_pid, control, orphaned), daemon=True).start()
    events.put(("ready", None, ()))
    while not orphaned.is_set():
        try:
            task = tasks.get(timeout=PARENT_CHECK_S)
        except queue.Empty:
            continue
        if task is None:
            return
        job_id, request = task
        try:
            trained = train_request(request, control, [_EventSender(job_id, events)], cache)
            if orphaned.is_set():
                return  # nobody to tell and nothing to save: the last epoch's checkpoint stays
            run_id = save_result(request, trained)
        except BuilderError as exc:
            events.put(("failed", job_id, (str(exc), None)))
            continue
        except Exception as exc:  # noqa: BLE001 - a bug: the server shows it with its traceback
            events.put(("failed", job_id, (f"Unexpected error during training: {exc}. Please report it with "
                                           "the details below.", traceback.format_exc())))
            continue
        events.put(("done", job_id, (run_id, control.stopped)))


# --------------------------------------------------------------------------------------------------
# The server's side


@dataclass
class _Worker:
    index: int
    process: Any
    tasks: Any
    stop: Any
    running: Any
    gpu: int | None
    job: Any = None  # the Job it trains now
    ready: bool = False


class WorkerPool:
    """Worker processes, the queue of jobs waiting for one, and the listener that feeds the jobs.

    Args:
        workers: how many trainings run at once (with GPUs: at most one per GPU).
        threads: torch threads per worker; by default the cores but one, shared among the workers.
    """

    def __init__(self, workers: int = DEFAULT_WORKERS, threads: int | None = None):
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        self.size = min(workers, gpus) if gpus else workers
        self.gpus = gpus
        cores = os.cpu_count() or 1
        self.threads = threads or max(1, (cores - 1) // max(1, self.size))
        self._context = mp.get_context("spawn")  # never fork a server full of threads
        self._events = self._context.Queue()
        self._lock = threading.Lock()
        self._waiting: collections.deque = collections.deque()
        self._recorders: dict[str, Any] = {}
        self._closed = False
        self._workers = [self._start_worker(i) for i in range(self.size)]
        threading.Thread(target=self._listen, name="worker-events", daemon=True).start()
        threading.Thread(target=self._monitor, name="worker-monitor", daemon=True).start()

    # -- jobs ------------------------------------------------------------------------------------

    def submit(self, job: Any, request: TrainingRequest, recorder: Any) -> None:
        """Queue ``job``; it starts as soon as a worker is free."""
        with self._lock:
            self._recorders[job.id] = recorder
            self._waiting.append((job, request))
        self._dispatch()

    def queued_ahead(self, job: Any) -> int:
        """How many jobs wait before ``job`` (0 when it is next or already running)."""
        with self._lock:
            ids = [waiting.id for waiting, _ in self._waiting]
        return ids.index(job.id) if job.id in ids else 0

    def close(self, timeout: float = 5.0) -> None:
        """Stop every worker (tests, server shutdown); jobs in progress stop at their next batch."""
        self._closed = True
        for worker in self._workers:
            worker.stop.set()
            worker.running.set()
            worker.tasks.put(None)
        for worker in self._workers:
            worker.process.join(timeout)
            if worker.process.is_alive():
                worker.process.kill()
        self._events.put(None)

    # -- inside ------------------------------------------------------------------------------------

    def _start_worker(self, index: int) -> _Worker:
        context = self._context
        stop, running, tasks = context.Event(), context.Event(), context.Queue()
        running.set()
        gpu = index % self.gpus if self.gpus else None
        process = context.Process(target=_serve, name=f"training-worker-{index}", daemon=True,
                                  args=(tasks, self._events, stop, running, os.getpid(), self.threads, gpu))
        with _empty_main():
            process.start()
        return _Worker(index, process, tasks, stop, running, gpu)

    def _dispatch(self) -> None:
        """Give waiting jobs to idle workers; a job stopped while it waited ends here."""
        with self._lock:
            while self._waiting:
                job, request = self._waiting[0]
                if job.control.stopped:
                    self._waiting.popleft()
                    job.finish_from_worker("stopped", None, None, None)
                    continue
                idle = next((w for w in self._workers if w.job is None and w.process.is_alive()), None)
                if idle is None:
                    return
                self._waiting.popleft()
                control = SharedControl(idle.stop, idle.running)
                control.reset()
                job.bind(control)  # a pause asked while waiting carries over
                idle.job = job
                idle.tasks.put((job.id, request))

    def _listen(self) -> None:
        while True:
            event = self._events.get()
            if event is None:
                return
            kind, job_id, payload = event
            if kind == "ready":
                continue
            recorder = self._recorders.get(job_id)
            if recorder is None:
                continue
            if kind in ("done", "failed"):
                self._job_ended(kind, recorder.job, payload)
            else:
                getattr(recorder, kind)(*payload)

    def _job_ended(self, kind: str, job: Any, payload: tuple) -> None:
        with self._lock:
            worker = next((w for w in self._workers if w.job is job), None)
            if worker is not None:
                worker.job = None
            self._recorders.pop(job.id, None)
        if kind == "done":
            run_id, stopped = payload
            job.finish_from_worker("stopped" if stopped else "finished", None, None, run_id)
        else:
            message, detail = payload
            job.finish_from_worker("failed", message, detail, None)
        self._dispatch()

    def _monitor(self) -> None:
        """Replace a worker that died; its job (only its) fails with a plain reason."""
        while not self._closed:
            time.sleep(MONITOR_S)
            for position, worker in enumerate(list(self._workers)):
                if worker.process.is_alive() or self._closed:
                    continue
                code = worker.process.exitcode
                log.error("training worker %d ended with exit code %s", worker.index, code)
                with self._lock:
                    job, worker.job = worker.job, None
                    if job is not None:
                        self._recorders.pop(job.id, None)
                    self._workers[position] = self._start_worker(worker.index)
                if job is not None:
                    job.finish_from_worker("failed", died_message(code), None, None)
                self._dispatch()


@contextlib.contextmanager
def _empty_main() -> Iterator[None]:
    """Start a process without the parent's ``__main__``.

    A spawned child imports its parent's main module first (functions defined there may be its
    target). Under Streamlit the main module is the app's script, so a worker would run the whole
    app; the worker's code lives in this module, so it is given an empty main instead.
    """
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def died_message(exit_code: int | None) -> str:
    """Why a job's worker process ended, for the Train page."""
    killed = exit_code is not None and exit_code < 0
    cause = ("it was killed, most often because the machine ran out of memory" if killed
             else f"it ended with exit code {exit_code}")
    return (f"The training process stopped unexpectedly ({cause}). Other trainings and the app are not "
            "affected: try fewer rows, a smaller batch size or a smaller model, then start again.")
