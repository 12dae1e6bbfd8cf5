"""Out of device memory during training: the batch is halved and the run goes on, saying so.

A CUDA out-of-memory error is simulated on the CPU by a layer that raises ``torch.OutOfMemoryError``
on training batches above a size, as a GPU would."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from builder.jobs import Job, JobRecorder
from builder.train import Callback, FitError, TensorData, TrainConfig, fit


class RunsOutOfMemory(nn.Module):
    """A linear model whose training batches above ``limit`` rows 'do not fit in memory'."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit, self.calls = limit, []
        self.linear = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls.append(len(x))
            if len(x) > self.limit:
                raise torch.OutOfMemoryError(f"CUDA out of memory (simulated, batch {len(x)})")
        return self.linear(x)


class Heard(Callback):
    def __init__(self):
        self.changes = []

    def on_batch_size_changed(self, batch_size, batches_per_epoch, note):
        self.changes.append((batch_size, batches_per_epoch, note))


def regression_data(n: int = 256):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5, 0.0], dtype=np.float32)).reshape(-1, 1)
    return TensorData(X[:200], y[:200], X[200:], y[200:])


def test_out_of_memory_halves_the_batch_until_it_fits_and_says_so():
    model, heard = RunsOutOfMemory(limit=40), Heard()
    result = fit(model, regression_data(), "regression", TrainConfig(epochs=3, batch_size=128, lr=0.05, seed=0),
                 callbacks=[heard])
    assert [size for size, _, _ in heard.changes] == [64, 32]
    assert [batches for _, batches, _ in heard.changes] == [4, 7]  # 200 rows
    assert result.history.epochs_run == 3 and result.history.stopped_reason == "completed"
    assert result.history.notes == [note for _, _, note in heard.changes]
    assert "ran out of memory with batch size 128 at epoch 1" in result.history.notes[0]
    assert "went on with batch size 32" in result.history.notes[1]
    assert max(model.calls[2:]) <= 32  # after the retries every training batch fits
    assert result.history.loss[-1] < result.history.loss[0]


def test_the_job_shows_the_note_and_keeps_its_live_curve_in_epochs():
    job = Job(id="j", owner="o", title="t", epochs=2)
    recorder = JobRecorder(job)
    fit(RunsOutOfMemory(limit=40), regression_data(), "regression",
        TrainConfig(epochs=2, batch_size=128, lr=0.05, seed=0), callbacks=[recorder])
    snap = job.snapshot()
    assert len(snap.notes) == 2 and "batch size 32" in snap.notes[-1]
    assert all(0 < x <= 2 for x, _ in snap.batch_points)


def test_one_row_that_does_not_fit_is_still_an_error_with_its_advice():
    with pytest.raises(FitError, match="even with one row per batch"):
        fit(RunsOutOfMemory(limit=0), regression_data(), "regression",
            TrainConfig(epochs=1, batch_size=4, lr=0.05, seed=0))
