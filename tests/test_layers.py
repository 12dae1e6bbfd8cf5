"""The common check over every registered layer (habit 15): it builds, its declared output shape
equals a real forward pass, and every invalid parameter value is refused naming the parameter."""

from __future__ import annotations

import pytest
import torch

from builder.errors import ShapeError, SpecError
from builder.layers import LAYERS, TOKEN_READERS, Fix, LayerProblem, model_input, token_input
from builder.params import Boolean, Choice, FloatRange, IntRange, show_value
from builder.shapes import check_shapes, count_params, infer_shapes
from builder.spec import ModelSpec

# A representative input per number of dimensions a layer may accept: a table row (features,), a
# sequence (time steps, features) or channels x length, an image (channels, height, width).
INPUTS = {1: (12,), 2: (4, 10), 3: (3, 8, 8)}
VOCAB = 30  # token ids for Embedding(Bag): (time steps,) whole numbers below VOCAB, as float32
SERIES = (16, 3)  # the model input a side path (AutoregressiveSkip) reads: 16 steps x 3 columns


def _sample(name: str, in_shape) -> torch.Tensor:
    if name in TOKEN_READERS:
        return torch.randint(0, VOCAB, (2, *in_shape)).float()
    return torch.randn(2, *in_shape)


def _forward(name: str, module: torch.nn.Module, in_shape) -> torch.Tensor:
    """Run one layer; a side path also gets the model's input (as ``InputSequential`` hands it)."""
    if LAYERS.get(name).extra.get("takes_model_input"):
        return module(_sample(name, in_shape), torch.randn(2, *SERIES))
    return module(_sample(name, in_shape))


def _accepted_shapes(name: str):
    layer_type = LAYERS.get(name)
    for shape in INPUTS.values():
        try:
            yield shape, layer_type.output_shape(shape, layer_type.defaults())
        except LayerProblem:  # a layer simply not taking this rank
            continue


@pytest.mark.parametrize("name", LAYERS.names())
def test_declared_output_shape_matches_real_forward(name):
    layer_type = LAYERS.get(name)
    # Embedding(Bag) reads token ids, AutoregressiveSkip a series' window; the others ignore both scopes.
    with token_input(VOCAB) if name in TOKEN_READERS else model_input(SERIES):
        pairs = list(_accepted_shapes(name))
        assert pairs, f"{name} accepts none of the test shapes"
        for in_shape, declared in pairs:
            module = layer_type.make(in_shape, layer_type.defaults()).eval()
            out = _forward(name, module, in_shape)
            assert tuple(out.shape[1:]) == declared
            assert count_params(name, in_shape, layer_type.defaults()) == sum(p.numel() for p in module.parameters())


def _invalid_values(constraint):
    if isinstance(constraint, IntRange):
        bad = ["three", 2.5, True, float("nan")]
        if constraint.low is not None:
            bad.append(constraint.low - 1)
        if constraint.high is not None:
            bad.append(constraint.high + 1)
        return bad
    if isinstance(constraint, FloatRange):
        bad = ["half", float("inf"), None]
        if constraint.low is not None:
            bad.append(constraint.low - 1)
        if constraint.high is not None:
            bad.append(constraint.high + (0 if not constraint.high_inclusive else 1))
        return bad
    if isinstance(constraint, Choice):
        return ["not-an-option", 3]
    if isinstance(constraint, Boolean):
        return ["yes", 1]
    raise AssertionError(f"no invalid values known for {constraint}")


PARAM_CASES = [(name, p) for name in LAYERS.names() for p in LAYERS.get(name).params]


