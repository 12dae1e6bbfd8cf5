"""Model designs as plain data: ``ModelSpec`` and ``LayerSpec``, and their JSON form.

The JSON is the contract with the app, the CLI (``--spec``) and export bundles::

    {"version": 1, "family": "mlp", "init": "default",
     "layers": [{"type": "Linear", "out_features": 64}, {"type": "ReLU"}, {"type": "Dropout", "p": 0.2}]}

Layer ``type`` is the ``torch.nn`` class name and parameter names are torch keyword names. Sizes that
follow from the data or the previous layer are never stored, and the output head is never part of
``layers``: the builder adds it, sized to the task.

Validation has two stages, as in Ludwig: each layer's own parameters, then checks across the
design (family vs task, shapes). ``validate`` returns every problem so the editor can show them
together; ``from_dict`` and ``build_model`` raise on the first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from builder.errors import SpecError
from builder.layers import LAYERS, Fix

SPEC_VERSION = 1
INITS = ("default", "xavier", "kaiming", "orthogonal")


@dataclass(frozen=True)
class Family:
    """A model family as the user picks it on the Build page.

    Attributes:
        key: the name in designs and on the command line (``--model``).
        title: what the Build page calls it.
        summary: one plain sentence: what it does and what it is good for.
        tasks: the tasks it can be trained for.
        kinds: the kinds of data it reads (``DataSpec.kind``).
        icon: a Material icon name for the page.
    """

    key: str
    title: str
    summary: str
    tasks: tuple[str, ...]
    kinds: tuple[str, ...]
    icon: str


_CLASSES = ("binary", "multiclass")
FAMILIES: dict[str, Family] = {
    f.key: f
    for f in (
        Family("linear", "Linear regression", "Predicts a number as a weighted sum of the columns. "
               "Fast, easy to explain, and a fair first try.", ("regression",), ("table",),
               ":material/show_chart:"),
        Family("logistic", "Logistic regression", "Predicts a category from a weighted sum of the "
               "columns. Fast, easy to explain.", _CLASSES, ("table",), ":material/call_split:"),
        Family("mlp", "MLP (neural network)", "Stacked layers that learn curved patterns and "
               "interactions. A good first choice for tables, and for text up to some 20,000 "
               "texts (it reads each text as a bag of words and word pairs, and trains in seconds).",
               ("regression", *_CLASSES), ("table", "text"), ":material/hub:"),
        Family("cnn", "CNN (convolutional network)", "Slides small filters over an image to find "
               "edges, then shapes, then objects. The standard choice for pictures.", _CLASSES,
               ("images",), ":material/image:"),
        Family("rnn", "RNN (recurrent network)", "Reads a sequence one step at a time and keeps a "
               "running memory. The simplest sequence model; fine for short windows.",
               ("forecast", *_CLASSES), ("series", "text"), ":material/replay:"),
        Family("lstm", "LSTM", "A recurrent network with gates that decide what to remember, so it "
               "keeps patterns over long windows. A strong default for forecasting.",
               ("forecast", *_CLASSES), ("series", "text"), ":material/timeline:"),
        Family("gru", "GRU", "A leaner LSTM: nearly as good at long patterns, with fewer weights "
               "and faster training.", ("forecast", *_CLASSES), ("series", "text"),
               ":material/ssid_chart:"),
        Family("transformer", "Transformer encoder", "Lets every word (or time step) look at every "
               "other one through attention. The modern choice for text.",
               ("forecast", *_CLASSES), ("text", "series"), ":material/translate:"),
        Family("autoencoder", "Autoencoder (anomaly detection)", "Learns to squeeze normal rows "
               "through a narrow middle and rebuild them; rows it rebuilds badly are unusual. "
               "Needs no column to predict.", ("anomaly",), ("table",), ":material/troubleshoot:"),
    )
}


def families_for(kind: str, task: str | None = None) -> list[Family]:
    """The families that can learn from ``kind`` of data (and ``task``), best suited first."""
    return [f for f in FAMILIES.values() if kind in f.kinds and (task is None or task in f.tasks)]


@dataclass
class LayerSpec:
    """One layer of a design: its type and its own parameters (defaults filled in)."""

    type: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.params}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerSpec:
        if not isinstance(data, dict) or "type" not in data:
            raise SpecError(f"Each layer must be an object with a 'type'; got {data!r}.")
        if not isinstance(data["type"], str):
            shown = _shown(data["type"])
            raise SpecError(f"Each layer's 'type' must be a layer name such as 'Linear'; got {shown}.")
        params = {k: v for k, v in data.items() if k != "type"}
        return cls(type=data["type"], params=params)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a design, placed where the editor shows it.

    Attributes:
        message: a complete sentence ("Layer 3 (Dropout): ...").
        layer_index: 0-based layer the problem belongs to, or ``None`` for the whole design.
        param: the parameter at fault, if any.
        fix: a one-click repair, if the fix is mechanical.
        kind: "setting" (a value, a type, the family) or "shape" (a layer cannot take its input).
    """

    message: str
    layer_index: int | None = None
    param: str | None = None
    fix: Fix | None = None
    kind: str = "setting"


