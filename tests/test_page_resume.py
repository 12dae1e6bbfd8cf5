"""A training the app lost when its server stopped: the Train page says where it got to, and
"Resume from epoch N" trains the epochs after N only, ending where an uninterrupted run ends."""

from __future__ import annotations

import time

import numpy as np
import pytest

from builder import resume
from builder.data import DataSpec
from builder.spec import ModelSpec
from builder.train import Callback, TrainConfig, TrainControl
from builder.workers import TrainingRequest, train_request
from tests.app_helpers import button, open_page
from tests.test_page_train import PAGE, make_workspace

EPOCHS, CUT = 8, 3


class ServerDies(Callback):
    """Ends the training abruptly after epoch ``CUT`` (its checkpoint is already on disk)."""

    def on_epoch_end(self, epoch, logs):
        if epoch == CUT:
            raise SystemExit("the server process stopped")


def interrupted_workspace(home):
    workspace = make_workspace(home)
    data = workspace.data_file()
    config = TrainConfig(epochs=EPOCHS, batch_size=16, lr=0.01, early_stopping_patience=None, seed=0)
    request = TrainingRequest(str(workspace.root), workspace.token, str(data.path), data.kind,
                              workspace.load_state("data_spec"), config.to_dict(), workspace.load_state("design"),
                              "MLP on iris", data_name=data.name,
                              checkpoint_dir=str(workspace.checkpoint_folder("lostjob123")))
    workspace.save_state("job_id", "lostjob123")
    resume.remember(workspace, "lostjob123", request)
    with pytest.raises(SystemExit):
        train_request(request, _control(), [ServerDies()], {})
    return workspace, request


def _control():
    return TrainControl()


def test_an_interrupted_training_resumes_from_its_epoch_and_ends_as_if_never_stopped(app, builder_home):
    workspace, request = interrupted_workspace(builder_home)
    at = open_page(app, workspace, PAGE)
    assert any(f"interrupted after epoch {CUT} of {EPOCHS}" in w.value for w in at.warning)
    button(at, f"Resume from epoch {CUT}").click().run()
    assert not at.exception, at.exception
    deadline = time.monotonic() + 120
    while resume.interrupted(workspace) is not None or workspace.load_state("run_id") is None:
        assert time.monotonic() < deadline, "the resumed training did not finish"
        time.sleep(0.3)
        at.run()
    resumed = workspace.load_run(workspace.load_state("run_id"))
    assert resumed.history.epoch == list(range(1, EPOCHS + 1))
    # The same run uninterrupted: same losses, epoch for epoch (CPU, fixed seed).
    whole = train_request(TrainingRequest(**{**request.__dict__, "checkpoint_dir": None}), _control(), [], {})
    assert np.allclose(resumed.history.loss, whole.history.loss, rtol=0, atol=1e-6)
    assert np.allclose(resumed.history.val_loss, whole.history.val_loss, rtol=0, atol=1e-6)
    assert not any("interrupted" in w.value for w in at.warning)
    assert not (workspace.root / "checkpoints" / "lostjob123").exists()  # nothing left to resume


def test_an_interrupted_training_can_be_discarded(app, builder_home):
    workspace, _ = interrupted_workspace(builder_home)
    at = open_page(app, workspace, PAGE)
    button(at, "Discard it").click().run()
    assert not any("interrupted" in w.value for w in at.warning)
    assert resume.interrupted(workspace) is None


def test_a_training_that_ended_is_not_offered_for_resuming(builder_home):
    workspace = make_workspace(builder_home)
    data = workspace.data_file()
    config = TrainConfig(epochs=2, batch_size=16, early_stopping_patience=None, seed=0)
    request = TrainingRequest(str(workspace.root), workspace.token, str(data.path), data.kind,
                              workspace.load_state("data_spec"), config.to_dict(), workspace.load_state("design"),
                              "t", checkpoint_dir=str(workspace.checkpoint_folder("donejob123")))
    resume.remember(workspace, "donejob123", request)
    train_request(request, _control(), [], {})
    assert resume.interrupted(workspace) is None
    # The note itself reads back as the request it was.
    saved = TrainingRequest(**workspace.load_state(resume.TRAINING_STATE)["request"])
    assert saved == request and DataSpec.from_dict(saved.data_spec) and ModelSpec.from_dict(saved.design)
