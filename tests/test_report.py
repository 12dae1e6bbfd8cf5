"""The stakeholder report (``builder.report``): one self-contained HTML file, and its PDF.

Three small real runs (a table classification with a hostile column name and class label, a
regression, a forecast) are trained once for the file. The HTML must hold every section with the
run's own numbers, escape what came from the data, and load nothing from anywhere: checked in the
text, then in headless Chromium with every request recorded (the browser tests, marked like
tests/test_browser.py, also print the PDF).
"""

from __future__ import annotations

import dataclasses
import re
import stat
from pathlib import Path

import numpy as np
import pytest

from builder.data import DataSpec, profile_table, suggest_features
from builder.evaluate import HEADLINE_METRIC, format_metric
from builder.pipeline import train_model
from builder.report import (
    ReportError,
    build_report,
    find_chromium,
    markdown_html,
    nice_ticks,
    report_pdf,
    report_verdict,
)
from builder.train import TrainConfig
from builder.workspace import Workspace
from tests.app_helpers import button, open_page
from tests.kind_fixtures import forecast_run
from tests.tabular_fixtures import TARGET, make_interaction_table

HOSTILE_COLUMN = "<script>alert(1)</script>"
HOSTILE_CLASS = "<img src=x onerror=alert(2)>"
HOSTILE_SOURCE = "churn <2024> & co.csv"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SECTIONS = ("result", "data", "details", "design", "training", "card")
# Anything that would fetch: an http(s) or protocol-relative address in src/href/action/poster, a CSS
# url() or @import, a <script>, <link>, <iframe>, <object> or <embed>.
FETCHING = re.compile(r"""(?:src|href|action|poster|srcset)\s*=\s*["']?\s*(?:https?:|//)|url\(\s*["']?\s*(?:https?:|//)"""
                      r"""|@import|<script|<link|<iframe|<object|<embed""", re.I)


def small_table(task: str, n: int) -> tuple:
    df = make_interaction_table(n=n, seed=0, task=task).rename(columns={"region": HOSTILE_COLUMN})
    if task == "binary":
        df[TARGET] = df[TARGET].replace({"stayed": HOSTILE_CLASS})
    return df, DataSpec(TARGET, task, suggest_features(profile_table(df), TARGET))


@pytest.fixture(scope="module")
def table_run():
    """A yes/no model of a table with a hostile column name and class label (trained once)."""
    df, data_spec = small_table("binary", 500)
    trained = train_model(df, data_spec, TrainConfig(epochs=5, lr=0.01, seed=0))
    trained.info["source"] = HOSTILE_SOURCE
    return df, data_spec, trained


@pytest.fixture(scope="module")
def regression_run():
    df, data_spec = small_table("regression", 400)
    return train_model(df, data_spec, TrainConfig(epochs=2, seed=0))


@pytest.fixture(scope="module")
def table_html(table_run) -> str:
    return build_report(table_run[2])


def section(html: str, key: str) -> str:
    """The HTML of one ``<section id=key>``."""
    found = re.search(rf'<section id="{key}">(.*?)</section>', html, re.S)
    assert found, f"no section {key!r}"
    return found.group(1)


