"""AppTest of the Predict page: empty state, uploaded rows, a missing column, a wrong bundle, the form."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from builder.data import DataSpec
from builder.pipeline import train_model
from builder.train import TrainConfig
from builder.workspace import Workspace
from tests.tabular_fixtures import make_messy_table

from app_helpers import open_page

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


def upload_rows(at, name: str, content: bytes):
    uploader = next(u for u in at.get("file_uploader") if u.proto.id and "rows" in u.proto.id)
    return uploader.upload(name, content, "text/csv").run()


def test_without_a_model_the_page_points_to_train(app, builder_home):
    at = open_page(app, make_workspace(builder_home), PAGE)
    assert "No model is trained yet" in at.info[0].value
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
    assert len(at.get("download_button")) == 1


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
    assert len(at.get("download_button")) == 1


def test_predictions_csv_round_trips(messy_model):
    from pages.components.bundle_view import predictions_csv

    df, trained = messy_model
    predictions = trained.predict(new_rows(df))
    back = pd.read_csv(io.BytesIO(predictions_csv(predictions)))
    assert list(back.columns) == ["prediction", *[f"probability_{c}" for c in trained.preprocessor.classes]]
    assert back["prediction"].tolist() == predictions["prediction"].tolist()
    np.testing.assert_allclose(back.drop(columns="prediction").to_numpy(float),
                               predictions.drop(columns="prediction").to_numpy(float), rtol=1e-12)
