"""Drawing helpers for the Build page: family cards, the layer editor, the live shape table.

Every kind of data goes through one ``DataShape`` (``builder.data.sources``): the shape of one
sample, the outputs, the rows, and for text the vocabulary, whose ``scope()`` the shapes are
inferred in. It is computed once per data file, data spec and split settings (``st.cache_data``).

The page stays a short script; everything here draws, and every change goes through
``AppState.set_design`` (so it is saved, undoable, and the editor frame is rebuilt from the design).
The logic itself (edits, moves, shapes, the diagram) lives in ``builder/``.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pandas as pd
import streamlit as st

from builder.data import DataSpec
from builder.data.sources import DataShape, data_shape, prepare_data
from builder.diagram import design_dot, output_label
from builder.editor import (
    INIT_CHOICES,
    TYPE_COLUMN,
    add_layer,
    apply_edits,
    apply_fix,
    design_rows,
    editor_columns,
    fix_for,
    init_choices,
    layers_that_fit,
    move_layer,
    with_init,
)
from builder.errors import SpecError
from builder.layers import LAYERS, Fix, describe_shape
from builder.pipeline import choose_spec
from builder.shapes import ShapeReport, ShapeRow, infer_shapes
from builder.spec import FAMILIES, ModelSpec, Problem, families_for
from builder.templates import default_family, text_reading
from pages.components.data_view import data_key
from pages.components.i18n import t, tcount, tm
from pages.components.state import AppState, app_state
from pages.components.train_settings import in_sentence
from pages.components.ui import human_bytes

LAYER_PICK_KEY = "build_layer_pick"
STATUS_COLUMN = "check"
NUMBER_COLUMN = "#"
NOT_APPLICABLE = "—"  # shown in an editor cell whose setting its layer does not have
UNKNOWN = "?"  # shown in a size or parameter cell that follows a broken layer
ROW_PX = 35  # Streamlit's table row (and header) height, to size a table to its rows
MAX_TABLE_ROWS = 25  # past this many rows a table scrolls inside itself


def table_height(rows: int) -> int:
    """The pixel height that shows ``rows`` rows and the header without scrolling (up to a cap)."""
    return (min(rows, MAX_TABLE_ROWS) + 1) * ROW_PX + 3


# --- the data's shape (cached: preparing a big table or a folder of images takes a moment) ---------


@st.cache_data(show_spinner=False, max_entries=16)
def _data_shape(key: str, spec_json: str, val: float, test: float, seed: int, _source: Any) -> DataShape:
    # A pure function of its hashed arguments: ``key`` names the saved file with its modification
    # time and size (see ``data_key``), so a new upload, even with the same name, is a new entry.
    data_spec = DataSpec.from_dict(json.loads(spec_json))
    return data_shape(prepare_data(_source, data_spec, val, test, seed), data_spec)


def data_shape_of(state: AppState) -> DataShape:
    """The shape the training step will see (same split settings), cached per data and data spec.

    Text is prepared as the design reads it (``text_reading``: a bag of n-grams for EmbeddingBag,
    words in order otherwise; before there is a design, as the default MLP reads it), as training
    will: the vocabulary and the length differ.

    Raises:
        DataError: the data cannot be prepared (the Data page says why).
    """
    config = state.config
    data_spec = text_reading(state.data_spec, state.design if state.design is not None else "mlp")
    with st.spinner(t("Reading the data's shape...")):  # shows only when it takes a moment (not cached)
        return _data_shape(data_key(state), json.dumps(data_spec.to_dict(), sort_keys=True),
                           config.val_fraction, config.test_fraction, config.seed, state.data_source())


def data_caption(shape: DataShape) -> str:
    """One sentence: what one sample is, and how many train the model."""
    dims = shape.input_shape
    if shape.kind == "images":
        text = t("Each picture becomes {shape} numbers (channels x height x width); {n:,} images train the model.",
                 shape=describe_shape(dims), n=shape.n_rows)
    elif shape.kind == "text":
        text = t("Each text becomes {length} token ids (word numbers) from a vocabulary of {vocab:,}; {n:,} texts "
                 "train the model.", length=dims[0], vocab=shape.vocab_size, n=shape.n_rows)
    elif shape.kind == "series":
        text = t("Each sample is a window of {steps} steps x {values}; {n:,} windows train the model to predict "
                 "the next {horizon}.", steps=dims[0], values=tcount(dims[1], "value"), n=shape.n_rows,
                 horizon=tcount(shape.n_outputs, "step"))
    else:
        text = t("{columns} become {numbers} per row; {n:,} rows train the model.",
                 columns=tcount(shape.n_columns, "input column"), numbers=tcount(dims[0], "number"), n=shape.n_rows)
    return t("{caption} The output layer is added for you and sized to your data.", caption=text)


# --- family cards ---------------------------------------------------------------------------------------

TASK_WORDS = {"regression": "predicting a number", "binary": "yes/no predictions",
              "multiclass": "predicting a category", "forecast": "forecasting a time series",
              "anomaly": "finding unusual rows"}
KIND_WORDS = {"table": "a table", "images": "images", "text": "text", "series": "a time series"}


def _either(words: dict[str, str], keys: tuple[str, ...]) -> str:
    """``keys`` in words, joined by "or": "a table or images"."""
    return t(" or ").join(t(words[key]) for key in keys)


def _words(words: dict[str, str], key: str) -> str:
    return t(words[key]) if key in words else key


def starter(family: str, shape: DataShape) -> ModelSpec:
    """The starter design of ``family``, sized from the data."""
    return choose_spec(family, None, shape)


def first_design(shape: DataShape) -> ModelSpec:
    """The design new data starts with: the default family's starter."""
    return starter(default_family(shape.task, shape.kind, shape.n_rows), shape)


