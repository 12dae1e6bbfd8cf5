"""The layer registry: every layer type the editor offers, registered once.

A ``LayerType`` knows its own parameters (``ParamSpec``), the shape it produces from the shape it
receives, and how to build its torch module. Sizes that follow from the previous layer
(``in_features``, ``num_features``, ``normalized_shape``) are never stored in a design: ``build``
gets the incoming shape and fills them, as Keras layers learn their input size in ``build``.

Shapes are per sample, without the batch dimension: ``(features,)`` for a table row.
The palette is ``LAYERS.names()``; the key of each type is the ``torch.nn`` class name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from builder.errors import SpecError
from builder.params import Boolean, FloatRange, IntRange, ParamSpec

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
))

for _name, _summary in [
    ("ReLU", "Keeps positive values, zeroes negatives. The usual first choice."),
    ("GELU", "A smooth ReLU, common in Transformers."),
    ("SiLU", "Smooth ReLU-like activation (also called Swish)."),
    ("Tanh", "Squashes values into -1..1."),
    ("Sigmoid", "Squashes values into 0..1."),
]:
    LAYERS.register(LayerType(name=_name, category="Activation", summary=_summary))

LAYERS.register(LayerType(
    name="LeakyReLU",
    category="Activation",
    summary="Like ReLU but lets a small slope through for negatives, so units never go silent.",
    params=(ParamSpec("negative_slope", FloatRange(0, 1), 0.01, "Negative slope",
                      "How much of a negative value passes through."),),
    main_param="negative_slope",
))

LAYERS.register(LayerType(
    name="Dropout",
    category="Regularisation",
    summary="Randomly switches off a share of values while training, to reduce overfitting.",
    params=(ParamSpec("p", FloatRange(0, 1, high_inclusive=False), 0.2, "Drop share",
                      "Share of values switched off during training (0.1-0.5 is typical)."),),
    main_param="p",
))

LAYERS.register(LayerType(
    name="BatchNorm1d",
    category="Normalisation",
    summary="Rescales each feature over the batch; often speeds up training.",
    output_shape=_batchnorm1d_shape,
    build=lambda shape, p: nn.BatchNorm1d(shape[0]),
))

LAYERS.register(LayerType(
    name="LayerNorm",
    category="Normalisation",
    summary="Rescales the features of each row on their own; works with any batch size.",
    build=lambda shape, p: nn.LayerNorm(shape[-1]),
))

LAYERS.register(LayerType(
    name="Flatten",
    category="Shape",
    summary="Turns a grid or a sequence into one flat list of numbers per row.",
    output_shape=lambda shape, p: (math.prod(shape),),
))
