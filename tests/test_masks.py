"""Padding masks of text models, with real forward passes.

Text is right-padded with token id 0. A model whose first layer is Embedding must give a row the
same output whatever padding follows it (neither attended to nor pooled), stay finite for an empty
text, learn, export to ONNX and be written out as model.py with the same outputs. Every other model
must stay a plain ``nn.Sequential``.
"""

from __future__ import annotations

import importlib.util
import uuid

import numpy as np
import pytest
import torch
from torch import nn

from builder.codegen import model_source
from builder.export import onnx_export, weights_bytes
from builder.layers import padding_mask_layers, token_input
from builder.model import build_model
from builder.modules import MaskedSequential, SequencePool, TokenEmbedding
from builder.spec import ModelSpec
from builder.train import History, TensorData, TrainConfig, fit
from builder.trained import TrainedModel

VOCAB = 30
T = 16  # the built input length; shorter inputs are the same texts with less padding
SHORT_T = 9

EMBED = {"type": "Embedding", "embedding_dim": 8}
POSITION = {"type": "PositionalEncoding"}
ATTENTION = {"type": "TransformerEncoderLayer", "nhead": 2, "dim_feedforward": 16}
DESIGNS = {
    "transformer-mean": [EMBED, POSITION, ATTENTION, {"type": "SequencePool", "mode": "mean"}],
    "transformer-last": [EMBED, POSITION, ATTENTION, {"type": "SequencePool", "mode": "last"}],
    "two-transformers-norm-first": [EMBED, POSITION, ATTENTION, {**ATTENTION, "norm_first": True},
                                    {"type": "SequencePool", "mode": "mean"}],
    "embedding-mean": [EMBED, {"type": "SequencePool", "mode": "mean"}],
    "embedding-linear-last": [EMBED, {"type": "Linear", "out_features": 6}, {"type": "ReLU"},
                              {"type": "SequencePool", "mode": "last"}],
    # A one-way recurrent layer reads the padding after the text, so its real steps do not see it.
    "lstm-last": [EMBED, {"type": "LSTM", "hidden_size": 6, "num_layers": 2},
                  {"type": "SequencePool", "mode": "last"}],
    "gru-mean": [EMBED, {"type": "GRU", "hidden_size": 6}, {"type": "SequencePool", "mode": "mean"}],
}


def _spec(layers: list[dict], init: str = "default") -> ModelSpec:
    return ModelSpec.from_dict({"family": "mlp", "init": init, "layers": layers})


def _build(layers: list[dict], n_outputs: int = 3, length: int = T, seed: int = 0) -> nn.Sequential:
    with token_input(VOCAB):
        return build_model(_spec(layers), (length,), n_outputs, seed=seed)


def _texts(rng: np.random.Generator, n: int, max_len: int) -> list[np.ndarray]:
    """Token ids 1..VOCAB-1 of random lengths 0..max_len; the first text is empty."""
    return [np.zeros(0)] + [rng.integers(1, VOCAB, rng.integers(1, max_len + 1)) for _ in range(n - 1)]


def _pad(texts: list[np.ndarray], length: int) -> torch.Tensor:
    """Right-pad with 0 to ``length``, as float32 ``(N, length)`` like TextPreprocessor.transform."""
    X = np.zeros((len(texts), length), dtype=np.float32)
    for i, ids in enumerate(texts):
        X[i, :len(ids)] = ids
    return torch.from_numpy(X)


# --- structure -------------------------------------------------------------------------------------


def test_only_text_models_with_a_mask_taker_are_masked_and_keys_are_unchanged():
    text = _build(DESIGNS["transformer-mean"])
    assert type(text) is MaskedSequential and text.mask_layers == (2, 3)
    assert isinstance(text, nn.Sequential) and len(text) == 5 and isinstance(text[0], TokenEmbedding)
    plain = nn.Sequential(*text)  # the same layers in a plain container
    assert list(text.state_dict()) == list(plain.state_dict())
    assert list(text.state_dict())[0] == "0.weight"

    table = build_model(_spec([{"type": "Linear", "out_features": 4}, {"type": "ReLU"}]), (5,), 2)
    assert type(table) is nn.Sequential
    sequence = build_model(_spec([{"type": "LSTM", "hidden_size": 4}, {"type": "SequencePool"}]), (6, 3), 2)
    assert type(sequence) is nn.Sequential  # numbers, not token ids: there is no padding to find
    assert type(_build([EMBED, {"type": "Flatten"}])) is nn.Sequential  # nothing would use the mask


