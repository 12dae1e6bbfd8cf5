"""The Export page's report: one HTML file (and a PDF of it) for people who never open the app.

The HTML report is made from the current run (``app_state().trained``, ``builder.report``) as the
page opens (it takes hundredths of a second) and kept in the session for that run, so reruns and
page switches do not make it again; its PDF is printed on a click (seconds, with Chromium). What the
Evaluate page keeps with the run goes in too, both optional:

* ``trained.info["explanations"]``: what drives the predictions, a list of ``{"column",
  "importance", "spread", "sentence"}`` dicts (``builder.explain.ColumnImportance`` as JSON);
* ``trained.info["threshold"]``: a yes/no model's decision threshold, a number in (0, 1)
  (otherwise the model's own, 0.5 unless one was chosen).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from builder.errors import BuilderError
from builder.report import build_report, find_chromium, report_pdf
from pages.components.bundle_view import slug
from pages.components.i18n import language, t, tm
from pages.components.state import AppState
from pages.components.ui import human_bytes, user_errors

REPORT_KEY = "export_report"  # session: the ``MadeReport`` of the current run
CONTENTS = ("the result against a simple baseline in big numbers, with a plain verdict; the data; the "
            "decision threshold of a yes/no model; the charts of the test data; what drives the predictions "
            "(when explained on the Evaluate page); the network's design and diagram; how training went; and "
            "the model card")


@dataclass
class MadeReport:
    """A report made for one run (``key``), ready to download."""

    key: str
    html: bytes
    pdf: bytes | None
    pdf_problem: str | None  # why there is no PDF although Chromium is installed
    seconds: float


def report_key(state: AppState) -> str:
    """The run and what the Evaluate page kept with it: a report made for another is out of date."""
    trained = state.trained
    extras = {name: trained.info.get(name) for name in ("explanations", "threshold", "trained_at")}
    digest = hashlib.sha256(json.dumps(extras, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{state.run_id}:{digest}:{language()}"  # a report is in the language it was made in


def report_file_name(state: AppState, extension: str) -> str:
    """``titanic-report.html`` from the data's name."""
    return f"{slug(state.table_name or state.trained.info.get('source') or 'model')}-report.{extension}"


def make_report(state: AppState) -> MadeReport:
    """The HTML report of the current run (a few hundredths of a second: made without a click).

    Raises:
        ReportError: the report could not be written (a bad threshold or explanations kept with the run).
    """
    started = time.perf_counter()
    html = build_report(state.trained, lang=language())
    return MadeReport(report_key(state), html.encode("utf-8"), None, None, time.perf_counter() - started)


def print_pdf(made: MadeReport, chromium: str) -> None:
    """Print ``made``'s HTML to PDF with Chromium (seconds: on a click), into ``made``."""
    with st.spinner(t("Printing the PDF with Chromium (a few seconds)...")), \
            tempfile.TemporaryDirectory(prefix="report-") as folder:
        try:
            path = report_pdf(made.html.decode("utf-8"), Path(folder) / "report.pdf", chromium=chromium)
            made.pdf = path.read_bytes() if path is not None else None
        except BuilderError as exc:
            made.pdf_problem = str(exc)


def report_section(state: AppState) -> None:
    """The report, ready to download in one click (HTML); the PDF printed on a click of its own."""
    st.subheader(t("A report for stakeholders"))
    chromium = find_chromium()
    about = t("One file that opens in any browser without the app or an internet connection, and prints on A4: "
              "{contents}.", contents=t(CONTENTS))
    if not chromium:
        about = t("{about} A PDF needs Chromium on the server; print the HTML from your browser instead.", about=about)
    st.caption(about)
    made = st.session_state.get(REPORT_KEY)
    if made is None or made.key != report_key(state):  # none yet, or made for another run or explanations
        made = None
        with user_errors(t("The report could not be made. ")):
            made = make_report(state)
            st.session_state[REPORT_KEY] = made
        if made is None:
            return
    left, right = st.columns(2)
    left.download_button(t("Download the report (HTML)"), data=made.html, file_name=report_file_name(state, "html"),
                         mime="text/html", icon=":material/download:", width="stretch", key="export_report_html")
    if made.pdf is not None:
        right.download_button(t("Download the report (PDF)"), data=made.pdf, file_name=report_file_name(state, "pdf"),
                              mime="application/pdf", icon=":material/picture_as_pdf:", width="stretch",
                              key="export_report_pdf")
    elif chromium is not None and made.pdf_problem is None and right.button(
            t("Make a PDF of it"), icon=":material/picture_as_pdf:", width="stretch", key="export_report_pdf_make"):
        print_pdf(made, chromium)
        st.rerun()
    sizes = f"HTML {human_bytes(len(made.html))}" + (f", PDF {human_bytes(len(made.pdf))}" if made.pdf else "")
    st.caption(t("{sizes}, from the model trained {when}.", sizes=sizes, when=state.trained.info.get("trained_at", "")))
    if made.pdf_problem:
        st.warning(tm(made.pdf_problem), icon=":material/picture_as_pdf:")
