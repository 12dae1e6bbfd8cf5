"""Export bundles and saved runs for every kind of data: images, text, time series, anomaly detection.

One small model per family is trained once per module (a few epochs on generated data) and exported
once (``family``). The tests then use the bundle every way a user can: ``predict.py`` in a fresh
``python -I`` process (no ``builder`` importable) on the bundle's own sample input and on other
input, ``read_bundle``, ``model.py`` with the weights, and the saved run. Every answer must equal
``TrainedModel.predict``: the same columns in the same order, the same labels, numbers within 1e-5.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from builder.data import DataSpec, read_table
from builder.data.images import read_image_zip
from builder.errors import BundleError, DataError
from builder.export import (
    BUNDLE_MODULES,
    PARITY_BATCHES,
    BundleReport,
    bundle_samples,
    load_trained,
    read_bundle,
    sample_inputs,
    save_trained,
    write_bundle,
)
from builder.pipeline import train_model
from builder.safezip import open_zip, safe_extract
from builder.train import TrainConfig
from builder.trained import TrainedModel
from tests.image_fixtures import digit_images, image_bytes, make_digits_zip, make_zip
from tests.tabular_fixtures import TARGET, make_messy_table
from tests.test_data_text import make_text_table
from tests.test_data_timeseries import make_series

FAMILIES = ("images-cnn", "text-transformer", "text-lstm", "text-mlp", "series-lstm", "series-transformer",
            "anomaly-autoencoder")  # text-mlp: EmbeddingBag over a bag of n-grams
TOLERANCE = 1e-5


@dataclass
class Family:
    """One trained model, the raw data it learned from, its bundle (report, bytes) and the bundle unpacked."""

    name: str
    data: object  # a DataFrame, or the image zip's bytes
    trained: TrainedModel
    report: BundleReport
    zip_bytes: bytes
    folder: Path

    @property
    def kind(self) -> str:
        return self.trained.kind


def _config(**overrides) -> TrainConfig:
    return TrainConfig(**{"epochs": 3, "batch_size": 32, "lr": 3e-3, "device": "cpu", "seed": 1, **overrides})


def _train(name: str) -> tuple[object, TrainedModel, object]:
    """(raw data, trained model, sample data for write_bundle)."""
    kind, family = name.split("-")
    if kind == "images":
        data = make_digits_zip(n_per_class=16, classes=(0, 1, 2))
        trained = train_model(data, DataSpec(None, "multiclass", [], kind="images"), _config(), family=family)
        return data, trained, read_image_zip(data)
    if kind == "text":
        data = make_text_table(n=240)
        spec = DataSpec("topic", "multiclass", ["text"], kind="text", options={"text_column": "text"})
        return data, train_model(data, spec, _config(epochs=2), family=family), data
    if kind == "series":
        data = make_series(n=160)
        spec = DataSpec("sales", "forecast", ["sales"], kind="series",
                        options={"time_column": "date", "window": 14, "horizon": 7})
        return data, train_model(data, spec, _config(), family=family), data
    data = make_messy_table(n=300, seed=2).drop(columns=[TARGET])
    spec = DataSpec(None, "anomaly", list(data.columns))
    return data, train_model(data, spec, _config(), family=family), data


@pytest.fixture(scope="module")
def families(tmp_path_factory) -> dict[str, Family]:
    out = {}
    for name in FAMILIES:
        data, trained, sample = _train(name)
        folder = tmp_path_factory.mktemp(name)
        report = write_bundle(trained, folder / "model.zip", sample_rows=sample)
        with open_zip(folder / "model.zip") as zf:
            safe_extract(zf, folder / "unpacked")
        out[name] = Family(name, data, trained, report, (folder / "model.zip").read_bytes(), folder / "unpacked")
    return out


def run_predict_script(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """The bundle's predict.py in a fresh, isolated Python: neither the repo nor PYTHONPATH can supply builder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run([sys.executable, "-I", "predict.py", *args], cwd=folder, capture_output=True,
                          text=True, timeout=120, env=env)


def predict_csv(folder: Path, *args: str) -> pd.DataFrame:
    result = run_predict_script(folder, *args)
    assert result.returncode == 0, result.stderr
    return pd.read_csv(io.StringIO(result.stdout))


