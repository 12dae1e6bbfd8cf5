"""The Data page under AppTest: samples, uploads (good, messy, bad), the target and task, persistence,
and the other kinds of data: image zips, time series, texts, and finding unusual rows."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from builder.data import profile_table
from builder.data.images import read_image_zip
from builder.data.samples import KIND_SAMPLES, customer_messages, daily_sales, digit_pictures_zip
from builder.data.timeseries import MIN_WINDOWS, WindowSpec
from pages.components.data_view import guess_purpose, value_counts_sketch
from pages.components.image_view import class_examples, size_choices, thumbnail
from pages.components.series_view import suggest_window, time_columns_first, value_columns
from pages.components.text_view import examples, label_columns, text_columns_first, token_facts
from tests.conftest import APP_FILE
from tests.image_fixtures import make_digits_zip, make_zip, solid
from tests.tabular_fixtures import make_messy_table
from tests.test_data_text import make_text_table
from tests.test_data_timeseries import make_series

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
    # each note said once: in the "left out, and why" list, not again as a warning or a second list
    mentions = [m.value for m in at.markdown if "row ID" in m.value] + [w.value for w in at.warning if "row ID" in w.value]
    assert len(mentions) == 1 and any("left out" in e.label for e in at.expander)


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


def test_without_an_answer_like_column_the_page_asks_and_saves_nothing(app):
    at = open_data(app)
    table = make_messy_table(n=120).rename(columns={"target": "plan"})  # no name says "the answer"
    at.file_uploader[0].upload("accounts.csv", table.to_csv(index=False).encode(), "text/csv").run()
    assert not at.exception and widget(at.selectbox, TARGET_LABEL).value is None
    assert any("Which column should the model learn to predict" in i.value for i in at.info)
    assert state(at).data_spec is None and not at.success  # nothing saved, the sidebar ticks nothing
    widget(at.selectbox, TARGET_LABEL).set_value("plan").run()
    assert state(at).data_spec.target == "plan" and at.success


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


# --- pictures, time series, texts, unusual rows ------------------------------------------------------------

PURPOSE_LABEL = "What should the model do?"


def figures(at) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def upload(at: AppTest, name: str, content: bytes, mime: str = "text/csv") -> AppTest:
    at.file_uploader[0].upload(name, content, mime).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_a_digits_zip_shows_its_classes_and_saves_an_image_spec(app):
    at = upload(open_data(app), "digits.zip", make_digits_zip(n_per_class=12), "application/zip")
    assert not at.error
    assert metrics(at)["Images"] == "120" and metrics(at)["Classes"] == "10"
    assert metrics(at)["Typical size"] == "16x16" and metrics(at)["Colour"] == "Grayscale"
    shown = " ".join(m.value for m in at.markdown)
    assert all(f"**{digit}**  \n12 images" in shown for digit in range(10))  # a row of examples per class
    pictures = at.get("image")  # one row of 8 examples per class
    assert len(pictures) == 10 and all(len(p.proto.imgs) == 8 for p in pictures)
    spec = state(at).data_spec
    assert (spec.kind, spec.task, spec.target, spec.features) == ("images", "multiclass", None, [])
    assert spec.options == {"augment": True, "size": [16, 16]}
    source = state(at).data_source()
    assert isinstance(source, Path) and source.suffix == ".zip" and state(at).has_data
    assert "10 classes" in at.success[0].value
    # Mirroring is offered for photos, with why digits should not be mirrored.
    widget(at.radio, "Vary the training pictures").set_value("flip").run()
    widget(at.selectbox, "Size the model sees").set_value((28, 28)).run()
    assert state(at).data_spec.options == {"augment": "flip", "size": [28, 28]}
    assert any("a mirrored 2 is not a 2" in c.value for c in at.caption)


def test_an_empty_class_folder_is_warned_about_on_the_data_page(app):
    zipped = make_zip({"cats/a.png": solid((1, 2, 3)), "cats/b.png": solid((9, 9, 9)),
                       "dogs/c.png": solid((5, 5, 5)), "dogs/d.png": solid((7, 7, 7)), "birds/": b""})
    at = upload(open_data(app), "pets.zip", zipped, "application/zip")
    assert any("'birds' hold no image" in w.value for w in at.warning), [w.value for w in at.warning]


def test_an_image_zip_survives_a_new_session_with_the_same_link(app):
    at = upload(open_data(app), "digits.zip", make_digits_zip(n_per_class=5, classes=(1, 7)), "application/zip")
    token, saved = state(at).workspace.token, state(at).data_spec
    assert saved.task == "binary"
    fresh = AppTest.from_file(APP_FILE, default_timeout=60)
    fresh.query_params["ws"] = token
    open_data(fresh)
    assert state(fresh).data_spec == saved and state(fresh).images.counts == {"1": 5, "7": 5}
    assert state(fresh).table_name == "digits.zip" and state(fresh).df is None
    assert metrics(fresh)["Classes"] == "2"


@pytest.mark.parametrize("name, content, words", [
    ("photos.zip", b"this is not a zip", "not a usable image zip"),
    ("one class.zip", make_digits_zip(n_per_class=3, classes=(4,)), "one class ('4')"),
    ("damaged.zip", make_zip({"cats/a.png": solid((1, 2, 3)), "cats/b.png": solid((9, 9, 9)),
                              "dogs/c.png": b"\\x89PNG broken", "dogs/d.png": solid((5, 5, 5))}), "'dogs/c.png' is damaged"),
])
def test_a_bad_zip_says_why_and_keeps_the_previous_data(app, name, content, words):
    at = open_data(app)
    at.button(key="sample_iris").click().run()
    before = state(at).data_spec
    upload(at, name, content, "application/zip")
    assert any(words in e.value and "previous table is kept" in e.value for e in at.error), \
        [e.value for e in at.error]
    assert state(at).table_name == "Iris flowers (sample)" and state(at).images is None
    assert state(at).data_spec == before and metrics(at)["Rows"] == "150"
    at.run()  # the refused file is not read again, and its message stays
    assert any(words in e.value for e in at.error)


def test_a_bad_zip_after_pictures_keeps_the_pictures(app):
    at = upload(open_data(app), "digits.zip", make_digits_zip(n_per_class=4), "application/zip")
    before = state(at).data_spec
    at.file_uploader[0].upload("more.zip", b"PK\\x03\\x04 truncated", "application/zip").run()
    assert any("previous images are kept" in e.value for e in at.error)
    assert state(at).data_spec == before and metrics(at)["Images"] == "40"


def test_a_time_series_shows_its_gaps_a_window_picture_and_the_time_split(app):
    at = upload(open_data(app), "sales.csv", make_series().to_csv(index=False).encode())
    assert widget(at.radio, PURPOSE_LABEL).value == "series"  # a date in every row, a number column
    assert widget(at.selectbox, "The time column").value == "date"
    assert widget(at.selectbox, "The column to forecast").value == "sales"
    said = " ".join(m.value for m in at.markdown)
    assert "3 gaps: the longest misses 5 days after 2024-03-02" in said
    assert "occurs more than once" in said and "Suggested season: 7 steps" in said
    assert widget(at.number_input, "Past steps seen (window)").value == 28  # 4 weekly cycles
    assert widget(at.number_input, "Steps ahead (horizon)").value == 1
    picture = next(f for f in figures(at) if any("What the model sees" in (t.get("name") or "") for t in f["data"]))
    names = [t["name"] for t in picture["data"]]
    assert "What the model sees (28 steps)" in names and "What it forecasts (1 step)" in names
    assert any("split is by time, never shuffled" in i.value for i in at.info)
    spec = state(at).data_spec
    assert (spec.kind, spec.task, spec.target, spec.features) == ("series", "forecast", "sales", ["sales"])
    assert spec.options == {"time_column": "date", "window": 28, "horizon": 1, "stride": 1, "fill": "forward"}
    assert "4 weeks (28 steps)" in at.success[0].value
    # Too long a window for the rows: the fix is named and nothing unusable is saved; the data stays.
    widget(at.number_input, "Past steps seen (window)").set_value(410).run()
    assert any("example window(s)" in e.value and "lower 'window'" in e.value for e in at.error), [e.value for e in at.error]
    assert state(at).data_spec is None and state(at).df is not None
    widget(at.number_input, "Past steps seen (window)").set_value(14).run()
    assert state(at).data_spec.options["window"] == 14 and not at.error


def test_a_time_column_without_dates_is_refused_in_plain_words(app):
    at = upload(open_data(app), "sales.csv", make_series().assign(shop=lambda d: "north").to_csv(index=False).encode())
    widget(at.radio, PURPOSE_LABEL).set_value("series").run()
    widget(at.selectbox, "The time column").set_value("shop").run()
    assert any("does not hold dates or times" in e.value for e in at.error), [e.value for e in at.error]
    assert state(at).data_spec is None and not at.exception


def test_a_text_table_is_read_as_texts_with_examples(app):
    at = upload(open_data(app), "tickets.csv", make_text_table(n=200).to_csv(index=False).encode())
    assert widget(at.radio, PURPOSE_LABEL).value == "text"
    assert widget(at.selectbox, "The column with the texts").value == "text"
    assert widget(at.selectbox, "The label to predict").value == "topic"
    spec = state(at).data_spec
    assert (spec.kind, spec.task, spec.target, spec.features) == ("text", "multiclass", "topic", ["text"])
    assert spec.options == {"text_column": "text"}
    assert any("words per text" in c.value and "95% of the texts" in c.value for c in at.caption)
    shown = next(d.value for d in at.dataframe if list(d.value.columns) == ["topic", "text"])
    assert len(shown) == 6 and shown["topic"].nunique() == 3  # every label shows
    widget(at.selectbox, "The column with the texts").set_value("topic").run()  # a category, not text
    assert any("too short to learn from" in e.value or "No other column" in e.value for e in at.error)
    assert state(at).data_spec is None


def test_a_text_column_of_numbers_is_named_as_such_not_the_label(app):
    """Numbers where the texts should be: the page says that column holds numbers (not that the
    label is missing), offers it rather than the label, and points to a table model."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"message": rng.integers(1000, 99999, 120), "label": rng.choice(["spam", "ham"], 120)})
    at = upload(open_data(app), "messages.csv", table.to_csv(index=False).encode())
    widget(at.radio, PURPOSE_LABEL).set_value("text").run()
    assert widget(at.selectbox, "The column with the texts").value == "message"
    errors = [e.value for e in at.error]
    assert len(errors) == 1, errors
    assert "'message' holds numbers" in errors[0] and "No other column" not in errors[0]
    assert "No column of this table holds written text" in errors[0]
    assert "To predict 'label' from the other columns, choose 'Predict a column' above" in errors[0]
    assert state(at).data_spec is None
    # With a column of real texts beside it, that column comes first and a wrong pick names it.
    texts = make_text_table(n=120).assign(code=lambda d: np.arange(len(d)) * 7)
    at = upload(at, "tickets.csv", texts.to_csv(index=False).encode())
    widget(at.radio, PURPOSE_LABEL).set_value("text").run()
    assert widget(at.selectbox, "The column with the texts").options[0] == "text"
    widget(at.selectbox, "The column with the texts").set_value("code").run()
    assert any("'code' holds numbers" in e.value and "'text' holds written text: choose it above" in e.value
               for e in at.error), [e.value for e in at.error]


