"""builder.export and builder.codegen: bundles that predict elsewhere exactly as the app does.

ONNX export costs a few seconds, so one model per task is trained and exported once per module
(``exported``); the tests then read that zip in every way a user can: ``read_bundle``, the
standalone ``predict.py`` in a fresh Python process, ``model.py``, and onnxruntime directly.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import importlib.util
import io
import json
import re
import shlex
import shutil
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

from builder import export
from builder.codegen import constructor_arguments, model_source
from builder.data import DataSpec, read_table
from builder.data.preprocess import Preprocessor
from builder.errors import BuilderError, BundleError
from builder.export import (
    BundleReport,
    load_trained,
    load_weights,
    parity_check,
    read_bundle,
    save_trained,
    write_bundle,
    writer,
)
from builder.layers import LAYERS, token_input
from builder.model import build_model
from builder.pipeline import train_model
from builder.safezip import open_zip, safe_extract
from builder.shapes import infer_shapes
from builder.spec import LayerSpec, ModelSpec
from builder.train import TrainConfig
from builder.trained import TrainedModel
from tests.tabular_fixtures import TARGET, make_messy_table

TASKS = ("binary", "multiclass", "regression")
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Exported:
    """One trained model per task, its bundle (path and bytes), the same bundle unpacked."""

    task: str
    table: pd.DataFrame
    trained: TrainedModel
    report: BundleReport
    zip_bytes: bytes
    folder: Path


def _train(task: str) -> tuple[pd.DataFrame, TrainedModel]:
    table = make_messy_table(n=240, seed=3, task=task)
    features = [c for c in table.columns if c != TARGET]
    config = TrainConfig(epochs=4, batch_size=32, lr=3e-3, device="cpu", seed=1)
    return table, train_model(table, DataSpec(TARGET, task, features), config)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Exported]:
    out = {}
    for task in TASKS:
        table, trained = _train(task)
        folder = tmp_path_factory.mktemp(f"bundle-{task}")
        path = folder / "model.zip"
        report = write_bundle(trained, path, sample_rows=table.head(200))
        with open_zip(path) as zf:
            safe_extract(zf, folder / "unpacked")
        out[task] = Exported(task, table, trained, report, path.read_bytes(), folder / "unpacked")
    return out


def messy_new_rows(table: pd.DataFrame, with_target: bool) -> pd.DataFrame:
    """Raw rows as a user brings them: holes, 'n/a', categories and dates never seen, odd flags."""
    rows = table.tail(12).reset_index(drop=True).copy()
    rows.loc[0, "age"] = np.nan
    rows.loc[1, "income"] = "n/a"
    rows.loc[2, "color"] = "turquoise"  # unseen category
    rows.loc[3, "color"] = None
    rows.loc[4, "member"] = None
    rows.loc[5, "signup_date"] = None
    rows.loc[6, "referral_code"] = "NEWCODE"
    rows.loc[7, "visits"] = 9999  # far outside the training range
    rows.loc[8, ["age", "income", "color", "member", "visits"]] = [np.nan, None, None, None, np.nan]
    rows.loc[9, "source"] = "email"  # a constant column gets a new value
    return rows if with_target else rows.drop(columns=[TARGET])


# --------------------------------------------------------------------------------------------------
# The bundle's contents
# --------------------------------------------------------------------------------------------------

EXPECTED_FILES = {
    "README.md", "predict.py", "preprocess.py", "read.py", "xlsx_check.py", "preprocess.json", "model.onnx", "model.safetensors",
    "model.py", "spec.json", "metrics.json", "requirements.txt", "sample_input.csv", "bundle.json",
    "serve.py", "requirements-serve.txt", "Dockerfile",
}


@pytest.mark.parametrize("task", TASKS)
def test_bundle_holds_every_file_with_its_purpose(exported, task):
    item = exported[task]
    names = {f.name for f in item.report.files}
    assert names == EXPECTED_FILES
    assert all(f.size > 0 and f.purpose for f in item.report.files)
    assert item.report.path.stat().st_size == len(item.zip_bytes)
    with zipfile.ZipFile(io.BytesIO(item.zip_bytes)) as zf:
        assert set(zf.namelist()) == EXPECTED_FILES
        for f in item.report.files:
            assert zf.getinfo(f.name).file_size == f.size


def test_preprocess_py_is_the_apps_file_verbatim(exported):
    for name in ("preprocess.py", "read.py", "xlsx_check.py"):
        copied = (exported["binary"].folder / name).read_bytes()
        assert copied == (ROOT / "builder" / "data" / name).read_bytes()
    for name in ("predict.py", "serve.py", "Dockerfile"):
        assert (exported["binary"].folder / name).read_bytes() == (ROOT / "builder" / "bundle_files" / name).read_bytes()


@pytest.mark.parametrize("task", TASKS)
def test_manifest_and_json_members(exported, task):
    item = exported[task]
    manifest = json.loads((item.folder / "bundle.json").read_text())
    assert manifest["format"] == export.BUNDLE_FORMAT and manifest["format_version"] == 1
    assert manifest["task"] == task and manifest["target"] == TARGET
    assert manifest["features"] == [c for c in item.table.columns if c != TARGET]
    assert manifest["classes"] == item.trained.preprocessor.classes
    assert tuple(manifest["input_shape"]) == item.trained.input_shape
    assert json.loads((item.folder / "spec.json").read_text()) == item.trained.spec.to_dict()
    assert json.loads((item.folder / "preprocess.json").read_text()) == item.trained.preprocessor.to_dict()
    metrics = json.loads((item.folder / "metrics.json").read_text())
    assert metrics["test"] == pytest.approx(item.trained.metrics["test"])
    assert metrics["baseline"]["metrics"] == pytest.approx(item.trained.baseline.metrics)
    assert metrics["history"]["epochs_run"] == item.trained.history.epochs_run
    sample = pd.read_csv(item.folder / "sample_input.csv")
    assert len(sample) == 5 and TARGET not in sample.columns


def test_requirements_pin_our_versions(exported):
    import onnxruntime

    text = (exported["binary"].folder / "requirements.txt").read_text()
    active = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert active == [f"numpy=={np.__version__}", f"pandas=={pd.__version__}",
                      f"onnxruntime=={onnxruntime.__version__}"]
    assert "# openpyxl" in text and "# pyarrow" in text


def test_model_card_covers_data_metrics_limits_and_use(exported):
    card = (exported["binary"].folder / "README.md").read_text()
    for heading in ("## What it does", "## Data", "## How good it is", "## Limits", "## How to use it"):
        assert heading in card
    assert "Logistic regression (scikit-learn)" in card and "Accuracy" in card
    assert "python predict.py" in card and "model.onnx" in card and "from model import load" in card
    assert "| `income` | numeric |" in card
    # A yes/no model states its decision threshold; other tasks have none.
    assert "Decision threshold: **0.5** (0.5 unless one was chosen)" in card
    for task in ("multiclass", "regression"):
        assert "Decision threshold" not in (exported[task].folder / "README.md").read_text()
    state = json.loads((exported["binary"].folder / "preprocess.json").read_text())
    assert state["decision_threshold"] == 0.5


@pytest.mark.parametrize("task", TASKS)
def test_no_member_is_a_pickle(exported, task):
    with zipfile.ZipFile(io.BytesIO(exported[task].zip_bytes)) as zf:
        for name in zf.namelist():
            data = zf.read(name)
            # Pickle protocol 2+ starts with 0x80; torch.save writes a zip holding data.pkl.
            assert not data.startswith(b"\x80"), name
            assert not data.startswith(b"PK\x03\x04"), name
            assert b"data.pkl" not in data[:4096], name
            assert not name.endswith((".pkl", ".pickle", ".pt", ".pth", ".joblib")), name


def test_weights_carry_the_spec_in_their_metadata(exported):
    item = exported["multiclass"]
    state, metadata = load_weights((item.folder / "model.safetensors").read_bytes())
    assert json.loads(metadata["spec"]) == item.trained.spec.to_dict()
    assert metadata["n_outputs"] == "3"
    for key, value in item.trained.model.state_dict().items():
        assert torch.equal(state[key], value)


# --------------------------------------------------------------------------------------------------
# Predicting from the bundle
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_read_bundle_from_bytes_predicts_like_the_app(exported, task):
    item = exported[task]
    bundle = read_bundle(item.zip_bytes)
    assert bundle.spec == item.trained.spec and bundle.data_spec == item.trained.data_spec
    assert bundle.input_shape == item.trained.input_shape and not bundle.model.training
    rows = messy_new_rows(item.table, with_target=False)
    pd.testing.assert_frame_equal(bundle.predict(rows), item.trained.predict(rows))
    # Other sources: a path and an upload-like file object.
    for source in (item.report.path, io.BytesIO(item.zip_bytes)):
        pd.testing.assert_frame_equal(read_bundle(source).predict(rows), item.trained.predict(rows))


@pytest.mark.parametrize("task", TASKS)
def test_predict_script_matches_the_app_in_a_fresh_process(exported, task, tmp_path):
    item = exported[task]
    rows = messy_new_rows(item.table, with_target=(task == "binary"))
    input_csv = tmp_path / "input.csv"
    rows.to_csv(input_csv, index=False)
    # -I: isolated mode, so neither the repo nor PYTHONPATH can supply `builder`.
    result = subprocess.run([sys.executable, "-I", "predict.py", str(input_csv)], cwd=item.folder,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    got = pd.read_csv(io.StringIO(result.stdout))
    app = item.trained.predict(read_table(input_csv))  # the app's path: read_table, then predict
    assert list(got.columns) == list(app.columns)
    assert len(got) == len(rows)
    if task == "regression":
        np.testing.assert_allclose(got["prediction"], app["prediction"], rtol=1e-5, atol=1e-5)
    else:
        assert got["prediction"].astype(str).tolist() == app["prediction"].astype(str).tolist()
        probabilities = [c for c in app.columns if c.startswith("probability_")]
        assert len(probabilities) == len(item.trained.preprocessor.classes)
        np.testing.assert_allclose(got[probabilities], app[probabilities], atol=1e-5)


def _import_bundle_script(folder: Path, name: str):
    """Import a .py file of an unpacked bundle under a unique name (the import system is global)."""
    spec = importlib.util.spec_from_file_location(f"bundle_{name}_{uuid.uuid4().hex}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def predict_script(exported, monkeypatch):
    """predict.py of the binary bundle, imported in this process (it adds its folder to sys.path)."""
    folder = exported["binary"].folder
    monkeypatch.setattr(sys, "path", list(sys.path))
    saved = sys.modules.pop("preprocess", None)
    yield _import_bundle_script(folder, "predict")
    sys.modules.pop("preprocess", None)
    if saved is not None:
        sys.modules["preprocess"] = saved


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".txt", ".xlsx", ".parquet", ".json"])
def test_predict_script_reads_every_table_format_like_the_app(predict_script, exported, tmp_path, suffix):
    item = exported["binary"]
    rows = messy_new_rows(item.table, with_target=False)
    path = tmp_path / f"input{suffix}"
    if suffix in (".csv", ".txt"):
        rows.to_csv(path, index=False, sep=";" if suffix == ".txt" else ",")
    elif suffix == ".tsv":
        rows.to_csv(path, index=False, sep="\t")
    elif suffix == ".xlsx":
        rows.to_excel(path, index=False)
    elif suffix == ".parquet":
        rows.to_parquet(path, index=False)
    else:
        rows.to_json(path, orient="records")
    got = predict_script.predict(predict_script.read_rows(path), item.folder)
    app = item.trained.predict(read_table(path))
    assert got["prediction"].tolist() == app["prediction"].tolist()
    np.testing.assert_allclose(got.drop(columns="prediction"), app.drop(columns="prediction"), atol=1e-5)


def test_predict_script_explains_bad_input_with_exit_2(predict_script, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"something": [1, 2]}).to_csv(bad, index=False)
    assert predict_script.main([str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "has no column named" in err or "missing" in err
    assert "\n" not in err and "Traceback" not in err
    assert predict_script.main([str(tmp_path / "nope.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_predict_script_writes_an_output_file(predict_script, exported, tmp_path):
    out = tmp_path / "predictions.csv"
    assert predict_script.main([str(exported["binary"].folder / "sample_input.csv"), "-o", str(out)]) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["prediction", "probability_no", "probability_yes"] and len(frame) == 5


@pytest.mark.parametrize("task", TASKS)
def test_model_py_rebuilds_the_network_with_identical_outputs(exported, task):
    item = exported[task]
    module = _import_bundle_script(item.folder, "model")
    net = module.load(item.folder / "model.safetensors")
    assert not net.training and module.INPUT_SHAPE == item.trained.input_shape
    X = torch.from_numpy(item.trained.preprocessor.transform(messy_new_rows(item.table, False)))
    with torch.inference_mode():
        assert torch.equal(net(X), item.trained.model(X))
    assert "import builder" not in (item.folder / "model.py").read_text()


@pytest.mark.parametrize("task", TASKS)
def test_onnx_matches_torch_at_batch_1_and_7(exported, task):
    import onnxruntime as ort

    item = exported[task]
    session = ort.InferenceSession(str(item.folder / "model.onnx"), providers=["CPUExecutionProvider"])
    X_all = item.trained.preprocessor.transform(item.table)
    for n in (1, 7):
        X = X_all[:n]
        got = session.run(None, {"features": X})[0]
        assert got.shape == (n, item.trained.n_outputs)
        assert np.abs(got - item.trained.predict_outputs(X)).max() < 1e-5
    assert item.report.parity_max_diff < 1e-5
    assert item.report.parity_rows == 1 + 3 + 7 + 200


def test_the_exporter_warm_up_runs_once_and_the_export_waits_for_it(exported, monkeypatch):
    from builder.export import onnx_export

    monkeypatch.setattr(onnx_export, "_warm_up", None)  # as in a fresh process
    calls = []
    real = onnx_export._export_a_tiny_model
    monkeypatch.setattr(onnx_export, "_export_a_tiny_model", lambda: (calls.append(1), real()))
    onnx_export.warm_up_exporter()
    first = onnx_export._warm_up
    onnx_export.warm_up_exporter()  # a second start is the same thread
    assert onnx_export._warm_up is first and first.name == "onnx-exporter-warm-up"
    item = exported["regression"]
    data = onnx_export.export_onnx(item.trained)  # waits for the warm-up, then exports
    assert not first.is_alive() and calls == [1]
    assert parity_check(item.trained, None, onnx_model=data) < 1e-5


def test_parity_check_reuses_an_exported_model(exported):
    item = exported["regression"]
    onnx_model = (item.folder / "model.onnx").read_bytes()
    assert parity_check(item.trained, item.table.head(50), onnx_model=onnx_model) < 1e-5
    assert parity_check(item.trained, None, onnx_model=onnx_model) < 1e-5


def test_a_model_that_disagrees_with_its_onnx_is_not_written(exported, monkeypatch, tmp_path):
    item = exported["regression"]
    # Same sizes, other weights: the ONNX of the unchanged model against a shifted copy.
    shifted = copy.deepcopy(item.trained.model)
    with torch.no_grad():
        shifted[-1].bias += 1.0
    changed = dataclasses.replace(item.trained, model=shifted)
    onnx_model = (item.folder / "model.onnx").read_bytes()
    monkeypatch.setattr(writer, "export_onnx", lambda trained, example=None: onnx_model)
    target = tmp_path / "never.zip"
    with pytest.raises(BundleError, match=r"does not give the same answers as the trained model \(largest difference 1,"):
        write_bundle(changed, target, item.table.head(20))
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_an_onnx_model_that_cannot_run_is_not_written(exported, monkeypatch, tmp_path):
    wrong = (exported["binary"].folder / "model.onnx").read_bytes()
    monkeypatch.setattr(writer, "export_onnx", lambda trained, example=None: wrong)
    with pytest.raises(BundleError, match="ONNX"):
        write_bundle(exported["multiclass"].trained, tmp_path / "never.zip")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------------
# Bundles that must be refused
# --------------------------------------------------------------------------------------------------


def _rezip(zip_bytes: bytes, drop: str | None = None, replace: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as src, zipfile.ZipFile(buffer, "w") as dst:
        for name in src.namelist():
            if name != drop:
                dst.writestr(name, (replace or {}).get(name, src.read(name)))
    return buffer.getvalue()


def test_missing_member_is_named(exported):
    broken = _rezip(exported["binary"].zip_bytes, drop="spec.json")
    with pytest.raises(BundleError, match="it has no spec.json. Export the model again from the Export page"):
        read_bundle(broken)


def test_a_newer_bundle_format_says_to_update(exported):
    manifest = json.loads((exported["binary"].folder / "bundle.json").read_text())
    manifest["format_version"] = 99
    newer = _rezip(exported["binary"].zip_bytes, replace={"bundle.json": json.dumps(manifest).encode()})
    with pytest.raises(BundleError, match="newer version of the app"):
        read_bundle(newer)


def test_changed_weights_are_detected(exported):
    item = exported["binary"]
    other = (exported["regression"].folder / "model.safetensors").read_bytes()
    tampered = _rezip(item.zip_bytes, replace={"model.safetensors": other})
    with pytest.raises(BundleError, match="model.safetensors was changed after export"):
        read_bundle(tampered)


def test_a_zip_that_is_not_a_bundle_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("photo.jpg", b"\xff\xd8\xff")
    with pytest.raises(BundleError, match="This file is not a model bundle: it has no bundle.json"):
        read_bundle(buffer.getvalue())
    with pytest.raises(BundleError, match="not a zip archive"):
        read_bundle(b"name,age\nAnn,3\n")


# --------------------------------------------------------------------------------------------------
# Saved runs
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_save_and_load_trained_round_trip_exactly(exported, task, tmp_path):
    item = exported[task]
    save_trained(item.trained, tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["model.safetensors", "trained.json"]
    loaded = load_trained(tmp_path / "run")
    rows = messy_new_rows(item.table, with_target=False)
    X = torch.from_numpy(item.trained.preprocessor.transform(rows))
    with torch.inference_mode():
        assert torch.equal(loaded.model(X), item.trained.model(X))
    pd.testing.assert_frame_equal(loaded.predict(rows), item.trained.predict(rows))
    assert loaded.spec == item.trained.spec and loaded.data_spec == item.trained.data_spec
    assert loaded.preprocessor.to_dict() == item.trained.preprocessor.to_dict()
    assert loaded.config == item.trained.config and loaded.history == item.trained.history
    assert loaded.metrics == item.trained.metrics and loaded.info == item.trained.info
    assert loaded.baseline.metrics == item.trained.baseline.metrics
    assert (loaded.input_shape, loaded.device, loaded.seconds) == (
        item.trained.input_shape, item.trained.device, item.trained.seconds)


def test_load_trained_explains_a_missing_or_damaged_run(tmp_path):
    with pytest.raises(BundleError, match="No saved run"):
        load_trained(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "trained.json").write_text("{not json")
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"")
    with pytest.raises(BundleError, match="damaged"):
        load_trained(tmp_path / "bad")


# --------------------------------------------------------------------------------------------------
# Generated code for every layer type
# --------------------------------------------------------------------------------------------------

CANDIDATE_SHAPES = ((6,), (3, 8), (2, 6, 6))
SMALL_SETTINGS = {"AutoregressiveSkip": {"lags": 2}}  # fits the 3-step sequence above


def _design_for(type_name: str) -> tuple[ModelSpec, tuple[int, ...]]:
    """A design using ``type_name`` (then Flatten) on the first input shape it accepts; a layer that
    adds to a sequence's summary (AutoregressiveSkip) comes after SequencePool instead."""
    layer = LayerSpec(type_name, {**LAYERS.get(type_name).defaults(), **SMALL_SETTINGS.get(type_name, {})})
    designs = ([layer, LayerSpec("Flatten", LAYERS.get("Flatten").defaults())],
               [LayerSpec("SequencePool", LAYERS.get("SequencePool").defaults()), layer])
    for layers in designs:
        spec = ModelSpec("mlp", layers).with_defaults()
        for shape in CANDIDATE_SHAPES:
            if infer_shapes(spec, shape, 2).ok:
                return spec, shape
    raise AssertionError(f"no test input shape suits {type_name}")


