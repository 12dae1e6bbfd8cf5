"""AppTest of the Explain part of the Evaluate page (``pages/components/explain_view.py``).

The section runs in a two-line page script written to the test's folder (``explain_section(app_state())``),
opened with the workspace's token in the URL like a bookmark; ``app_state`` restores the run from it.
"""

from __future__ import annotations

import base64
import functools
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import pages.components.explain_view as explain_view
from builder.data import SAMPLES, DataSpec, load_sample
from builder.pipeline import train_model
from builder.templates import starter_spec
from builder.train import TrainConfig
from builder.trained import TrainedModel
from builder.workspace import Workspace
from tests import kind_fixtures

EXPLAIN_PAGE = """
from pages.components.explain_view import explain_section
from pages.components.state import app_state

explain_section(app_state())
"""
PRESENT_PAGE = EXPLAIN_PAGE.replace("explain_section", "present_explanations")


@functools.cache
def sample_run(sample: str, epochs: int = 40) -> TrainedModel:
    """A run on a sample table, trained once per test process (as ``trained_workspace`` trains it)."""
    info, df = SAMPLES[sample], load_sample(sample)
    features = [c for c in df.columns if c != info.target]
    return train_model(df, DataSpec(info.target, info.task, features), TrainConfig(epochs=epochs, lr=0.01, seed=0),
                       spec=starter_spec("mlp", len(features), len(df)))


def workspace_with(home: Path, trained: TrainedModel) -> Workspace:
    """A workspace holding ``trained`` as its current run, as the Train page leaves it."""
    workspace = Workspace.open(None, home=home)
    workspace.save_state("run_id", workspace.save_run(trained, "test run"))
    return workspace


def open_section(folder: Path, token: str, script: str = EXPLAIN_PAGE, param: str = "ws") -> AppTest:
    path = folder / f"page_{abs(hash(script))}.py"
    path.write_text(script, encoding="utf-8")
    at = AppTest.from_file(str(path), default_timeout=60)
    at.query_params[param] = token
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def traces(at: AppTest, name: str) -> list[dict]:
    return [t for chart in at.get("plotly_chart") for t in json.loads(chart.proto.spec)["data"] if t.get("name") == name]


