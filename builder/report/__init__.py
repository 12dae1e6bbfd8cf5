"""A stakeholder report of a trained run: one self-contained HTML file, and a PDF of it.

``build_report`` writes the whole story on one page a manager can read without the app: what was
predicted from which data, how good the model is against a simple baseline (big numbers and a plain
verdict), the decision threshold of a yes/no model, what drives the predictions (when explanations
are given), the charts of the test data, the network's design, how training went, and the model
card of the export bundle at the end.

Self-contained means nothing is fetched when the file is opened: the CSS is inline and every chart
is inline SVG drawn here from the run's own numbers (no JavaScript at all; plotly.js inlined would
add 4.8 MB to every report, the SVG charts of a table model weigh some 30 KB). Every string that
comes from the user's data (column names, class labels, file names) goes through ``html.escape``.

The report speaks the reader's language (``build_report(..., lang="zh")``): its own words come from
the catalogue (``builder.i18n``, ``zh/report.json``) and the engine's sentences are translated as the
app shows them; the model card stays English, as it travels with the exported model.

``report_pdf`` prints that HTML to an A4 PDF with headless Chromium when one is installed.

The parts, one job each:

* ``document``: ``build_report``, the page around the sections (heading, footer, inline CSS);
* ``sections``: the result and its verdict, the data, explanations, the design, training, the model card;
* ``threshold``: a yes/no model's decision threshold and its section;
* ``results``: the test data in detail (confusion matrix, misses, forecast, unusual rows, mistakes);
* ``markdown``: the model card's Markdown as HTML;
* ``svg``: the charts (ticks, axes, lines, dots, histograms) as inline SVG;
* ``diagram_svg``: the network's design as an inline SVG diagram;
* ``style.css``: the look, on screen and on A4;
* ``pdf``: printing with headless Chromium;
* ``common``: what they share (``ReportError``, escaping, colours, a section's frame).
"""

from builder.report.common import ReportError
from builder.report.document import build_report
from builder.report.markdown import markdown_html
from builder.report.pdf import CHROMIUM_NAMES, PDF_TIMEOUT_S, find_chromium, report_pdf
from builder.report.sections import report_verdict
from builder.report.svg import nice_ticks
from builder.report.threshold import DEFAULT_THRESHOLD, model_threshold

__all__ = [
    "CHROMIUM_NAMES",
    "DEFAULT_THRESHOLD",
    "PDF_TIMEOUT_S",
    "ReportError",
    "build_report",
    "find_chromium",
    "markdown_html",
    "model_threshold",
    "nice_ticks",
    "report_pdf",
    "report_verdict",
]
