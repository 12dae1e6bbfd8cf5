"""A plain-language reading of training curves, with one change to try next.

``read_curves`` looks at a run's ``History`` (per-epoch training and validation loss, accuracy for
classes) and says what the curves show, the way an experienced practitioner would glance at them:

* ``learning_rate_too_high``: the loss turned into "not a number", jumped back up, zig-zagged, or
  rose from the start.
* ``imbalance``: a classifier whose accuracy sits at the share of the commonest class, i.e. it
  names that class for every row.
* ``overfitting``: the validation loss bottomed out well before the end and rose since, while the
  training loss kept falling.
* ``underfitting``: the training loss is high and flat (barely below where a model that learned
  nothing would be), or the accuracy sits at the commonest class's share.
* ``plateau``: stuck (neither loss has moved for many epochs), or the run ended while the
  validation loss was still falling fast ("more epochs").
* ``healthy``: none of the above.

Each ``Advice`` carries ONE change the app can apply with one click:
``{"setting": name, "value": v}`` names a field of ``builder.train_config.SETTINGS`` (the value
passes that setting's check); ``{"design": "dropout", "value": p}`` sets every dropout of the
design to ``p``, and ``{"design": "width", "value": 2.0}`` multiplies every layer's units by 2
(the ``width``/``dropout`` of ``builder.search.SearchSpace.design``). ``healthy`` has no change
(``{}``).

It reads a finished run and a run still training alike: with ``config`` it knows whether the run
has reached its last epoch, and it only says "train longer" of a run that has ended. Below
``MIN_EPOCHS`` finished epochs it says nothing (an empty list) unless the loss already blew up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from builder.errors import SpecError
from builder.train import History
from builder.train_config import SETTINGS, TrainConfig

KINDS = ("learning_rate_too_high", "imbalance", "overfitting", "underfitting", "plateau", "healthy")
TASKS = ("regression", "binary", "multiclass", "forecast", "anomaly")
CLASS_TASKS = ("binary", "multiclass")

MIN_EPOCHS = 4  # fewer finished epochs: too early to read the curves (divergence aside)
SPIKE_GIVE_BACK = 0.5  # a spike gives back half of what the training loss had gained...
SPIKE_SCALE = 0.25  # ...or a quarter of a know-nothing model's loss (whichever is less)
SPIKE_RATIO = 1.3  # ...and lands at least 30% above the best training loss so far
VAL_SPIKE_RATIO = 2.0  # the validation loss doubles from one epoch to the next (by that much too)
ZIGZAG_SHARE = 0.35  # oscillation: at least this share of epochs make the training loss go up
ZIGZAG_RISE = 0.10  # ...by a median of 10% or more
OVERFIT_RISE = 0.05  # the validation loss ends 5% (of its best, and of its fall) above its best
OVERFIT_AFTER = 0.2  # ...at least this share of the run (and 3 epochs) after its best epoch
FLAT = 0.02  # a loss moving less than 2% over the recent epochs is flat
STUCK = 0.01  # stuck on a plateau: the training loss moved less than 1%
CHANCE_SHARE = 0.85  # underfitting: the training loss at 85% or more of a know-nothing model's
MAJORITY_MARGIN = 0.01  # accuracy within 1 point of the commonest class's share sits at it
IMBALANCED_SHARE = 0.6  # the commonest class holds at least 60% of the rows (and 1.5x its fair share)
STILL_FALLING = 0.25  # more epochs: the recent fall per epoch is 25% of the run's average or more,
STILL_FALLING_SHARE = 0.1  # ...or the validation loss fell 10% or more over the recent epochs
SMALL_LR = {"sgd": 1e-3, "momentum": 1e-3}  # below this, steps are too small to learn (others: 1e-4)


@dataclass
class Advice:
    """What the curves show and the one change to try next.

    Attributes:
        kind: one of ``KINDS``.
        title: a short headline ("The model is memorising the training rows").
        message: two or three plain sentences: what the curves show, with numbers, and why the
            change should help.
        change: ``{"setting": name, "value": v}`` (a ``SETTINGS`` field and a valid value),
            ``{"design": "dropout" | "width", "value": v}``, or ``{}`` for ``healthy``.
        button_label: the text of the button that applies ``change`` ("" without a change).
    """

    kind: str
    title: str
    message: str
    change: dict[str, Any] = field(default_factory=dict)
    button_label: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-safe dict."""
        return asdict(self)


