"""Training settings: ``TrainConfig`` and the one declaration of each setting.

Every setting is declared once in ``SETTINGS`` (constraint, default, label, help). That declaration
validates configs built by the Train page, the CLI and ``TrainConfig.from_dict``, labels and
explains the page's widgets, and writes every "must be ...; got ...; try ..." message. Settings
that only make sense together (warm-up shorter than the run, Nesterov with momentum) are checked
across fields in ``TrainConfig.problems``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from builder.device import DEVICE_PREFERENCES
from builder.errors import SpecError
from builder.params import (
    Boolean,
    Choice,
    Constraint,
    FloatRange,
    IntRange,
    Nullable,
    ParamSpec,
)

OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "one_cycle", "plateau")
CLASS_WEIGHT_MODES = ("off", "balanced")


@dataclass
class TrainConfig:
    """How to train. Defaults suit a small table; each field is declared in ``SETTINGS``."""

    epochs: int = 100  # full passes over the training rows (early stopping usually ends sooner)
    batch_size: int = 64  # rows per optimizer step (clamped to the number of training rows)
    lr: float = 1e-3  # learning rate: size of each optimizer step (the peak, with a schedule)
    optimizer: str = "adam"  # one of OPTIMIZERS
    momentum: float = 0.9  # used by the "momentum" optimizer only
    nesterov: bool = False  # Nesterov's look-ahead momentum ("momentum" optimizer only)
    beta1: float = 0.9  # Adam/AdamW: how much of the running gradient carries over
    beta2: float = 0.999  # Adam/AdamW: how slowly the per-weight step sizes adapt
    alpha: float = 0.99  # RMSprop: how slowly its running average of squared gradients moves
    weight_decay: float = 0.0  # L2 penalty that pulls weights towards zero (0 = off)
    schedule: str = "constant"  # how the learning rate changes over the run: one of SCHEDULES
    warmup_epochs: int = 0  # epochs over which the rate climbs from near zero (0 = no warm-up)
    lr_step_epochs: int = 30  # "step": lower the rate every this many epochs
    lr_factor: float = 0.1  # "step" and "plateau": multiply the rate by this when it drops
    plateau_patience: int = 5  # "plateau": epochs without a better val_loss before it drops
    clip_grad: float | None = None  # largest allowed gradient norm per step (None = no clipping)
    label_smoothing: float = 0.0  # classes: move this share of each target towards the others
    class_weights: str | dict[str, float] = "off"  # "off", "balanced" or {class label: weight}
    seed: int = 42  # same seed, same data, same model init -> same run
    device: str = "auto"  # auto | cpu | cuda | mps (auto prefers a GPU)
    early_stopping_patience: int | None = 10  # epochs without a better val_loss (0/None = off)
    max_minutes: float | None = None  # stop after this much training time (None = no limit)
    val_fraction: float = 0.15  # rows held out to pick the best epoch (used by the data split)
    test_fraction: float = 0.15  # rows held out for the final score (used by the data split)
    cv_folds: int | None = None  # k-fold cross-validation on the non-test rows (None = off)

    def problems(self) -> list[str]:
        """Every invalid setting, one full sentence each (empty when the config is valid)."""
        found, checked = [], {}
        for name, spec in SETTINGS.items():
            try:
                checked[name] = spec.check(getattr(self, name))
            except ValueError as exc:
                found.append(f"{str(exc)[0].upper()}{str(exc)[1:]}")
        if {"val_fraction", "test_fraction"} <= checked.keys() and self.val_fraction + self.test_fraction > 0.8:
            found.append(
                "The validation and test shares together must leave at least 20% of the rows "
                f"for training; got {self.val_fraction:g} + {self.test_fraction:g}. Try 0.15 each."
            )
        if {"warmup_epochs", "epochs"} <= checked.keys() and self.warmup_epochs >= self.epochs > 1:
            found.append(
                f"The warm-up ('warmup_epochs') must be shorter than the run; got {self.warmup_epochs} "
                f"warm-up epochs for {self.epochs} epochs. Try {max(1, self.epochs // 10)}."
            )
        if checked.get("nesterov") and self.optimizer == "momentum" and checked.get("momentum") == 0:
            found.append("Nesterov momentum ('nesterov') needs a momentum above 0; got 0. Try 0.9.")
        return found

    def validate(self) -> TrainConfig:
        """Check every setting and put values in canonical form (e.g. parsed class weights).

        Returns:
            ``self``, so ``TrainConfig(...).validate()`` can be used inline.

        Raises:
            SpecError: naming each bad setting, the value received, the allowed range and a fix,
                e.g. "The learning rate ('lr') must be a number above 0 and at most 10; got -1. Try 0.001."
        """
        found = self.problems()
        if found:
            raise SpecError(" ".join(found))
        self.class_weights = SETTINGS["class_weights"].check(self.class_weights)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every setting."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build and validate a config from ``to_dict`` output; missing keys take their defaults.

        Raises:
            SpecError: an unknown key (the message lists the valid ones) or an invalid value.
        """
        reject_unknown_keys(cls, values, "training setting")
        return cls(**values).validate()


