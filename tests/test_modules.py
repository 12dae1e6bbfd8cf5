"""builder.modules and the sequence/image palette end to end: our own modules behave as documented,
weight initialisation covers conv and recurrent layers, and whole designs build, run and export to
ONNX (dynamo exporter, dynamic batch) with outputs matching torch."""

from __future__ import annotations

import contextlib
import io
import math
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from builder.layers import token_input
from builder.losses import Objective, member_mean, member_targets
from builder.model import build_model, initialise
from builder.modules import (
    MLPEnsemble,
    PeriodicEmbedding,
    PositionalEncoding,
    RecurrentLayer,
    SequencePool,
    TokenEmbedding,
    TokenEmbeddingBag,
)
from builder.spec import ModelSpec


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recurrent_layer_returns_only_the_output_sequence(kind, bidirectional):
    layer = RecurrentLayer(kind, 3, 5, num_layers=2, bidirectional=bidirectional, dropout=0.1).eval()
    x = torch.randn(4, 7, 3)  # (B, T, F)
    out = layer(x)
    assert out.shape == (4, 7, 5 * (2 if bidirectional else 1))
    expected, _ = layer.rnn(x)
    assert torch.equal(out, expected) and layer.rnn.batch_first


def test_sequence_pool_last_and_mean():
    x = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)  # (B, T, F)
    assert torch.equal(SequencePool("last")(x), x[:, -1])
    assert torch.equal(SequencePool("mean")(x), x.mean(dim=1))
    with pytest.raises(ValueError, match="mode"):
        SequencePool("max")


@pytest.mark.parametrize("d_model", [6, 7])
def test_positional_encoding_adds_the_sine_cosine_table(d_model):
    pe = PositionalEncoding(d_model, 5)
    out = pe(torch.zeros(2, 5, d_model))
    assert out.shape == (2, 5, d_model)
    assert out[0, 0, 0] == 0 and out[0, 0, 1] == 1  # sin(0), cos(0)
    assert math.isclose(out[0, 3, 2].item(), math.sin(3 / 10000 ** (2 / d_model)), rel_tol=1e-5)
    assert pe.state_dict() == {}  # recomputed, never saved with the weights


def test_token_embedding_takes_float_ids():
    emb = TokenEmbedding(10, 4)
    ids = torch.tensor([[1, 2, 9]])
    assert torch.equal(emb(ids.float()), emb(ids))


def test_token_embedding_bag_takes_float_ids_and_leaves_padding_out():
    bag = TokenEmbeddingBag(10, 4)
    ids = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]])  # (B, T), 0 = padding
    out = bag(ids)  # (B, 4)
    torch.testing.assert_close(out[0], bag.weight[[1, 2]].mean(dim=0))
    assert torch.equal(out[1], torch.zeros(4))
    assert torch.equal(bag.weight[0], torch.zeros(4))


def test_periodic_embedding_gives_each_column_its_own_features():
    torch.manual_seed(0)
    layer = PeriodicEmbedding(3, frequencies=4, embedding_dim=5, sigma=0.5)
    x = torch.randn(7, 3)
    out = layer(x)
    assert out.shape == (7, 15) and (out >= 0).all()  # ReLU after the per-column mix
    changed = x.clone()
    changed[:, 1] += 1.0  # column 2 moves: only its 5 features change
    moved = (layer(changed) - out).abs().reshape(7, 3, 5).sum(dim=(0, 2))
    assert moved[0] == 0 and moved[2] == 0 and moved[1] > 0


def test_mlp_ensemble_trains_each_member_on_every_row_and_averages_them_in_evaluation():
    torch.manual_seed(0)
    layer = MLPEnsemble(4, members=3, width=5, depth=2, dropout=0.0)
    x = torch.randn(7, 4)
    stacked = layer(x)  # training: one row per member and sample, member 0's rows first
    assert stacked.shape == (21, 5)
    first_member = torch.relu(torch.relu(x @ layer.weights[0][0] + layer.biases[0][0]) @ layer.weights[1][0]
                              + layer.biases[1][0])
    torch.testing.assert_close(stacked[:7], first_member)
    assert not torch.allclose(stacked[:7], stacked[7:14])  # members start apart
    layer.eval()
    torch.testing.assert_close(layer(x), stacked.reshape(3, 7, 5).mean(dim=0))


def test_the_loss_of_an_ensemble_is_the_mean_of_its_members_losses():
    y = torch.tensor([[1.0], [0.0]])
    out = torch.tensor([[2.0], [-1.0], [0.5], [0.5]])  # 2 members x 2 rows
    targets = member_targets(out, y)
    assert torch.equal(targets, torch.tensor([[1.0], [0.0], [1.0], [0.0]]))
    each = [F.binary_cross_entropy_with_logits(out[i * 2:(i + 1) * 2], y) for i in range(2)]
    torch.testing.assert_close(Objective("binary").train_loss(out, targets), sum(each) / 2)
    torch.testing.assert_close(member_mean(out, 2), torch.tensor([[1.25], [-0.25]]))
    single = out[:2]  # a model without an ensemble: targets and outputs pass through
    assert member_targets(single, y) is y and member_mean(single, 2) is single