def _check_generated(spec: ModelSpec, shape: tuple[int, ...], tmp_path: Path, x: torch.Tensor | None = None) -> str:
    n_outputs = 2
    torch.manual_seed(0)
    reference = build_model(spec, shape, n_outputs).eval()
    source = model_source(spec, shape, n_outputs)
    (tmp_path / "model.py").write_text(source)
    (tmp_path / "model.safetensors").write_bytes(export.weights_bytes(reference))
    module = _import_bundle_script(tmp_path, "model")
    net = module.load(tmp_path / "model.safetensors")
    x = torch.randn(5, *shape) if x is None else x
    with torch.inference_mode():
        assert torch.equal(net(x), reference(x))
    assert repr(net) == repr(reference)
    return source


@pytest.mark.parametrize("type_name", LAYERS.names())
def test_generated_code_rebuilds_every_layer_type(type_name, tmp_path):
    # Embedding and EmbeddingBag read token ids (whole numbers, as float32), the others numbers.
    tokens = type_name in ("Embedding", "EmbeddingBag")
    scope = token_input(20) if tokens else contextlib.nullcontext()
    with scope:
        spec, shape = _design_for(type_name)
        x = torch.randint(0, 20, (5, *shape)).float() if tokens else None
        source = _check_generated(spec, shape, tmp_path, x)
    assert "builder" not in source.split('"""', 2)[2]  # no import of the app, only torch