def read_curves(history: History | Mapping[str, Any], task: str,
                config: TrainConfig | Mapping[str, Any] | None = None, *,
                class_counts: Mapping[Any, int] | Sequence[int] | None = None,
                finished: bool | None = None) -> list[Advice]:
    """Read a run's curves: the problems seen, most urgent first, or one ``healthy`` advice.

    Args:
        history: the run's ``History`` (or its ``to_dict()``), finished or still growing.
        task: ``"regression"``, ``"binary"``, ``"multiclass"``, ``"forecast"`` or ``"anomaly"``.
        config: the run's training settings (``TrainConfig`` or its dict); the changes are
            computed from them (defaults when missing).
        class_counts: training rows per class (``{label: rows}`` or a list), for classes: tells
            an accuracy stuck at the commonest class's share. Without it, an accuracy that stays
            exactly the same epoch after epoch is read as that share.
        finished: whether training has ended; by default, when ``history.stopped_reason`` is
            not "completed" or ``config.epochs`` epochs are done (without ``config``: ended).

    Returns:
        At most one advice per kind, in order of ``KINDS``, with no two changing the same thing;
        ``[Advice("healthy", ...)]`` when nothing is wrong; ``[]`` before ``MIN_EPOCHS``
        epochs unless training already diverged.

    Raises:
        SpecError: an unknown task, a damaged history or settings.
    """
    if task not in TASKS:
        raise SpecError(f"Curves are read for tasks {', '.join(TASKS)}; got {task!r}.")
    history = history if isinstance(history, History) else History.from_dict(history)
    if config is None:
        settings, given = TrainConfig(), False
    else:
        settings, given = (config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)), True
    if finished is None:
        finished = history.stopped_reason != "completed" or not given or history.epochs_run >= settings.epochs
    curves = _Curves(history, task, settings, _counts(class_counts), finished)
    unstable = curves.learning_rate_too_high()
    if unstable is not None:
        return [unstable]  # the other readings mean little while training is unstable
    if curves.n < MIN_EPOCHS:
        return []
    found: list[Advice] = []
    for check in (curves.imbalance, curves.overfitting, curves.underfitting, curves.plateau):
        advice = check(skip={a.kind for a in found})
        if advice is not None and not any(_same_target(advice.change, a.change) for a in found):
            found.append(advice)
    return found or [curves.healthy()]


def _counts(class_counts: Mapping[Any, int] | Sequence[int] | None) -> list[int] | None:
    if class_counts is None:
        return None
    values = list(class_counts.values()) if isinstance(class_counts, Mapping) else list(class_counts)
    try:
        counts = [int(v) for v in values]
    except (TypeError, ValueError):
        raise SpecError(f"Class counts must be whole numbers of rows per class; got {values!r}.") from None
    if len(counts) < 2 or min(counts) < 0 or sum(counts) == 0:
        raise SpecError(f"Class counts need two or more classes with rows; got {counts!r}.")
    return counts


def _same_target(a: dict[str, Any], b: dict[str, Any]) -> bool:
    key = ("setting", a.get("setting")) if "setting" in a else ("design", a.get("design"))
    other = ("setting", b.get("setting")) if "setting" in b else ("design", b.get("design"))
    return bool(a) and key == other


def _num(value: float) -> str:
    """A loss or rate for a sentence: 0.412, 1.2e-05, 3."""
    return f"{value:.3g}"


def _setting_change(name: str, value: Any) -> tuple[dict[str, Any], str]:
    """A change of one training setting (checked against its declaration) and its button."""
    value = SETTINGS[name].check(value)
    shown = value if isinstance(value, str) else _num(value)
    return {"setting": name, "value": value}, f"Set {SETTINGS[name].label.lower()} to {shown}"


