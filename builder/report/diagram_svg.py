"""The network's design as an inline SVG diagram: boxes top to bottom, each arrow labelled with the
shape it carries (the picture of the app's Graphviz diagram, drawn without Graphviz).
"""

from __future__ import annotations

from builder.diagram import COLOURS as DIAGRAM_COLOURS
from builder.i18n import tr
from builder.layers import LAYERS, TAKES_INPUT
from builder.report.common import caption, e
from builder.shapes import ShapeReport


def diagram_svg(report: ShapeReport, input_text: str, output_text: str) -> str:
    """The design as boxes top to bottom, each arrow labelled with the shape it carries (the same
    picture as the app's Graphviz diagram, drawn without Graphviz)."""
    width, box_w, box_h, gap = 350, 270, 38, 24
    left = 18
    centre = left + box_w / 2
    boxes: list[tuple[str, str]] = [(_two_lines(input_text), DIAGRAM_COLOURS["input"])]
    edges = []
    for row in report.rows:
        edges.append(row.input_text)
        if row.locked:
            text = f"{tr('Output layer')}\n{tr('{n} value(s)', n=row.params.get('out_features', '?'))}"
            fill = DIAGRAM_COLOURS["head"]
        else:
            text = f"{row.index + 1}. {caption(row.type, row.params)}"
            fill = DIAGRAM_COLOURS["problem"] if row.problem is not None else DIAGRAM_COLOURS["layer"]
        boxes.append((text, fill))
    edges.append(report.rows[-1].output_text if report.rows else "?")
    boxes.append((_two_lines(output_text), DIAGRAM_COLOURS["input"]))
    height = len(boxes) * box_h + (len(boxes) - 1) * gap + 4
    parts = ["<defs><marker id=\"arrowhead\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" "
             "markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#5F6368\"/></marker></defs>"]
    tops = [2 + k * (box_h + gap) for k in range(len(boxes))]
    for k, ((text, fill), y) in enumerate(zip(boxes, tops, strict=True)):
        radius = box_h / 2 if k in (0, len(boxes) - 1) else 7
        lines = text.split("\n")[:2]
        parts.append(f"<rect x=\"{left}\" y=\"{y}\" width=\"{box_w}\" height=\"{box_h}\" rx=\"{radius:.0f}\" "
                     f"fill=\"{fill}\" stroke=\"#5F6368\"/>")
        first = y + (box_h / 2 + 4 if len(lines) == 1 else box_h / 2 - 3)
        parts.append(f"<text x=\"{centre:.0f}\" y=\"{first:.0f}\" class=\"box\" text-anchor=\"middle\">{e(lines[0])}</text>")
        if len(lines) > 1:
            parts.append(f"<text x=\"{centre:.0f}\" y=\"{first + 13:.0f}\" class=\"box sub\" "
                         f"text-anchor=\"middle\">{e(lines[1])}</text>")
        if k:
            y0, y1 = tops[k - 1] + box_h, y
            parts.append(f"<line x1=\"{centre:.0f}\" x2=\"{centre:.0f}\" y1=\"{y0}\" y2=\"{y1 - 1}\" stroke=\"#5F6368\" "
                         f"stroke-width=\"1.3\" marker-end=\"url(#arrowhead)\"/>"
                         f"<text x=\"{centre + 8:.0f}\" y=\"{(y0 + y1) / 2 + 4:.0f}\" class=\"edge\">{e(edges[k - 1])}</text>")
    for k, row in enumerate(report.rows, start=1):
        if row.type in LAYERS and LAYERS.get(row.type).extra.get(TAKES_INPUT):  # a side path also reads the input
            y_in, y_row, x = tops[0] + box_h / 2, tops[k] + box_h / 2, left + box_w + 10
            parts.append(f"<path d=\"M{left + box_w},{y_in:.0f} H{x} V{y_row:.0f} H{left + box_w + 1}\" fill=\"none\" "
                         f"stroke=\"#5F6368\" stroke-dasharray=\"4 3\" marker-end=\"url(#arrowhead)\"/>"
                         f"<text x=\"{x + 4}\" y=\"{(y_in + y_row) / 2:.0f}\" class=\"edge\">{tr('side path')}</text>")
    label = tr("Diagram of the network")
    return (f"<svg class=\"diagram\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{label}\">"
            f"<title>{label}</title>{''.join(parts)}</svg>")


def _two_lines(label: str) -> str:
    """A box's label on two lines, cut at its first colon (a Chinese one too): "Input" above "19 number(s) per row"."""
    for colon in (": ", "："):
        if colon in label:
            return label.replace(colon, "\n", 1)
    return label
