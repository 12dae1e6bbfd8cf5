"""AppTest of the Export page: empty state, building the bundle once, the parity sentence, the zip."""

from __future__ import annotations

import io
import zipfile

import pytest

from builder.data import SAMPLES, DataSpec, load_sample, read_table
from builder.data.images import read_image_zip
from builder.export import read_bundle
from builder.pipeline import train_model
from builder.train import TrainConfig
from builder.workspace import Workspace
from tests.app_helpers import button, open_page

PAGE = "pages/export.py"


@pytest.fixture(scope="module")
def iris_model():
    """One small model for the whole file (training is the slow part)."""
    info, df = SAMPLES["iris"], load_sample("iris")
    data_spec = DataSpec(info.target, info.task, [c for c in df.columns if c != info.target])
    return df, data_spec, train_model(df, data_spec, TrainConfig(epochs=3), with_baseline=False)


def make_workspace(home, model=None) -> Workspace:
    """A workspace as the Data and Train pages leave it: table, data settings and (optionally) a run."""
    workspace = Workspace.open(None, home=home)
    if model is not None:
        df, data_spec, trained = model
        workspace.save_table("iris.csv", df.to_csv(index=False).encode(), title="Iris flowers (sample)")
        workspace.save_state("data_spec", data_spec.to_dict())
        workspace.save_state("run_id", workspace.save_run(trained, "MLP on Iris flowers"))
    return workspace


def build(at):
    at = button(at, "Build the bundle").click().run()
    assert not at.exception, at.exception
    return at


def test_without_a_model_the_page_points_to_train(app, builder_home):
    at = open_page(app, make_workspace(builder_home), PAGE)
    assert not at.exception
    assert "no trained model" in at.info[0].value
    assert [link.proto.label for link in at.get("page_link")] == ["Go to Train"]
    assert not at.button


def bundle_downloads(at) -> list:
    """The bundle's download buttons (the report's own are beside them from the start)."""
    return [b for b in at.get("download_button") if "bundle" in b.proto.label]


def test_building_shows_files_parity_and_one_download(app, builder_home, iris_model):
    at = open_page(app, make_workspace(builder_home, iris_model), PAGE)
    assert not at.exception
    assert not at.session_state["app"].exported
    at = build(at)

    files = at.dataframe[0].value
    for name in ("model.onnx", "predict.py", "preprocess.json", "preprocess.py", "model.py", "model.safetensors",
                 "README.md", "requirements.txt"):
        assert name in set(files["File"]), name
    assert files["What it is for"].str.len().min() > 10  # every file says why it is there
    assert "gives the same answers as the app: largest difference" in at.success[0].value
    assert "rows" in at.success[0].value
    assert not at.error
    downloads = bundle_downloads(at)
    assert len(downloads) == 1
    assert "iris-flowers-mlp-bundle.zip" in downloads[0].proto.label
    assert at.session_state["app"].exported  # the sidebar tick
    assert [t.label for t in at.tabs] == ["Command line (predict.py)", "Python with onnxruntime", "PyTorch (model.py)"]
    assert any("python predict.py" in c.value for c in at.code)
    assert any("iris-flowers-mlp-bundle.zip" in c.value for c in at.code)


def test_the_bundle_is_built_once_per_run(app, builder_home, iris_model, monkeypatch):
    workspace = make_workspace(builder_home, iris_model)
    at = build(open_page(app, workspace, PAGE))

    def no_second_build(*args, **kwargs):
        raise AssertionError("the bundle was built again")

    monkeypatch.setattr("pages.components.bundle_view.write_bundle", no_second_build)
    at.run()
    assert not at.exception, at.exception
    assert at.success and len(bundle_downloads(at)) == 1
    # A refresh (new session, same workspace) finds it too, and ticks the sidebar again.
    from streamlit.testing.v1 import AppTest

    from tests.conftest import APP_FILE

    again = open_page(AppTest.from_file(APP_FILE, default_timeout=60), workspace, PAGE)
    assert not again.exception, again.exception
    assert again.session_state["app"].exported
    assert len(bundle_downloads(again)) == 1


def test_a_click_whose_run_is_overtaken_still_builds(app, builder_home, iris_model):
    """The click leaves a build request (its callback runs before the page); the run that acts on it
    need not be the click's own, so a click is not lost when another rerun overtakes its run."""
    from pages.components.bundle_view import BUILD_REQUEST

    workspace = make_workspace(builder_home, iris_model)
    at = open_page(app, workspace, PAGE)
    run_id = at.session_state["app"].run_id
    at.session_state[BUILD_REQUEST] = "run-20000101-000000-dead"  # left for an earlier run: ignored
    at.run()
    assert not bundle_downloads(at) and BUILD_REQUEST not in at.session_state
    at.session_state[BUILD_REQUEST] = run_id  # what the click's callback leaves, its own run gone
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["app"].exported and len(bundle_downloads(at)) == 1
    assert BUILD_REQUEST not in at.session_state  # taken once: the next rerun does not build again


