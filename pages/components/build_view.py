"""Drawing helpers for the Build page: family cards, the layer editor, the live shape table.

The page stays a short script; everything here draws, and every change goes through
``AppState.set_design`` (so it is saved, undoable, and the editor frame is rebuilt from the design).
The logic itself (edits, moves, shapes, the diagram) lives in ``builder/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from builder.data import DataSpec, prepare_tabular
from builder.diagram import design_dot
from builder.editor import TYPE_COLUMN, add_layer, apply_edits, design_rows, editor_columns, move_layer
from builder.layers import LAYERS, Fix
from builder.shapes import ShapeReport, infer_shapes
from builder.spec import FAMILIES, ModelSpec, Problem
from builder.templates import starter_spec
from pages.components.data_view import table_key
from pages.components.state import AppState, app_state, read_saved_table
from pages.components.ui import human_bytes

LAYER_PICK_KEY = "build_layer_pick"
STATUS_COLUMN = "check"
NUMBER_COLUMN = "#"


# --- the data's dimensions (cached: preparing a big table takes a moment) ---------------------------


@dataclass(frozen=True)
class DataDims:
    """What the design needs from the data: the preprocessed width, rows and outputs."""

    n_features: int
    n_rows: int
    n_outputs: int
    n_columns: int  # input columns before preprocessing (one-hot makes n_features larger)

    @property
    def input_label(self) -> str:
        return f"Input: {self.n_features} number(s) per row"


@st.cache_data(show_spinner="Reading the data's shape...", max_entries=16)
def _data_dims(table: str, spec_json: str, val: float, test: float, seed: int) -> DataDims:
    # A pure function of its arguments: ``table`` names the saved file with its modification time
    # and size (see ``table_key``), so a new upload, even with the same name, is a new entry.
    data_spec = DataSpec.from_dict(json.loads(spec_json))
    df = read_saved_table(Path(table.rsplit("|", 2)[0]))
    prepared = prepare_tabular(df, data_spec, val, test, seed)
    return DataDims(int(prepared.input_shape[0]), len(prepared.X_train), int(prepared.n_outputs),
                    len(data_spec.features))


def data_dims(state: AppState) -> DataDims:
    """The dimensions the training step will see (same split settings), cached per data spec.

    Raises:
        DataError: the data cannot be prepared (the Data page says why).
    """
    config = state.config
    return _data_dims(table_key(state), json.dumps(state.data_spec.to_dict(), sort_keys=True),
                      config.val_fraction, config.test_fraction, config.seed)


# --- family cards ---------------------------------------------------------------------------------------

TASK_WORDS = {"regression": "predicting a number", "binary": "yes/no predictions",
              "multiclass": "predicting a category", "forecast": "forecasting a time series",
              "anomaly": "finding unusual rows"}


def is_edited(design: ModelSpec, dims: DataDims) -> bool:
    """Whether the design differs from its family's starter (so replacing it loses work)."""
    if design.family not in FAMILIES:
        return True
    return design.to_dict() != starter_spec(design.family, dims.n_features, dims.n_rows).to_dict()


def _use_family(family: str, dims: DataDims) -> None:
    app_state().set_design(starter_spec(family, dims.n_features, dims.n_rows))
    st.session_state[LAYER_PICK_KEY] = 0