def text_of(html: str) -> str:
    """The visible text, tags dropped (entities kept)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --- what the report says -----------------------------------------------------------------------------


def test_a_table_report_holds_every_section_with_the_runs_own_numbers(table_run, table_html):
    _, data_spec, trained = table_run
    html = table_html
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    for key in (*SECTIONS, "threshold"):
        section(html, key)
    assert 'id="explanations"' not in html  # none given, none kept with the run
    result = section(html, "result")
    headline = HEADLINE_METRIC["binary"]
    test, base = trained.metrics["test"], trained.baseline.metrics
    for metric, value in test.items():  # every test metric, formatted as the Evaluate page shows it
        assert f'<div class="value">{format_metric(metric, value)}</div>' in result, metric
        assert f"Baseline: {format_metric(metric, base[metric])}" in result
    assert 'class="card headline"><div class="label">Accuracy' in result
    assert trained.baseline.name in result
    sentence, better = report_verdict(trained)
    assert format_metric(headline, test[headline]) in sentence
    assert sentence.replace("'", "&#x27;") in result
    assert ('class="verdict good"' if better else 'class="verdict warn"') in result
    data = text_of(section(html, "data"))
    rows = trained.info["rows"]
    assert f"{rows['train']:,} train" in data and f"{rows['test']:,} test" in data
    assert "One of two classes; binary classification" in data
    for column in data_spec.features:
        assert column.replace("<", "&lt;").replace(">", "&gt;") in data
    threshold = section(html, "threshold")
    assert 'above <b class="num">0.5</b>' in threshold and "churned" in threshold  # churned: the second class
    design = section(html, "design")
    n_params = sum(p.numel() for p in trained.model.parameters())
    assert f"<td class=\"num\">{n_params:,}</td></tr></tfoot>" in design  # the table's total is the network's
    assert "<svg class=\"diagram\"" in design and "Output layer" in design
    training = section(html, "training")
    assert f"model kept (epoch {trained.history.best_epoch})" in training
    assert training.count("<svg class=\"chart\"") == 2  # the loss and the accuracy per epoch
    runs = trained.history.epochs_run
    assert f"<b>{runs}</b> {'epoch' if runs == 1 else 'epochs'}" in training
    card = section(html, "card")
    assert "Limits</h4>" in card and "What it does</h4>" in card
    assert "How to use it" not in card and "predict.py input.csv" not in card  # the bundle's part is left out
    details = section(html, "details")
    assert '<table class="matrix">' in details and "Precision" in details


def test_hostile_names_from_the_data_are_escaped_everywhere(table_html):
    html = table_html
    for raw in (HOSTILE_COLUMN, HOSTILE_CLASS, HOSTILE_SOURCE, "<img", "<script"):
        assert raw not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "churn &lt;2024&gt; &amp; co.csv" in html
    assert "<title>Predicting &#x27;target&#x27;</title>" in html


def test_a_report_loads_nothing_from_anywhere(table_html, regression_run):
    for html in (table_html, build_report(regression_run), build_report(forecast_run())):
        assert not FETCHING.search(html), FETCHING.search(html).group(0)
        assert "http://" not in html and "https://" not in html  # not even the SVG namespace
        assert "<style>" in html and html.count("<style>") == 1  # the look is inline


def test_a_typical_table_report_is_small(table_html):
    size = len(table_html.encode("utf-8"))
    assert 10_000 < size < 120_000, size  # inline SVG charts: tens of KB, not plotly.js's 4.8 MB


def test_a_regression_report_draws_predictions_against_the_truth(regression_run):
    trained = regression_run
    html = build_report(trained, title="Monthly fee & churn <draft>")
    assert "<h1>Monthly fee &amp; churn &lt;draft&gt;</h1>" in html
    assert 'id="threshold"' not in html  # only yes/no models have one
    result = section(html, "result")
    assert f'<div class="value">{format_metric("rmse", trained.metrics["test"]["rmse"])}</div>' in result
    assert trained.baseline.name in result
    details = section(html, "details")
    assert details.count('<svg class="chart"') == 2  # predicted vs actual, and the spread of the misses
    assert "Predicted target" in details and "Half of the test predictions are within" in details
    misses = np.abs(np.asarray(trained.test_results["actual"]) - np.asarray(trained.test_results["predicted"]))
    assert f"<b>{format_metric('mae', float(np.quantile(misses, 0.5)))}</b>" in details
    assert "Typical error, RMSE" in section(html, "training")


def test_a_forecast_report_draws_the_test_period_against_simple_forecasts():
    trained = forecast_run()
    html = build_report(trained)
    result = section(html, "result")
    assert f'<div class="value">{format_metric("rmse", trained.metrics["test"]["rmse"])}</div>' in result
    assert trained.baseline.name in result
    sentence, _ = report_verdict(trained)
    assert sentence in result
    details = section(html, "details")
    assert "Network, 1 step ahead" in details and "Actual" in details
    for name in trained.info["forecast_baselines"]:
        assert f"<td>{name.capitalize()}</td>" in details
    assert re.search(r">2024-\d\d-\d\d<", details)  # a time axis, dated
    assert "side path" in section(html, "design")  # the LSTM's linear side path is drawn


# --- explanations and the threshold --------------------------------------------------------------------


@dataclasses.dataclass
class ColumnImportance:
    """What ``builder.explain.column_importance`` returns, one per column."""

    column: str
    importance: float
    spread: float
    sentence: str


def test_explanations_come_as_dataclasses_or_dicts_strongest_first(table_run):
    trained = table_run[2]
    items = [ColumnImportance("plan", 0.05, 0.01, "Plan matters a little."),
             ColumnImportance(HOSTILE_COLUMN, 0.2, 0.02, f"{HOSTILE_COLUMN} matters most.")]
    explained = section(build_report(trained, importance=items), "explanations")
    assert explained.index("&lt;script&gt;") < explained.index("plan")  # sorted, escaped
    assert "0.2 ± 0.02" in explained and "Plan matters a little." in explained
    as_dicts = [dataclasses.asdict(i) for i in items]
    kept = dataclasses.replace(trained, info={**trained.info, "explanations": as_dicts})
    assert section(build_report(kept), "explanations") == explained  # what the Evaluate page keeps
    with pytest.raises(ReportError, match="needs a 'column' and a numeric 'importance'"):
        build_report(trained, importance=[{"column": "plan", "importance": "high"}])


def test_a_chosen_threshold_changes_the_answers_counted(table_run):
    trained = table_run[2]
    proba = np.asarray(trained.test_results["probabilities"])[:, 1]
    for threshold in (0.3, 0.7):
        html = build_report(trained, threshold=threshold)
        said = int(np.sum(proba > threshold))
        part = text_of(section(html, "threshold"))
        assert f"above {threshold:g}" in part
        assert f"for {said:,} of them" in part if said else "for none of them" in part
        assert f"use {threshold:g}." in part  # says the cards above used the model's own 0.5
    kept = dataclasses.replace(trained, info={**trained.info, "threshold": 0.7})
    assert 'above <b class="num">0.7</b>' in build_report(kept)
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(ReportError, match="between 0 and 1"):
            build_report(trained, threshold=bad)


# --- in Chinese -----------------------------------------------------------------------------------------

# Words a Chinese report keeps in Latin letters: abbreviations, the library and optimizer names, the
# model card's file name; the run's own names (columns, classes, layers, the file) are added per run.
LATIN_WORDS = {"ROC", "AUC", "MAE", "RMSE", "CPU", "MLP", "scikit", "learn", "adam", "README", "md"}
WORD = re.compile(r"[A-Za-z][A-Za-z'’]*[A-Za-z]")


def english_words(html: str, allowed: set[str]) -> list[tuple[str, str]]:
    """``(word, its context)`` for each English word a reader sees outside ``allowed`` (the look and
    the model card's English text left out; titles and labels of charts and cells included)."""
    html = re.sub(r"<style>.*?</style>", " ", html, flags=re.S)
    html = re.sub(r'<div class="card-text" lang="en">.*?</section>', "</section>", html, flags=re.S)
    html = re.sub(r'(<span title="[^"]*">)[^<]*</span>', r"\1</span>", html)  # a shortened label: its title has it
    shown = " ".join(re.findall(r'(?:title|aria-label|alt)="([^"]*)"', html)) + " " + re.sub(r"<[^>]+>", " ", html)
    text = re.sub(r"\s+", " ", shown.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
                  .replace("&#x27;", "'").replace("&quot;", '"'))
    allowed_lower = {word.lower() for word in allowed}
    return [(m.group(0), text[max(0, m.start() - 40):m.end() + 40]) for m in WORD.finditer(text)
            if m.group(0).lower() not in allowed_lower]


def names_of(trained) -> set[str]:
    """The words of the run's own names, which stay as they are in any language."""
    names = [*trained.data_spec.features, trained.data_spec.target, *trained.preprocessor.classes,
             trained.info.get("source", ""), *(layer.type for layer in trained.spec.layers)]
    return {word for name in names for word in WORD.findall(str(name))}


@pytest.fixture(scope="module")
def table_html_zh(table_run) -> str:
    return build_report(table_run[2], lang="zh")


def test_a_chinese_report_has_no_english_words_but_the_runs_names(table_run, table_html_zh):
    trained = table_run[2]
    html = table_html_zh
    assert html.startswith('<!DOCTYPE html>\n<html lang="zh-Hans">')
    for key in (*SECTIONS, "threshold"):
        section(html, key)
    leftover = english_words(html, LATIN_WORDS | names_of(trained))
    assert not leftover, leftover[:20]
    assert re.search(r"<p class=\"meta\">[^<]*\d{4}年\d{1,2}月\d{1,2}日", html)  # the date as Chinese writes it
    assert "Noto Sans CJK SC" in html  # a font with Chinese glyphs first, for the screen and the PDF
    n_params = sum(p.numel() for p in trained.model.parameters())
    assert f"<td class=\"num\">{n_params:,}</td></tr></tfoot>" in html  # the same numbers as in English
    # The model card stays English (it travels with the model), under a Chinese heading.
    card = section(html, "card")
    assert "<h2>模型卡</h2>" in card and "What it does</h4>" in card and '<div class="card-text" lang="en">' in card


def test_a_chinese_report_carries_the_same_numbers_and_escapes_the_same_names(table_run, table_html_zh):
    trained, html = table_run[2], table_html_zh
    result = section(html, "result")
    for metric, value in trained.metrics["test"].items():
        assert f'<div class="value">{format_metric(metric, value)}</div>' in result, metric
    for raw in (HOSTILE_COLUMN, HOSTILE_CLASS, HOSTILE_SOURCE):
        assert raw not in html
    assert "<title>预测 &#x27;target&#x27;</title>" in html
    assert f"保留的模型（第 {trained.history.best_epoch} 轮）" in section(html, "training")


def test_english_is_the_default_and_an_unknown_language_falls_back_to_it(table_run, table_html):
    trained = table_run[2]
    assert build_report(trained, lang="en") == table_html == build_report(trained, lang="xx")
    assert table_html.startswith('<!DOCTYPE html>\n<html lang="en">')
    assert not re.search(r"[\u3400-\u9fff]", table_html)  # not a Chinese character, the font list included


# --- small parts ------------------------------------------------------------------------------------


def test_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0.655, 0.681) == pytest.approx([0.65, 0.66, 0.67, 0.68, 0.69])
    assert nice_ticks(0.655, 0.68) == pytest.approx([0.655, 0.66, 0.665, 0.67, 0.675, 0.68])
    assert nice_ticks(0, 37, integer=True) == [0, 10, 20, 30, 40]
    assert nice_ticks(3, 3)[0] <= 3 <= nice_ticks(3, 3)[-1]


