"""Project-wide test set-up.

Under CI=true a skipped browser test fails the session: the journey test must really run in CI,
never be skipped because Chromium or Playwright went missing.
"""

from __future__ import annotations

import os

import pytest

_skipped_browser_tests: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def _private_builder_home(tmp_path_factory):
    """No test writes into the user's own home: workspaces, the run store (``runs.db``) and the
    command line's runs (``cli-runs/``) of the whole session go to a temporary folder. Set before
    any fixture, module-scoped ones included; a test's own ``builder_home`` overrides it."""
    previous = os.environ.get("BUILDER_HOME")
    os.environ["BUILDER_HOME"] = str(tmp_path_factory.mktemp("builder-home"))
    # AppTest page tests train in the app's own threads (each test builds a fresh app; worker
    # processes would start for every one). test_workers.py and the browser journeys use processes.
    os.environ.setdefault("BUILDER_TRAINING_WORKERS", "0")
    yield
    if previous is None:
        os.environ.pop("BUILDER_HOME", None)
    else:
        os.environ["BUILDER_HOME"] = previous


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


# --- the app under AppTest ---------------------------------------------------------------------------

from pathlib import Path  # noqa: E402

APP_FILE = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture
def builder_home(tmp_path, monkeypatch):
    """An empty workspace home for the test, so no test sees another's files."""
    home = tmp_path / "home"
    monkeypatch.setenv("BUILDER_HOME", str(home))
    return home


@pytest.fixture
def app(builder_home):
    """A fresh ``AppTest`` of app.py; after the test, stop job threads and clear shared caches.

    Both ``st.cache_resource`` and job threads outlive a test (see STACK.md), so they are reset here.
    """
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP_FILE, default_timeout=60)
    yield at
    from pages.components.state import job_registry

    job_registry().stop_all()
    st.cache_resource.clear()
