"""The top reasons of each prediction as columns of the predictions file: ``python -m builder predict
--explain [--reasons K]`` and the Predict page's "Add the top reasons for each prediction".

One small yes/no table model with a planted signal column is trained once for the file and exported
as a bundle; the command runs in-process (``builder.cli.main``), as in tests/test_cli.py.
"""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from builder import cli
from builder.cli.args import DEFAULT_REASONS, MAX_REASONS
from builder.data import DataSpec
from builder.export import read_bundle, write_bundle
from builder.export.predictions import REASONS, reasons_refusal, with_reasons
from builder.pipeline import train_model
from builder.train import TrainConfig
from builder.trained import TrainedModel
from tests import kind_fixtures
from tests.kind_fixtures import open_with_run

FEATURES = ["signal", "noise", "color", "region"]
PAGE = "pages/predict.py"
LABEL = "Add the top reasons for each prediction"


def planted_rows(n: int, seed: int) -> pd.DataFrame:
    """Rows whose answer is mostly ``signal``: ``color`` helps a little, the rest is noise."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(50, 10, size=n).round(2)
    color = rng.choice(["red", "green", "blue"], size=n)
    score = (signal - 50) / 4 + 0.8 * (color == "red") + rng.normal(0, 0.3, size=n)
    return pd.DataFrame({
        "customer_id": np.arange(1001, 1001 + n),  # ID-like: kept first, not an input
        "signal": signal,
        "noise": rng.normal(size=n).round(3),
        "color": color,
        "region": rng.choice(["north", "south", "east"], size=n),
        "target": np.where(score > 0.3, "yes", "no"),
    })


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The model (trained once), its bundle and new rows without the target, written as CSV."""
    folder = tmp_path_factory.mktemp("predict_explain")
    table = planted_rows(600, seed=0)
    trained = train_model(table, DataSpec("target", "binary", FEATURES), TrainConfig(epochs=8, device="cpu", seed=0),
                          with_baseline=False)
    bundle = folder / "planted.zip"
    write_bundle(trained, bundle, sample_rows=table.head(20))
    rows = planted_rows(1000, seed=3).drop(columns="target")
    rows.to_csv(folder / "rows.csv", index=False)
    return {"trained": trained, "bundle": bundle, "rows": rows, "csv": folder / "rows.csv", "table": table}


