"""Unit tests of builder/predict_inputs.py: what the Predict page hands ``predict``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from builder.data.images import read_image_zip
from builder.errors import DataError
from builder.predict_inputs import history_for_chart, images_from_uploads, summarise_anomalies, text_row
from tests import kind_fixtures
from tests.image_fixtures import make_zip


@pytest.fixture(scope="module")
def images():
    return read_image_zip(kind_fixtures.digits_zip())



def test_files_and_zips_give_images_in_upload_order_skipping_junk(images):
    archive = make_zip({"b/2.png": images.data[2], "a/1.png": images.data[1], "__MACOSX/._1.png": b"x",
                      ".hidden.png": b"x", "notes.txt": b"x"})
    names, data = images_from_uploads([("first.png", images.data[0]), ("set.zip", archive)])
    assert names == ["first.png", "a/1.png", "b/2.png"]  # member paths, as predict.py names them
    assert data == [images.data[0], images.data[1], images.data[2]]
    two = images_from_uploads([("x.zip", make_zip({"1.png": images.data[0]})), ("y.zip", make_zip({"1.png": images.data[1]}))])
    assert two[0] == ["x.zip/1.png", "y.zip/1.png"]  # several zips: their names keep two 1.png apart


@pytest.mark.parametrize(("uploads", "message"), [
    ([("notes.txt", b"hello")], "'notes.txt' is not an image"),
    ([("empty.zip", None)], "holds no PNG"),
    ([("broken.zip", b"not a zip")], "not a zip archive"),
    ([("scan.jpg", b"not pixels")], "'scan.jpg' is damaged"),
])
def test_wrong_uploads_are_refused_by_name(uploads, message):
    uploads = [(name, make_zip({"readme.txt": b"x"}) if content is None else content) for name, content in uploads]
    with pytest.raises(DataError, match=message):
        images_from_uploads(uploads)


def test_too_many_images_are_refused(images):
    with pytest.raises(DataError, match="more than 2 images"):
        images_from_uploads([(f"{i}.png", images.data[i]) for i in range(3)], max_images=2)


def test_a_typed_text_is_a_one_row_table_the_text_model_predicts_from():
    trained = kind_fixtures.text_run()
    row = text_row("text", "some words about a topic")
    assert list(row.columns) == ["text"] and len(trained.predict(row)) == 1


def test_forecast_history_for_the_chart_is_the_cleaned_tail():
    trained = kind_fixtures.forecast_run()
    history = history_for_chart(trained.preprocessor, kind_fixtures.series_table(), 50)
    assert list(history.columns) == ["time", "value"] and len(history) == 50
    assert history["time"].is_monotonic_increasing and np.isfinite(history["value"]).all()
    assert pd.Series(history["time"]).diff().dropna().nunique() == 1  # gaps filled: a regular daily grid


def test_anomaly_summary_counts_flagged_rows():
    scored = pd.DataFrame({"anomaly_score": [0.1, 2.0, 0.3, 5.0], "is_anomaly": [False, True, False, True]})
    assert summarise_anomalies(scored).startswith("2 of 4 rows (50.0%) look unusual")
    assert summarise_anomalies(scored.assign(is_anomaly=False)).startswith("None of the 4 rows")
