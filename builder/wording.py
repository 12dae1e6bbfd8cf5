"""Small helpers for the words the product shows: counts with the right plural ("1 column", "3 columns").

One place for them, so no page or message writes "1 column(s)".
"""

from __future__ import annotations


def count(n: int | float, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun`` agreeing in number, with thousands separators: "1 row", "1,200 rows".

    Args:
        n: how many.
        noun: the singular ("column", "step").
        plural: the plural when it is not ``noun + "s"`` ("values" is regular; "entries" is not).
    """
    word = noun if n == 1 else (plural or f"{noun}s")
    return f"{n:,} {word}"
