"""The layer registry: every layer type the editor offers, registered once.

A ``LayerType`` knows its own parameters (``ParamSpec``), the shape it produces from the shape it
receives, and how to build its torch module. Sizes that follow from the previous layer
(``in_features``, ``num_features``, ``normalized_shape``) are never stored in a design: ``build``
gets the incoming shape and fills them, as Keras layers learn their input size in ``build``.

Shapes are per sample, without the batch dimension: ``(features,)`` for a table row,
``(channels, height, width)`` for an image, ``(time steps, features)`` for a sequence (batch first)
and ``(time steps,)`` of token ids for text. Conv1d and the 1-d pools read a 2-d input as
``(channels, length)``, torch's own convention: a sequence ``(T, F)`` reaches them as T channels of
length F, so a model that convolves over time needs its data laid out features-first.
The palette is ``LAYERS.names()``; the key of each type is the ``torch.nn`` class name.

Text is right-padded with token id 0. Two flags in ``LayerType.extra`` say how a layer treats that
padding (``padding_mask_layers`` reads them): ``KEEPS_STEPS`` (its output has the input's time
steps in the same order, so the padding mask still lines up with them) and ``TAKES_MASK`` (its
forward takes the mask as well). A third, ``TAKES_INPUT``, marks a side path whose forward also takes
the model's input (``AutoregressiveSkip``, the linear autoregressive path of a forecast; see
``builder.modules.InputSequential``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from builder import modules
from builder.errors import SpecError
from builder.params import Boolean, Choice, FloatRange, IntRange, ParamSpec

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Fix:
    """A mechanical repair the editor offers as one click.

    Attributes:
        label: button text, e.g. "Insert Flatten before layer 4".
        action: "insert" (``layer`` at ``index``), "set" (``param`` = ``value`` on layer ``index``),
            "unset" (drop ``param`` from layer ``index``) or "remove" (layer ``index``).
        index: 0-based position in the design's layer list.
    """

    label: str
    action: str
    index: int
    layer: dict[str, Any] | None = None
    param: str | None = None
    value: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class LayerProblem(Exception):
    """Raised by ``output_shape`` when a layer cannot take the incoming shape.

    The message says what is wrong without the layer's position; ``infer_shapes`` adds
    "Layer N (Type)" and fills the fix's index.
    """

    def __init__(self, message: str, fix: Fix | None = None):
        super().__init__(message)
        self.fix = fix


def describe_shape(shape: Shape) -> str:
    """Write a per-sample shape the way the editor shows it: ``64`` or ``16x8x8``."""
    return "x".join(str(d) for d in shape)


@dataclass(frozen=True)
class LayerType:
    """One entry of the palette."""

    name: str
    category: str
    summary: str
    params: tuple[ParamSpec, ...] = ()
    output_shape: Callable[[Shape, dict[str, Any]], Shape] = lambda shape, _: shape
    build: Callable[[Shape, dict[str, Any]], nn.Module] | None = None
    main_param: str | None = None  # the parameter shown in the editor's compact "setting" column
    extra: dict[str, Any] = field(default_factory=dict)

    def param(self, name: str) -> ParamSpec:
        """Return the declaration of parameter ``name``."""
        for spec in self.params:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def defaults(self) -> dict[str, Any]:
        """Return every parameter at its default value."""
        return {p.name: p.default for p in self.params}

    def make(self, in_shape: Shape, params: dict[str, Any]) -> nn.Module:
        """Build the torch module for an input of ``in_shape`` with complete, valid ``params``."""
        if self.build is not None:
            return self.build(in_shape, params)
        return getattr(nn, self.name)(**params)


class LayerRegistry:
    """Name -> ``LayerType``, in registration order (which is the palette order)."""

    def __init__(self) -> None:
        self._types: dict[str, LayerType] = {}

    def register(self, layer_type: LayerType) -> LayerType:
        if layer_type.name in self._types:
            raise ValueError(f"layer type {layer_type.name!r} is registered twice")
        self._types[layer_type.name] = layer_type
        return layer_type

    def get(self, name: str) -> LayerType:
        """Return the type called ``name`` or raise a ``SpecError`` listing the valid ones."""
        try:
            return self._types[name]
        except KeyError:
            raise SpecError(
                f"Unknown layer type {name!r}. Choose one of: {', '.join(self.names())}."
            ) from None

    def names(self) -> list[str]:
        return list(self._types)

    def by_category(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for t in self._types.values():
            out.setdefault(t.category, []).append(t.name)
        return out

    def __contains__(self, name: object) -> bool:
        return name in self._types


LAYERS = LayerRegistry()

# Keys of ``LayerType.extra`` for padding masks (see the module docstring).
KEEPS_STEPS = "keeps_steps"
TAKES_MASK = "takes_padding_mask"
# A layer whose forward also takes the model's input (a side path such as AutoregressiveSkip).
TAKES_INPUT = "takes_model_input"


def _stepwise() -> dict[str, Any]:
    """``extra`` of a layer that keeps the time steps (a fresh dict: no two types share one)."""
    return {KEEPS_STEPS: True}


# --- shape rules shared by several layers -------------------------------------------------------

def _needs_flat(name: str, allow_sequence: bool) -> Callable[[Shape], None]:
    """Return a check that the input is a feature vector (or, if allowed, a sequence of them)."""

    def check(shape: Shape) -> None:
        ok = len(shape) == 1 or (allow_sequence and len(shape) == 2)
        if not ok:
            raise LayerProblem(
                f"{name} needs a flat input (a list of numbers per row) but gets "
                f"{describe_shape(shape)}: add Flatten before it.",
                Fix(label="Insert Flatten before it", action="insert", index=-1, layer={"type": "Flatten"}),
            )

    return check


def _linear_shape(shape: Shape, params: dict[str, Any]) -> Shape:
    _needs_flat("Linear", allow_sequence=True)(shape)
    return (*shape[:-1], params["out_features"])


def _batchnorm1d_shape(shape: Shape, params: dict[str, Any]) -> Shape:
    if len(shape) not in (1, 2):
        raise LayerProblem(
            f"BatchNorm1d needs features or channels x length but gets {describe_shape(shape)}: "
            "add Flatten before it.",
            Fix(label="Insert Flatten before it", action="insert", index=-1, layer={"type": "Flatten"}),
        )
    return shape


# --- the palette ----------------------------------------------------------------------------------

LAYERS.register(LayerType(
    name="Linear",
    category="Core",
    summary="Fully connected layer: every output is a weighted sum of all inputs.",
    params=(
        ParamSpec("out_features", IntRange(1, 1_000_000), 64, "Units",
                  "How many numbers this layer outputs. More units learn more patterns but can overfit."),
        ParamSpec("bias", Boolean(), True, "Bias", "Add a learned offset to each unit."),
    ),
    output_shape=_linear_shape,
    build=lambda shape, p: nn.Linear(shape[-1], p["out_features"], bias=p["bias"]),
    main_param="out_features",
    extra=_stepwise(),
))

for _name, _summary in [
    ("ReLU", "Keeps positive values, zeroes negatives. The usual first choice."),
    ("GELU", "A smooth ReLU, common in Transformers."),
    ("SiLU", "Smooth ReLU-like activation (also called Swish)."),
    ("Tanh", "Squashes values into -1..1."),
    ("Sigmoid", "Squashes values into 0..1."),
]:
    LAYERS.register(LayerType(name=_name, category="Activation", summary=_summary, extra=_stepwise()))

LAYERS.register(LayerType(
    name="LeakyReLU",
    category="Activation",
    summary="Like ReLU but lets a small slope through for negatives, so units never go silent.",
    params=(ParamSpec("negative_slope", FloatRange(0, 1), 0.01, "Negative slope",
                      "How much of a negative value passes through."),),
    main_param="negative_slope",
    extra=_stepwise(),
))

LAYERS.register(LayerType(
    name="Dropout",
    category="Regularisation",
    summary="Randomly switches off a share of values while training, to reduce overfitting.",
    params=(ParamSpec("p", FloatRange(0, 1, high_inclusive=False), 0.2, "Drop share",
                      "Share of values switched off during training (0.1-0.5 is typical)."),),
    main_param="p",
    extra=_stepwise(),
))

LAYERS.register(LayerType(
    name="BatchNorm1d",
    category="Normalisation",
    summary="Rescales each feature over the batch; often speeds up training.",
    output_shape=_batchnorm1d_shape,
    build=lambda shape, p: nn.BatchNorm1d(shape[0]),
    extra=_stepwise(),  # a sequence (T, F) is T channels: each step is scaled with its own statistics
))

LAYERS.register(LayerType(
    name="LayerNorm",
    category="Normalisation",
    summary="Rescales the features of each row on their own; works with any batch size.",
    build=lambda shape, p: nn.LayerNorm(shape[-1]),
    extra=_stepwise(),
))

LAYERS.register(LayerType(
    name="Flatten",
    category="Shape",
    summary="Turns a grid or a sequence into one flat list of numbers per row.",
    output_shape=lambda shape, p: (math.prod(shape),),
))


# --- text input: the seam for Embedding -----------------------------------------------------------

# A design cannot tell token ids from numbers by shape alone ((T,) looks like (F,)), and the size of
# the vocabulary comes from the data, not the design. The text data path states both by running
# shape inference, building and code generation inside ``token_input(vocab_size)`` (see
# ``builder.data.sources.DataShape.scope``); outside it, Embedding refuses with "needs text data".
_VOCABULARY: ContextVar[int | None] = ContextVar("token_vocabulary", default=None)
PAD_ID = 0  # the token id of padding (builder.data.text pads with it at the end of each text)
# The layers that read token ids: a text model starts with one of them (a sequence of vectors, or
# one vector per text).
TOKEN_READERS = ("Embedding", "EmbeddingBag")


@contextmanager
def token_input(vocab_size: int) -> Iterator[None]:
    """Declare that the model's input is token ids in ``0..vocab_size-1`` (Embedding's num_embeddings)."""
    token = _VOCABULARY.set(int(vocab_size))
    try:
        yield
    finally:
        _VOCABULARY.reset(token)


def reading_tokens() -> bool:
    """Whether the code runs inside ``token_input``: the model's input is token ids."""
    return _VOCABULARY.get() is not None