@pytest.mark.parametrize(("name", "param"), PARAM_CASES, ids=[f"{n}.{p.name}" for n, p in PARAM_CASES])
def test_every_invalid_parameter_is_refused_naming_it(name, param):
    for value in _invalid_values(param.constraint):
        spec = ModelSpec.from_dict({"family": "mlp", "layers": [{"type": name, param.name: value}]}, strict=False)
        problems = spec.validate()
        assert problems, f"{name}.{param.name}={value!r} was accepted"
        assert param.name.replace("_", " ") in problems[0].message.replace("_", " ")
        assert problems[0].message.startswith("Layer 1") and show_value(value) in problems[0].message
        with pytest.raises(SpecError, match=param.name):
            ModelSpec.from_dict({"family": "mlp", "layers": [{"type": name, param.name: value}]})


def test_defaults_are_valid_and_whole_floats_accepted_for_ints():
    for name in LAYERS.names():
        assert ModelSpec.from_dict({"family": "mlp", "layers": [{"type": name}]}).validate() == []
    spec = ModelSpec.from_dict({"family": "mlp", "layers": [{"type": "Linear", "out_features": 32.0}]})
    assert spec.layers[0].params["out_features"] == 32.0
    assert infer_shapes(spec, (5,), 1).rows[0].output_shape == (32,)


def test_linear_on_a_grid_says_add_flatten_and_the_fix_repairs_it():
    spec = ModelSpec.from_dict({"family": "mlp", "layers": [{"type": "ReLU"}, {"type": "Linear"}]})
    report = infer_shapes(spec, (3, 8, 8), 4)
    assert not report.ok
    problem = report.problems[0]
    assert problem.message.startswith("Layer 2 (Linear)") and "add Flatten before it" in problem.message
    assert problem.layer_index == 1 and problem.fix.index == 1
    assert problem.fix.label == "Insert Flatten before layer 2"
    with pytest.raises(ShapeError) as exc_info:
        check_shapes(spec, (3, 8, 8), 4)
    assert exc_info.value.layer_index == 1
    fixed = spec.apply_fix(problem.fix)
    assert [layer.type for layer in fixed.layers] == ["ReLU", "Flatten", "Linear"]
    report = infer_shapes(fixed, (3, 8, 8), 4)
    assert report.ok and report.rows[-1].output_shape == (4,)


def test_head_needs_flat_input_and_offers_flatten_at_the_end():
    spec = ModelSpec.from_dict({"family": "mlp", "layers": [{"type": "ReLU"}]})
    problem = infer_shapes(spec, (2, 5, 5), 3).problems[0]
    assert problem.message.startswith("The output layer") and problem.fix.index == 1
    fixed = spec.apply_fix(problem.fix)
    assert infer_shapes(fixed, (2, 5, 5), 3).rows[-1].input_shape == (50,)


# --------------------------------------------------------------------------------------------------
# One test per shape error: its message, and that its fix makes the design valid
# --------------------------------------------------------------------------------------------------

def _design(*layers) -> ModelSpec:
    return ModelSpec.from_dict({"family": "mlp", "layers": list(layers)})


def _only_problem(spec: ModelSpec, shape, n_outputs: int = 2):
    report = infer_shapes(spec, shape, n_outputs)
    assert len(report.problems) == 1, [p.message for p in report.problems]
    return report.problems[0]


def _fixed_is_valid(spec: ModelSpec, problem, shape, n_outputs: int = 2) -> ModelSpec:
    assert problem.fix is not None
    fixed = spec.apply_fix(problem.fix)
    assert infer_shapes(fixed, shape, n_outputs).ok
    return fixed


def test_conv_kernel_larger_than_the_image_names_the_sizes_and_padding_fixes_it():
    spec = _design({"type": "Conv2d", "kernel_size": 5}, {"type": "Flatten"})
    problem = _only_problem(spec, (16, 3, 3))
    assert problem.message == (
        "Layer 1 (Conv2d): gets input 16x3x3 but kernel_size=5 does not fit in 3x3 with padding=0, "
        "so it leaves no output: lower kernel_size to 3 or add padding=1.")
    assert (problem.fix.action, problem.fix.param, problem.fix.value, problem.fix.index) == ("set", "padding", 1, 0)
    fixed = _fixed_is_valid(spec, problem, (16, 3, 3))
    assert infer_shapes(fixed, (16, 3, 3), 2).rows[0].output_shape == (16, 1, 1)


