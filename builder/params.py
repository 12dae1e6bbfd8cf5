"""Self-describing parameter declarations.

One ``ParamSpec`` per setting drives three things: validation (with one message template), the UI
widget (a generic renderer maps the constraint kind to a number input, a select box or a toggle) and
the help text. Constraints are data that print themselves, in the manner of scikit-learn's
``Interval`` and ``StrOptions``:

    >>> FloatRange(0, 1, high_inclusive=False).describe()
    'a number from 0 up to (not including) 1'
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
    if low is not None and high is not None:
        lo = "from" if low_inc else "above"
        hi = "to" if high_inc else "up to (not including)"
        return f"{noun} {lo} {_num(low)} {hi} {_num(high)}"
    if low is not None:
        return f"{noun} of at least {_num(low)}" if low_inc else f"{noun} above {_num(low)}"
    if high is not None:
        return f"{noun} of at most {_num(high)}" if high_inc else f"{noun} below {_num(high)}"
    return noun


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
class ParamSpec:
    """One setting: its torch keyword name, what it accepts, its default, label and short help."""

    name: str
    constraint: Constraint
    default: Any
    label: str
    help: str = ""

    def check(self, value: Any) -> Any:
        """Return the normalised value or raise ``ValueError`` with the standard sentence."""
        try:
            return self.constraint.check(value)
        except ValueError:
            raise ValueError(
                f"'{self.name}' ({self.label.lower()}) must be {self.constraint.describe()}; "
                f"got {value!r}. Try {self.default!r}."
            ) from None
