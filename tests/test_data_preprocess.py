"""Preprocessor (fit/transform/encode/decode/JSON state), its bundle-safety, and prepare_tabular."""

from __future__ import annotations

import ast
import functools
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import builder.data.preprocess as preprocess_module
from builder.data import DataSpec, Preprocessor, prepare_tabular
from builder.errors import DataError
from tests.tabular_fixtures import TARGET, make_messy_table

FEATURES = ["customer_id", "age", "income", "color", "signup_date", "member", "visits"]


@functools.cache
def fitted(task: str = "binary") -> tuple[Preprocessor, pd.DataFrame]:
    """Fitted on rows 0-299 of 600 messy rows; returns it and the rows (shared: never mutate)."""
    df = make_messy_table(n=600, seed=0, task=task)
    return Preprocessor().fit(df.iloc[:300], TARGET, task, FEATURES), df


def column(pre: Preprocessor, X: np.ndarray, name: str) -> np.ndarray:
    return X[:, pre.feature_names.index(name)]


# --- transform -------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["binary", "regression", "multiclass"])
def test_transform_gives_a_finite_float32_matrix(task):
    pre, df = fitted(task)
    X = pre.transform(df)
    assert X.dtype == np.float32
    assert X.shape == (600, pre.n_features) == (600, len(pre.feature_names))
    assert np.isfinite(X).all()
    assert pre.features == FEATURES
    assert pre.kinds == {
        "customer_id": "numeric", "age": "numeric", "income": "numeric", "color": "categorical",
        "signup_date": "datetime", "member": "boolean", "visits": "numeric",
    }


def test_feature_names_describe_each_output_column():
    pre, _ = fitted()
    names = pre.feature_names
    assert names[:5] == ["customer_id", "age", "age (missing)", "income", "income (missing)"]
    assert {"color=red", "color=green", "color=blue", "color=(other)"} <= set(names)
    assert [n for n in names if n.startswith("signup_date")] == [
        "signup_date (year)",
        "signup_date (month)",
        "signup_date (day of week)",
        "signup_date (day of year)",
    ]
    assert "member" in names


def test_statistics_come_from_the_training_rows_only():
    pre, df = fitted()
    train, rest = df.iloc[:300], df.iloc[300:]
    age_train = column(pre, pre.transform(train), "age")
    known = ~train["age"].isna().to_numpy()
    # Quantile scaling: normal scores of the training rows' own quantiles.
    assert age_train[known].mean() == pytest.approx(0.0, abs=0.02)
    assert age_train[known].std() == pytest.approx(1.0, abs=0.1)
    state = next(c for c in pre.to_dict()["columns"] if c["name"] == "age")
    assert state["mean"] == pytest.approx(train["age"].mean())
    assert state["mean"] != pytest.approx(rest["age"].mean())
    levels = (np.arange(128) + 0.5) / 128
    np.testing.assert_allclose(state["quantiles"], np.unique(np.quantile(train["age"].dropna(), levels)))
    # Standard scaling: exactly mean 0 and std 1 on the training rows.
    standard = Preprocessor(numeric_scaling="standard").fit(train, TARGET, "binary", FEATURES)
    scaled = column(standard, standard.transform(train), "age")[known]
    assert scaled.mean() == pytest.approx(0.0, abs=1e-5) and scaled.std() == pytest.approx(1.0, abs=1e-4)


def test_messy_numbers_are_parsed_like_the_profile_does():
    amounts = ["$1,234", " 12 ", "(5)", "1.234,5", "12,5", "7%"]
    df = pd.DataFrame({"amount": amounts * 5, "y": [0, 1] * 15})
    pre = Preprocessor(numeric_scaling="standard").fit(df, "y", "binary", ["amount"])
    state = pre.to_dict()["columns"][0]
    values = pre.transform(df)[:6, 0] * state["std"] + state["mean"]
    np.testing.assert_allclose(values, [1234, 12, -5, 1234.5, 12.5, 7], rtol=1e-5)