def test_finding_unusual_rows_needs_no_column_to_predict(app):
    at = open_data(app)
    at.button(key="sample_wine").click().run()
    widget(at.radio, PURPOSE_LABEL).set_value("anomaly").run()
    spec = state(at).data_spec
    assert (spec.kind, spec.task, spec.target) == ("table", "anomaly", None)
    assert "cultivar" in spec.features and len(spec.features) == 14
    assert "score how unusual each row is" in at.success[0].value
    assert at.dataframe[0].value.set_index("Column").loc["alcohol", "Role"] == "Input"
    widget(at.multiselect, "Columns to look at").set_value([]).run()
    assert any("at least one column to look at" in e.value for e in at.error) and state(at).data_spec is None


@pytest.mark.parametrize("name", list(KIND_SAMPLES))
def test_each_kind_sample_loads_ready_to_build(app, name):
    at = open_data(app)
    at.button(key=f"sample_{name}").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    sample = KIND_SAMPLES[name]
    assert state(at).has_data and state(at).data_spec.kind == sample.kind
    assert state(at).table_name == f"{sample.title} (sample)"
    assert any(link.proto.page == "build" for link in at.get("page_link"))


# --- the helpers behind the panels ------------------------------------------------------------------------


def test_suggested_windows_see_a_few_seasons_and_leave_enough_examples():
    assert suggest_window(420, 7) == WindowSpec(28, 1, 1)  # daily: four weeks
    assert suggest_window(24 * 60, 24).window == 96  # hourly: four days
    assert suggest_window(120, 12).window == 48  # monthly, ten years: four years
    assert suggest_window(80, 12).window == 12  # monthly, under seven years: 48 or 24 leave too few
    short = suggest_window(50, 7)
    assert short.n_windows(50) * 0.7 - 1 >= MIN_WINDOWS and short.window >= 2
    assert suggest_window(10, None).window == 2  # hopeless: the smallest, and the page says why
    assert suggest_window(1_000_000, 60).stride > 1  # very long: fewer windows