def _remove_fix() -> Fix:
    return Fix(label="Remove this layer", action="remove", index=-1)


def _needs_sequence(name: str, shape: Shape) -> None:
    """Refuse anything but a sequence ``(T, F)``: recurrent, attention and pooling over time."""
    if len(shape) == 2:
        return
    got = f"a flat input of {shape[0]} numbers per row" if len(shape) == 1 else f"a grid {describe_shape(shape)}"
    raise LayerProblem(
        f"{name} needs a sequence (time steps x features) but gets {got}. It reads data one time "
        "step after another: use it on sequence or text data (after Embedding), or remove it.",
        _remove_fix(),
    )


# --- convolution and pooling ----------------------------------------------------------------------

def _grid_rank_problem(name: str, shape: Shape, dims: int) -> LayerProblem:
    wanted = "channels x length" if dims == 1 else "channels x height x width (an image)"
    rule = (" A sequence of T steps x F features is read as T channels of length F."
            if dims == 1 else "")
    other = ""
    if dims == 1 and len(shape) == 3:
        other = name.replace("1d", "2d")
    elif dims == 2 and len(shape) == 2:
        other = name.replace("2d", "1d")
    hint = f" Use {other} for this input." if other else ""
    return LayerProblem(
        f"{name} needs {wanted} but gets {describe_shape(shape)}.{rule}{hint}",
        _remove_fix() if len(shape) == 1 else None,
    )