def test_the_card_markdown_becomes_escaped_html():
    html = markdown_html("## Data\n\n| Column | Read as |\n|---|---|\n| `<b>` | numeric |\n\n- **one** & two\n"
                         "```\npython predict.py <x>\n```")
    assert "<h4>Data</h4>" in html
    assert "<td><code>&lt;b&gt;</code></td><td>numeric</td>" in html and "---" not in html
    assert "<li><b>one</b> &amp; two</li>" in html
    assert "<pre><code>python predict.py &lt;x&gt;</code></pre>" in html


# --- PDF ----------------------------------------------------------------------------------------------


def fake_browser(folder: Path, body: str) -> str:
    path = folder / "fake-chromium"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_without_chromium_there_is_no_pdf(monkeypatch, tmp_path):
    monkeypatch.setattr("builder.report.pdf.shutil.which", lambda name: None)
    assert find_chromium() is None
    assert report_pdf("<html></html>", tmp_path / "r.pdf") is None
    assert not (tmp_path / "r.pdf").exists()


def test_a_failing_or_hung_chromium_gives_a_plain_sentence(tmp_path):
    failing = fake_browser(tmp_path, "echo 'cannot open display' >&2; exit 3")
    with pytest.raises(ReportError, match=r"could not print the report to PDF \(exit code 3: cannot open display\)"):
        report_pdf("<html></html>", tmp_path / "r.pdf", chromium=failing)
    hung = fake_browser(tmp_path, "sleep 30")
    with pytest.raises(ReportError, match="took longer than 1 s and was stopped. Download the HTML report"):
        report_pdf("<html></html>", tmp_path / "r.pdf", chromium=hung, timeout=1)
    assert not (tmp_path / "r.pdf").exists()