def test_generated_code_writes_literal_sizes_and_non_default_settings(tmp_path):
    spec = ModelSpec.from_dict({"family": "mlp", "layers": [
        {"type": "Linear", "out_features": 16, "bias": False}, {"type": "BatchNorm1d"},
        {"type": "LeakyReLU", "negative_slope": 0.2}, {"type": "Dropout", "p": 0.3},
        {"type": "LayerNorm"}, {"type": "GELU"},
    ]})
    source = _check_generated(spec, (9,), tmp_path)
    for line in ("nn.Linear(9, 16, bias=False),", "nn.BatchNorm1d(16),", "nn.LeakyReLU(negative_slope=0.2),",
                 "nn.Dropout(p=0.3),", "nn.LayerNorm(16),", "nn.GELU(),", "nn.Linear(16, 2),"):
        assert line in source
    assert "# output layer: 16 -> 2" in source


def test_constructor_arguments_skip_defaults():
    cls, kwargs = constructor_arguments("Dropout", (4,), {"p": 0.5})
    assert cls is torch.nn.Dropout and kwargs == {}
    cls, kwargs = constructor_arguments("Linear", (4,), {"out_features": 3, "bias": True})
    assert kwargs == {"in_features": 4, "out_features": 3}


class Scale(torch.nn.Module):
    """A layer of our own (not in torch.nn): multiplies each feature by a learned factor."""

    def __init__(self, features: int, init: float = 1.0):
        super().__init__()
        self.features = features
        self.init = init
        self.weight = torch.nn.Parameter(torch.full((features,), init))

    def forward(self, x):
        return x * self.weight  # (B, F)

    def extra_repr(self) -> str:
        return f"{self.features}, init={self.init}"


