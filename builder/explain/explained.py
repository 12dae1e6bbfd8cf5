"""The explained output (a network and what its outputs mean) and captum's attribution passes over it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from captum.attr import IntegratedGradients, ShapleyValueSampling
from torch import nn

from builder.data.preprocess import ANOMALY_TASK, label_value
from builder.errors import SpecError
from builder.explain.sentences import _CLASS_TASKS, _quote, _steps
from builder.jsonsafe import plain
from builder.trained import TrainedModel

METHODS = ("integrated_gradients", "shapley")
IG_STEPS = 64  # path steps for one input (Gauss-Legendre): completeness error well under 1e-3
BATCH_IG_STEPS = 24  # for many rows at once (top_reasons): the ranking of columns needs less
# Random orders of the features (torch's random numbers: two calls differ a little); each order
# adds up exactly on its own, so the sum is exact whatever the draw.
SHAPLEY_SAMPLES = 25
CHUNK_VALUES = 4_000_000  # input floats (rows x path steps x features) per attribution pass over many rows


class _Explained(nn.Module):
    """The network followed by what its outputs mean: ``(B, *input) -> (B, K)`` values an analyst reads.

    regression: ``(B, 1)`` the prediction in original units; binary: ``(B, 2)`` the two classes'
    probabilities; multiclass: ``(B, k)`` probabilities; forecast: ``(B, horizon)`` forecasts in
    original units (with the naive forecast the network's output is added to); anomaly: ``(B, 1)``
    the reconstruction error. Every mapping is the one the preprocessor's decoding applies, read
    off through its public methods, so an explained value is the value the app shows.
    """

    def __init__(self, trained: TrainedModel, network: nn.Module | None = None):
        super().__init__()
        self.network = trained.model if network is None else network
        self.task = trained.task
        pre = trained.preprocessor
        self.scale: Any = 1.0
        self.shift: Any = 0.0
        self.reference: torch.Tensor | None = None
        if self.task == "regression":
            zero = float(pre.decode_outputs(np.zeros((1, 1)))["prediction"].iloc[0])
            self.scale, self.shift = float(pre.decode_outputs(np.ones((1, 1)))["prediction"].iloc[0]) - zero, zero
        elif self.task == "forecast":
            window, width = pre.input_shape
            horizon = pre.n_outputs
            zeros = np.zeros((1, window, width), dtype=np.float32)
            base = pre.decode_forecast(zeros, np.zeros((1, horizon)))[0]  # (H,)
            self.shift = torch.tensor(base, dtype=torch.float32)
            self.scale = torch.tensor(pre.decode_forecast(zeros, np.ones((1, horizon)))[0] - base, dtype=torch.float32)
            # The forecast adds a naive forecast read from the window: linear in the target's past
            # values, so one unit impulse per past step gives its weights (W, H).
            impulses = np.zeros((window, window, width), dtype=np.float32)
            impulses[np.arange(window), np.arange(window), pre.target_index] = 1.0
            reference = pre.decode_forecast(impulses, np.zeros((window, horizon))) - base
            self.reference = torch.tensor(reference, dtype=torch.float32)
            self.target_index = pre.target_index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.network(x)
        if self.task == "regression":
            return out * self.scale + self.shift  # (B, 1)
        if self.task == "binary":
            positive = torch.sigmoid(out[:, :1])  # (B, 1)
            return torch.cat([1.0 - positive, positive], dim=1)  # (B, 2)
        if self.task == "multiclass":
            return torch.softmax(out, dim=1)  # (B, k)
        if self.task == "forecast":
            return out * self.scale + self.shift + x[:, :, self.target_index] @ self.reference  # (B, H)
        if self.task == ANOMALY_TASK:
            return ((out - x.flatten(1)) ** 2).mean(dim=1, keepdim=True)  # (B, 1)
        raise SpecError(f"Explanations are not available for the task {self.task!r}.")


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise SpecError(f"The explanation method must be 'integrated_gradients' or 'shapley'; got {method!r}.")
    return method


def _class_index(classes: list[Any], target_class: Any, default: int) -> int:
    """The output index of ``target_class`` (an index or a label); ``default`` when it is ``None``."""
    if target_class is None:
        return default
    if isinstance(target_class, (int, np.integer)) and not isinstance(target_class, bool):
        index = int(target_class)
    else:
        labels = [str(label_value(c)) for c in classes]
        wanted = str(label_value(target_class))
        index = labels.index(wanted) if wanted in labels else -1
    if not 0 <= index < len(classes):
        raise SpecError(f"target_class must be a class index from 0 to {len(classes) - 1} or one of the labels "
                        f"{_quote(classes)}; got {target_class!r}.")
    return index


def _target(trained: TrainedModel, explained_row: np.ndarray, target_class: Any) -> tuple[int, Any]:
    """The output index explained for one input and what it is called."""
    pre, task = trained.preprocessor, trained.task
    if task in _CLASS_TASKS:
        default = 1 if task == "binary" else int(np.argmax(explained_row))
        index = _class_index(pre.classes, target_class, default)
        return index, plain(pre.classes[index])
    if task == "forecast":
        horizon = pre.n_outputs
        step = 0 if target_class is None else target_class
        if not isinstance(step, (int, np.integer)) or not 0 <= int(step) < horizon:
            raise SpecError(f"For a forecast, target_class is the step ahead, from 0 (the next step) to "
                            f"{horizon - 1}; got {target_class!r}.")
        step = int(step)
        return step, f"{pre.target}, {_steps(step + 1)} ahead"
    if target_class is not None:
        raise SpecError(f"target_class applies to classes and forecasts only; this model does {task}. Leave it out.")
    return 0, "anomaly score" if task == ANOMALY_TASK else pre.target


def _attribute(forward: Callable, X: torch.Tensor, baseline: torch.Tensor, target: Any, method: str,
               mask: torch.Tensor | None = None, extra: Any = None,
               n_steps: int = IG_STEPS) -> tuple[np.ndarray, float | None]:
    """Attributions of ``forward(X)[:, target]`` against ``baseline`` (same shape as ``X``)."""
    if method == "shapley":
        sampler = ShapleyValueSampling(forward)
        attr = sampler.attribute(X, baselines=baseline, target=target, additional_forward_args=extra,
                                 feature_mask=mask, n_samples=SHAPLEY_SAMPLES, perturbations_per_eval=32)
        return attr.detach().numpy().astype(np.float64), None
    gradients = IntegratedGradients(forward)
    attr, delta = gradients.attribute(X, baselines=baseline, target=target, additional_forward_args=extra,
                                      n_steps=n_steps, return_convergence_delta=True)
    return attr.detach().numpy().astype(np.float64), float(delta[0])


def _outputs(forward: Callable, X: torch.Tensor, extra: Any = None) -> np.ndarray:
    with torch.no_grad():
        out = forward(X) if extra is None else forward(X, *extra)
    return out.numpy().astype(np.float64)


def _row_targets(trained: TrainedModel, X: np.ndarray) -> np.ndarray:
    """Per-row output index for many inputs: the second class of a yes/no task, the predicted class
    with several classes (the largest logit is the largest probability), else the one output."""
    if trained.task == "multiclass":
        return trained.predict_outputs(X).argmax(axis=1)  # (N,)
    return np.full(len(X), 1 if trained.task == "binary" else 0)


def _gradients_in_chunks(forward: Callable, X: torch.Tensor, targets: np.ndarray, baseline: torch.Tensor | None = None,
                         embed: Callable | None = None) -> np.ndarray:
    """Integrated gradients of many inputs at once, in chunks of rows that bound the memory.

    Args:
        forward: the explained output (``_Explained``, or ``_TextForward`` with ``embed``).
        X: ``(N, ...)`` model inputs.
        targets: ``(N,)`` output index per row.
        baseline: ``(1, ...)``, the same for every row (``None`` with ``embed``: zero vectors).
        embed: text: token ids -> word vectors, the input attributed; the ids go to ``forward``
            beside them.

    Returns:
        float64 attributions, ``(N, ...)`` (``(N, T, D)`` with ``embed``).
    """
    first = X[:1] if embed is None else embed(X[:1])
    width = int(np.prod(first.shape[1:])) or 1
    chunk = max(1, CHUNK_VALUES // (BATCH_IG_STEPS * width))
    gradients = IntegratedGradients(forward)
    parts = [np.zeros((0, *first.shape[1:]))]
    for start in range(0, len(X), chunk):
        part = slice(start, start + chunk)
        inputs, extra = (X[part], None) if embed is None else (embed(X[part]), (X[part],))
        attr = gradients.attribute(inputs, baselines=torch.zeros_like(first) if baseline is None else baseline,
                                   target=torch.from_numpy(targets[part]), additional_forward_args=extra,
                                   n_steps=BATCH_IG_STEPS)
        parts.append(attr.detach().numpy().astype(np.float64))
    return np.concatenate(parts)