def is_edited(design: ModelSpec, shape: DataShape) -> bool:
    """Whether the design differs from its family's starter (so replacing it loses work)."""
    if design.family not in FAMILIES:
        return True
    try:
        return design.to_dict() != starter(design.family, shape).to_dict()
    except SpecError:  # the family cannot read this data: the design is the user's own
        return True


def family_misfit(design: ModelSpec, shape: DataShape) -> str | None:
    """Why the design's family cannot learn from this data (or task), or ``None`` when it can."""
    family = FAMILIES.get(design.family)
    if family is None:
        return t("This design's family {family!r} is not one this app knows.", family=design.family)
    if shape.kind not in family.kinds:
        return t("Your {family} design reads {kinds}, but your data is {kind}.", family=tm(family.title),
                 kinds=_either(KIND_WORDS, family.kinds), kind=_words(KIND_WORDS, shape.kind))
    if shape.task not in family.tasks:
        return t("Your {family} design is for {tasks}; your data asks for {task}.", family=tm(family.title),
                 tasks=_either(TASK_WORDS, family.tasks), task=_words(TASK_WORDS, shape.task))
    return None


def _use_family(family: str, shape: DataShape) -> None:
    app_state().set_design(starter(family, shape))
    st.session_state[LAYER_PICK_KEY] = 0


def family_misfit_notice(design: ModelSpec, shape: DataShape) -> str | None:
    """When the design's family cannot read the data (new data loaded after designing): one message
    with one click to the family made for it. Returns the reason (``None`` when the family fits).

    Every other problem of such a design (its whole-design check, layers that expect other data)
    follows from this one, so the page shows no other message for them."""
    reason = family_misfit(design, shape)
    if reason is None:
        return None
    default = FAMILIES[default_family(shape.task, shape.kind, shape.n_rows)]
    with st.container(border=True):
        st.error(t("{reason} Start from the {family}, made for this data (Undo brings your design back).",
                   reason=reason, family=tm(default.title)), icon=":material/swap_horiz:")
        st.button(t("Start from {family}", family=tm(default.title)), key="start_default", type="primary", icon=default.icon,
                  on_click=_use_family, args=(default.key, shape))
    return reason


