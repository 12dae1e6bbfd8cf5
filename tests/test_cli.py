"""``python -m builder train|predict|inspect``: the scriptable front end over the app's engine.

Most cases call ``builder.cli.main(argv)`` in-process (fast, captured with ``capsys``); one test runs
the real ``python -m builder train`` and ``predict`` as subprocesses, end to end. Training runs are
few and short (a module-scoped breast-cancer model is shared by the predict and inspect tests).
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets

from builder import cli
from builder.cli.train import ProgressLog
from builder.export import read_bundle
from builder.shapes import infer_shapes
from builder.spec import ModelSpec
from tests.tabular_fixtures import TARGET, make_messy_table

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------
# Data and helpers


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn tables written as CSV the way an analyst would export them."""
    folder = tmp_path_factory.mktemp("cli_data")
    cancer = datasets.load_breast_cancer(as_frame=True).frame  # 569 rows, 30 numbers, target 0/1
    cancer.to_csv(folder / "cancer.csv", index=False)
    datasets.load_diabetes(as_frame=True).frame.to_csv(folder / "diabetes.csv", index=False)
    iris = datasets.load_iris(as_frame=True)
    frame = iris.frame.drop(columns="target")
    frame["species"] = iris.target_names[iris.target]
    frame.to_csv(folder / "iris.csv", index=False)
    make_messy_table(n=400, seed=1).to_csv(folder / "messy.csv", index=False)
    (folder / "empty.csv").write_text("")
    (folder / "not_a_bundle.zip").write_text("this is not a zip archive")
    (folder / "bad_spec.json").write_text('{"version": 1, "family": "mlp", "layers": [')
    (folder / "cnn_spec.json").write_text(json.dumps({"version": 1, "family": "cnn", "layers": []}))
    return folder


SPEC = {"version": 1, "family": "mlp", "layers": [
    {"type": "Linear", "out_features": 32}, {"type": "ReLU"}, {"type": "Dropout", "p": 0.1},
    {"type": "Linear", "out_features": 16}, {"type": "ReLU"},
]}


@pytest.fixture(scope="module")
def spec_file(data_dir: Path) -> Path:
    path = data_dir / "spec.json"
    path.write_text(json.dumps(SPEC))
    return path


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """Run ``main`` in-process; return the exit code, stdout and stderr."""
    capsys.readouterr()  # drop anything printed before
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def assert_one_line_error(code: int, err: str) -> str:
    """Exit code 2 and exactly one plain sentence on stderr: no usage dump, no traceback."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "usage:" not in err
    return lines[0]


@pytest.fixture(scope="module")
def cancer_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One binary model trained through the CLI, shared by the tests that need a bundle."""
    bundle = tmp_path_factory.mktemp("cli_out") / "models" / "cancer.zip"  # folder made by train
    out, err = io.StringIO(), io.StringIO()  # capsys is per test; this fixture is per module
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["train", "--data", str(data_dir / "cancer.csv"), "--target", "target",
                         "--out", str(bundle), "--epochs", "20", "--device", "cpu"])
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue(), "bundle": bundle}


# ----------------------------------------------------------------------------------------------
# Help


