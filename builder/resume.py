"""A training the app lost (the server stopped while it trained), found again and resumed.

When a training starts, its ``TrainingRequest`` is remembered in the workspace and its loop writes
a checkpoint after every epoch (``builder.checkpoints``, in ``Workspace.checkpoint_folder``). If the
server stops, the job is gone but both stay: ``interrupted`` finds them, and ``resume_request``
asks for the same training to go on from the checkpoint's epoch (same optimizer state, same
shuffle), which ``train.fit`` does bit for bit.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.checkpoints import checkpoint_info
from builder.errors import BuilderError
from builder.workers import TrainingRequest
from builder.workspace import Workspace

log = logging.getLogger(__name__)

TRAINING_STATE = "training"  # workspace state: the request of the latest training started


@dataclass(frozen=True)
class Interrupted:
    """A training that stopped with the server: where it got to, and how to ask for the rest."""

    job_id: str
    request: TrainingRequest
    epoch: int  # the last epoch finished and checkpointed (0: none finished)
    epochs: int
    history: dict[str, Any] | None  # ``History.to_dict()`` of the epochs done


def remember(workspace: Workspace, job_id: str, request: TrainingRequest) -> None:
    """Note the training just started, so a restarted server can find it."""
    workspace.save_state(TRAINING_STATE, {"job_id": job_id, "request": dataclasses.asdict(request)})


def forget(workspace: Workspace, job_id: str) -> None:
    """Training ``job_id`` ended (or was given up): drop its checkpoint, and its note if it is the
    latest training's."""
    saved = workspace.load_state(TRAINING_STATE)
    if isinstance(saved, dict) and saved.get("job_id") == job_id:
        workspace.save_state(TRAINING_STATE, None)
    shutil.rmtree(workspace.checkpoint_folder(job_id), ignore_errors=True)


def interrupted(workspace: Workspace) -> Interrupted | None:
    """The training this workspace started last, if it stopped part way; ``None`` otherwise.

    Call it only when no job of the workspace is running: a running job's checkpoint looks the same.
    """
    saved = workspace.load_state(TRAINING_STATE)
    if not isinstance(saved, dict):
        return None
    try:
        request = TrainingRequest(**saved["request"])
        job_id = str(saved["job_id"])
    except (KeyError, TypeError) as exc:
        log.warning("the note of the last training is unreadable (%s): ignored", exc)
        return None
    if request.checkpoint_dir is None:  # cross-validation runs are not checkpointed
        return Interrupted(job_id, request, 0, int(request.config.get("epochs", 0)), None)
    try:
        info = checkpoint_info(Path(request.checkpoint_dir))
    except BuilderError as exc:
        log.warning("the checkpoint of the last training is damaged (%s): it cannot resume", exc)
        info = None
    if info is None:  # stopped before its first epoch ended
        return Interrupted(job_id, request, 0, int(request.config.get("epochs", 0)), None)
    if info.finished is not None:
        return None
    return Interrupted(job_id, request, info.epoch, info.epochs, info.history)


def resume_request(found: Interrupted) -> TrainingRequest:
    """The request that continues ``found`` from its checkpoint (writing on into the same folder)."""
    if found.epoch == 0:
        raise BuilderError("This training stopped before its first epoch ended: there is nothing to resume. "
                           "Start it again.")
    return dataclasses.replace(found.request, resume_from=found.request.checkpoint_dir)
