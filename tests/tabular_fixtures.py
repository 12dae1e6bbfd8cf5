"""Reproducible messy tables for tests (import these; they are not pytest fixtures).

``make_messy_table`` builds the kind of table an analyst exports from a CRM: an ID column, numbers
with holes, money written as text, a category with rare values, dates as text, yes/no flags, a
constant column, a mostly-empty column, and a target that really depends on the inputs, so a model
trained on it should beat chance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TARGET = "target"
TASKS = ("binary", "regression", "multiclass")


def _money_text(amounts: np.ndarray, rng: np.random.Generator) -> list[str | None]:
    """Write amounts the way spreadsheets do: '$45,000', ' 52000 ', '61,250.50', 'n/a'."""
    styles = rng.integers(0, 4, size=len(amounts))
    written: list[str | None] = []
    for amount, style in zip(amounts, styles):
        if style == 0:
            written.append(f"${amount:,.0f}")
        elif style == 1:
            written.append(f" {amount:.0f} ")
        elif style == 2:
            written.append(f"{amount:,.2f}")
        else:
            written.append(f"{amount:.0f}")
    for i in rng.choice(len(amounts), size=max(1, len(amounts) // 100), replace=False):
        written[i] = "n/a"
    return written


def make_messy_table(n: int = 600, seed: int = 0, task: str = "binary") -> pd.DataFrame:
    """A messy table with a learnable ``target`` column.

    Columns: ``customer_id`` (ID, 1001..), ``age`` (float, ~8% missing), ``income`` (money as
    text, ~1% 'n/a'), ``color`` (red/green/blue, rare 'purple', ~5% missing), ``signup_date``
    (ISO date text), ``member`` (yes/no), ``visits`` (small ints), ``source`` (constant 'web'),
    ``referral_code`` (~80% missing), ``target``.

    Args:
        n: number of rows.
        seed: random seed; the same seed gives the same table.
        task: ``"binary"`` (target 'yes'/'no'), ``"regression"`` (float) or ``"multiclass"``
            (target 'bronze'/'silver'/'gold').

    Returns:
        The table, with pandas' default dtypes for what a CSV reader would produce.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 12, size=n).round(1)
    income = rng.uniform(20_000, 150_000, size=n).round(2)
    color = rng.choice(["red", "green", "blue", "purple"], size=n, p=[0.45, 0.3, 0.24, 0.01])
    member = rng.random(n) < 0.4
    visits = rng.poisson(3, size=n)
    days = rng.integers(0, 5 * 365, size=n)
    signup = pd.Timestamp("2019-01-01") + pd.to_timedelta(days, unit="D")

    color_effect = pd.Series(color).map({"red": 0.8, "green": 0.0, "blue": -0.6, "purple": 0.3})
    score = (
        0.04 * (age - 40)
        + (income - 85_000) / 40_000
        + color_effect.to_numpy()
        + 0.6 * member
        + 0.1 * (visits - 3)
        + rng.normal(0, 0.3, size=n)
    )
    if task == "binary":
        target: object = np.where(score > np.quantile(score, 0.6), "yes", "no")
    elif task == "multiclass":
        target = np.select(
            [score < np.quantile(score, 1 / 3), score < np.quantile(score, 2 / 3)],
            ["bronze", "silver"],
            "gold",
        )
    else:
        target = (1000 + 250 * score).round(2)

    age_with_holes = age.copy()
    age_with_holes[rng.random(n) < 0.08] = np.nan
    color_with_holes = color.astype(object)
    color_with_holes[rng.random(n) < 0.05] = None
    referral = np.where(rng.random(n) < 0.2, [f"REF{i % 7}" for i in range(n)], None)

    return pd.DataFrame(
        {
            "customer_id": np.arange(1001, 1001 + n),
            "age": age_with_holes,
            "income": _money_text(income, rng),
            "color": pd.Series(color_with_holes, dtype="str"),
            "signup_date": signup.strftime("%Y-%m-%d"),
            "member": np.where(member, "yes", "no"),
            "visits": visits,
            "source": "web",
            "referral_code": pd.Series(referral, dtype="str"),
            TARGET: target,
        }
    )
