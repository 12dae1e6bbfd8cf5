"""``python -m builder train|predict|inspect`` for every kind of data: images, text, forecasts and
anomaly detection (tables with a target are covered by ``test_cli.py``).

One small model per kind is trained once per module (a few epochs on a few hundred rows or 60
images) and shared by the predict and inspect tests; the image model is trained by a real
``python -m builder`` subprocess, the others in-process. Every bad input a kind brings with it ends
with exit code 2 and one plain sentence.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from builder import cli
from builder.cli.args import DEFAULT_HORIZON, DEFAULT_WINDOW
from builder.data.timeseries import WindowSpec
from builder.export import read_bundle
from tests.image_fixtures import make_digits_zip
from tests.tabular_fixtures import TARGET, make_messy_table
from tests.test_data_text import make_text_table
from tests.test_data_timeseries import make_series

REPO = Path(__file__).resolve().parents[1]
CLASSES = (0, 1, 2, 3)  # digits in the image zip: chance accuracy is 0.25
EPOCHS = "6"


# ----------------------------------------------------------------------------------------------
# Data, helpers and the shared models


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every input file the tests read, written the way an analyst would have them."""
    folder = tmp_path_factory.mktemp("cli_families")
    make_digits_zip(folder / "digits.zip", n_per_class=15, classes=CLASSES)  # nested folders, junk files
    make_digits_zip(folder / "one_class.zip", n_per_class=5, classes=(7,))
    make_text_table(n=300, seed=0).to_csv(folder / "texts.csv", index=False)
    texts = make_text_table(n=40, seed=5)
    texts.drop(columns="topic").to_csv(folder / "new_texts.csv", index=False)
    texts.assign(note=texts["text"].str.upper()).to_csv(folder / "two_texts.csv", index=False)
    scored = texts.drop(columns="topic").assign(score=np.linspace(0.5, 9.5, len(texts)).round(2))
    scored.to_csv(folder / "scored_texts.csv", index=False)
    make_series().to_csv(folder / "sales.csv", index=False)  # daily, unsorted, gaps, "$1,234.50"
    make_series().assign(shipped=lambda df: df["date"]).to_csv(folder / "two_dates.csv", index=False)
    short = make_series(n=60)
    short[pd.to_datetime(short["date"]) < pd.Timestamp("2024-01-21")].to_csv(folder / "short_sales.csv", index=False)
    make_messy_table(n=300, seed=1).drop(columns=TARGET).to_csv(folder / "customers.csv", index=False)
    make_messy_table(n=300, seed=1).to_csv(folder / "customers_with_target.csv", index=False)
    make_messy_table(n=40, seed=9).drop(columns=TARGET).to_csv(folder / "new_customers.csv", index=False)
    (folder / "empty_folder").mkdir()
    return folder