def family_cards(design: ModelSpec, shape: DataShape) -> None:
    """One card per family that reads this kind of data; those that do not fit the task are greyed."""
    edited = is_edited(design, shape)
    families = families_for(shape.kind)
    task = shape.task
    for column, family in zip(st.columns(max(len(families), 3)), families, strict=False):
        with column.container(border=True, height="stretch", vertical_alignment="distribute"):
            current = design.family == family.key
            with st.container(gap="small"):
                st.markdown(f"#### {family.icon} {tm(family.title)}")
                st.caption(tm(family.summary))
            if current:
                st.button(t("Your current design"), key=f"family_{family.key}", icon=":material/check:",
                          disabled=True, width="stretch")
            elif task not in family.tasks:
                st.button(t("Not for this data"), key=f"family_{family.key}", disabled=True,
                          width="stretch",
                          help=t("{family} is for {tasks}; your data asks for {task}.", family=tm(family.title),
                                 tasks=_either(TASK_WORDS, family.tasks), task=_words(TASK_WORDS, task)))
            elif edited:
                with st.popover(t("Start from {family}", family=tm(family.title)), width="stretch"):
                    st.warning(t("This replaces the layers you edited. You can undo it."))
                    st.button(t("Replace my design"), key=f"family_{family.key}", type="primary",
                              on_click=_use_family, args=(family.key, shape))
            else:
                st.button(t("Start from {family}", family=tm(family.title)), key=f"family_{family.key}",
                          on_click=_use_family, args=(family.key, shape), width="stretch")


# --- the layer editor ------------------------------------------------------------------------------------


def editor_key(state: AppState) -> str:
    return f"layer_editor_{state.editor_version}"


def _on_editor_change(key: str) -> None:
    state = app_state()
    new = apply_edits(state.design, st.session_state[key])
    # A new row without a layer type yet changes nothing: keep the editor (and the half-filled
    # row) as it is until the type is picked.
    if new != state.design:
        state.set_design(new)


def _column_config(design: ModelSpec) -> dict[str, Any]:
    config: dict[str, Any] = {
        NUMBER_COLUMN: st.column_config.NumberColumn("#", help=t("Layer number, from the input down."), width=40,
                                                     disabled=True),
        TYPE_COLUMN: st.column_config.SelectboxColumn(
            t("Layer"), options=LAYERS.names(), required=True, width=180,
            help=t("What the layer does. Pick a type; its settings take their usual values.")),
        STATUS_COLUMN: st.column_config.TextColumn(t("Check"), disabled=True, width="medium",
                                                   help=t("OK, or what to change in this row.")),
    }
    for column in editor_columns(design):
        label, help_text = tm(column.label), tm(column.help)
        if column.widget == "bool":
            config[column.name] = st.column_config.CheckboxColumn(label, help=help_text)
        elif column.widget == "choice":
            config[column.name] = st.column_config.SelectboxColumn(label, help=help_text,
                                                                   options=list(column.options))
        elif column.widget == "int":
            config[column.name] = st.column_config.NumberColumn(label, help=help_text, step=1, format="%d")
        else:
            config[column.name] = st.column_config.NumberColumn(label, help=help_text, format="%g")
    return config


def editor_frame(design: ModelSpec, report: ShapeReport) -> pd.DataFrame:
    """The editor's input: one row per layer, with read-only number and check columns.

    The columns go: number, layer type, check, then the settings, so each row's verdict sits next
    to its layer (a wide design's settings scroll; the check stays in view).
    """
    columns = [TYPE_COLUMN, *[c.name for c in editor_columns(design)]]
    frame = pd.DataFrame(design_rows(design), columns=columns)
    status = _problems_by_layer(report.problems)
    waiting = _waiting(report)
    frame.insert(1, STATUS_COLUMN, [waiting.get(i) if i not in status and i in waiting
                                    else _short_status(status.get(i)) for i in range(len(frame))])
    frame.insert(0, NUMBER_COLUMN, range(1, len(frame) + 1))
    return frame


