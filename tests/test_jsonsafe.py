"""builder.jsonsafe: engine results (numpy values inside dicts, lists and tuples) as JSON."""

from __future__ import annotations

import json
import math

import numpy as np

from builder.jsonsafe import plain, strict


def test_plain_turns_numpy_values_into_python_values_at_any_depth():
    value = {1: (np.float32(1.5), [np.int64(2), "a", None]), "x": np.array([[1, 2], [3, 4]]),
             "y": [True, 0.25, [np.bool_(True)]]}
    got = plain(value)
    assert got == {"1": [1.5, [2, "a", None]], "x": [[1, 2], [3, 4]], "y": [True, 0.25, [True]]}
    assert type(got["1"][0]) is float and type(got["1"][1][0]) is int and type(got["y"][2][0]) is bool
    assert json.loads(json.dumps(got)) == got


def test_plain_copies_a_list_of_plain_scalars_and_keeps_nan():
    numbers = [0.5, float("nan"), 3, "b", None, False]
    got = plain(numbers)
    assert got is not numbers and got[0] == 0.5 and math.isnan(got[1]) and got[2:] == [3, "b", None, False]
    assert plain((1, 2)) == [1, 2]


def test_strict_writes_nan_and_infinity_as_null():
    assert strict({"a": [np.float64("nan"), float("inf"), 1.0], "b": (np.float32(-np.inf),)}) == {
        "a": [None, None, 1.0], "b": [None]}
