"""The layer editor's logic, kept out of the page so it is unit-tested.

The Build page shows the design as a spreadsheet (``st.data_editor``): one row per layer, a
``type`` column and one column per setting used by any layer in the design (a cell that does not
apply to its row's layer stays empty). Edits arrive as Streamlit's delta
(``edited_rows``/``added_rows``/``deleted_rows``); ``apply_edits`` turns that delta into a new
``ModelSpec``. The page then rebuilds the editor from the new design, so the design is the one
source of truth and the frame never drifts from it.

``DesignHistory`` gives the editor its undo; ``fix_for`` and ``apply_fix`` its one-click repairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from builder.layers import LAYERS, Fix
from builder.params import ParamSpec
from builder.shapes import infer_shapes
from builder.spec import LayerSpec, ModelSpec, Problem

TYPE_COLUMN = "type"
MAX_UNDO = 50


@dataclass(frozen=True)
class EditorColumn:
    """One settings column of the editor: the parameter it edits and how to draw it."""

    name: str
    label: str
    help: str
    widget: str  # "int", "float", "choice" or "bool" (from the parameter's constraint)
    options: tuple[str, ...] = ()


def editor_columns(spec: ModelSpec) -> list[EditorColumn]:
    """The settings columns for ``spec``: every parameter of the layer types it uses, in palette order."""
    used = {layer.type for layer in spec.layers}
    columns: dict[str, EditorColumn] = {}
    for name in LAYERS.names():
        if name not in used:
            continue
        for param in LAYERS.get(name).params:
            columns.setdefault(param.name, _column(param))
    return list(columns.values())


def _column(param: ParamSpec) -> EditorColumn:
    options = tuple(getattr(param.constraint, "options", ()))
    return EditorColumn(param.name, param.label, f"{param.help} Allowed: {param.constraint.describe()}.",
                        param.constraint.widget, options)


def design_rows(spec: ModelSpec) -> list[dict[str, Any]]:
    """One dict per layer: its type and a value (or ``None``) for every editor column."""
    columns = [c.name for c in editor_columns(spec)]
    return [{TYPE_COLUMN: layer.type, **{c: layer.params.get(c) for c in columns}} for layer in spec.layers]


def apply_edits(spec: ModelSpec, edits: dict[str, Any]) -> ModelSpec:
    """Apply a ``st.data_editor`` delta to ``spec`` and return the new design.

    Values are kept as typed so ``validate`` can report a bad one on its row; a layer whose type
    changes keeps only the settings its new type has, and takes defaults for the rest.

    Args:
        spec: the design the editor was drawn from.
        edits: ``{"edited_rows": {row: {column: value}}, "added_rows": [{column: value}],
            "deleted_rows": [row, ...]}`` (any key may be missing).
    """
    layers = [LayerSpec(layer.type, dict(layer.params)) for layer in spec.layers]
    for row, changes in (edits.get("edited_rows") or {}).items():
        index = int(row)
        if 0 <= index < len(layers):
            layers[index] = _edited(layers[index], changes)
    deleted = {int(i) for i in edits.get("deleted_rows") or []}
    layers = [layer for i, layer in enumerate(layers) if i not in deleted]
    for added in edits.get("added_rows") or []:
        type_name = added.get(TYPE_COLUMN)
        if type_name:  # a blank new row (no type picked yet) is not a layer
            layers.append(_edited(LayerSpec(type_name, {}), {k: v for k, v in added.items() if k != TYPE_COLUMN}))
    return ModelSpec(spec.family, layers, spec.init, spec.version).with_defaults()


def _edited(layer: LayerSpec, changes: dict[str, Any]) -> LayerSpec:
    type_name = changes.get(TYPE_COLUMN) or layer.type
    params = dict(layer.params)
    if type_name != layer.type and type_name in LAYERS:
        allowed = {p.name for p in LAYERS.get(type_name).params}
        params = {k: v for k, v in params.items() if k in allowed}
    for column, value in changes.items():
        if column == TYPE_COLUMN:
            continue
        if value is None:  # a cleared cell means "back to the default"
            params.pop(column, None)
        elif type_name not in LAYERS or column in {p.name for p in LAYERS.get(type_name).params}:
            params[column] = value
    return LayerSpec(type_name, params)


def move_layer(spec: ModelSpec, index: int, offset: int) -> ModelSpec:
    """Move layer ``index`` up (``offset=-1``) or down (``+1``); out-of-range moves change nothing."""
    target = index + offset
    if not (0 <= index < len(spec.layers) and 0 <= target < len(spec.layers)):
        return spec
    layers = list(spec.layers)
    layers[index], layers[target] = layers[target], layers[index]
    return ModelSpec(spec.family, layers, spec.init, spec.version)


def add_layer(spec: ModelSpec, type_name: str, position: int | None = None) -> ModelSpec:
    """Insert a layer of ``type_name`` with default settings (at the end by default)."""
    layers = list(spec.layers)
    layers.insert(len(layers) if position is None else position,
                  LayerSpec(type_name, LAYERS.get(type_name).defaults()))
    return ModelSpec(spec.family, layers, spec.init, spec.version)


def layers_that_fit(spec: ModelSpec, position: int, input_shape: tuple[int, ...], n_outputs: int) -> list[str]:
    """The layer types that can go at ``position`` as they are: inserted with their usual settings,
    the design has no new problem (call inside the data's ``DataShape.scope()`` for text).

    The Build page offers these first; the rest need other data or another place.
    """
    before = len(infer_shapes(spec, input_shape, n_outputs).problems)
    fitting = []
    for name in LAYERS.names():
        report = infer_shapes(add_layer(spec, name, position), input_shape, n_outputs)
        if len(report.problems) <= before and not any(p.layer_index == position for p in report.problems):
            fitting.append(name)
    return fitting


def fix_for(problem: Problem) -> Fix | None:
    """The one-click repair the editor offers for ``problem``.

    The problem's own fix where shape inference or validation found a precise one (insert Flatten,
    set padding, set nhead...). Otherwise, a layer that cannot take its input can always be removed,
    and a setting the layer does not have can be dropped. A problem of the whole design (the family
    does not fit the data) has none here: the page offers a starter design instead.
    """
    if problem.fix is not None:
        return problem.fix
    if problem.layer_index is None:
        return None
    number = problem.layer_index + 1
    if problem.kind == "shape":
        return Fix(label=f"Remove layer {number}", action="remove", index=problem.layer_index)
    if problem.param is not None:
        return Fix(label=f"Remove the setting '{problem.param}' from layer {number}", action="unset",
                   index=problem.layer_index, param=problem.param)
    return None


def apply_fix(spec: ModelSpec, fix: Fix) -> ModelSpec:
    """``spec`` with ``fix`` applied and every layer's settings complete (as the editor keeps them)."""
    return spec.apply_fix(fix).with_defaults()