def family_cards(design: ModelSpec, task: str, dims: DataDims) -> None:
    """One card per family; only those that fit the task can be picked."""
    edited = is_edited(design, dims)
    kind = app_state().data_spec.kind
    families = [f for f in FAMILIES.values() if kind in f.kinds]
    for column, family in zip(st.columns(len(families)), families, strict=False):
        with column.container(border=True, height="stretch", vertical_alignment="distribute"):
            current = design.family == family.key
            with st.container(gap="small"):
                st.markdown(f"#### {family.icon} {family.title}")
                st.caption(family.summary)
            fits = task in family.tasks
            if current:
                st.button("Your current design", key=f"family_{family.key}", icon=":material/check:",
                          disabled=True, width="stretch")
            elif not fits:
                st.button("Not for this data", key=f"family_{family.key}", disabled=True,
                          width="stretch",
                          help=f"{family.title} is for {' or '.join(TASK_WORDS[t] for t in family.tasks)}; "
                               f"your data asks for {TASK_WORDS.get(task, task)}.")
            elif edited:
                with st.popover(f"Start from {family.title}", width="stretch"):
                    st.warning("This replaces the layers you edited. You can undo it.")
                    st.button("Replace my design", key=f"family_{family.key}", type="primary",
                              on_click=_use_family, args=(family.key, dims))
            else:
                st.button(f"Start from {family.title}", key=f"family_{family.key}",
                          on_click=_use_family, args=(family.key, dims), width="stretch")


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
        NUMBER_COLUMN: st.column_config.NumberColumn("#", help="Layer number, from the input down.", width=40,
                                                     disabled=True),
        TYPE_COLUMN: st.column_config.SelectboxColumn(
            "Layer", options=LAYERS.names(), required=True, width=130,
            help="What the layer does. Pick a type; its settings take their usual values."),
        STATUS_COLUMN: st.column_config.TextColumn("Check", disabled=True, width="medium",
                                                   help="OK, or what to change in this row."),
    }
    for column in editor_columns(design):
        if column.widget == "bool":
            config[column.name] = st.column_config.CheckboxColumn(column.label, help=column.help)
        elif column.widget == "choice":
            config[column.name] = st.column_config.SelectboxColumn(column.label, help=column.help,
                                                                   options=list(column.options))
        elif column.widget == "int":
            config[column.name] = st.column_config.NumberColumn(column.label, help=column.help, step=1,
                                                                format="%d")
        else:
            config[column.name] = st.column_config.NumberColumn(column.label, help=column.help, format="%g")
    return config


def editor_frame(design: ModelSpec, report: ShapeReport) -> pd.DataFrame:
    """The editor's input: one row per layer, with read-only number and check columns."""
    columns = [TYPE_COLUMN, *[c.name for c in editor_columns(design)]]
    frame = pd.DataFrame(design_rows(design), columns=columns)
    status = _problems_by_layer(report.problems)
    frame[STATUS_COLUMN] = [_short_status(status.get(i)) for i in range(len(frame))]
    frame.insert(0, NUMBER_COLUMN, range(1, len(frame) + 1))
    return frame


def _problems_by_layer(problems: list[Problem]) -> dict[int, Problem]:
    """The first problem of each layer that has one."""
    return {p.layer_index: p for p in reversed(problems) if p.layer_index is not None}


def _short_status(problem: Problem | None) -> str:
    if problem is None:
        return "OK"
    text = problem.message.split(": ", 1)[-1]
    return f"⚠ {text}"


def layer_editor(state: AppState, report: ShapeReport) -> None:
    design = state.design
    key = editor_key(state)
    if not design.layers:
        st.caption(":material/info: No hidden layers: the model is one weighted sum of the inputs. "
                   "Add a layer below to make it a neural network.")
    st.data_editor(editor_frame(design, report), key=key, num_rows="dynamic", width="stretch", hide_index=True,
                   column_config=_column_config(design), on_change=_on_editor_change, args=(key,))
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


def layer_toolbar(state: AppState) -> None:
    """Move, delete and add layers around the picked one; undo the last change."""
    layers = state.design.layers
    st.session_state[LAYER_PICK_KEY] = _picked(state)
    pick, up, down, delete, add, undo = st.columns([2.2, 0.6, 0.6, 0.6, 1.6, 1.1], vertical_alignment="bottom")
    pick.selectbox("Layer", options=list(range(len(layers))) or [0], key=LAYER_PICK_KEY,
                   format_func=lambda i: f"{i + 1}. {layers[i].type}" if layers else "(no hidden layers)",
                   disabled=not layers, help="The layer that the arrows and the bin act on; new layers go after it.")
    index = _picked(state)
    up.button(":material/arrow_upward:", key="layer_up", help="Move the picked layer up", on_click=_move,
              args=(-1,), disabled=index == 0 or not layers, width="stretch")
    down.button(":material/arrow_downward:", key="layer_down", help="Move the picked layer down", on_click=_move,
                args=(1,), disabled=index >= len(layers) - 1, width="stretch")
    delete.button(":material/delete:", key="layer_delete", help="Delete the picked layer", on_click=_delete,
                  disabled=not layers, width="stretch")
    with add.popover("Add layer", icon=":material/add:", width="stretch"):
        where = f"after layer {index + 1}" if layers else "as the first layer"
        st.caption(f"New layers go {where}, with their usual settings.")
        for category, names in LAYERS.by_category().items():
            st.markdown(f"**{category}**")
            for name in names:
                st.button(name, key=f"add_{name}", help=LAYERS.get(name).summary, on_click=_add,
                          args=(name,), width="stretch")
    undo.button("Undo", key="layer_undo", icon=":material/undo:", on_click=_undo,
                disabled=not state.design_history.can_undo, width="stretch")