def assert_same_predictions(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """A predictions CSV read back equals the app's frame: columns, order, labels, numbers within 1e-5."""
    assert list(got.columns) == list(expected.columns)
    assert len(got) == len(expected) > 0
    for column in expected.columns:
        want = expected[column]
        if pd.api.types.is_datetime64_any_dtype(want):
            assert (pd.to_datetime(got[column]).to_numpy() == want.to_numpy()).all(), column
        elif pd.api.types.is_float_dtype(want):
            np.testing.assert_allclose(got[column].to_numpy(float), want.to_numpy(float), rtol=0, atol=TOLERANCE,
                                       err_msg=column)
        else:  # labels, file names, is_anomaly
            assert got[column].astype(str).tolist() == want.astype(str).tolist(), column


def max_difference(got: pd.DataFrame, expected: pd.DataFrame) -> float:
    numbers = [c for c in expected.columns if pd.api.types.is_float_dtype(expected[c])]
    if not numbers:
        return 0.0
    return float(np.abs(got[numbers].to_numpy(float) - expected[numbers].to_numpy(float)).max())


def model_inputs(item: Family) -> np.ndarray:
    """Real preprocessed inputs of the family's data (images, texts, windows or rows)."""
    sample = read_image_zip(item.data) if item.kind == "images" else item.data
    return sample_inputs(item.trained, sample)


def app_input(item: Family) -> object:
    """Raw input for TrainedModel.predict beyond the bundle's sample: all texts, the whole history..."""
    if item.kind == "images":
        return read_image_zip(item.data)
    return item.data


# --------------------------------------------------------------------------------------------------
# What each bundle holds
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FAMILIES)
def test_bundle_holds_the_modules_of_its_kind_and_a_sample(families, name):
    item = families[name]
    names = {f.name for f in item.report.files}
    kind = "table" if item.kind == "table" else item.kind
    for module in BUNDLE_MODULES[kind]:
        assert module in names
        assert (item.folder / module).read_bytes() == (Path("builder/data") / module).read_bytes()  # verbatim
    assert {"README.md", "predict.py", "preprocess.json", "model.onnx", "model.safetensors", "model.py",
            "spec.json", "metrics.json", "requirements.txt", "bundle.json"} <= names
    assert all(f.size > 0 and f.purpose for f in item.report.files)
    manifest = json.loads((item.folder / "bundle.json").read_text())
    assert manifest["kind"] == item.kind and manifest["task"] == item.trained.task
    assert manifest["format_version"] == 2 if item.kind != "table" else manifest["format_version"] == 1
    assert tuple(manifest["input_shape"]) == item.trained.input_shape
    assert json.loads((item.folder / "preprocess.json").read_text()) == item.trained.preprocessor.to_dict()
    requirements = (item.folder / "requirements.txt").read_text()
    assert ("Pillow==" in requirements) == (item.kind == "images")
    if item.kind == "images":
        samples = sorted(p.name for p in (item.folder / "samples").iterdir())
        assert len(samples) == 5 and manifest["sample"] == [f"samples/{s}" for s in samples]
        labels = read_image_zip(item.data).labels
        assert {labels[int(s[4:9])] for s in samples} == {"0", "1", "2"}  # one image of each class first
        assert "read.py" not in names
    else:
        sample = read_table(item.folder / "sample_input.csv")
        assert TARGET not in sample.columns and "topic" not in sample.columns
        assert len(sample) >= (14 if item.kind == "series" else 5)