def test_missing_values_and_unseen_categories_at_transform_time():
    pre, df = fitted()
    rows = df.iloc[:3].copy()
    rows["age"] = [np.nan, 30.0, np.nan]
    rows["income"] = ["n/a", "lots", "$50,000"]
    rows["color"] = ["magenta", None, "red"]
    rows["signup_date"] = ["not a date", None, "2022-02-02"]
    rows["member"] = [None, "maybe", "yes"]
    X = pre.transform(rows)
    assert np.isfinite(X).all()
    np.testing.assert_array_equal(column(pre, X, "age (missing)"), [1, 0, 1])
    np.testing.assert_array_equal(column(pre, X, "income (missing)"), [1, 1, 0])
    assert column(pre, X, "color=(other)")[0] == 1  # unseen -> other
    assert column(pre, X, "color=red")[1] == 1  # missing -> most frequent
    assert set(column(pre, X, "member")) <= {0.0, 1.0}
    onehot = X[:, [i for i, n in enumerate(pre.feature_names) if n.startswith("color=")]]
    np.testing.assert_array_equal(onehot.sum(axis=1), [1, 1, 1])


def test_rare_categories_share_the_other_column_and_columns_are_capped():
    many = [f"v{i:02d}" for i in range(50) for _ in range(10)]  # 50 values x 10 rows
    df = pd.DataFrame({"c": many + ["rare"] * 2, "y": [0, 1] * 251})
    pre = Preprocessor().fit(df, "y", "binary", ["c"])
    assert len(pre.feature_names) == 31  # the 30 most frequent + (other)
    assert "c=rare" not in pre.feature_names
    X = pre.transform(pd.DataFrame({"c": ["rare", "v49", "v00"]}))
    np.testing.assert_array_equal(X[:, -1], [1, 1, 0])


def test_booleans_and_dates_become_numbers():
    df = pd.DataFrame(
        {
            "flag": ["yes", "no", "YES", "No"] * 10,
            "when": ["2021-01-04", "2021-06-15", "2022-12-31", "2020-02-29"] * 10,
            "y": [1.0, 2.0, 3.5, 4.0] * 10,
        }
    )
    pre = Preprocessor().fit(df, "y", "regression", ["flag", "when"])
    X = pre.transform(df.iloc[:4])
    np.testing.assert_array_equal(X[:, 0], [1, 0, 1, 0])
    state = pre.to_dict()["columns"][1]
    raw = X[:, 1:] * np.array(state["std"]) + np.array(state["mean"])
    # year, month, day of week (Monday = 0), day of year
    np.testing.assert_allclose(
        raw, [[2021, 1, 0, 4], [2021, 6, 1, 166], [2022, 12, 5, 365], [2020, 2, 5, 60]], atol=1e-3
    )


def test_extra_columns_target_and_column_order_do_not_matter():
    pre, df = fitted()
    expected = pre.transform(df)
    shuffled = df[FEATURES[::-1]].assign(unrelated="x")
    np.testing.assert_array_equal(pre.transform(shuffled), expected)


def test_missing_input_column_is_named_and_the_expected_ones_listed():
    pre, df = fitted()
    with pytest.raises(DataError) as error:
        pre.transform(df.drop(columns="income"))
    message = str(error.value)
    assert "no column named 'income'" in message
    assert "'customer_id', 'age', 'income', 'color'" in message
    with pytest.raises(DataError, match="missing 2 needed columns: 'age', 'color'"):
        pre.transform(df.drop(columns=["age", "color"]))


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"task": "clustering"}, "'clustering' is not known"),
        ({"features": []}, "No input columns"),
        ({"features": ["age", TARGET]}, "'target' is the column to predict, so it cannot also be"),
        ({"features": ["age", "height"]}, "no column named 'height'"),
        ({"task": "binary", "df": make_messy_table(task="multiclass")}, "3 distinct value(s)"),
    ],
)
def test_fit_refuses_bad_choices(kwargs, fragment):
    defaults = {"target": TARGET, "task": "binary", "features": ["age"]}
    args = {"df": make_messy_table(n=100), **defaults} | kwargs
    with pytest.raises(DataError) as error:
        Preprocessor().fit(**args)
    assert fragment in str(error.value)


def test_using_an_unfitted_preprocessor_is_a_bug():
    with pytest.raises(RuntimeError, match="not fitted"):
        Preprocessor().transform(pd.DataFrame({"a": [1]}))


# --- JSON state ------------------------------------------------------------------------------


