"""split_indices: sizes, stratification, determinism, fallbacks and setting validation."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from builder.data import split_indices
from builder.errors import DataError
from tests.tabular_fixtures import TARGET, make_messy_table


def _share(y: np.ndarray, idx: np.ndarray, label: str) -> float:
    return float(np.mean(y[idx] == label))


def test_sets_are_disjoint_sorted_and_cover_every_row():
    y = make_messy_table(n=600, task="multiclass")[TARGET]
    train, val, test = split_indices(y, "multiclass", 0.15, 0.15, seed=0)
    assert [len(train), len(val), len(test)] == [420, 90, 90]
    everything = np.concatenate([train, val, test])
    assert sorted(everything.tolist()) == list(range(600))
    for part in (train, val, test):
        assert part.dtype == np.int64
        assert np.all(np.diff(part) > 0)


def test_stratified_split_keeps_class_ratios():
    y = np.array(["rare"] * 100 + ["common"] * 900)
    np.random.default_rng(0).shuffle(y)
    train, val, test = split_indices(pd.Series(y), "binary", 0.2, 0.2, seed=1)
    for part in (train, val, test):
        assert _share(y, part, "rare") == pytest.approx(0.10, abs=0.005)


def test_regression_split_is_random_but_sized():
    y = np.random.default_rng(0).normal(size=1000)
    train, val, test = split_indices(y, "regression", 0.1, 0.2, seed=0)
    assert [len(train), len(val), len(test)] == [700, 100, 200]


def test_same_seed_same_split_other_seed_other_split():
    y = make_messy_table(n=300)[TARGET]
    first = split_indices(y, "binary", seed=7)
    again = split_indices(y, "binary", seed=7)
    other = split_indices(y, "binary", seed=8)
    for a, b in zip(first, again, strict=False):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[2], other[2])


def test_a_class_too_small_to_stratify_falls_back_to_random(caplog):
    y = ["a"] * 50 + ["b"] * 49 + ["lonely"]
    with caplog.at_level(logging.INFO, logger="builder.data.split"):
        train, val, test = split_indices(y, "multiclass", 0.2, 0.2, seed=0)
    assert len(train) + len(val) + len(test) == 100
    assert "too small to keep class proportions" in caplog.text


def test_zero_fractions_give_empty_sets():
    train, val, test = split_indices(np.arange(50.0), "regression", 0.0, 0.0)
    assert (len(train), len(val), len(test)) == (50, 0, 0)


@pytest.mark.parametrize(
    ("val", "test", "fragments"),
    [
        (0.55, 0.1, ["validation share (val_fraction)", "got 0.55"]),
        (0.1, -0.1, ["test share (test_fraction)", "got -0.1"]),
        (0.1, "0.2", ["test share (test_fraction)", "got '0.2'"]),
        (0.1, True, ["test share (test_fraction)"]),
        (0.45, 0.4, ["(val_fraction + test_fraction) add up to 0.85", "at most 0.8"]),
    ],
)
def test_fractions_are_validated_by_name(val, test, fragments):
    with pytest.raises(DataError) as error:
        split_indices(np.arange(100), "regression", val, test)
    for fragment in fragments:
        assert fragment in str(error.value)


def test_too_few_rows_to_split():
    with pytest.raises(DataError, match="too few rows \\(1\\)"):
        split_indices([1.0], "regression", 0.15, 0.15)
