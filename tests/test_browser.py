"""Journeys in a real browser.

The main one: upload a CSV, build, train live, evaluate, export the bundle, predict with the
bundle's own predict.py, and predict in the app. The CNN one: upload a zip of digit pictures,
break the CNN template (delete its Flatten), see the error on the Linear row, click the one-click
fix, and train it to a test accuracy well above chance.

Runs the app as a user would (``streamlit run app.py``) and drives headless Chromium with
Playwright. Screenshots of every step land in ``test-artifacts/screenshots/`` to be looked at.
Skipped only when Chromium or Playwright is missing, and under CI=true a skip fails the run
(tests/conftest.py).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from builder.export import read_bundle
from tests.image_fixtures import make_digits_zip
from tests.serve_helpers import free_port
from tests.tabular_fixtures import TARGET, make_interaction_table

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def start_app(home: Path, port: int) -> subprocess.Popen:
    """The app, started exactly as README.md says (training in worker processes, the default), on
    ``port`` with ``home``; returns once it answers."""
    env = {**os.environ, "BUILDER_HOME": str(home), "BUILDER_TRAINING_WORKERS": "2"}
    log = (home / "server.log").open("a")  # a file, not a pipe nobody reads (a full pipe blocks the app)
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    log.close()  # the child holds its own copy
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    pytest.fail("the app did not start within 60 s")


def stop_app(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app, started exactly as README.md says, on a free local port with an empty home."""
    home = tmp_path_factory.mktemp("home")
    port = free_port()
    process = start_app(home, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_app(process)


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
    """Screenshot the whole page, not only the viewport.

    Streamlit scrolls inside its main container, so ``full_page`` alone stops at the viewport's
    height: the viewport is stretched to the content for the picture, then put back.
    """
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(600)  # let charts finish drawing
    size = page.viewport_size
    height = page.evaluate(
        "() => { const main = document.querySelector('[data-testid=\"stMain\"]');"
        " return main ? main.scrollHeight : 0; }")
    if size and height > size["height"]:
        page.set_viewport_size({"width": size["width"], "height": min(height + 40, 8000)})
        page.wait_for_timeout(600)  # let the charts redraw at the new size
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    if size:
        page.set_viewport_size(size)


def wait_for_text(page, text: str, timeout: float = 60_000) -> None:
    page.get_by_text(text, exact=False).first.wait_for(state="visible", timeout=timeout)


def wait_for_epochs_done(page, epochs: int, timeout: float = 120.0) -> int:
    """Wait until the live progress says at least ``epochs`` epochs are done ("Epoch 5 of 400 (4
    done)"; it changes twice a second, so it is read, not waited for as fixed text); return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"\((\d+) done\)", page.locator('[data-testid="stMain"]').inner_text())
        if found and int(found.group(1)) >= epochs:
            return int(found.group(1))
        time.sleep(0.1)
    pytest.fail(f"fewer than {epochs} epochs were done after {timeout:.0f} s")


def wait_idle(page, timeout: float = 60_000) -> None:
    """Wait until the app's script run ended (widgets and tables show the latest state)."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(
        state="attached", timeout=timeout)


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
    requested = []  # every address the pages ask for: nothing may leave this machine
    page.on("request", lambda request: requested.append(request.url))

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
    page.get_by_role("tab", name=re.compile("Why it answers so")).click()
    wait_for_text(page, "What drives the predictions")
    page.locator(".js-plotly-plot").nth(1).wait_for(state="visible")
    shot(page, "06b-evaluate-explain")
    page.get_by_role("tab", name=re.compile("Decide")).click()
    wait_for_text(page, "Choose the operating point")
    shot(page, "06c-evaluate-decide")

    # Export: build the bundle, parity checked, download it.
    page.goto(server.rstrip("/") + "/export?" + page.url.split("?", 1)[1])
    page.get_by_role("button", name="Build the bundle").click()
    wait_for_text(page, "gives the same answers as the app", timeout=120_000)
    shot(page, "07-export")
    with page.expect_download() as download_info:
        page.get_by_role("button", name=re.compile(r"Download .*bundle\.zip")).click()
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

    outside = sorted({url.split("/")[2] for url in requested if url.startswith(("http:", "https:", "ws:", "wss:"))}
                     - {server.split("/")[2]})
    assert not outside, f"requests left the machine: {outside}"  # every page of the journey, icon included

    # Present: the model for a room, and a view-only link that opens it with no editing control.
    page.goto(server.rstrip("/") + "/present?" + page.url.split("?", 1)[1])
    wait_for_text(page, f"Predicting '{TARGET}' from the other columns")
    page.get_by_text("Share a view-only link").click()
    page.get_by_role("button", name="Make a view-only link").click()
    wait_for_text(page, "?view=")
    shot(page, "09-present")
    link = re.search(r"\?view=([A-Za-z0-9_-]{20,64})", page.content()).group(1)
    viewer = browser.new_page(viewport={"width": 1440, "height": 1000})
    viewer.set_default_timeout(60_000)
    viewer.goto(server.rstrip("/") + f"/?view={link}")
    wait_for_text(viewer, "View-only link")
    wait_for_text(viewer, f"Predicting '{TARGET}' from the other columns")
    viewer.locator(".js-plotly-plot").first.wait_for(state="visible")
    shot(viewer, "10-view-only")
    labels = [b.inner_text() for b in viewer.get_by_role("button").all()]
    editing = [label for label in labels if any(word in label for word in
                                                ("Start", "Build", "Delete", "Stop", "Use this", "Make", "Revoke"))]
    assert not editing, editing
    nav = [a.inner_text() for a in viewer.locator('[data-testid="stSidebarNav"] a').all()]
    assert not nav, nav  # no way to the other pages
    viewer.close()

    # The report: downloaded in one click, it opens offline with no request at all.
    content = report_opened_offline(page, browser, server, "Download the report (HTML)", tmp_path / "en",
                                    "11-report")
    assert content.count("<h1") == 1 and "baseline" in content

    # 中文: the switch in the sidebar turns the whole interface Chinese, page after page, and the
    # report follows; the URL keeps the choice.
    page.goto(server.rstrip("/") + "/evaluate?" + page.url.split("?", 1)[1])
    wait_for_text(page, "Your journey")
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').click()
    page.get_by_role("option", name="中文").click()
    wait_for_text(page, "您的进度")
    wait_for_text(page, "为何这样回答")
    assert "lang=zh" in page.url
    wait_idle(page)
    shot(page, "12-evaluate-zh")
    page.goto(server.rstrip("/") + "/present?" + page.url.split("?", 1)[1])
    wait_for_text(page, f"根据其他列预测 '{TARGET}'")
    page.locator(".js-plotly-plot").first.wait_for(state="visible")
    shot(page, "13-present-zh")
    content = report_opened_offline(page, browser, server, "下载报告（HTML）", tmp_path / "zh", "14-report-zh")
    assert 'lang="zh-Hans"' in content and "基线" in content


