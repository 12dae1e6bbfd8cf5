"""Learning-rate schedules: torch's schedulers, chosen and chained from a ``TrainConfig``.

``LrSchedule`` is what ``fit`` steps: ``after_batch()`` once per optimizer step (smooth schedules
move every batch, so a short run still gets the whole curve) and ``after_epoch(val_loss)`` once per
epoch (the plateau schedule reacts to validation). A warm-up is torch's ``LinearLR`` chained in
front of the main schedule; one-cycle has a warm-up of its own, whose length the warm-up setting
sets. ``preview_lr`` runs the very same objects on a dummy parameter, so the Train page's small
preview can never disagree with what training does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch.optim import lr_scheduler

from builder.train_config import TrainConfig

WARMUP_START_FACTOR = 0.01  # warm-up starts at 1% of the learning rate
ONE_CYCLE_WARMUP_SHARE = 0.3  # torch's default share of a one-cycle run spent climbing
COSINE_FLOOR = 0.0  # cosine ends at this share of the learning rate
PREVIEW_BATCHES_PER_EPOCH = 20  # the preview's resolution within an epoch (its shape is the same)
PREVIEW_MAX_STEPS = 4_000  # the preview simulates at most this many steps (~10 ms)


class LrSchedule:
    """The learning rate of one run, stepped by the training loop.

    Args:
        optimizer: the run's optimizer (its ``lr`` is the peak rate).
        config: ``schedule``, ``warmup_epochs``, ``lr_step_epochs``, ``lr_factor``,
            ``plateau_patience`` and ``epochs`` are read.
        batches_per_epoch: optimizer steps per epoch.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, config: TrainConfig, batches_per_epoch: int):
        self.optimizer = optimizer
        steps_per_epoch = max(1, batches_per_epoch)
        total = config.epochs * steps_per_epoch
        warmup = min(config.warmup_epochs * steps_per_epoch, total - 1)
        self.per_batch: Any = None  # stepped after every optimizer step
        self.plateau: lr_scheduler.ReduceLROnPlateau | None = None  # stepped once per epoch
        if config.schedule == "one_cycle":
            share = warmup / total if warmup > 0 else ONE_CYCLE_WARMUP_SHARE
            # cycle_momentum=False: the optimizer's own momentum/betas stay as the user set them.
            self.per_batch = lr_scheduler.OneCycleLR(
                optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=max(total, 2),
                pct_start=min(max(share, 1e-3), 0.999), cycle_momentum=False)
            return
        main = self._main(optimizer, config, steps_per_epoch, total - warmup)
        if warmup > 0:
            ramp = lr_scheduler.LinearLR(optimizer, start_factor=WARMUP_START_FACTOR, total_iters=warmup)
            self.per_batch = ramp if main is None else lr_scheduler.SequentialLR(
                optimizer, [ramp, main], milestones=[warmup])
        else:
            self.per_batch = main
        if config.schedule == "plateau":
            self.plateau = lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=config.lr_factor, patience=config.plateau_patience)

    @staticmethod
    def _main(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int,
              steps: int) -> lr_scheduler.LRScheduler | None:
        """The schedule after the warm-up (None: the rate stays, or only the plateau moves it)."""
        if config.schedule == "step":
            return lr_scheduler.StepLR(optimizer, step_size=config.lr_step_epochs * steps_per_epoch,
                                       gamma=config.lr_factor)
        if config.schedule == "cosine":
            return lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1),
                                                  eta_min=COSINE_FLOOR * config.lr)
        return None

    @property
    def active(self) -> bool:
        """False for a constant rate with no warm-up: the loop can skip the calls entirely."""
        return self.per_batch is not None or self.plateau is not None

    @property
    def lr(self) -> float:
        """The learning rate the next step will use (of the first parameter group)."""
        return float(self.optimizer.param_groups[0]["lr"])

    def after_batch(self) -> None:
        """Move the rate on after one optimizer step."""
        if self.per_batch is not None:
            self.per_batch.step()

    def after_epoch(self, val_loss: float) -> None:
        """Tell the plateau schedule how the epoch went."""
        if self.plateau is not None:
            self.plateau.step(val_loss)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the schedule where it is (for checkpoints)."""
        return {"per_batch": None if self.per_batch is None else self.per_batch.state_dict(),
                "plateau": None if self.plateau is None else self.plateau.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()`` output of the same config."""
        if self.per_batch is not None and state.get("per_batch") is not None:
            self.per_batch.load_state_dict(state["per_batch"])
        if self.plateau is not None and state.get("plateau") is not None:
            self.plateau.load_state_dict(state["plateau"])


def preview_lr(config: TrainConfig,
               batches_per_epoch: int = PREVIEW_BATCHES_PER_EPOCH) -> tuple[np.ndarray, np.ndarray]:
    """The learning rate over a run of ``config``, as the training loop would set it.

    The plateau schedule depends on the validation loss, which nobody knows in advance: its
    preview is the rate before any drop. A very long run is previewed on a proportionally shorter
    one (every length in epochs scaled alike), so the page stays instant.

    Args:
        config: a valid config.
        batches_per_epoch: resolution within an epoch (more batches do not change the shape).

    Returns:
        ``(epochs, rates)``: float arrays of one point per batch; ``epochs`` counts from 0 at the
        first batch to ``config.epochs`` after the last.
    """
    steps = max(1, min(batches_per_epoch, PREVIEW_BATCHES_PER_EPOCH, PREVIEW_MAX_STEPS // config.epochs))
    shrink = min(1.0, PREVIEW_MAX_STEPS / config.epochs)
    if shrink < 1.0:
        config = dataclasses.replace(
            config, epochs=PREVIEW_MAX_STEPS,
            warmup_epochs=round(config.warmup_epochs * shrink),
            lr_step_epochs=max(1, round(config.lr_step_epochs * shrink)))
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=config.lr)  # schedulers touch only param_groups' lr
    schedule = LrSchedule(optimizer, config, steps)
    rates = np.empty(config.epochs * steps + 1, dtype=np.float64)
    for i in range(config.epochs * steps):
        rates[i] = schedule.lr
        optimizer.step()  # a no-op without gradients; keeps torch's call-order check quiet
        schedule.after_batch()
    rates[-1] = schedule.lr
    return np.arange(len(rates), dtype=np.float64) / (steps * shrink), rates
