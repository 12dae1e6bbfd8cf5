"""Background training jobs: a thread per job, owned by a process-wide registry.

Training must outlive the script run that started it (in Streamlit any click, page switch or
refresh ends a script run), so it runs in a daemon thread. The worker never touches the UI: a
``JobRecorder`` callback writes events into the ``Job`` under a lock, and the UI polls
``Job.snapshot()``, a consistent copy it can draw without holding the lock.

Jobs are scoped by owner (the workspace token): ``get`` returns a job only to its owner, and the
registry is bounded so a long-running server cannot grow without limit.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from builder.errors import BuilderError
from builder.train import Callback, TrainControl

log = logging.getLogger(__name__)

# Statuses a job goes through; the last three are final. A job queues while every worker is busy.
QUEUED = "queued"
RUNNING, PAUSED, STOPPING, FINISHED, STOPPED, FAILED = "running", "paused", "stopping", "finished", "stopped", "failed"
FINAL_STATUSES = (FINISHED, STOPPED, FAILED)

MAX_BATCH_POINTS = 2_000  # the live chart downsamples past this; older points are thinned


@dataclass(frozen=True)
class JobSnapshot:
    """A consistent copy of a job's state for drawing (no lock needed)."""

    id: str
    title: str
    status: str
    epoch: int
    epochs: int
    elapsed: float
    epoch_logs: tuple[dict[str, float], ...]
    batch_points: tuple[tuple[float, float], ...]  # (fractional epoch, running batch loss)
    device: str
    error: str | None
    stage: str = ""  # cross-validation: "Fold 2 of 5" or "Final model"; the epochs are that stage's
    training_ended: bool = False  # the epochs are over; the test rows and the baseline are being scored
    notes: tuple[str, ...] = ()  # what happened on the way (the batch halved after running out of memory)

    @property
    def done(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def epochs_done(self) -> float:
        """Epochs done, counting the share of the epoch in progress (from the live batch points)."""
        partial = self.batch_points[-1][0] if self.batch_points else 0.0
        return max(float(self.epoch), min(partial, self.epoch + 0.999))

    @property
    def fraction(self) -> float:
        return min(1.0, self.epochs_done / self.epochs) if self.epochs else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left: the recent epochs' own durations (pauses excluded), else the clock so far."""
        if self.done:
            return None
        left = self.epochs - self.epochs_done
        recent = [log["seconds"] for log in self.epoch_logs[-5:] if "seconds" in log]
        if recent:
            return sum(recent) / len(recent) * left
        return self.elapsed / self.epochs_done * left if self.epochs_done > 0.05 else None


@dataclass
class Job:
    """One training job. Mutated only by its worker thread (through ``JobRecorder``) under ``lock``."""

    id: str
    owner: str
    title: str
    epochs: int
    control: TrainControl = field(default_factory=TrainControl)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    status: str = RUNNING
    epoch: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    epoch_logs: list[dict[str, float]] = field(default_factory=list)
    batch_points: list[tuple[float, float]] = field(default_factory=list)
    device: str = ""
    stage: str = ""  # the cross-validation stage running now (empty for a plain run)
    training_ended: bool = False  # fit() returned; scoring and saving follow
    notes: list[str] = field(default_factory=list)
    result: Any = None
    outputs: dict[str, Any] = field(default_factory=dict)  # what on_done adds, e.g. the saved run id
    error: str | None = None
    error_detail: str | None = None
    thread: threading.Thread | None = field(default=None, repr=False)
    load_result: Callable[[str], Any] | None = field(default=None, repr=False)  # run id -> TrainedModel
    ended: threading.Event = field(default_factory=threading.Event, repr=False)

    def snapshot(self) -> JobSnapshot:
        with self.lock:
            status = self.status
            if status in (RUNNING, QUEUED) and self.control.stopped:
                status = STOPPING
            elif status == RUNNING and self.control.paused:
                status = PAUSED
            elapsed = (self.finished or time.monotonic()) - self.started
            return JobSnapshot(
                id=self.id, title=self.title, status=status, epoch=self.epoch, epochs=self.epochs,
                elapsed=elapsed, epoch_logs=tuple(dict(d) for d in self.epoch_logs),
                batch_points=tuple(self.batch_points), device=self.device, error=self.error,
                stage=self.stage, training_ended=self.training_ended, notes=tuple(self.notes),
            )

    def stop(self) -> None:
        """Ask the worker to stop after the current batch; the best model so far is kept."""
        with self.lock:
            self.control.stop()

    def pause(self) -> None:
        with self.lock:
            self.control.pause()

    def resume(self) -> None:
        with self.lock:
            self.control.resume()

    def bind(self, control: TrainControl) -> None:
        """Hand the job to a worker process's control, keeping a stop or pause asked while it queued."""
        with self.lock:
            if self.control.stopped:
                control.stop()
            elif self.control.paused:
                control.pause()
            self.control, self.status, self.started = control, RUNNING, time.monotonic()

    def finish_from_worker(self, status: str, error: str | None, detail: str | None, run_id: str | None) -> None:
        """A worker process ended this job: the run it saved (``run_id``) becomes the result."""
        result = None
        if run_id is not None and self.load_result is not None:
            try:
                result = self.load_result(run_id)
                self.outputs["run_id"] = run_id
            except BuilderError as exc:
                status, error = FAILED, f"The trained model was saved but cannot be read back: {exc}"
        with self.lock:
            self.status, self.result, self.error, self.error_detail = status, result, error, detail
            self.training_ended, self.finished = True, time.monotonic()
        self.ended.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker ends (for tests and the CLI); return whether it ended."""
        self.ended.wait(timeout)
        return self.status in FINAL_STATUSES


class JobRecorder(Callback):
    """Training callback that records progress into a ``Job`` for the UI to poll."""

    def __init__(self, job: Job):
        self.job = job
        self._steps_per_epoch = 1

    def on_train_begin(self, info: dict[str, Any]) -> None:
        with self.job.lock:
            self.job.device = str(info.get("device", ""))
            self.job.epochs = int(info.get("epochs", self.job.epochs))
            self._steps_per_epoch = max(1, int(info.get("batches_per_epoch", 1)))
            self.job.training_ended = False
            if info.get("stage"):  # a new cross-validation fold: the live chart shows this run alone
                self.job.stage = str(info["stage"])
                self.job.epoch = 0
                self.job.epoch_logs.clear()
                self.job.batch_points.clear()

    def on_batch_end(self, step: int, logs: dict[str, float]) -> None:
        if "batch" in logs and "batches" in logs:  # where in its epoch, whatever the batch size was before
            x = logs["epoch"] - 1 + logs["batch"] / max(1, logs["batches"])
        else:
            x = step / self._steps_per_epoch
        point = (float(x), float(logs["loss"]))
        with self.job.lock:
            points = self.job.batch_points
            points.append(point)
            if len(points) > MAX_BATCH_POINTS:
                del points[::2]  # thin evenly: keeps the curve's shape at half the points

    def on_batch_size_changed(self, batch_size: int, batches_per_epoch: int, note: str) -> None:
        with self.job.lock:
            self._steps_per_epoch = max(1, batches_per_epoch)
            self.job.notes.append(note)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        with self.job.lock:
            self.job.epoch = epoch
            self.job.epoch_logs.append({"epoch": float(epoch), **{k: float(v) for k, v in logs.items()
                                                                   if isinstance(v, (int, float))}})

    def on_train_end(self, history: Any) -> None:
        with self.job.lock:
            self.job.training_ended = True


class JobRegistry:
    """All jobs of this process, bounded, each visible only to its owner."""

    def __init__(self, max_jobs: int = 64, max_running_per_owner: int = 2, pool: Any = None):
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self.max_jobs = max_jobs
        self.max_running_per_owner = max_running_per_owner
        self.pool = pool  # a ``workers.WorkerPool``: ``submit`` trains in its processes

    def submit(self, owner: str, request: Any, title: str, epochs: int,
               load_result: Callable[[str], Any], job_id: str | None = None) -> Job:
        """Queue ``request`` (a ``workers.TrainingRequest``) for the worker processes; return its job.

        Args:
            load_result: reads the run the worker saved (its id) back as the job's result.

        Raises:
            BuilderError: the owner already has the maximum number of running jobs.
        """
        if self.pool is None:
            raise RuntimeError("this registry has no worker processes: use start()")
        job = self._new_job(owner, title, epochs, QUEUED, job_id)
        job.load_result = load_result
        self.pool.submit(job, request, JobRecorder(job))
        return job

    def queued_ahead(self, job: Job) -> int:
        """How many jobs wait for a worker before ``job``."""
        return self.pool.queued_ahead(job) if self.pool is not None else 0

    @staticmethod
    def new_id() -> str:
        """A fresh job id (a caller that names files after its job takes one first)."""
        return secrets.token_urlsafe(8)

    def _new_job(self, owner: str, title: str, epochs: int, status: str = RUNNING, job_id: str | None = None) -> Job:
        with self._lock:
            running = [j for j in self._jobs.values() if j.owner == owner and j.status not in FINAL_STATUSES]
            if len(running) >= self.max_running_per_owner:
                raise BuilderError(
                    f"{len(running)} trainings are already running in this workspace: stop one "
                    "before starting another."
                )
            self._evict_finished()
            job = Job(id=job_id or self.new_id(), owner=owner, title=title, epochs=epochs, status=status)
            self._jobs[job.id] = job
        return job

    def start(
        self,
        owner: str,
        work: Callable[[TrainControl, Sequence[Callback]], Any],
        title: str,
        epochs: int,
        on_done: Callable[[Job], None] | None = None,
        job_id: str | None = None,
    ) -> Job:
        """Run ``work(control, callbacks)`` in a daemon thread and return its job at once.

        Args:
            owner: the workspace token; only it can find the job again.
            work: the training function; it must pass ``callbacks`` and ``control`` to ``fit``.
            title: a short label for the UI ("MLP on titanic.csv").
            epochs: planned epochs, for the progress bar until training reports its own.
            on_done: called in the worker thread after ``work`` returns, with ``job.result`` set
                (e.g. to save the run and note its id in ``job.outputs``); an error there marks
                the job failed but keeps its result.
            job_id: the job's id, when the caller named files after it first (``new_id``).

        Raises:
            BuilderError: the owner already has the maximum number of running jobs.
        """
        job = self._new_job(owner, title, epochs, job_id=job_id)
        job.thread = threading.Thread(target=self._run, args=(job, work, on_done), name=f"job-{job.id}",
                                      daemon=True)
        job.thread.start()
        return job

    def _run(self, job: Job, work: Callable, on_done: Callable[[Job], None] | None) -> None:
        status, result, error, detail = FAILED, None, None, None
        try:
            result = work(job.control, [JobRecorder(job)])
            status = STOPPED if job.control.stopped else FINISHED
            if on_done is not None:
                job.result = result
                on_done(job)
        except BuilderError as exc:
            status, error = FAILED, str(exc)
        except Exception as exc:  # noqa: BLE001 - a bug: keep the traceback for the log and the UI
            log.exception("training job %s failed", job.id)
            status = FAILED
            error = f"Unexpected error during training: {exc}. Please report it with the details below."
            detail = traceback.format_exc()
        with job.lock:
            job.status, job.result, job.error, job.error_detail = status, result, error, detail
            job.finished = time.monotonic()
        job.ended.set()

    def get(self, owner: str, job_id: str | None) -> Job | None:
        """Return the job only if ``owner`` started it."""
        with self._lock:
            job = self._jobs.get(job_id or "")
        return job if job is not None and job.owner == owner else None

    def jobs(self, owner: str) -> list[Job]:
        with self._lock:
            return [j for j in self._jobs.values() if j.owner == owner]

    def stop_all(self, timeout: float = 10.0) -> None:
        """Stop every job and wait for the threads (tests, server shutdown)."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.stop()
        for job in jobs:
            job.wait(timeout)
        if self.pool is not None:
            self.pool.close()

    def _evict_finished(self) -> None:
        # Oldest finished jobs go first; their results were saved to the workspace by on_done.
        excess = len(self._jobs) - self.max_jobs + 1
        for job in [j for j in self._jobs.values() if j.status in FINAL_STATUSES][:max(0, excess)]:
            del self._jobs[job.id]
