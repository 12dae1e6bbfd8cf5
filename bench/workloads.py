"""The benchmark workloads of PERFORMANCE.md: data, model and hyper-parameters of each.

Every workload is rebuilt from scikit-learn with fixed seeds, so two machines time the same rows.
The MLPs are built the way the app builds them (a ``ModelSpec`` through ``build_model``); the CNN
of W3 is a plain ``nn.Sequential`` until convolution layers join the registry. Init is seeded so
the minimal loop and the engine start from identical weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

DATA_SEED = 0  # data generation and splits
INIT_SEED = 0  # model weights
TRAIN_SEED = 42  # shuffling (TrainConfig's default seed)


@dataclass
class Split:
    """Float32 inputs; float32 (N, 1) targets for regression/binary, int64 (N,) for multiclass."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    y_scale: float = 1.0  # regression targets are standardised; this turns errors back to units


@dataclass(frozen=True)
class Workload:
    """One row of the PERFORMANCE.md table."""

    name: str
    title: str
    task: str  # regression | binary | multiclass
    batch_size: int
    epochs: int
    lr: float
    default_rows: int  # total rows before the split
    make_split: Callable[[int], Split]
    make_model: Callable[[], nn.Module]

    def build_model(self) -> nn.Module:
        """The workload's model with seeded (identical in every process) initial weights."""
        torch.manual_seed(INIT_SEED)
        return self.make_model()


def _split(X: np.ndarray, y: np.ndarray, train: float, val: float) -> tuple[np.ndarray, ...]:
    """Shuffle once with DATA_SEED and cut into train / val / test by fractions."""
    order = np.random.default_rng(DATA_SEED).permutation(len(X))
    n_train, n_val = int(train * len(X)), int(val * len(X))
    parts = np.split(order, [n_train, n_train + n_val])
    return tuple(a for idx in parts for a in (X[idx], y[idx]))


def _take(X: np.ndarray, y: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``rows`` rows (a seeded subsample) of a fixed-size data set."""
    if rows >= len(X):
        return X, y
    idx = np.random.default_rng(DATA_SEED).choice(len(X), rows, replace=False)
    return X[idx], y[idx]


def tabular_split(rows: int) -> Split:
    """W1: make_classification, 50 features, 2 classes; 70 / 15 / 15."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=rows, n_features=50, n_informative=10, n_redundant=10, random_state=DATA_SEED
    )
    X = X.astype(np.float32)  # (N, 50)
    y = y.astype(np.float32).reshape(-1, 1)  # (N, 1) 0/1
    return Split(*_split(X, y, 0.70, 0.15))


def diabetes_split(rows: int) -> Split:
    """W2: diabetes regression; 80 / 10 / 10 (353 training rows); inputs and target standardised."""
    from sklearn.datasets import load_diabetes

    X, y = _take(*load_diabetes(return_X_y=True), rows)
    parts = list(_split(X.astype(np.float32), y.astype(np.float32).reshape(-1, 1), 0.80, 0.10))
    X_train, y_train = parts[0], parts[1]
    x_mean, x_std = X_train.mean(0), X_train.std(0) + 1e-8  # statistics of the training rows only
    y_mean, y_std = float(y_train.mean()), float(y_train.std())
    for i in (0, 2, 4):
        parts[i] = (parts[i] - x_mean) / x_std  # (N, 10)
        parts[i + 1] = (parts[i + 1] - y_mean) / y_std  # (N, 1) in standard deviations
    return Split(*parts, y_scale=y_std)