def report_opened_offline(page, browser, server: str, button: str, folder: Path, shot_name: str) -> str:
    """Download the report from the Export page with ``button``, open it with the network blocked
    (every request but the file itself is refused and counted: none may be made), screenshot it;
    return its HTML."""
    page.goto(server.rstrip("/") + "/export?" + page.url.split("?", 1)[1])
    with page.expect_download() as download_info:
        page.get_by_role("button", name=button).click()
    folder.mkdir(parents=True, exist_ok=True)
    report_path = folder / download_info.value.suggested_filename
    download_info.value.save_as(report_path)
    offline = browser.new_page(viewport={"width": 1200, "height": 1000})
    requests = []
    offline.route("**/*", lambda route: (requests.append(route.request.url),
                                         route.continue_() if route.request.url.startswith("file:")
                                         else route.abort()))
    offline.goto(report_path.as_uri())
    assert [url for url in requests if not url.startswith("file:")] == []
    content = offline.content()
    shot(offline, shot_name)
    offline.close()
    return content


def cell(grid, row: int, column: int):
    """One cell of a Streamlit table (row and column from 1), in the grid's accessible copy.

    The grid draws on a canvas and keeps a hidden table of the cells in view for screen readers;
    it trails the canvas by a frame and holds only the rows and columns scrolled into view, so
    read it with ``expect`` (which retries), after scrolling.
    """
    return grid.locator(f'tbody tr[aria-rowindex="{row + 1}"] td[aria-colindex="{column}"]')


def scroll_grid(grid, right: bool = False, down: bool = False) -> None:
    """Scroll a Streamlit table into view, and inside it to the last column and/or the last row."""
    grid.scroll_into_view_if_needed()
    grid.locator(".dvn-scroller").evaluate(
        "(s, [right, down]) => { if (right) s.scrollLeft = s.scrollWidth;"
        " if (down) s.scrollTop = s.scrollHeight; }",
        [right, down])


