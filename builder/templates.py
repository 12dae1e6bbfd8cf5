"""Starter designs, one per model family, sized from the data.

A user who only clicks "Next" gets these, so they must train well without tuning. The shape of one
sample says what the data is, so one signature serves every family:

* ``(F,)``: a table row of F features (or, with ``vocab_size``, a text of F token ids: the MLP
  family reads them as a bag of n-grams, the sequence families in order);
* ``(window, F)``: a window of a time series with F columns;
* ``(C, H, W)``: an image.

Tables: widths follow the number of input features, depth and dropout the number of rows (small
tables overfit a deep network; large ones can feed it). Images: convolution blocks halve the
picture until it is about 4 pixels across, then Flatten and a small dense layer. Sequences: one
recurrent or attention block and a pooling step that turns the sequence into one vector.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from builder.errors import SpecError
from builder.spec import FAMILIES, LayerSpec, ModelSpec

if TYPE_CHECKING:  # only for annotations: templates stay free of the data readers
    from builder.data import DataSpec

PERIODIC_MAX_FEATURES = 200  # regression tables up to this many inputs get numeric embeddings
SMALL_TABLE_ROWS = 1_000  # below this, one hidden layer and more dropout generalise better
MAX_CONV_BLOCKS = 3  # 3 blocks see 8x8 patterns of a 64-pixel image: enough for a starter
RECURRENT = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
# Text: below this many training texts the default is the MLP family over a bag of n-grams
# (fastText-style), which trains in seconds and beat both the Transformer and TF-IDF + logistic
# regression on 4,000 food reviews; above it the Transformer has enough texts to learn word order.
BAG_MAX_TEXTS = 20_000
BAG_NGRAMS = 2  # a bag layer reads words and pairs of neighbouring words


def hidden_width(n_features: int) -> int:
    """A power of two near twice the feature count, kept between 32 and 256."""
    width = 32
    while width < 2 * n_features and width < 256:
        width *= 2
    return width


def starter_spec(family: str, input_shape: int | tuple[int, ...], n_rows: int,
                 *, vocab_size: int | None = None, season: int | None = None,
                 task: str | None = None) -> ModelSpec:
    """Return the starter design for ``family`` on samples of ``input_shape`` and ``n_rows`` rows.

    Args:
        family: a key of ``FAMILIES``.
        input_shape: one preprocessed sample (an int ``F`` means ``(F,)``).
        n_rows: training rows (or images, or windows).
        vocab_size: set for text: the input is token ids and the design starts with Embedding
            (EmbeddingBag for the MLP family, which reads a bag of n-grams).
        season: a series' steps per cycle (12 monthly, 7 daily): sizes the linear side path.
        task: the task; a table's MLP regularises classes more than numbers.

    Raises:
        SpecError: ``family`` is not one of ``FAMILIES``, or cannot read this shape of data.
    """
    if family not in FAMILIES:
        raise SpecError(f"Unknown model family {family!r}. Choose one of: {', '.join(FAMILIES)}.")
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    if family in ("linear", "logistic"):
        return ModelSpec(family=family, layers=[])  # one Linear layer: the output head alone
    if family == "mlp":
        return _bag_of_ngrams() if vocab_size is not None else _mlp(shape[-1], n_rows, task)
    if family == "autoencoder":
        return _autoencoder(shape[-1], n_rows)
    if family == "cnn":
        if len(shape) != 3:
            raise SpecError("A CNN reads images: load an image zip on the Data page, or choose another family.")
        return _cnn(shape)
    if len(shape) not in (1, 2) or (len(shape) == 1 and vocab_size is None):
        raise SpecError(f"{FAMILIES[family].title} reads sequences (text or a time series): load one "
                        "on the Data page, or choose another family.")
    text = vocab_size is not None
    if family in RECURRENT:
        return _recurrent(family, text, None if text else autoregressive_lags(shape[0], season))
    return _transformer(text, n_rows)


def _mlp(n_features: int, n_rows: int, task: str | None = None) -> ModelSpec:
    """Blocks of ``Linear -> ReLU -> Dropout`` sized to the row count: two blocks of 128 units on
    a small table, three of 256 from 1,000 rows, as RealMLP's and TabM's tuned MLPs. The former
    starters (1-4 thousand parameters) lost to the baselines on real tables (bench.quality).

    Dropout follows the task (measured on bench.quality's real tables, seed 0): classes overfit
    within a few epochs, and 0.3 lifted credit scoring from 0.779 to 0.795 accuracy; numbers need
    every unit, and no dropout lifted concrete strength from R2 0.906 to 0.914.

    A regression table of up to ``PERIODIC_MAX_FEATURES`` inputs starts with PeriodicEmbedding
    (Gorishniy et al.'s PLR embeddings). Measured (seed 0, bench.quality's split): concrete R2
    0.892 -> 0.931 (0.918 -> 0.921 at seed 1), hotel rates 0.940 -> 0.952, both past the random
    forest. Left out where it did not pay: classes (titanic 0.794 -> 0.767, credit 0.795 -> 0.781:
    mostly one-hot inputs) and wide tables (Ames, 306 inputs: 0.877 -> 0.866, three times slower)."""
    small = n_rows < SMALL_TABLE_ROWS
    width, depth = (128, 2) if small else (256, 3)
    dropout = 0.0 if task == "regression" else 0.3 if task in ("binary", "multiclass") else 0.1
    layers: list[LayerSpec] = []
    if task == "regression" and n_features <= PERIODIC_MAX_FEATURES:
        layers.append(LayerSpec("PeriodicEmbedding", {"frequencies": 16, "embedding_dim": 16, "sigma": 0.5}))
    for _ in range(depth):
        layers += [LayerSpec("Linear", {"out_features": width, "bias": True}), LayerSpec("ReLU")]
        layers += [LayerSpec("Dropout", {"p": dropout})] if dropout else []
    return ModelSpec(family="mlp", layers=layers).with_defaults()


def _bag_of_ngrams() -> ModelSpec:
    """fastText's classifier for text (Joulin et al. 2016): ``EmbeddingBag`` averages the vectors
    of a text's words and word pairs, and the output layer reads that average. It is linear in the
    n-grams, like TF-IDF + logistic regression, but learns which n-grams mean alike; a hidden layer
    added nothing on 4,000 food reviews (test accuracy 0.818 with one of 64 units, 0.815-0.819
    without, TF-IDF + logistic regression 0.793), so the starter stays the fast one. bench.quality
    fine_foods, default settings: 0.817 median of seeds 0-2 against 0.793."""
    layers = [LayerSpec("EmbeddingBag", {"embedding_dim": 64})]
    return ModelSpec(family="mlp", layers=layers).with_defaults()


def bottleneck_width(n_features: int) -> int:
    """Width of an autoencoder's code layer: a quarter of the features, at least 2."""
    return max(2, n_features // 4)


def _autoencoder(n_features: int, n_rows: int) -> ModelSpec:
    """Encoder ``Linear -> ReLU -> Linear(bottleneck)``, decoder ``Linear -> ReLU``; the head
    (``Linear`` back to every feature) rebuilds the row. The bottleneck has no ReLU: with only a
    few code units, a ReLU that outputs zero for half the rows would waste them. No dropout: noise
    in the reconstruction would blur the gap between normal and unusual rows."""
    code = bottleneck_width(n_features)
    width = hidden_width(n_features) // (2 if n_rows < SMALL_TABLE_ROWS else 1)
    width = max(width, 2 * code)  # the hidden layer is always wider than the code
    layers = [
        LayerSpec("Linear", {"out_features": width, "bias": True}), LayerSpec("ReLU"),  # encoder
        LayerSpec("Linear", {"out_features": code, "bias": True}),  # bottleneck (B, code)
        LayerSpec("Linear", {"out_features": width, "bias": True}), LayerSpec("ReLU"),  # decoder
    ]
    return ModelSpec(family="autoencoder", layers=layers).with_defaults()


def _cnn(shape: tuple[int, ...]) -> ModelSpec:
    _, height, width = shape
    layers: list[LayerSpec] = []
    channels, side = 16, min(height, width)
    # 3x3 filters with padding 1 keep the size; each 2x2 pooling halves it. Stop near 4 pixels.
    # Batch norm after each convolution steadies and speeds up training from a few thousand
    # pictures.
    while len(layers) < 4 * MAX_CONV_BLOCKS and side >= 8:
        layers += [LayerSpec("Conv2d", {"out_channels": channels, "kernel_size": 3, "padding": 1}),
                   LayerSpec("BatchNorm2d"), LayerSpec("ReLU"), LayerSpec("MaxPool2d", {"kernel_size": 2})]
        channels, side = channels * 2, side // 2
    if not layers:  # a tiny image: one block without pooling
        layers = [LayerSpec("Conv2d", {"out_channels": 16, "kernel_size": 3, "padding": 1}), LayerSpec("ReLU")]
    layers += [LayerSpec("Flatten"), LayerSpec("Linear", {"out_features": 64}), LayerSpec("ReLU"),
               LayerSpec("Dropout", {"p": 0.25})]
    return ModelSpec(family="cnn", layers=layers).with_defaults()


def autoregressive_lags(window: int, season: int | None) -> int:
    """Past steps the linear side path of a forecast reads: two seasons, at most the window.

    Two cycles let the linear part compare this season's values with the last one's (the forecast
    is trained as the change from one season ago). Measured with the warm start (seed 0, test
    MAE vs the lagged ridge over the 28-step window): air_passengers 10.71 vs 11.03 with 24 lags,
    11.12 with all 28; seattle_temperature 2.267 vs 2.267 with 14 lags; co2_weekly (52-week
    season, so the whole window) 0.344 vs 0.343. No season: the whole window.
    """
    return min(window, 2 * season) if season else window


def _recurrent(family: str, text: bool, lags: int | None = None) -> ModelSpec:
    layers = [LayerSpec("Embedding", {"embedding_dim": 64})] if text else []
    layers += [LayerSpec(RECURRENT[family], {"hidden_size": 64}),
               LayerSpec("SequencePool", {"mode": "mean" if text else "last"})]
    if lags:
        # A forecast: the output layer also reads the last `lags` values, so the network's output
        # is a linear autoregressive forecast plus what the recurrent layer adds to it (issue 8:
        # the recurrent layer alone lost to a lagged ridge on every real series).
        layers.append(LayerSpec("AutoregressiveSkip", {"lags": lags}))
    return ModelSpec(family=family, layers=layers, init="orthogonal").with_defaults()


def _transformer(text: bool, n_rows: int) -> ModelSpec:
    # Text: embed the tokens; a series: project each step's columns to the model width first.
    first = (LayerSpec("Embedding", {"embedding_dim": 64}) if text
             else LayerSpec("Linear", {"out_features": 32}))
    # Attention memorises a few hundred texts quickly: more dropout on small data (measured on 800
    # generated texts: test accuracy 0.958 with 0.1, 0.983 with 0.3).
    dropout = 0.3 if text and n_rows < 2 * SMALL_TABLE_ROWS else 0.1
    layers = [first, LayerSpec("PositionalEncoding"),
              LayerSpec("TransformerEncoderLayer", {"nhead": 4, "dim_feedforward": 128, "dropout": dropout}),
              LayerSpec("SequencePool", {"mode": "mean" if text else "last"})]
    return ModelSpec(family="transformer", layers=layers).with_defaults()


# What ``--model auto`` and the Build page pick first for each kind of data and task.
_DEFAULT_FAMILY = {("images", None): "cnn", ("text", None): "transformer", ("series", None): "lstm",
                   ("table", "anomaly"): "autoencoder"}


def default_family(task: str, kind: str = "table", n_rows: int | None = None) -> str:
    """The family ``--model auto`` picks: MLP for tables, CNN for images, for text an MLP over a
    bag of n-grams below ``BAG_MAX_TEXTS`` training texts (or when their number is not known) and a
    Transformer above, LSTM for a forecast, an autoencoder for anomaly detection."""
    if kind == "text" and (n_rows is None or n_rows < BAG_MAX_TEXTS):
        return "mlp"
    return _DEFAULT_FAMILY.get((kind, task)) or _DEFAULT_FAMILY.get((kind, None)) or "mlp"


def reads_bag(design: ModelSpec | str) -> bool:
    """Whether a text design reads a bag of n-grams rather than words in order.

    Args:
        design: a design (its first layer is EmbeddingBag) or a family whose starter is one (MLP).
    """
    if isinstance(design, str):
        return design == "mlp"
    return bool(design.layers) and design.layers[0].type == "EmbeddingBag"


def text_reading(data_spec: DataSpec, design: ModelSpec | str) -> DataSpec:
    """The text data spec as ``design`` reads it: a bag of word n-grams (``ngrams=2``) for a bag
    layer, words in order (``ngrams=1``) for a sequence model; other kinds of data unchanged.

    The data's preparation (``prepare_data``) follows the option, so the vocabulary and the
    sequence length the design is built for are those it will read.
    """
    if data_spec.kind != "text":
        return data_spec
    ngrams = BAG_NGRAMS if reads_bag(design) else 1
    return replace(data_spec, options={**data_spec.options, "ngrams": ngrams})
