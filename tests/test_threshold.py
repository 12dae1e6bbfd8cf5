"""The decision threshold of a yes/no model travels with it: set on the preprocessor, saved in the
bundle's preprocess.json, and applied alike by the app (``TrainedModel.predict``, ``Bundle.predict``),
``python -m builder predict`` and the bundle's own ``predict.py`` in a fresh process.

One small binary model is trained once for the module; a copy of it gets the threshold 0.9, so the
rows whose probability of ``yes`` lies between 0.5 and 0.9 change from ``yes`` to ``no``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from builder import cli
from builder.cli.train import _apply_threshold
from builder.data import DataSpec
from builder.data.images import ImagePreprocessor
from builder.data.preprocess import Preprocessor
from builder.data.text import TextPreprocessor
from builder.errors import DataError
from builder.export import load_trained, read_bundle, save_trained, write_bundle
from builder.pipeline import train_model
from builder.safezip import open_zip, safe_extract
from builder.train import TrainConfig
from tests.tabular_fixtures import TARGET, make_messy_table

CHOSEN = "on the validation rows for the best F1 score"


@dataclasses.dataclass
class Setup:
    trained: object  # the model at the default threshold (never changed)
    at_09: object  # the same network, its preprocessor set to 0.9
    rows: pd.DataFrame  # new rows to predict (with customer_id, without the target)
    rows_csv: Path
    bundle: Path  # the 0.9 model's bundle
    folder: Path  # that bundle unpacked


def _with_own_preprocessor(trained):
    """The same network with a preprocessor of its own (so setting a threshold changes only it)."""
    return dataclasses.replace(trained, preprocessor=Preprocessor.from_dict(trained.preprocessor.to_dict()),
                               metrics=json.loads(json.dumps(trained.metrics)),
                               test_results=json.loads(json.dumps(trained.test_results)))


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Setup:
    table = make_messy_table(n=300, seed=3, task="binary")
    features = [c for c in table.columns if c not in (TARGET, "customer_id")]
    config = TrainConfig(epochs=12, batch_size=32, lr=3e-3, device="cpu", seed=1)
    trained = train_model(table, DataSpec(TARGET, "binary", features), config)
    at_09 = _with_own_preprocessor(trained)
    at_09.preprocessor.set_decision_threshold(0.9, chosen=CHOSEN)
    folder = tmp_path_factory.mktemp("threshold")
    rows = make_messy_table(n=200, seed=11).drop(columns=TARGET)
    rows.to_csv(folder / "rows.csv", index=False)
    bundle = folder / "model.zip"
    write_bundle(at_09, bundle, sample_rows=table.head(50))
    with open_zip(bundle) as zf:
        safe_extract(zf, folder / "unpacked")
    return Setup(trained, at_09, rows, folder / "rows.csv", bundle, folder / "unpacked")


def _script(folder: Path, *args: str) -> pd.DataFrame:
    """The bundle's predict.py in a fresh, isolated Python process (no `builder` importable)."""
    result = subprocess.run([sys.executable, "-I", "predict.py", *args], cwd=folder, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return pd.read_csv(io.StringIO(result.stdout))


def _cli_predict(*argv: object) -> tuple[int, pd.DataFrame | None, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["predict", *map(str, argv), "--out", "-"])
    frame = pd.read_csv(io.StringIO(out.getvalue())) if code == 0 else None
    return code, frame, err.getvalue()


def test_a_threshold_of_0_9_changes_the_rows_between_0_5_and_0_9_alike_everywhere(setup):
    default = setup.trained.predict(setup.rows)
    app = setup.at_09.predict(setup.rows)
    chance = default["probability_yes"].to_numpy()
    between = (chance > 0.5) & (chance <= 0.9)
    assert between.sum() >= 5 and (chance > 0.9).any()  # the data exercises both sides of 0.9
    # The same probabilities; only the labels of the rows between 0.5 and 0.9 change, to 'no'.
    pd.testing.assert_frame_equal(app.drop(columns="prediction"), default.drop(columns="prediction"))
    assert (default["prediction"][between] == "yes").all() and (app["prediction"][between] == "no").all()
    assert app["prediction"][~between].tolist() == default["prediction"][~between].tolist()

    read_back = read_bundle(setup.bundle)
    assert read_back.preprocessor.decision_threshold == 0.9
    assert read_back.predict(setup.rows)["prediction"].tolist() == app["prediction"].tolist()

    script = _script(setup.folder, str(setup.rows_csv))
    assert script["prediction"].tolist() == app["prediction"].tolist()
    np.testing.assert_allclose(script["probability_yes"], app["probability_yes"], atol=1e-5)

    code, command, err = _cli_predict("--bundle", setup.bundle, "--data", setup.rows_csv)
    assert code == 0, err
    assert command["prediction"].tolist() == app["prediction"].tolist()
    assert command["customer_id"].tolist() == setup.rows["customer_id"].tolist()  # ID-like: kept first


def test_the_predict_page_decodes_an_uploaded_bundle_at_its_threshold(setup, app, builder_home):
    from builder.workspace import Workspace
    from tests.app_helpers import open_page

    at = open_page(app, Workspace.open(None, home=builder_home), "pages/predict.py")
    at = at.radio(key="predict_source").set_value("A bundle file").run()
    at = at.get("file_uploader")[0].upload("model.zip", setup.bundle.read_bytes(), "application/zip").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    said = " ".join(m.value for m in at.markdown)
    assert "It answers 'yes' when the chance of 'yes' is above 90% (its decision threshold), otherwise 'no'." in said
    rows = next(u for u in at.get("file_uploader") if u.proto.id and "rows" in u.proto.id)
    at = rows.upload("rows.csv", setup.rows_csv.read_bytes(), "text/csv").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown = at.dataframe[0].value
    assert shown["prediction"].tolist() == setup.at_09.predict(setup.rows)["prediction"].tolist()


def test_predict_threshold_overrides_the_bundles_for_one_run(setup):
    default = setup.trained.predict(setup.rows)["prediction"].tolist()
    code, command, err = _cli_predict("--bundle", setup.bundle, "--data", setup.rows_csv, "--threshold", "0.5")
    assert code == 0, err
    assert command["prediction"].tolist() == default
    assert "decision threshold 0.5 for this run (the bundle's own: 0.9)" in err
    assert _script(setup.folder, str(setup.rows_csv), "--threshold", "0.5")["prediction"].tolist() == default
    assert read_bundle(setup.bundle).preprocessor.decision_threshold == 0.9  # the bundle is unchanged


def test_the_threshold_is_in_preprocess_json_and_the_model_card(setup):
    state = json.loads((setup.folder / "preprocess.json").read_text())
    assert state["decision_threshold"] == 0.9 and state["decision_threshold_chosen"] == CHOSEN
    card = (setup.folder / "README.md").read_text()
    assert "Decision threshold: **0.9** (0.5 unless one was chosen)" in card
    assert f"It was chosen {CHOSEN}." in card
    assert "predicted `yes` when the probability of `yes` is above 0.9, otherwise `no`" in card


def test_a_default_model_card_says_0_5_was_not_chosen(setup):
    from builder.export import model_card

    card = model_card(setup.trained)
    assert "Decision threshold: **0.5** (0.5 unless one was chosen)" in card
    assert "no other threshold was chosen" in card
    state = setup.trained.preprocessor.to_dict()
    assert state["decision_threshold"] == 0.5 and "decision_threshold_chosen" not in state


def _without_threshold(zip_bytes: bytes) -> bytes:
    """The bundle as an app without decision thresholds wrote it: no such field in preprocess.json,
    and bundle.json's hashes to match."""
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    state = json.loads(members["preprocess.json"])
    for key in ("decision_threshold", "decision_threshold_chosen"):
        state.pop(key)
    members["preprocess.json"] = json.dumps(state, indent=2).encode()
    manifest = json.loads(members["bundle.json"])
    manifest["files"]["preprocess.json"] = hashlib.sha256(members["preprocess.json"]).hexdigest()
    members["bundle.json"] = json.dumps(manifest, indent=2).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def test_an_older_bundle_without_the_field_predicts_at_0_5(setup, tmp_path):
    old = tmp_path / "old.zip"
    old.write_bytes(_without_threshold(setup.bundle.read_bytes()))
    default = setup.trained.predict(setup.rows)["prediction"].tolist()
    bundle = read_bundle(old)
    assert bundle.preprocessor.decision_threshold == 0.5 and bundle.preprocessor.decision_threshold_chosen is None
    assert bundle.predict(setup.rows)["prediction"].tolist() == default
    code, command, err = _cli_predict("--bundle", old, "--data", setup.rows_csv)
    assert code == 0, err
    assert command["prediction"].tolist() == default
    with open_zip(old) as zf:
        safe_extract(zf, tmp_path / "old")
    assert _script(tmp_path / "old", str(setup.rows_csv))["prediction"].tolist() == default


def test_a_saved_run_keeps_its_threshold(setup, tmp_path):
    save_trained(setup.at_09, tmp_path / "run")
    back = load_trained(tmp_path / "run")
    assert back.preprocessor.decision_threshold == 0.9 and back.preprocessor.decision_threshold_chosen == CHOSEN
    assert back.predict(setup.rows)["prediction"].tolist() == setup.at_09.predict(setup.rows)["prediction"].tolist()


def test_train_threshold_measures_the_test_scores_at_it(setup):
    model = _with_own_preprocessor(setup.trained)
    before = dict(model.metrics["test"])
    _apply_threshold(model, 0.9)
    kept = model.test_results
    chance = np.asarray(kept["probabilities"])[:, 1]
    expected = np.where(chance > 0.9, "yes", "no")
    assert kept["predicted"] == expected.tolist()
    assert model.metrics["test"]["accuracy"] == pytest.approx(np.mean(expected == np.asarray(kept["actual"])))
    assert model.metrics["test"]["roc_auc"] == pytest.approx(before["roc_auc"])  # ranking, not the threshold
    assert model.preprocessor.decision_threshold_chosen == "with --threshold when the model was trained"
    val = kept["val"]
    val_expected = np.where(np.asarray(val["probabilities"])[:, 1] > 0.9, "yes", "no")
    assert model.metrics["val"]["accuracy"] == pytest.approx(np.mean(val_expected == np.asarray(val["actual"])))


def test_python_m_builder_train_threshold_saves_it_in_the_bundle(tmp_path):
    make_messy_table(n=120, seed=5).to_csv(tmp_path / "small.csv", index=False)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["train", "--data", str(tmp_path / "small.csv"), "--target", TARGET, "--epochs", "2",
                         "--out", str(tmp_path / "small.zip"), "--threshold", "0.65", "--device", "cpu"])
    assert code == 0, err.getvalue()
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert summary["decision_threshold"] == 0.65
    bundle = read_bundle(tmp_path / "small.zip")
    assert bundle.preprocessor.decision_threshold == 0.65
    assert bundle.metrics["test"] == pytest.approx(summary["metrics"]["test"])