def run_cli(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    """Run ``main`` in-process; return the exit code, stdout and stderr."""
    capsys.readouterr()
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def train_in_process(*argv: object) -> dict:
    """Train through ``main`` (a module fixture cannot use capsys): code, stdout, stderr, summary."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["train", *[str(a) for a in argv], "--epochs", EPOCHS, "--device", "cpu"])
    assert code == 0, err.getvalue()
    return {"stdout": out.getvalue(), "stderr": err.getvalue(), "summary": last_json(out.getvalue())}


def last_json(stdout: str) -> dict:
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, stdout  # stdout carries the JSON line only; progress goes to stderr
    return json.loads(lines[-1])


def assert_one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "usage:" not in err
    return lines[0]


def check_summary(summary: dict, bundle: Path, task: str, model: str, epochs: int = int(EPOCHS)) -> None:
    forecast = {"time_column"} if task == "forecast" else set()  # a forecast names its time column
    text = {"text_column"} if "text_column" in summary else set()  # text names the column it read
    assert set(summary) == {"task", "model", "device", "epochs_run", "seconds", "metrics", "baseline",
                            "bundle", *forecast, *text}
    assert summary["task"] == task and summary["model"] == model
    assert summary["device"].startswith("CPU")
    assert 1 <= summary["epochs_run"] <= epochs and summary["seconds"] > 0
    assert summary["bundle"] == str(bundle) and bundle.is_file()


@pytest.fixture(scope="module")
def image_model(files: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The real thing: ``python -m builder train`` on an image zip, no --target, no --model."""
    bundle = tmp_path_factory.mktemp("image_model") / "digits_model.zip"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    train = subprocess.run(
        [sys.executable, "-m", "builder", "train", "--data", str(files / "digits.zip"), "--out", str(bundle),
         "--epochs", "12", "--lr", "0.003", "--device", "cpu"],
        cwd=files, env=env, capture_output=True, text=True, timeout=300,
    )
    assert train.returncode == 0, train.stderr
    return {"bundle": bundle, "summary": last_json(train.stdout), "stderr": train.stderr}


@pytest.fixture(scope="module")
def text_model(files: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    bundle = tmp_path_factory.mktemp("text_model") / "topics.zip"
    run = train_in_process("--data", files / "texts.csv", "--target", "topic", "--out", bundle)
    return {**run, "bundle": bundle}


@pytest.fixture(scope="module")
def forecast_model(files: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    bundle = tmp_path_factory.mktemp("forecast_model") / "sales.zip"
    # No --time-column and no --target: the only column of dates and of numbers are taken.
    run = train_in_process("--data", files / "sales.csv", "--task", "forecast",
                           "--window", "28", "--horizon", "7", "--out", bundle)
    return {**run, "bundle": bundle}


@pytest.fixture(scope="module")
def anomaly_model(files: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    bundle = tmp_path_factory.mktemp("anomaly_model") / "unusual.zip"
    run = train_in_process("--data", files / "customers.csv", "--task", "anomaly", "--out", bundle)
    return {**run, "bundle": bundle}


# ----------------------------------------------------------------------------------------------
# Images


def test_image_zip_trains_a_cnn_without_target(image_model: dict) -> None:
    summary = image_model["summary"]
    check_summary(summary, image_model["bundle"], "multiclass", "cnn", epochs=12)
    assert {"accuracy", "f1_macro"} <= set(summary["metrics"]["test"])
    assert summary["metrics"]["test"]["accuracy"] > 1 / len(CLASSES)  # better than guessing
    assert summary["baseline"]["name"] and "accuracy" in summary["baseline"]["test"]
    assert "epoch 1/12" in image_model["stderr"] and "training images" in image_model["stderr"]


def test_predict_image_zip_folder_and_one_image(capsys: pytest.CaptureFixture, image_model: dict,
                                                files: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "predictions.csv"
    code, out, err = run_cli(capsys, "predict", "--bundle", image_model["bundle"],
                             "--data", files / "digits.zip", "--out", out_file)
    assert code == 0, err
    assert "60 predictions" in out
    predictions = pd.read_csv(out_file, dtype={"prediction": str})
    probability = [f"probability_{c}" for c in CLASSES]
    assert list(predictions.columns) == ["file", "prediction", *probability]
    assert len(predictions) == 15 * len(CLASSES)  # one row per image; the junk files are skipped
    assert predictions["file"].is_unique and predictions["file"].str.endswith(
        (".png", ".jpg", ".jpeg", ".bmp", ".gif")).all()
    assert np.allclose(predictions[probability].sum(axis=1), 1.0)
    truth = predictions["file"].str.split("/").str[-2]  # the class folder of each member
    assert (predictions["prediction"] == truth).mean() > 0.5  # chance is 0.25

    # The same images from a folder (names relative to it) and one image alone agree with the zip.
    import zipfile

    with zipfile.ZipFile(files / "digits.zip") as zf:
        zf.extractall(tmp_path / "unzipped")
    code, _, err = run_cli(capsys, "predict", "--bundle", image_model["bundle"],
                           "--data", tmp_path / "unzipped", "--out", tmp_path / "folder.csv")
    assert code == 0, err
    from_folder = pd.read_csv(tmp_path / "folder.csv", dtype={"prediction": str})
    assert from_folder["file"].tolist() == predictions["file"].tolist()
    assert from_folder["prediction"].tolist() == predictions["prediction"].tolist()

    first = predictions["file"].iloc[0]
    code, out, err = run_cli(capsys, "predict", "--bundle", image_model["bundle"],
                             "--data", tmp_path / "unzipped" / first, "--out", "-")
    assert code == 0, err
    one = pd.read_csv(io.StringIO(out), dtype={"prediction": str})
    assert one["file"].tolist() == [Path(first).name]
    assert one["prediction"].tolist() == predictions["prediction"].iloc[:1].tolist()


# ----------------------------------------------------------------------------------------------
# Text


def test_text_column_trains_a_bag_of_ngrams_mlp_by_default(text_model: dict, capsys: pytest.CaptureFixture,
                                                            files: Path, tmp_path: Path) -> None:
    summary = text_model["summary"]
    check_summary(summary, text_model["bundle"], "multiclass", "mlp")  # a small text set: fastText-style
    assert summary["metrics"]["test"]["accuracy"] > 1 / 3
    assert "TF-IDF" in summary["baseline"]["name"]
    assert summary["text_column"] == "text"
    assert "'text' holds free text" in text_model["stderr"]
    assert "reading the texts in column 'text'" in text_model["stderr"]
    bundle = read_bundle(text_model["bundle"])
    assert bundle.data_spec.kind == "text" and bundle.data_spec.features == ["text"]
    assert bundle.spec.layers[0].type == "EmbeddingBag" and bundle.preprocessor.ngrams == 2

    out_file = tmp_path / "topics.csv"
    code, out, err = run_cli(capsys, "predict", "--bundle", text_model["bundle"],
                             "--data", files / "new_texts.csv", "--out", out_file)
    assert code == 0, err
    predictions = pd.read_csv(out_file)
    assert len(predictions) == 40  # one per row, missing texts included
    assert set(predictions["prediction"]) <= {"finance", "sport", "weather"}
    assert [c for c in predictions.columns if c.startswith("probability_")] == [
        "probability_finance", "probability_sport", "probability_weather"]


# ----------------------------------------------------------------------------------------------
# Forecast


def test_forecast_trains_an_lstm_and_predicts_the_next_steps(forecast_model: dict, capsys: pytest.CaptureFixture,
                                                              files: Path, tmp_path: Path) -> None:
    summary = forecast_model["summary"]
    check_summary(summary, forecast_model["bundle"], "forecast", "lstm")
    assert summary["time_column"] == "date"
    assert "time column: 'date' (the only column of dates)" in forecast_model["stderr"]
    assert "target: 'sales' (the only column of numbers besides the time)" in forecast_model["stderr"]
    assert {"rmse", "mae", "r2"} <= set(summary["metrics"]["test"])
    assert summary["baseline"]["name"] and "rmse" in summary["baseline"]["test"]

    out_file = tmp_path / "forecast.csv"
    code, out, err = run_cli(capsys, "predict", "--bundle", forecast_model["bundle"],
                             "--data", files / "sales.csv", "--out", out_file)
    assert code == 0, err
    assert "7 predictions" in out
    forecast = pd.read_csv(out_file)
    assert list(forecast.columns) == ["date", "prediction"]
    dates = pd.to_datetime(forecast["date"])
    last = pd.to_datetime(pd.read_csv(files / "sales.csv")["date"]).max()
    assert list(dates) == list(pd.date_range(last + pd.Timedelta(days=1), periods=7, freq="D"))
    assert forecast["prediction"].between(50, 250).all()  # sales run ~100-150


# ----------------------------------------------------------------------------------------------
# Anomaly detection


def test_anomaly_trains_an_autoencoder_and_scores_every_row(anomaly_model: dict, capsys: pytest.CaptureFixture,
                                                            files: Path, tmp_path: Path) -> None:
    summary = anomaly_model["summary"]
    check_summary(summary, anomaly_model["bundle"], "anomaly", "autoencoder")
    assert {"reconstruction_error", "flagged_share"} <= set(summary["metrics"]["test"])
    assert summary["baseline"] is None  # nothing to compare a reconstruction error with
    features = read_bundle(anomaly_model["bundle"]).data_spec.features
    assert "customer_id" not in features and {"age", "income", "color"} <= set(features)

    code, out, err = run_cli(capsys, "predict", "--bundle", anomaly_model["bundle"],
                             "--data", files / "new_customers.csv", "--out", "-")
    assert code == 0, err
    scored = pd.read_csv(io.StringIO(out))
    assert list(scored.columns) == ["customer_id", "anomaly_score", "is_anomaly"]  # the ID joins back
    assert len(scored) == 40 and (scored["anomaly_score"] >= 0).all()
    assert scored["is_anomaly"].dtype == bool
    assert "flagged as unusual" in err


def test_anomaly_leaves_a_given_target_out_with_a_warning(capsys: pytest.CaptureFixture, anomaly_model: dict,
                                                          files: Path, tmp_path: Path) -> None:
    spec = tmp_path / "autoencoder.json"
    spec.write_text(json.dumps(read_bundle(anomaly_model["bundle"]).spec.to_dict()))
    code, out, err = run_cli(capsys, "inspect", "--spec", spec, "--data", files / "customers_with_target.csv",
                             "--task", "anomaly", "--target", TARGET, "--json")
    assert code == 0, err
    assert f"{TARGET!r} is left out of the inputs" in err
    table = json.loads(out)
    with_target = read_bundle(anomaly_model["bundle"]).input_shape  # trained without the column
    assert table["input_shape"] == list(with_target) and table["kind"] == "table"


# ----------------------------------------------------------------------------------------------
# inspect


@pytest.mark.parametrize("model, data", [
    ("image_model", ["digits.zip"]),
    ("text_model", ["texts.csv", "--target", "topic"]),
    ("forecast_model", ["sales.csv", "--time-column", "date", "--target", "sales", "--window", "28",
                        "--horizon", "7"]),
    ("anomaly_model", ["customers.csv", "--task", "anomaly"]),
])
def test_inspect_design_on_data_matches_the_trained_bundle(request: pytest.FixtureRequest,
                                                           capsys: pytest.CaptureFixture, files: Path,
                                                           tmp_path: Path, model: str, data: list[str]) -> None:
    bundle_file = request.getfixturevalue(model)["bundle"]
    bundle = read_bundle(bundle_file)
    parameters = sum(p.numel() for p in bundle.model.parameters())

    code, out, err = run_cli(capsys, "inspect", "--bundle", bundle_file, "--json")
    assert code == 0, err
    from_bundle = json.loads(out)
    assert from_bundle["total_parameters"] == parameters
    assert from_bundle["kind"] == bundle.data_spec.kind and from_bundle["layers"][-1]["locked"]

    spec = tmp_path / "design.json"
    spec.write_text(json.dumps(bundle.spec.to_dict()))
    code, out, err = run_cli(capsys, "inspect", "--spec", spec, "--data", files / data[0], *data[1:])
    assert code == 0, err
    assert f"Total parameters: {parameters:,}" in out and "(output, locked)" in out
    noun = {"images": "images", "text": "texts", "series": "windows", "table": "rows"}[bundle.data_spec.kind]
    assert f"Memory to train one batch of 64 {noun}" in out


# ----------------------------------------------------------------------------------------------
# Errors: exit 2, one plain sentence


ERROR_CASES = {
    "forecast without time column names the several date columns": (
        ["train", "--data", "{f}/two_dates.csv", "--task", "forecast", "--target", "sales", "--out", "{t}/m.zip"],
        ["Several columns hold dates ('date', 'shipped')", "--time-column"]),
    "time column that is not dates": (
        ["train", "--data", "{f}/customers_with_target.csv", "--time-column", "age", "--target", "income",
         "--out", "{t}/m.zip"], ["'age' does not hold dates", "signup_date"]),
    "forecast without target lists the number columns": (
        ["train", "--data", "{f}/customers_with_target.csv", "--task", "forecast", "--out", "{t}/m.zip"],
        ["--target", "with numbers are: customer_id, age"]),
    "unknown time column lists the columns": (
        ["train", "--data", "{f}/sales.csv", "--time-column", "day", "--target", "sales", "--out", "{t}/m.zip"],
        ["'day'", "--time-column", "date, sales"]),
    "window too long for the data": (
        ["train", "--data", "{f}/sales.csv", "--time-column", "date", "--target", "sales", "--window", "500",
         "--out", "{t}/m.zip"], ["window=500", "time steps", "lower"]),
    "window of one step": (
        ["train", "--data", "{f}/sales.csv", "--time-column", "date", "--target", "sales", "--window", "1",
         "--out", "{t}/m.zip"], ["--window", "2 or more"]),
    "table family cannot forecast": (
        ["train", "--data", "{f}/sales.csv", "--time-column", "date", "--target", "sales", "--model", "mlp",
         "--out", "{t}/m.zip"], ["does not read a time series", "--model rnn, lstm, gru or transformer"]),
    "anomaly on a zip": (
        ["train", "--data", "{f}/digits.zip", "--task", "anomaly", "--out", "{t}/m.zip"],
        ["--task anomaly needs a table", "digits.zip"]),
    "images with one class": (
        ["train", "--data", "{f}/one_class.zip", "--out", "{t}/m.zip"], ["one class", "'7'"]),
    "binary task on a zip of four classes": (
        ["train", "--data", "{f}/digits.zip", "--task", "binary", "--out", "{t}/m.zip"],
        ["4 classes", "multiclass, not binary"]),
    "sequence family on a zip": (
        ["train", "--data", "{f}/digits.zip", "--model", "lstm", "--out", "{t}/m.zip"],
        ["does not read images", "--model cnn"]),
    "cnn on a table": (
        ["train", "--data", "{f}/texts.csv", "--target", "topic", "--model", "cnn", "--out", "{t}/m.zip"],
        ["A CNN reads images: pass a .zip of image folders"]),
    "one image as training data": (
        ["train", "--data", "{f}/unzipped_image.png", "--out", "{t}/m.zip"], ["is one image", ".zip"]),
    "a folder as training data": (
        ["train", "--data", "{f}/empty_folder", "--out", "{t}/m.zip"], ["is a folder", "zip the class folders"]),
    "text model on a table without text": (
        ["train", "--data", "{f}/customers_with_target.csv", "--target", TARGET, "--model", "transformer",
         "--out", "{t}/m.zip"], ["no column of customers_with_target.csv holds free text", "--model mlp"]),
    "text model on a numeric column": (
        ["train", "--data", "{f}/customers_with_target.csv", "--target", TARGET, "--model", "gru",
         "--text-column", "age", "--out", "{t}/m.zip"], ["'age' holds numbers", "table model"]),
    "several text columns": (
        ["train", "--data", "{f}/two_texts.csv", "--target", "topic", "--model", "transformer",
         "--out", "{t}/m.zip"], ["several text columns (text, note)", "--text-column"]),
    "text column that is the target": (
        ["train", "--data", "{f}/texts.csv", "--target", "topic", "--text-column", "topic", "--out", "{t}/m.zip"],
        ["'topic' is the column to predict"]),
    "a number to predict from text": (
        ["train", "--data", "{f}/scored_texts.csv", "--target", "score", "--out", "{t}/m.zip"],
        ["A text model predicts categories, not numbers", "'score'", "--task binary or multiclass"]),
    "table family with a text column": (
        ["train", "--data", "{f}/texts.csv", "--target", "topic", "--model", "logistic", "--text-column", "text",
         "--out", "{t}/m.zip"], ["reads table columns, not a text column"]),
    "autoencoder for a yes/no task": (
        ["train", "--data", "{f}/customers_with_target.csv", "--target", TARGET, "--model", "autoencoder",
         "--task", "binary", "--out", "{t}/m.zip"], ["Autoencoder", "cannot predict one of two values"]),
    "anomaly with a wrong target lists the columns": (
        ["train", "--data", "{f}/customers.csv", "--task", "anomaly", "--target", "nope", "--out", "{t}/m.zip"],
        ["'nope'", "customer_id"]),
    "inspect a cnn design on a table": (
        ["inspect", "--spec", "{t}/cnn.json", "--data", "{f}/texts.csv", "--target", "topic"], ["A CNN reads images"]),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_exit_2_with_one_plain_sentence(capsys: pytest.CaptureFixture, files: Path, tmp_path: Path,
                                               case: str) -> None:
    argv, expected = ERROR_CASES[case]
    (tmp_path / "cnn.json").write_text(json.dumps({"version": 1, "family": "cnn", "layers": []}))
    if not (files / "unzipped_image.png").exists():
        from PIL import Image

        Image.new("L", (8, 8)).save(files / "unzipped_image.png")
    code, out, err = run_cli(capsys, *[a.format(f=files, t=tmp_path) for a in argv])
    line = assert_one_line_error(code, err)
    for text in expected:
        assert text in line
    assert out == ""
    assert not (tmp_path / "m.zip").exists()


@pytest.mark.parametrize("model, data, expected", [
    ("image_model", "texts.csv", ["This model reads images", "texts.csv", ".zip of images"]),
    ("image_model", "empty_folder", ["holds no images"]),
    ("text_model", "digits.zip", ["This model reads text", "a .zip", "table file"]),
    ("forecast_model", "short_sales.csv", ["the last 28 steps", "covers only"]),
    ("anomaly_model", "texts.csv", ["age"]),
])
def test_predict_errors_name_the_fix(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture,
                                     files: Path, tmp_path: Path, model: str, data: str,
                                     expected: list[str]) -> None:
    bundle = request.getfixturevalue(model)["bundle"]
    code, out, err = run_cli(capsys, "predict", "--bundle", bundle, "--data", files / data,
                             "--out", tmp_path / "p.csv")
    line = assert_one_line_error(code, err)
    for text in expected:
        assert text in line
    assert not (tmp_path / "p.csv").exists()


def test_forecast_defaults_are_the_engines() -> None:
    assert (DEFAULT_WINDOW, DEFAULT_HORIZON) == (WindowSpec.window, WindowSpec.horizon)
