"""A diagram of the network as Graphviz DOT text, shapes on the edges.

The app renders it with ``st.graphviz_chart`` (drawn in the browser: no Graphviz binary needed);
the model card can embed the same text. Problem layers are drawn in red so the picture and the
table tell the same story. A layer that also reads the model's input (a forecast's linear side
path) gets a dashed edge from the input box.
"""

from __future__ import annotations

from builder.layers import LAYERS, TAKES_INPUT
from builder.shapes import ShapeReport

COLOURS = {"layer": "#E8F0FE", "head": "#DDEBDD", "problem": "#FDE2E1", "input": "#F1F3F4"}

OUTPUT_WORDS = {
    "binary": "Output: one score for yes/no",
    "multiclass": "Output: a score for each of {n} classes",
    "regression": "Output: the predicted number",
    "forecast": "Output: the next {n} step(s)",
    "anomaly": "Output: the row rebuilt ({n} numbers)",
}


def output_label(task: str, n_outputs: int) -> str:
    """What the head's numbers mean for ``task``, for the last box of the diagram."""
    return OUTPUT_WORDS.get(task, "Output: {n} value(s)").format(n=n_outputs)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def layer_caption(type_name: str, params: dict) -> str:
    """Short text for a layer box: its type and main setting on a second line."""
    if type_name not in LAYERS:
        return type_name
    layer_type = LAYERS.get(type_name)
    main = layer_type.main_param
    if main is None or main not in params:
        return type_name
    label = layer_type.param(main).label.lower()
    return f"{type_name}\n{label}: {params[main]}"


def design_dot(report: ShapeReport, input_label: str = "Input", output_label: str | None = None) -> str:
    """Return DOT source drawing the layers top to bottom with each edge labelled by its shape.

    Args:
        report: the design's shapes (``infer_shapes``).
        input_label: the first box, e.g. "Input: 16x16 pixel images, grayscale".
        output_label: if given, a last box saying what the numbers out of the head mean.
    """
    lines = [
        "digraph model {",
        '  graph [rankdir=TB, nodesep=0.25, ranksep=0.3, bgcolor="transparent"];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11, color="#5F6368"];',
        '  edge [fontname="Helvetica", fontsize=10, color="#5F6368"];',
        f'  input [label="{_escape(input_label)}", fillcolor="{COLOURS["input"]}", shape=oval];',
    ]
    previous = "input"
    for row in report.rows:
        node = f"layer{row.index}"
        if row.locked:
            caption, fill = f"Output\n{row.params.get('out_features', '?')} value(s) (locked)", COLOURS["head"]
        else:
            caption = f"{row.index + 1}. {layer_caption(row.type, row.params)}"
            fill = COLOURS["layer"]
        if row.problem is not None:
            fill = COLOURS["problem"]
        lines.append(f'  {node} [label="{_escape(caption)}", fillcolor="{fill}"];')
        lines.append(f'  {previous} -> {node} [label=" {row.input_text}"];')
        if row.type in LAYERS and LAYERS.get(row.type).extra.get(TAKES_INPUT):
            # A side path (AutoregressiveSkip) also reads the model's input: draw that path too.
            lines.append(f'  input -> {node} [style=dashed, label=" side path"];')
        previous = node
    if output_label:
        last = report.rows[-1] if report.rows else None
        shape = last.output_text if last is not None else "?"
        lines.append(f'  output [label="{_escape(output_label)}", fillcolor="{COLOURS["input"]}", shape=oval];')
        lines.append(f'  {previous} -> output [label=" {shape}"];')
    lines.append("}")
    return "\n".join(lines)