def quick_bundle(trained: TrainedModel, path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bundle without its ONNX copy (exporting and checking it is most of the time a bundle takes, and
    ``predict`` reads the safetensors weights): the same manifest, design, preprocessing and weights."""
    from builder.export import writer

    with monkeypatch.context() as patch:
        patch.setattr(writer, "export_onnx", lambda trained, sample_X: b"(no ONNX copy in this test)")
        patch.setattr(writer, "full_parity", lambda trained, onnx_model, sample_X: (0.0, 0))
        write_bundle(trained, path)
    return path


def run_cli(*argv: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_explain_adds_reasons_that_name_the_planted_column(planted: dict, tmp_path: Path) -> None:
    code, out, err = run_cli("predict", "--bundle", planted["bundle"], "--data", planted["csv"],
                             "--out", tmp_path / "p.csv", "--explain")
    assert code == 0, err
    assert "Wrote 1000 predictions" in out and "found the top 3 reasons of 1000 predictions" in err
    predictions = pd.read_csv(tmp_path / "p.csv")
    assert list(predictions.columns) == ["customer_id", "prediction", "probability_no", "probability_yes",
                                         "reason_1", "reason_2", "reason_3"]
    rows = planted["rows"]
    assert predictions["customer_id"].tolist() == rows["customer_id"].tolist()
    reasons = predictions[["reason_1", "reason_2", "reason_3"]].stack().dropna()  # the non-empty ones
    named = reasons.str.extract(r"^(\w+) = .+ \((raises|lowers)\)$")
    assert named.notna().all().all(), reasons[named[0].isna()].head()
    assert set(named[0]) <= set(FEATURES)  # real input columns, never the ID or the target
    first = predictions["reason_1"].str.split(" = ").str[0]
    assert (first == "signal").mean() > 0.75
    far = (rows["signal"] - 50).abs() > 12  # rows whose signal is far from the typical row's
    assert (first[far] == "signal").mean() > 0.95
    high = int(np.flatnonzero(rows["signal"] > 70)[0])
    assert predictions["reason_1"].iloc[high] == f"signal = {rows['signal'].iloc[high]:g} (raises)"
    # The bundle rebuilt from safetensors gives the reasons of the trained model itself.
    direct = with_reasons(planted["trained"], rows, planted["trained"].predict(rows))
    assert predictions["reason_1"].tolist() == direct["reason_1"].tolist()


def test_reasons_sets_how_many_and_excel_gets_them_too(planted: dict, tmp_path: Path) -> None:
    code, _, err = run_cli("predict", "--bundle", planted["bundle"], "--data", planted["csv"],
                           "--out", tmp_path / "p.xlsx", "--explain", "--reasons", "1", "--keep", "color")
    assert code == 0, err
    excel = pd.read_excel(tmp_path / "p.xlsx")
    assert list(excel.columns) == ["color", "prediction", "probability_no", "probability_yes", "reason_1"]
    code, out, err = run_cli("predict", "--bundle", planted["bundle"], "--data", planted["csv"], "--out", "-",
                             "--explain", "--reasons", "1", "--keep", "color")
    assert code == 0, err
    assert excel["reason_1"].tolist() == pd.read_csv(io.StringIO(out))["reason_1"].tolist()
    assert (DEFAULT_REASONS, MAX_REASONS) == (REASONS, 20)  # the CLI's help says the engine's numbers


@pytest.mark.parametrize("options, words", [
    (["--reasons", "2"], "add --explain"),
    (["--explain", "--reasons", "0"], "--reasons must be a whole number from 1 to 20"),
    (["--explain", "--reasons", "21"], "--reasons must be a whole number from 1 to 20"),
])
def test_wrong_reasons_options_are_one_sentence(planted: dict, tmp_path: Path, options: list[str],
                                                words: str) -> None:
    code, _, err = run_cli("predict", "--bundle", planted["bundle"], "--data", planted["csv"],
                           "--out", tmp_path / "p.csv", *options)
    assert words in one_line_error(code, err)
    assert not (tmp_path / "p.csv").exists()


def test_a_thousand_rows_are_explained_in_batches_not_row_by_row(planted: dict) -> None:
    bundle = read_bundle(planted["bundle"])
    rows = planted["rows"]
    predictions = bundle.predict(rows)
    calls = []
    hook = bundle.model.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0])))
    try:
        explained = with_reasons(bundle, rows, predictions)
    finally:
        hook.remove()
    assert list(explained.columns[-3:]) == ["reason_1", "reason_2", "reason_3"] and len(explained) == 1000
    assert len(calls) < len(rows) / 10, len(calls)  # batched passes, never one per row (speed: see the note)


def test_a_forecast_bundle_is_refused_before_predicting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from builder.export.reader import Bundle

    bundle = quick_bundle(kind_fixtures.forecast_run(), tmp_path / "sales.zip", monkeypatch)
    kind_fixtures.series_table().to_csv(tmp_path / "history.csv", index=False)

    def no_predicting(*args: object, **kwargs: object) -> None:
        raise AssertionError("predicted before refusing --explain")

    monkeypatch.setattr(Bundle, "predict", no_predicting)
    code, _, err = run_cli("predict", "--bundle", bundle, "--data", tmp_path / "history.csv",
                           "--out", tmp_path / "p.csv", "--explain")
    line = one_line_error(code, err)
    assert "this is a forecast" in line and "leave out --explain" in line
    assert not (tmp_path / "p.csv").exists()


def test_only_table_and_text_models_that_predict_a_class_or_a_number_have_reasons() -> None:
    for kind, task in [("table", "binary"), ("table", "regression"), ("text", "multiclass")]:
        assert reasons_refusal(kind, task) is None
    for kind, task, what in [("images", "multiclass", "an image model"), ("series", "forecast", "a forecast"),
                             ("table", "anomaly", "an anomaly model")]:
        assert what in reasons_refusal(kind, task)


def test_a_text_bundle_gives_words_as_reasons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = quick_bundle(kind_fixtures.text_run(), tmp_path / "topics.zip", monkeypatch)
    kind_fixtures.text_table().head(20).drop(columns="topic").to_csv(tmp_path / "texts.csv", index=False)
    code, _, err = run_cli("predict", "--bundle", bundle, "--data", tmp_path / "texts.csv", "--out",
                           tmp_path / "p.csv", "--explain", "--reasons", "2")
    assert code == 0, err
    predictions = pd.read_csv(tmp_path / "p.csv")
    assert list(predictions.columns[-2:]) == ["reason_1", "reason_2"] and len(predictions) == 20
    assert predictions["reason_1"].str.match(r"^'.+' \((raises|lowers)\)$").all()


def test_the_predict_page_adds_the_reasons_when_asked(app, builder_home, planted: dict,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from pages.components import predict_view

    downloaded: list[pd.DataFrame] = []  # what the CSV download button is given
    csv = predict_view.predictions_csv
    monkeypatch.setattr(predict_view, "predictions_csv", lambda table: downloaded.append(table) or csv(table))
    at = open_with_run(app, builder_home, planted["trained"], PAGE)
    box = next(c for c in at.checkbox if c.label == LABEL)
    assert box.value is False and "reason_1" in box.help
    rows = planted["rows"].head(40)
    uploader = next(u for u in at.get("file_uploader") if u.proto.id and "rows" in u.proto.id)
    at = uploader.upload("rows.csv", rows.to_csv(index=False).encode(), "text/csv").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "reason_1" not in at.dataframe[0].value.columns  # off by default

    at = next(c for c in at.checkbox if c.label == LABEL).check().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown = at.dataframe[0].value
    assert shown.columns[0] == "customer_id"
    assert {"reason_1", "reason_2", "reason_3"} <= set(shown.columns)
    expected = with_reasons(planted["trained"], rows, planted["trained"].predict(rows))
    assert shown["reason_1"].tolist() == expected["reason_1"].tolist()
    assert [b.label for b in at.get("download_button")] == ["Download predictions (CSV)",
                                                            "Download predictions (Excel)"]
    assert list(downloaded[-1].columns) == list(shown.columns[:7])  # the download: the table's own columns
    assert downloaded[-1]["reason_2"].tolist() == shown["reason_2"].tolist()

    at = at.radio(key="predict_mode").set_value("Fill in one row").run()  # one row: its reasons in words
    assert not at.exception and not at.error, at.exception
    assert any(c.value.startswith("Nothing pushed it") for c in at.caption)  # the form starts at the typical row
    at = next(n for n in at.number_input if n.label == "signal").set_value(80.0).run()
    assert not at.exception and not at.error, at.exception
    why = next(c.value for c in at.caption if c.value.startswith("What pushed it most: "))
    assert why.startswith("What pushed it most: signal = 80 (raises)")
