"""ModelSpec: JSON round trips, validation that returns every problem, family rules, the
parameter counts and shapes the editor shows, and the network ``build_model`` makes from them."""

from __future__ import annotations

import json

import pytest
import torch

from builder.errors import SpecError
from builder.model import build_model
from builder.shapes import infer_shapes
from builder.spec import ModelSpec
from builder.templates import starter_spec

MLP = {"version": 1, "family": "mlp",
       "layers": [{"type": "Linear", "out_features": 64}, {"type": "ReLU"}, {"type": "Dropout", "p": 0.2}]}


def test_round_trip_through_json_is_exact():
    spec = ModelSpec.from_dict(MLP)
    again = ModelSpec.from_json(spec.to_json())
    assert again == spec
    assert json.loads(spec.to_json())["layers"][0] == {"type": "Linear", "out_features": 64, "bias": True}


def test_validate_returns_all_problems_with_layer_numbers():
    spec = ModelSpec.from_dict({"family": "mlp", "layers": [
        {"type": "Linear", "out_features": 0}, {"type": "Dropout", "p": 1.5}, {"type": "Conv9d"},
        {"type": "ReLU", "inplace": True}]}, strict=False)
    messages = [p.message for p in spec.validate()]
    assert len(messages) == 4
    assert messages[0].startswith("Layer 1 (Linear): units ('out_features') must be") and "got 0" in messages[0]
    assert messages[1].startswith("Layer 2 (Dropout): drop share ('p')") and "1.5" in messages[1]
    assert "Layer 3 (Conv9d): unknown layer type" in messages[2] and "Linear" in messages[2]
    assert "unknown setting 'inplace'" in messages[3]


@pytest.mark.parametrize("bad", [[], "mlp", {"family": "mlp", "layers": {}}, {"family": "mlp", "extra": 1},
                                 {"version": 2, "family": "mlp"}, {"family": "mlp", "layers": [{"units": 3}]}])
def test_malformed_designs_raise_spec_error(bad):
    with pytest.raises(SpecError):
        ModelSpec.from_dict(bad)


def test_bad_json_text_is_a_spec_error():
    with pytest.raises(SpecError, match="not valid JSON"):
        ModelSpec.from_json("{not json")


def test_family_must_fit_the_task_and_hidden_layers_make_an_mlp():
    linear = ModelSpec(family="linear")
    assert linear.validate("regression") == []
    assert "choose Logistic regression or MLP (neural network)" in linear.validate("binary")[0].message
    assert "Linear regression or MLP" in ModelSpec(family="logistic").validate("regression")[0].message
    assert ModelSpec.from_dict({"family": "linear", "layers": [{"type": "ReLU"}]}).effective_family() == "mlp"


def test_linear_family_is_one_linear_layer():
    model = build_model(ModelSpec(family="linear"), (7,), 1)
    assert [type(m).__name__ for m in model] == ["Linear"]
    assert sum(p.numel() for p in model.parameters()) == 8


def test_shape_table_counts_match_the_built_model():
    spec = ModelSpec.from_dict({"family": "mlp", "layers": [
        {"type": "Linear", "out_features": 32}, {"type": "BatchNorm1d"}, {"type": "GELU"},
        {"type": "LayerNorm"}, {"type": "Linear", "out_features": 16}, {"type": "LeakyReLU"}]})
    report = infer_shapes(spec, (10,), 3)
    model = build_model(spec, (10,), 3, seed=0)
    assert report.ok
    assert report.total_params == sum(p.numel() for p in model.parameters())
    assert [r.output_shape for r in report.rows] == [(32,), (32,), (32,), (32,), (16,), (16,), (3,)]
    assert report.rows[-1].locked and not any(r.locked for r in report.rows[:-1])
    assert model.eval()(torch.randn(5, 10)).shape == (5, 3)
    assert report.memory_estimate(64) > report.memory_estimate(1) > 4 * report.total_params


@pytest.mark.parametrize("init", ["default", "xavier", "kaiming", "orthogonal"])
def test_initialisation_schemes_build_and_seed_repeats(init):
    spec = ModelSpec.from_dict({**MLP, "init": init})
    a, b = build_model(spec, (6,), 2, seed=1), build_model(spec, (6,), 2, seed=1)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    if init in ("xavier", "kaiming"):  # "orthogonal" only touches recurrent layers
        assert torch.count_nonzero(a[0].bias) == 0


def test_unknown_init_is_refused():
    with pytest.raises(SpecError, match="initialisation"):
        ModelSpec.from_dict({**MLP, "init": "magic"})