class _Curves:
    """The numbers each check looks at, computed once."""

    def __init__(self, history: History, task: str, config: TrainConfig, counts: list[int] | None,
                 finished: bool):
        self.history, self.task, self.config, self.finished = history, task, config, finished
        self.loss = np.asarray(history.loss, dtype=np.float64)
        self.val = np.asarray(history.val_loss, dtype=np.float64)
        self.n = min(len(self.loss), len(self.val))
        self.loss, self.val = self.loss[: self.n], self.val[: self.n]
        self.epochs = list(history.epoch[: self.n]) or list(range(1, self.n + 1))
        accuracy = history.metrics.get("accuracy") or []
        self.accuracy = np.asarray(accuracy[: self.n], dtype=np.float64)
        self.counts = counts
        self.majority = self._majority_share()

    # -- what a model that learned nothing would score ------------------------------------------

    def _majority_share(self) -> float | None:
        if self.task not in CLASS_TASKS:
            return None
        if self.counts is not None:
            return max(self.counts) / sum(self.counts)
        recent = self.accuracy[-5:]
        # Shuffled batches give a slightly different accuracy every epoch, unless the model names
        # one class for every row: then the accuracy is exactly that class's share, every epoch.
        if len(recent) == 5 and np.ptp(recent) < 1e-9 and 0 < recent[-1] < 1:
            return float(recent[-1])
        return None

    def _chance_loss(self) -> float | None:
        """The loss of predicting the class shares (or the mean) for every row, if known."""
        if self.task in ("regression", "forecast"):
            return 1.0  # mean squared error of the mean on a standardised target
        if self.task not in CLASS_TASKS:
            return None
        k = len(self.counts) if self.counts is not None else (2 if self.task == "binary" else None)
        if self.config.class_weights != "off" or self.counts is None:
            return math.log(k) if k else None  # balanced weights: the best constant is uniform
        shares = np.asarray(self.counts, dtype=np.float64) / sum(self.counts)
        shares = shares[shares > 0]
        return float(-(shares * np.log(shares)).sum())

    def _at_majority(self) -> bool:
        if self.majority is None or len(self.accuracy) < 3:
            return False
        return bool(np.all(np.abs(self.accuracy[-3:] - self.majority) <= MAJORITY_MARGIN))

    def _window(self) -> int:
        return max(3, self.n // 4)

    def _best(self) -> int:
        return int(np.argmin(self.val))

    # -- the checks -----------------------------------------------------------------------------

    def learning_rate_too_high(self) -> Advice | None:
        loss, n = self.loss, self.n
        finite = np.isfinite(loss).all() and np.isfinite(self.val).all()
        if self.history.stopped_reason == "diverged" or not finite:
            bad = [e for e, a, b in zip(self.epochs, loss, self.val, strict=True) if not (math.isfinite(a) and math.isfinite(b))]
            when = f" at epoch {bad[0]}" if bad else (f" after epoch {self.epochs[-1]}" if n else "")
            return self._slower(10, "Training blew up",
                                f"The loss became 'not a number'{when}: the steps were so large that the "
                                "weights flew off. A learning rate ten times smaller keeps them in range.")
        if n < MIN_EPOCHS:
            return None
        best_so_far = np.minimum.accumulate(loss)[:-1]  # (n-1,) best before each epoch
        gained = loss[0] - best_so_far
        scale = self._chance_loss() or float(np.median(loss))  # what a jump is measured against
        jump = np.minimum(SPIKE_GIVE_BACK * gained, SPIKE_SCALE * scale)
        spikes = np.flatnonzero((loss[1:] - best_so_far > jump)
                                & (loss[1:] > SPIKE_RATIO * best_so_far) & (gained > 0)) + 1
        val_jumps = np.flatnonzero((self.val[1:] > VAL_SPIKE_RATIO * self.val[:-1])
                                   & (self.val[1:] - self.val[:-1] > SPIKE_SCALE * scale)) + 1
        if len(val_jumps) and not len(spikes):
            at = val_jumps[np.argmax(self.val[val_jumps] / self.val[val_jumps - 1])]
            return self._slower(3, "The validation loss jumps around",
                                f"At epoch {self.epochs[at]} the validation loss jumped from "
                                f"{_num(self.val[at - 1])} to {_num(self.val[at])}: the weights are thrown "
                                "far by single steps. A smaller learning rate makes each step gentler.")
        if len(spikes):
            worst = spikes[np.argmax(loss[spikes] / best_so_far[spikes - 1])]
            return self._slower(3, "The loss jumps back up",
                                f"At epoch {self.epochs[worst]} the training loss jumped to {_num(loss[worst])} "
                                f"after reaching {_num(best_so_far[worst - 1])}: a step overshot and undid "
                                "earlier progress. A smaller learning rate keeps steps inside the valley.")
        if n >= 6:
            steps = np.diff(loss)
            ups = steps[steps > 0] / loss[:-1][steps > 0]
            downs = int((steps < 0).sum())
            least = max(3, ZIGZAG_SHARE * (n - 1))
            if len(ups) >= least and downs >= least and np.median(ups) > ZIGZAG_RISE:
                return self._slower(3, "The loss zig-zags",
                                    f"The training loss went up in {len(ups)} of {n - 1} epochs, typically by "
                                    f"{np.median(ups):.0%}: the steps bounce from one side of the valley to the "
                                    "other. A smaller learning rate settles it.")
        if loss[-1] > 1.05 * loss[0] and int(np.argmin(loss)) <= 1:
            return self._slower(10, "The loss goes up instead of down",
                                f"The training loss rose from {_num(loss[0])} to {_num(loss[-1])} over "
                                f"{n} epochs: every step overshoots. A learning rate ten times smaller "
                                "lets it go down.")
        return None

    def _slower(self, factor: float, title: str, message: str) -> Advice:
        change, button = _setting_change("lr", float(f"{self.config.lr / factor:.3g}"))
        return Advice("learning_rate_too_high", title, message, change, button)

    def imbalance(self, skip: set[str]) -> Advice | None:
        if self.task not in CLASS_TASKS or self.majority is None or self.config.class_weights != "off":
            return None
        k = len(self.counts) if self.counts is not None else (2 if self.task == "binary" else 3)
        if self.majority < max(IMBALANCED_SHARE, 1.5 / k) or not self._at_majority():
            return None
        change, button = _setting_change("class_weights", "balanced")
        return Advice("imbalance", "The model names the commonest class for every row",
                      f"The training accuracy ({self.accuracy[-1]:.1%}) sits at the share of the commonest "
                      f"class ({self.majority:.1%}): always answering that class is as accurate as "
                      "anything the model found, so it learned nothing about the rarer ones. Balanced class "
                      "weights make every class count as much in total.", change, button)

    def overfitting(self, skip: set[str]) -> Advice | None:
        n, val, loss = self.n, self.val, self.loss
        if n < 6:
            return None
        best = self._best()
        after = n - 1 - best
        if after < max(3, math.ceil(OVERFIT_AFTER * n)):
            return None
        recent = float(val[-3:].mean())
        rise, fall = recent - val[best], val[0] - val[best]
        if not (rise > OVERFIT_RISE * abs(val[best]) and rise > OVERFIT_RISE * fall and loss[-1] < 0.97 * loss[best]):
            return None
        wd = self.config.weight_decay
        if wd == 0:
            change, button = _setting_change("weight_decay", 1e-3)
            why = "Weight decay pulls the weights towards zero, which stops them from fitting the noise."
        elif wd < 1e-2:
            change, button = _setting_change("weight_decay", float(f"{min(1.0, wd * 10):.3g}"))
            why = "Stronger weight decay pulls the weights harder towards zero, away from the noise."
        else:
            change, button = {"design": "dropout", "value": 0.5}, "Set dropout to 0.5"
            why = "More dropout switches off more units at random while training, so none can memorise rows."
        return Advice("overfitting", "The model is memorising the training rows",
                      f"The validation loss was lowest at epoch {self.epochs[best]} ({_num(val[best])}) and "
                      f"has risen to {_num(recent)} over the {after} epochs since, while the training loss "
                      f"kept falling ({_num(loss[best])} to {_num(loss[-1])}). The best epoch's model is "
                      f"the one kept. {why}", change, button)

    def underfitting(self, skip: set[str]) -> Advice | None:
        if "imbalance" in skip or "overfitting" in skip or self.n < 6:
            return None
        loss, w = self.loss, self._window()
        start = loss[-w - 1]
        flat = (start - loss[-1]) < FLAT * abs(start)
        chance = self._chance_loss()
        if self._at_majority():
            evidence = (f"the training accuracy ({self.accuracy[-1]:.1%}) sits at the share of the commonest "
                        f"class ({self.majority:.1%})")
        elif chance is not None and loss[-1] >= CHANCE_SHARE * chance:
            near = "no better than" if loss[-1] >= chance else "close to"
            evidence = (f"the training loss ({_num(loss[-1])}) is {near} the {_num(chance)} of a model that "
                        "learned nothing")
        elif chance is None and loss[0] - loss.min() < 0.05 * abs(loss[0]):
            evidence = f"the training loss ({_num(loss[-1])}) is barely below where it began ({_num(loss[0])})"
        else:
            return None
        if not flat:
            return None
        cfg = self.config
        if cfg.lr < SMALL_LR.get(cfg.optimizer, 1e-4):
            change, button = _setting_change("lr", float(f"{cfg.lr * 10:.3g}"))
            why = f"With a learning rate of {_num(cfg.lr)} the steps are too small to get anywhere; try ten times larger."
        else:
            change, button = {"design": "width", "value": 2.0}, "Double the units in every layer"
            why = "The model is too small or too constrained for the pattern: give it twice the units per layer."
        return Advice("underfitting", "The model is not learning the pattern",
                      f"After {self.n} epochs {evidence}, and it has stopped moving. {why}", change, button)

    def plateau(self, skip: set[str]) -> Advice | None:
        if skip or self.n < 6:
            return None
        longer = self._still_falling()
        if longer is not None:
            return longer
        n, w = self.n, max(5, self.n // 4)
        if n < 10 or self._best() >= n - w:
            return None
        start = self.loss[-w - 1]
        if abs(start - self.loss[-1]) >= STUCK * abs(start):
            return None
        if self.config.schedule == "constant":
            change, button = _setting_change("schedule", "plateau")
            why = "A 'plateau' schedule lowers the learning rate when progress stalls, so it can settle lower."
        else:
            change, button = _setting_change("lr", float(f"{self.config.lr / 3:.3g}"))
            why = "A smaller learning rate lets it settle into the bottom of the valley."
        return Advice("plateau", "Training is stuck on a plateau",
                      f"Neither loss has improved for {n - 1 - self._best()} epochs (best validation loss "
                      f"{_num(self.val[self._best()])} at epoch {self.epochs[self._best()]}); the training loss "
                      f"hardly moves. {why}", change, button)

    def _still_falling(self) -> Advice | None:
        """The run ended while the validation loss was still falling fast: train longer."""
        reason, val, n = self.history.stopped_reason, self.val, self.n
        if not self.finished or reason not in ("completed", "time_limit", "early_stopping"):
            return None
        w = max(3, n // 5)
        overall = (val[0] - val.min()) / (n - 1)  # average fall per epoch
        if reason == "early_stopping":  # noisy but still trending down across the patience window
            patience = self.config.early_stopping_patience or 0
            if not patience or overall <= 0:
                return None
            tail = val[-(2 * patience + 1):]  # the patience window and as much before it
            if len(tail) < 5:
                return None
            slope = -np.polyfit(np.arange(len(tail)), tail, 1)[0]
            if slope < STILL_FALLING * overall:
                return None
            change, button = _setting_change("early_stopping_patience", min(10_000, 2 * patience))
            return Advice("plateau", "Early stopping ended a run that was still improving",
                          f"The validation loss was still trending down (about {_num(slope)} per epoch) when "
                          f"early stopping ended the run after {patience} epochs without a new best: the "
                          "noise hid the progress. More patience lets it continue.", change, button)
        recent = (val[-w - 1] - val[-1]) / w
        relative = (val[-w - 1] - val[-1]) / abs(val[-w - 1]) if val[-w - 1] else 0.0
        fast = recent >= STILL_FALLING * overall or relative >= STILL_FALLING_SHARE
        if overall <= 0 or not fast or self._best() < n - 2:
            return None
        if reason == "time_limit" and self.config.max_minutes:
            change, button = _setting_change("max_minutes", float(f"{2 * self.config.max_minutes:.3g}"))
            what = "the time limit"
        else:
            change, button = _setting_change("epochs", min(100_000, 2 * max(self.config.epochs, n)))
            what = "the last epoch"
        return Advice("plateau", "Training stopped while still improving",
                      f"The validation loss was still falling when {what} came: {_num(val[-w - 1])} to "
                      f"{_num(val[-1])} over the last {w} epochs. Training twice as long should lower it "
                      "further.", change, button)

    def healthy(self) -> Advice:
        best = self._best()
        where = "so far" if not self.finished else "in the end"
        return Advice("healthy", "The curves look healthy",
                      f"The validation loss fell from {_num(self.val[0])} to {_num(self.val[best])} (best at "
                      f"epoch {self.epochs[best]}) and the training loss follows it without drifting apart: "
                      f"nothing to fix {where}.")