def test_break_the_cnn_fix_it_in_one_click_and_train(server, browser, tmp_path):
    expect = pytest.importorskip("playwright.sync_api").expect
    zip_path = make_digits_zip(tmp_path / "digits.zip", n_per_class=40, size=16)
    page = browser.new_page(viewport={"width": 1440, "height": 1000})  # a fresh workspace
    page.set_default_timeout(60_000)
    expect.set_options(timeout=30_000)
    sidebar = page.locator('[data-testid="stSidebar"]')
    errors = page.locator('[data-testid="stAlertContentError"]')

    # Data: the zip of pictures, its 10 classes with 8 examples each, saved.
    page.goto(server)
    wait_for_text(page, "Drop a table here")
    page.locator('[data-testid="stFileUploader"] input[type=file]').set_input_files(str(zip_path))
    wait_for_text(page, "Saved: the model will tell 10 classes of pictures apart")
    wait_for_text(page, "Examples per class")
    classes = page.locator('[data-testid="stMetric"]').filter(has_text="Classes")
    expect(classes.locator('[data-testid="stMetricValue"]')).to_have_text("10")
    class_names = page.locator('[data-testid="stMarkdownContainer"] strong')
    for digit in range(10):
        expect(class_names.get_by_text(str(digit), exact=True)).to_be_visible()
    expect(page.locator('[data-testid="stImage"] img')).to_have_count(10 * 8)
    # The page ended early (ui.end_page) and app.py still redrew the sidebar: Data is ticked at once.
    expect(sidebar).to_contain_text("check_circle Data", use_inner_text=True)
    wait_idle(page)
    shot(page, "cnn-01-data")

    # Build: the CNN template, with Flatten between the convolutions and the Linear layer.
    page.get_by_role("link", name="Next: build the model").click()
    wait_for_text(page, "Check sizes and parameters")
    wait_for_text(page, "Ready to train")
    wait_idle(page)
    expect(page.get_by_role("button", name="Your current design")).to_be_visible()  # on the CNN card
    expect(page.get_by_text("CNN (convolutional network)")).to_be_visible()
    tables = page.locator('[data-testid="stDataFrame"]')
    editor, sizes = tables.nth(0), tables.nth(1)  # the layer editor, the sizes and parameters
    scroll_grid(editor)
    for row, layer in ((8, "MaxPool2d"), (9, "Flatten"), (10, "Linear")):
        expect(cell(editor, row, 2)).to_have_text(layer)
    expect(sidebar).to_contain_text("check_circle Build", use_inner_text=True)
    shot(page, "cnn-02-build-template")

    # Break it: pick layer 9 (Flatten) in the toolbar and delete it with the bin.
    picker = page.locator(".st-key-build_layer_pick input[role=combobox]")
    picker.click()
    picker.fill("Flatten")
    page.get_by_role("option", name="9. Flatten").click()
    wait_idle(page)
    expect(picker).to_have_value("9. Flatten")
    page.locator(".st-key-layer_delete button:visible").click()

    # The error is on the Linear row (now layer 9): in the problem list with its fix, in the sizes
    # table and in the editor's Check column; the rows under it wait; Build is not ticked.
    fix = page.get_by_role("button", name="Insert Flatten before layer 9")
    expect(fix).to_be_visible()
    wait_idle(page)
    expect(errors).to_have_count(1)
    expect(errors).to_contain_text(
        "Layer 9 (Linear): Linear needs a flat input (a list of numbers per row) but gets 32x4x4")
    wait_for_text(page, "Fix the 1 problem next to the layers before training")
    expect(page.get_by_role("link", name="Next: train this model")).to_have_count(0)
    expect(sidebar).to_contain_text("radio_button_unchecked Build", use_inner_text=True)
    expect(picker).to_have_value("9. Linear")
    scroll_grid(editor)
    expect(cell(editor, 9, 2)).to_have_text("Linear")
    expect(editor.locator('td[aria-colindex="2"]:text-is("Flatten")')).to_have_count(0)
    scroll_grid(sizes)
    expect(cell(sizes, 9, 2)).to_have_text("Linear")
    expect(cell(sizes, 9, 8)).to_have_text(re.compile(r"^Linear needs a flat input .* but gets 32x4x4"))
    for row in (10, 11):
        expect(cell(sizes, row, 8)).to_have_text("Sizes follow once layer 9 is fixed")
    shot(page, "cnn-03-build-broken")
    scroll_grid(editor)  # the Check column follows the Layer column
    expect(editor.locator('thead th[aria-colindex="3"]')).to_have_text("Check")
    expect(cell(editor, 9, 3)).to_have_text(re.compile(r"^⚠ Linear needs a flat input .* but gets 32x4x4"))
    expect(cell(editor, 8, 3)).to_have_text("OK")
    expect(cell(editor, 10, 3)).to_have_text("Sizes follow once layer 9 is fixed")
    shot(page, "cnn-04-build-broken-check-column")

    # One click: Flatten goes back before layer 9 and the design is valid again.
    fix.click()
    wait_for_text(page, "Ready to train")
    wait_idle(page)
    expect(errors).to_have_count(0)
    expect(sidebar).to_contain_text("check_circle Build", use_inner_text=True)
    scroll_grid(sizes)
    for row, layer in ((8, "MaxPool2d"), (9, "Flatten"), (10, "Linear")):
        expect(cell(sizes, row, 2)).to_have_text(layer)
        expect(cell(sizes, row, 8)).to_have_text("OK")
    scroll_grid(sizes, down=True)  # the last row: the locked output, one score per class
    output = sizes.locator("tbody tr").filter(has_text="Output (locked)")
    expect(output.locator('td[aria-colindex="5"]')).to_have_text("10")
    expect(output.locator('td[aria-colindex="8"]')).to_have_text("Locked: sized to your data")
    statuses = sizes.locator('td[aria-colindex="8"]')
    expect(statuses.filter(has_text=re.compile("needs|Sizes follow"))).to_have_count(0)
    shot(page, "cnn-05-build-fixed")

    # Train: 5 epochs of small batches, the live charts, then the result, well above chance (10%
    # for 10 classes; about 88% here, in a few seconds on one CPU thread).
    page.get_by_role("link", name="Next: train this model").click()
    # 40 epochs: a warm worker process trains 5 in well under a second, before a chart could show.
    for setting, value in (("epochs", "40"), ("batch_size", "8")):
        box = page.locator(f".st-key-train_{setting} input")
        box.fill(value)
        box.press("Enter")
        wait_idle(page)
        expect(box).to_have_value(value)
    page.get_by_role("button", name="Start training").click()
    wait_for_text(page, "Training: CNN (convolutional network) on digits.zip")  # the live panel
    expect(page.locator(".st-key-live_loss .js-plotly-plot").first).to_be_visible()  # drawn from the start
    expect(page.get_by_role("button", name="Pause")).to_be_visible()
    # The accuracy chart joins it when the first epoch ends. The epochs take well under a second
    # here (reading the pictures and the baseline take longer), so the picture may already show
    # the result's charts.
    page.locator(".st-key-live_metric .js-plotly-plot, .st-key-result_metric .js-plotly-plot").first.wait_for()
    shot(page, "cnn-06-train-live")
    wait_for_text(page, "Training finished", timeout=180_000)
    wait_idle(page)
    cards = page.locator('[data-testid="stMetric"]')
    epochs_run = int(cards.filter(has_text="Epochs run").locator('[data-testid="stMetricValue"]').inner_text())
    assert 1 <= epochs_run <= 40  # all 40, or fewer when early stopping saw no more progress
    test_accuracy = cards.filter(has_text="Test accuracy").locator('[data-testid="stMetricValue"]')
    expect(test_accuracy).to_have_text(re.compile(r"^\d+\.\d%$"))
    shot(page, "cnn-07-train-done")
    accuracy = float(test_accuracy.inner_text().rstrip("%"))
    assert accuracy > 50, f"test accuracy {accuracy}% on 10 classes, chance is 10%"