def _window_shape(name: str, dims: int, shape: Shape, kernel: int, stride: int, padding: int) -> Shape:
    """Output of a sliding window (conv or pool) of ``kernel`` over the last ``dims`` sizes."""
    if len(shape) != dims + 1:
        raise _grid_rank_problem(name, shape, dims)
    spatial = shape[1:]
    smallest = min(spatial)
    if smallest + 2 * padding < kernel:
        needed = math.ceil((kernel - smallest) / 2)
        size = describe_shape(spatial)
        # needed <= kernel_size // 2 (the input is at least 1 wide), which pooling allows and the
        # padding limit (half the largest kernel) always covers.
        fix = Fix(label=f"Set padding to {needed}", action="set", index=-1, param="padding", value=needed)
        raise LayerProblem(
            f"gets input {describe_shape(shape)} but kernel_size={kernel} does not fit in {size} "
            f"with padding={padding}, so it leaves no output: lower kernel_size to {smallest} or "
            f"add padding={needed}.",
            fix,
        )
    return (*shape[:1], *((d + 2 * padding - kernel) // stride + 1 for d in spatial))


def _conv_shape(dims: int) -> Callable[[Shape, dict[str, Any]], Shape]:
    name = f"Conv{dims}d"

    def shape_of(shape: Shape, p: dict[str, Any]) -> Shape:
        out = _window_shape(name, dims, shape, p["kernel_size"], p["stride"], p["padding"])
        return (p["out_channels"], *out[1:])

    return shape_of


def _pool_shape(name: str, dims: int) -> Callable[[Shape, dict[str, Any]], Shape]:
    def shape_of(shape: Shape, p: dict[str, Any]) -> Shape:
        kernel, padding = p["kernel_size"], p["padding"]
        if padding > kernel // 2:
            raise LayerProblem(
                f"padding={padding} is more than half of kernel_size={kernel}, which pooling does not "
                f"allow: set padding to {kernel // 2} or less.",
                Fix(label=f"Set padding to {kernel // 2}", action="set", index=-1, param="padding",
                    value=kernel // 2),
            )
        return _window_shape(name, dims, shape, kernel, kernel, padding)  # stride = kernel_size

    return shape_of


def _adaptive_shape(name: str, dims: int) -> Callable[[Shape, dict[str, Any]], Shape]:
    def shape_of(shape: Shape, p: dict[str, Any]) -> Shape:
        if len(shape) != dims + 1:
            raise _grid_rank_problem(name, shape, dims)
        return (shape[0], *(p["output_size"],) * dims)

    return shape_of


def _conv_params(kernel_default: int) -> tuple[ParamSpec, ...]:
    return (
        ParamSpec("out_channels", IntRange(1, 4096), 16, "Filters",
                  "How many patterns (channels) this layer learns to detect."),
        ParamSpec("kernel_size", IntRange(1, 64), kernel_default, "Kernel size",
                  "Width of the window each filter looks at."),
        ParamSpec("stride", IntRange(1, 64), 1, "Stride", "Step between windows; 2 halves the size."),
        ParamSpec("padding", IntRange(0, 32), 0, "Padding",
                  "Zeros added at each edge; kernel_size // 2 keeps the size (with stride 1)."),
    )


for _dims in (1, 2):
    _conv_class = getattr(nn, f"Conv{_dims}d")
    LAYERS.register(LayerType(
        name=f"Conv{_dims}d",
        category="Convolution",
        summary=("Slides learned filters along a channels x length input (a sequence must be laid "
                 "out features-first)." if _dims == 1 else
                 "Slides learned filters over an image (channels x height x width)."),
        params=_conv_params(3),
        output_shape=_conv_shape(_dims),
        build=lambda shape, p, cls=_conv_class: cls(shape[0], p["out_channels"], p["kernel_size"],
                                                    stride=p["stride"], padding=p["padding"]),
        main_param="out_channels",
    ))

for _dims in (1, 2):
    for _kind, _what in (("Max", "the largest value"), ("Avg", "the average")):
        _name = f"{_kind}Pool{_dims}d"
        _pool_class = getattr(nn, _name)
        LAYERS.register(LayerType(
            name=_name,
            category="Pooling",
            summary=f"Shrinks the {'length' if _dims == 1 else 'image'} by keeping {_what} of each window.",
            params=(
                ParamSpec("kernel_size", IntRange(1, 64), 2, "Window",
                          "Size of each window (and the step between windows)."),
                ParamSpec("padding", IntRange(0, 32), 0, "Padding",
                          "Padding at each edge; at most half of the window."),
            ),
            output_shape=_pool_shape(_name, _dims),
            build=lambda shape, p, cls=_pool_class: cls(p["kernel_size"], padding=p["padding"]),
            main_param="kernel_size",
            # On a sequence (T, F) a 1-d pool shrinks each step's features; the steps stay.
            extra=_stepwise() if _dims == 1 else {},
        ))

for _dims in (1, 2):
    _name = f"AdaptiveAvgPool{_dims}d"
    _adaptive_class = getattr(nn, _name)
    LAYERS.register(LayerType(
        name=_name,
        category="Pooling",
        summary=("Averages each channel down to a fixed size, whatever the input size; 1 gives one "
                 "number per channel."),
        params=(ParamSpec("output_size", IntRange(1, 256), 1, "Output size",
                          "Size of each channel after pooling (per side for images)."),),
        output_shape=_adaptive_shape(_name, _dims),
        build=lambda shape, p, cls=_adaptive_class: cls(p["output_size"]),
        main_param="output_size",
        extra=_stepwise() if _dims == 1 else {},
    ))


def _batchnorm2d_shape(shape: Shape, params: dict[str, Any]) -> Shape:
    if len(shape) != 3:
        raise LayerProblem(
            f"BatchNorm2d needs channels x height x width (an image) but gets {describe_shape(shape)}: "
            "use BatchNorm1d for features or sequences.",
        )
    return shape


LAYERS.register(LayerType(
    name="BatchNorm2d",
    category="Normalisation",
    summary="Rescales each image channel over the batch; usual after Conv2d.",
    output_shape=_batchnorm2d_shape,
    build=lambda shape, p: nn.BatchNorm2d(shape[0]),
))


# --- text and sequences ---------------------------------------------------------------------------

def _embedding_shape(shape: Shape, params: dict[str, Any]) -> Shape:
    if _VOCABULARY.get() is None:
        raise LayerProblem(
            f"Embedding needs text data (token ids), but this data gives numbers ({describe_shape(shape)} "
            "per row): remove it, or load a text column.",
            _remove_fix(),
        )
    if len(shape) != 1:
        raise LayerProblem(
            f"Embedding must be the first layer: it reads token ids (one whole number per step) but "
            f"gets {describe_shape(shape)}. Move it to the top or remove it.",
            _remove_fix(),
        )
    return (shape[0], params["embedding_dim"])


def _build_embedding(shape: Shape, params: dict[str, Any]) -> nn.Module:
    vocabulary = _VOCABULARY.get()
    if vocabulary is None:
        raise SpecError("Embedding needs text data (token ids); build it inside token_input(vocab_size).")
    # Id 0 is padding: its vector stays zero and gets no gradient, so padding carries no signal.
    return modules.TokenEmbedding(vocabulary, params["embedding_dim"], padding_idx=PAD_ID)


LAYERS.register(LayerType(
    name="Embedding",
    category="Text",
    summary="Turns each token id into a learned vector; the first layer of a text model.",
    params=(ParamSpec("embedding_dim", IntRange(1, 4096), 64, "Vector size",
                      "Numbers learned per token. 32-256 is typical."),),
    output_shape=_embedding_shape,
    build=_build_embedding,
    main_param="embedding_dim",
    extra=_stepwise(),
))


def _needs_numbers_per_row(name: str, shape: Shape, what: str, where: str) -> None:
    """Refuse anything but one list of numbers per row (a table row; not token ids)."""
    if len(shape) != 1 or _VOCABULARY.get() is not None:
        raise LayerProblem(
            f"{name} reads {what} but gets {describe_shape(shape)}"
            f"{' of token ids' if _VOCABULARY.get() is not None else ''}: use it {where}, or remove it.",
            _remove_fix(),
        )


def _periodic_shape(shape: Shape, params: dict[str, Any]) -> Shape:
    _needs_numbers_per_row("PeriodicEmbedding", shape, "a table row (one number per column)",
                           "as the first layer on a table")
    return (shape[0] * params["embedding_dim"],)


LAYERS.register(LayerType(
    name="PeriodicEmbedding",
    category="Table",
    summary=("Gives every column its own small learned curve (sines and cosines of learned "
             "frequencies): an MLP then picks up thresholds and bends in one column easily."),
    params=(
        ParamSpec("frequencies", IntRange(1, 256), 16, "Frequencies",
                  "Sines and cosines per column. 8-32 is typical."),
        ParamSpec("embedding_dim", IntRange(1, 256), 16, "Features per column",
                  "Numbers each column becomes; the next layer reads columns x this many."),
        ParamSpec("sigma", FloatRange(0, 100, low_inclusive=False), 0.5, "Frequency scale",
                  "How fast the starting curves wiggle: smaller is smoother. 0.1-1 suits the app's scaled "
                  "numbers."),
    ),
    output_shape=_periodic_shape,
    build=lambda shape, p: modules.PeriodicEmbedding(shape[0], p["frequencies"], p["embedding_dim"], p["sigma"]),
    main_param="embedding_dim",
))


def _ensemble_shape(shape: Shape, params: dict[str, Any]) -> Shape:
    _needs_numbers_per_row("MLPEnsemble", shape, "one list of numbers per row (a table)",
                           "on a table, or after Flatten")
    return (params["width"],)


# TabM's packed ensemble: the members train as separate models (see modules.MLPEnsemble) and the
# output layer reads their average. Measured with `builder train --spec` on bench.quality's
# hpc_jobs split (seeds 0-2, default settings): 8 members of 3 x 256 units, dropout 0.3, gave test
# accuracy 0.812/0.825/0.830 (median 0.825) against 0.821/0.819/0.828 (0.821) for the default MLP
# of one such member, at about 8 times the training time; 8 members of 2 x 128 gave 0.815. Within
# the seeds' spread, so a block to try, not a default.
LAYERS.register(LayerType(
    name="MLPEnsemble",
    category="Table",
    summary=("Several small MLPs side by side that learn separately and vote (their outputs are "
             "averaged): often steadier than one MLP on a table. Put the output layer right after it."),
    params=(
        ParamSpec("members", IntRange(2, 64), 8, "Members", "How many MLPs vote. 4-32 is typical."),
        ParamSpec("width", IntRange(1, 4096), 128, "Units", "Neurons per layer of each member."),
        ParamSpec("depth", IntRange(1, 8), 2, "Layers", "Linear -> ReLU blocks in each member."),
        ParamSpec("dropout", FloatRange(0, 1, high_inclusive=False), 0.1, "Dropout",
                  "Share of each member's units silenced while training. 0-0.3 is typical."),
    ),
    output_shape=_ensemble_shape,
    build=lambda shape, p: modules.MLPEnsemble(shape[0], p["members"], p["width"], p["depth"], p["dropout"]),
    main_param="width",
))


def _embedding_bag_shape(shape: Shape, params: dict[str, Any]) -> Shape:
    if _VOCABULARY.get() is None:
        raise LayerProblem(
            f"EmbeddingBag needs text data (token ids), but this data gives numbers "
            f"({describe_shape(shape)} per row): remove it, or load a text column.",
            _remove_fix(),
        )
    if len(shape) != 1:
        raise LayerProblem(
            f"EmbeddingBag must be the first layer: it reads token ids (one whole number per step) "
            f"but gets {describe_shape(shape)}. Move it to the top or remove it.",
            _remove_fix(),
        )
    return (params["embedding_dim"],)  # the time steps are merged: one vector per text


def _build_embedding_bag(shape: Shape, params: dict[str, Any]) -> nn.Module:
    vocabulary = _VOCABULARY.get()
    if vocabulary is None:
        raise SpecError("EmbeddingBag needs text data (token ids); build it inside token_input(vocab_size).")
    # Padding (id 0) is left out of the mean, so a text's vector does not depend on its length.
    return modules.TokenEmbeddingBag(vocabulary, params["embedding_dim"], mode=params["mode"], padding_idx=PAD_ID)


# fastText's input layer: the average of the vectors of a text's words and word pairs. With the
# data's bag of n-grams (builder.data.text, ngrams=2) and a Linear head it is a linear model over
# n-gram vectors that trains in seconds; the MLP family uses it as the first layer for text.
LAYERS.register(LayerType(
    name="EmbeddingBag",
    category="Text",
    summary=("Turns a text into one vector, the average of the vectors of its words and word pairs "
             "(fastText); the first layer of a fast text model (MLP)."),
    params=(
        ParamSpec("embedding_dim", IntRange(1, 4096), 64, "Vector size",
                  "Numbers learned per word or word pair. 32-128 is typical."),
        ParamSpec("mode", Choice(("mean", "sum")), "mean", "Mode",
                  "'mean' averages the vectors (texts of any length look alike), 'sum' adds them."),
    ),
    output_shape=_embedding_bag_shape,
    build=_build_embedding_bag,
    main_param="embedding_dim",
))


def _recurrent_shape(name: str) -> Callable[[Shape, dict[str, Any]], Shape]:
    def shape_of(shape: Shape, p: dict[str, Any]) -> Shape:
        _needs_sequence(name, shape)
        if p["dropout"] > 0 and p["num_layers"] == 1:
            raise LayerProblem(
                f"dropout={p['dropout']:g} only acts between stacked layers, and num_layers=1: set "
                "num_layers to 2 or more, or dropout to 0.",
                Fix(label="Set dropout to 0", action="set", index=-1, param="dropout", value=0.0),
            )
        return (shape[0], p["hidden_size"] * (2 if p["bidirectional"] else 1))

    return shape_of


for _name, _summary in (
    ("RNN", "The simplest recurrent layer: reads a sequence step by step, keeping a memory."),
    ("LSTM", "Recurrent layer with gated memory; remembers over long sequences."),
    ("GRU", "Recurrent layer like LSTM with fewer gates; often as good and faster."),
):
    LAYERS.register(LayerType(
        name=_name,
        category="Recurrent",
        summary=_summary + " Outputs every step (follow it with SequencePool for one vector).",
        params=(
            ParamSpec("hidden_size", IntRange(1, 4096), 64, "Units", "Memory size per time step."),
            ParamSpec("num_layers", IntRange(1, 8), 1, "Stacked layers", "Recurrent layers on top of each other."),
            ParamSpec("bidirectional", Boolean(), False, "Both directions",
                      "Also read the sequence backwards; doubles the output size."),
            ParamSpec("dropout", FloatRange(0, 1, high_inclusive=False), 0.0, "Dropout",
                      "Drop share between stacked layers (needs 2 or more)."),
        ),
        output_shape=_recurrent_shape(_name),
        build=lambda shape, p, kind=_name: modules.RecurrentLayer(
            kind, shape[-1], p["hidden_size"], num_layers=p["num_layers"],
            bidirectional=p["bidirectional"], dropout=p["dropout"]),
        main_param="hidden_size",
        # It reads the padding too, but a one-way layer reads it after the text, so the outputs at
        # real steps do not depend on it; pooling with the mask then ignores the padded steps. (A
        # two-way layer's backward pass reads the padding first: its outputs still depend on it.)
        extra=_stepwise(),
    ))


def _transformer_shape(shape: Shape, p: dict[str, Any]) -> Shape:
    _needs_sequence("TransformerEncoderLayer", shape)
    d_model, nhead = shape[-1], p["nhead"]
    if d_model % nhead:
        divisor = max(d for d in range(1, nhead + 1) if d_model % d == 0)
        raise LayerProblem(
            f"its {d_model} features (d_model) are split across nhead={nhead} attention heads, so "
            f"d_model must be divisible by nhead: set nhead to {divisor}.",
            Fix(label=f"Set nhead to {divisor}", action="set", index=-1, param="nhead", value=divisor),
        )
    return shape


LAYERS.register(LayerType(
    name="TransformerEncoderLayer",
    category="Attention",
    summary="Self-attention and a feed-forward block: each step looks at every other step.",
    params=(
        ParamSpec("nhead", IntRange(1, 64), 2, "Heads", "Attention heads; must divide the feature count."),
        ParamSpec("dim_feedforward", IntRange(1, 16384), 128, "Feed-forward units",
                  "Width of the feed-forward block."),
        ParamSpec("dropout", FloatRange(0, 1, high_inclusive=False), 0.1, "Dropout",
                  "Drop share inside the block while training."),
        ParamSpec("activation", Choice(("relu", "gelu")), "relu", "Activation",
                  "Activation of the feed-forward block."),
        ParamSpec("norm_first", Boolean(), False, "Normalise first",
                  "LayerNorm before attention (often trains more stably)."),
    ),
    output_shape=_transformer_shape,
    build=lambda shape, p: nn.TransformerEncoderLayer(
        shape[-1], p["nhead"], dim_feedforward=p["dim_feedforward"], dropout=p["dropout"],
        activation=p["activation"], batch_first=True, norm_first=p["norm_first"]),
    main_param="nhead",
    extra={KEEPS_STEPS: True, TAKES_MASK: True},  # no step attends to padding
))


def _positional_shape(shape: Shape, params: dict[str, Any]) -> Shape:
    _needs_sequence("PositionalEncoding", shape)
    return shape


LAYERS.register(LayerType(
    name="PositionalEncoding",
    category="Attention",
    summary="Adds a fixed signal for each position, so a Transformer knows the order of the steps.",
    output_shape=_positional_shape,
    build=lambda shape, p: modules.PositionalEncoding(shape[-1], shape[0]),
    extra=_stepwise(),
))


def _sequence_pool_shape(shape: Shape, params: dict[str, Any]) -> Shape:
    _needs_sequence("SequencePool", shape)
    return (shape[-1],)


LAYERS.register(LayerType(
    name="SequencePool",
    category="Recurrent",
    summary="Turns a sequence into one vector: its last step or the mean of all steps.",
    params=(ParamSpec("mode", Choice(("last", "mean")), "mean", "Mode",
                      "'last' keeps the final step (recurrent layers), 'mean' averages every step."),),
    output_shape=_sequence_pool_shape,
    build=lambda shape, p: modules.SequencePool(p["mode"]),
    main_param="mode",
    extra={TAKES_MASK: True},  # pools the real steps only; the time axis ends here
))


# --- time series: the linear side path -------------------------------------------------------------

# A side path's output size depends on the model's input (lags x columns), not only on the layer
# just before it: ``infer_shapes`` states the model's input shape here while it walks a design.
_MODEL_INPUT: ContextVar[Shape | None] = ContextVar("model_input", default=None)


@contextmanager
def model_input(shape: Shape) -> Iterator[None]:
    """Declare the per-sample shape of the model's input while shapes are worked out."""
    token = _MODEL_INPUT.set(tuple(shape))
    try:
        yield
    finally:
        _MODEL_INPUT.reset(token)


def _skip_shape(shape: Shape, p: dict[str, Any]) -> Shape:
    series = _MODEL_INPUT.get()
    if series is None or len(series) != 2 or reading_tokens():
        raise LayerProblem(
            "AutoregressiveSkip passes the recent values of a time series to the output layer, but "
            "this model does not read a time series: use it on a forecast, or remove it.",
            _remove_fix(),
        )
    if len(shape) != 1:
        raise LayerProblem(
            f"AutoregressiveSkip adds the recent values to one list of numbers per sample but gets "
            f"{describe_shape(shape)}: put it after SequencePool.",
            Fix(label="Insert SequencePool before it", action="insert", index=-1,
                layer={"type": "SequencePool", "mode": "last"}),
        )
    window, columns = series
    if p["lags"] > window:
        raise LayerProblem(
            f"lags={p['lags']} reaches back further than the {window} steps each window holds: set "
            f"lags to {window} or less.",
            Fix(label=f"Set lags to {window}", action="set", index=-1, param="lags", value=window),
        )
    return (shape[0] + p["lags"] * columns,)


LAYERS.register(LayerType(
    name="AutoregressiveSkip",
    category="Recurrent",
    summary=("Linear side path of a forecast: hands the last few values of the series straight to "
             "the output layer, which adds a linear forecast from them to what the layers above "
             "learned. Keep it last; remove it for a purely recurrent model."),
    params=(ParamSpec("lags", IntRange(1, 10_000), 12, "Past steps",
                      "How many of the newest steps of the window the linear path reads; one season "
                      "(12 for monthly data, 7 for daily) or a little more is typical."),),
    output_shape=_skip_shape,
    build=lambda shape, p: modules.AutoregressiveSkip(p["lags"]),
    main_param="lags",
    extra={TAKES_INPUT: True},
))


def input_layers(type_names: Sequence[str]) -> tuple[int, ...]:
    """0-based positions of the layers whose forward also takes the model's input (side paths)."""
    return tuple(i for i, name in enumerate(type_names)
                 if name in LAYERS and LAYERS.get(name).extra.get(TAKES_INPUT))


def padding_mask_layers(type_names: Sequence[str]) -> tuple[int, ...] | None:
    """Which layers of a model get the padding mask of its token-id input.

    Args:
        type_names: the model's layer types in order (the head included).

    Returns:
        ``None`` when the first layer is not Embedding (the input is not token ids, so there is no
        padding); otherwise the 0-based positions of the layers that take the mask, up to the first
        layer that does not keep the time steps (after it the mask no longer lines up). Layer types
        that are not registered end the search.
    """
    if not type_names or type_names[0] != "Embedding":
        return None
    found = []
    for index, name in enumerate(type_names):
        extra = LAYERS.get(name).extra if name in LAYERS else {}
        if extra.get(TAKES_MASK):
            found.append(index)
        if not extra.get(KEEPS_STEPS):
            break
    return tuple(found)