# --- problems with their one-click fixes ------------------------------------------------------------------


def design_problems(design: ModelSpec, report: ShapeReport, task: str) -> list[Problem]:
    """Every problem: layer settings and shapes (from the report) and the family vs the task."""
    problems = list(report.problems)
    problems += [p for p in design.validate(task) if p not in problems]
    return problems


def _apply_fix(fix: Fix) -> None:
    state = app_state()
    state.set_design(state.design.apply_fix(fix).with_defaults())


def problem_list(problems: list[Problem]) -> None:
    for number, problem in enumerate(problems):
        st.error(problem.message, icon=":material/error:")
        if problem.fix is not None:
            st.button(problem.fix.label, key=f"fix_{number}", icon=":material/build:", on_click=_apply_fix,
                      args=(problem.fix,))


# --- the live table -----------------------------------------------------------------------------------------


def _settings_text(type_name: str, params: dict[str, Any]) -> str:
    if type_name not in LAYERS:
        return ""
    parts = []
    for spec in LAYERS.get(type_name).params:
        value = params.get(spec.name)
        shown = ("yes" if value else "no") if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) else value
        parts.append(f"{spec.label.lower()} {shown}")
    return ", ".join(parts)


def shape_table(report: ShapeReport) -> pd.DataFrame:
    """The live table: one row per layer plus the locked output head, with a running total."""
    by_layer = _problems_by_layer(report.problems)
    rows, running = [], 0
    for row in report.rows:
        running += row.n_params
        if row.locked:
            status = row.problem.message if row.problem else "Locked: sized to your data"
            name = "Output (locked)"
        else:
            problem = row.problem or by_layer.get(row.index)
            status = problem.message.split(": ", 1)[-1] if problem else "OK"
            name = row.type
        rows.append({"#": "out" if row.locked else str(row.index + 1), "Layer": name,
                     "Settings": _settings_text(row.type, row.params),
                     "Input": row.input_text, "Output": row.output_text, "Parameters": row.n_params,
                     "Running total": running, "Status": status})
    return pd.DataFrame(rows)


def _status_style(value: str) -> str:
    if value == "OK" or value.startswith("Locked"):
        return "color: #188038"
    return "color: #D93025; font-weight: 600"


def shape_panel(report: ShapeReport, batch_size: int) -> None:
    """Headline numbers, then the table: what each layer does to one row of the data."""
    layers, total, memory = st.columns(3)
    layers.metric("Layers", len(report.rows), border=True,
                  help="Your layers plus the output layer, which is sized to your data and locked.")
    total.metric("Parameters", f"{report.total_params:,}", border=True,
                 help="How many numbers the model learns. More can fit more patterns, and overfit more.")
    memory.metric("Memory per batch", human_bytes(report.memory_estimate(batch_size)), border=True,
                  help=f"Rough memory to train one batch of {batch_size} rows (weights, optimizer, activations).")
    table = shape_table(report)
    st.dataframe(table.style.map(_status_style, subset=["Status"]), hide_index=True,
                 width="stretch", column_config={
                     "#": st.column_config.TextColumn(width=40),
                     "Settings": st.column_config.TextColumn(width="medium"),
                     "Input": st.column_config.TextColumn(help="Numbers per row going into the layer."),
                     "Output": st.column_config.TextColumn(help="Numbers per row coming out."),
                     "Parameters": st.column_config.NumberColumn(help="Numbers this layer learns."),
                     "Running total": st.column_config.NumberColumn(
                         help="Parameters up to and including this layer."),
                     "Status": st.column_config.TextColumn(width="large"),
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


def build_infer(design: ModelSpec, dims: DataDims) -> ShapeReport:
    return infer_shapes(design, (dims.n_features,), dims.n_outputs)


def network_diagram(report: ShapeReport, input_label: str) -> None:
    """The picture of the network; a layer with a bad setting is red too, as in the table."""
    by_layer = _problems_by_layer(report.problems)
    rows = [row if row.problem or row.index not in by_layer else replace(row, problem=by_layer[row.index])
            for row in report.rows]
    st.graphviz_chart(design_dot(ShapeReport(rows, report.problems), input_label), width="content")

