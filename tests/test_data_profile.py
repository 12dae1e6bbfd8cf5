"""Profiling, task guessing, target checks, feature suggestions, health warnings and samples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from builder.data import (
    SAMPLES,
    check_target,
    health_warnings,
    infer_task,
    load_sample,
    profile_table,
    suggest_features,
)
from builder.data.profile import likely_target
from builder.errors import DataError
from tests.tabular_fixtures import TARGET, make_messy_table


@pytest.fixture(scope="module")
def messy() -> pd.DataFrame:
    return make_messy_table(n=600, seed=0, task="binary")


@pytest.fixture(scope="module")
def messy_profile(messy):
    return profile_table(messy)


# --- profile_table ---------------------------------------------------------------------------


def test_kinds_of_the_messy_table(messy_profile):
    kinds = {c.name: c.kind for c in messy_profile.columns}
    assert kinds == {
        "customer_id": "numeric",
        "age": "numeric",
        "income": "numeric",  # "$45,000", " 52000 ", "61,250.50" are numbers
        "color": "categorical",
        "signup_date": "datetime",
        "member": "boolean",
        "visits": "numeric",
        "source": "categorical",
        "referral_code": "categorical",
        TARGET: "boolean",
    }
    assert (messy_profile.n_rows, messy_profile.n_cols) == (600, 10)


def test_counts_and_flags(messy, messy_profile):
    age = messy_profile.column("age")
    assert age.n_missing == int(messy["age"].isna().sum()) > 0
    assert age.missing_pct == pytest.approx(100 * age.n_missing / 600, abs=0.05)
    assert messy_profile.column("color").n_unique == 4
    assert messy_profile.column("income").n_missing == 6  # the "n/a" cells count as missing
    flagged = {
        flag: [c.name for c in messy_profile.columns if getattr(c, flag)]
        for flag in ("id_like", "constant", "mostly_missing")
    }
    assert flagged == {
        "id_like": ["customer_id"],
        "constant": ["source"],
        "mostly_missing": ["referral_code"],
    }
    assert len(messy_profile.column("color").examples) == 4


def test_column_warnings_name_the_column(messy_profile):
    def text(name: str) -> str:
        return " ".join(messy_profile.column(name).warnings)

    assert "'customer_id' looks like a row ID" in text("customer_id")
    assert "'source' has the same value ('web')" in text("source")
    assert "'referral_code' is 8" in text("referral_code") and "% empty" in text("referral_code")
    assert "'income' holds numbers written as text" in text("income")
    assert messy_profile.column("age").warnings == []


def test_numbers_with_some_junk_are_numeric_and_the_junk_is_reported():
    values = [f"{i:,}" for i in range(1000, 98_000, 1000)] + ["unknown", "tbd"]  # 97 numbers
    profile = profile_table(pd.DataFrame({"amount": values}))
    column = profile.column("amount")
    assert column.kind == "numeric"
    expected = "2 value(s) in 'amount' are not numbers (e.g. 'unknown')"
    assert any(expected in w for w in column.warnings)


def test_mostly_text_column_is_not_numeric():
    values = [str(i) for i in range(90)] + [f"code {i}" for i in range(10)]  # 90% numbers only
    assert profile_table(pd.DataFrame({"c": values})).column("c").kind == "categorical"


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([0, 1, 1, 0, 1] * 10, "boolean"),
        ([True, False] * 25, "boolean"),
        (["Yes", "no", " YES ", "No"] * 10, "boolean"),
        (pd.date_range("2020-01-01", periods=40).tolist(), "datetime"),
        (["31/12/2020", "15/01/2021", "01/02/2021"] * 10, "datetime"),
        ([f"This review says the product number {i} was fine overall" for i in range(40)], "text"),
        (["a", "b", "c"] * 10, "categorical"),
        ([1.5, 2.25, 3.0] * 10, "numeric"),
    ],
)
def test_kind_detection(values, kind):
    assert profile_table(pd.DataFrame({"c": values})).column("c").kind == kind


@pytest.mark.parametrize(
    ("name", "values", "id_like"),
    [
        ("code", [f"C{i:04d}" for i in range(50)], True),  # unique text codes
        ("row", list(range(100, 150)), True),  # whole numbers counting up
        ("order_id", list(np.random.default_rng(0).permutation(np.arange(0, 500, 10))), True),
        ("amount", list(np.random.default_rng(0).permutation(np.arange(0, 500, 10))), False),
        ("weight", list(np.linspace(1.1, 9.9, 50)), False),  # unique measurements are data
        ("small", list(range(10)), False),  # too few rows to tell
    ],
)
def test_id_detection(name, values, id_like):
    assert profile_table(pd.DataFrame({name: values})).column(name).id_like is id_like


def test_unknown_column_lists_the_columns(messy_profile):
    with pytest.raises(DataError, match="no column named 'nope'.*'customer_id', 'age'"):
        messy_profile.column("nope")


def test_to_frame_has_a_row_per_column(messy_profile):
    frame = messy_profile.to_frame()
    assert frame["column"].tolist() == [c.name for c in messy_profile.columns]
    assert frame.set_index("column").loc["income", "kind"] == "numeric"


# --- infer_task ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "task", "reason"),
    [
        ([0, 1] * 50, "binary", "'y' has 2 distinct values (0, 1) -> yes/no prediction (binary)"),
        (
            ["no", "yes", "yes"] * 20,
            "binary",
            "'y' has 2 distinct values (no, yes) -> yes/no prediction (binary)",
        ),
        (
            [0, 1, 2, 3, 4] * 40,
            "multiclass",
            "'y' has 5 distinct whole numbers -> one of 5 categories (multiclass)",
        ),
        (
            ["cat", "dog", "bird"] * 20,
            "multiclass",
            "'y' has 3 distinct values -> one of 3 categories (multiclass)",
        ),
        (
            list(np.linspace(0, 1, 100)),
            "regression",
            "'y' holds numbers with 100 distinct values -> predicting a number (regression)",
        ),
        # too many whole numbers for categories
        (list(range(30)) * 3, "regression", "'y' holds numbers with 30 distinct values"),
        # 10 whole numbers over 30 rows: too few rows per value
        (list(range(10)) * 3, "regression", "'y' holds numbers"),
        ([f"{v:,}" for v in range(1000, 101_000, 1000)], "regression", "predicting a number"),
    ],
)
def test_infer_task(values, task, reason):
    guess = infer_task(pd.Series(values, name="y"))
    assert guess.task == task
    assert reason in guess.reason


def test_infer_task_ignores_missing_values():
    guess = infer_task(pd.Series([1.0, 0.0, np.nan] * 20, name="survived"))
    assert guess.task == "binary"
    assert guess.reason.startswith("'survived' has 2 distinct values (0, 1)")


def test_infer_task_on_an_empty_column_says_so():
    with pytest.raises(DataError, match="'y' has no values"):
        infer_task(pd.Series([None, None], name="y", dtype="str"))


# --- check_target ----------------------------------------------------------------------------


def _table(target_values, **other) -> pd.DataFrame:
    n = len(target_values)
    return pd.DataFrame({"x": np.arange(n), **other, "y": target_values})


@pytest.mark.parametrize(
    ("frame", "target", "task", "fragments"),
    [
        (
            _table([0, 1] * 20), "price", "regression",
            ["'price', is not in the table", "Columns: 'x', 'y'"],
        ),
        (_table([0, 1] * 20), "y", "clustering", ["'clustering' is not known", "regression"]),
        (_table([None] * 30), "y", "binary", ["'y' has no values"]),
        (_table(["a"] * 30), "y", "binary", ["'y' has the same value ('a') in every row"]),
        (
            _table(["low", "high"] * 15), "y", "regression",
            ["'y' holds text (e.g. 'low')", "regression"],
        ),
        (
            _table([0, 1] * 9 + [None] * 10), "y", "binary",
            ["Only 18 rows have a value in 'y'", "at least 20"],
        ),
        (
            _table(["a", "b", "c"] * 10), "y", "binary",
            ["'y' has 3 distinct values", "exactly 2", "multiclass"],
        ),
        (
            _table([f"k{i}" for i in range(101)] * 2), "y", "multiclass",
            ["'y' has 101 distinct values", "more than 100"],
        ),
        (
            _table(["a", "b"] * 15 + ["rare"]), "y", "multiclass",
            ["'rare' appears in only one row of 'y'"],
        ),
        (
            _table(["a", "b"] * 15 + ["r1", "r2"]), "y", "multiclass",
            ["'r1', 'r2' appear in only one row"],
        ),
    ],
)
def test_check_target_refuses_with_a_plain_message(frame, target, task, fragments):
    with pytest.raises(DataError) as error:
        check_target(frame, target, task)
    for fragment in fragments:
        assert fragment in str(error.value)


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_check_target_accepts_a_usable_target(messy, task):
    check_target(messy, TARGET, task)
    check_target(make_messy_table(task="regression"), TARGET, "regression")


# --- suggestions and warnings ----------------------------------------------------------------


def test_suggest_features_leaves_out_target_ids_constants_and_empty_columns(messy_profile):
    assert suggest_features(messy_profile, TARGET) == [
        "age", "income", "color", "signup_date", "member", "visits",
    ]


def test_health_warnings_on_the_messy_table(messy_profile):
    notes = health_warnings(messy_profile, TARGET)
    assert len(notes) == 3
    assert any("'customer_id' looks like a row ID" in n for n in notes)
    assert not any("leakage" in n or "rarest" in n for n in notes)


def test_leak_by_a_category_that_gives_the_answer_away(messy):
    leaky = messy.assign(outcome_code=messy[TARGET].map({"yes": "Y1", "no": "N0"}))
    notes = health_warnings(profile_table(leaky), TARGET)
    assert any("Each value of 'outcome_code'" in n and "leakage" in n for n in notes)


def test_leak_by_correlation_for_a_number_target():
    df = make_messy_table(task="regression")
    rng = np.random.default_rng(1)
    df["target_in_cents"] = df[TARGET] * 100 + rng.normal(0, 50, len(df))
    notes = health_warnings(profile_table(df), TARGET)
    expected = "'target_in_cents' moves almost exactly with 'target' (correlation 1.00)"
    assert any(expected in n for n in notes)
    assert not any("'age'" in n for n in notes)


def test_class_imbalance_names_the_rare_value():
    y = ["ok"] * 190 + ["fraud"] * 10
    df = pd.DataFrame({"amount": np.arange(200.0), "y": y})
    notes = health_warnings(profile_table(df), "y")
    assert any("Only 5.0% of rows have 'y' = 'fraud'" in n for n in notes)


def test_rows_without_a_target_are_counted(messy):
    holes = messy.copy()
    holes.loc[:6, TARGET] = None
    notes = health_warnings(profile_table(holes), TARGET)
    assert any("7 row(s) have no value in 'target'" in n for n in notes)


# --- samples ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SAMPLES))
def test_samples_load_with_their_documented_target_and_task(name):
    sample = SAMPLES[name]
    df = load_sample(name)
    assert sample.target in df.columns
    assert df[sample.target].notna().all()
    assert infer_task(df[sample.target]).task == sample.task
    check_target(df, sample.target, sample.task)


def test_sample_labels_are_readable():
    assert set(load_sample("iris")["species"]) == {"setosa", "versicolor", "virginica"}
    cancer = load_sample("breast_cancer")["diagnosis"]
    assert cancer.value_counts().to_dict() == {"benign": 357, "malignant": 212}
    assert "blood_sugar" in load_sample("diabetes").columns


def test_unknown_sample_lists_the_samples():
    with pytest.raises(DataError, match="no sample named 'titanic'.*iris, wine"):
        load_sample("titanic")


@pytest.mark.parametrize("columns, expected", [
    (["pclass", "survived", "name", "age"], "survived"),  # a passenger class is not a class label
    (["pclass", "name", "age", "fare"], None),  # no name says "answer": ask, do not take the last
    (["a", "b", "churnFlag"], "churnFlag"),
    (["customer_id", "target", "x"], "target"),
    (["SalePrice", "LotArea"], "SalePrice"),
    (["label", "target"], "target"),  # the stronger word wins
])
def test_a_likely_target_is_guessed_from_its_name_only(columns, expected):
    df = pd.DataFrame({c: (list("abcdefgh") if c == "name" else [1, 2, 3, 1, 2, 3, 1, 0]) for c in columns})
    assert likely_target(profile_table(df)) == expected


def test_an_id_or_constant_column_is_never_the_likely_target():
    df = pd.DataFrame({"target_id": range(50), "status": ["open"] * 50, "amount": range(50)})
    assert likely_target(profile_table(df)) is None