@pytest.mark.parametrize("name", FAMILIES)
def test_bundle_modules_import_standalone_without_the_app(families, name):
    item = families[name]
    modules = [m.removesuffix(".py") for m in BUNDLE_MODULES[item.kind]]
    code = ("import sys; sys.path.insert(0, '.'); import " + ", ".join(modules) + ", predict; "
            "assert not [m for m in sys.modules if m.split('.')[0] == 'builder'], 'builder was imported'; "
            "assert not [m for m in ('torch', 'sklearn', 'streamlit') if m in sys.modules]; "
            "print(type(predict.load_preprocessor()).__name__)")
    result = subprocess.run([sys.executable, "-I", "-c", code], cwd=item.folder, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == type(item.trained.preprocessor).__name__


@pytest.mark.parametrize("name", FAMILIES)
def test_onnx_agrees_with_torch_at_every_batch_size_and_on_real_data(families, name):
    import onnxruntime as ort

    item = families[name]
    assert item.report.parity_max_diff < TOLERANCE
    X = model_inputs(item)
    assert item.report.parity_rows == sum(PARITY_BATCHES) + len(X)
    session = ort.InferenceSession(str(item.folder / "model.onnx"), providers=["CPUExecutionProvider"])
    for n in (1, 3, 7, len(X)):
        got = session.run(None, {"features": X[:n]})[0]
        assert got.shape == (n, item.trained.n_outputs)
        assert np.abs(got - item.trained.predict_outputs(X[:n])).max() < TOLERANCE


# --------------------------------------------------------------------------------------------------
# predict.py in a fresh process equals TrainedModel.predict
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in FAMILIES if not n.startswith("images")])
def test_predict_script_on_the_sample_input_matches_the_app(families, name):
    item = families[name]
    got = predict_csv(item.folder, "sample_input.csv")
    expected = item.trained.predict(read_table(item.folder / "sample_input.csv"))
    assert_same_predictions(got, expected)
    if item.trained.task == "forecast":
        assert list(got.columns) == ["date", "prediction"] and len(got) == 7
    if item.trained.task == "anomaly":
        assert list(got.columns) == ["anomaly_score", "is_anomaly"]


@pytest.mark.parametrize("name", [n for n in FAMILIES if not n.startswith("images")])
def test_predict_script_on_the_whole_data_matches_the_app(families, name, tmp_path):
    item = families[name]
    path = tmp_path / "input.csv"
    item.data.to_csv(path, index=False)
    got = predict_csv(item.folder, str(path))
    assert_same_predictions(got, item.trained.predict(read_table(path)))
    assert len(got) == (7 if item.kind == "series" else len(item.data))


def test_predict_script_reads_a_folder_of_images(families, tmp_path):
    item = families["images-cnn"]
    got = predict_csv(item.folder, "samples")
    names = sorted(p.name for p in (item.folder / "samples").iterdir())
    expected = item.trained.predict([(item.folder / "samples" / n).read_bytes() for n in names], files=names)
    assert_same_predictions(got, expected)
    assert list(got.columns) == ["file", "prediction", "probability_0", "probability_1", "probability_2"]
    # Nested folders, hidden files and other files: the images are found, the rest skipped.
    folder = tmp_path / "photos"
    (folder / "a" / "b").mkdir(parents=True)
    (folder / ".hidden").mkdir()
    images = digit_images(n_per_class=2, classes=(1, 2))
    files = {"top.png": images[0][1], "a/one.jpg": images[1][1], "a/b/two.bmp": images[2][1], "a/b/z.gif": images[3][1]}
    for name, image in files.items():
        fmt = {".png": "PNG", ".jpg": "JPEG", ".bmp": "BMP", ".gif": "GIF"}[Path(name).suffix]
        (folder / name).write_bytes(image_bytes(image, fmt))
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden" / "x.png").write_bytes(image_bytes(images[0][1]))
    (folder / "a" / ".DS_Store").write_bytes(b"\x00")
    got = predict_csv(item.folder, str(folder))
    names = sorted(files)
    expected = item.trained.predict([(folder / n).read_bytes() for n in names], files=names)
    assert_same_predictions(got, expected)
    # One image file.
    got = predict_csv(item.folder, str(folder / "a" / "one.jpg"))
    assert_same_predictions(got, item.trained.predict([(folder / "a" / "one.jpg").read_bytes()], files=["one.jpg"]))


def test_predict_script_reads_a_zip_of_images_like_the_app(families, tmp_path):
    item = families["images-cnn"]
    path = tmp_path / "digits.zip"
    path.write_bytes(item.data)  # class folders at several depths, mixed formats, junk files
    got = predict_csv(item.folder, str(path))
    images = read_image_zip(item.data)
    assert_same_predictions(got, item.trained.predict(images))  # file = the member path, in path order
    assert got["file"].tolist() == images.paths and len(got) == 48


