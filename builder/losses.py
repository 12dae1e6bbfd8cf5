"""What training minimises: the loss of each task, with label smoothing and class weights.

``Objective`` gives ``fit`` two functions: the training loss (a batch mean, smoothed and weighted
as configured) and the validation loss (weighted like training but never smoothed, so the best
epoch is picked on honest targets). Without smoothing or weights it is exactly torch's plain loss,
so the default path costs nothing extra.

Class weights are "balanced" (scikit-learn's ``compute_class_weight``: every class counts as much
in total), a weight per class label, or off. ``suggest_class_weights`` says when to turn them on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from builder.errors import SpecError

# Suggest balanced weights when the rarest class has at most this share of the commonest one's rows.
IMBALANCE_RATIO = 0.2


class Objective:
    """Training and validation loss for one task.

    Args:
        task: ``"regression"``, ``"binary"`` or ``"multiclass"``.
        label_smoothing: classes only; share of each target moved to the other class(es).
        class_weights: classes only; one weight per class index (``None``: all equal).
    """

    def __init__(self, task: str, label_smoothing: float = 0.0, class_weights: torch.Tensor | None = None):
        self.task = task
        classes = task != "regression"
        self.smoothing = float(label_smoothing) if classes else 0.0
        self.weights = class_weights if classes else None

    def to(self, device: torch.device) -> Objective:
        """Move the class weights to ``device`` (once, before training)."""
        if self.weights is not None:
            self.weights = self.weights.to(device)
        return self

    def train_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean loss of a batch: ``out`` (B, k) raw outputs, ``y`` (B, k) values or (B,) classes."""
        if self.task == "regression":
            return F.mse_loss(out, y)
        if self.task == "multiclass":
            return F.cross_entropy(out, y, weight=self.weights, label_smoothing=self.smoothing)
        target = y if self.smoothing == 0 else y * (1 - self.smoothing) + 0.5 * self.smoothing
        if self.weights is None:
            return F.binary_cross_entropy_with_logits(out, target)
        row_weights = self.weights[y.long()]  # (B, 1): the weight of each row's class
        losses = F.binary_cross_entropy_with_logits(out, target, reduction="none")
        return (losses * row_weights).sum() / row_weights.sum()

    def validation_sums(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss summed over the chunk, its weight)``: divide the totals once per epoch.

        The weight is the number of target values, or the sum of the rows' class weights.
        """
        if self.task == "regression":
            return F.mse_loss(out, y, reduction="sum"), torch.tensor(y.numel(), device=y.device)
        if self.task == "multiclass":
            total = F.cross_entropy(out, y, weight=self.weights, reduction="sum")
            weight = self.weights[y].sum() if self.weights is not None else torch.tensor(y.numel(), device=y.device)
            return total, weight
        losses = F.binary_cross_entropy_with_logits(out, y, reduction="none")
        if self.weights is None:
            return losses.sum(), torch.tensor(y.numel(), device=y.device)
        row_weights = self.weights[y.long()]
        return (losses * row_weights).sum(), row_weights.sum()


def member_targets(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The targets for ``out``: ``y`` itself, or ``y`` repeated once per ensemble member when the
    model stacks its members' outputs along the batch in training (``MLPEnsemble``: ``out`` has
    ``members * B`` rows, member 0's first), so the loss is the mean of the members' own losses."""
    if len(out) == len(y):
        return y
    members = len(out) // len(y)
    return y.repeat(members, *([1] * (y.ndim - 1)))  # (members * B, ...)


def member_mean(out: torch.Tensor, rows: int) -> torch.Tensor:
    """``out`` for ``rows`` samples: an ensemble's stacked outputs (see ``member_targets``)
    averaged over its members, ``(members * B, k) -> (B, k)``; any other output unchanged."""
    if len(out) == rows:
        return out
    return out.reshape(-1, rows, *out.shape[1:]).mean(dim=0)


def class_weight_vector(setting: str | Mapping[str, float], y_train: np.ndarray,
                        classes: Sequence[str] | None = None) -> np.ndarray | None:
    """One weight per class index from the ``class_weights`` setting.

    Args:
        setting: ``"off"``, ``"balanced"`` or ``{class label: weight}`` (labels as the data
            writes them; classes not named keep weight 1).
        y_train: training targets as class indices ``0..k-1`` (``(N,)`` or ``(N, 1)``).
        classes: class labels in index order (needed for the per-class form).

    Returns:
        float32 ``(k,)`` weights, or ``None`` when the setting is "off".

    Raises:
        SpecError: a per-class weight names a class the data does not have.
    """
    if setting == "off":
        return None
    y = np.asarray(y_train).reshape(-1).astype(np.int64)
    k = max(int(y.max()) + 1 if len(y) else 0, len(classes or ()))
    if setting == "balanced":
        # Imported here: scikit-learn (and scipy) cost ~135 MB of memory, which a training run
        # without balanced weights (bench.run's workloads, every default run) should not pay.
        from sklearn.utils.class_weight import compute_class_weight

        present = np.unique(y)
        weights = np.ones(k, dtype=np.float64)
        weights[present] = compute_class_weight("balanced", classes=present, y=y)
        return weights.astype(np.float32)
    names = [str(c) for c in (classes or range(k))]
    unknown = [label for label in setting if label not in names]
    if unknown:
        raise SpecError(
            f"The class weights name {', '.join(map(repr, unknown))}, which "
            f"{'is not a class' if len(unknown) == 1 else 'are not classes'} of this data; "
            f"the classes are {', '.join(map(repr, names))}."
        )
    return np.array([setting.get(name, 1.0) for name in names], dtype=np.float32)


@dataclass(frozen=True)
class ClassWeightAdvice:
    """A suggestion to weight classes, with the reason in the user's words."""

    setting: str
    reason: str


def suggest_class_weights(counts: Mapping[str, int]) -> ClassWeightAdvice | None:
    """Suggest "balanced" class weights when the classes are far from even.

    Args:
        counts: training rows per class label.

    Returns:
        The advice, or ``None`` when the classes are balanced enough (or there is one class).
    """
    present = {label: n for label, n in counts.items() if n > 0}
    if len(present) < 2:
        return None
    rare = min(present, key=present.get)
    common = max(present, key=present.get)
    if present[rare] > IMBALANCE_RATIO * present[common]:
        return None
    return ClassWeightAdvice(
        "balanced",
        f"Class {rare!r} has {present[rare]:,} training rows against {present[common]:,} for "
        f"{common!r}: without weights the model can score well by rarely predicting {rare!r}. "
        "Balanced weights make every class count as much in total.",
    )
