"""The common check over every registered layer (habit 15): it builds, its declared output shape
equals a real forward pass, and every invalid parameter value is refused naming the parameter."""

from __future__ import annotations

import pytest
import torch

from builder.errors import ShapeError, SpecError
from builder.layers import LAYERS
from builder.params import Boolean, Choice, FloatRange, IntRange, show_value
from builder.shapes import check_shapes, count_params, infer_shapes
from builder.spec import ModelSpec

# A representative input per number of dimensions a layer may accept.
INPUTS = {1: (12,), 2: (4, 10), 3: (3, 8, 8)}


def _accepted_shapes(name: str):
    layer_type = LAYERS.get(name)
    for shape in INPUTS.values():
        try:
            yield shape, layer_type.output_shape(shape, layer_type.defaults())
        except Exception:  # noqa: BLE001 - a layer simply not taking this rank
            continue


@pytest.mark.parametrize("name", LAYERS.names())
def test_declared_output_shape_matches_real_forward(name):
    layer_type = LAYERS.get(name)
    pairs = list(_accepted_shapes(name))
    assert pairs, f"{name} accepts none of the test shapes"
    for in_shape, declared in pairs:
        module = layer_type.make(in_shape, layer_type.defaults()).eval()
        out = module(torch.randn(2, *in_shape))
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