def test_padding_mask_stops_at_the_first_layer_that_moves_time_steps():
    assert padding_mask_layers(["Linear", "ReLU", "Linear"]) is None
    assert padding_mask_layers(["Embedding", "Flatten", "Linear"]) == ()
    assert padding_mask_layers(["Embedding", "Dropout", "TransformerEncoderLayer", "SequencePool",
                                "Linear"]) == (2, 3)
    # Conv1d reads a sequence (T, F) as T channels: after it the steps no longer line up with the mask.
    assert padding_mask_layers(["Embedding", "Conv1d", "SequencePool", "Linear"]) == ()
    model = _build([EMBED, {"type": "Conv1d", "out_channels": 5, "kernel_size": 3},
                    {"type": "SequencePool", "mode": "mean"}])
    assert type(model) is nn.Sequential
    assert model(_pad(_texts(np.random.default_rng(0), 4, T), T)).shape == (4, 3)


def test_token_embedding_keeps_the_padding_vector_at_zero_without_gradient():
    model = _build(DESIGNS["embedding-mean"])
    embedding = model[0]
    assert embedding.padding_idx == 0 and torch.count_nonzero(embedding.weight[0]) == 0
    model(_pad(_texts(np.random.default_rng(1), 6, 5), T)).pow(2).sum().backward()
    assert torch.count_nonzero(embedding.weight.grad[0]) == 0
    assert torch.count_nonzero(embedding.weight.grad[1:]) > 0


def test_masked_sequential_checks_its_layer_numbers():
    with pytest.raises(ValueError, match="mask_layers names layer 3"):
        MaskedSequential(nn.Identity(), SequencePool(), mask_layers=(3,))


# --- padding does not change the outputs --------------------------------------------------------------


@pytest.mark.parametrize("name", list(DESIGNS))
def test_appending_padding_does_not_change_a_row(name):
    model = _build(DESIGNS[name]).eval()
    texts = _texts(np.random.default_rng(2), 8, SHORT_T)
    short, long = _pad(texts, SHORT_T), _pad(texts, T)
    # inference mode takes TransformerEncoderLayer's fused fast path; with gradients on, the plain one
    with torch.inference_mode():
        fast_short, fast_long = model(short), model(long)
    slow_short, slow_long = model(short).detach(), model(long).detach()
    for got in (fast_short, fast_long, slow_short, slow_long):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, slow_long, atol=1e-5, rtol=0)


def test_padding_does_change_the_outputs_of_an_unmasked_mean():
    # The check above has teeth: the same mean over every step (as before masks) depends on padding.
    x = torch.randn(1, 3, 4)
    padded = torch.cat([x, torch.zeros(1, 2, 4)], dim=1)
    assert not torch.allclose(SequencePool("mean")(x), SequencePool("mean")(padded))
    mask = torch.tensor([[False] * 3 + [True] * 2])
    torch.testing.assert_close(SequencePool("mean")(padded, mask), SequencePool("mean")(x))
    torch.testing.assert_close(SequencePool("last")(padded, mask), x[:, -1])


@pytest.mark.parametrize("name", ["transformer-mean", "transformer-last", "two-transformers-norm-first",
                                  "lstm-last"])
def test_all_padding_rows_stay_finite_in_training_and_eval(name):
    model = _build(DESIGNS[name])
    X = torch.zeros(3, T)  # three empty texts
    X[1, :4] = torch.tensor([3.0, 4.0, 5.0, 6.0])
    out = model(X)  # train mode: dropout on, no fast path
    assert torch.isfinite(out).all()
    out.pow(2).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.inference_mode():
        out = model(X)
        alone = model(torch.zeros(1, T))
    assert torch.isfinite(out).all() and torch.isfinite(alone).all()
    torch.testing.assert_close(out[0], alone[0], atol=1e-5, rtol=0)  # an empty text pools to zeros
    torch.testing.assert_close(out[0], model[-1].bias.detach(), atol=1e-6, rtol=0)


# --- training ----------------------------------------------------------------------------------------------

KEYWORD = 7


