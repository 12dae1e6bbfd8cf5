"""AppTest of the Predict page: empty state, uploaded rows, a missing column, a wrong bundle, the form."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from builder.data import DataSpec
from builder.data.images import read_image_zip
from builder.pipeline import train_model
from builder.train import TrainConfig
from builder.workspace import Workspace
from tests import kind_fixtures
from tests.app_helpers import open_page
from tests.conftest import APP_FILE
from tests.kind_fixtures import open_with_run
from tests.tabular_fixtures import make_messy_table

PAGE = "pages/predict.py"
FEATURES = ["age", "income", "color", "signup_date", "member", "visits"]  # numbers, money text, category, date, yes/no


@pytest.fixture(scope="module")
def messy_model():
    """One small multiclass model on a messy CRM-like table, shared by the file (training is the slow part)."""
    df = make_messy_table(300, task="multiclass")
    data_spec = DataSpec("target", "multiclass", FEATURES)
    return df, train_model(df, data_spec, TrainConfig(epochs=3), with_baseline=False)


def make_workspace(home, model=None) -> Workspace:
    workspace = Workspace.open(None, home=home)
    if model is not None:
        df, trained = model
        workspace.save_table("crm.csv", df.to_csv(index=False).encode())
        workspace.save_state("data_spec", trained.data_spec.to_dict())
        workspace.save_state("run_id", workspace.save_run(trained, "MLP on crm.csv"))
    return workspace


def new_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows as a user would bring them: some holes, a category never seen, an extra column, no target."""
    rows = df.drop(columns="target").head(12).copy()
    rows.loc[1, "age"] = np.nan
    rows.loc[2, "income"] = ""
    rows.loc[3, "color"] = "turquoise"
    rows.loc[4, "member"] = None
    rows["notes"] = "extra column"
    return rows


def assert_downloads(at) -> None:
    """The predictions can be downloaded as CSV and, beside it, as Excel."""
    assert [b.label for b in at.get("download_button")] == ["Download predictions (CSV)",
                                                            "Download predictions (Excel)"]


def upload_rows(at, name: str, content: bytes):
    uploader = next(u for u in at.get("file_uploader") if u.proto.id and "rows" in u.proto.id)
    return uploader.upload(name, content, "text/csv").run()


def test_without_a_model_the_page_points_to_train(app, builder_home):
    at = open_page(app, make_workspace(builder_home), PAGE)
    assert "No model is trained yet" in at.info[0].value
    assert ":material/radio_button_unchecked: Predict" in " ".join(m.value for m in at.sidebar.markdown)
    assert [link.proto.label for link in at.get("page_link")] == ["Go to Train"]
    at = at.radio(key="predict_source").set_value("A bundle file").run()
    assert not at.exception
    assert "Upload a bundle" in at.info[0].value


