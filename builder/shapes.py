"""Shape inference: the live table beside the layer editor, and the plan ``build_model`` follows.

``infer_shapes`` is one loop over the design: each layer checks the shape it receives, says the
shape it gives, and is counted (on PyTorch's ``meta`` device, so a huge layer costs no memory).
The output head, sized to the task, is appended as a locked last row. The first layer that cannot
take its input stops the shape chain; its problem carries the layer number and, where the fix is
mechanical, a ``Fix``: the layer's own (insert Flatten, set padding, set nhead...), or one that
looks around it (remove the Flatten that made an image or a sequence flat, insert Embedding at the
top of a text model, shrink the layer that crosses the parameter limit). ``editor.fix_for`` adds
the last resorts (remove the layer, drop the setting).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from builder.errors import ShapeError, SpecError
from builder.layers import (
    LAYERS,
    TOKEN_READERS,
    Fix,
    LayerProblem,
    Shape,
    describe_shape,
    model_input,
    reading_tokens,
)
from builder.spec import ModelSpec, Problem, layer_label

log = logging.getLogger(__name__)

BYTES_PER_FLOAT = 4
# A design above this many parameters is refused before anything is allocated: training it would
# take more than ~0.8 GB for weights and optimiser state alone, and the app's server is shared.
MAX_PARAMETERS = 50_000_000
# Weights, their gradients and Adam's two moment buffers: four floats per parameter while training.
FLOATS_PER_PARAM_TRAINING = 4
# Each activation is kept for the backward pass and gets a gradient of the same size.
FLOATS_PER_ACTIVATION_TRAINING = 2
# The setting that sizes each layer type, which the fix for a too-big design lowers.
SIZE_PARAMS = {"Linear": "out_features", "Conv1d": "out_channels", "Conv2d": "out_channels",
               "RNN": "hidden_size", "LSTM": "hidden_size", "GRU": "hidden_size",
               "Embedding": "embedding_dim", "EmbeddingBag": "embedding_dim",
               "TransformerEncoderLayer": "dim_feedforward", "MLPEnsemble": "width"}


@dataclass
class ShapeRow:
    """One row of the editor's live table."""

    index: int  # 0-based; the head's index is len(spec.layers)
    type: str
    params: dict[str, Any]
    input_shape: Shape | None
    output_shape: Shape | None
    n_params: int = 0
    locked: bool = False  # the output head: shown, not editable
    problem: Problem | None = None

    @property
    def input_text(self) -> str:
        return describe_shape(self.input_shape) if self.input_shape else "?"

    @property
    def output_text(self) -> str:
        return describe_shape(self.output_shape) if self.output_shape else "?"


@dataclass
class ShapeReport:
    """Everything the editor shows about a design on given data."""

    rows: list[ShapeRow]
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def total_params(self) -> int:
        return sum(row.n_params for row in self.rows)

    def memory_estimate(self, batch_size: int) -> int:
        """Rough bytes needed to train one batch: parameters with optimiser state plus activations."""
        activations = sum(math.prod(row.output_shape) for row in self.rows if row.output_shape)
        return BYTES_PER_FLOAT * (
            FLOATS_PER_PARAM_TRAINING * self.total_params
            + FLOATS_PER_ACTIVATION_TRAINING * batch_size * activations
        )


def head_params(n_outputs: int) -> dict[str, Any]:
    """The output head's parameters: one Linear layer with one output per predicted value."""
    return {"out_features": n_outputs, "bias": True}


def infer_shapes(spec: ModelSpec, input_shape: Shape, n_outputs: int, *, tokens: bool | None = None) -> ShapeReport:
    """Walk the design with a per-sample ``input_shape`` and report every layer's shapes.

    Args:
        spec: the design (hidden layers only; the head is added here).
        input_shape: shape of one sample after preprocessing, e.g. ``(30,)``.
        n_outputs: values the head must produce (1 for regression/binary, k for k classes).
        tokens: the input is token ids (text): the first layer must be Embedding. ``None`` (the
            default) means "inside ``token_input(vocab_size)``" (``DataShape.scope()``), which
            Embedding needs anyway, so training, the editor and export agree.

    Returns:
        A ``ShapeReport``; ``report.problems`` lists every problem (parameter problems of all
        layers, plus the first shape problem).
    """
    if tokens is None:
        tokens = reading_tokens()
    with model_input(tuple(input_shape)):  # a side path (AutoregressiveSkip) reads the input's size
        return _walk(spec, tuple(input_shape), n_outputs, tokens)