def layer_label(index: int, type_name: str) -> str:
    """The way every message names a layer: "Layer 3 (Dropout)"."""
    return f"Layer {index + 1} ({type_name})"


@dataclass
class ModelSpec:
    """A whole design: family, hidden layers (the head is implied) and weight initialisation."""

    family: str
    layers: list[LayerSpec] = field(default_factory=list)
    init: str = "default"
    version: int = SPEC_VERSION

    # --- JSON round trip ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "family": self.family,
            "init": self.init,
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Any, *, strict: bool = True) -> ModelSpec:
        """Read a design from its JSON object, filling default parameters.

        Args:
            data: the decoded JSON object.
            strict: raise the first problem found (``True``), or keep bad values so the editor can
                show them all with ``validate`` (``False``).

        Raises:
            SpecError: the object is not a design, or (strict) any layer is invalid.
        """
        if not isinstance(data, dict):
            raise SpecError("A design must be a JSON object with 'family' and 'layers'.")
        unknown = set(data) - {"version", "family", "layers", "init"}
        if unknown:
            raise SpecError(
                f"Unknown design key(s) {sorted(unknown)}: a design has only 'version', 'family', "
                "'init' and 'layers'."
            )
        version = data.get("version", SPEC_VERSION)
        if version != SPEC_VERSION:
            raise SpecError(f"This design has version {version!r}; this app reads version {SPEC_VERSION}.")
        layers = data.get("layers", [])
        if not isinstance(layers, list):
            raise SpecError("'layers' must be a list of layer objects.")
        for key, example in (("family", "mlp"), ("init", "default")):
            if not isinstance(data.get(key, example), str):
                shown = _shown(data[key])
                raise SpecError(f"The design's '{key}' must be a name such as '{example}'; got {shown}.")
        spec = cls(
            family=data.get("family", "mlp"),
            layers=[LayerSpec.from_dict(item) for item in layers],
            init=data.get("init", "default"),
        )
        spec = spec.with_defaults()
        if strict:
            problems = spec.validate()
            if problems:
                raise SpecError(problems[0].message)
        return spec

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelSpec:
        try:
            data = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SpecError(f"This design file is not valid JSON ({exc}). Save a design from the Build page and load that.") from None
        except RecursionError:  # json's answer to nesting deeper than the interpreter allows
            raise SpecError(
                "This design file is nested too deeply to be a design (lists or objects inside each other "
                "hundreds of levels deep). Save a design from the Build page and load that."
            ) from None
        return cls.from_dict(data)

    # --- editing --------------------------------------------------------------------------------

    def with_defaults(self) -> ModelSpec:
        """Return a copy where every known layer lists all its parameters (defaults filled)."""
        layers = []
        for layer in self.layers:
            params = dict(layer.params)
            if layer.type in LAYERS:
                layer_type = LAYERS.get(layer.type)
                params = {**layer_type.defaults(), **params}
                for spec in layer_type.params:
                    params[spec.name] = _normalised(spec, params[spec.name])
            layers.append(LayerSpec(layer.type, params))
        return ModelSpec(self.family, layers, self.init, self.version)

    def apply_fix(self, fix: Fix) -> ModelSpec:
        """Return a copy of the design with ``fix`` applied."""
        layers = [LayerSpec(layer.type, dict(layer.params)) for layer in self.layers]
        if fix.action == "insert":
            new = LayerSpec.from_dict(fix.layer or {})
            layers.insert(fix.index, LayerSpec(new.type, {**LAYERS.get(new.type).defaults(), **new.params}))
        elif fix.action == "set":
            layers[fix.index].params[fix.param] = fix.value
        elif fix.action == "unset":
            layers[fix.index].params.pop(fix.param, None)
        elif fix.action == "remove":
            del layers[fix.index]
        else:
            raise SpecError(f"Unknown fix action {fix.action!r}.")
        return ModelSpec(self.family, layers, self.init, self.version)

    # --- validation -----------------------------------------------------------------------------

    def validate(self, task: str | None = None, kind: str | None = None) -> list[Problem]:
        """Return every problem of the design (empty when it is valid).

        Stage one checks each layer's type and parameters; stage two checks the design as a whole
        (family against the task and the kind of data). Shapes need the data and are checked by
        ``infer_shapes``.
        """
        problems: list[Problem] = []
        if self.family not in FAMILIES:
            problems.append(Problem(f"Unknown model family {self.family!r}. Choose one of: "
                                    f"{', '.join(FAMILIES)}."))
        if self.init not in INITS:
            problems.append(Problem(f"Unknown weight initialisation {self.init!r}. Choose one of: "
                                    f"{', '.join(INITS)}."))
        for index, layer in enumerate(self.layers):
            problems.extend(_layer_problems(index, layer))
        family = FAMILIES.get(self.family)
        if family is not None and kind is not None and kind not in family.kinds:
            problems.append(Problem(
                f"{family.title} does not read {_KIND_WORDS.get(kind, kind)}: choose "
                f"{_or_titles(families_for(kind, task))}."
            ))
        elif family is not None and task is not None and task not in family.tasks:
            problems.append(Problem(
                f"{family.title} cannot do {_TASK_WORDS.get(task, task)}: choose "
                f"{_or_titles(families_for(kind or 'table', task))}."
            ))
        return problems

    def effective_family(self) -> str:
        """Linear and logistic regression with hidden layers are, in fact, an MLP."""
        if self.family in ("linear", "logistic") and self.layers:
            return "mlp"
        return self.family