def test_bundle_bytes_make_a_zip_that_read_bundle_reads(builder_home, iris_model):
    from pages.components.bundle_view import bundle_bytes
    from pages.components.state import AppState

    df, _, trained = iris_model
    state = AppState.restore(make_workspace(builder_home, iris_model))
    data = bundle_bytes(state)
    assert zipfile.is_zipfile(io.BytesIO(data))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert {"model.onnx", "predict.py", "preprocess.json", "sample_input.csv"} <= set(zf.namelist())
    bundle = read_bundle(data)
    got, expected = bundle.predict(df), trained.predict(df)
    assert (got["prediction"] == expected["prediction"]).all()
    assert abs(got.drop(columns="prediction") - expected.drop(columns="prediction")).max().max() < 1e-5
    assert bundle_bytes(state) == data  # the second call reads the same zip back


# --------------------------------------------------------------------------------------------------
# Other kinds of data: the workspace's own data feeds the parity check and the sample input
# --------------------------------------------------------------------------------------------------


def kind_workspace(home, trained, data: bytes, name: str, images: bool = False) -> Workspace:
    """A workspace with the data file (a table or an image zip) and a saved run trained on it."""
    workspace = Workspace.open(None, home=home)
    (workspace.save_images if images else workspace.save_table)(name, data)
    workspace.save_state("data_spec", trained.data_spec.to_dict())
    workspace.save_state("run_id", workspace.save_run(trained, "test run"))
    return workspace


def files_of(at) -> set[str]:
    return set(at.dataframe[0].value["File"])


def test_an_image_bundle_is_checked_on_the_workspace_images_and_carries_examples(app, builder_home):
    from tests.kind_fixtures import digits_zip, image_run

    trained = image_run()
    at = build(open_page(app, kind_workspace(builder_home, trained, digits_zip(), "digits.zip", images=True), PAGE))
    assert "tells 10 classes of images apart (16x16 pixels)" in at.markdown[0].value
    files = files_of(at)
    assert {"images.py", "preprocess.py", "predict.py", "model.onnx"} <= files and "read.py" not in files
    assert len([f for f in files if f.startswith("samples/")]) == 5
    n_images = len(read_image_zip(digits_zip()))
    assert f"on {3 + 1 + 7 + n_images:,} images" in at.success[0].value
    assert any("5 example images (samples/)" in c.value for c in at.caption)
    assert any("python predict.py samples" in c.value for c in at.code)
    assert any("read_images" in c.value for c in at.code)
    assert not at.info  # no note: real images were checked


def test_a_forecast_bundle_is_checked_on_the_whole_series(app, builder_home):
    from pages.components.bundle_view import bundle_bytes
    from pages.components.state import AppState
    from tests.kind_fixtures import forecast_run, series_table

    trained, history = forecast_run(), series_table()
    workspace = kind_workspace(builder_home, trained, history.to_csv(index=False).encode(), "sales.csv")
    at = build(open_page(app, workspace, PAGE))
    assert "forecasts the next 7 steps of **'sales'** from the last 28" in at.markdown[0].value
    assert "windows of the series" in at.success[0].value
    assert "timeseries.py" in files_of(at)
    assert any("the latest" in c.value and "rows of the series (sample_input.csv)" in c.value for c in at.caption)
    bundle = read_bundle(bundle_bytes(AppState.restore(workspace)))
    assert bundle.kind == "series"
    rows = read_table(history.to_csv(index=False).encode(), name="sales.csv")
    assert bundle.predict(rows).equals(trained.predict(rows))


def test_without_fitting_data_the_bundle_says_it_has_no_sample(app, builder_home):
    from tests.kind_fixtures import text_run

    trained = text_run()
    other = b"a,b\n1,2\n3,4\n"  # a table without the text column: it does not fit the run
    at = build(open_page(app, kind_workspace(builder_home, trained, other, "other.csv"), PAGE))
    assert "predicts **'topic'** from the text in 'text'" in at.markdown[0].value
    assert "on 11 texts" in at.success[0].value
    assert "No sample rows were given" in at.info[0].value
    assert any("no rows, only the column names" in c.value for c in at.caption)