def _walk(spec: ModelSpec, input_shape: Shape, n_outputs: int, tokens: bool) -> ShapeReport:
    """The loop of ``infer_shapes``."""
    problems = list(spec.validate())
    first_problem: dict[int, Problem] = {}
    for problem in problems:
        if problem.layer_index is not None:
            first_problem.setdefault(problem.layer_index, problem)
    rows: list[ShapeRow] = []
    total = 0
    shape: Shape | None = tuple(input_shape)
    head = ("Linear", head_params(n_outputs))
    entries = [(layer.type, layer.params) for layer in spec.layers] + [head]
    n_layers = len(spec.layers)
    for index, (type_name, params) in enumerate(entries):
        is_head = index == n_layers
        row = ShapeRow(index, type_name, params, shape, None, locked=is_head, problem=first_problem.get(index))
        rows.append(row)
        if shape is None or row.problem is not None:
            shape = None  # the chain is broken above (or here): later shapes are unknown
            continue
        label = "The output layer" if is_head else layer_label(index, type_name)
        try:
            if tokens and index == 0 and type_name not in TOKEN_READERS:
                raise _token_problem(shape)
            if tokens and index > 0 and type_name in TOKEN_READERS:  # EmbeddingBag's (D,) looks like ids
                raise LayerProblem(
                    f"{type_name} must be the first layer: it reads token ids (one whole number per "
                    f"step) but gets {describe_shape(shape)}. Move it to the top or remove it.",
                    Fix(label="Remove this layer", action="remove", index=-1))
            out = _output_shape(type_name, shape, params, is_head, tokens)
            row.n_params = count_params(type_name, shape, params)
        except LayerProblem as exc:
            fix = exc.fix if is_head else _flatten_fix(rows, entries, index) or exc.fix
            row.problem = Problem(f"{label}: {exc}", None if is_head else index,
                                  fix=_place_fix(fix, index, n_layers, is_head), kind="shape")
            problems.append(row.problem)
            shape = None
            continue
        except Exception:  # noqa: BLE001 - torch refused settings we did not foresee: say it plainly
            log.exception("layer %s could not be built for input %s with %s", type_name, shape, params)
            row.problem = Problem(
                f"{label}: PyTorch cannot build this layer with these settings on an input of "
                f"{describe_shape(shape)}. Change its settings, or remove it.", None if is_head else index,
                fix=None if is_head else _place_fix(Fix("Remove this layer", "remove", -1), index, n_layers, False),
                kind="shape")
            problems.append(row.problem)
            shape = None
            continue
        row.output_shape = out
        shape = out
        total += row.n_params
        if total > MAX_PARAMETERS:
            budget = MAX_PARAMETERS - (total - row.n_params)
            row.problem = Problem(
                f"{label} brings the model to {total:,} parameters; the limit is {MAX_PARAMETERS:,}. "
                "Use fewer units in this or an earlier layer.", None if is_head else index,
                fix=None if is_head else _shrink_fix(index, type_name, row.input_shape, params, budget,
                                                     n_outputs if index == n_layers - 1 else None),
                kind="shape")
            problems.append(row.problem)
            shape = None
    return ShapeReport(rows, problems)


def _token_problem(shape: Shape) -> LayerProblem:
    """The first layer of a text model is not Embedding: numbers of words would be read as amounts."""
    return LayerProblem(
        f"the text arrives as token ids ({describe_shape(shape)} word numbers per text), which only "
        "Embedding can read (or EmbeddingBag, for a bag of words): a word's number is a name, not an "
        "amount. Insert Embedding as the first layer.",
        Fix(label="Insert Embedding as layer 1", action="insert", index=0,
            layer={"type": "Embedding", **LAYERS.get("Embedding").defaults()}),
    )