def numbers(array) -> np.ndarray:
    """A plotly array as numpy (plotly sends numpy arrays as base64 ``bdata``)."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
    return np.asarray(array, dtype=np.float64)


def files_of(home: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(home)): (p.stat().st_mtime_ns, p.stat().st_size) for p in home.rglob("*") if p.is_file()}


def counting(monkeypatch, name: str) -> list[int]:
    """Count the calls of an engine function as the explain view calls it."""
    calls: list[int] = []
    original = getattr(explain_view, name)

    def wrapper(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(explain_view, name, wrapper)
    return calls


def test_importance_bars_per_column_are_saved_once_and_reruns_recompute_nothing(builder_home, tmp_path, monkeypatch):
    trained = sample_run("iris")
    workspace = workspace_with(builder_home, trained)
    run_id = workspace.load_state("run_id")
    saves: list[str] = []
    update_run = Workspace.update_run
    monkeypatch.setattr(Workspace, "update_run", lambda self, t, rid: (saves.append(rid), update_run(self, t, rid))[1])
    importance_calls, row_calls = counting(monkeypatch, "column_importance"), counting(monkeypatch, "explain_row")

    at = open_section(tmp_path, workspace.token)
    bars = traces(at, "Importance")
    assert len(bars) == 1 and bars[0]["orientation"] == "h"
    assert sorted(bars[0]["y"]) == sorted(trained.preprocessor.features)  # one bar per original column
    assert len(numbers(bars[0]["error_x"]["array"])) == len(bars[0]["y"])
    sentences = next(m.value for m in at.markdown if "Shuffling" in m.value).splitlines()
    assert len(sentences) == 3 and sentences[0].endswith("the model leans on it most.")

    kept = workspace.load_run(run_id).info["explanations"]  # in the saved run, for the report
    assert [k["column"] for k in kept] == bars[0]["y"][::-1]
    assert {"column", "importance", "spread", "sentence"} <= set(kept[0])
    at.run()
    at.run()
    assert not at.exception
    assert saves == [run_id] and importance_calls == [1] and row_calls == [1]
    assert traces(at, "Importance")[0]["y"] == bars[0]["y"]


def test_row_picker_starts_at_the_worst_mistake_and_changes_the_attributions(builder_home, tmp_path):
    trained = sample_run("iris")
    workspace = workspace_with(builder_home, trained)
    at = open_section(tmp_path, workspace.token)
    picker = at.selectbox(key=f"explain_row_{workspace.load_state('run_id')}")
    results = trained.test_results
    n = len(results["rows"][trained.preprocessor.features[0]])
    wrong = [i for i in range(n) if results["actual"][i] != results["predicted"][i]]
    assert picker.value == (max(wrong, key=lambda i: max(results["probabilities"][i])) if wrong else 0)
    assert len(picker.options) == n and "is " in picker.options[0] and "model said" in picker.options[0]

    before = traces(at, "Push")[0]
    other = next(i for i in range(n) if results["predicted"][i] != results["predicted"][picker.value])
    picker.set_value(other).run()
    assert not at.exception and not at.error
    after = traces(at, "Push")[0]
    assert after["y"] != before["y"] or not np.allclose(numbers(after["x"]), numbers(before["x"]))
    run_id = workspace.load_state("run_id")
    explained = at.selectbox(key=f"explain_class_{run_id}_{other}").value  # the row's own answer
    assert trained.preprocessor.classes[explained] == results["predicted"][other]
    at.toggle(key=f"explain_method_{run_id}").set_value(True).run()  # the second opinion: Shapley sampling
    assert not at.exception and not at.error
    assert any("Method: Shapley value sampling" in c.value for c in at.caption)


def test_what_if_moves_the_prediction_when_the_most_important_column_changes(builder_home, tmp_path):
    trained = sample_run("iris")
    workspace = workspace_with(builder_home, trained)
    at = open_section(tmp_path, workspace.token)
    top = traces(at, "Importance")[0]["y"][-1]  # the most important column (top bar)
    field = next(n for n in at.number_input if n.label == top)
    values = load_sample("iris")[top]
    field.set_value(float(values.max() if field.value < values.median() else values.min()))
    next(b for b in at.button if b.label == "See the new prediction").click().run()
    assert not at.exception and not at.error
    cards = [m for m in at.metric if m.label.startswith("Probability of")]
    assert len(cards) == 3  # the chosen row, then "as it is" and "with your changes"
    assert cards[0].value == cards[1].value and not cards[1].proto.delta
    moved = cards[2].proto.delta  # the same class's probability, moved by the change
    assert moved.endswith(" points") and abs(float(moved.split(" ")[0])) > 5.0
    assert any(m.value.startswith("Changed: ") and top in m.value for m in at.caption)
    assert len(traces(at, "Push")) == 3  # the chosen row's bars, then before and after side by side


@pytest.mark.parametrize("kind", ["regression", "text", "images", "forecast", "anomaly"])
def test_other_runs_render_without_error(builder_home, tmp_path, kind):
    trained = {"regression": lambda: sample_run("diabetes", epochs=60), "text": kind_fixtures.text_run,
               "images": kind_fixtures.image_run, "forecast": kind_fixtures.forecast_run,
               "anomaly": kind_fixtures.anomaly_run}[kind]()
    at = open_section(tmp_path, workspace_with(builder_home, trained).token)
    if kind == "regression":
        assert traces(at, "Importance") and traces(at, "Push") and traces(at, "Average")
        assert at.number_input  # the what-if form
    elif kind == "text":
        assert traces(at, "Push") and any("<span" in m.value for m in at.markdown)  # the words, highlighted
    elif kind == "images":
        assert traces(at, "Picture") and traces(at, "Push")[0]["type"] == "heatmap"
    elif kind == "forecast":  # the last test window, rebuilt from the run's kept values
        assert traces(at, "Push on the forecast")
        shown = float(next(m for m in at.metric if m.label == "Forecast").value.replace(",", ""))
        assert shown == pytest.approx(trained.test_results["predicted"][-1][0], rel=1e-3)
    else:
        assert traces(at, "Push") and not traces(at, "Importance") and "no right answers" in at.info[0].value
    if kind in ("text", "images", "forecast"):
        assert any("columns of a table" in i.value for i in at.info)


def test_a_view_only_link_shows_everything_and_writes_nothing(builder_home, tmp_path):
    owner = workspace_with(builder_home, sample_run("iris"))
    token = owner.share_link()
    assert Workspace.open_shared(token).read_only
    before = files_of(builder_home)
    at = open_section(tmp_path, token, param="view")
    state = at.session_state["app"]
    assert state.workspace.read_only
    assert traces(at, "Importance") and traces(at, "Push") and traces(at, "Average")
    next(b for b in at.button if b.label == "See the new prediction").click().run()
    assert not at.exception and not at.error
    present = open_section(tmp_path, token, PRESENT_PAGE, param="view")
    assert traces(present, "Importance") and any(b.label == "See the new prediction" for b in present.button)
    assert "explanations" not in state.trained.info
    assert files_of(builder_home) == before
