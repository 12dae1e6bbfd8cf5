"""The main journey in a real browser: upload a CSV, build, train live, evaluate, export the
bundle, predict with the bundle's own predict.py, and predict in the app.

Runs the app as a user would (``streamlit run app.py``) and drives headless Chromium with
Playwright. Screenshots of every step land in ``test-artifacts/screenshots/`` to be looked at.
Skipped only when Chromium or Playwright is missing, and under CI=true a skip fails the run
(tests/conftest.py).
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from builder.export import read_bundle

from tabular_fixtures import TARGET, make_interaction_table

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app, started exactly as README.md says, on a free local port with an empty home."""
    home = tmp_path_factory.mktemp("home")
    port = _free_port()
    env = {**os.environ, "BUILDER_HOME": str(home)}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the app did not start within 60 s")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(600)  # let charts finish drawing
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def wait_for_text(page, text: str, timeout: float = 60_000) -> None:
    page.get_by_text(text, exact=False).first.wait_for(state="visible", timeout=timeout)


def test_upload_train_export_and_predict_like_a_user(server, browser, tmp_path):
    table = make_interaction_table(n=1200, seed=5, task="binary")
    csv_path = tmp_path / "churn.csv"
    table.to_csv(csv_path, index=False)
    new_rows = make_interaction_table(n=40, seed=6, task="binary").drop(columns=[TARGET])
    new_rows.loc[0, "plan"] = "enterprise"  # a category never seen in training
    new_rows.loc[1, "tenure_months"] = None
    new_csv = tmp_path / "new_customers.csv"
    new_rows.to_csv(new_csv, index=False)

    page = browser.new_page(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    page.set_default_timeout(60_000)

    # Data: upload, the target and task are inferred and saved.
    page.goto(server)
    wait_for_text(page, "Drop a table here")
    shot(page, "01-data-empty")
    page.locator('[data-testid="stFileUploader"] input[type=file]').set_input_files(str(csv_path))
    wait_for_text(page, "1,200")
    wait_for_text(page, "Saved: the model will predict")
    assert "ws=" in page.url
    shot(page, "02-data")

    # Build: the starter MLP with its live shape table and locked output layer.
    page.get_by_role("link", name="Next: build the model").click()
    wait_for_text(page, "Check sizes and parameters")
    shot(page, "03-build")

    # Train: start, see the live chart, wait for the end.
    page.get_by_role("link", name="Next: train this model").click()
    page.get_by_role("button", name="Start training").click()
    wait_for_text(page, "Epoch")
    page.locator(".js-plotly-plot").first.wait_for(state="visible")
    shot(page, "04-train-live")
    wait_for_text(page, "Training finished", timeout=180_000)
    shot(page, "05-train-done")

    # Evaluate: metric cards against the baseline and a confusion matrix.
    page.get_by_role("link", name="Next: see how good the model is").click()
    wait_for_text(page, "Accuracy")
    wait_for_text(page, "vs logistic regression")
    shot(page, "06-evaluate")

    # Export: build the bundle, parity checked, download it.
    page.goto(server.rstrip("/") + "/export?" + page.url.split("?", 1)[1])
    page.get_by_role("button", name="Build the bundle").click()
    wait_for_text(page, "gives the same answers as the app", timeout=120_000)
    shot(page, "07-export")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download").first.click()
    bundle_path = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(bundle_path)
    assert bundle_path.suffix == ".zip"

    # The downloaded bundle predicts on its own, with predict.py, like the app does.
    folder = tmp_path / "bundle"
    with zipfile.ZipFile(bundle_path) as archive:
        archive.extractall(folder)
    result = subprocess.run([sys.executable, "-I", "predict.py", str(new_csv)], cwd=folder,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    standalone = pd.read_csv(io.StringIO(result.stdout))
    in_app = read_bundle(bundle_path).predict(pd.read_csv(new_csv))
    assert len(standalone) == len(new_rows) == len(in_app)
    assert list(standalone["prediction"]) == list(in_app["prediction"])
    assert (standalone["probability_churned"] - in_app["probability_churned"]).abs().max() < 1e-5

    # Predict in the app: upload the new rows, get a predictions table.
    page.goto(server.rstrip("/") + "/predict?" + page.url.split("?", 1)[1])
    wait_for_text(page, "Predict")
    page.locator('[data-testid="stFileUploader"] input[type=file]').last.set_input_files(str(new_csv))
    wait_for_text(page, "Predictions for 40 rows")
    shot(page, "08-predict")