def digits_split(rows: int) -> Split:
    """W3: 8x8 digit images, 10 classes; 80 / 10 / 10; pixels scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    X, y = _take(*load_digits(return_X_y=True), rows)
    X = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)  # (N, 1, 8, 8)
    return Split(*_split(X, y.astype(np.int64), 0.80, 0.10))


def sine_windows_split(rows: int) -> Split:
    """W4: windows of 50 steps of noisy sines (random frequency and phase), each target the next
    value; 80 / 10 / 10. Inputs (N, 50, 1) as the app's series windows, targets (N, 1)."""
    rng = np.random.default_rng(DATA_SEED)
    steps = np.arange(51, dtype=np.float32)  # 50 inputs and the value to forecast
    frequency = rng.uniform(0.05, 0.3, size=(rows, 1)).astype(np.float32)
    phase = rng.uniform(0, 2 * math.pi, size=(rows, 1)).astype(np.float32)
    waves = np.sin(frequency * steps + phase) + rng.normal(0, 0.05, size=(rows, 51)).astype(np.float32)
    X = waves[:, :50, None].astype(np.float32)  # (N, 50, 1)
    y = waves[:, 50:].astype(np.float32)  # (N, 1)
    return Split(*_split(X, y, 0.80, 0.10))


def lstm(hidden: int) -> nn.Module:
    """LSTM(``hidden``) over the window, its last step, then a linear output, built as in the app."""
    from builder.model import build_model
    from builder.spec import ModelSpec

    spec = ModelSpec.from_dict({"family": "rnn", "layers": [{"type": "LSTM", "hidden_size": hidden},
                                                             {"type": "SequencePool", "mode": "last"}]})
    return build_model(spec, (50, 1), 1)


def mlp(inputs: int, hidden: int, outputs: int) -> nn.Module:
    """Two hidden ReLU layers of ``hidden`` units, designed and built as in the app."""
    from builder.model import build_model
    from builder.spec import ModelSpec

    hidden_layer = {"type": "Linear", "out_features": hidden}
    spec = ModelSpec.from_dict({"family": "mlp", "layers": [hidden_layer, {"type": "ReLU"},
                                                             hidden_layer, {"type": "ReLU"}]})
    return build_model(spec, (inputs,), outputs)


def small_cnn() -> nn.Module:
    """conv16 - pool - conv32 - linear, for (1, 8, 8) images and 10 classes."""
    return nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=3, padding=1), nn.ReLU(),  # (B, 16, 8, 8)
        nn.MaxPool2d(2),  # (B, 16, 4, 4)
        nn.Conv2d(16, 32, kernel_size=3, padding=1), nn.ReLU(),  # (B, 32, 4, 4)
        nn.Flatten(),  # (B, 512)
        nn.Linear(32 * 4 * 4, 10),  # (B, 10) logits
    )


WORKLOADS = {
    "W1": Workload(
        "W1", "tabular 200k x 50, MLP 256-256, batch 256, 5 epochs", "binary",
        batch_size=256, epochs=5, lr=1e-3, default_rows=200_000,
        make_split=tabular_split, make_model=lambda: mlp(50, 256, 1),
    ),
    "W2": Workload(
        "W2", "diabetes 353 rows, MLP 64-64, batch 32, 200 epochs", "regression",
        batch_size=32, epochs=200, lr=1e-3, default_rows=442,
        make_split=diabetes_split, make_model=lambda: mlp(10, 64, 1),
    ),
    "W3": Workload(
        "W3", "digits 8x8, CNN conv16-pool-conv32-linear, batch 64, 30 epochs", "multiclass",
        batch_size=64, epochs=30, lr=1e-3, default_rows=1797,
        make_split=digits_split, make_model=small_cnn,
    ),
    "W4": Workload(
        "W4", "20k sine windows of 50, LSTM(64)+Linear, batch 128, 5 epochs", "regression",
        batch_size=128, epochs=5, lr=1e-3, default_rows=20_000,
        make_split=sine_windows_split, make_model=lambda: lstm(64),
    ),
}


@torch.inference_mode()
def test_metric(model: nn.Module, split: Split, task: str) -> tuple[str, float]:
    """The workload's test score: accuracy for classification, RMSE in target units otherwise."""
    model.eval()
    out = model(torch.from_numpy(split.X_test))  # (N, n_outputs)
    y = torch.from_numpy(split.y_test)
    if task == "regression":
        return "rmse", math.sqrt(torch.mean((out - y) ** 2).item()) * split.y_scale
    hits = (out > 0) == (y > 0.5) if task == "binary" else out.argmax(dim=1) == y
    return "accuracy", hits.float().mean().item()