@pytest.mark.parametrize(("members", "message"), [
    ({"../evil.png": b"x"}, "points outside the folder"),
    ({"/abs/evil.png": b"x"}, "absolute"),
    ({"readme.txt": b"hello"}, "holds no PNG, JPEG, BMP or GIF image"),
])
def test_predict_script_refuses_unsafe_or_empty_zips(families, tmp_path, members, message):
    path = tmp_path / "bad.zip"
    path.write_bytes(make_zip(members))
    result = run_predict_script(families["images-cnn"].folder, str(path))
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_predict_script_refuses_a_zip_bomb_member(families, tmp_path):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.png", b"\x00" * (3 * 1024**2))  # compresses ~1000x
    result = run_predict_script(families["images-cnn"].folder, str(path))
    assert result.returncode == 2 and "too large for one image" in result.stderr


@pytest.mark.parametrize(("name", "content", "message"), [
    ("images-cnn", "table.csv", "is not an image"),
    ("images-cnn", "missing-folder", "does not exist"),
    ("images-cnn", "damaged.png", "damaged"),
    ("text-lstm", "no-text-column.csv", "holds the texts"),
    ("series-lstm", "short-history.csv", "Give at least 14 rows of history"),
    ("anomaly-autoencoder", "folder", "is a folder"),
])
def test_predict_script_explains_bad_input_in_one_sentence(families, tmp_path, name, content, message):
    item = families[name]
    path = tmp_path / content
    if content == "table.csv":
        path.write_text("a,b\n1,2\n")
    elif content == "damaged.png":
        path.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    elif content == "no-text-column.csv":
        path.write_text("words,other\nhello there,1\n")
    elif content == "short-history.csv":
        read_table(item.folder / "sample_input.csv").head(5).to_csv(path, index=False)
    elif content == "folder":
        path.mkdir()
    result = run_predict_script(item.folder, str(path))
    assert result.returncode == 2, result.stdout
    assert message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr and not result.stdout


# --------------------------------------------------------------------------------------------------
# read_bundle, model.py and saved runs give identical outputs
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FAMILIES)
def test_read_bundle_predicts_exactly_like_the_app(families, name):
    item = families[name]
    bundle = read_bundle(item.zip_bytes)
    assert bundle.kind == item.kind and bundle.task == item.trained.task
    assert bundle.spec == item.trained.spec and bundle.data_spec == item.trained.data_spec
    raw = app_input(item)
    pd.testing.assert_frame_equal(bundle.predict(raw), item.trained.predict(raw))
    samples = bundle_samples(item.zip_bytes)
    if item.kind == "images":
        names, data = zip(*samples, strict=True)
        pd.testing.assert_frame_equal(bundle.predict(list(data), files=list(names)),
                                      item.trained.predict(list(data), files=list(names)))
    else:
        assert len(samples) >= 5
        pd.testing.assert_frame_equal(bundle.predict(samples), item.trained.predict(samples))


