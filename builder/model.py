"""Turn a design into a torch module.

``build_model`` follows the plan of ``infer_shapes`` (so the editor's table and the real network can
never disagree), builds each layer for the shape it receives, appends the output head and applies
the chosen weight initialisation. The result is a plain ``nn.Sequential``: easy to export to ONNX,
to write out as readable code, and to load from safetensors.

A text model (first layer Embedding) whose layers can use the padding mask is a
``MaskedSequential`` instead: the same layers, numbers and state-dict keys, but its forward finds
the padding (token id 0) once and passes the mask to those layers, so padding is neither attended
to nor pooled. A forecast with a linear side path (``AutoregressiveSkip``) is an ``InputSequential``:
its forward also hands the window to that layer.
"""

from __future__ import annotations

import threading

import torch
from torch import nn

from builder.layers import LAYERS, input_layers, padding_mask_layers
from builder.modules import InputSequential, MaskedSequential
from builder.shapes import Shape, check_shapes
from builder.spec import ModelSpec

# Initial weights come from torch's process-wide generator; training jobs build models in their own
# threads, so seeding and drawing happen under one lock or two jobs would interleave their draws.
_INIT_LOCK = threading.Lock()


def build_model(spec: ModelSpec, input_shape: Shape, n_outputs: int, seed: int | None = None) -> nn.Sequential:
    """Build the network for samples of ``input_shape`` with ``n_outputs`` raw outputs.

    Args:
        spec: the design (hidden layers; the head is added here).
        input_shape: per-sample shape after preprocessing, e.g. ``(30,)``.
        n_outputs: 1 for regression and binary tasks, k for k classes.
        seed: seed for the initial weights, for runs that repeat exactly.

    Returns:
        ``nn.Sequential`` whose forward maps ``(B, *input_shape)`` to ``(B, n_outputs)``; for token
        ids with a layer that takes the padding mask, its subclass ``MaskedSequential``.

    Raises:
        SpecError / ShapeError: the first problem of the design, with the layer number.
    """
    report = check_shapes(spec, input_shape, n_outputs)
    with _INIT_LOCK:
        if seed is not None:
            torch.manual_seed(seed)
        modules = [LAYERS.get(row.type).make(row.input_shape, row.params) for row in report.rows]
        model = sequential(modules, [row.type for row in report.rows])
        initialise(model, spec.init)
    return model


def sequential(modules: list[nn.Module], type_names: list[str]) -> nn.Sequential:
    """Chain built layers: ``MaskedSequential`` when some layer takes the padding mask of token ids,
    ``InputSequential`` when some layer (a side path) takes the model's input.

    Args:
        modules: the built layers, head included.
        type_names: their layer types, in the same order.
    """
    mask_layers = padding_mask_layers(type_names)
    if mask_layers:  # None: not token ids; (): no layer would use the mask
        return MaskedSequential(*modules, mask_layers=mask_layers)
    side_paths = input_layers(type_names)
    if side_paths:
        return InputSequential(*modules, input_layers=side_paths)
    return nn.Sequential(*modules)


def initialise(model: nn.Module, scheme: str) -> None:
    """Re-initialise weights in place; biases of re-initialised layers start at zero.

    "default" keeps PyTorch's per-layer defaults (Kaiming-uniform for Linear and Conv), which suit
    ReLU. "xavier" suits tanh/sigmoid networks and "kaiming" (normal, fan-in) deep ReLU networks:
    both re-initialise the weight matrices of Linear and Conv layers (including those inside a
    Transformer block). "orthogonal" makes each gate's recurrent matrix (``weight_hh``) of RNN/LSTM/GRU
    orthogonal, which keeps the memory from exploding or vanishing over long sequences; every other
    weight keeps its default.
    """
    if scheme == "default":
        return
    for module in model.modules():
        if scheme == "orthogonal":
            if isinstance(module, nn.RNNBase):
                _orthogonal_recurrent(module)
            continue
        weight = getattr(module, "weight", None)
        if not isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d) or weight is None:
            continue
        if scheme == "xavier":
            nn.init.xavier_uniform_(weight)
        elif scheme == "kaiming":
            nn.init.kaiming_normal_(weight, nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _orthogonal_recurrent(module: nn.RNNBase) -> None:
    """Orthogonal ``weight_hh`` per gate: an LSTM's (4H, H) matrix is four (H, H) blocks."""
    gates = {"LSTM": 4, "GRU": 3}.get(module.mode, 1)
    for name, weight in module.named_parameters():
        if name.startswith("weight_hh"):
            with torch.no_grad():
                for block in weight.chunk(gates, dim=0):  # (H, H) each
                    nn.init.orthogonal_(block)
