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
    for amount, style in zip(amounts, styles, strict=False):
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


def make_interaction_table(n: int = 2000, seed: int = 0, task: str = "binary") -> pd.DataFrame:
    """A messy table whose target depends on interactions a linear model cannot express.

    Like a churn table: ``tenure_months`` (~6% missing), ``monthly_fee`` (money as text),
    ``plan`` (basic/plus/pro with ~4% missing and a rare 'legacy'), ``support_calls``, ``region``
    and a date column. The score has a U-shape in tenure, a plan x fee interaction and a threshold
    on support calls, so the network should beat a linear baseline clearly.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    rng = np.random.default_rng(seed)
    tenure = rng.uniform(0, 72, size=n).round(0)
    fee = rng.uniform(10, 120, size=n).round(2)
    plan = rng.choice(["basic", "plus", "pro", "legacy"], size=n, p=[0.45, 0.3, 0.23, 0.02])
    calls = rng.poisson(2, size=n)
    region = rng.choice(["north", "south", "east", "west"], size=n)
    days = rng.integers(0, 4 * 365, size=n)
    started = pd.Timestamp("2020-01-01") + pd.to_timedelta(days, unit="D")

    pricey_for_plan = np.where(plan == "basic", fee > 60, np.where(plan == "pro", fee < 40, fee > 90))
    score = (
        ((tenure - 36) / 18) ** 2  # new and very old customers leave; the middle stays
        + 1.5 * pricey_for_plan
        + 1.2 * (calls >= 4)
        + rng.normal(0, 0.25, size=n)
    )
    if task == "binary":
        target: object = np.where(score > np.quantile(score, 0.6), "churned", "stayed")
    elif task == "multiclass":
        target = np.select([score < np.quantile(score, 1 / 3), score < np.quantile(score, 2 / 3)],
                           ["low", "medium"], "high")
    else:
        target = (100 * score).round(2)

    tenure_with_holes = tenure.copy()
    tenure_with_holes[rng.random(n) < 0.06] = np.nan
    plan_with_holes = plan.astype(object)
    plan_with_holes[rng.random(n) < 0.04] = None
    return pd.DataFrame({
        "account": [f"A-{i:05d}" for i in range(n)],
        "tenure_months": tenure_with_holes,
        "monthly_fee": _money_text(fee, rng),
        "plan": pd.Series(plan_with_holes, dtype="str"),
        "support_calls": calls,
        "region": region,
        "started": started.strftime("%d/%m/%Y"),
        TARGET: target,
    })
