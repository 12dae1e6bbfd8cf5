"""The Build page under AppTest: families, the layer editor, live shapes, problems and fixes, files."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from builder.data import DataSpec, load_sample, prepare_tabular
from builder.editor import TYPE_COLUMN
from builder.layers import LAYERS
from builder.shapes import infer_shapes
from builder.spec import ModelSpec
from builder.workspace import Workspace
from pages.components.build_view import (
    MAX_TABLE_ROWS,
    design_file_bytes,
    first_unsized,
    human_bytes,
    shape_table,
    table_height,
)
from tests.app_helpers import open_page
from tests.conftest import APP_FILE
from tests.image_fixtures import make_digits_zip
from tests.tabular_fixtures import make_messy_table
from tests.test_data_text import make_text_table
from tests.test_data_timeseries import make_series


def state(at: AppTest):
    return at.session_state["app"]


def open_build(at: AppTest, sample: str | None = "iris") -> AppTest:
    at.run()
    if sample is not None:
        at.switch_page("pages/data.py").run()
        at.button(key=f"sample_{sample}").click().run()
    at.switch_page("pages/build.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def shapes(at: AppTest):
    """The live table (the second data frame; the first is the layer editor)."""
    return at.dataframe[1].value


def edit(at: AppTest, delta: dict) -> AppTest:
    key = f"layer_editor_{state(at).editor_version}"
    at.session_state[key] = {"edited_rows": {}, "added_rows": [], "deleted_rows": [], **delta}
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def expected_report(sample: str, design: ModelSpec):
    """What builder says about ``design`` on the sample, computed without the app."""
    df = load_sample(sample)
    guess = {"iris": ("species", "multiclass"), "diabetes": ("progression", "regression")}[sample]
    features = [c for c in df.columns if c != guess[0]]
    prepared = prepare_tabular(df, DataSpec(guess[0], guess[1], features))
    return infer_shapes(design, prepared.input_shape, prepared.n_outputs)


def test_without_data_the_page_says_so_and_links_to_data(app):
    at = open_build(app, sample=None)
    assert "Choose your data first" in at.info[0].value
    assert [link.proto.label for link in at.get("page_link")] == ["Go to Data to pick a table"]
    assert not at.get("arrow_data_frame") and state(at).design is None


def test_the_starter_mlp_and_its_live_table(app):
    at = open_build(app)
    design = state(at).design
    # Two blocks on a small table (builder.templates._mlp), dropout for classes.
    assert design.family == "mlp" and [la.type for la in design.layers] == ["Linear", "ReLU", "Dropout"] * 2
    table = shapes(at)
    assert list(table["Layer"]) == ["Linear", "ReLU", "Dropout"] * 2 + ["Output (locked)"]
    head = table.iloc[-1]
    assert head["#"] == "out" and head["Status"].startswith("Locked") and head["Output"] == "3"
    report = expected_report("iris", design)
    assert int(table["Parameters"].sum()) == report.total_params == int(head["Running total"])
    assert {m.label: m.value for m in at.metric}["Parameters"] == f"{report.total_params:,}"
    assert "Memory per batch" in {m.label for m in at.metric}
    assert any("Next: train this model" == link.proto.label for link in at.get("page_link"))
    assert "Input: 4 number(s) per row" in at.get("graphviz_chart")[0].proto.spec


def test_an_edit_changes_units_and_the_table(app):
    at = open_build(app)
    edit(at, {"edited_rows": {0: {"out_features": 16}}})
    assert state(at).design.layers[0].params["out_features"] == 16
    table = shapes(at)
    assert table.iloc[0]["Output"] == "16" and table.iloc[3]["Input"] == "16"
    assert int(table["Parameters"].sum()) == expected_report("iris", state(at).design).total_params
    # Rows added at the bottom of the editor become layers; a deleted row goes away.
    edit(at, {"added_rows": [{"type": "Tanh"}], "deleted_rows": [2]})
    assert [la.type for la in state(at).design.layers] == ["Linear", "ReLU", "Linear", "ReLU", "Dropout", "Tanh"]
    # A new row whose layer type is not picked yet changes nothing, and keeps the editor as it is.
    version = state(at).editor_version
    edit(at, {"added_rows": [{"out_features": 8}]})
    assert len(state(at).design.layers) == 6 and state(at).editor_version == version


def test_a_bad_value_is_shown_on_its_row_and_one_click_fixes_it(app):
    at = open_build(app)
    edit(at, {"edited_rows": {2: {"p": 1.5}}})
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("Layer 3 (Dropout)") and "1.5" in errors[0]
    assert at.dataframe[0].value.iloc[2]["check"].startswith("⚠")
    assert shapes(at).iloc[2]["Status"] != "OK" and shapes(at).iloc[0]["Status"] == "OK"
    assert at.get("graphviz_chart")[0].proto.spec.count("#FDE2E1") == 1  # the picture agrees
    assert not any(link.proto.label.startswith("Next") for link in at.get("page_link"))
    at.button(key="fix_0").click().run()
    assert state(at).design.layers[2].params["p"] == 0.2
    assert not at.error and set(shapes(at)["Status"][:-1]) == {"OK"}


def test_undo_move_add_and_delete(app):
    at = open_build(app)
    before = state(at).design
    edit(at, {"edited_rows": {0: {"out_features": 8}}})
    at.button(key="layer_undo").click().run()
    assert state(at).design == before
    at.selectbox(key="build_layer_pick").set_value(2).run()
    at.button(key="layer_up").click().run()
    second_block = ["Linear", "ReLU", "Dropout"]
    assert [la.type for la in state(at).design.layers] == ["Linear", "Dropout", "ReLU", *second_block]
    assert at.selectbox(key="build_layer_pick").value == 1  # the selection follows the layer
    menu = [e.value for e in at.caption]
    assert LAYERS.get("BatchNorm1d").summary in menu  # a layer that fits is described in a line
    assert LAYERS.get("Conv2d").summary not in menu  # one that needs pictures is folded away
    assert any("other layer" in e.label for e in at.expander)
    at.button(key="add_BatchNorm1d").click().run()
    assert [la.type for la in state(at).design.layers] == ["Linear", "Dropout", "BatchNorm1d", "ReLU",
                                                           *second_block]
    at.button(key="layer_delete").click().run()
    assert [la.type for la in state(at).design.layers] == ["Linear", "Dropout", "ReLU", *second_block]
    at.button(key="layer_undo").click().run()
    assert len(state(at).design.layers) == 7


def test_families_fit_the_task_and_edited_designs_ask_before_replacing(app):
    at = open_build(app)  # iris: a category to predict
    assert at.button(key="family_linear").disabled and at.button(key="family_mlp").disabled
    at.button(key="family_logistic").click().run()  # the starter is unedited: no question asked
    assert state(at).design == ModelSpec("logistic", [])
    assert list(shapes(at)["Layer"]) == ["Output (locked)"]
    at.button(key="add_Linear").click().run()
    assert any("now has hidden layers, so it is an MLP" in i.value for i in at.info)
    assert "This replaces the layers you edited" in at.warning[0].value
    at.button(key="family_mlp").click().run()  # the confirm button inside the popover
    assert state(at).design.family == "mlp" and len(state(at).design.layers) == 6
    at.button(key="layer_undo").click().run()
    assert state(at).design.family == "logistic" and len(state(at).design.layers) == 1


def test_regression_data_offers_linear_regression(app):
    at = open_build(app, sample="diabetes")
    assert at.button(key="family_logistic").disabled and not at.button(key="family_linear").disabled
    at.button(key="family_linear").click().run()
    assert shapes(at).iloc[-1]["Output"] == "1"
    assert int(shapes(at)["Parameters"].sum()) == 11  # 10 weights and a bias


def test_load_a_design_file_and_refuse_a_bad_one(app):
    at = open_build(app)
    mine = ModelSpec.from_dict({"family": "mlp", "layers": [{"type": "Linear", "out_features": 5},
                                                            {"type": "GELU"}]})
    at.get("file_uploader")[0].upload("design.json", design_file_bytes(mine), "application/json").run()
    assert not at.exception and state(at).design == mine and not at.error
    at.get("file_uploader")[0].upload("notes.json", b"{not json", "application/json").run()
    assert any("notes.json" in e.value and "not valid JSON" in e.value and "unchanged" in e.value
               for e in at.error), [e.value for e in at.error]
    assert state(at).design == mine


def test_the_design_survives_a_new_session(app):
    at = open_build(app)
    edit(at, {"edited_rows": {0: {"out_features": 12}}})
    fresh = AppTest.from_file(APP_FILE, default_timeout=60)
    fresh.query_params["ws"] = state(at).workspace.token
    fresh.run()
    fresh.switch_page("pages/build.py").run()
    assert state(fresh).design.layers[0].params["out_features"] == 12
    assert shapes(fresh).iloc[0]["Output"] == "12"


def test_design_file_bytes_round_trip():
    design = ModelSpec.from_dict({"family": "mlp", "layers": [{"type": "Linear", "out_features": 7},
                                                              {"type": "Dropout", "p": 0.3}]})
    content = design_file_bytes(design)
    assert content.endswith(b"\n") and json.loads(content)["layers"][0] == {"type": "Linear", "out_features": 7,
                                                                           "bias": True}
    assert ModelSpec.from_json(content) == design


def test_shape_table_marks_a_shape_problem_and_the_locked_head():
    design = ModelSpec.from_dict({"family": "mlp", "layers": [{"type": "Linear", "out_features": 4}]})
    table = shape_table(infer_shapes(design, (3,), 2))
    assert list(table["Running total"]) == [16, 26]
    assert table.iloc[-1]["Layer"] == "Output (locked)"


def test_shape_table_leaves_parameters_after_a_broken_layer_unknown():
    design = ModelSpec.from_dict({"family": "mlp", "layers": [{"type": "Linear", "out_features": 4},
                                                              {"type": "Conv2d"}, {"type": "ReLU"}]})
    report = infer_shapes(design, (3,), 2)  # a convolution cannot read a flat row
    table = shape_table(report)
    assert str(table["Parameters"].dtype) == "Int64" and str(table["Running total"].dtype) == "Int64"
    assert list(table["Parameters"].iloc[:1]) == [16] and table["Parameters"].iloc[1:].isna().all()
    assert list(table["Running total"].iloc[:1]) == [16] and table["Running total"].iloc[1:].isna().all()
    assert first_unsized(report) == "layer 2"
    assert first_unsized(infer_shapes(ModelSpec.from_dict({"family": "mlp", "layers": []}), (3,), 2)) is None


def test_the_editor_shows_each_check_next_to_its_layer_and_tables_fit_their_rows(app):
    at = open_images(app)  # the CNN: many layers, many settings
    editor = at.dataframe[0]
    assert list(editor.value.columns[:3]) == ["#", TYPE_COLUMN, "check"]
    # The editor is as tall as its layers, the empty row that adds one and the header (the sizes
    # table: its layers and the locked output), up to a cap past which it scrolls.
    n_layers = len(state(at).design.layers)
    assert table_height(n_layers + 1) == (n_layers + 2) * 35 + 3
    assert table_height(1000) == table_height(MAX_TABLE_ROWS) < 1000


@pytest.mark.parametrize("size, text", [(512, "512 bytes"), (2048, "2.0 KB"), (5 * 2**20, "5.0 MB"),
                                        (3 * 2**30, "3.0 GB")])
def test_human_bytes(size, text):
    assert human_bytes(size) == text


# --- every kind of data: images, a time series, text, a table without a target ----------------------------


def open_with(app, file_name: str, content: bytes, data_spec: DataSpec, design: ModelSpec | None = None) -> AppTest:
    """Open the Build page on a workspace holding ``content`` as its data, saved as the Data page does."""
    workspace = Workspace.open(None)
    if data_spec.kind == "images":
        workspace.save_images(file_name, content)
    else:
        workspace.save_table(file_name, content)
    workspace.save_state("data_spec", data_spec.to_dict())
    if design is not None:
        workspace.save_state("design", design.to_dict())
    at = open_page(app, workspace, "pages/build.py")
    assert design is not None or not at.error, [e.value for e in at.error]
    return at


def open_images(app, design: ModelSpec | None = None) -> AppTest:
    return open_with(app, "digits.zip", make_digits_zip(n_per_class=8, junk=False),
                     DataSpec(None, "multiclass", [], kind="images"), design)


def graph(at: AppTest) -> str:
    return at.get("graphviz_chart")[0].proto.spec


def family_keys(at: AppTest) -> list[str]:
    return [b.key for b in at.button if b.key and b.key.startswith("family_")]


def test_image_data_starts_with_a_cnn_and_a_deleted_flatten_is_fixed_in_one_click(app):
    at = open_images(app)
    design = state(at).design
    types = [la.type for la in design.layers]
    assert design.family == "cnn" and "Flatten" in types and types[0] == "Conv2d"
    assert family_keys(at) == ["family_cnn"]  # only the families that read images
    assert "Input: 16x16 pixel images, grayscale" in graph(at) and "a score for each of 10 classes" in graph(at)
    assert set(shapes(at)["Status"][:-1]) == {"OK"} and shapes(at).iloc[0]["Input"] == "1x16x16"
    assert at.dataframe[0].proto.placeholder == "—"  # settings a layer does not have: a dash, not "None"
    assert any(link.proto.label == "Next: train this model" for link in at.get("page_link"))
    flatten = types.index("Flatten")
    edit(at, {"deleted_rows": [flatten]})  # the Linear now follows the last pooling layer
    errors = [e.value for e in at.error]
    assert errors[0].startswith(f"Layer {flatten + 1} (Linear): Linear needs a flat input"), errors
    assert at.dataframe[0].value.iloc[flatten]["check"].startswith("⚠")
    assert shapes(at).iloc[flatten]["Status"] != "OK"
    assert shapes(at).iloc[-1]["Status"] == f"Sizes follow once layer {flatten + 1} is fixed"
    # From the broken layer down, parameters are unknown (not 0), and the headline does not pretend.
    table = shapes(at)
    assert table["Parameters"].iloc[flatten:].isna().all() and table["Running total"].iloc[flatten:].isna().all()
    assert table["Parameters"].iloc[:flatten].notna().all()
    metrics = {m.label: m for m in at.metric}
    for label in ("Parameters", "Memory per batch"):
        assert metrics[label].value == "—" and metrics[label].delta == f"until layer {flatten + 1} is fixed"
    fix = at.button(key="fix_0")
    assert fix.label == f"Insert Flatten before layer {flatten + 1}"
    fix.click().run()
    assert state(at).design == design and not at.error
    assert not any("Traceback" in e.value or "torch" in e.value for e in at.error)


def test_a_table_design_on_images_offers_the_cnn_in_one_click(app):
    mlp = ModelSpec.from_dict({"family": "mlp", "layers": [{"type": "Linear", "out_features": 8}, {"type": "ReLU"}]})
    at = open_images(app, design=mlp)  # the user switched from a table to images
    # One message with the one-click swap: the design's other problems all follow from it.
    assert [e.value for e in at.error] == [
        "Your MLP (neural network) design reads a table or text, but your data is images. Start from the CNN "
        "(convolutional network), made for this data (Undo brings your design back)."]
    assert not [w.value for w in at.warning if "replaces the layers you edited" not in w.value]  # popovers aside
    assert not [b for b in at.button if (b.key or "").startswith("fix_")]
    start = at.button(key="start_default")
    assert start.label == "Start from CNN (convolutional network)"
    start.click().run()
    assert state(at).design.family == "cnn" and not at.error
    at.button(key="layer_undo").click().run()
    assert state(at).design == mlp


def test_a_text_design_after_loading_a_table_shows_one_message(app):
    """A trained Transformer design, then the Iris table: one message and one swap, not four."""
    from builder.templates import starter_spec

    df = load_sample("iris")
    data_spec = DataSpec("species", "multiclass", [c for c in df.columns if c != "species"])
    transformer = starter_spec("transformer", (40,), 200, vocab_size=500)
    at = open_with(app, "iris.csv", df.to_csv(index=False).encode(), data_spec, design=transformer)
    assert len(at.error) == 1 and "reads text or a time series, but your data is a table" in at.error[0].value
    assert not [w.value for w in at.warning if "replaces the layers you edited" not in w.value]
    assert [b.label for b in at.button if b.key == "start_default" or (b.key or "").startswith("fix_")] == [
        "Start from MLP (neural network)"]
    at.button(key="start_default").click().run()
    assert state(at).design.family == "mlp" and not at.error


def test_series_data_starts_with_an_lstm_and_the_init_can_change(app):
    data_spec = DataSpec("sales", "forecast", ["sales"], kind="series",
                         options={"time_column": "date", "window": 14, "horizon": 3})
    at = open_with(app, "sales.csv", make_series().to_csv(index=False).encode(), data_spec)
    design = state(at).design
    # A forecast's starter design ends with its linear side path: two weekly seasons (14 daily lags).
    assert design.family == "lstm" and [la.type for la in design.layers] == ["LSTM", "SequencePool",
                                                                             "AutoregressiveSkip"]
    assert design.layers[-1].params == {"lags": 14}
    assert "input -> layer2" in graph(at)  # the side path is drawn from the input
    assert design.init == "orthogonal"
    assert family_keys(at) == ["family_rnn", "family_lstm", "family_gru", "family_transformer"]
    assert "Input: 14 steps x 1 value(s) per window" in graph(at) and "the next 3 step(s)" in graph(at)
    assert shapes(at).iloc[-1]["Output"] == "3"
    init = at.selectbox(key=f"build_init_{state(at).editor_version}")
    assert init.options[-1].startswith("Orthogonal")
    init.set_value("xavier").run()
    assert state(at).design.init == "xavier" and state(at).design.layers == design.layers


def test_small_text_data_starts_with_a_bag_of_ngrams_and_a_transformer_is_one_click(app):
    data_spec = DataSpec("topic", "multiclass", ["text"], kind="text", options={"text_column": "text"})
    at = open_with(app, "texts.csv", make_text_table(150).to_csv(index=False).encode(), data_spec)
    design = state(at).design
    assert design.family == "mlp" and [la.type for la in design.layers] == ["EmbeddingBag"]  # fastText-style
    assert "token ids per text" in graph(at) and set(shapes(at)["Status"][:-1]) == {"OK"}
    bag_length = shapes(at).iloc[0]["Input"]  # words and word pairs: longer than the words alone
    at.button(key="family_transformer").click().run()
    design = state(at).design
    assert [la.type for la in design.layers] == ["Embedding", "PositionalEncoding", "TransformerEncoderLayer",
                                                 "SequencePool"]
    assert int(shapes(at).iloc[0]["Input"]) < int(bag_length)  # the data as the Transformer reads it
    assert "token ids per text" in graph(at) and set(shapes(at)["Status"][:-1]) == {"OK"}
    # Without its Embedding the model would read word numbers as amounts: the fix puts it back.
    edit(at, {"deleted_rows": [0]})
    assert at.error[0].value.startswith("Layer 1 (PositionalEncoding): the text arrives as token ids")
    at.button(key="fix_0").click().run()
    assert [la.type for la in state(at).design.layers][0] == "Embedding" and not at.error


def test_a_table_without_a_target_starts_with_an_autoencoder(app):
    table = make_messy_table(300)
    data_spec = DataSpec(None, "anomaly", ["age", "income", "color", "member", "visits"])
    at = open_with(app, "customers.csv", table.to_csv(index=False).encode(), data_spec)
    assert state(at).design.family == "autoencoder"
    assert at.button(key="family_mlp").disabled and at.button(key="family_autoencoder").disabled  # current
    assert "the row rebuilt" in graph(at)
    width = shapes(at).iloc[0]["Input"]
    assert shapes(at).iloc[-1]["Output"] == width  # the output rebuilds every input number