@pytest.mark.parametrize("name", FAMILIES)
def test_model_py_rebuilds_the_network_with_identical_outputs(families, name):
    item = families[name]
    # model.py needs only torch and safetensors; imported under a unique name (imports are global).
    spec = importlib.util.spec_from_file_location(f"bundle_model_{uuid.uuid4().hex}", item.folder / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.load(item.folder / "model.safetensors")
    assert not net.training and module.INPUT_SHAPE == item.trained.input_shape
    assert repr(net) == repr(item.trained.model)
    X = torch.from_numpy(model_inputs(item))
    with torch.inference_mode():
        assert torch.equal(net(X), item.trained.model(X))
    assert "import builder" not in (item.folder / "model.py").read_text()


@pytest.mark.parametrize("name", FAMILIES)
def test_saved_run_round_trip_gives_identical_outputs(families, name, tmp_path):
    item = families[name]
    save_trained(item.trained, tmp_path / "run")
    loaded = load_trained(tmp_path / "run")
    X = torch.from_numpy(model_inputs(item))
    with torch.inference_mode():
        assert torch.equal(loaded.model(X), item.trained.model(X))
    raw = app_input(item)
    pd.testing.assert_frame_equal(loaded.predict(raw), item.trained.predict(raw))
    assert loaded.kind == item.kind and loaded.data_spec == item.trained.data_spec
    assert loaded.preprocessor.to_dict() == item.trained.preprocessor.to_dict()
    assert loaded.info == item.trained.info and loaded.test_results == item.trained.test_results
    assert loaded.metrics == item.trained.metrics


def test_a_saved_run_of_an_older_app_still_loads(families, tmp_path):
    """A table run saved before other kinds existed: format 1, no "kind", no data_spec kind/options."""
    item = families["anomaly-autoencoder"]
    save_trained(item.trained, tmp_path / "run")
    document = json.loads((tmp_path / "run" / "trained.json").read_text())
    assert document["format_version"] == 1 and document["kind"] == "table"
    del document["kind"], document["data_spec"]["kind"], document["data_spec"]["options"]
    (tmp_path / "run" / "trained.json").write_text(json.dumps(document))
    loaded = load_trained(tmp_path / "run")
    pd.testing.assert_frame_equal(loaded.predict(item.data), item.trained.predict(item.data))


def test_a_bundle_of_an_older_app_still_loads(families):
    """A table bundle of format 1 whose manifest has none of the newer keys."""
    item = families["anomaly-autoencoder"]
    manifest = json.loads((item.folder / "bundle.json").read_text())
    for key in ("kind", "input_columns", "preprocess_format", "modules", "sample", "threshold", "threshold_quantile"):
        manifest.pop(key, None)
    del manifest["data_spec"]["kind"], manifest["data_spec"]["options"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(item.zip_bytes)) as src, zipfile.ZipFile(buffer, "w") as dst:
        for member in src.namelist():
            dst.writestr(member, json.dumps(manifest) if member == "bundle.json" else src.read(member))
    bundle = read_bundle(buffer.getvalue())
    pd.testing.assert_frame_equal(bundle.predict(item.data), item.trained.predict(item.data))


def test_an_older_app_is_told_to_update_for_a_newer_kind(families, monkeypatch):
    from builder.export import reader

    monkeypatch.setattr(reader, "BUNDLE_VERSION", 1)
    with pytest.raises(BundleError, match="newer version of the app"):
        read_bundle(families["text-lstm"].zip_bytes)


# --------------------------------------------------------------------------------------------------
# Model card and metrics per task
# --------------------------------------------------------------------------------------------------


def test_forecast_card_and_metrics_compare_with_the_three_naive_forecasts(families):
    item = families["series-lstm"]
    metrics = json.loads((item.folder / "metrics.json").read_text())
    naive = item.trained.info["forecast_baselines"]
    assert set(naive) == {"last value", "seasonal naive", "lagged ridge"}
    for forecast, scores in naive.items():
        assert metrics["forecast_baselines"][forecast] == pytest.approx(scores)
    assert metrics["test"] == pytest.approx(item.trained.metrics["test"])
    assert metrics["input"]["window"] == 14 and metrics["input"]["horizon"] == 7
    card = (item.folder / "README.md").read_text()
    assert "# Model card: forecasting `sales`" in card
    assert "| Last value forecast | Seasonal naive forecast | Lagged ridge forecast |" in card
    assert "next **7 steps** of **sales** (one step = 1 day)" in card
    assert "at least 14 steps" in card and "python predict.py sample_input.csv" in card


def test_anomaly_card_and_metrics_explain_the_threshold(families):
    item = families["anomaly-autoencoder"]
    metrics = json.loads((item.folder / "metrics.json").read_text())
    facts = metrics["anomaly"]
    assert facts["threshold"] == pytest.approx(item.trained.preprocessor.threshold)
    assert facts["quantile"] == 0.99
    for split in ("validation", "test"):
        values = facts["error_percentiles"][split]
        assert values["p50"] <= values["p90"] <= values["p99"] <= values["max"]
    assert "above the threshold" in facts["is_anomaly"]
    assert metrics["baseline"] is None and set(metrics["test"]) == {"reconstruction_error", "flagged_share"}
    card = (item.folder / "README.md").read_text()
    assert "# Model card: finding unusual rows" in card
    assert "`is_anomaly`: `True` when `anomaly_score` is above the threshold" in card
    assert "99% of the validation rows score at or below it" in card and "| Rows | Median |" in card


def test_image_and_text_cards_describe_their_input(families):
    images = (families["images-cnn"].folder / "README.md").read_text()
    assert "# Model card: classifying images" in images and "resized to 16x16 pixels" in images
    assert "python predict.py samples" in images and "PNG, JPEG, BMP or GIF" in images
    metrics = json.loads((families["images-cnn"].folder / "metrics.json").read_text())
    assert metrics["input"] == {"what": "images", "height": 16, "width": 16, "channels": 1, "colour": "grayscale",
                                "formats": ["PNG", "JPEG", "BMP", "GIF"], "classes": ["0", "1", "2"]}
    item = families["text-transformer"]
    text = (item.folder / "README.md").read_text()
    pre = item.trained.preprocessor
    assert "# Model card: predicting `topic` from text" in text and "the column `text`" in text
    assert f"The vocabulary holds {pre.vocab_size:,} tokens" in text and f"first {pre.max_length} tokens" in text
    assert json.loads((item.folder / "metrics.json").read_text())["input"]["text_column"] == "text"


# --------------------------------------------------------------------------------------------------
# Sample data of the wrong kind, and a series sample that is too short
# --------------------------------------------------------------------------------------------------


def test_sample_data_of_the_wrong_kind_is_refused(families, tmp_path):
    with pytest.raises(DataError, match="must be images"):
        write_bundle(families["images-cnn"].trained, tmp_path / "x.zip", sample_rows=pd.DataFrame({"a": [1]}))
    with pytest.raises(DataError, match="must be a table of rows"):
        write_bundle(families["text-lstm"].trained, tmp_path / "x.zip", sample_rows=[("a.png", b"x")])
    assert not (tmp_path / "x.zip").exists()


def _by_date(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(_t=pd.to_datetime(frame["date"])).sort_values("_t").drop(columns="_t")


def _reuse_onnx(item: Family, monkeypatch) -> None:
    """Skip the slow ONNX export: the model is the same, so its exported file is too."""
    from builder.export import writer

    onnx_model = (item.folder / "model.onnx").read_bytes()
    monkeypatch.setattr(writer, "export_onnx", lambda trained, example=None: onnx_model)


def test_a_series_bundle_without_enough_history_says_so(families, tmp_path, monkeypatch):
    item = families["series-lstm"]
    _reuse_onnx(item, monkeypatch)
    report = write_bundle(item.trained, tmp_path / "short.zip", sample_rows=_by_date(item.data).head(6))
    assert any("fewer than the 14 the model reads" in note for note in report.warnings)


def test_images_given_as_name_and_bytes_pairs(families, tmp_path, monkeypatch):
    item = families["images-cnn"]
    _reuse_onnx(item, monkeypatch)
    images = read_image_zip(item.data)
    pairs = [(f"x/{i}.png", data) for i, data in enumerate(images.data[:7])] + [("x/0.png", images.data[8])]
    report = write_bundle(item.trained, tmp_path / "pairs.zip", sample_rows=pairs)
    with zipfile.ZipFile(tmp_path / "pairs.zip") as zf:
        assert sorted(n for n in zf.namelist() if n.startswith("samples/")) == [
            "samples/0.png", "samples/1.png", "samples/2.png", "samples/3.png", "samples/4.png"]
    assert report.parity_rows == sum(PARITY_BATCHES) + 8


@pytest.mark.parametrize("name", ["images-cnn", "series-lstm", "text-lstm"])
def test_the_model_cards_pytorch_recipe_runs_and_matches_the_app(families, name):
    item = families[name]
    card = (item.folder / "README.md").read_text()
    code = card.split("```python\n", 1)[1].split("```", 1)[0]
    (item.folder / "recipe.py").write_text(code + "print(predictions.to_csv(index=False))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}  # no builder on the path
    result = subprocess.run([sys.executable, "recipe.py"], cwd=item.folder, capture_output=True, text=True,
                            timeout=120, env=env)
    (item.folder / "recipe.py").unlink()
    assert result.returncode == 0, result.stderr
    got = pd.read_csv(io.StringIO(result.stdout))
    if item.kind == "images":
        names = sorted(p.name for p in (item.folder / "samples").iterdir())
        expected = item.trained.predict([(item.folder / "samples" / n).read_bytes() for n in names], files=names)
    else:
        expected = item.trained.predict(read_table(item.folder / "sample_input.csv"))
    assert_same_predictions(got, expected)