def test_orthogonal_init_makes_each_recurrent_gate_orthogonal_and_leaves_the_rest():
    torch.manual_seed(0)
    model = nn.Sequential(RecurrentLayer("LSTM", 3, 6), nn.Linear(6, 2))
    before_ih = model[0].rnn.weight_ih_l0.clone()
    before_linear = model[1].weight.clone()
    initialise(model, "orthogonal")
    for block in model[0].rnn.weight_hh_l0.detach().chunk(4):  # (H, H) per gate
        assert torch.allclose(block @ block.T, torch.eye(6), atol=1e-5)
    assert torch.equal(model[0].rnn.weight_ih_l0, before_ih)
    assert torch.equal(model[1].weight, before_linear)


@pytest.mark.parametrize("scheme", ["xavier", "kaiming"])
def test_xavier_and_kaiming_cover_conv_layers(scheme):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv1d(2, 3, 3))
    initialise(model, scheme)
    assert all(torch.count_nonzero(m.bias) == 0 for m in model)


CNN = [{"type": "Conv2d", "out_channels": 8, "padding": 1}, {"type": "BatchNorm2d"}, {"type": "ReLU"},
       {"type": "MaxPool2d"}, {"type": "Conv2d", "out_channels": 4}, {"type": "AdaptiveAvgPool2d"},
       {"type": "Flatten"}]
LSTM = [{"type": "LSTM", "hidden_size": 8, "num_layers": 2, "bidirectional": True, "dropout": 0.1},
        {"type": "SequencePool", "mode": "last"}]
TRANSFORMER = [{"type": "Embedding", "embedding_dim": 8}, {"type": "PositionalEncoding"},
               {"type": "TransformerEncoderLayer", "nhead": 2, "dim_feedforward": 16},
               {"type": "SequencePool"}]
CONV1D = [{"type": "Conv1d", "out_channels": 6, "kernel_size": 3, "padding": 1}, {"type": "AvgPool1d"},
          {"type": "GRU", "hidden_size": 5}, {"type": "SequencePool"}]

DESIGNS = {
    "cnn": (CNN, (3, 8, 8), "kaiming"),
    "lstm": (LSTM, (6, 3), "orthogonal"),
    "transformer": (TRANSFORMER, (9,), "xavier"),
    "conv1d-gru": (CONV1D, (4, 10), "orthogonal"),
    # A forecast's linear side path: the output layer also reads the last 4 steps of the window.
    "lstm-side-path": ([*LSTM, {"type": "AutoregressiveSkip", "lags": 4}], (6, 3), "orthogonal"),
    # fastText-style text: a bag of n-gram ids -> their mean vector -> a small MLP.
    "bag-of-ngrams": ([{"type": "EmbeddingBag", "embedding_dim": 8}, {"type": "Dropout"},
                       {"type": "Linear", "out_features": 6}, {"type": "ReLU"}], (9,), "xavier"),
    # A regression table's starter: periodic embeddings of every column, then an MLP.
    "periodic-table": ([{"type": "PeriodicEmbedding", "frequencies": 4, "embedding_dim": 3},
                        {"type": "Linear", "out_features": 6}, {"type": "ReLU"}], (5,), "default"),
    # TabM's packed ensemble: the members' rows are stacked in training, averaged in the export.
    "mlp-ensemble": ([{"type": "MLPEnsemble", "members": 3, "width": 6, "depth": 2},
                      {"type": "Linear", "out_features": 5}, {"type": "ReLU"}], (4,), "default"),
}
TEXT_DESIGNS = ("transformer", "bag-of-ngrams")  # their input is token ids
VOCAB = 25


def _inputs(shape, batch: int, tokens: bool) -> torch.Tensor:
    if tokens:
        return torch.randint(0, VOCAB, (batch, *shape)).float()
    return torch.randn(batch, *shape)


@pytest.mark.parametrize("name", list(DESIGNS))
def test_sequence_and_image_designs_build_train_and_export_to_onnx(name):
    layers, shape, init = DESIGNS[name]
    spec = ModelSpec.from_dict({"family": "mlp", "init": init, "layers": layers})
    tokens = name in TEXT_DESIGNS
    with token_input(VOCAB) if tokens else contextlib.nullcontext():
        model = build_model(spec, shape, 3, seed=0)
    x = _inputs(shape, 4, tokens)
    loss = model(x).pow(2).mean()  # one training step runs (train mode: dropout, batch norm)
    loss.backward()
    model.eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (_inputs(shape, 2, tokens),), dynamo=True, external_data=False,
                                    verbose=False, dynamic_shapes=({0: torch.export.Dim("batch")},),
                                    input_names=["x"], output_names=["y"])
    buffer.write(program.model_proto.SerializeToString())
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        x = _inputs(shape, batch, tokens)
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {"x": x.numpy()})[0]
        assert got.shape == (batch, 3)
        np.testing.assert_allclose(got, expected, atol=1e-4)