def test_uploaded_rows_get_one_prediction_each_like_the_app(app, builder_home, messy_model):
    df, trained = messy_model
    at = open_page(app, make_workspace(builder_home, messy_model), PAGE)
    rows = new_rows(df)
    at = upload_rows(at, "new customers.csv", rows.to_csv(index=False).encode())
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]

    shown = at.dataframe[0].value
    expected = trained.predict(pd.read_csv(io.StringIO(rows.to_csv(index=False))))
    assert len(shown) == len(rows)
    chances = [f"probability_{c}" for c in trained.preprocessor.classes]
    np.testing.assert_allclose(shown[chances].sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(shown[chances].to_numpy(float), expected[chances].to_numpy(float), atol=1e-6)
    assert shown["prediction"].tolist() == expected["prediction"].tolist()
    assert shown["age"].isna().iloc[1] and shown["color"].iloc[3] == "turquoise"  # inputs beside predictions
    assert "notes" not in shown.columns
    assert shown.columns[0] == "customer_id"  # ID-like: kept first, so the rows join back
    assert shown["customer_id"].tolist() == rows["customer_id"].tolist()
    assert_downloads(at)
    # The journey ticks Predict once predictions were shown, also after a refresh (a new session).
    # (AppTest drops the sidebar of a page run that shows results; a browser shows it: read the state.)
    assert at.session_state["app"].predicted
    fresh = open_page(AppTest.from_file(APP_FILE, default_timeout=60), at.session_state["app"].workspace, PAGE)
    assert ":material/check_circle: Predict" in " ".join(m.value for m in fresh.sidebar.markdown)


def test_the_columns_to_keep_start_with_the_id_like_ones_and_can_be_changed(app, builder_home, messy_model):
    df, trained = messy_model
    at = open_page(app, make_workspace(builder_home, messy_model), PAGE)
    rows = df.drop(columns="target").head(30).assign(region=["north", "south", "east"] * 10)
    at = upload_rows(at, "rows.csv", rows.to_csv(index=False).encode())
    assert not at.exception and not at.error, [e.value for e in at.error]
    keep = at.multiselect[0]
    assert keep.value == ["customer_id"] and "region" in keep.options and "prediction" not in keep.options
    at = keep.set_value(["region", "customer_id"]).run()
    assert not at.exception and not at.error
    shown = at.dataframe[0].value
    assert list(shown.columns[:3]) == ["region", "customer_id", "prediction"]
    assert shown["region"].tolist() == rows["region"].tolist()
    at = at.multiselect[0].set_value([]).run()
    assert at.dataframe[0].value.columns[0] == "prediction"


def test_values_outside_the_training_range_are_flagged_and_counted(app, builder_home, messy_model):
    from builder.decide import out_of_range

    df, trained = messy_model
    at = open_page(app, make_workspace(builder_home, messy_model), PAGE)
    rows = new_rows(df)
    rows.loc[5, "visits"] = 9999
    at = upload_rows(at, "rows.csv", rows.to_csv(index=False).encode())
    assert not at.exception and not at.error, [e.value for e in at.error]
    expected = out_of_range(trained.preprocessor, pd.read_csv(io.StringIO(rows.to_csv(index=False))))
    flagged = int((expected != "").sum())
    assert flagged >= 2  # the unseen colour and the 9,999 visits at least
    shown = at.dataframe[0].value
    assert shown["out_of_range"].tolist() == expected.tolist()
    assert "turquoise" in shown["out_of_range"].iloc[3] and "visits 9,999 above" in shown["out_of_range"].iloc[5]
    warning = next(w.value for w in at.warning if "outside what the model saw" in w.value)
    assert warning.startswith(f"{flagged} rows have values outside what the model saw in training")


def test_rows_missing_a_column_say_which_and_list_the_expected_ones(app, builder_home, messy_model):
    df, trained = messy_model
    at = open_page(app, make_workspace(builder_home, messy_model), PAGE)
    at = upload_rows(at, "rows.csv", new_rows(df).drop(columns="color").to_csv(index=False).encode())
    assert not at.exception
    message = at.error[0].value
    assert "'color'" in message
    assert all(f"'{c}'" in message for c in FEATURES)  # the expected columns are listed
    assert not at.dataframe and not at.get("download_button")
    assert at.session_state["app"].trained is not None


def test_a_wrong_bundle_file_is_refused_and_the_trained_model_stays(app, builder_home, messy_model):
    at = open_page(app, make_workspace(builder_home, messy_model), PAGE)
    at = at.radio(key="predict_source").set_value("A bundle file").run()
    at = at.get("file_uploader")[0].upload("model.zip", b"these are not the bytes of a zip", "application/zip").run()
    assert not at.exception
    assert "not a model bundle" in at.error[0].value
    assert "Export" in at.error[0].value  # says what to do
    assert at.session_state["app"].trained is not None
    at = at.radio(key="predict_source").set_value("The model just trained").run()
    assert not at.exception and not at.error
    assert "This model predicts **'target'**" in " ".join(m.value for m in at.markdown)


def test_an_exported_bundle_predicts_like_the_trained_model(app, builder_home, messy_model, tmp_path):
    from builder.export import write_bundle

    df, trained = messy_model
    write_bundle(trained, tmp_path / "crm-mlp-bundle.zip", sample_rows=df)
    at = open_page(app, make_workspace(builder_home), PAGE)
    at = at.radio(key="predict_source").set_value("A bundle file").run()
    at = at.get("file_uploader")[0].upload("crm-mlp-bundle.zip", (tmp_path / "crm-mlp-bundle.zip").read_bytes(),
                                           "application/zip").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    rows = new_rows(df)
    at = upload_rows(at, "rows.csv", rows.to_csv(index=False).encode())
    assert not at.exception and not at.error
    expected = trained.predict(pd.read_csv(io.StringIO(rows.to_csv(index=False))))
    assert at.dataframe[0].value["prediction"].tolist() == expected["prediction"].tolist()


def test_the_form_predicts_one_row(app, builder_home, messy_model):
    df, trained = messy_model
    at = open_page(app, make_workspace(builder_home, messy_model), PAGE)
    at = at.radio(key="predict_mode").set_value("Fill in one row").run()
    assert not at.exception, at.exception
    assert {s.label for s in at.selectbox} == {"color", "member"}
    assert {n.label for n in at.number_input} == {"age", "income", "visits"}
    assert at.metric[0].value in trained.preprocessor.classes  # defaults already give a prediction

    at = next(b for b in at.button if b.label == "Fill with a sample row").click().run()
    assert not at.exception, at.exception
    first = df.head(1)
    assert at.metric[0].value == trained.predict(first)["prediction"].iloc[0]
    assert at.get("plotly_chart")  # the chances of each class for this row

    colour = next(s for s in at.selectbox if s.label == "color")
    other = next(c for c in colour.options if c != colour.value)
    at = colour.set_value(other).run()
    at = at.number_input(key=next(n.key for n in at.number_input if n.label == "age")).set_value(81.0).run()
    assert not at.exception, at.exception
    row = first.drop(columns="target").assign(color=other, age=81.0)
    assert at.metric[0].value == trained.predict(row)["prediction"].iloc[0]
    assert_downloads(at)


def test_predictions_csv_round_trips(messy_model):
    from pages.components.bundle_view import predictions_csv

    df, trained = messy_model
    predictions = trained.predict(new_rows(df))
    back = pd.read_csv(io.BytesIO(predictions_csv(predictions)))
    assert list(back.columns) == ["prediction", *[f"probability_{c}" for c in trained.preprocessor.classes]]
    assert back["prediction"].tolist() == predictions["prediction"].tolist()
    np.testing.assert_allclose(back.drop(columns="prediction").to_numpy(float),
                               predictions.drop(columns="prediction").to_numpy(float), rtol=1e-12)


# --- images, forecasts, text and anomaly scores ----------------------------------------------------


def uploader(at, word: str):
    return next(u for u in at.get("file_uploader") if u.proto.id and word in u.proto.id)


def test_images_from_files_and_a_zip_get_a_prediction_each_with_thumbnails(app, builder_home):
    trained = kind_fixtures.image_run()
    at = open_with_run(app, builder_home, trained, PAGE)
    said = " ".join(m.value for m in at.markdown)
    assert "sorts images into 10 classes: 0, 1, 2, 3, 4, 5, 6, 7 and 2 more." in said and "..." not in said
    assert "Upload images" in at.info[0].value
    images = read_image_zip(kind_fixtures.digits_zip())
    loose = [(f"loose{i}.png", images.data[i], "image/png") for i in range(2)]
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as zf:
        for i in range(2, 7):
            zf.writestr(f"batch/{images.paths[i].rsplit('/', 1)[-1]}", images.data[i])
        zf.writestr("__MACOSX/._junk.png", b"junk")
    at = uploader(at, "images").set_value([*loose, ("batch.zip", zipped.getvalue(), "application/zip")]).run()
    assert not at.exception and not at.error, [e.value for e in at.error]

    shown = next(d.value for d in at.dataframe if "file" in d.value.columns)
    assert len(shown) == 7 and shown["file"].iloc[0] == "loose0.png"
    assert shown["file"].iloc[2].startswith("batch/")
    expected = trained.predict(images.data[:7], files=list(shown["file"]))
    assert shown["prediction"].tolist() == expected["prediction"].tolist()
    assert len(at.get("image")) == 7  # a thumbnail per image
    assert_downloads(at)
    # The summary reads with number classes too: "3 (2 images), 7 (1 image)", not "3 2, 7 1".
    counts = shown["prediction"].astype(str).value_counts()
    summary = next(c.value for c in at.caption if c.value.startswith("Predicted: "))
    label, count = next(iter(counts.items()))
    assert summary.startswith(f"Predicted: {label} ({count} image{'s' if count > 1 else ''})"), summary
    assert summary.count("(") == len(counts)


def test_a_damaged_image_is_refused_by_name(app, builder_home):
    at = open_with_run(app, builder_home, kind_fixtures.image_run(), PAGE)
    at = uploader(at, "images").set_value([("scan.png", b"these are not pixels", "image/png")]).run()
    assert not at.exception
    assert "scan.png" in at.error[0].value
    assert not at.get("download_button")


def test_a_forecast_from_an_uploaded_history_shows_table_and_chart(app, builder_home):
    trained = kind_fixtures.forecast_run()
    series = kind_fixtures.series_table()
    at = open_with_run(app, builder_home, trained, PAGE, table=series)
    assert not at.exception and not at.error, [e.value for e in at.error]
    # Without an upload, the forecast follows the loaded data.
    table = next(d.value for d in at.dataframe if "prediction" in d.value.columns)
    assert len(table) == 7 and list(table.columns) == ["date", "prediction"]

    history = series.sort_values("date").head(200)
    at = upload_rows(at, "history.csv", history.to_csv(index=False).encode())
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = next(d.value for d in at.dataframe if "prediction" in d.value.columns)
    expected = trained.predict(pd.read_csv(io.StringIO(history.to_csv(index=False))))
    np.testing.assert_allclose(table["prediction"].to_numpy(float), expected["prediction"].to_numpy(float))
    names = {t.get("name") for chart in at.get("plotly_chart") for t in json.loads(chart.proto.spec)["data"]}
    assert {"History", "Forecast"} <= names
    assert_downloads(at)

    at = upload_rows(at, "short.csv", history.head(10).to_csv(index=False).encode())
    assert not at.exception
    assert "last 28 steps" in at.error[0].value


def test_a_text_model_takes_a_typed_text_or_a_file(app, builder_home):
    trained = kind_fixtures.text_run()
    texts = kind_fixtures.text_table()
    at = open_with_run(app, builder_home, trained, PAGE, table=texts)
    at = at.radio(key="predict_mode").set_value("Type one text").run()
    assert "Type a text" in at.info[0].value
    text = texts["text"].dropna().iloc[0]
    at = at.text_area[0].input(text).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.metric[0].value == trained.predict(pd.DataFrame({"text": [text]}))["prediction"].iloc[0]

    at = at.radio(key="predict_mode").set_value("Upload a file of rows").run()
    at = upload_rows(at, "texts.csv", texts.head(15).drop(columns="topic").to_csv(index=False).encode())
    assert not at.exception and not at.error
    assert len(at.dataframe[0].value) == 15


def test_an_anomaly_model_scores_uploaded_rows(app, builder_home):
    trained = kind_fixtures.anomaly_run()
    rows = kind_fixtures.anomaly_table().head(40)
    at = open_with_run(app, builder_home, trained, PAGE)
    at = upload_rows(at, "rows.csv", rows.to_csv(index=False).encode())
    assert not at.exception and not at.error, [e.value for e in at.error]
    expected = trained.predict(pd.read_csv(io.StringIO(rows.to_csv(index=False))))
    flagged = int(expected["is_anomaly"].sum())
    assert next(m for m in at.metric if m.label == "Rows flagged").value == f"{flagged} of 40"
    table = next(d.value for d in at.dataframe if "anomaly_score" in d.value.columns)
    assert len(table) == 40 and table["is_anomaly"].iloc[0] == bool(flagged)
    assert_downloads(at)


def test_an_image_bundle_predicts_its_example_images_like_the_trained_model(app, builder_home, tmp_path):
    from builder.export import bundle_samples, write_bundle

    trained = kind_fixtures.image_run()
    path = tmp_path / "digits-cnn-bundle.zip"
    write_bundle(trained, path, sample_rows=read_image_zip(kind_fixtures.digits_zip()))
    at = open_page(app, make_workspace(builder_home), PAGE)
    at = at.radio(key="predict_source").set_value("A bundle file").run()
    at = at.get("file_uploader")[0].upload(path.name, path.read_bytes(), "application/zip").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "sorts images into 10 classes" in " ".join(m.value for m in at.markdown)
    at = at.toggle(key="predict_examples").set_value(True).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown = next(d.value for d in at.dataframe if "file" in d.value.columns)
    examples = bundle_samples(path.read_bytes())  # the bundle's own example images
    assert shown["file"].tolist() == [name for name, _ in examples]
    assert len(at.get("image")) == len(examples)
    expected = trained.predict([data for _, data in examples], files=[name for name, _ in examples])
    assert shown["prediction"].tolist() == expected["prediction"].tolist()


def test_example_images_from_the_loaded_zip_need_no_upload(app, builder_home):
    trained = kind_fixtures.image_run()
    at = open_with_run(app, builder_home, trained, PAGE, images=kind_fixtures.digits_zip())
    at = at.toggle(key="predict_examples").set_value(True).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown = next(d.value for d in at.dataframe if "file" in d.value.columns)
    assert len(shown) == 12 and shown["file"].nunique() == 12
    assert shown["file"].str.split("/").str[-2].nunique() >= 8  # spread over the classes
    truths = [c.value for c in at.caption if "really" in c.value]  # the gallery shows the true label
    assert len(truths) == 12 and all(f"really {path.split('/')[-2]}" in said for path, said in
                                     zip(shown["file"], truths, strict=True))


def test_class_lists_and_prediction_counts_read_in_words():
    from pages.components.predict_view import class_list, prediction_counts

    assert class_list(["a"]) == "a" and class_list(["no", "yes"]) == "no and yes"
    assert class_list([str(d) for d in range(10)]) == "0, 1, 2, 3, 4, 5, 6, 7 and 2 more"
    predictions = pd.DataFrame({"prediction": [3, 3, 7]})
    assert prediction_counts(predictions, "images") == "Predicted: 3 (2 images), 7 (1 image)."
    assert prediction_counts(predictions, "table") == "Predicted: 3 (2 rows), 7 (1 row)."
