"""Every mechanical shape error: its message (layer number, type, what is wrong, the fix) and that
the one-click fix the editor offers (``editor.fix_for`` + ``editor.apply_fix``) gives a design that
is valid, builds, and runs a real forward pass to the right output size."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pytest
import torch

from builder.editor import apply_fix, fix_for
from builder.layers import token_input
from builder.model import build_model
from builder.shapes import MAX_PARAMETERS, infer_shapes
from builder.spec import ModelSpec

IMAGE, SMALL_IMAGE, SERIES, TABLE, TEXT = (1, 16, 16), (1, 8, 8), (12, 2), (10,), (12,)
VOCAB = 40
RAW_ERRORS = ("Traceback", "RuntimeError", "torch.", "tensor", "mat1")


@dataclass(frozen=True)
class Case:
    layers: list[dict]
    shape: tuple[int, ...]
    message: tuple[str, ...]  # the start ("Layer 3 (Linear): ...") and the words that must be in it
    fix: str  # the fix button's label
    fixed: tuple[str, ...]  # the layer types after the fix
    text: bool = False  # token ids: inside token_input, with the Embedding-first rule
    n_outputs: int = 3


CASES = {
    "linear right after Conv2d without Flatten": Case(
        [{"type": "Conv2d", "out_channels": 8, "padding": 1}, {"type": "ReLU"}, {"type": "Linear"}], IMAGE,
        ("Layer 3 (Linear): Linear needs a flat input", "gets 8x16x16", "add Flatten before it"),
        "Insert Flatten before layer 3", ("Conv2d", "ReLU", "Flatten", "Linear")),
    "Conv2d kernel larger than the image": Case(
        [{"type": "Conv2d", "kernel_size": 12}, {"type": "ReLU"}, {"type": "Flatten"}], SMALL_IMAGE,
        ("Layer 1 (Conv2d): gets input 1x8x8", "kernel_size=12 does not fit in 8x8", "add padding=2"),
        "Set padding to 2 on layer 1", ("Conv2d", "ReLU", "Flatten")),
    "pooling that shrinks the image to nothing": Case(
        [{"type": "MaxPool2d"}] * 4 + [{"type": "Flatten"}], SMALL_IMAGE,
        ("Layer 4 (MaxPool2d): gets input 1x1x1", "kernel_size=2 does not fit in 1x1", "add padding=1"),
        "Set padding to 1 on layer 4", ("MaxPool2d",) * 4 + ("Flatten",)),
    "pooling padding over half the window": Case(
        [{"type": "AvgPool2d", "kernel_size": 2, "padding": 2}, {"type": "Flatten"}], SMALL_IMAGE,
        ("Layer 1 (AvgPool2d): padding=2 is more than half of kernel_size=2", "set padding to 1"),
        "Set padding to 1 on layer 1", ("AvgPool2d", "Flatten")),
    "RNN after Flatten": Case(
        [{"type": "Flatten"}, {"type": "LSTM", "hidden_size": 16}, {"type": "SequencePool", "mode": "last"}], SERIES,
        ("Layer 2 (LSTM): LSTM needs a sequence (time steps x features)", "flat input of 24 numbers"),
        "Remove the Flatten (layer 1) before it", ("LSTM", "SequencePool"), n_outputs=4),
    "RNN on a table": Case(
        [{"type": "GRU"}, {"type": "Linear", "out_features": 8}], TABLE,
        ("Layer 1 (GRU): GRU needs a sequence", "flat input of 10 numbers per row", "or remove it"),
        "Remove layer 1", ("Linear",)),
    "SequencePool on a table": Case(
        [{"type": "Linear"}, {"type": "ReLU"}, {"type": "SequencePool"}], TABLE,
        ("Layer 3 (SequencePool): SequencePool needs a sequence", "flat input of 64 numbers per row"),
        "Remove layer 3", ("Linear", "ReLU")),
    "Transformer whose features do not split over the heads": Case(
        [{"type": "Linear", "out_features": 30}, {"type": "TransformerEncoderLayer", "nhead": 4},
         {"type": "SequencePool", "mode": "last"}], SERIES,
        ("Layer 2 (TransformerEncoderLayer): its 30 features (d_model) are split across nhead=4",
         "set nhead to 3"),
        "Set nhead to 3 on layer 2", ("Linear", "TransformerEncoderLayer", "SequencePool")),
    "Transformer after an LSTM of an odd size": Case(
        [{"type": "LSTM", "hidden_size": 50}, {"type": "TransformerEncoderLayer", "nhead": 4},
         {"type": "SequencePool"}], SERIES,
        ("Layer 2 (TransformerEncoderLayer): its 50 features", "set nhead to 2"),
        "Set nhead to 2 on layer 2", ("LSTM", "TransformerEncoderLayer", "SequencePool")),
    "Embedding not first": Case(
        [{"type": "Embedding", "embedding_dim": 16}, {"type": "LSTM", "hidden_size": 16}, {"type": "Embedding"},
         {"type": "SequencePool"}], TEXT,
        ("Layer 3 (Embedding): Embedding must be the first layer", "Move it to the top or remove it"),
        "Remove layer 3", ("Embedding", "LSTM", "SequencePool"), text=True),
    "Embedding on numeric data": Case(
        [{"type": "Embedding"}, {"type": "Linear"}], TABLE,
        ("Layer 1 (Embedding): Embedding needs text data (token ids)", "10 per row", "remove it"),
        "Remove layer 1", ("Linear",)),
    "text without Embedding (a Transformer)": Case(
        [{"type": "PositionalEncoding"}, {"type": "TransformerEncoderLayer", "nhead": 4}, {"type": "SequencePool"}],
        TEXT, ("Layer 1 (PositionalEncoding): the text arrives as token ids", "Insert Embedding as the first layer"),
        "Insert Embedding as layer 1", ("Embedding", "PositionalEncoding", "TransformerEncoderLayer", "SequencePool"),
        text=True),
    "text without Embedding (an LSTM)": Case(
        [{"type": "LSTM"}, {"type": "SequencePool"}], TEXT,
        ("Layer 1 (LSTM): the text arrives as token ids", "only Embedding can read"),
        "Insert Embedding as layer 1", ("Embedding", "LSTM", "SequencePool"), text=True),
    "Conv1d on a table": Case(
        [{"type": "Conv1d"}, {"type": "ReLU"}, {"type": "Flatten"}], TABLE,
        ("Layer 1 (Conv1d): Conv1d needs channels x length but gets 10",),
        "Remove layer 1", ("ReLU", "Flatten")),
    "Conv2d on a time series": Case(
        [{"type": "Conv2d"}, {"type": "Flatten"}], SERIES,
        ("Layer 1 (Conv2d): Conv2d needs channels x height x width (an image) but gets 12x2", "Use Conv1d"),
        "Remove layer 1", ("Flatten",)),
    "Conv1d on an image": Case(
        [{"type": "Conv1d"}, {"type": "Flatten"}], SMALL_IMAGE,
        ("Layer 1 (Conv1d): Conv1d needs channels x length but gets 1x8x8", "Use Conv2d"),
        "Remove layer 1", ("Flatten",)),
    "Conv2d after Flatten": Case(
        [{"type": "Flatten"}, {"type": "Conv2d", "padding": 1}, {"type": "ReLU"}, {"type": "Flatten"}], SMALL_IMAGE,
        ("Layer 2 (Conv2d): Conv2d needs channels x height x width (an image) but gets 64",),
        "Remove the Flatten (layer 1) before it", ("Conv2d", "ReLU", "Flatten")),
    "BatchNorm1d on an image": Case(
        [{"type": "Conv2d", "out_channels": 4}, {"type": "BatchNorm1d"}, {"type": "Flatten"}], SMALL_IMAGE,
        ("Layer 2 (BatchNorm1d): BatchNorm1d needs features or channels x length but gets 4x6x6",
         "add Flatten before it"),
        "Insert Flatten before layer 2", ("Conv2d", "Flatten", "BatchNorm1d", "Flatten")),
    "BatchNorm2d on a table": Case(
        [{"type": "Linear"}, {"type": "BatchNorm2d"}], TABLE,
        ("Layer 2 (BatchNorm2d): BatchNorm2d needs channels x height x width (an image) but gets 64",
         "use BatchNorm1d"),
        "Remove layer 2", ("Linear",)),
    "an image reaching the output": Case(
        [{"type": "Conv2d", "out_channels": 4}, {"type": "ReLU"}], SMALL_IMAGE,
        ("The output layer: the output layer needs a flat input but the last layer gives 4x6x6",
         "add Flatten at the end"),
        "Add Flatten at the end", ("Conv2d", "ReLU", "Flatten")),
    "a sequence reaching the output": Case(
        [{"type": "GRU", "hidden_size": 8}], SERIES,
        ("The output layer: the output layer needs one list of numbers per sample", "12x8",
         "add SequencePool at the end"),
        "Add SequencePool at the end", ("GRU", "SequencePool"), n_outputs=4),
    "recurrent dropout without stacked layers": Case(
        [{"type": "LSTM", "dropout": 0.3}, {"type": "SequencePool", "mode": "last"}], SERIES,
        ("Layer 1 (LSTM): dropout=0.3 only acts between stacked layers", "set num_layers to 2 or more"),
        "Set dropout to 0 on layer 1", ("LSTM", "SequencePool")),
    "a design too big to train": Case(
        [{"type": "Linear", "out_features": 1000}, {"type": "ReLU"}, {"type": "Linear", "out_features": 1_000_000}],
        TABLE, ("Layer 3 (Linear) brings the model to 1,001,011,000 parameters", f"{MAX_PARAMETERS:,}",
                "Use fewer units"),
        "Set units to 49,789 on layer 3", ("Linear", "ReLU", "Linear")),
    "an unknown setting": Case(
        [{"type": "Linear", "units": 5}], TABLE,
        ("Layer 1 (Linear): unknown setting 'units'. It takes bias, out_features",),
        "Remove the setting 'units' from layer 1", ("Linear",)),
    "an unknown layer type": Case(
        [{"type": "Linear"}, {"type": "Dense"}], TABLE,
        ("Layer 2 (Dense): unknown layer type. Choose one of: Linear",),
        "Remove this layer", ("Linear",)),
    "a value out of range": Case(
        [{"type": "Linear"}, {"type": "Dropout", "p": 1.5}], TABLE,
        ("Layer 2 (Dropout):", "1.5"),
        "Set drop share to 0.2", ("Linear", "Dropout")),
}


def _scope(text: bool):
    return token_input(VOCAB) if text else contextlib.nullcontext()


def _report(spec: ModelSpec, case: Case):
    return infer_shapes(spec, case.shape, case.n_outputs, tokens=case.text)


def _forward(spec: ModelSpec, shape, n_outputs: int, text: bool) -> torch.Tensor:
    model = build_model(spec, shape, n_outputs, seed=0).eval()
    x = torch.randint(1, VOCAB, (3, *shape)).float() if text else torch.randn(3, *shape)
    with torch.inference_mode():
        return model(x)


@pytest.mark.parametrize("name", list(CASES))
def test_the_error_says_where_what_and_how_and_its_fix_gives_a_design_that_runs(name):
    case = CASES[name]
    spec = ModelSpec.from_dict({"family": "mlp", "layers": case.layers}, strict=False)
    with _scope(case.text):
        report = _report(spec, case)
        assert report.problems, "the broken design was accepted"
        problem = report.problems[0]
        start, *words = case.message
        assert problem.message.startswith(start), problem.message
        for word in words:
            assert word in problem.message, (word, problem.message)
        assert not any(raw in problem.message for raw in RAW_ERRORS), problem.message
        fix = fix_for(problem)
        assert fix is not None and fix.label == case.fix
        fixed = apply_fix(spec, fix)
        assert tuple(layer.type for layer in fixed.layers) == case.fixed
        after = _report(fixed, case)
        assert after.ok, [p.message for p in after.problems]
        out = _forward(fixed, case.shape, case.n_outputs, case.text)
    assert out.shape == (3, case.n_outputs) and torch.isfinite(out).all()
    assert fixed.validate() == []


def test_the_problem_is_placed_on_its_layer_or_on_the_output():
    case = CASES["linear right after Conv2d without Flatten"]
    problem = _report(ModelSpec.from_dict({"family": "cnn", "layers": case.layers}), case).problems[0]
    assert problem.layer_index == 2 and problem.kind == "shape"
    head = CASES["an image reaching the output"]
    problem = _report(ModelSpec.from_dict({"family": "cnn", "layers": head.layers}), head).problems[0]
    assert problem.layer_index is None and problem.fix.index == 2  # inserted after the last layer


def test_a_text_model_starting_with_linear_is_refused_and_fixes_lead_to_a_valid_design():
    """Linear takes the token ids shape-wise, but would read word numbers as amounts."""
    spec = ModelSpec.from_dict({"family": "lstm", "layers": [{"type": "Linear"}, {"type": "ReLU"}]})
    with token_input(VOCAB):
        assert infer_shapes(spec, TEXT, 2, tokens=False).ok  # without the rule, shapes alone fit
        assert not infer_shapes(spec, TEXT, 2).ok  # inside token_input the rule is on by default
        report = infer_shapes(spec, TEXT, 2, tokens=True)
        assert report.problems[0].message.startswith("Layer 1 (Linear): the text arrives as token ids")
        assert all(row.output_shape is None for row in report.rows)  # the chain stops at layer 1
        fixed = _fix_until_valid(spec, TEXT, 2, tokens=True)
        assert [la.type for la in fixed.layers] == ["Embedding", "Linear", "ReLU", "SequencePool"]
        assert fixed.layers[-1].params["mode"] == "mean"  # text: the average of the words
        assert _forward(fixed, TEXT, 2, text=True).shape == (3, 2)
    empty = ModelSpec("lstm", [])
    with token_input(VOCAB):
        problem = infer_shapes(empty, TEXT, 2, tokens=True).problems[0]
        assert problem.message.startswith("The output layer: the text arrives as token ids")
        assert [la.type for la in apply_fix(empty, fix_for(problem)).layers] == ["Embedding"]


def _fix_until_valid(spec: ModelSpec, shape, n_outputs: int, tokens: bool = False, clicks: int = 6) -> ModelSpec:
    for _ in range(clicks):
        report = infer_shapes(spec, shape, n_outputs, tokens=tokens)
        if report.ok:
            return spec
        fix = fix_for(report.problems[0])
        assert fix is not None, report.problems[0].message
        spec = apply_fix(spec, fix)
    raise AssertionError(f"still broken after {clicks} fixes: {infer_shapes(spec, shape, n_outputs).problems}")


@pytest.mark.parametrize("layers, shape", [
    ([{"type": "Conv2d"}, {"type": "SequencePool"}], SMALL_IMAGE),
    ([{"type": "LSTM"}, {"type": "Conv2d"}, {"type": "Linear"}], SERIES),
    ([{"type": "Linear"}, {"type": "Conv1d"}, {"type": "MaxPool2d"}, {"type": "LSTM"}], TABLE),
    ([{"type": "MaxPool2d", "kernel_size": 9}, {"type": "Linear"}, {"type": "BatchNorm2d"}], SMALL_IMAGE),
])
def test_a_few_clicks_repair_any_broken_design(layers, shape):
    fixed = _fix_until_valid(ModelSpec.from_dict({"family": "mlp", "layers": layers}, strict=False), shape, 2)
    assert _forward(fixed, shape, 2, text=False).shape == (3, 2)


def test_a_layer_torch_refuses_is_explained_without_the_torch_error(monkeypatch):
    import builder.shapes as shapes

    def refuse(type_name, in_shape, params):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (3x4 and 5x6)")

    monkeypatch.setattr(shapes, "count_params", refuse)
    spec = ModelSpec.from_dict({"family": "mlp", "layers": [{"type": "Linear"}]})
    problem = infer_shapes(spec, TABLE, 2).problems[0]
    assert problem.message.startswith("Layer 1 (Linear): PyTorch cannot build this layer with these settings")
    assert "mat1" not in problem.message and problem.fix.label == "Remove layer 1"


def test_the_shrink_fix_leaves_room_for_the_output_layer():
    spec = ModelSpec.from_dict({"family": "mlp", "layers": [{"type": "Linear", "out_features": 1_000_000}]})
    problem = infer_shapes(spec, (100,), 10).problems[0]
    fixed = apply_fix(spec, fix_for(problem))
    report = infer_shapes(fixed, (100,), 10)
    assert report.ok and MAX_PARAMETERS - 200 < report.total_params <= MAX_PARAMETERS
