"""Same data, design, settings and seed give the same metrics, for every model family.

Each family trains twice through ``train_model`` (the journey the app and the CLI share) on tiny
data for three epochs, with torch's and numpy's global random states disturbed in between, and
must give identical per-epoch losses, identical weights and identical test metrics (baseline
included). One more test runs every family in a fresh Python process with another hash seed
(as after a server restart) and expects the same numbers again.

What makes it hold on the CPU: ``fit`` seeds torch, draws the shuffle order (and image
augmentation) from a private generator, and validates without randomness; ``build_model`` builds
under the seed; the data split uses it too. What torch cannot promise: on a GPU some backward
kernels add with atomics in any order (last-bit differences), and on the CPU a different number
of threads may split a large reduction differently; compare runs at the same thread count.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from builder.data import DataSpec
from builder.pipeline import train_model
from builder.spec import FAMILIES
from builder.train import TrainConfig
from tests.image_fixtures import make_digits_zip
from tests.tabular_fixtures import TARGET, make_messy_table
from tests.test_data_text import make_text_table
from tests.test_data_timeseries import make_series

REPO = Path(__file__).resolve().parents[1]
FEATURES = ["age", "income", "color", "signup_date", "member", "visits"]


@functools.cache
def _table(task: str) -> pd.DataFrame:
    return make_messy_table(n=200, seed=0, task=task)


@functools.cache
def _texts() -> pd.DataFrame:
    return make_text_table(n=120, seed=0)


@functools.cache
def _series() -> pd.DataFrame:
    return make_series(n=120)


@functools.cache
def _digits() -> bytes:
    return make_digits_zip(n_per_class=6, junk=False, classes=(0, 1, 2), size=12)


_SERIES = {"time_column": "date", "window": 14, "horizon": 3}
_TEXT = {"text_column": "text"}

# Family -> its data and what to predict: tables, images (augmented: the shuffle generator draws
# the shifts), text and series, so every kind of network and every random draw is covered.
FAMILY_CASES: dict[str, Callable[[], tuple[object, DataSpec]]] = {
    "linear": lambda: (_table("regression"), DataSpec(TARGET, "regression", FEATURES)),
    "logistic": lambda: (_table("binary"), DataSpec(TARGET, "binary", FEATURES)),
    "mlp": lambda: (_table("multiclass"), DataSpec(TARGET, "multiclass", FEATURES)),  # dropout 0.3
    "autoencoder": lambda: (_table("regression").drop(columns=TARGET), DataSpec(None, "anomaly", FEATURES)),
    "cnn": lambda: (_digits(), DataSpec(None, "multiclass", [], kind="images", options={"augment": True})),
    "rnn": lambda: (_series(), DataSpec("sales", "forecast", ["sales"], kind="series", options=_SERIES)),
    "lstm": lambda: (_series(), DataSpec("sales", "forecast", ["sales"], kind="series", options=_SERIES)),
    "gru": lambda: (_texts(), DataSpec("topic", "multiclass", ["text"], kind="text", options=_TEXT)),
    "transformer": lambda: (_texts(), DataSpec("topic", "multiclass", ["text"], kind="text", options=_TEXT)),
}


def family_config(**overrides) -> TrainConfig:
    """Few epochs, small batches (several steps an epoch), the CPU, no early stopping."""
    values = {"epochs": 3, "batch_size": 16, "seed": 3, "device": "cpu", "early_stopping_patience": None}
    return TrainConfig(**{**values, **overrides})


def fingerprint(trained) -> dict:
    """Everything a user sees of a run's numbers, as plain JSON."""
    return {
        "family": trained.spec.family,
        "loss": trained.history.loss, "val_loss": trained.history.val_loss,
        "metrics": trained.metrics, "best_epoch": trained.history.best_epoch,
        "baseline": None if trained.baseline is None else trained.baseline.metrics,
        "weights": float(sum(p.double().abs().sum() for p in trained.model.state_dict().values())),
    }


def train_family(family: str, with_baseline: bool = True):
    source, data_spec = FAMILY_CASES[family]()
    return train_model(source, data_spec, family_config(), family=family, with_baseline=with_baseline)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: steady timings on a shared 2-core machine (results do not depend on it);
    tests/test_checkpoints.py uses it too."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@functools.cache
def first_runs() -> str:
    """Every family trained once in this process (shared by the tests below), as JSON."""
    return json.dumps({family: fingerprint(train_family(family)) for family in sorted(FAMILY_CASES)})


def test_every_family_is_covered():
    assert set(FAMILY_CASES) == set(FAMILIES)


@pytest.mark.parametrize("family", sorted(FAMILY_CASES))
def test_training_twice_gives_identical_metrics_and_weights(family):
    first = json.loads(first_runs())[family]
    torch.rand(17), np.random.rand(5)  # whatever ran before must not matter: fit seeds what it uses
    again = train_family(family)
    assert again.spec.family == family
    assert fingerprint(again) == first


def test_a_fresh_process_with_another_hash_seed_gives_the_same_metrics():
    code = ("import json, torch; torch.set_num_threads(1); "
            "from tests.test_determinism import first_runs; print(first_runs())")
    child = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=180,
                           env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "12345"})
    assert child.returncode == 0, child.stderr[-2000:]
    assert json.loads(child.stdout.strip().splitlines()[-1]) == json.loads(first_runs())


def test_another_seed_gives_another_run():
    source, data_spec = FAMILY_CASES["mlp"]()
    other = train_model(source, data_spec, family_config(seed=4), family="mlp", with_baseline=False)
    assert other.history.loss != json.loads(first_runs())["mlp"]["loss"]