@pytest.mark.browser
def test_the_report_prints_to_a_pdf(table_html, tmp_path):
    if find_chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    out = report_pdf(table_html, tmp_path / "nested" / "report.pdf")
    assert out == tmp_path / "nested" / "report.pdf"
    data = out.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 10_000
    assert data.count(b"/Type /Page") - data.count(b"/Type /Pages") >= 3  # A4 pages: more than one


# --- in a real browser --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.mark.slow
@pytest.mark.browser
def test_the_saved_report_opens_offline_without_a_request_or_an_error(browser, table_html, tmp_path):
    path = tmp_path / "report.html"
    path.write_text(table_html, encoding="utf-8")
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    requests, errors = [], []

    def record(route):
        requests.append(route.request.url)
        if route.request.url == path.as_uri():
            route.continue_()
        else:
            route.abort()

    page.route("**/*", record)
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    assert set(requests) <= {path.as_uri()}, requests  # nothing but the file itself
    assert not errors, errors
    headings = page.locator("h2").all_inner_texts()
    assert headings[:3] == ["The result", "The data", "The decision threshold"]
    assert headings[-1] == "Model card"
    assert page.locator("svg.chart").count() == 2 and page.locator("svg.diagram").count() == 1
    assert page.evaluate("() => document.scripts.length") == 0
    assert page.title() == "Predicting 'target'"
    # Nothing wider than the page, on screen and on an A4 sheet (794 px at 96 dpi).
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1100
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    page.emulate_media(media="print")
    page.set_viewport_size({"width": 700, "height": 1000})
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 700
    page.screenshot(path=str(tmp_path / "report-print.png"), full_page=True)
    page.close()
    assert (tmp_path / "report.png").stat().st_size > 50_000