def test_column_orders_for_series_and_texts():
    series = profile_table(make_series().assign(shop="north", visitors=lambda d: np.arange(len(d)) % 50))
    assert time_columns_first(series)[0] == "date"
    assert value_columns(series, "date") == ["sales", "visitors"]
    texts = profile_table(make_text_table(n=120).assign(score=lambda d: np.arange(len(d)) % 5))
    assert text_columns_first(texts)[0] == "text"
    assert label_columns(texts, "text") == ["topic", "score"]  # categories first


def test_purpose_guess():
    assert guess_purpose(profile_table(make_series()))[0] == "series"
    assert guess_purpose(profile_table(make_text_table(n=100)))[0] == "text"
    assert guess_purpose(profile_table(make_messy_table(n=100))) == ("table", None)


def test_token_facts_and_examples():
    df = pd.DataFrame({"text": ["one two three", "four five", None, "six", "天气很好"], "label": list("ababa")})
    facts = token_facts(df["text"])
    assert facts.counted == 4 and facts.longest == 4 and facts.median == 2.5  # CJK: one token per character
    shown = examples(df, "text", "label", n=3)
    assert set(shown["label"][:2]) == {"a", "b"} and shown["text"].notna().all()  # every label first


def test_image_helpers():
    images = read_image_zip(make_digits_zip(n_per_class=3, classes=(1, 2), size=20))
    assert size_choices(images.sizes)[0] == (20, 20) and (16, 16) in size_choices(images.sizes)
    picked = class_examples(images.labels, images.classes, per_class=2)
    assert list(picked) == ["1", "2"] and all(len(v) == 2 for v in picked.values())
    assert all(images.labels[i] == name for name, idx in picked.items() for i in idx)
    small = Image.open(io.BytesIO(thumbnail(images.data[0], side=64)))
    assert small.size == (64, 64)
    big = Image.open(io.BytesIO(thumbnail(solid((1, 2, 3), size=(400, 200)), side=64)))
    assert big.size == (64, 32)


def test_samples_of_the_other_kinds():
    images = read_image_zip(digit_pictures_zip())
    assert len(images) == 1797 and images.classes == [str(d) for d in range(10)] and images.sizes[0] == (16, 16)
    sales = daily_sales()
    assert list(sales.columns) == ["date", "sales", "temperature"] and "2023-12-25" not in set(sales["date"])
    messages = customer_messages()
    assert sorted(messages["topic"].unique()) == ["billing", "delivery", "login", "product"]
    assert messages.equals(customer_messages())  # the same every time