def _flatten_fix(rows: list[ShapeRow], entries: list[tuple[str, dict]], index: int) -> Fix | None:
    """A layer refusing its input right after Flatten, which it would have taken: remove the Flatten."""
    if index == 0 or entries[index - 1][0] != "Flatten" or rows[index - 1].input_shape is None:
        return None
    type_name, params = entries[index]
    try:
        _output_shape(type_name, rows[index - 1].input_shape, params, False, False)
    except LayerProblem:
        return None
    return Fix(label=f"Remove the Flatten (layer {index}) before it", action="remove", index=index - 1)


def _shrink_fix(index: int, type_name: str, in_shape: Shape, params: dict[str, Any], budget: int,
                head_outputs: int | None) -> Fix | None:
    """Set the layer's size to the largest value that keeps the model under the parameter limit.

    ``head_outputs``: set when the output head follows this layer, whose weights grow with its size.
    """
    name = SIZE_PARAMS.get(type_name)
    if name is None or not isinstance(params.get(name), int) or budget < 1:
        return None

    def fits(size: int) -> bool:
        sized = {**params, name: size}
        count = count_params(type_name, in_shape, sized)
        out = LAYERS.get(type_name).output_shape(in_shape, sized)
        if head_outputs is not None and len(out) == 1:
            count += count_params("Linear", out, head_params(head_outputs))
        return count <= budget

    low, high = 0, params[name] - 1  # the largest size in 1..high that fits (0: none does)
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    if low < 1:
        return None
    label = LAYERS.get(type_name).param(name).label.lower()
    return Fix(label=f"Set {label} to {low:,} on layer {index + 1}", action="set", index=index, param=name, value=low)


def _output_shape(type_name: str, shape: Shape, params: dict[str, Any], is_head: bool, tokens: bool = False) -> Shape:
    layer_type = LAYERS.get(type_name)
    if is_head and len(shape) == 2:
        mode = "mean" if tokens else "last"
        raise LayerProblem(
            f"the output layer needs one list of numbers per sample but the last layer gives a sequence "
            f"({describe_shape(shape)}: steps x features): add SequencePool at the end, which keeps "
            f"the {'average of the steps' if mode == 'mean' else 'last step'}.",
            Fix(label="Add SequencePool at the end", action="insert", index=-1,
                layer={"type": "SequencePool", "mode": mode}),
        )
    if is_head and len(shape) != 1:
        raise LayerProblem(
            f"the output layer needs a flat input but the last layer gives {describe_shape(shape)}: "
            "add Flatten at the end.",
            Fix(label="Add Flatten at the end", action="insert", index=-1, layer={"type": "Flatten"}),
        )
    out = layer_type.output_shape(shape, params)
    if any(d < 1 for d in out):
        raise LayerProblem(f"its output would be {describe_shape(out)}, which is empty.")
    return out


def _place_fix(fix: Fix | None, index: int, n_layers: int, is_head: bool) -> Fix | None:
    """Give a layer-relative fix (index -1 = "before this layer") its absolute position."""
    if fix is None or fix.index != -1:
        return fix
    position = n_layers if is_head else index
    if is_head:
        label = fix.label
    elif fix.action == "insert":
        label = f"{fix.label.replace(' before it', '')} before layer {index + 1}"
    elif fix.action == "remove":
        label = f"Remove layer {index + 1}"
    else:
        label = f"{fix.label} on layer {index + 1}"
    return Fix(label=label, action=fix.action, index=position, layer=fix.layer, param=fix.param, value=fix.value)


def count_params(type_name: str, in_shape: Shape, params: dict[str, Any]) -> int:
    """Count a layer's trainable parameters without allocating them (meta device)."""
    with torch.device("meta"):
        module = LAYERS.get(type_name).make(in_shape, params)
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def check_shapes(spec: ModelSpec, input_shape: Shape, n_outputs: int, *, tokens: bool | None = None) -> ShapeReport:
    """Like ``infer_shapes`` but raise the first problem as ``ShapeError`` (with its fix)."""
    report = infer_shapes(spec, input_shape, n_outputs, tokens=tokens)
    if report.problems:
        first = report.problems[0]
        if first.kind != "shape":
            raise SpecError(first.message)
        raise ShapeError(first.message, first.layer_index, first.fix)
    return report