# --- on the Export page -------------------------------------------------------------------------------


def test_the_export_page_offers_the_report_in_one_click(app, builder_home, table_run):
    df, data_spec, trained = table_run
    workspace = Workspace.open(None, home=builder_home)
    workspace.save_table("churn.csv", df.to_csv(index=False).encode())
    workspace.save_state("data_spec", data_spec.to_dict())
    workspace.save_state("run_id", workspace.save_run(trained, "MLP on churn"))
    at = open_page(app, workspace, "pages/export.py")
    assert not at.exception, at.exception
    assert any("prints on A4" in c.value for c in at.caption)
    html = [b for b in at.get("download_button") if b.proto.label == "Download the report (HTML)"]
    assert html and not at.warning and not at.error  # ready before any click: one click downloads it
    made = at.session_state["export_report"]
    assert made.html.decode().startswith("<!DOCTYPE html>") and trained.baseline.name in made.html.decode()
    if find_chromium() is not None:
        at = button(at, "Make a PDF of it").click().run()
        assert not at.exception, at.exception
        assert "Download the report (PDF)" in [b.proto.label for b in at.get("download_button")]
        assert at.session_state["export_report"].pdf.startswith(b"%PDF")
    at.run()  # a rerun keeps the report without making it again
    assert at.session_state["export_report"] is made or at.session_state["export_report"].key == made.key
