"""Small modules of our own that the palette offers beside ``torch.nn``'s.

Each class is registered in ``builder.layers`` under its class name (``PositionalEncoding``,
``SequencePool``), or wraps a torch layer so that it fits in an ``nn.Sequential`` while the design
keeps the torch name (``RecurrentLayer`` for "RNN"/"LSTM"/"GRU", ``TokenEmbedding`` for
"Embedding"). Every class keeps its constructor arguments as attributes of the same name, so
``builder.codegen`` can write it back as code, and its source is copied verbatim into a bundle's
``model.py``: keep these classes self-contained (only ``math``, ``torch`` and ``nn``).

Shapes are per sample with the batch first: a sequence is ``(B, T, F)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class RecurrentLayer(nn.Module):
    """An ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (batch first) that returns only its output sequence.

    Torch's recurrent layers return ``(output, state)``; inside an ``nn.Sequential`` the next layer
    needs the output alone: ``(B, T, F) -> (B, T, hidden_size * directions)``.
    """

    def __init__(self, kind: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0):
        super().__init__()
        self.kind = kind
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        layer_class = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}[kind]
        self.rnn = layer_class(input_size, hidden_size, num_layers=num_layers, batch_first=True,
                               bidirectional=bidirectional, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)  # (B, T, hidden_size * directions); the final state is not needed
        return out


class TokenEmbedding(nn.Embedding):
    """``nn.Embedding`` that accepts token ids stored as floats.

    Every input of the product (preprocessed tensors, ONNX, ``predict.py``) is float32; the ids are
    whole numbers, so they are cast back to int64 here: ``(B, T) -> (B, T, embedding_dim)``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.long())


class PositionalEncoding(nn.Module):
    """Adds the fixed sine/cosine position signal of "Attention Is All You Need" to a sequence.

    ``(B, T, F) -> (B, T, F)``. Without it a Transformer cannot tell the order of the time steps.
    The table is a non-persistent buffer: it is recomputed, never stored with the weights.
    """

    def __init__(self, d_model: int, max_len: int):
        super().__init__()
        self.d_model = d_model
        self.max_len = max_len
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)  # (T, 1)
        div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)  # (T, F)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term[: d_model // 2])
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[: x.size(1)]  # (B, T, F) + (T, F)

    def extra_repr(self) -> str:
        return f"{self.d_model}, max_len={self.max_len}"


class SequencePool(nn.Module):
    """Summarises a sequence as one feature vector: its last step or the mean over steps.

    ``(B, T, F) -> (B, F)``; it turns a sequence model's output into what a head can take.
    """

    def __init__(self, mode: str = "mean"):
        super().__init__()
        if mode not in ("last", "mean"):
            raise ValueError(f"mode must be 'last' or 'mean'; got {mode!r}")
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "last":
            return x[:, -1]  # (B, F)
        return x.mean(dim=1)  # (B, F)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"