def test_help_names_every_command(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for command in ("train", "predict", "inspect", "runs", "serve"):
        assert command in out
    assert "examples:" in out


@pytest.mark.parametrize("command, words", [
    ("train", ["--data", "--target", "--model", "--spec", "--epochs", "--out", "--threshold", "examples:"]),
    ("predict", ["--bundle", "--data", "--out", "prediction", "probability_", "--keep", "--threshold", ".xlsx"]),
    ("inspect", ["--spec", "--bundle", "--json", "locked"]),
    ("serve", ["--bundle", "--host", "127.0.0.1", "--port", "--workers", "/predict", "/docs", "413", "422"]),
])
def test_command_help_is_clear(capsys: pytest.CaptureFixture, command: str, words: list[str]) -> None:
    code, out, err = run_cli(capsys, command, "--help")
    assert code == 0 and not err
    for word in words:
        assert word in out


# ----------------------------------------------------------------------------------------------
# train


def test_train_binary_prints_one_json_line_with_metrics(cancer_run: dict) -> None:
    assert cancer_run["code"] == 0, cancer_run["stderr"]
    stdout_lines = cancer_run["stdout"].strip().splitlines()
    assert len(stdout_lines) == 1  # stdout carries the JSON only; progress goes to stderr
    summary = json.loads(stdout_lines[-1])
    assert set(summary) == {"task", "model", "device", "epochs_run", "seconds", "metrics", "baseline",
                            "bundle"}
    assert summary["task"] == "binary"
    assert summary["model"] == "mlp"
    assert summary["device"].startswith("CPU")
    assert 1 <= summary["epochs_run"] <= 20
    assert summary["seconds"] > 0
    assert summary["metrics"]["test"]["accuracy"] > 0.85
    assert {"f1_macro", "roc_auc"} <= set(summary["metrics"]["test"])
    assert summary["baseline"]["name"] and summary["baseline"]["test"]["accuracy"] > 0.8
    assert summary["bundle"] == str(cancer_run["bundle"])
    assert cancer_run["bundle"].is_file()


def test_train_logs_progress_to_stderr(cancer_run: dict) -> None:
    err = cancer_run["stderr"]
    assert "epoch 1/20" in err and "val_loss" in err
    assert "Traceback" not in err


def test_train_regression_with_linear_family(capsys: pytest.CaptureFixture, data_dir: Path,
                                             tmp_path: Path) -> None:
    bundle = tmp_path / "diabetes.zip"
    code, out, err = run_cli(capsys, "train", "--data", data_dir / "diabetes.csv", "--target", "target",
                             "--model", "linear", "--epochs", "5", "--lr", "0.01", "--out", bundle)
    assert code == 0, err
    summary = last_json(out)
    assert summary["task"] == "regression" and summary["model"] == "linear"
    assert {"rmse", "mae", "r2"} <= set(summary["metrics"]["test"])
    assert {"rmse", "mae"} <= set(summary["baseline"]["test"])
    assert bundle.is_file()

    predictions_file = tmp_path / "predictions.csv"
    code, out, err = run_cli(capsys, "predict", "--bundle", bundle, "--data", data_dir / "diabetes.csv",
                             "--out", predictions_file)
    assert code == 0, err
    predictions = pd.read_csv(predictions_file)
    assert list(predictions.columns) == ["prediction"]
    assert len(predictions) == 442 and predictions["prediction"].notna().all()

    # A number has no decision threshold: --threshold is refused in a sentence, nothing is written.
    code, _, err = run_cli(capsys, "predict", "--bundle", bundle, "--data", data_dir / "diabetes.csv",
                           "--out", tmp_path / "again.csv", "--threshold", "0.7")
    line = assert_one_line_error(code, err)
    assert "--threshold applies only to a yes/no (binary) model" in line and "regression" in line
    assert not (tmp_path / "again.csv").exists()


@pytest.fixture(scope="module")
def messy_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A binary model trained through the CLI on the messy CRM table (it has a customer_id column)."""
    bundle = tmp_path_factory.mktemp("cli_messy") / "messy.zip"
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["train", "--data", str(data_dir / "messy.csv"), "--target", TARGET,
                         "--epochs", "5", "--out", str(bundle)])
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue(), "bundle": bundle}


def messy_rows(n: int = 30) -> pd.DataFrame:
    """Raw rows with holes, an unseen category and no target."""
    rows = make_messy_table(n=n, seed=7).drop(columns=TARGET)
    rows.loc[0, "color"] = "never seen"
    rows.loc[1, "age"] = np.nan
    return rows


def test_train_messy_table_drops_id_like_columns(capsys: pytest.CaptureFixture, messy_run: dict,
                                                tmp_path: Path) -> None:
    assert messy_run["code"] == 0, messy_run["stderr"]
    assert last_json(messy_run["stdout"])["task"] == "binary"
    features = read_bundle(messy_run["bundle"]).data_spec.features
    assert "customer_id" not in features and "source" not in features  # ID-like, constant
    assert {"age", "income", "color"} <= set(features)

    # Raw rows with holes, an unseen category and no target still get one prediction each.
    messy_rows().to_csv(tmp_path / "new.csv", index=False)
    code, out, err = run_cli(capsys, "predict", "--bundle", messy_run["bundle"], "--data", tmp_path / "new.csv",
                             "--out", "-")
    assert code == 0, err
    predictions = pd.read_csv(io.StringIO(out))
    assert len(predictions) == 30
    assert set(predictions["prediction"]) <= {"yes", "no"}
    assert np.allclose(predictions[["probability_no", "probability_yes"]].sum(axis=1), 1.0)


def test_predictions_keep_the_id_like_column_first_to_join_back(capsys: pytest.CaptureFixture, messy_run: dict,
                                                               tmp_path: Path) -> None:
    rows = messy_rows()
    rows["region"] = ["north", "south", "east"] * 10  # another column, not ID-like: left out
    rows.to_csv(tmp_path / "new.csv", index=False)
    code, out, err = run_cli(capsys, "predict", "--bundle", messy_run["bundle"], "--data", tmp_path / "new.csv",
                             "--out", "-")
    assert code == 0, err
    predictions = pd.read_csv(io.StringIO(out))
    assert list(predictions.columns) == ["customer_id", "prediction", "probability_no", "probability_yes"]
    assert predictions["customer_id"].tolist() == rows["customer_id"].tolist()
    assert "kept customer_id beside the predictions" in err
    # Too few rows for the profile to judge (it needs 20): a column named like an ID still counts.
    rows.head(6).to_csv(tmp_path / "short.csv", index=False)
    code, out, err = run_cli(capsys, "predict", "--bundle", messy_run["bundle"], "--data", tmp_path / "short.csv",
                             "--out", "-")
    assert code == 0, err
    assert pd.read_csv(io.StringIO(out)).columns[0] == "customer_id"


def test_predict_keep_names_the_columns_to_keep(capsys: pytest.CaptureFixture, messy_run: dict,
                                               tmp_path: Path) -> None:
    rows = messy_rows()
    rows.to_csv(tmp_path / "new.csv", index=False)
    code, out, err = run_cli(capsys, "predict", "--bundle", messy_run["bundle"], "--data", tmp_path / "new.csv",
                             "--out", "-", "--keep", "color, age")
    assert code == 0, err
    predictions = pd.read_csv(io.StringIO(out), keep_default_na=False)
    assert list(predictions.columns)[:3] == ["color", "age", "prediction"]  # as asked: no customer_id
    assert predictions["color"].tolist() == rows["color"].fillna("").tolist()

    code, out, err = run_cli(capsys, "predict", "--bundle", messy_run["bundle"], "--data", tmp_path / "new.csv",
                             "--out", tmp_path / "p.csv", "--keep", "age,colour")
    line = assert_one_line_error(code, err)
    assert "--keep names 'colour'" in line and "'customer_id'" in line and "'color'" in line
    assert not (tmp_path / "p.csv").exists()


def test_predict_writes_excel_when_the_name_ends_in_xlsx(capsys: pytest.CaptureFixture, messy_run: dict,
                                                        tmp_path: Path) -> None:
    messy_rows().to_csv(tmp_path / "new.csv", index=False)
    code, out, err = run_cli(capsys, "predict", "--bundle", messy_run["bundle"], "--data", tmp_path / "new.csv",
                             "--out", tmp_path / "out" / "predictions.xlsx")
    assert code == 0, err
    assert "Wrote 30 predictions" in out
    excel = pd.read_excel(tmp_path / "out" / "predictions.xlsx")
    code, out, err = run_cli(capsys, "predict", "--bundle", messy_run["bundle"], "--data", tmp_path / "new.csv",
                             "--out", "-")
    csv = pd.read_csv(io.StringIO(out))
    assert list(excel.columns) == list(csv.columns)
    assert excel["customer_id"].tolist() == csv["customer_id"].tolist()
    assert excel["prediction"].tolist() == csv["prediction"].tolist()
    np.testing.assert_allclose(excel["probability_yes"], csv["probability_yes"], rtol=1e-12)


def test_predict_warns_about_values_outside_the_training_range(capsys: pytest.CaptureFixture, messy_run: dict,
                                                              tmp_path: Path) -> None:
    rows = messy_rows()
    rows.loc[4, "visits"] = 9999
    rows.to_csv(tmp_path / "new.csv", index=False)
    code, _, err = run_cli(capsys, "predict", "--bundle", messy_run["bundle"], "--data", tmp_path / "new.csv",
                           "--out", tmp_path / "p.csv")
    assert code == 0, err
    warning = next(line for line in err.splitlines() if "outside what the model saw in training" in line)
    assert "row 1: color 'never seen'" in warning and "row 5: visits 9,999 above" in warning


def test_train_with_spec_uses_the_design(capsys: pytest.CaptureFixture, data_dir: Path, spec_file: Path,
                                         tmp_path: Path) -> None:
    bundle = tmp_path / "designed.zip"
    code, out, err = run_cli(capsys, "train", "--data", data_dir / "iris.csv", "--target", "species",
                             "--spec", spec_file, "--epochs", "3", "--out", bundle)
    assert code == 0, err
    assert last_json(out)["task"] == "multiclass"
    assert read_bundle(bundle).spec.to_dict()["layers"] == ModelSpec.from_dict(SPEC).to_dict()["layers"]


# ----------------------------------------------------------------------------------------------
# predict


def test_predict_one_row_per_input_in_order(capsys: pytest.CaptureFixture, cancer_run: dict,
                                            data_dir: Path, tmp_path: Path) -> None:
    rows = pd.read_csv(data_dir / "cancer.csv")
    shuffled = rows.sample(frac=1.0, random_state=3).drop(columns="target")
    shuffled.to_csv(tmp_path / "shuffled.csv", index=False)
    out_file = tmp_path / "out" / "predictions.csv"
    code, out, err = run_cli(capsys, "predict", "--bundle", cancer_run["bundle"],
                             "--data", tmp_path / "shuffled.csv", "--out", out_file)
    assert code == 0, err
    assert len(out.strip().splitlines()) == 1 and "569 predictions" in out
    predictions = pd.read_csv(out_file)
    assert list(predictions.columns) == ["prediction", "probability_0", "probability_1"]
    assert len(predictions) == len(shuffled)
    assert np.allclose(predictions[["probability_0", "probability_1"]].sum(axis=1), 1.0)
    # Same order as the input: each row's prediction is the bundle's prediction for that row.
    expected = read_bundle(cancer_run["bundle"]).predict(shuffled)
    assert predictions["prediction"].tolist() == expected["prediction"].tolist()
    assert (predictions["prediction"].to_numpy() == rows.loc[shuffled.index, "target"].to_numpy()).mean() > 0.85


def test_predict_keeps_empty_rows_so_rows_line_up(capsys: pytest.CaptureFixture, cancer_run: dict,
                                                  data_dir: Path, tmp_path: Path) -> None:
    rows = pd.read_csv(data_dir / "cancer.csv").drop(columns="target").head(5)
    text = rows.to_csv(index=False).splitlines()
    text.insert(3, "," * (len(rows.columns) - 1))  # a row with no value at all, as Excel exports leave
    (tmp_path / "holes.csv").write_text("\n".join(text) + "\n")
    out_file = tmp_path / "holes-predictions.csv"
    code, _, err = run_cli(capsys, "predict", "--bundle", cancer_run["bundle"], "--data", tmp_path / "holes.csv",
                           "--out", out_file)
    assert code == 0, err
    predictions = pd.read_csv(out_file)
    assert len(predictions) == 6
    expected = read_bundle(cancer_run["bundle"]).predict(rows)["prediction"].tolist()
    assert predictions["prediction"].tolist()[:2] + predictions["prediction"].tolist()[3:] == expected


# ----------------------------------------------------------------------------------------------
# inspect


def test_inspect_spec_prints_the_layer_table(capsys: pytest.CaptureFixture, data_dir: Path,
                                             spec_file: Path) -> None:
    code, out, err = run_cli(capsys, "inspect", "--spec", spec_file, "--data", data_dir / "cancer.csv",
                             "--target", "target")
    assert code == 0, err
    report = infer_shapes(ModelSpec.from_dict(SPEC), (30,), 1)
    total = report.total_params
    assert total == 30 * 32 + 32 + 32 * 16 + 16 + 16 + 1
    assert f"Total parameters: {total:,}" in out
    assert "(output, locked)" in out
    for header in ("Layer", "Settings", "Input", "Output", "Parameters", "Total"):
        assert header in out
    head_line = next(line for line in out.splitlines() if "(output, locked)" in line)
    assert head_line.split()[0] == "6" and head_line.rstrip().endswith(f"{total:,}")
    assert "out_features=32" in out and "Memory to train one batch of 64 rows" in out


def test_inspect_spec_json(capsys: pytest.CaptureFixture, data_dir: Path, spec_file: Path) -> None:
    code, out, err = run_cli(capsys, "inspect", "--spec", spec_file, "--data", data_dir / "iris.csv",
                             "--target", "species", "--batch-size", "32", "--json")
    assert code == 0, err
    table = json.loads(out)
    report = infer_shapes(ModelSpec.from_dict(SPEC), (4,), 3)
    assert table["total_parameters"] == report.total_params
    assert table["memory_bytes_per_batch"] == report.memory_estimate(32)
    layers = table["layers"]
    assert [row["number"] for row in layers] == list(range(1, len(SPEC["layers"]) + 2))
    assert [row["locked"] for row in layers] == [False] * len(SPEC["layers"]) + [True]
    assert layers[0]["input_shape"] == [4] and layers[-1]["output_shape"] == [3]
    assert layers[-1]["running_total"] == report.total_params
    assert [row["parameters"] for row in layers] == [row.n_params for row in report.rows]


def test_inspect_bundle_counts_the_trained_model(capsys: pytest.CaptureFixture, cancer_run: dict) -> None:
    code, out, err = run_cli(capsys, "inspect", "--bundle", cancer_run["bundle"], "--json")
    assert code == 0, err
    model = read_bundle(cancer_run["bundle"]).model
    assert json.loads(out)["total_parameters"] == sum(p.numel() for p in model.parameters())


def test_inspect_without_target_notes_the_assumed_head(capsys: pytest.CaptureFixture, data_dir: Path,
                                                      spec_file: Path) -> None:
    code, out, err = run_cli(capsys, "inspect", "--spec", spec_file, "--data", data_dir / "diabetes.csv")
    assert code == 0, err
    assert "Note: No --target given" in out


def test_inspect_design_with_a_problem_shows_table_then_one_error(capsys: pytest.CaptureFixture,
                                                                  data_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad_layer.json"
    bad.write_text(json.dumps({"version": 1, "family": "mlp",
                               "layers": [{"type": "Linear", "out_features": 8}, {"type": "Dropout", "p": 3}]}))
    code, out, err = run_cli(capsys, "inspect", "--spec", bad, "--data", data_dir / "cancer.csv",
                             "--target", "target")
    line = assert_one_line_error(code, err)
    assert "Layer 2 (Dropout)" in line
    assert "Layer" in out and "(output, locked)" in out


# ----------------------------------------------------------------------------------------------
# Errors: exit 2, one plain sentence


ERROR_CASES = {
    "missing target lists columns": (
        ["train", "--data", "{d}/cancer.csv", "--out", "{t}/m.zip"], ["--target", "mean radius", "target"]),
    "wrong target lists columns": (
        ["train", "--data", "{d}/cancer.csv", "--target", "nope", "--out", "{t}/m.zip"],
        ["'nope'", "mean radius", "worst symmetry"]),
    "unknown option": (
        ["train", "--data", "{d}/cancer.csv", "--target", "target", "--out", "{t}/m.zip", "--colour", "red"],
        ["--colour", "python -m builder train --help"]),
    "bad epochs value": (
        ["train", "--data", "{d}/cancer.csv", "--target", "target", "--out", "{t}/m.zip", "--epochs", "ten"],
        ["--epochs", "whole number", "'ten'"]),
    "epochs out of range": (
        ["train", "--data", "{d}/cancer.csv", "--target", "target", "--out", "{t}/m.zip", "--epochs", "0"],
        ["Epochs must be", "got 0"]),
    "bad choice": (
        ["train", "--data", "{d}/cancer.csv", "--target", "target", "--out", "{t}/m.zip", "--optimizer", "fast"],
        ["--optimizer", "'fast'", "adam"]),
    "missing file": (
        ["train", "--data", "{d}/nowhere.csv", "--target", "target", "--out", "{t}/m.zip"],
        ["nowhere.csv", "does not exist"]),
    "empty file": (
        ["train", "--data", "{d}/empty.csv", "--target", "target", "--out", "{t}/m.zip"], ["empty"]),
    "bad spec json": (
        ["train", "--data", "{d}/cancer.csv", "--target", "target", "--out", "{t}/m.zip",
         "--spec", "{d}/bad_spec.json"], ["bad_spec.json", "not valid JSON"]),
    "cnn on a table": (
        ["train", "--data", "{d}/cancer.csv", "--target", "target", "--out", "{t}/m.zip", "--model", "cnn"],
        ["A CNN reads images: pass a .zip of image folders"]),
    "cnn design on a table": (
        ["train", "--data", "{d}/cancer.csv", "--target", "target", "--out", "{t}/m.zip",
         "--spec", "{d}/cnn_spec.json"], ["A CNN reads images"]),
    "forecast without a time column": (
        ["train", "--data", "{d}/cancer.csv", "--target", "target", "--out", "{t}/m.zip", "--task", "forecast"],
        ["--time-column", "no column of cancer.csv looks like dates"]),
    "family cannot do the task": (
        ["train", "--data", "{d}/cancer.csv", "--target", "target", "--out", "{t}/m.zip", "--model", "linear",
         "--epochs", "1"], ["Linear regression cannot predict one of two values", "--model logistic or mlp"]),
    "damaged image zip as data": (
        ["train", "--data", "{d}/not_a_bundle.zip", "--out", "{t}/m.zip"], ["not a usable image zip"]),
    "bundle not a zip": (
        ["predict", "--bundle", "{d}/not_a_bundle.zip", "--data", "{d}/cancer.csv", "--out", "{t}/p.csv"],
        ["not a model bundle"]),
    "missing bundle": (
        ["predict", "--bundle", "{d}/none.zip", "--data", "{d}/cancer.csv", "--out", "{t}/p.csv"],
        ["none.zip", "does not exist"]),
    "threshold outside 0 to 1": (
        ["train", "--data", "{d}/cancer.csv", "--target", "target", "--out", "{t}/m.zip", "--threshold", "1.5"],
        ["--threshold must be a number between 0 and 1", "got 1.5"]),
    "threshold for several classes": (
        ["train", "--data", "{d}/iris.csv", "--target", "species", "--out", "{t}/m.zip", "--threshold", "0.7"],
        ["--threshold applies only to a yes/no (binary) model", "multiclass"]),
    "predict threshold of 0": (
        ["predict", "--bundle", "{d}/not_a_bundle.zip", "--data", "{d}/cancer.csv", "--out", "{t}/p.csv",
         "--threshold", "0"], ["--threshold must be a number between 0 and 1", "got 0"]),
    "predict threshold not a number": (
        ["predict", "--bundle", "{d}/not_a_bundle.zip", "--data", "{d}/cancer.csv", "--out", "{t}/p.csv",
         "--threshold", "high"], ["--threshold", "must be a number", "'high'"]),
    "predict keep without names": (
        ["predict", "--bundle", "{d}/not_a_bundle.zip", "--data", "{d}/cancer.csv", "--out", "{t}/p.csv",
         "--keep", ","], ["--keep", "column names"]),
    "no command": ([], ["Choose a command"]),
    "unknown command": (["fly"], ["'fly'", "train"]),
    "missing required options": (["predict"], ["--bundle", "--data", "--out"]),
    "inspect spec without data": (["inspect", "--spec", "{d}/spec.json"], ["--data"]),
    "inspect both sources": (
        ["inspect", "--spec", "{d}/spec.json", "--bundle", "{d}/not_a_bundle.zip"], ["either"]),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_exit_2_with_one_plain_sentence(capsys: pytest.CaptureFixture, data_dir: Path,
                                               spec_file: Path, tmp_path: Path, case: str) -> None:
    argv, expected = ERROR_CASES[case]
    argv = [a.format(d=data_dir, t=tmp_path) for a in argv]
    code, out, err = run_cli(capsys, *argv)
    line = assert_one_line_error(code, err)
    for text in expected:
        assert text in line
    assert out == ""
    assert not (tmp_path / "m.zip").exists()


def test_predict_with_missing_columns_names_them(capsys: pytest.CaptureFixture, cancer_run: dict,
                                                 data_dir: Path, tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "predict", "--bundle", cancer_run["bundle"],
                           "--data", data_dir / "iris.csv", "--out", tmp_path / "p.csv")
    assert "mean radius" in assert_one_line_error(code, err)


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture, data_dir: Path, tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "train", "--data", data_dir / "cancer.csv", "--target", "nope",
                           "--out", tmp_path / "m.zip", "--debug")
    assert code == 2
    assert "Traceback" in err and "DataError" in err
    assert err.strip().splitlines()[-1].startswith("There is no column 'nope'")


def test_unexpected_error_is_one_line_pointing_at_debug(capsys: pytest.CaptureFixture, data_dir: Path,
                                                        tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("builder.pipeline.train_model", broken)
    argv = ["train", "--data", data_dir / "cancer.csv", "--target", "target", "--out", tmp_path / "m.zip"]
    code, _, err = run_cli(capsys, *argv)
    assert code == 1
    assert err.strip() == "Unexpected error: RuntimeError: boom (run again with --debug for details)"
    code, _, err = run_cli(capsys, *argv, "--debug")
    assert code == 1 and "Traceback" in err


def test_logging_is_restored_after_a_command(capsys: pytest.CaptureFixture) -> None:
    logger = logging.getLogger("builder")
    before = (list(logger.handlers), logger.level, logger.propagate)
    run_cli(capsys, "fly")
    assert (list(logger.handlers), logger.level, logger.propagate) == before


# ----------------------------------------------------------------------------------------------
# Progress lines


def test_progress_log_throttles_but_keeps_first_and_last(caplog: pytest.LogCaptureFixture) -> None:
    from builder.train import History

    progress = ProgressLog("mlp", interval_s=3600)
    with caplog.at_level(logging.INFO, logger="builder.cli"):
        for epoch in range(1, 6):
            progress.on_epoch_end(epoch, {"epoch": epoch, "epochs": 5, "loss": 0.5, "val_loss": 0.4})
        progress.on_train_end(History())
    shown = [r.getMessage().split(":")[0] for r in caplog.records]
    assert shown == ["epoch 1/5", "epoch 5/5"]

    caplog.clear()
    progress = ProgressLog("mlp", interval_s=3600)
    with caplog.at_level(logging.INFO, logger="builder.cli"):
        for epoch in range(1, 4):  # stopped early at epoch 3 of 10: epoch 3 still shows
            progress.on_epoch_end(epoch, {"epoch": epoch, "epochs": 10, "loss": 0.5, "val_loss": 0.4})
        progress.on_train_end(History())
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["epoch 1/10", "epoch 3/10"]


# ----------------------------------------------------------------------------------------------
# The real thing: python -m builder in a subprocess


def test_python_m_builder_train_then_predict(data_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    bundle = tmp_path / "iris.zip"
    train = subprocess.run(
        [sys.executable, "-m", "builder", "train", "--data", str(data_dir / "iris.csv"),
         "--target", "species", "--epochs", "5", "--out", str(bundle)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert train.returncode == 0, train.stderr
    summary = last_json(train.stdout)
    assert summary["task"] == "multiclass" and summary["epochs_run"] == 5
    assert {"accuracy", "f1_macro"} <= set(summary["metrics"]["test"])
    assert Path(summary["bundle"]).is_file()
    assert "epoch 1/5" in train.stderr

    out_file = tmp_path / "predictions.csv"
    predict = subprocess.run(
        [sys.executable, "-m", "builder", "predict", "--bundle", str(bundle),
         "--data", str(data_dir / "iris.csv"), "--out", str(out_file)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert predict.returncode == 0, predict.stderr
    assert len(predict.stdout.strip().splitlines()) == 1
    predictions = pd.read_csv(out_file)
    probability = ["probability_setosa", "probability_versicolor", "probability_virginica"]
    assert list(predictions.columns) == ["prediction", *probability]
    assert len(predictions) == 150
    assert np.allclose(predictions[probability].sum(axis=1), 1.0)
    # Input order: the argmax of each row's probabilities is that row's prediction.
    assert (predictions[probability].to_numpy().argmax(axis=1)
            == predictions["prediction"].map({"setosa": 0, "versicolor": 1, "virginica": 2})).all()

    # A real process keeps the error contract too (cheap: an unknown command loads no torch).
    failing = subprocess.run([sys.executable, "-m", "builder", "fly"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
    assert failing.returncode == 2 and failing.stdout == ""
    assert failing.stderr.count("\n") == 1 and "'fly'" in failing.stderr


# ----------------------------------------------------------------------------------------------
# Nothing left behind (issue 11, item 7)


def test_a_refused_command_leaves_no_output_folder(capsys: pytest.CaptureFixture, data_dir: Path,
                                                   tmp_path: Path) -> None:
    out = tmp_path / "new" / "folder" / "model.zip"
    code, _, err = run_cli(capsys, "train", "--data", tmp_path / "missing.csv", "--out", out)
    assert_one_line_error(code, err)
    code, _, err = run_cli(capsys, "train", "--data", data_dir / "cancer.csv", "--target", "nope", "--out", out)
    assert_one_line_error(code, err)
    assert not (tmp_path / "new").exists()  # the folder waits for something to write


def test_an_output_under_a_file_is_refused_at_once(capsys: pytest.CaptureFixture, data_dir: Path,
                                                    tmp_path: Path) -> None:
    blocker = tmp_path / "report.txt"
    blocker.write_text("a file, not a folder")
    code, _, err = run_cli(capsys, "train", "--data", data_dir / "cancer.csv", "--target", "target",
                           "--out", blocker / "model.zip")
    assert "is a file, not a folder" in assert_one_line_error(code, err)


def test_an_export_removes_the_partial_bundle_a_killed_export_left(tmp_path: Path) -> None:
    import os
    import time

    from builder.data import DataSpec, load_sample
    from builder.export import write_bundle
    from builder.export.writer import STALE_PARTIAL_S
    from builder.pipeline import train_model
    from builder.train import TrainConfig

    iris = load_sample("iris")
    trained = train_model(iris, DataSpec("species", "multiclass", [c for c in iris.columns if c != "species"]),
                          TrainConfig(epochs=2), with_baseline=False)

    stale, fresh = tmp_path / ".bundle-abc123.zip.tmp", tmp_path / ".bundle-def456.zip.tmp"
    stale.write_bytes(b"half a zip")
    fresh.write_bytes(b"an export in progress")
    old = time.time() - STALE_PARTIAL_S - 60
    os.utime(stale, (old, old))
    write_bundle(trained, tmp_path / "again.zip")
    assert not stale.exists() and fresh.exists() and (tmp_path / "again.zip").is_file()
