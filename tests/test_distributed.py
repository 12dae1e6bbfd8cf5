"""Data-parallel training in two CPU processes (gloo): each process trains on half the rows, one
synchronised step equals one single-process step on the whole batch, and ``train --nproc 2`` gives
the metrics of one process, with ``world_size`` in its JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file
from torch import nn

from builder.train import TensorData, TrainConfig, fit
from tests.conftest import APP_FILE
from tests.serve_helpers import free_port

ROWS, FEATURES = 96, 5
REPO_ROOT = os.path.dirname(APP_FILE)


class CountingMLP(nn.Module):
    """A small MLP that counts the training rows it is given."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Linear(16, 1))
        self.rows_trained = 0

    def forward(self, x):
        if self.training:
            self.rows_trained += len(x)
        return self.net(x)


def data() -> TensorData:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(ROWS + 32, FEATURES)).astype(np.float32)
    y = (X[:, :1] - 0.5 * X[:, 1:2] > 0).astype(np.float32)
    return TensorData(X[:ROWS], y[:ROWS], X[ROWS:], y[ROWS:])


def config(batch_size: int, epochs: int = 1) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=batch_size, lr=0.1, optimizer="sgd", seed=3,
                       early_stopping_patience=None, device="cpu")


def one_process(rank: int, world: int, port: int, folder: str, batch_size: int, epochs: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        model = CountingMLP()
        result = fit(model, data(), "binary", config(batch_size, epochs))
        save_file(dict(result.model.state_dict()), os.path.join(folder, f"rank{rank}.safetensors"))
        with open(os.path.join(folder, f"rank{rank}.json"), "w") as out:
            json.dump({"rows": model.rows_trained, "loss": result.history.loss}, out)
    finally:
        dist.destroy_process_group()


def train_in_two_processes(tmp_path, batch_size: int, epochs: int = 1) -> list[dict]:
    mp.spawn(one_process, args=(2, free_port(), str(tmp_path), batch_size, epochs), nprocs=2, join=True)
    return [{"weights": load_file(str(tmp_path / f"rank{r}.safetensors")),
             **json.loads((tmp_path / f"rank{r}.json").read_text())} for r in range(2)]


def single_process(batch_size: int, epochs: int = 1) -> tuple[dict, list[float]]:
    result = fit(CountingMLP(), data(), "binary", config(batch_size, epochs))
    return result.model.state_dict(), result.history.loss


def test_one_synchronised_step_equals_one_step_on_the_whole_batch(tmp_path):
    ranks = train_in_two_processes(tmp_path, batch_size=ROWS)  # one epoch of one batch: one step
    alone, alone_loss = single_process(batch_size=ROWS)
    assert [r["rows"] for r in ranks] == [ROWS // 2, ROWS // 2]  # each process saw half the rows
    for name, value in alone.items():
        for rank in ranks:
            assert torch.allclose(rank["weights"][name], value, atol=1e-5), name
    assert ranks[0]["loss"] == pytest.approx(alone_loss, abs=1e-5)  # the epoch's loss over all rows


def test_several_epochs_in_two_processes_end_where_one_process_ends(tmp_path):
    ranks = train_in_two_processes(tmp_path, batch_size=32, epochs=4)
    alone, alone_loss = single_process(batch_size=32, epochs=4)
    for name, value in alone.items():
        assert torch.allclose(ranks[0]["weights"][name], ranks[1]["weights"][name])  # in step
        assert torch.allclose(ranks[0]["weights"][name], value, atol=1e-4), name
    assert ranks[0]["loss"] == pytest.approx(alone_loss, abs=1e-4)


def test_train_with_two_processes_matches_one_process(tmp_path):
    from sklearn.datasets import load_breast_cancer

    csv = tmp_path / "cancer.csv"
    load_breast_cancer(as_frame=True).frame.to_csv(csv, index=False)
    env = {**os.environ, "BUILDER_HOME": str(tmp_path / "home")}

    def train(name: str, *extra: str) -> dict:
        done = subprocess.run(
            [sys.executable, "-m", "builder", "train", "--data", str(csv), "--target", "target", "--epochs", "8",
             "--out", str(tmp_path / name), *extra],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    two = train("two.zip", "--nproc", "2", "--master-port", str(free_port()))
    one = train("one.zip")
    assert two["world_size"] == 2 and "world_size" not in one
    assert two["epochs_run"] == one["epochs_run"] == 8
    for metric in ("accuracy", "roc_auc"):
        assert two["metrics"]["test"][metric] == pytest.approx(one["metrics"]["test"][metric], abs=0.02)
    assert (tmp_path / "two.zip").stat().st_size > 0 and (tmp_path / "one.zip").stat().st_size > 0


def test_search_and_cross_validation_are_refused_with_several_processes(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "builder", "train", "--data", "x.csv", "--out", str(tmp_path / "m.zip"),
         "--nproc", "2", "--cv", "3"],
        cwd=REPO_ROOT, env={**os.environ, "BUILDER_HOME": str(tmp_path)}, capture_output=True, text=True,
        timeout=120)
    assert done.returncode == 2 and "leave out --auto and --cv" in done.stderr
    assert not (tmp_path / "m.zip").exists()