def _problems_by_layer(problems: list[Problem]) -> dict[int, Problem]:
    """The first problem of each layer that has one."""
    return {p.layer_index: p for p in reversed(problems) if p.layer_index is not None}


def _waiting(report: ShapeReport) -> dict[int, str]:
    """Rows whose sizes are unknown because a layer above cannot take its input: say which one."""
    broken = next((row for row in report.rows if row.problem is not None and row.problem.kind == "shape"), None)
    if broken is None:
        return {}
    return {row.index: t("Sizes follow once layer {n} is fixed", n=broken.index + 1) for row in report.rows
            if row.index > broken.index and row.problem is None and row.input_shape is None}


def _after_label(message: str) -> str:
    """A layer's problem without the layer it names ("Layer 2 (Conv2d): expects..." -> "expects...")."""
    return re.split(r": |：", tm(message), maxsplit=1)[-1]


def _short_status(problem: Problem | None) -> str:
    if problem is None:
        return t("OK")
    return f"⚠ {_after_label(problem.message)}"


def layer_editor(state: AppState, report: ShapeReport) -> None:
    design = state.design
    key = editor_key(state)
    if not design.layers:
        st.caption(":material/info: " + t("No hidden layers: the model is one weighted sum of the inputs. "
                                          "Add a layer below to make it a neural network."))
    frame = editor_frame(design, report)
    # Tall enough for every layer and the empty row that adds one (no scrolling inside the table).
    st.data_editor(frame, key=key, num_rows="dynamic", width="stretch", hide_index=True,
                   height=table_height(len(frame) + 1), column_config=_column_config(design),
                   on_change=_on_editor_change, args=(key,), placeholder=NOT_APPLICABLE)
    # The callback applies browser edits before this run. A delta that arrives without it (a state
    # set by a test or restored by Streamlit) is applied here, then the page redraws from the design.
    delta = st.session_state.get(key) or {}
    if any(delta.get(part) for part in ("edited_rows", "added_rows", "deleted_rows")):
        new = apply_edits(design, delta)
        if new != design:
            state.set_design(new)
            st.rerun()


# --- toolbar: pick a layer, move it, add, delete, undo -------------------------------------------------


def _picked(state: AppState) -> int:
    value = st.session_state.get(LAYER_PICK_KEY, 0)
    return min(max(int(value or 0), 0), max(len(state.design.layers) - 1, 0))


def _move(offset: int) -> None:
    state = app_state()
    index = _picked(state)
    state.set_design(move_layer(state.design, index, offset))
    st.session_state[LAYER_PICK_KEY] = min(max(index + offset, 0), len(state.design.layers) - 1)


def _delete() -> None:
    state = app_state()
    index = _picked(state)
    layers = list(state.design.layers)
    del layers[index]
    state.set_design(ModelSpec(state.design.family, layers, state.design.init, state.design.version))
    st.session_state[LAYER_PICK_KEY] = max(min(index, len(layers) - 1), 0)


def _add(type_name: str) -> None:
    state = app_state()
    position = _picked(state) + 1 if state.design.layers else 0
    state.set_design(add_layer(state.design, type_name, position))
    st.session_state[LAYER_PICK_KEY] = position


def _undo() -> None:
    state = app_state()
    previous = state.design_history.undo()
    if previous is not None:
        state.set_design(previous, record_undo=False)
        st.session_state[LAYER_PICK_KEY] = _picked(state)


def add_layer_menu(design: ModelSpec, position: int, shape: DataShape) -> None:
    """The layers that fit at ``position`` first, by group, each with its one-line description;
    the others (they need other data, or another place in the design) folded away below."""
    with shape.scope():
        fitting = set(layers_that_fit(design, position, shape.input_shape, shape.n_outputs))
    where = t("after layer {n}", n=position) if position else t("as the first layer")
    st.caption(t("New layers go {where}, with their usual settings. These fit there:", where=where))
    others: list[str] = []
    for category, names in LAYERS.by_category().items():
        here = [name for name in names if name in fitting]
        others += [name for name in names if name not in fitting]
        if here:
            st.markdown(f"**{tm(category)}**")
        for name in here:
            st.button(name, key=f"add_{name}", on_click=_add, args=(name,), width="stretch")
            st.caption(tm(LAYERS.get(name).summary))
    if others:
        with st.expander(t("{layers} (they need other data or another place)",
                           layers=tcount(len(others), "other layer"))):
            for name in others:
                st.button(name, key=f"add_{name}", help=tm(LAYERS.get(name).summary), on_click=_add,
                          args=(name,), width="stretch")


