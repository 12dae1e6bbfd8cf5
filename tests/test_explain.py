"""Explanations (``builder.explain``) on small real models of every kind.

The table has a planted signal: the answer depends strongly on ``signal``, somewhat on one value
of the category ``color``, and not at all on the noise columns (``noise_a``, ``noise_b``, the
category ``region``, the constant ``source``). Every explanation must find that: ``signal`` first
in column importance, in one row's attributions and in each row's top reason, with a rising
dependence curve. Integrated gradients must be complete (attributions add up to output minus
baseline output), and the explained output must be the number the app shows.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from builder.data import DataSpec
from builder.data.text import tokenize
from builder.errors import DataError, SpecError
from builder.explain import (
    ColumnImportance,
    Dependence,
    RowExplanation,
    _column_spans,
    _moved_features,
    column_importance,
    dependence,
    explain_row,
    top_reasons,
    what_if,
)
from builder.jsonsafe import plain
from builder.pipeline import train_model
from builder.train import TrainConfig
from tests.image_fixtures import digit_images, image_bytes, make_zip
from tests.test_data_text import make_text_table
from tests.test_data_timeseries import make_series

FEATURES = ["signal", "noise_a", "noise_b", "color", "region", "source"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def planted_table(n: int = 900, seed: int = 0, task: str = "binary") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    signal = rng.normal(50, 10, size=n).round(2)
    color = rng.choice(["red", "green", "blue", "yellow"], size=n)
    score = (signal - 50) / 4 + 1.2 * (color == "red") + rng.normal(0, 0.3, size=n)
    target: object = np.where(score > 0.3, "yes", "no") if task == "binary" else (10 * score + 100).round(3)
    return pd.DataFrame({
        "signal": signal,
        "noise_a": rng.normal(size=n).round(3),
        "noise_b": [f"${v:,.0f}" for v in rng.uniform(1_000, 9_000, size=n)],  # money as text, pure noise
        "color": pd.Series(color, dtype="str"),
        "region": pd.Series(rng.choice(["north", "south", "east"], size=n), dtype="str"),
        "source": "web",
        "target": target,
    })


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return planted_table()


@pytest.fixture(scope="module")
def classifier(table):
    return train_model(table, DataSpec("target", "binary", FEATURES), TrainConfig(epochs=12, device="cpu", seed=0))


@pytest.fixture(scope="module")
def regressor():
    df = planted_table(task="regression", seed=1)
    return train_model(df, DataSpec("target", "regression", FEATURES), TrainConfig(epochs=12, device="cpu", seed=0))


@pytest.fixture(scope="module")
def rows(table) -> pd.DataFrame:
    return table.drop(columns="target").iloc[:200].reset_index(drop=True)


def probability(trained, rows: pd.DataFrame, label: str = "yes") -> np.ndarray:
    return trained.predict(rows)[f"probability_{label}"].to_numpy()


# --- column importance ------------------------------------------------------------------------


def test_the_planted_column_dominates_column_importance(classifier):
    assert classifier.metrics["test"]["accuracy"] > 0.85  # the model learnt the planted signal
    ranked = column_importance(classifier)
    assert [c.column for c in ranked][0] == "signal"
    assert sorted(c.column for c in ranked) == sorted(FEATURES)  # one entry per original column
    assert all(isinstance(c, ColumnImportance) for c in ranked)
    importance = {c.column: c.importance for c in ranked}
    assert importance["signal"] > 0.2  # shuffling it costs over 20 accuracy points
    assert importance["signal"] > 3 * max(importance[c] for c in FEATURES if c != "signal")
    assert importance["color"] > max(importance["noise_a"], importance["region"], importance["source"])
    assert [c.importance for c in ranked] == sorted((c.importance for c in ranked), reverse=True)
    assert ranked[0].sentence.startswith("Shuffling 'signal' lowers accuracy by ")
    assert "leans on it most" in ranked[0].sentence
    json.dumps([c.to_dict() for c in ranked])


def test_a_constant_column_has_exactly_zero_importance_and_says_so(classifier):
    ranked = {c.column: c for c in column_importance(classifier, repeats=3)}
    assert ranked["source"].importance == 0.0 and ranked["source"].spread == 0.0
    assert "does not use it" in ranked["source"].sentence


def test_importance_on_given_rows_reads_the_target_column_and_uses_r2_for_numbers(regressor):
    df = planted_table(n=300, seed=5, task="regression")
    ranked = column_importance(regressor, rows=df, repeats=2, seed=1)
    assert ranked[0].column == "signal" and ranked[0].importance > 0.5  # R² drops by more than half
    assert "R²" in ranked[0].sentence
    same = column_importance(regressor, rows=df.drop(columns="target"), actual=df["target"].tolist(), repeats=2, seed=1)
    assert [(c.column, c.importance) for c in same] == [(c.column, c.importance) for c in ranked]


def test_shuffled_columns_reach_the_network_as_if_the_raw_table_were_shuffled(classifier, rows):
    # column_importance preprocesses once and moves each column's features (all its one-hot parts,
    # its missing-value flag); that must equal preprocessing the shuffled raw table.
    pre = classifier.preprocessor
    order = np.random.default_rng(0).permutation(len(rows))
    shuffled = rows.copy()
    for column in ("color", "noise_b"):  # a category (one-hot parts) and money written as text
        shuffled[column] = rows[column].to_numpy()[order]
    positions = pd.DataFrame({c: np.arange(len(rows)) for c in pre.features})
    positions["color"] = positions["noise_b"] = order
    moved = _moved_features(pre.transform(rows), _column_spans(pre), positions)
    np.testing.assert_array_equal(moved, pre.transform(shuffled))


def test_importance_refuses_rows_without_answers_and_other_kinds(classifier, text_run):
    with pytest.raises(DataError, match="true answers"):
        column_importance(classifier, rows=planted_table(n=50).drop(columns="target"))
    with pytest.raises(SpecError, match="columns of a table"):
        column_importance(text_run)


# --- one row ------------------------------------------------------------------------------------


def test_row_attributions_are_complete_per_original_column_and_find_the_planted_column(classifier, rows):
    extreme = rows.iloc[[int(np.argmax(np.abs(rows["signal"] - 50)))]]
    explanation = explain_row(classifier, extreme)
    assert isinstance(explanation, RowExplanation) and explanation.kind == "table"
    assert list(explanation.attributions) == FEATURES  # original columns, not one-hot parts
    attributions = explanation.attributions
    assert max(attributions, key=lambda c: abs(attributions[c])) == "signal"
    # Completeness: the attributions add up to output minus the typical row's output.
    total = sum(attributions.values())
    assert total == pytest.approx(explanation.output - explanation.base_value, abs=5e-3)
    assert abs(explanation.delta) < 5e-3
    # The explained output is the probability the app shows, of the positive class.
    assert explanation.target == "yes"
    assert explanation.output == pytest.approx(probability(classifier, extreme)[0], abs=1e-5)
    assert explanation.prediction == classifier.predict(extreme)["prediction"].iloc[0]
    assert "signal" in explanation.sentence


def test_one_hot_parts_are_summed_into_their_column(classifier, rows):
    explanation = explain_row(classifier, rows.iloc[[3]])
    features = explanation.details["features"]
    parts = [name for name in features if name.startswith("color=")]
    assert len(parts) >= 4  # red, green, blue, yellow and (other)
    assert explanation.attributions["color"] == pytest.approx(sum(features[p] for p in parts), abs=1e-9)
    assert not any("=" in column for column in explanation.attributions)
    json.dumps(explanation.to_dict())


def test_the_typical_row_is_the_baseline_so_it_has_nothing_to_explain(classifier):
    typical = explain_row(classifier, planted_table(n=5).iloc[[0]]).details["typical"]
    explanation = explain_row(classifier, pd.DataFrame({c: [v] for c, v in typical.items()}))
    assert explanation.output == pytest.approx(explanation.base_value, abs=1e-6)
    assert max(abs(v) for v in explanation.attributions.values()) < 1e-6


def test_shapley_sampling_adds_up_exactly_and_agrees_on_the_planted_column(classifier, rows):
    row = rows.iloc[[int(np.argmax(rows["signal"]))]]
    shapley = explain_row(classifier, row, method="shapley")
    assert shapley.method == "shapley" and shapley.delta is None
    assert sum(shapley.attributions.values()) == pytest.approx(shapley.output - shapley.base_value, abs=1e-5)
    assert max(shapley.attributions, key=lambda c: abs(shapley.attributions[c])) == "signal"
    assert shapley.attributions["signal"] > 0  # a high signal raises the probability of "yes"


def test_regression_is_explained_in_original_units(regressor):
    row = planted_table(n=20, seed=7, task="regression").iloc[[0]]
    explanation = explain_row(regressor, row)
    predicted = regressor.predict(row)["prediction"].iloc[0]
    assert explanation.output == pytest.approx(predicted, rel=1e-5)
    assert explanation.prediction == pytest.approx(predicted, rel=1e-5)
    assert explanation.target == "target"
    assert sum(explanation.attributions.values()) == pytest.approx(
        explanation.output - explanation.base_value, abs=0.02 * max(1.0, abs(explanation.output - explanation.base_value)))


def test_what_if_moves_the_prediction_with_the_changed_value(classifier, rows):
    row = rows.iloc[[0]]
    low, high = what_if(classifier, row, {"signal": 30.0}), what_if(classifier, row, {"signal": 70.0})
    assert low.output < 0.2 < 0.8 < high.output
    assert high.details["values"]["signal"] == 70.0
    with pytest.raises(DataError, match="no input column named 'nope'"):
        what_if(classifier, row, {"nope": 1})


def test_bad_requests_are_refused_with_a_sentence(classifier, rows, regressor):
    with pytest.raises(SpecError, match="'integrated_gradients' or 'shapley'"):
        explain_row(classifier, rows.iloc[[0]], method="lime")
    with pytest.raises(DataError, match="one row"):
        explain_row(classifier, rows.iloc[:2])
    with pytest.raises(SpecError, match="target_class"):
        explain_row(classifier, rows.iloc[[0]], target_class=5)
    with pytest.raises(SpecError, match="classes and forecasts only"):
        explain_row(regressor, rows.iloc[[0]], target_class=0)
    other = explain_row(classifier, rows.iloc[[0]], target_class="no")  # a label works as well as an index
    assert other.target == "no"
    assert other.output == pytest.approx(1 - probability(classifier, rows.iloc[[0]])[0], abs=1e-5)


# --- dependence -----------------------------------------------------------------------------------


def test_the_dependence_curve_rises_along_the_planted_column(classifier):
    curve = dependence(classifier, "signal", grid=15, individual=10)
    assert isinstance(curve, Dependence) and curve.kind == "numeric" and curve.target == "yes"
    average = np.asarray(curve.average)
    assert len(curve.grid) == len(average) >= 10 and curve.grid == sorted(curve.grid)
    assert np.all(np.diff(average) >= -0.02)  # monotone up (up to a little noise)
    assert average[-1] - average[0] > 0.6
    assert np.asarray(curve.individual).shape == (len(curve.rows), len(curve.grid))
    assert "rises" in curve.sentence and "probability of 'yes'" in curve.sentence
    json.dumps(curve.to_dict())


def test_dependence_on_a_category_and_on_money_written_as_text(classifier, table, regressor):
    color = dependence(classifier, "color", rows=table.iloc[:300])
    assert color.kind == "categorical" and sorted(color.grid) == ["blue", "green", "red", "yellow"]
    by_value = dict(zip(color.grid, color.average, strict=True))
    assert max(by_value, key=by_value.get) == "red"  # the planted category
    assert "highest when 'color' is red" in color.sentence
    money = dependence(regressor, "noise_b", rows=table.iloc[:300], grid=8)  # "$1,234" read as numbers
    assert all(isinstance(v, float) for v in money.grid) and 1_000 <= money.grid[0] < money.grid[-1] <= 9_000
    with pytest.raises(DataError, match="no input column named 'age'"):
        dependence(classifier, "age")


# --- many rows ------------------------------------------------------------------------------------


def test_top_reasons_put_the_planted_column_first(classifier, rows):
    started = time.perf_counter()
    reasons = top_reasons(classifier, rows, k=3)
    seconds = time.perf_counter() - started
    assert list(reasons.columns) == ["reason_1", "reason_2", "reason_3"]
    assert reasons.index.equals(rows.index) and len(reasons) == len(rows)
    far = np.abs(rows["signal"] - 50) > 12  # rows whose signal is far from typical
    first = reasons.loc[far, "reason_1"]
    assert first.str.startswith("signal = ").mean() > 0.9
    high = rows.index[rows["signal"] > 65][0]
    assert reasons.loc[high, "reason_1"] == f"signal = {rows.loc[high, 'signal']:g} (raises)"
    assert seconds < 5  # 200 rows in one batch: well under a second when nothing loops per row


def test_top_reasons_agree_with_explain_row(classifier, rows):
    some = rows.iloc[10:14]
    reasons = top_reasons(classifier, some, k=2)
    for i in range(len(some)):
        attributions = explain_row(classifier, some.iloc[[i]]).attributions
        best = max(attributions, key=lambda c: abs(attributions[c]))
        assert reasons["reason_1"].iloc[i].startswith(f"{best} = ")


# --- text, images, forecasts ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_table() -> pd.DataFrame:
    return make_text_table(300)


@pytest.fixture(scope="module")
def text_run(text_table):
    data_spec = DataSpec("topic", "multiclass", ["text"], kind="text", options={"text_column": "text"})
    return train_model(text_table, data_spec, TrainConfig(epochs=25, device="cpu", seed=0))  # a bag of n-grams


@pytest.fixture(scope="module")
def sequence_text_run(text_table):
    data_spec = DataSpec("topic", "multiclass", ["text"], kind="text", options={"text_column": "text"})
    return train_model(text_table, data_spec, TrainConfig(epochs=6, device="cpu", seed=0), family="transformer")


SPORT = "Yesterday the striker scored a goal and the team won the league at the stadium"


@pytest.mark.parametrize("which", ["text_run", "sequence_text_run"])
def test_a_text_is_explained_word_by_word(which, request):
    trained = request.getfixturevalue(which)
    explanation = explain_row(trained, SPORT)
    assert explanation.kind == "text"
    words = [w for w, _ in explanation.attributions]
    assert words == tokenize(SPORT)  # every word, in reading order
    values = np.array([v for _, v in explanation.attributions])
    assert values.sum() == pytest.approx(explanation.output - explanation.base_value, abs=5e-3)
    assert explanation.prediction == "sport" and explanation.target == "sport"
    assert explanation.output == pytest.approx(trained.predict([SPORT])["probability_sport"].iloc[0], abs=1e-5)
    json.dumps(explanation.to_dict())


def test_the_topic_words_carry_a_text_prediction(text_run):
    explanation = explain_row(text_run, SPORT)
    ranked = sorted(explanation.attributions, key=lambda item: -item[1])
    assert {w for w, _ in ranked[:3]} & {"striker", "goal", "team", "league", "stadium"}
    shapley = explain_row(text_run, SPORT, method="shapley")
    assert sum(v for _, v in shapley.attributions) == pytest.approx(shapley.output - shapley.base_value, abs=1e-5)


def test_top_reasons_of_texts_are_words(text_run, text_table):
    reasons = top_reasons(text_run, text_table.head(40), k=2)
    assert reasons.shape == (40, 2) and reasons.index.equals(text_table.head(40).index)
    present = reasons["reason_1"].dropna()
    assert len(present) >= 35 and present.str.match(r"^'.+' \((raises|lowers)\)$").all()


def coloured(image: Image.Image) -> Image.Image:
    """A grayscale digit in colour, so the model reads three channels."""
    return Image.merge("RGB", (image, image.point(lambda v: v // 2), image.point(lambda v: 255 - v)))


@pytest.fixture(scope="module")
def image_run():
    members = {f"digits/{label}/{i}.png": image_bytes(coloured(image))
               for i, (label, image) in enumerate(digit_images(12, size=16, classes=(0, 1, 2, 3)))}
    data_spec = DataSpec(None, "multiclass", [], kind="images")
    return train_model(make_zip(members), data_spec, TrainConfig(epochs=3, device="cpu", seed=0))


def test_an_image_gets_a_heatmap_the_size_of_the_model_input(image_run):
    image = coloured(digit_images(1, size=16, classes=(3,))[0][1])
    explanation = explain_row(image_run, image)
    channels, height, width = image_run.input_shape
    assert channels == 3
    assert explanation.kind == "images" and explanation.attributions.shape == (height, width)
    per_channel = explanation.details["channels"]  # (C, H, W), summed into the heatmap
    assert per_channel.shape == (3, height, width)
    np.testing.assert_allclose(per_channel.sum(axis=0), explanation.attributions)
    assert explanation.attributions.sum() == pytest.approx(explanation.output - explanation.base_value, abs=5e-3)
    assert explanation.output == pytest.approx(
        image_run.predict([image])[f"probability_{explanation.target}"].iloc[0], abs=1e-5)
    as_array = explain_row(image_run, np.asarray(image))  # an (H, W, 3) uint8 array reads the same
    np.testing.assert_allclose(as_array.attributions, explanation.attributions, atol=1e-6)
    shapley = explain_row(image_run, image, method="shapley")
    assert shapley.attributions.shape == (height, width)
    assert shapley.attributions.sum() == pytest.approx(shapley.output - shapley.base_value, abs=1e-5)
    assert np.asarray(plain(explanation.to_dict())["attributions"]).shape == (height, width)
    with pytest.raises(SpecError, match="columns of a table"):
        top_reasons(image_run, [image])


@pytest.fixture(scope="module")
def series() -> pd.DataFrame:
    return make_series()


@pytest.fixture(scope="module")
def forecast_run(series):
    data_spec = DataSpec("sales", "forecast", ["sales"], kind="series",
                         options={"time_column": "date", "window": 28, "horizon": 7})
    return train_model(series, data_spec, TrainConfig(epochs=3, device="cpu", seed=0))


def test_a_forecast_is_explained_per_past_step(forecast_run, series):
    explanation = explain_row(forecast_run, series)
    assert explanation.kind == "series" and len(explanation.attributions) == 28
    assert len(explanation.details["times"]) == 28 and explanation.details["times"] == sorted(explanation.details["times"])
    forecast = forecast_run.predict(series)["prediction"].to_numpy()
    assert explanation.output == pytest.approx(forecast[0], rel=1e-5)
    change = explanation.output - explanation.base_value
    assert sum(explanation.attributions) == pytest.approx(change, abs=0.01 * max(1.0, abs(change)))
    third = explain_row(forecast_run, series, target_class=2)
    assert third.output == pytest.approx(forecast[2], rel=1e-5) and "3 steps ahead" in third.target
    json.dumps(third.to_dict())
    with pytest.raises(SpecError, match="step ahead"):
        explain_row(forecast_run, series, target_class=7)
