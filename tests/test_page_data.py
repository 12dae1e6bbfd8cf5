"""The Data page under AppTest: samples, uploads (good, messy, bad), the target and task, persistence."""

from __future__ import annotations

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from pages.components.data_view import value_counts_sketch
from tests.conftest import APP_FILE
from tests.tabular_fixtures import make_messy_table

TARGET_LABEL = "The column to predict"
TASK_LABEL = "What kind of prediction?"


def open_data(at: AppTest) -> AppTest:
    at.run()
    at.switch_page("pages/data.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def widget(elements, label: str):
    found = [e for e in elements if e.label == label]
    assert found, f"no widget labelled {label!r}"
    return found[0]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def state(at: AppTest):
    return at.session_state["app"]


def test_empty_state_offers_upload_and_samples(app):
    at = open_data(app)
    assert at.title[0].value == "Data"
    assert "Upload a table or pick a sample" in at.info[0].value
    assert len(at.get("file_uploader")) == 1
    assert {b.key for b in at.button} >= {"sample_iris", "sample_wine", "sample_breast_cancer",
                                         "sample_diabetes", "sample_digits"}
    assert not at.metric and state(at).data_spec is None


@pytest.mark.parametrize("sample, rows, cols, target, task", [
    ("iris", "150", "5", "species", "multiclass"),
    ("diabetes", "442", "11", "progression", "regression"),
])
def test_a_sample_shows_its_size_and_infers_target_and_task(app, sample, rows, cols, target, task):
    at = open_data(app)
    at.button(key=f"sample_{sample}").click().run()
    assert not at.exception and not at.error
    assert metrics(at)["Rows"] == rows and metrics(at)["Columns"] == cols
    assert widget(at.selectbox, TARGET_LABEL).value == target
    assert widget(at.radio, TASK_LABEL).value == task
    assert any("Suggested:" in c.value and target in c.value for c in at.caption)
    spec = state(at).data_spec  # saved straight away: the sidebar ticks Data
    assert spec.target == target and spec.task == task and target not in spec.features
    assert any("build" in link.proto.page for link in at.get("page_link"))


def test_a_messy_upload_is_profiled_with_warnings(app):
    at = open_data(app)
    content = make_messy_table(n=300).to_csv(index=False).encode("utf-8")
    at.file_uploader[0].upload("crm export.csv", content, "text/csv").run()
    assert not at.exception and not at.error
    assert state(at).table_name == "crm export.csv"
    assert metrics(at)["Rows"] == "300" and metrics(at)["Columns"] == "10"
    columns, preview = at.dataframe[0].value, at.dataframe[1].value
    assert len(preview) == 200 and "income" in preview.columns
    customer = columns.set_index("Column").loc["customer_id"]
    assert customer["Role"] == "Left out" and "row ID" in customer["Notes"]
    assert columns.set_index("Column").loc["target", "Role"] == "Predicted"
    assert widget(at.radio, TASK_LABEL).value == "binary"
    assert "customer_id" not in state(at).data_spec.features
    assert any("row ID" in w.value for w in at.warning)


@pytest.mark.parametrize("name, content, words", [
    ("empty.csv", b"", "is empty"),
    ("photo.csv", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "PNG image"),
])
def test_a_bad_file_says_why_and_keeps_the_previous_table(app, name, content, words):
    at = open_data(app)
    at.button(key="sample_iris").click().run()
    before = state(at).data_spec
    at.file_uploader[0].upload(name, content, "text/csv").run()
    assert not at.exception
    assert any(words in e.value and name in e.value and "previous table is kept" in e.value
               for e in at.error), [e.value for e in at.error]
    assert state(at).table_name == "Iris flowers (sample)" and metrics(at)["Rows"] == "150"
    assert state(at).data_spec == before


def test_changing_the_target_updates_the_task_and_the_saved_spec(app):
    at = open_data(app)
    at.button(key="sample_iris").click().run()
    widget(at.selectbox, TARGET_LABEL).set_value("petal width (cm)").run()
    assert not at.exception
    assert widget(at.radio, TASK_LABEL).value == "regression"
    spec = state(at).data_spec
    assert spec.target == "petal width (cm)" and spec.task == "regression"
    assert "species" in spec.features and "petal width (cm)" not in spec.features
    # The user can overrule the guess; an impossible choice is explained and not saved.
    widget(at.radio, TASK_LABEL).set_value("binary").run()
    assert any("needs exactly 2" in e.value for e in at.error)
    assert state(at).data_spec is None


def test_unticking_every_input_asks_for_one(app):
    at = open_data(app)
    at.button(key="sample_wine").click().run()
    widget(at.multiselect, "Columns to learn from").set_value([]).run()
    assert any("at least one column" in e.value for e in at.error)
    assert state(at).data_spec is None


def test_the_data_spec_survives_a_new_session_with_the_same_link(app):
    at = open_data(app)
    at.button(key="sample_diabetes").click().run()
    widget(at.selectbox, TARGET_LABEL).set_value("bmi").run()
    token, saved = state(at).workspace.token, state(at).data_spec
    fresh = AppTest.from_file(APP_FILE, default_timeout=60)
    fresh.query_params["ws"] = token
    open_data(fresh)
    assert state(fresh).workspace.token == token
    assert state(fresh).data_spec == saved and state(fresh).table_name == "Diabetes progression (sample)"
    assert widget(fresh.selectbox, TARGET_LABEL).value == "bmi"
    assert widget(fresh.radio, TASK_LABEL).value == "regression"


def test_mini_histogram_counts():
    numbers = pd.Series([float(i) for i in range(100)] + [None])
    counts = value_counts_sketch(numbers, "numeric")
    assert sum(counts) == 100 and len(counts) == 12
    assert value_counts_sketch(pd.Series(["a", "b", "a", None]), "categorical") == [2, 1]
    assert value_counts_sketch(pd.Series([None, None], dtype="str"), "categorical") == []