def layer_toolbar(state: AppState, shape: DataShape) -> None:
    """Move, delete and add layers around the picked one; undo the last change."""
    layers = state.design.layers
    st.session_state[LAYER_PICK_KEY] = _picked(state)
    pick, up, down, delete, add, undo = st.columns([2.2, 0.6, 0.6, 0.6, 1.6, 1.1], vertical_alignment="bottom")
    # Option labels are made here, in the page's language, not later by the format function.
    names = [f"{i + 1}. {layer.type}" for i, layer in enumerate(layers)] or [t("(no hidden layers)")]
    pick.selectbox(t("Layer"), options=list(range(len(layers))) or [0], key=LAYER_PICK_KEY, format_func=names.__getitem__,
                   disabled=not layers, help=t("The layer that the arrows and the bin act on; new layers go after it."))
    index = _picked(state)
    up.button(":material/arrow_upward:", key="layer_up", help=t("Move the picked layer up"), on_click=_move,
              args=(-1,), disabled=index == 0 or not layers, width="stretch")
    down.button(":material/arrow_downward:", key="layer_down", help=t("Move the picked layer down"), on_click=_move,
                args=(1,), disabled=index >= len(layers) - 1, width="stretch")
    delete.button(":material/delete:", key="layer_delete", help=t("Delete the picked layer"), on_click=_delete,
                  disabled=not layers, width="stretch")
    with add.popover(t("Add layer"), icon=":material/add:", width="stretch"):
        add_layer_menu(state.design, index + 1 if layers else 0, shape)
    undo.button(t("Undo"), key="layer_undo", icon=":material/undo:", on_click=_undo,
                disabled=not state.design_history.can_undo, width="stretch")


# --- problems with their one-click fixes ------------------------------------------------------------------


def design_problems(design: ModelSpec, report: ShapeReport, shape: DataShape) -> list[Problem]:
    """Every problem: layer settings and shapes (from the report) and the family vs the data and task."""
    whole = [p for p in design.validate(shape.task, shape.kind) if p.layer_index is None and p not in report.problems]
    return whole + list(report.problems)  # a family that does not fit the data first: it explains the rest


def _apply_fix(fix: Fix) -> None:
    state = app_state()
    state.set_design(apply_fix(state.design, fix))


def problem_list(problems: list[Problem], shape: DataShape) -> None:
    """Each problem as an error, with its one-click fix (a design-wide one: the data's starter)."""
    for number, problem in enumerate(problems):
        st.error(tm(problem.message), icon=":material/error:")
        fix = fix_for(problem)
        if fix is not None:
            st.button(tm(fix.label), key=f"fix_{number}", icon=":material/build:", on_click=_apply_fix, args=(fix,))
        elif problem.layer_index is None and problem.kind == "setting":
            default = FAMILIES[default_family(shape.task, shape.kind, shape.n_rows)]
            st.button(t("Start from {family}", family=tm(default.title)), key=f"fix_{number}", icon=":material/build:",
                      on_click=_use_family, args=(default.key, shape))


# --- weight initialisation ------------------------------------------------------------------------------


def _on_init_change(key: str) -> None:
    state = app_state()
    state.set_design(with_init(state.design, st.session_state[key]))


