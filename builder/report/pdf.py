"""The report printed to an A4 PDF by headless Chromium: found on the PATH, cut off from the network,
stopped (with its helper processes) when it hangs.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from builder.report.common import ReportError

log = logging.getLogger(__name__)

PDF_TIMEOUT_S = 90.0  # Chromium prints a report in 1-5 s; a hung one is stopped after this
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The path of an installed Chromium or Chrome, or ``None``."""
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


def report_pdf(html_text: str, out: Path, *, timeout: float = PDF_TIMEOUT_S, chromium: str | None = None) -> Path | None:
    """Print the report to an A4 PDF at ``out`` with headless Chromium.

    Args:
        html_text: ``build_report``'s HTML.
        out: where the PDF goes (its folder is created).
        timeout: seconds before a hung Chromium is stopped.
        chromium: the browser to use; by default the first of ``CHROMIUM_NAMES`` on the PATH.

    Returns:
        ``out``, or ``None`` when no Chromium is installed.

    Raises:
        ReportError: Chromium failed, printed nothing, or ran past ``timeout``.
    """
    binary = chromium or find_chromium()
    if binary is None:
        return None
    out = Path(out)
    instead = "Download the HTML report and print it from your browser instead."
    with tempfile.TemporaryDirectory(prefix="report-pdf-") as folder:
        page, pdf = Path(folder) / "report.html", Path(folder) / "report.pdf"
        page.write_text(html_text, encoding="utf-8")
        command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   "--host-resolver-rules=MAP * ~NOTFOUND",  # the report needs no network: make sure of it
                   f"--user-data-dir={Path(folder) / 'profile'}", "--no-pdf-header-footer",
                   "--print-to-pdf-no-header", f"--print-to-pdf={pdf}", page.as_uri()]
        try:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise ReportError(f"Chromium ({binary}) could not be started to print the PDF: {exc.strerror or exc}. "
                              f"{instead}") from None
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(process)
            raise ReportError(f"Printing the report to PDF took longer than {timeout:g} s and was stopped. "
                              f"{instead}") from None
        printed = pdf.is_file() and pdf.read_bytes()[:5] == b"%PDF-"
        if process.returncode != 0 or not printed:
            last = (stderr or b"").decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
            log.warning("chromium failed to print (exit %s): %s", process.returncode, (stderr or b"")[-2000:])
            raise ReportError(f"Chromium could not print the report to PDF (exit code {process.returncode}: "
                              f"{last[0][:200]}). {instead}")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pdf, out)
    return out


def _stop(process: subprocess.Popen) -> None:
    """Kill Chromium and the helpers it started (its own process group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (AttributeError, ProcessLookupError, PermissionError):
        process.kill()
    process.communicate()
