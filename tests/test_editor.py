"""The layer editor's logic: data_editor deltas -> designs, moves, undo, and the diagram."""

from __future__ import annotations

from builder.diagram import design_dot
from builder.editor import DesignHistory, add_layer, apply_edits, design_rows, editor_columns, move_layer
from builder.shapes import infer_shapes
from builder.spec import ModelSpec

BASE = ModelSpec.from_dict({"family": "mlp", "layers": [
    {"type": "Linear", "out_features": 64}, {"type": "ReLU"}, {"type": "Dropout", "p": 0.2}]})


def test_rows_and_columns_follow_the_layers_in_use():
    assert [c.name for c in editor_columns(BASE)] == ["out_features", "bias", "p"]
    rows = design_rows(BASE)
    assert rows[0] == {"type": "Linear", "out_features": 64, "bias": True, "p": None}
    assert rows[2]["p"] == 0.2 and rows[2]["out_features"] is None
    assert "Allowed: a whole number from 1 to 1,000,000" in editor_columns(BASE)[0].help


def test_edit_add_delete_in_one_delta():
    new = apply_edits(BASE, {"edited_rows": {0: {"out_features": 32}, 2: {"p": 0.5}},
                             "added_rows": [{"type": "Linear", "out_features": 8}, {"type": None}],
                             "deleted_rows": [1]})
    assert [la.type for la in new.layers] == ["Linear", "Dropout", "Linear"]
    assert new.layers[0].params["out_features"] == 32 and new.layers[1].params["p"] == 0.5
    assert new.layers[2].params == {"out_features": 8, "bias": True}
    assert infer_shapes(new, (10,), 1).rows[-1].input_shape == (8,)


def test_changing_type_drops_settings_it_does_not_have_and_clearing_restores_default():
    new = apply_edits(BASE, {"edited_rows": {0: {"type": "Dropout"}, 2: {"p": None}}})
    assert new.layers[0].type == "Dropout" and new.layers[0].params == {"p": 0.2}
    assert new.layers[2].params == {"p": 0.2}


def test_a_bad_value_is_kept_for_validate_to_show_on_its_row():
    new = apply_edits(BASE, {"edited_rows": {2: {"p": 3.0}}})
    problems = new.validate()
    assert len(problems) == 1 and problems[0].layer_index == 2 and problems[0].param == "p"


def test_move_add_and_undo():
    history = DesignHistory()
    assert not history.can_undo and history.undo() is None
    history.record(BASE)
    moved = move_layer(BASE, 2, -1)
    assert [la.type for la in moved.layers] == ["Linear", "Dropout", "ReLU"]
    assert move_layer(BASE, 0, -1) is BASE
    bigger = add_layer(moved, "LayerNorm", position=1)
    assert bigger.layers[1].type == "LayerNorm"
    assert history.undo() == BASE


def test_diagram_has_every_layer_the_locked_head_and_shapes():
    report = infer_shapes(BASE, (10,), 3)
    dot = design_dot(report, "10 columns")
    assert dot.count("->") == 4
    assert "1. Linear\\nunits: 64" in dot and "(locked)" in dot and 'label=" 64"' in dot
    broken = infer_shapes(ModelSpec.from_dict({"family": "mlp", "layers": [{"type": "Linear"}]}), (2, 3, 3), 3)
    assert "#FDE2E1" in design_dot(broken)


def test_fix_for_falls_back_to_removing_the_layer_or_the_setting():
    from builder.editor import apply_fix, fix_for
    from builder.spec import Problem

    own = infer_shapes(ModelSpec.from_dict({"family": "mlp", "layers": [{"type": "Linear"}]}), (2, 3, 3), 1)
    assert fix_for(own.problems[0]) is own.problems[0].fix  # the precise fix when there is one
    conv = infer_shapes(ModelSpec.from_dict({"family": "mlp", "layers": [{"type": "ReLU"}, {"type": "Conv2d"}]}),
                        (4, 10), 1).problems[0]
    assert conv.fix is None and fix_for(conv).label == "Remove layer 2"
    unknown = ModelSpec.from_dict({"family": "mlp", "layers": [{"type": "Dropout", "rate": 0.5}]}, strict=False)
    fix = fix_for(unknown.validate()[0])
    assert fix.label == "Remove the setting 'rate' from layer 1"
    assert apply_fix(unknown, fix) == ModelSpec.from_dict({"family": "mlp", "layers": [{"type": "Dropout"}]})
    assert fix_for(Problem("Linear regression cannot do yes/no prediction.")) is None  # the page offers a starter


def test_initialisation_choices_fit_the_design():
    from builder.editor import INIT_CHOICES, init_choices, with_init

    assert init_choices(BASE) == ["default", "xavier", "kaiming"]  # orthogonal is for recurrent layers
    recurrent = ModelSpec.from_dict({"family": "lstm", "layers": [{"type": "LSTM"}, {"type": "SequencePool"}]})
    assert init_choices(recurrent) == list(INIT_CHOICES)
    changed = with_init(BASE, "xavier")
    assert changed.init == "xavier" and changed.layers == BASE.layers and BASE.init == "default"
    assert "orthogonal" in init_choices(with_init(BASE, "orthogonal"))  # a loaded choice stays visible


def test_diagram_names_the_output():
    from builder.diagram import output_label

    report = infer_shapes(BASE, (10,), 3)
    dot = design_dot(report, "Input: 10 number(s) per row", output_label("multiclass", 3))
    assert 'output [label="Output: a score for each of 3 classes"' in dot and 'layer3 -> output [label=" 3"]' in dot
    assert output_label("forecast", 7) == "Output: the next 7 step(s)"
    assert output_label("anomaly", 12) == "Output: the row rebuilt (12 numbers)"


def test_rows_leave_settings_a_layer_does_not_have_empty():
    """The editor shows those cells with a dash (``placeholder``); the rows hold ``None`` there."""
    rows = design_rows(ModelSpec.from_dict({"family": "cnn", "layers": [{"type": "Conv2d"}, {"type": "Flatten"}]}))
    assert set(rows[1]) - {"type"} == {"out_channels", "kernel_size", "stride", "padding"}
    assert all(value is None for key, value in rows[1].items() if key != "type")


def test_layers_that_fit_are_offered_first_for_the_data_at_that_place():
    from builder.editor import layers_that_fit
    from builder.templates import starter_spec

    table = starter_spec("mlp", 10, 500, task="binary")
    here = layers_that_fit(table, 2, (10,), 1)
    assert {"Linear", "ReLU", "Dropout", "BatchNorm1d", "MLPEnsemble"} <= set(here)
    assert not {"Conv2d", "LSTM", "Embedding", "MaxPool2d", "BatchNorm2d"} & set(here)  # need other data
    images = starter_spec("cnn", (1, 28, 28), 500)
    first = layers_that_fit(images, 0, (1, 28, 28), 10)
    assert {"Conv2d", "BatchNorm2d", "MaxPool2d"} <= set(first) and "Linear" not in first