@dataclass(frozen=True)
class ClassWeights(Constraint):
    """``"off"``, ``"balanced"``, or a positive weight per class label.

    The per-class form is a mapping ``{label: weight}`` or the text ``"label=weight, ..."`` that
    the CLI and a text box give; both normalise to the mapping.
    """

    widget = "text"

    def check(self, value: Any) -> str | dict[str, float]:
        if isinstance(value, str) and value.strip() in CLASS_WEIGHT_MODES:
            return value.strip()
        pairs = _weight_pairs(value)
        if not pairs:
            raise ValueError(self.describe())
        weights: dict[str, float] = {}
        positive = FloatRange(0, 1_000_000, low_inclusive=False)
        for label, weight in pairs:
            try:
                weights[label] = positive.check(float(weight) if isinstance(weight, str) else weight)
            except (TypeError, ValueError):
                raise ValueError(self.describe()) from None
        return weights

    def describe(self) -> str:
        return "'off', 'balanced', or a positive weight per class such as 'yes=3, no=1'"


def _weight_pairs(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        return [(str(label), weight) for label, weight in value.items()]
    if not isinstance(value, str):
        return []
    pairs = []
    for part in value.split(","):
        label, sep, weight = part.rpartition("=")  # rpartition: a label may itself hold '='
        if not sep or not label.strip() or not weight.strip():
            return []
        pairs.append((label.strip(), weight.strip()))
    return pairs


def reject_unknown_keys(cls: type, values: Mapping[str, Any], what: str) -> None:
    """Refuse keys that are not fields of the dataclass ``cls``, listing the valid ones.

    Raises:
        SpecError: at least one unknown key.
    """
    valid = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise SpecError(
            f"Unknown {what}{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"the valid ones are {', '.join(valid)}."
        )


_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}


def _setting(name: str, constraint: Constraint, label: str, help_text: str) -> ParamSpec:
    return ParamSpec(name, constraint, _DEFAULTS[name], label, help_text)