def _assert_plain_json(value, path="state"):
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str, path
            _assert_plain_json(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _assert_plain_json(item, f"{path}[{i}]")
    else:
        assert value is None or type(value) in (str, int, float, bool), f"{path} is {type(value)}"


@pytest.mark.parametrize("task", ["binary", "regression", "multiclass"])
def test_json_round_trip_gives_bit_identical_results(task):
    pre, df = fitted(task)
    state = pre.to_dict()
    _assert_plain_json(state)
    assert state["format"] == "builder.tabular-preprocessor" and state["version"] == 1
    again = Preprocessor.from_dict(json.loads(json.dumps(state)))
    assert again.transform(df).tobytes() == pre.transform(df).tobytes()
    assert again.encode_target(df[TARGET]).tobytes() == pre.encode_target(df[TARGET]).tobytes()
    assert again.feature_names == pre.feature_names
    assert (again.task, again.target, again.classes, again.target_scale) == (
        pre.task, pre.target, pre.classes, pre.target_scale,
    )
    assert again.to_dict() == state


def test_to_dict_is_a_copy():
    pre, df = fitted()
    pre.to_dict()["columns"][1]["mean"] = 1e9
    assert pre.to_dict()["columns"][1]["mean"] != 1e9


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"format": "something else"}, "not a saved table preprocessing file"),
        ({"version": 99}, "version 99"),
        ({"columns": None}, "incomplete or damaged"),
        ({"columns": [{"name": "a", "kind": "audio"}]}, "unknown column kinds 'audio'"),
    ],
)
def test_from_dict_refuses_foreign_or_newer_state(change, fragment):
    pre, _ = fitted()
    with pytest.raises(DataError, match=fragment):
        Preprocessor.from_dict(pre.to_dict() | change)


# --- targets ---------------------------------------------------------------------------------


def test_target_encodings_have_the_training_shapes():
    pre, df = fitted("regression")
    y = pre.encode_target(df[TARGET])
    assert (y.dtype, y.shape) == (np.float32, (600, 1))
    assert y[:300].mean() == pytest.approx(0.0, abs=1e-5)
    assert pre.target_scale == pytest.approx(df[TARGET].iloc[:300].std(ddof=0))

    pre, df = fitted("binary")
    y = pre.encode_target(df[TARGET])
    assert (y.dtype, y.shape, pre.classes) == (np.float32, (600, 1), ["no", "yes"])
    np.testing.assert_array_equal(y[:, 0], (df[TARGET] == "yes").to_numpy())

    pre, df = fitted("multiclass")
    y = pre.encode_target(df[TARGET])
    assert (y.dtype, y.shape, pre.classes) == (np.int64, (600,), ["bronze", "gold", "silver"])
    assert pre.n_outputs == 3


def test_regression_outputs_decode_to_original_units():
    pre, df = fitted("regression")
    decoded = pre.decode_outputs(pre.encode_target(df[TARGET]))
    assert list(decoded.columns) == ["prediction"]
    np.testing.assert_allclose(decoded["prediction"], df[TARGET], rtol=1e-5)


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_class_labels_round_trip_and_probabilities_sum_to_one(task):
    pre, df = fitted(task)
    codes = pre.encode_target(df[TARGET])
    k = len(pre.classes)
    logits = (2 * codes - 1) * 8.0 if task == "binary" else np.eye(k)[codes] * 8.0
    decoded = pre.decode_outputs(logits)
    assert decoded["prediction"].tolist() == df[TARGET].tolist()
    probabilities = decoded[[f"probability_{c}" for c in pre.classes]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-12)
    assert list(decoded.columns) == ["prediction"] + [f"probability_{c}" for c in pre.classes]


def test_extreme_logits_are_stable():
    for task, width in (("binary", 1), ("multiclass", 3)):
        pre, _ = fitted(task)
        logits = np.array([[1e4] * width, [-1e4] * width, [0.0] * width])
        if width == 3:
            logits[1] = [-1e4, 1e4, 0]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            decoded = pre.decode_outputs(logits)
        probabilities = decoded.filter(like="probability_").to_numpy()
        assert np.isfinite(probabilities).all()
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


@pytest.mark.parametrize(
    ("labels", "classes", "dtype"),
    [
        ([0, 1] * 15, [0, 1], "int64"),
        ([1.0, 0.0, np.nan] * 15, [0, 1], "int64"),  # float because of the holes; labels stay whole
        ([3, 1, 2] * 15, [1, 2, 3], "int64"),
        ([True, False] * 15, [False, True], "bool"),
        (["b", "a", "c"] * 15, ["a", "b", "c"], "str"),
    ],
)
def test_labels_keep_their_type(labels, classes, dtype):
    df = pd.DataFrame({"x": np.arange(len(labels)), "y": labels}).dropna()
    task = "binary" if len(classes) == 2 else "multiclass"
    pre = Preprocessor().fit(df, "y", task, ["x"])
    assert pre.classes == classes
    assert Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict()))).classes == classes
    outputs = np.zeros((2, pre.n_outputs))
    outputs[0, -1] = 5.0
    decoded = pre.decode_outputs(outputs)
    assert decoded["prediction"].dtype == dtype
    assert decoded["prediction"].iloc[0] == classes[-1]
    assert f"probability_{classes[0]}" in decoded.columns