# --- the preprocessors of text and images (the table's: tests/test_data_preprocess.py) ---------------


def _text_binary() -> TextPreprocessor:
    return TextPreprocessor().fit(["good film", "bad film", "great film", "awful film"], ["neg", "pos"] * 2, "binary",
                                  min_count=1)


def _images_binary() -> ImagePreprocessor:
    images = [Image.new("RGB", (8, 8), (i * 40, 0, 0)) for i in range(4)]
    return ImagePreprocessor().fit(images, labels=["cat", "dog", "cat", "dog"])


@pytest.mark.parametrize("make", [_text_binary, _images_binary], ids=["text", "images"])
def test_text_and_image_models_decode_at_their_threshold_and_save_it(make):
    pre = make()
    negative, positive = pre.classes
    logits = np.log(np.array([0.3, 0.6, 0.8, 0.95]) / (1 - np.array([0.3, 0.6, 0.8, 0.95])))[:, None]  # (4, 1)
    assert pre.decision_threshold == 0.5
    assert pre.decode_outputs(logits)["prediction"].tolist() == [negative, positive, positive, positive]
    pre.set_decision_threshold(0.9, chosen=CHOSEN)
    assert pre.decode_outputs(logits)["prediction"].tolist() == [negative, negative, negative, positive]
    state = json.loads(json.dumps(pre.to_dict()))
    assert state["decision_threshold"] == 0.9
    back = type(pre).from_dict(state)
    assert back.decision_threshold == 0.9 and back.decision_threshold_chosen == CHOSEN
    pd.testing.assert_frame_equal(back.decode_outputs(logits), pre.decode_outputs(logits))
    state.pop("decision_threshold")  # a state saved before thresholds
    assert type(pre).from_dict(state).decision_threshold == 0.5


def test_multiclass_text_and_image_models_refuse_a_threshold():
    text = TextPreprocessor().fit(["a b", "b c", "c a"], ["x", "y", "z"], "multiclass", min_count=1)
    images = ImagePreprocessor().fit([Image.new("L", (4, 4), v) for v in (0, 90, 180)], labels=["a", "b", "c"])
    for pre in (text, images):
        with pytest.raises(DataError, match="only to a yes/no"):
            pre.set_decision_threshold(0.7)
        assert pre.decision_threshold is None and "decision_threshold" not in pre.to_dict()
    with pytest.raises(DataError, match="between 0 and 1"):
        _text_binary().set_decision_threshold(1.0)