# One declaration per setting drives validation, the Train page's labels and help, and the messages.
SETTINGS: dict[str, ParamSpec] = {spec.name: spec for spec in (
    _setting("epochs", IntRange(1, 100_000), "Epochs",
             "How many times the model sees every training row. More epochs learn more, but too "
             "many start to memorise the training rows; early stopping guards against that."),
    _setting("batch_size", IntRange(1, 1_048_576), "Batch size",
             "How many rows the model looks at before each small correction. Larger batches run "
             "faster per epoch; smaller ones make more, noisier corrections. 32-256 is typical."),
    _setting("lr", FloatRange(0, 10, low_inclusive=False), "Learning rate",
             "How big each correction is (the peak, when a schedule changes it). Too high and the "
             "loss jumps around or becomes 'not a number'; too low and training crawls. 0.001 is "
             "a good start for Adam, 0.01-0.1 for SGD."),
    _setting("optimizer", Choice(OPTIMIZERS), "Optimizer",
             "The rule that turns errors into weight corrections. Adam works well almost "
             "everywhere; see the description of each choice."),
    _setting("momentum", FloatRange(0, 1, high_inclusive=False), "Momentum",
             "Only for the 'momentum' optimizer: how much of the previous correction carries "
             "into the next one (0.9 is standard). Smooths and speeds up plain SGD."),
    _setting("nesterov", Boolean(), "Nesterov momentum",
             "Only for the 'momentum' optimizer: look one step ahead before correcting, which "
             "often converges a little faster. Needs a momentum above 0."),
    _setting("beta1", FloatRange(0, 1, high_inclusive=False), "Adam beta 1",
             "Only for Adam and AdamW: how much of the running direction carries over (0.9 is "
             "standard; lower reacts faster to new batches)."),
    _setting("beta2", FloatRange(0, 1, high_inclusive=False), "Adam beta 2",
             "Only for Adam and AdamW: how slowly each weight's step size adapts (0.999 is "
             "standard; 0.99 or 0.95 can steady short or noisy runs)."),
    _setting("alpha", FloatRange(0, 1, high_inclusive=False), "RMSprop alpha",
             "Only for RMSprop: how slowly its average of recent gradient sizes moves (0.99 is "
             "standard)."),
    _setting("weight_decay", FloatRange(0, 1), "Weight decay",
             "A gentle pull of every weight towards zero, which fights overfitting. 0 means "
             "off; 0.0001-0.01 is typical (use it with AdamW)."),
    _setting("schedule", Choice(SCHEDULES), "Learning-rate schedule",
             "How the learning rate changes during training. Lowering it late in the run lets the "
             "model settle into a better solution; see the description of each choice."),
    _setting("warmup_epochs", IntRange(0, 10_000), "Warm-up epochs",
             "Start with a tiny learning rate and raise it to the full rate over this many epochs, "
             "so the first large, random corrections cannot throw training off. 0 means no warm-up."),
    _setting("lr_step_epochs", IntRange(1, 100_000), "Step every (epochs)",
             "Only for the 'step' schedule: lower the learning rate every this many epochs."),
    _setting("lr_factor", FloatRange(0, 1, low_inclusive=False, high_inclusive=False), "Drop factor",
             "For the 'step' and 'plateau' schedules: multiply the learning rate by this each "
             "time it drops (0.1 = ten times smaller)."),
    _setting("plateau_patience", IntRange(1, 10_000), "Plateau patience",
             "Only for the 'plateau' schedule: lower the learning rate after this many epochs "
             "without a better validation loss. Keep it below the early-stopping patience."),
    _setting("clip_grad", Nullable(FloatRange(0, 1e6, low_inclusive=False)), "Gradient clipping",
             "Cap the size of each correction (the gradient's norm) at this value, which keeps "
             "recurrent networks and high learning rates stable. 1.0 is typical; empty means off."),
    _setting("label_smoothing", FloatRange(0, 0.5, high_inclusive=False), "Label smoothing",
             "Classes only: train towards 'mostly this class' instead of 'certainly this class' "
             "(0.1 moves 10% of each target to the other classes). Fights over-confident "
             "models; 0 means off."),
    _setting("class_weights", ClassWeights(), "Class weights",
             "Classes only: how much an error on each class counts. 'balanced' makes rare classes "
             "count as much as common ones in total; or give a weight per class, e.g. "
             "'yes=3, no=1'. 'off' counts every row the same."),
    _setting("seed", IntRange(0, 2**32 - 1), "Seed",  # numpy's and torch's common seed range
             "Fixes the random choices (shuffling, dropout). The same seed on the same data gives "
             "the same model, so results can be reproduced."),
    _setting("device", Choice(DEVICE_PREFERENCES), "Device",
             "Where training runs. 'auto' uses a GPU when the machine has one (CUDA on "
             "NVIDIA, MPS on Apple silicon) and the CPU otherwise."),
    _setting("early_stopping_patience", Nullable(IntRange(0, 10_000)), "Early-stopping patience",
             "Stop when the validation loss has not improved for this many epochs; the best "
             "epoch's model is kept either way. 0 or empty turns it off."),
    _setting("max_minutes", Nullable(FloatRange(0, 10_080, low_inclusive=False)),  # up to a week
             "Time limit in minutes",
             "Stop after this many minutes of training and keep the best model so far. "
             "Empty means no limit."),
    _setting("val_fraction", FloatRange(0, 0.5, low_inclusive=False),  # the best epoch needs rows
             "Validation share",
             "Share of rows kept aside and checked after every epoch, to pick the best "
             "epoch and to stop early. Never used to fit the weights."),
    _setting("test_fraction", FloatRange(0, 0.5, low_inclusive=False),  # the score needs rows
             "Test share",
             "Share of rows kept aside until the very end, for an honest final score."),
    _setting("cv_folds", Nullable(IntRange(2, 20)), "Cross-validation folds",
             "For small data: train this many times, each time checking on a different part of "
             "the rows, and report the average score and how much it varies; a more reliable "
             "score than one split. The final model then learns from all those rows. Takes about "
             "this many times longer (5 is typical); empty means off."),
)}

OPTIMIZER_HELP = {
    "sgd": "Plain stochastic gradient descent: the simplest rule, one fixed step size. Needs a "
    "larger learning rate (0.01-0.1) and more epochs.",
    "momentum": "SGD that keeps a running direction, so it rolls through small bumps. A solid "
    "classic for images; learning rate 0.01-0.1.",
    "adagrad": "Gives each weight its own step size, shrinking for weights that change a lot. "
    "Suits sparse data; can slow down too early on long runs.",
    "rmsprop": "Per-weight step sizes from a recent average of gradients. Works well for "
    "recurrent networks (LSTM, GRU).",
    "adam": "Momentum plus per-weight step sizes. The reliable default: learning rate 0.001 "
    "works for most tables, images and text.",
    "adamw": "Adam with weight decay applied the right way. Prefer it over Adam when you set a "
    "weight decay (for example 0.01), especially for transformers.",
}

SCHEDULE_HELP = {
    "constant": "The same learning rate from the first epoch to the last.",
    "step": "Drop the rate by the drop factor every few epochs: a staircase.",
    "cosine": "Lower the rate smoothly along a half cosine to almost zero at the last epoch. "
    "A strong default when the number of epochs is known.",
    "one_cycle": "Climb to the learning rate over the first 30% of the run (or the warm-up), then "
    "glide down to almost zero: fast and robust training in a fixed number of epochs.",
    "plateau": "Keep the rate until the validation loss stops improving, then drop it by the "
    "drop factor. Adapts to the data; works with any number of epochs.",
}

# Which optimizer each optimizer-specific setting belongs to (the page shows only those that apply).
OPTIMIZER_SETTINGS = {
    "momentum": ("momentum", "nesterov"),
    "adam": ("beta1", "beta2"),
    "adamw": ("beta1", "beta2"),
    "rmsprop": ("alpha",),
}