def test_conv1d_kernel_longer_than_the_length_gets_padding():
    spec = _design({"type": "Conv1d", "kernel_size": 9}, {"type": "Flatten"})
    problem = _only_problem(spec, (4, 5))
    assert "kernel_size=9 does not fit in 5" in problem.message and "padding=2" in problem.message
    _fixed_is_valid(spec, problem, (4, 5))


def test_pool_window_larger_than_the_image_gets_padding():
    spec = _design({"type": "MaxPool2d", "kernel_size": 4}, {"type": "Flatten"})
    problem = _only_problem(spec, (2, 3, 3))
    assert problem.message.startswith("Layer 1 (MaxPool2d): gets input 2x3x3 but kernel_size=4")
    assert problem.fix.value == 1
    _fixed_is_valid(spec, problem, (2, 3, 3))


def test_pool_padding_over_half_the_window_is_refused_with_a_fix():
    spec = _design({"type": "AvgPool2d", "kernel_size": 2, "padding": 2}, {"type": "Flatten"})
    problem = _only_problem(spec, (3, 8, 8))
    assert "padding=2 is more than half of kernel_size=2" in problem.message
    assert (problem.fix.param, problem.fix.value) == ("padding", 1)
    _fixed_is_valid(spec, problem, (3, 8, 8))


def test_conv1d_reads_channels_by_length_and_says_so_on_a_flat_input():
    spec = _design({"type": "Linear"}, {"type": "Conv1d"}, {"type": "Flatten"})
    problem = _only_problem(spec, (12,))
    assert problem.message.startswith("Layer 2 (Conv1d): Conv1d needs channels x length but gets 64.")
    assert "A sequence of T steps x F features is read as T channels of length F." in problem.message
    assert (problem.fix.action, problem.fix.index) == ("remove", 1)
    _fixed_is_valid(spec, problem, (12,))


def test_conv2d_on_a_sequence_points_to_conv1d():
    problem = _only_problem(_design({"type": "Conv2d"}, {"type": "Flatten"}), (4, 10))
    assert "Conv2d needs channels x height x width (an image) but gets 4x10. Use Conv1d" in problem.message
    assert problem.fix is None  # no mechanical repair: the data or the layer type must change


def test_batchnorm2d_needs_an_image():
    problem = _only_problem(_design({"type": "BatchNorm2d"}), (12,))
    assert "BatchNorm2d needs channels x height x width (an image) but gets 12" in problem.message
    assert "use BatchNorm1d" in problem.message


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU", "TransformerEncoderLayer", "PositionalEncoding",
                                  "SequencePool"])
def test_sequence_layers_after_a_flat_input_say_they_need_a_sequence(name):
    spec = _design({"type": "Linear", "out_features": 8}, {"type": name}, {"type": "Flatten"})
    problem = _only_problem(spec, (12,))
    assert problem.message.startswith(
        f"Layer 2 ({name}): {name} needs a sequence (time steps x features) but gets a flat input of "
        "8 numbers per row.")
    assert (problem.fix.action, problem.fix.index) == ("remove", 1)
    _fixed_is_valid(spec, problem, (12,))


def test_transformer_heads_must_divide_the_features_and_the_fix_picks_a_divisor():
    spec = _design({"type": "TransformerEncoderLayer", "nhead": 4}, {"type": "SequencePool"})
    problem = _only_problem(spec, (5, 10))
    assert problem.message == (
        "Layer 1 (TransformerEncoderLayer): its 10 features (d_model) are split across nhead=4 attention "
        "heads, so d_model must be divisible by nhead: set nhead to 2.")
    assert (problem.fix.param, problem.fix.value) == ("nhead", 2)
    _fixed_is_valid(spec, problem, (5, 10))


