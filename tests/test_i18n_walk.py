"""The interface in Chinese: a walk of every page in every state a user meets (no data; a table, an
image zip, texts, a series and an anomaly table, each with a trained model; the view-only link)
fails on any English word outside an allow-list of names (data values, columns, layers, metrics,
file formats). English output is covered by every other page test."""

from __future__ import annotations

import io
import re
import zipfile

import pandas as pd
import pytest

from builder.layers import LAYERS
from builder.workspace import Workspace
from pages.components.ui import JOURNEY
from tests import kind_fixtures
from tests.app_helpers import open_page
from tests.i18n_tools import english_words
from tests.test_page_evaluate import trained_workspace

PAGES = [path for path, _, _ in JOURNEY]

# Names a Chinese interface keeps in Latin script: file formats, libraries, hardware, abbreviations of
# metrics and methods, optimizers and activations (as the catalogue's rules say), units.
NAMES = """
CSV TSV Excel Parquet JSON ZIP PDF HTML SVG PNG JPEG JPG URL ID IDs UTF ONNX PyTorch Python torch
safetensors onnxruntime scikit sklearn captum pandas numpy FastAPI Chromium Docker Dockerfile GPU CPU CUDA
AMP MPS RAM KB MB GB TB ms px SGD Adam AdamW RMSprop AdaGrad ReLU GELU SiLU Tanh Sigmoid LeakyReLU
MLP CNN RNN LSTM GRU Transformer TF IDF TF-IDF AUC ROC PR MAE RMSE MSE MAPE R2 F1 NaN ok
TXT XLSX XLS BMP GIF WEBP TIFF TIF BMI Shapley
AP Brier Language English Swish fastText Xavier Kaiming Glorot NVIDIA Apple CUDA scikit-learn learn RidgeCV
""".split()


def allowed_words(*names: object) -> set[str]:
    """The allow-list: the fixed names plus every word of the given data names and values."""
    words = set(NAMES)
    for name in (*LAYERS.names(), *names):
        words.update(re.findall(r"[A-Za-z][A-Za-z'’]*[A-Za-z]", str(name)))
    return words


def table_names(df) -> list[object]:
    """Column names and the text values of a table's columns (categories, labels)."""
    names: list[object] = list(df.columns)
    for column in df.columns:
        if not pd.api.types.is_numeric_dtype(df[column]):
            names.extend(df[column].dropna().astype(str).unique()[:500])
    return names


def workspace_names(workspace: Workspace) -> list[str]:
    """What the user named or loaded: the data's title and the runs' titles."""
    data = workspace.data_file()
    return [*(run.title for run in workspace.list_runs()), *([data.name, data.path.name] if data else [])]


def assert_all_chinese(at, allowed: set[str], where: str) -> None:
    assert not at.exception, (where, at.exception)
    left = english_words(at, allowed)
    assert not left, f"{where}: {len(left)} English words, e.g. " + "; ".join(
        f"{word!r} in {text[:90]!r}" for word, text in left[:12])


def walk(app, workspace: Workspace, allowed: set[str], label: str) -> None:
    app.query_params["lang"] = "zh"
    allowed = allowed | allowed_words(*workspace_names(workspace))
    for page in PAGES:
        at = open_page(app, workspace, page)
        assert_all_chinese(at, allowed, f"{label} {page}")


def test_every_page_without_data_is_in_chinese(app, builder_home):
    walk(app, Workspace.open(None, home=builder_home), allowed_words(), "no data")


def test_every_page_with_a_trained_table_model_is_in_chinese(app, builder_home):
    from builder.data import load_sample

    workspace = trained_workspace(builder_home, "breast_cancer", epochs=3)
    walk(app, workspace, allowed_words(*table_names(load_sample("breast_cancer"))), "table")


@pytest.mark.parametrize("kind", ["images", "text", "series", "anomaly"])
def test_every_page_with_each_kind_of_data_is_in_chinese(app, builder_home, kind):
    runs = {
        "images": (kind_fixtures.image_run, None, kind_fixtures.digits_zip),
        "text": (kind_fixtures.text_run, kind_fixtures.text_table, None),
        "series": (kind_fixtures.forecast_run, kind_fixtures.series_table, None),
        "anomaly": (kind_fixtures.anomaly_run, kind_fixtures.anomaly_table, None),
    }
    run, table, images = runs[kind]
    df = table() if table else None
    workspace = Workspace.open(None, home=builder_home)
    if df is not None:
        workspace.save_table("data.csv", df.to_csv(index=False).encode())
    if images is not None:
        workspace.save_data("images.zip", images(), kind="images")
    trained = run()
    workspace.save_state("data_spec", trained.data_spec.to_dict())
    workspace.save_state("run_id", workspace.save_run(trained, "test run"))
    classes = [str(c) for c in (trained.preprocessor.classes or [])] if hasattr(trained.preprocessor, "classes") else []
    files = zipfile.ZipFile(io.BytesIO(images())).namelist() if images is not None else []  # image names
    walk(app, workspace, allowed_words(*(table_names(df) if df is not None else []), *classes, *files), kind)


def test_the_view_only_link_is_in_chinese(app, builder_home, monkeypatch):
    from builder.data import load_sample

    workspace = trained_workspace(builder_home, "breast_cancer", epochs=3)
    app.query_params["view"] = workspace.share_link()
    app.query_params["lang"] = "zh"
    at = app.run()
    allowed = allowed_words(*table_names(load_sample("breast_cancer")), *workspace_names(workspace))
    assert_all_chinese(at, allowed, "view-only")


def test_the_switch_changes_the_language_of_every_page_and_the_url_keeps_it(app, builder_home):
    # app.py draws the switch around every page; AppTest runs a switched-to page on its own, so the
    # switch is used on the router's page and the choice is then seen on the others.
    workspace = Workspace.open(None, home=builder_home)
    app.query_params["ws"] = workspace.token
    at = app.run()  # the router's first page, Data
    at.sidebar.selectbox(key="language_switch").set_value("zh").run()
    assert not at.exception, at.exception
    assert at.query_params.get("lang") == "zh" and at.sidebar.markdown[0].value == "**您的进度**"
    titles = {"pages/build.py": "构建", "pages/train.py": "训练", "pages/evaluate.py": "评估",
              "pages/export.py": "导出", "pages/predict.py": "预测"}
    for page, title in titles.items():
        assert at.switch_page(page).run().title[0].value == title
    at.switch_page("app.py").run()
    at.sidebar.selectbox(key="language_switch").set_value("en").run()
    assert "lang" not in at.query_params and at.sidebar.markdown[0].value == "**Your journey**"
