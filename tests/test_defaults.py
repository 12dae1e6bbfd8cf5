"""Tests of the defaults chosen from the data: suggested settings, the quantile scaling of numbers,
the starter table design, and scoring on a test file of the user's own (``--test-data``).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets
from sklearn.model_selection import train_test_split

from builder import cli
from builder.data import DataSpec
from builder.data.preprocess import Preprocessor
from builder.data.sources import class_counts
from builder.data.split import split_indices
from builder.defaults import suggested_config, suggested_data_options, suggested_settings
from builder.errors import DataError
from builder.pipeline import train_model
from builder.templates import starter_spec
from builder.train import TrainConfig

# -- suggested settings -------------------------------------------------------------------------


@pytest.mark.parametrize("rows, epochs", [(700, 273), (5_000, 75), (100_000, 40)])
def test_small_tables_get_more_epochs_for_enough_optimizer_steps(rows, epochs):
    settings = suggested_settings("table", "regression", rows)
    assert settings["epochs"] == epochs
    assert settings["schedule"] == "cosine" and 0 < settings["warmup_epochs"] < settings["epochs"]
    assert settings["optimizer"] == "adamw" and "label_smoothing" not in settings
    assert suggested_settings("table", "binary", rows)["label_smoothing"] == 0.1


def test_the_users_settings_win_and_the_derived_ones_follow_them():
    config = suggested_config("table", "binary", 700, epochs=5, lr=0.01)
    assert (config.epochs, config.lr, config.warmup_epochs) == (5, 0.01, 0)  # warm-up fits the run
    assert config.schedule == "cosine"  # the rest is still chosen from the data
    assert suggested_config("series", "forecast", 500) == TrainConfig()  # nothing to change there
    assert suggested_data_options("images", 2_000) == {"augment": True}
    assert suggested_data_options("images", 60_000) == {}


def test_starter_table_design_is_sized_to_the_rows_and_regularised_by_task():
    def summary(spec):
        widths = [layer.params["out_features"] for layer in spec.layers if layer.type == "Linear"]
        drops = [layer.params["p"] for layer in spec.layers if layer.type == "Dropout"]
        return widths, drops

    assert summary(starter_spec("mlp", 12, 500, task="binary")) == ([128, 128], [0.3, 0.3])
    assert summary(starter_spec("mlp", 12, 5_000, task="multiclass")) == ([256] * 3, [0.3] * 3)
    numbers = starter_spec("mlp", 12, 5_000, task="regression")
    assert summary(numbers) == ([256] * 3, []) and numbers.layers[0].type == "PeriodicEmbedding"
    wide = starter_spec("mlp", 306, 5_000, task="regression")  # numeric embeddings did not pay there
    assert wide.layers[0].type == "Linear"


# -- quantile scaling ---------------------------------------------------------------------------


def test_skewed_numbers_become_evenly_spread_scores():
    rng = np.random.default_rng(0)
    counts = np.round(rng.lognormal(2, 1.5, size=2_000))  # heavily skewed, many ties
    df = pd.DataFrame({"count": counts, "y": rng.normal(size=2_000)})
    pre = Preprocessor().fit(df, "y", "regression", ["count"])
    scores = pre.transform(df)[:, 0]
    assert abs(scores.mean()) < 0.1 and 0.8 < scores.std() < 1.1
    assert np.abs(scores).max() < 3  # the outliers land at the edge, not 15 deviations out
    standard = (counts - counts.mean()) / counts.std()
    assert np.abs(standard).max() > 15  # what plain standardising gave
    order = np.argsort(counts, kind="stable")
    assert np.all(np.diff(scores[order]) >= -1e-6)  # monotone: the order of the values is kept
    # Beyond the training range the ends hold; missing values take the median's score.
    edge = pre.transform(pd.DataFrame({"count": [-1e9, 1e12, None]}))[:, 0]
    assert edge[0] == pytest.approx(scores.min()) and edge[1] == pytest.approx(scores.max())
    assert abs(edge[2]) < 0.1


def test_quantile_state_round_trips_and_old_states_still_standardise():
    df = pd.DataFrame({"x": np.arange(100.0) ** 2, "y": np.arange(100.0)})
    pre = Preprocessor().fit(df, "y", "regression", ["x"])
    again = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    np.testing.assert_array_equal(again.transform(df), pre.transform(df))
    state = pre.to_dict()
    for column in state["columns"]:
        del column["quantiles"], column["scores"]  # a file saved before quantile scaling
    old = Preprocessor.from_dict(state)
    expected = (df["x"] - df["x"].mean()) / df["x"].std(ddof=0)
    np.testing.assert_allclose(old.transform(df)[:, 0], expected, rtol=1e-5)


# -- test rows of the user's own ----------------------------------------------------------------


def test_given_test_rows_are_the_test_set_and_validation_comes_from_the_rest():
    y = np.array([0, 1] * 50)
    is_test = np.zeros(100, dtype=bool)
    is_test[80:] = True
    train, val, test = split_indices(y, "binary", val_fraction=0.25, test_rows=is_test)
    np.testing.assert_array_equal(test, np.arange(80, 100))
    assert len(val) == 20 and set(train) | set(val) == set(range(80)) and not set(train) & set(val)
    with pytest.raises(DataError, match="some, but not all"):
        split_indices(y, "binary", test_rows=np.ones(100, dtype=bool))


def test_a_test_file_scores_the_model_on_exactly_its_rows(tmp_path, capsys):
    cancer = datasets.load_breast_cancer(as_frame=True).frame
    train, test = train_test_split(cancer, test_size=0.2, random_state=0)
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    code = cli.main(["train", "--data", str(tmp_path / "train.csv"), "--test-data", str(tmp_path / "test.csv"),
                     "--target", "target", "--epochs", "3", "--out", str(tmp_path / "m.zip")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"test rows: {len(test)} from test.csv" in err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["metrics"]["test"]["accuracy"] > 0.85
    # The same rows through the engine: the test split is the file, nothing else.
    mask = np.r_[np.zeros(len(train), bool), np.ones(len(test), bool)]
    trained = train_model(pd.concat([train, test], ignore_index=True),
                          DataSpec("target", "binary", [c for c in cancer.columns if c != "target"]),
                          TrainConfig(epochs=1), test_rows=mask)
    assert trained.info["rows"]["test"] == len(test)
    assert trained.info["rows"]["train"] + trained.info["rows"]["validation"] == len(train)


def test_a_test_file_without_the_models_columns_is_refused(tmp_path, capsys):
    cancer = datasets.load_breast_cancer(as_frame=True).frame
    cancer.to_csv(tmp_path / "train.csv", index=False)
    cancer.drop(columns="mean radius").head(20).to_csv(tmp_path / "test.csv", index=False)
    code = cli.main(["train", "--data", str(tmp_path / "train.csv"), "--test-data", str(tmp_path / "test.csv"),
                     "--target", "target", "--out", str(tmp_path / "m.zip")])
    err = capsys.readouterr().err
    assert code == 2 and "The test file test.csv has no column mean radius" in err


def test_class_counts_feed_the_class_weight_suggestion():
    df = pd.DataFrame({"x": range(10), "y": ["a"] * 8 + ["b", None]})
    assert class_counts(df, DataSpec("y", "binary", ["x"])) == {"a": 8, "b": 1}
    assert class_counts(df, DataSpec("x", "regression", ["y"])) is None


# -- a settings file, and the page's way back to the suggestions ---------------------------------


def test_a_settings_file_is_read_validated_and_overridden_by_flags(tmp_path, capsys):
    cancer = datasets.load_breast_cancer(as_frame=True).frame
    cancer.to_csv(tmp_path / "cancer.csv", index=False)
    base = ["train", "--data", str(tmp_path / "cancer.csv"), "--target", "target", "--out", str(tmp_path / "m.zip")]
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"epochs": 3, "early_stopping_patience": 0, "beta1": 0.8}))
    assert cli.main([*base, "--config", str(settings)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["epochs_run"] == 3
    assert cli.main([*base, "--config", str(settings), "--epochs", "2"]) == 0  # the flag wins
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["epochs_run"] == 2
    settings.write_text(json.dumps({"epochs": 3, "betas": [0.8, 0.9]}))
    assert cli.main([*base, "--config", str(settings)]) == 2
    assert "Unknown training setting 'betas'; the valid ones are" in capsys.readouterr().err
    settings.write_text("{epochs: 3")
    assert cli.main([*base, "--config", str(settings)]) == 2
    assert "The settings file settings.json is not valid JSON" in capsys.readouterr().err


def test_the_train_page_starts_from_the_suggestions_and_can_go_back_to_them(app, builder_home):
    from builder.data import SAMPLES, load_sample
    from builder.workspace import Workspace
    from tests.app_helpers import open_page

    info, df = SAMPLES["iris"], load_sample("iris")
    workspace = Workspace.open(None, home=builder_home)
    workspace.save_table("iris.csv", df.to_csv(index=False).encode(), title="Iris (sample)")
    workspace.save_state("data_spec", DataSpec(info.target, info.task, [c for c in df.columns if c != info.target])
                         .to_dict())
    workspace.save_state("design", starter_spec("mlp", 4, len(df), task=info.task).to_dict())
    at = open_page(app, workspace, "pages/train.py")
    at.number_input(key="train_epochs").set_value(7).run()
    assert at.session_state["app"].config.epochs == 7
    at.button(key="train_suggest").click().run()
    expected = suggested_config("table", info.task, int(len(df) * 0.7))
    config = at.session_state["app"].config
    assert (config.epochs, config.schedule, config.label_smoothing) == (expected.epochs, "cosine", 0.1)
    assert at.number_input(key="train_epochs").value == expected.epochs  # the form shows them again