def test_recurrent_dropout_without_stacked_layers_is_refused_with_a_fix():
    spec = _design({"type": "LSTM", "dropout": 0.3}, {"type": "SequencePool", "mode": "last"})
    problem = _only_problem(spec, (6, 3))
    assert "dropout=0.3 only acts between stacked layers, and num_layers=1" in problem.message
    assert (problem.fix.param, problem.fix.value) == ("dropout", 0.0)
    _fixed_is_valid(spec, problem, (6, 3))
    stacked = _design({"type": "LSTM", "dropout": 0.3, "num_layers": 2}, {"type": "SequencePool"})
    assert infer_shapes(stacked, (6, 3), 2).ok


def test_embedding_on_numeric_data_needs_text():
    spec = _design({"type": "Embedding"}, {"type": "Linear"})
    problem = _only_problem(spec, (12,))
    assert problem.message.startswith(
        "Layer 1 (Embedding): Embedding needs text data (token ids), but this data gives numbers (12 per row)")
    _fixed_is_valid(spec, problem, (12,))


def test_embedding_must_be_the_first_layer():
    spec = _design({"type": "Embedding"}, {"type": "Embedding"}, {"type": "Flatten"})
    with token_input(VOCAB):
        problem = _only_problem(spec, (7,))
        assert problem.message.startswith("Layer 2 (Embedding): Embedding must be the first layer")
        fixed = _fixed_is_valid(spec, problem, (7,))
        assert infer_shapes(fixed, (7,), 2).rows[0].n_params == VOCAB * 64


def test_fix_labels_say_what_they_do_and_where():
    from builder.shapes import _place_fix

    insert = Fix(label="Insert Flatten before it", action="insert", index=-1, layer={"type": "Flatten"})
    assert _place_fix(insert, 3, 6, False).label == "Insert Flatten before layer 4"
    assert _place_fix(Fix(label="Remove this layer", action="remove", index=-1), 1, 6, False).label == "Remove layer 2"
    setting = Fix(label="Set padding to 1", action="set", index=-1, param="padding", value=1)
    assert _place_fix(setting, 0, 6, False).label == "Set padding to 1 on layer 1"


# --- EmbeddingBag: a bag of n-grams -> one vector per text ----------------------------------------


def test_embedding_bag_averages_the_real_tokens_and_ignores_padding():
    spec = _design({"type": "EmbeddingBag", "embedding_dim": 8})
    with token_input(VOCAB):
        report = infer_shapes(spec, (6,), 1)
        assert report.ok and report.rows[0].output_shape == (8,)
        assert report.rows[0].n_params == VOCAB * 8
        bag = LAYERS.get("EmbeddingBag").make((6,), {"embedding_dim": 8, "mode": "mean"})
    ids = torch.zeros(3, 6)  # (B, T) float ids, padded with 0
    ids[0, :2] = torch.tensor([3.0, 5.0])
    ids[1, :4] = torch.tensor([3.0, 5.0, 3.0, 5.0])  # the same words twice: the same mean
    out = bag(ids)  # (3, 8)
    expected = bag.weight[[3, 5]].mean(dim=0)
    torch.testing.assert_close(out[0], expected)  # padding is not counted in the mean
    torch.testing.assert_close(out[1], expected)  # however much padding follows
    assert torch.equal(out[2], torch.zeros(8))  # an empty text: zeros, not NaN
    assert bag.weight.abs().max() <= 1 / 8  # fastText's small start


def test_embedding_bag_needs_text_and_the_first_place():
    problem = _only_problem(_design({"type": "EmbeddingBag"}), (12,))
    assert problem.message.startswith("Layer 1 (EmbeddingBag): EmbeddingBag needs text data (token ids)")
    spec = _design({"type": "EmbeddingBag"}, {"type": "EmbeddingBag"})
    with token_input(VOCAB):
        problem = _only_problem(spec, (7,))
        assert problem.message.startswith("Layer 2 (EmbeddingBag): EmbeddingBag must be the first layer")
        assert infer_shapes(_design({"type": "EmbeddingBag"}, {"type": "Linear", "out_features": 16}), (7,), 2).ok