def init_choice(state: AppState) -> None:
    """How the weights start (``ModelSpec.init``), in an expander: the default suits most designs."""
    design = state.design
    options = init_choices(design)
    names = {choice: tm(INIT_CHOICES[choice]) for choice in options}
    key = f"build_init_{state.editor_version}"
    with st.expander(t("Starting weights (advanced)"), icon=":material/tune:"):
        st.selectbox(t("Weight initialisation"), options,
                     index=options.index(design.init) if design.init in options else 0,
                     format_func=names.__getitem__, key=key, on_change=_on_init_change,
                     args=(key,), help=t("How the learned numbers are set before training. The default suits most "
                                         "designs; orthogonal keeps recurrent layers stable over long sequences."))


# --- the live table -----------------------------------------------------------------------------------------


def _settings_text(type_name: str, params: dict[str, Any]) -> str:
    if type_name not in LAYERS:
        return ""
    parts = []
    for spec in LAYERS.get(type_name).params:
        value = params.get(spec.name)
        shown = (t("yes") if value else t("no")) if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) else value
        parts.append(f"{in_sentence(spec.label)} {shown}")
    return ", ".join(parts)


def first_unsized(report: ShapeReport) -> str | None:
    """The layer whose sizes (so parameters) are unknown first, as words ("layer 7", "the output
    layer"), or ``None`` when every layer's size is known."""
    row = next((row for row in report.rows if row.output_shape is None), None)
    if row is None:
        return None
    return t("the output layer") if row.locked else t("layer {n}", n=row.index + 1)


OK_STYLE, WAITING_STYLE, PROBLEM_STYLE = "color: #188038", "color: #5F6368", "color: #D93025; font-weight: 600"


def _row_status(row: ShapeRow, by_layer: dict[int, Problem], waiting: dict[int, str]) -> tuple[str, str]:
    """What the table's Status cell says about ``row``, and its colour."""
    problem = row.problem or (None if row.locked else by_layer.get(row.index))
    if problem is not None:
        return (tm(problem.message) if row.locked else _after_label(problem.message)), PROBLEM_STYLE
    if row.index in waiting:
        return waiting[row.index], WAITING_STYLE
    return (t("Locked: sized to your data") if row.locked else t("OK")), OK_STYLE


def shape_table(report: ShapeReport) -> pd.DataFrame:
    """The live table: one row per layer plus the locked output head, with a running total.

    A layer whose sizes are unknown (it is broken, or follows a broken one) has no parameter count,
    and neither has the running total from there on: those cells are empty (``<NA>``), not 0.
    """
    by_layer = _problems_by_layer(report.problems)
    waiting = _waiting(report)
    rows: list[dict[str, Any]] = []
    running: int | None = 0
    for row in report.rows:
        params = row.n_params if row.output_shape is not None else None
        running = None if running is None or params is None else running + params
        rows.append({"#": t("out") if row.locked else str(row.index + 1),
                     "Layer": t("Output (locked)") if row.locked else row.type,
                     "Settings": _settings_text(row.type, row.params),
                     "Input": row.input_text, "Output": row.output_text, "Parameters": params,
                     "Running total": running, "Status": _row_status(row, by_layer, waiting)[0]})
    table = pd.DataFrame(rows, columns=["#", "Layer", "Settings", "Input", "Output", "Parameters",
                                        "Running total", "Status"])
    for column in ("Parameters", "Running total"):
        table[column] = pd.array(list(table[column]), dtype="Int64")
    return table


def _status_styles(report: ShapeReport) -> list[str]:
    """The colour of each Status cell: green when fine, grey while waiting, red for a problem."""
    by_layer, waiting = _problems_by_layer(report.problems), _waiting(report)
    return [_row_status(row, by_layer, waiting)[1] for row in report.rows]