_TASK_WORDS = {
    "regression": "number prediction (regression)",
    "binary": "yes/no prediction (binary classification)",
    "multiclass": "category prediction (multiclass classification)",
    "forecast": "forecasting a time series",
    "anomaly": "anomaly detection (no column to predict)",
}
_KIND_WORDS = {"table": "tables", "images": "images", "text": "text", "series": "time series"}


def _shown(value: Any) -> str:
    """A value for a message, cut short: a hostile file's value can be megabytes."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _or_titles(families: list[Family]) -> str:
    titles = [f.title for f in families] or ["another family"]
    return titles[0] if len(titles) == 1 else f"{', '.join(titles[:-1])} or {titles[-1]}"


def _normalised(spec, value: Any) -> Any:
    """The canonical form of a valid value (64.0 -> 64); an invalid one is kept for ``validate``."""
    try:
        return spec.check(value)
    except ValueError:
        return value


# Sizes the builder fills from the previous layer or the data; a design never stores them.
DERIVED_SIZES = ("in_features", "in_channels", "input_size", "num_features", "normalized_shape",
                 "num_embeddings", "d_model")


def _layer_problems(index: int, layer: LayerSpec) -> list[Problem]:
    if layer.type not in LAYERS:
        return [Problem(f"{layer_label(index, layer.type)}: unknown layer type. Choose one of: "
                        f"{', '.join(LAYERS.names())}.", index,
                        fix=Fix(label="Remove this layer", action="remove", index=index))]
    layer_type = LAYERS.get(layer.type)
    known = {p.name for p in layer_type.params}
    problems = []
    for name in layer.params:
        if name in DERIVED_SIZES and name not in known:
            problems.append(Problem(
                f"{layer_label(index, layer.type)}: '{name}' is set by the builder from the layer "
                "before it; remove it from the design.", index, name,
                fix=Fix(label=f"Remove '{name}'", action="unset", index=index, param=name)))
        elif name not in known:
            allowed = ", ".join(sorted(known)) or "no settings"
            problems.append(Problem(
                f"{layer_label(index, layer.type)}: unknown setting '{name}'. It takes {allowed}.",
                index, name))
    for spec in layer_type.params:
        try:
            spec.check(layer.params.get(spec.name, spec.default))
        except ValueError as exc:
            problems.append(Problem(
                f"{layer_label(index, layer.type)}: {exc}", index, spec.name,
                fix=Fix(label=f"Set {spec.label.lower()} to {spec.default!r}", action="set", index=index,
                        param=spec.name, value=spec.default)))
    return problems
