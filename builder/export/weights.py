"""Weights as safetensors bytes, and the network rebuilt from its design to load them into.

No pickle anywhere and never ``torch.load``.
"""

from __future__ import annotations

import json
import struct

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from builder.data.sources import DataShape
from builder.errors import BundleError
from builder.model import build_model
from builder.safezip import EXPORT_AGAIN, NOT_A_BUNDLE
from builder.spec import ModelSpec


def rebuild_model(spec: ModelSpec, shape: DataShape, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    """The network of ``spec`` with fresh weights, built as training built it (text: token ids)."""
    with shape.scope():
        return build_model(spec, input_shape, n_outputs)


def weights_bytes(model: nn.Module, metadata: dict[str, str] | None = None) -> bytes:
    """Serialise a module's state dict as safetensors, with string ``metadata`` in the header."""
    # safetensors refuses tensors that share memory or are not contiguous: give it plain copies.
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    return save_safetensors_bytes(tensors, metadata=metadata)


def load_weights(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read safetensors bytes into tensors and the header's string metadata.

    Raises:
        BundleError: the bytes are not a safetensors file.
    """
    try:
        tensors = load_safetensors_bytes(data)
        (header_size,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + header_size])
    except (SafetensorError, struct.error, ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{NOT_A_BUNDLE}: its weights file is damaged ({exc}). {EXPORT_AGAIN}") from None
    metadata = header.get("__metadata__") or {}
    return tensors, {str(k): str(v) for k, v in metadata.items()}


def load_state(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Load ``state`` into ``model`` (strictly) and set eval mode; ``where`` names the source in errors.

    Raises:
        BundleError: the weights do not fit the design.
    """
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise BundleError(
            f"The weights in {where} do not fit the design they were saved with ({first}). "
            f"{EXPORT_AGAIN}"
        ) from None
    model.eval()