# How the page names the weight initialisations (``ModelSpec.init``); orthogonal is for recurrent layers.
INIT_CHOICES = {
    "default": "PyTorch default (suits ReLU networks)",
    "xavier": "Xavier (suits tanh and sigmoid)",
    "kaiming": "Kaiming (suits deep ReLU networks)",
    "orthogonal": "Orthogonal (suits recurrent layers: RNN, LSTM, GRU)",
}
RECURRENT_TYPES = ("RNN", "LSTM", "GRU")


def init_choices(spec: ModelSpec) -> list[str]:
    """The initialisations that make sense for ``spec``: orthogonal only with a recurrent layer
    (or when the design already uses it, so it stays visible)."""
    recurrent = any(layer.type in RECURRENT_TYPES for layer in spec.layers)
    return [key for key in INIT_CHOICES if key != "orthogonal" or recurrent or spec.init == key]


def with_init(spec: ModelSpec, init: str) -> ModelSpec:
    """``spec`` with another weight initialisation."""
    return ModelSpec(spec.family, [LayerSpec(la.type, dict(la.params)) for la in spec.layers], init, spec.version)


@dataclass
class DesignHistory:
    """Undo for the editor: the designs before each change, newest last, bounded."""

    past: list[dict[str, Any]] = field(default_factory=list)

    def record(self, before: ModelSpec) -> None:
        self.past.append(before.to_dict())
        del self.past[:-MAX_UNDO]

    def undo(self) -> ModelSpec | None:
        """The design before the last change, or ``None`` when there is nothing to undo."""
        if not self.past:
            return None
        return ModelSpec.from_dict(self.past.pop(), strict=False)

    @property
    def can_undo(self) -> bool:
        return bool(self.past)
