"""Self-describing parameter declarations.

One ``ParamSpec`` per setting drives three things: validation (with one message template), the UI
widget (a generic renderer maps the constraint kind to a number input, a select box or a toggle) and
the help text. Constraints are data that print themselves, in the manner of scikit-learn's
``Interval`` and ``StrOptions``:

    >>> FloatRange(0, 1, high_inclusive=False).describe()
    'a number of at least 0 and below 1'

Layer parameters (``builder.layers``) and training settings (``builder.train``) are both declared
this way, so every "must be ...; got ...; try ..." sentence in the product comes from one template.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any


class Constraint:
    """What values a parameter accepts; ``check`` returns the value normalised or raises."""

    widget = "text"  # which generic widget renders it: "int", "float", "choice" or "bool"

    def check(self, value: Any) -> Any:
        """Return ``value`` in canonical form, or raise ``ValueError`` when it is not allowed."""
        raise NotImplementedError

    def describe(self) -> str:
        """Say in plain words what is allowed, e.g. ``'a whole number of at least 1'``."""
        raise NotImplementedError


def _num(x: float) -> str:
    """Write a bound for people: 1,000,000 rather than 1e+06; 0.001 rather than 1e-03."""
    return f"{x:,}" if float(x).is_integer() and abs(x) >= 1000 else f"{x:g}"


def _bound_text(low: float | None, high: float | None, low_inc: bool, high_inc: bool, noun: str) -> str:
    if low is not None and high is not None and low_inc and high_inc:
        return f"{noun} from {_num(low)} to {_num(high)}"
    parts = []
    if low is not None:
        parts.append(f"of at least {_num(low)}" if low_inc else f"above {_num(low)}")
    if high is not None:
        parts.append(f"{'' if parts else 'of '}at most {_num(high)}" if high_inc else f"below {_num(high)}")
    return " ".join([noun, " and ".join(parts)]) if parts else noun


@dataclass(frozen=True)
class IntRange(Constraint):
    """A whole number in ``[low, high]`` (either bound may be ``None``)."""

    low: int | None = None
    high: int | None = None
    widget = "int"

    def check(self, value: Any) -> int:
        # A float such as 64.0 arrives from number widgets and JSON written by other tools: accept
        # it when it is whole, but never a bool (True is an Integral in Python).
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise ValueError(self.describe())
        if not isinstance(value, Integral) and float(value) != int(value):
            raise ValueError(self.describe())
        value = int(value)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise ValueError(self.describe())
        return value

    def describe(self) -> str:
        return _bound_text(self.low, self.high, True, True, "a whole number")


@dataclass(frozen=True)
class FloatRange(Constraint):
    """A real number between ``low`` and ``high`` with chosen inclusiveness."""

    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    widget = "float"

    def check(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise ValueError(self.describe())
        value = float(value)
        if self.low is not None and (value < self.low or (value == self.low and not self.low_inclusive)):
            raise ValueError(self.describe())
        if self.high is not None and (value > self.high or (value == self.high and not self.high_inclusive)):
            raise ValueError(self.describe())
        return value

    def describe(self) -> str:
        return _bound_text(self.low, self.high, self.low_inclusive, self.high_inclusive, "a number")


@dataclass(frozen=True)
class Choice(Constraint):
    """One of a fixed set of strings."""

    options: tuple[str, ...]
    widget = "choice"

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or value not in self.options:
            raise ValueError(self.describe())
        return value

    def describe(self) -> str:
        return "one of " + ", ".join(f"'{o}'" for o in self.options)


@dataclass(frozen=True)
class Boolean(Constraint):
    """``true`` or ``false``."""

    widget = "bool"

    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(self.describe())
        return value

    def describe(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class Nullable(Constraint):
    """``None`` (shown as an empty field, meaning "off") or a value ``inner`` accepts."""

    inner: Constraint

    @property
    def widget(self) -> str:  # type: ignore[override]
        return self.inner.widget

    def check(self, value: Any) -> Any:
        return None if value is None else self.inner.check(value)

    def describe(self) -> str:
        return f"empty or {self.inner.describe()}"


def show_value(value: Any) -> str:
    """A value as a message shows it: -1, 0.001, 'adamx', nothing."""
    if value is None:
        return "nothing"
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)


@dataclass(frozen=True)
class ParamSpec:
    """One setting: its torch keyword name, what it accepts, its default, label and short help."""

    name: str
    constraint: Constraint
    default: Any
    label: str
    help: str = ""

    def check(self, value: Any) -> Any:
        """Return the normalised value or raise ``ValueError`` with the one standard sentence:
        "drop share ('p') must be a number of at least 0 and below 1; got 1.5. Try 0.2."
        """
        try:
            return self.constraint.check(value)
        except ValueError:
            label = self.label.lower()
            named = label if label == self.name else f"{label} ('{self.name}')"
            fix = "leaving it empty" if self.default is None else show_value(self.default)
            raise ValueError(
                f"{named} must be {self.constraint.describe()}; got {show_value(value)}. Try {fix}."
            ) from None