def test_generated_code_copies_our_own_layer_classes(monkeypatch, tmp_path):
    from builder.layers import LayerType
    from builder.params import FloatRange, ParamSpec

    scale = LayerType(name="Scale", category="Test", summary="test only",
                      params=(ParamSpec("init", FloatRange(0, 10), 1.0, "Start"),),
                      build=lambda shape, p: Scale(shape[-1], p["init"]))
    monkeypatch.setitem(LAYERS._types, "Scale", scale)  # registered for this test only
    spec = ModelSpec.from_dict({"family": "mlp", "layers": [{"type": "Scale", "init": 2.0}]})
    source = _check_generated(spec, (4,), tmp_path)
    assert "class Scale(torch.nn.Module):" in source and "Scale(4, init=2.0)," in source


# --------------------------------------------------------------------------------------------------
# The predictions file a user takes away (builder.export.predictions)
# --------------------------------------------------------------------------------------------------


def test_predictions_round_trip_through_excel():
    from builder.export.predictions import predictions_csv, predictions_excel

    frame = pd.DataFrame({
        "customer_id": ["C-001", "C-002", "C-003"],
        "note": ["plain", "a\x07bell", None],  # a control character Excel refuses in a cell
        "when": pd.to_datetime(["2024-01-05 10:00", "2024-02-01 00:00", "2024-03-09 23:30"]).tz_localize("UTC"),
        "prediction": ["yes", "no", "yes"],
        "probability_no": [0.125, 0.75, 0.0625],
        "probability_yes": [0.875, 0.25, 0.9375],
    })
    back = pd.read_excel(io.BytesIO(predictions_excel(frame)), sheet_name="predictions")
    assert list(back.columns) == list(frame.columns)
    assert back["customer_id"].tolist() == ["C-001", "C-002", "C-003"]
    assert back["note"].iloc[1] == "abell" and pd.isna(back["note"].iloc[2])
    assert back["when"].tolist() == frame["when"].dt.tz_localize(None).tolist()
    assert back["prediction"].tolist() == frame["prediction"].tolist()
    np.testing.assert_array_equal(back["probability_yes"], frame["probability_yes"])
    assert pd.read_csv(io.BytesIO(predictions_csv(frame)))["customer_id"].tolist() == ["C-001", "C-002", "C-003"]