def test_a_server_killed_during_training_offers_to_resume_and_goes_on(browser, tmp_path):
    from builder.data import DataSpec
    from builder.templates import starter_spec
    from builder.train import TrainConfig
    from builder.workspace import Workspace

    # A workspace as the Data and Build pages leave it, with settings that train for a while.
    home = tmp_path / "home"
    home.mkdir()
    table = make_interaction_table(n=3000, seed=5, task="binary")
    workspace = Workspace.open(None, home=home)
    workspace.save_table("churn.csv", table.to_csv(index=False).encode())
    features = [c for c in table.columns if c != TARGET]
    workspace.save_state("data_spec", DataSpec(TARGET, "binary", features).to_dict())
    workspace.save_state("design", starter_spec("mlp", len(features), len(table)).to_dict())
    workspace.save_state("train_config", TrainConfig(epochs=400, batch_size=16, early_stopping_patience=None,
                                               seed=0).to_dict())
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_app(home, port)
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{url}/train?ws={workspace.token}")
        page.get_by_role("button", name="Start training").click()
        wait_for_epochs_done(page, 3)  # three epochs or more checkpointed, the next one running
        shot(page, "restart-01-training")

        process.kill()  # SIGKILL: the server says nothing; its workers stop at their next batch
        process.wait()
        process = start_app(home, port)
        page.goto(f"{url}/train?ws={workspace.token}")
        wait_for_text(page, "was interrupted after epoch")
        resume_button = page.get_by_role("button", name=re.compile(r"Resume from epoch \d+"))
        epoch = int(re.search(r"\d+", resume_button.inner_text()).group())
        assert 3 <= epoch < 400
        shot(page, "restart-02-interrupted")
        resume_button.click()
        wait_for_epochs_done(page, epoch + 2)  # it goes on past where it stopped
        shot(page, "restart-03-resumed")
        page.get_by_role("button", name="Stop").click()
        wait_for_text(page, "Training finished", timeout=120_000)
        shot(page, "restart-04-done")
        run = workspace.load_run(workspace.load_state("run_id"))
        assert run.history.epoch == list(range(1, len(run.history.epoch) + 1))  # no gap, no repeat
        assert len(run.history.epoch) >= epoch + 2
    finally:
        page.close()
        stop_app(process)
