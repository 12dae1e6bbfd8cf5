"""Project-wide test set-up.

Under CI=true a skipped browser test fails the session: the journey test must really run in CI,
never be skipped because Chromium or Playwright went missing.
"""

from __future__ import annotations

import os

import pytest

_skipped_browser_tests: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "browser" in report.keywords:
        _skipped_browser_tests.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI", "").lower() == "true" and _skipped_browser_tests:
        session.exitstatus = 1
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                "CI=true but browser tests were skipped: " + ", ".join(_skipped_browser_tests), red=True
            )