def test_too_many_rows_for_excel_say_to_write_csv(monkeypatch, tmp_path):
    from builder.errors import DataError
    from builder.export import predictions

    monkeypatch.setattr(predictions, "EXCEL_MAX_ROWS", 3)
    frame = pd.DataFrame({"prediction": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(DataError, match="more than the 3 rows an Excel sheet holds. Write a .csv"):
        predictions.write_predictions(frame, tmp_path / "p.xlsx")
    predictions.write_predictions(frame, tmp_path / "p.csv")
    assert pd.read_csv(tmp_path / "p.csv")["prediction"].tolist() == [1.0, 2.0, 3.0, 4.0]


def test_kept_columns_default_to_id_like_ones_and_refuse_unknown_names():
    from builder.errors import DataError
    from builder.export.predictions import kept_columns, with_kept_columns

    rows = make_messy_table(n=40, seed=2).drop(columns=TARGET)
    rows["order_code"] = [f"A{i:03d}" for i in range(40)]  # text codes, one per row: ID-like
    taken = ["prediction", "probability_no", "probability_yes"]
    features = ["age", "income", "color", "visits"]
    assert kept_columns(rows, None, exclude=features, taken=taken) == ["customer_id", "order_code"]
    assert kept_columns(rows, None, exclude=["customer_id", *features], taken=taken) == ["order_code"]
    assert kept_columns(rows, ["visits", "customer_id"], exclude=features, taken=taken) == ["visits", "customer_id"]
    with pytest.raises(DataError, match=r"--keep names 'nope', but the data has no such column.*'customer_id'"):
        kept_columns(rows, ["age", "nope"], option="--keep")
    with pytest.raises(DataError, match="'prediction' is also the name of a column of the predictions"):
        kept_columns(rows.assign(prediction=1), ["prediction"], taken=taken)
    predictions = pd.DataFrame({"prediction": ["yes"] * 40})
    joined = with_kept_columns(predictions, rows.iloc[::-1], ["customer_id"])  # any index: by position
    assert joined["customer_id"].tolist() == rows["customer_id"].iloc[::-1].tolist()
    with pytest.raises(DataError, match="3 predictions for 40 rows"):
        with_kept_columns(predictions.head(3), rows, ["customer_id"])


def test_predict_script_exits_quietly_when_its_reader_stops_early(exported, tmp_path):
    """Issue 11, item 3: `python predict.py rows.csv | head -3` prints three lines and no traceback."""
    item = exported["binary"]
    rows = pd.concat([messy_new_rows(item.table, with_target=False)] * 200, ignore_index=True)
    input_csv = tmp_path / "many.csv"
    rows.to_csv(input_csv, index=False)
    command = f"{shlex.quote(sys.executable)} -I predict.py {shlex.quote(str(input_csv))} | head -3"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=item.folder, capture_output=True,
                            text=True, timeout=120)
    assert len(result.stdout.splitlines()) == 3
    assert result.stderr == "", result.stderr
    assert result.returncode == 0


@pytest.mark.parametrize("bad", [0.0, -2.5, 1e30])
def test_a_bundle_with_an_absurd_scale_is_refused_not_answered_with_a_constant(exported, tmp_path, bad):
    """Issue 11, item 4: preprocess.json edited to a spread of 0, below 0 or 1e30 would make every
    answer the same. The app's reader and the bundle's own predict.py both refuse it, naming the column."""
    item = exported["regression"]
    folder = tmp_path / "bundle"
    shutil.copytree(item.folder, folder)
    state = json.loads((folder / "preprocess.json").read_text())
    numeric = next(c for c in state["columns"] if "std" in c)
    numeric["std"] = bad
    (folder / "preprocess.json").write_text(json.dumps(state))
    manifest = json.loads((folder / "bundle.json").read_text())  # a forged bundle, hashes made to agree
    manifest["files"]["preprocess.json"] = hashlib.sha256((folder / "preprocess.json").read_bytes()).hexdigest()
    (folder / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BuilderError, match=rf"'{re.escape(numeric['name'])}' has an impossible spread"):
        Preprocessor.from_dict(state)  # what the app's bundle reader rebuilds from preprocess.json
    rows = tmp_path / "rows.csv"
    messy_new_rows(item.table, with_target=False).to_csv(rows, index=False)
    result = subprocess.run([sys.executable, "-I", "predict.py", str(rows)], cwd=folder, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and "impossible spread" in result.stderr and "Traceback" not in result.stderr


def test_predict_script_refuses_a_changed_file_and_notes_an_added_script(exported, tmp_path):
    """Issue 11, item 8: predict.py checks every file against bundle.json's SHA-256 before using it."""
    item = exported["binary"]
    folder = tmp_path / "bundle"
    shutil.copytree(item.folder, folder)
    rows = tmp_path / "rows.csv"
    messy_new_rows(item.table, with_target=False).to_csv(rows, index=False)

    def run() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-I", "predict.py", str(rows)], cwd=folder, capture_output=True,
                              text=True, timeout=120)

    (folder / "helper.py").write_text("print('not from the bundle')\n")
    result = run()
    assert result.returncode == 0 and "helper.py in the bundle folder did not come with the bundle" in result.stderr
    with (folder / "preprocess.py").open("a") as handle:
        handle.write("\n# an edit after export\n")
    result = run()
    assert result.returncode == 2 and result.stdout == ""
    assert "preprocess.py was changed after the bundle was exported" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_model_card_says_a_bundle_is_code_to_trust(exported):
    card = (exported["binary"].folder / "README.md").read_text()
    assert "A bundle is code" in card and "Run only a bundle you trust" in card and "SHA-256" in card