def test_unknown_or_missing_labels_are_refused_by_name():
    pre, df = fitted("binary")
    with pytest.raises(DataError, match=r"'target' contains 'maybe'.*known values: 'no', 'yes'"):
        pre.encode_target(pd.Series(["yes", "maybe"]))
    with pytest.raises(DataError, match="1 row\\(s\\) have no value in 'target'"):
        pre.encode_target(pd.Series(["yes", None], dtype="str"))
    reg, _ = fitted("regression")
    with pytest.raises(DataError, match="no usable number \\(for example 'lots'\\)"):
        reg.encode_target(pd.Series(["12", "lots"]))


def test_outputs_of_the_wrong_width_are_refused():
    pre, _ = fitted("multiclass")
    with pytest.raises(DataError, match="gave 2 output value\\(s\\) per row.*needs 3"):
        pre.decode_outputs(np.zeros((4, 2)))


# --- the decision threshold of a yes/no model ------------------------------------------------


def _binary_copy() -> Preprocessor:
    pre, _ = fitted("binary")
    return Preprocessor.from_dict(pre.to_dict())  # its own copy: the shared one is never changed


def test_a_yes_no_model_answers_yes_above_its_threshold():
    pre = _binary_copy()
    chances = np.array([0.2, 0.5, 0.55, 0.7, 0.9, 0.95])
    logits = np.log(chances / (1 - chances))[:, None]  # (6, 1)
    assert pre.decision_threshold == 0.5 and pre.decision_threshold_chosen is None
    assert pre.decode_outputs(logits)["prediction"].tolist() == ["no", "no", "yes", "yes", "yes", "yes"]  # a tie: no
    pre.set_decision_threshold(0.7, chosen="by hand")
    decoded = pre.decode_outputs(logits)
    assert decoded["prediction"].tolist() == ["no", "no", "no", "no", "yes", "yes"]
    np.testing.assert_allclose(decoded["probability_yes"], chances)  # probabilities do not move
    assert (pre.decision_threshold, pre.decision_threshold_chosen) == (0.7, "by hand")


def test_the_threshold_is_json_state_and_an_older_state_reads_0_5():
    pre = _binary_copy()
    pre.set_decision_threshold(np.float32(0.25), chosen="on the validation rows")
    state = json.loads(json.dumps(pre.to_dict()))
    assert state["decision_threshold"] == 0.25 and state["decision_threshold_chosen"] == "on the validation rows"
    back = Preprocessor.from_dict(state)
    assert back.decision_threshold == 0.25 and back.to_dict() == pre.to_dict()
    del state["decision_threshold"], state["decision_threshold_chosen"]
    assert Preprocessor.from_dict(state).decision_threshold == 0.5
    state["decision_threshold"] = 1.5
    with pytest.raises(DataError, match="decision_threshold, 1.5, is not a number between 0 and 1"):
        Preprocessor.from_dict(state)


@pytest.mark.parametrize("value", [0, 1, 1.0, -0.2, 1.5, float("nan"), float("inf"), "0.7", None, True])
def test_a_threshold_outside_0_to_1_is_refused_in_words(value):
    pre = _binary_copy()
    with pytest.raises(DataError, match="must be a number between 0 and 1 \\(not 0 or 1 themselves\\)"):
        pre.set_decision_threshold(value)
    assert pre.decision_threshold == 0.5


@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_only_a_yes_no_model_has_a_threshold(task):
    pre, _ = fitted(task)
    with pytest.raises(DataError, match="applies only to a yes/no \\(binary\\) model, and this one is for predicting"):
        pre.set_decision_threshold(0.7)
    assert pre.decision_threshold is None and "decision_threshold" not in pre.to_dict()


# --- bundle safety ---------------------------------------------------------------------------

ALLOWED_IMPORTS = {"numpy", "pandas", "__future__"} | set(sys.stdlib_module_names)