def shape_panel(report: ShapeReport, batch_size: int) -> None:
    """Headline numbers, then the table: what each layer does to one row of the data."""
    layers, total, memory = st.columns(3)
    layers.metric(t("Layers"), len(report.rows), border=True,
                  help=t("Your layers plus the output layer, which is sized to your data and locked."))
    params_help = t("How many numbers the model learns. More can fit more patterns, and overfit more.")
    memory_help = t("Rough memory to train one batch of {n} samples (weights, optimizer, activations).", n=batch_size)
    unsized = first_unsized(report)
    if unsized is None:
        total.metric(t("Parameters"), f"{report.total_params:,}", border=True, help=params_help)
        memory.metric(t("Memory per batch"), human_bytes(report.memory_estimate(batch_size)), border=True,
                      help=memory_help)
    else:  # the sizes after a broken layer are unknown: a partial count would mislead
        waiting = t("until {what} is fixed", what=unsized)
        total.metric(t("Parameters"), NOT_APPLICABLE, delta=waiting, delta_color="off", delta_arrow="off",
                     border=True, help=params_help)
        memory.metric(t("Memory per batch"), NOT_APPLICABLE, delta=waiting, delta_color="off", delta_arrow="off",
                      border=True, help=memory_help)
    table = shape_table(report)
    styles = _status_styles(report)
    st.dataframe(table.style.apply(lambda _: styles, subset=["Status"]), hide_index=True, placeholder=UNKNOWN,
                 width="stretch", height=table_height(len(table)), column_config={
                     "#": st.column_config.TextColumn(width=40),
                     "Layer": st.column_config.TextColumn(t("Layer")),
                     "Settings": st.column_config.TextColumn(t("Settings"), width="medium"),
                     "Input": st.column_config.TextColumn(t("Input"), help=t(
                         "The size of one sample (a row, an image, a text or a window) going into the layer.")),
                     "Output": st.column_config.TextColumn(t("Output"), help=t("The size of one sample coming out.")),
                     "Parameters": st.column_config.NumberColumn(
                         t("Parameters"), format="%,d", help=t("Numbers this layer learns (? until the layers above fit).")),
                     "Running total": st.column_config.NumberColumn(
                         t("Running total"), format="%,d", help=t("Parameters up to and including this layer.")),
                     "Status": st.column_config.TextColumn(t("Status"), width="large"),
                 })


# --- save / load --------------------------------------------------------------------------------------------

LOAD_KEY = "design_upload"


def design_file_bytes(design: ModelSpec) -> bytes:
    """The bytes of a saved design (``design.json``): the design's JSON, UTF-8, ending in a newline."""
    return (design.to_json() + "\n").encode("utf-8")


def on_design_upload() -> None:
    uploaded = st.session_state.get(LOAD_KEY)
    if uploaded is None:
        return
    try:
        design = ModelSpec.from_json(uploaded.getvalue())
    except ValueError:
        return  # the page shows the message beside the uploader
    app_state().set_design(design)
    st.session_state[LAYER_PICK_KEY] = 0


SHAPES_CHECKED_KEY = "build_shapes_checked"  # (design JSON, whether its shapes fit the data)


def build_infer(design: ModelSpec, shape: DataShape) -> ShapeReport:
    """The live shapes of ``design`` on the data (inside the data's scope: text needs its vocabulary).

    The verdict is remembered for the sidebar, which ticks Build only for a design that fits.
    """
    with shape.scope():
        report = infer_shapes(design, shape.input_shape, shape.n_outputs)
    st.session_state[SHAPES_CHECKED_KEY] = (design.to_json(), report.ok)
    return report


def design_ready(state: AppState) -> bool:
    """Whether the design fits the data's kind and task, and its shapes (when the Build page has
    checked them for this very design) fit too."""
    if not (state.has_data and state.has_design):
        return False
    if state.design.validate(state.data_spec.task, state.data_spec.kind):
        return False
    checked = st.session_state.get(SHAPES_CHECKED_KEY)
    return checked is None or checked[0] != state.design.to_json() or checked[1]


def network_diagram(report: ShapeReport, shape: DataShape) -> None:
    """The picture of the network; a layer with a bad setting is red too, as in the table."""
    by_layer = _problems_by_layer(report.problems)
    rows = [row if row.problem or row.index not in by_layer else replace(row, problem=by_layer[row.index])
            for row in report.rows]
    dot = design_dot(ShapeReport(rows, report.problems), shape.input_label,
                     output_label(shape.task, shape.n_outputs))
    st.graphviz_chart(dot, width="content")