def _keyword_task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Texts of 1..T tokens; the label says whether the keyword occurs (half the texts hold it)."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n, T), dtype=np.float32)
    y = np.zeros((n, 1), dtype=np.float32)
    others = np.array([i for i in range(1, VOCAB) if i != KEYWORD])
    for i in range(n):
        length = int(rng.integers(1, T + 1))
        ids = rng.choice(others, length)
        if i % 2:
            ids[rng.integers(0, length)] = KEYWORD
            y[i] = 1.0
        X[i, :length] = ids
    return X, y


def test_transformer_learns_whether_a_keyword_occurs_in_texts_of_any_length():
    X_train, y_train = _keyword_task(1200, seed=0)
    X_val, y_val = _keyword_task(300, seed=1)
    X_test, y_test = _keyword_task(400, seed=2)
    layers = [{"type": "Embedding", "embedding_dim": 16}, POSITION,
              {"type": "TransformerEncoderLayer", "nhead": 2, "dim_feedforward": 32, "dropout": 0.0},
              {"type": "SequencePool", "mode": "mean"}]
    model = _build(layers, n_outputs=1)
    config = TrainConfig(epochs=15, batch_size=32, lr=0.005, device="cpu", seed=0,
                         early_stopping_patience=None)
    result = fit(model, TensorData(X_train, y_train, X_val, y_val), "binary", config)
    with torch.inference_mode():
        logits = result.model(torch.from_numpy(X_test)).numpy()
    accuracy = float(((logits > 0) == (y_test > 0.5)).mean())
    assert accuracy > 0.95, accuracy


# --- ONNX and model.py ----------------------------------------------------------------------------------


def _trained(model: nn.Module, layers: list[dict], n_outputs: int) -> TrainedModel:
    # export_onnx and the parity check read only the model and the input shape.
    return TrainedModel(model=model.eval(), spec=_spec(layers), data_spec=None, preprocessor=None,
                        input_shape=(T,), config=TrainConfig(), history=History())


def _parity_batches() -> dict[int, torch.Tensor]:
    rng = np.random.default_rng(3)
    batches = {}
    for n in onnx_export.PARITY_BATCHES:  # 1, 3 and 7 rows: mostly padding, with an empty text beyond 1
        texts = _texts(rng, n + 1, 4)[1:] if n == 1 else _texts(rng, n, 4)
        if n == 7:
            texts[-1] = rng.integers(1, VOCAB, T)  # and one text with no padding at all
        batches[n] = _pad(texts, T)
    return batches


@pytest.mark.parametrize("name", ["transformer-mean", "transformer-last", "lstm-last"])
def test_masked_text_models_export_to_onnx_with_the_same_outputs(name):
    layers = DESIGNS[name]
    trained = _trained(_build(layers), layers, 3)
    batches = _parity_batches()
    onnx_model = onnx_export.export_onnx(trained, batches[3].numpy())
    session = onnx_export._session(onnx_model)
    for n, X in batches.items():
        assert onnx_export._max_diff(trained, session, X.numpy()) <= onnx_export.PARITY_TOLERANCE, n
    assert onnx_export._max_diff(trained, session, torch.zeros(1, T).numpy()) <= onnx_export.PARITY_TOLERANCE


def _import_model_py(folder):
    spec = importlib.util.spec_from_file_location(f"bundle_model_{uuid.uuid4().hex}", folder / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["two-transformers-norm-first", "transformer-last", "lstm-last"])
def test_model_py_rebuilds_a_masked_text_model_exactly(name, tmp_path):
    layers = DESIGNS[name]
    reference = _build(layers).eval()
    with token_input(VOCAB):
        source = model_source(_spec(layers), (T,), 3)
    assert "class MaskedSequential(nn.Sequential):" in source
    assert "builder" not in source.split('"""', 2)[2]  # no import of the app, only torch
    assert "padding_idx=0" in source and "mask_layers=" in source
    (tmp_path / "model.py").write_text(source)
    (tmp_path / "model.safetensors").write_bytes(weights_bytes(reference))
    net = _import_model_py(tmp_path).load(tmp_path / "model.safetensors")
    assert type(net).__name__ == "MaskedSequential" and repr(net) == repr(reference)
    X = _pad(_texts(np.random.default_rng(4), 7, T), T)
    with torch.inference_mode():
        assert torch.equal(net(X), reference(X))