def test_preprocess_imports_only_numpy_pandas_and_the_standard_library():
    tree = ast.parse(Path(preprocess_module.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    # builder.errors is imported inside try/except ImportError, with a local fallback.
    assert imported - ALLOWED_IMPORTS == {"builder"}


def test_copied_preprocess_works_without_builder_and_matches(tmp_path):
    pre, df = fitted("multiclass")
    shutil.copy(preprocess_module.__file__, tmp_path / "preprocess.py")
    (tmp_path / "preprocess.json").write_text(json.dumps(pre.to_dict()))
    df.to_csv(tmp_path / "rows.csv", index=False)
    np.save(tmp_path / "expected.npy", pre.transform(pd.read_csv(tmp_path / "rows.csv")))
    script = """
import json, sys
sys.path.insert(0, ".")
sys.modules["builder"] = None  # as in a bundle: the builder package cannot be imported
import numpy as np, pandas as pd
pd.set_option("mode.string_storage", "python")  # a bundle may run without pyarrow
import preprocess
assert issubclass(preprocess.DataError, ValueError)
pre = preprocess.Preprocessor.from_dict(json.load(open("preprocess.json")))
X = pre.transform(pd.read_csv("rows.csv"))
assert X.tobytes() == np.load("expected.npy").tobytes(), "transform differs"
try:
    pre.transform(pd.DataFrame({"age": [1]}))
except preprocess.DataError as error:
    print("refused:", error)
"""
    result = subprocess.run(
        [sys.executable, "-I", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "refused: The data is missing" in result.stdout


# --- prepare_tabular -------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["binary", "regression", "multiclass"])
def test_prepare_tabular_end_to_end(task):
    df = make_messy_table(n=600, task=task)
    df.loc[[5, 50, 500], TARGET] = None  # rows without a target are left out
    data = prepare_tabular(df, DataSpec(TARGET, task, FEATURES), 0.15, 0.15, seed=3)

    parts = (data.train_idx, data.val_idx, data.test_idx)
    assert sum(len(p) for p in parts) == 597
    assert not set(np.concatenate(parts)) & {5, 50, 500}
    assert len(set(np.concatenate(parts))) == 597
    assert [len(p) for p in parts] == [417, 90, 90]
    for X, idx in zip((data.X_train, data.X_val, data.X_test), parts, strict=False):
        assert X.dtype == np.float32 and X.shape == (len(idx), data.input_shape[0])
        assert np.isfinite(X).all()
    pd.testing.assert_frame_equal(data.raw_test, df.iloc[data.test_idx])
    np.testing.assert_array_equal(data.preprocessor.transform(data.raw_test), data.X_test)
    expected_outputs = {"binary": 1, "regression": 1, "multiclass": 3}[task]
    assert data.n_outputs == expected_outputs
    assert data.y_test.shape[0] == len(data.test_idx)
    assert data.y_train.dtype == (np.int64 if task == "multiclass" else np.float32)
    # Scaling was fitted on the training rows only.
    age_state = next(c for c in data.preprocessor.to_dict()["columns"] if c["name"] == "age")
    assert age_state["mean"] == pytest.approx(df["age"].iloc[data.train_idx].mean())


def test_prepare_tabular_checks_the_target_first():
    df = make_messy_table(n=100)
    with pytest.raises(DataError, match="'price', is not in the table"):
        prepare_tabular(df, DataSpec("price", "regression", ["age"]))


def test_prepare_without_a_target_keeps_every_row():
    df = make_messy_table(n=100)
    data = prepare_tabular(df, DataSpec(None, "anomaly", ["age", "color"]))
    assert data.y_train is None
    assert len(data.train_idx) + len(data.val_idx) + len(data.test_idx) == 100
    assert data.n_outputs == data.input_shape[0]


def test_data_spec_round_trip_and_errors():
    spec = DataSpec(TARGET, "binary", ["age", "color"])
    assert DataSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(DataError, match="missing \\['task'\\]"):
        DataSpec.from_dict({"target": "y", "features": []})
    with pytest.raises(DataError, match="list of column names"):
        DataSpec.from_dict({"target": "y", "task": "binary", "features": "age"})


def test_numbers_too_large_to_scale_are_refused_naming_the_column():
    df = pd.DataFrame({"x": [1e308, -1e308, 5.0, 2.0] * 10, "t": range(40)})
    with pytest.raises(DataError, match="'x' holds numbers too large"):
        Preprocessor().fit(df, "t", "regression", ["x"])