@pytest.mark.parametrize("family", ["linear", "logistic", "mlp"])
@pytest.mark.parametrize(("n_features", "n_rows"), [(4, 150), (30, 569), (50, 200_000)])
def test_starter_designs_are_valid_and_sized_from_the_data(family, n_features, n_rows):
    spec = starter_spec(family, n_features, n_rows)
    assert infer_shapes(spec, (n_features,), 3).ok
    if family == "mlp":  # sized to the rows (tests/test_defaults.py checks the task's dropout)
        assert spec.layers[0].params["out_features"] == (128 if n_rows < 1000 else 256)
        assert len([la for la in spec.layers if la.type == "Linear"]) == (2 if n_rows < 1000 else 3)
    else:
        assert spec.layers == []


def test_sizes_the_builder_fills_are_refused_with_a_fix_that_removes_them():
    spec = ModelSpec.from_dict({"family": "mlp", "layers": [{"type": "Linear", "in_features": 3}]}, strict=False)
    problem = spec.validate()[0]
    assert "'in_features' is set by the builder" in problem.message and problem.message.startswith("Layer 1")
    assert spec.apply_fix(problem.fix).validate() == []


def test_a_design_too_big_to_train_is_refused_at_the_layer_that_crosses_the_limit():
    from builder.shapes import MAX_PARAMETERS

    spec = ModelSpec.from_dict({"family": "mlp", "layers": [
        {"type": "Linear", "out_features": 1000}, {"type": "ReLU"}, {"type": "Linear", "out_features": 1_000_000}]})
    report = infer_shapes(spec, (10,), 1)
    problem = report.problems[0]
    assert problem.layer_index == 2 and "1,001,011,000 parameters" in problem.message
    assert f"{MAX_PARAMETERS:,}" in problem.message  # counted on the meta device: 4 GB never allocated
    assert report.rows[-1].output_shape is None  # nothing after the refused layer is sized


def test_seeded_builds_are_identical_even_when_threads_build_at_once():
    import threading

    spec = ModelSpec.from_dict(MLP)
    reference = build_model(spec, (6,), 2, seed=7)
    built = []

    def build():
        for _ in range(20):
            built.append(build_model(spec, (6,), 2, seed=7))

    threads = [threading.Thread(target=build) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for model in built:
        assert all(torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters(), strict=True))


SEQUENCE_FAMILIES = ["rnn", "lstm", "gru", "transformer"]


@pytest.mark.parametrize(("family", "input_shape", "vocab_size", "n_outputs"), [
    ("cnn", (1, 8, 8), None, 10), ("cnn", (3, 64, 64), None, 2), ("cnn", (3, 28, 40), None, 5),
    ("cnn", (1, 4, 4), None, 3),
    *[(f, (28, 3), None, 7) for f in SEQUENCE_FAMILIES],  # a series window -> 7 future steps
    *[(f, (40,), 500, 4) for f in SEQUENCE_FAMILIES],  # 40 token ids -> 4 classes
    ("autoencoder", (12,), None, 12), ("autoencoder", (3,), None, 3),
])
def test_every_family_template_builds_and_runs_a_forward_pass(family, input_shape, vocab_size, n_outputs):
    import contextlib

    import torch

    from builder.layers import token_input

    spec = starter_spec(family, input_shape, 5_000, vocab_size=vocab_size)
    assert spec.family == family and spec.validate() == []
    with token_input(vocab_size) if vocab_size else contextlib.nullcontext():
        assert infer_shapes(spec, input_shape, n_outputs).ok
        model = build_model(spec, input_shape, n_outputs, seed=0)
    x = torch.randint(0, vocab_size, (3, *input_shape)).float() if vocab_size else torch.randn(3, *input_shape)
    assert model(x).shape == (3, n_outputs)


@pytest.mark.parametrize(("family", "input_shape"), [("cnn", (30,)), ("lstm", (30,)), ("transformer", (3, 8, 8))])
def test_a_template_refuses_data_it_cannot_read(family, input_shape):
    with pytest.raises(SpecError, match="reads"):
        starter_spec(family, input_shape, 100)


def test_families_name_the_kinds_of_data_they_read():
    from builder.spec import families_for

    assert [f.key for f in families_for("images")] == ["cnn"]
    assert [f.key for f in families_for("series", "forecast")] == ["rnn", "lstm", "gru", "transformer"]
    assert [f.key for f in families_for("table", "anomaly")] == ["autoencoder"]
    problem = ModelSpec(family="cnn").validate("regression", "table")[0]
    assert "CNN (convolutional network) does not read tables" in problem.message
    assert "Linear regression" in problem.message
