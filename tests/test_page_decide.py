"""AppTest of the Decide part of the Evaluate page (``pages/components/decide_view.py``).

The section is drawn by a one-line page (``decide_section(app_state())``) in the workspace of a
saved run, as the Train page leaves it. Every number it shows is checked against ``builder.decide``
on the same rows: thresholds on the validation rows, segments and cells on the kept test rows.
"""

from __future__ import annotations

import copy
import functools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from builder import decide
from builder.data import SAMPLES, DataSpec, load_sample
from builder.data.preprocess import label_value
from builder.evaluate import confusion
from builder.pipeline import train_model
from builder.templates import starter_spec
from builder.train import TrainConfig
from builder.trained import TrainedModel
from builder.workspace import Workspace
from tests.app_helpers import button


def decide_page() -> None:
    """The page under test: only the Decide section (AppTest runs this function's body as a script)."""
    from pages.components.decide_view import decide_section
    from pages.components.state import app_state

    decide_section(app_state())


@functools.cache
def sample_run(sample: str) -> TrainedModel:
    """A small MLP trained once per test process on a sample table (a few seconds)."""
    info, df = SAMPLES[sample], load_sample(sample)
    features = [c for c in df.columns if c != info.target]
    return train_model(df, DataSpec(info.target, info.task, features), TrainConfig(epochs=8, lr=0.01, seed=0),
                       spec=starter_spec("mlp", len(features), len(df)))


def saved_workspace(home: Path, sample: str) -> tuple[Workspace, str]:
    workspace = Workspace.open(None, home=home)
    run_id = workspace.save_run(copy.deepcopy(sample_run(sample)), f"MLP on {sample}")
    workspace.save_state("run_id", run_id)
    return workspace, run_id


def open_decide(param: str, token: str) -> AppTest:
    at = AppTest.from_function(decide_page, default_timeout=60)
    at.query_params[param] = token
    at.run()
    assert not at.exception, at.exception
    return at


def run(changed) -> AppTest:
    """Rerun after a change (an element's ``set_value``/``click``, or the app); no error may show."""
    at = changed.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def table(at: AppTest, column: str) -> pd.DataFrame:
    """The shown table with a column named ``column`` (tables carry no key in AppTest)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def cards(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def val_inputs(run: TrainedModel):
    return decide.binary_inputs(run.test_results["val"], run.preprocessor.classes)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def cancer(builder_home):
    workspace, run_id = saved_workspace(builder_home, "breast_cancer")
    return workspace, run_id, open_decide("ws", workspace.token)


def test_the_slider_shows_what_the_engine_gives_on_the_validation_rows(cancer):
    _, run_id, at = cancer
    actual, probability, positive = val_inputs(sample_run("breast_cancer"))
    sweep = decide.threshold_sweep(actual, probability, positive)[1:-1]  # 0.01 ... 0.99
    low = min(sweep, key=lambda p: (p.recall < 1, -p.recall, p.precision))  # most found
    high = max(sweep, key=lambda p: (p.precision, -p.recall))  # fewest false alarms
    slider = at.slider(key=f"decide_threshold_{run_id}")
    assert slider.value == 0.5  # the model's own threshold to start with
    assert "validation rows" in at.caption[0].value and "never picked on the test rows" in at.caption[0].value
    shown = []
    for threshold in (low.threshold, high.threshold, 0.5):
        run(slider.set_value(threshold))
        expected = decide.at_threshold(actual, probability, threshold, positive)
        assert cards(at) == {"Precision": pct(expected.precision), "Recall": pct(expected.recall),
                             "F1": pct(expected.f1)}
        counts = table(at, f"Model says {positive}")
        assert counts.to_numpy().tolist() == [[expected.tn, expected.fp], [expected.fn, expected.tp]]
        shown.append((cards(at)["Precision"], cards(at)["Recall"], counts.to_numpy().tolist()))
    if (low.tp, low.fp) != (high.tp, high.fp):  # the data lets two thresholds differ: so does the page
        assert shown[0] != shown[1]
    # The test curves are drawn, each with its reading.
    assert {"ROC", "Precision and recall", "Gain and lift", "Calibration"} <= {t.label for t in at.tabs}
    assert any(c.value.startswith("AUC ") for c in at.caption)
    assert any(c.value.startswith("Brier score ") for c in at.caption)


def test_costs_give_the_engines_cheapest_threshold_and_using_it_saves_the_run(cancer):
    workspace, run_id, at = cancer
    workspace.save_state("bundle", {"run_id": run_id})  # a bundle built before
    actual, probability, positive = val_inputs(sample_run("breast_cancer"))
    at.number_input(key="decide_cost_fp").set_value(1.0)
    run(at.number_input(key="decide_cost_fn").set_value(5.0))
    cheapest = decide.cheapest_threshold(actual, probability, positive, 1.0, 5.0)
    text = next(m.value for m in at.markdown if m.value.startswith("Cheapest threshold:"))
    assert text.startswith(f"Cheapest threshold: **{cheapest.threshold:g}** (")
    target = min(max(cheapest.threshold, 0.01), 0.99)
    slider = at.slider(key=f"decide_threshold_{run_id}")
    if not math.isclose(target, slider.value):
        run(at.button(key="decide_to_cost").click())
    assert at.slider(key=f"decide_threshold_{run_id}").value == target
    if math.isclose(target, 0.5):  # already the model's threshold: "Use" is greyed out, nothing to store
        assert button(at, "Use this threshold").disabled
        return
    run(button(at, "Use this threshold").click())
    assert "Predict page, the export and the model card" in at.success[0].value
    saved = workspace.load_run(run_id).preprocessor
    assert saved.decision_threshold == target
    assert saved.decision_threshold_chosen == ("on the validation rows for the lowest cost "
                                              "(false alarm 1, missed case 5)")
    assert workspace.load_state("bundle") is None  # the old bundle is stale
    assert at.session_state["app"].trained.preprocessor.decision_threshold == target
    assert f"The model's threshold now: **{target:g}**" in " ".join(c.value for c in at.caption)


def test_a_threshold_set_by_hand_is_stored_with_where_it_was_chosen(cancer):
    workspace, run_id, at = cancer
    run(at.slider(key=f"decide_threshold_{run_id}").set_value(0.37))
    assert not button(at, "Use this threshold").disabled
    run(button(at, "Use this threshold").click())
    saved = workspace.load_run(run_id).preprocessor
    assert saved.decision_threshold == 0.37
    assert "validation rows" in saved.decision_threshold_chosen
    assert button(at, "Use this threshold").disabled  # the slider stands on the model's threshold now


def test_a_view_only_link_can_try_thresholds_but_not_use_them(builder_home):
    owner, run_id = saved_workspace(builder_home, "breast_cancer")
    share = owner.share_link()  # written by the owner, before the viewer comes
    before = files(owner.root)
    at = open_decide("view", share)
    assert not [b for b in at.button if b.label == "Use this threshold"]
    run(at.slider(key=f"decide_threshold_{run_id}").set_value(0.3))
    actual, probability, positive = val_inputs(sample_run("breast_cancer"))
    assert cards(at)["Recall"] == pct(decide.at_threshold(actual, probability, 0.3, positive).recall)
    assert any("view-only link" in c.value for c in at.caption)
    assert files(owner.root) == before


def test_segments_of_a_table_match_the_engine(cancer):
    _, run_id, at = cancer
    trained = sample_run("breast_cancer")
    results = trained.test_results
    column = "mean radius"
    run(at.selectbox(key=f"decide_segment_column_{run_id}").set_value(column))
    segments = table(at, "Clearly weaker")
    expected = decide.segment_metrics("binary", results["actual"], results["predicted"], results["rows"][column],
                                      probabilities=results["probabilities"], classes=trained.preprocessor.classes,
                                      column=column)
    assert list(segments.columns) == ["Segment", "Rows", "Accuracy", "Difference to all rows", "Clearly weaker", "Why"]
    assert segments["Segment"].tolist() == [s.label for s in expected.segments]
    assert segments["Rows"].sum() == expected.rows
    overall = expected.overall["accuracy"] * 100
    np.testing.assert_allclose(segments["Accuracy"], [s.metrics["accuracy"] * 100 for s in expected.segments])
    np.testing.assert_allclose(segments["Difference to all rows"], segments["Accuracy"] - overall)
    assert segments["Clearly weaker"].tolist() == [s.weak for s in expected.segments]
    texts = [c.value for c in at.caption] + [w.value for w in at.warning]
    assert any(expected.summary in text for text in texts)
    assert at.get("plotly_chart")


def test_the_rows_behind_a_cell_are_those_of_the_cell(cancer):
    _, run_id, at = cancer
    results = sample_run("breast_cancer").test_results
    classes = [str(c) for c in sample_run("breast_cancer").preprocessor.classes]
    counts = confusion(results["actual"], results["predicted"], classes).counts
    off = counts.copy()
    np.fill_diagonal(off, -1)
    if off.max() > 0:  # the biggest mix-up is the default cell
        i, j = np.unravel_index(np.argmax(off), off.shape)
        assert at.selectbox(key=f"decide_cell_actual_{run_id}").value == classes[i]
        assert at.selectbox(key=f"decide_cell_predicted_{run_id}").value == classes[j]
    for really, said in ((classes[1], classes[1]), (classes[1], classes[0]), (classes[0], classes[1])):
        at.selectbox(key=f"decide_cell_actual_{run_id}").set_value(really)
        run(at.selectbox(key=f"decide_cell_predicted_{run_id}").set_value(said))
        count = int(counts[classes.index(really), classes.index(said)])
        assert f"**{count:,}** test rows are really **{really}** and the model said **{said}**" in \
            " ".join(m.value for m in at.markdown)
        if not count:
            assert any("No kept test row" in c.value for c in at.caption)
            continue
        shown = table(at, "Model said")
        assert len(shown) == count
        assert set(shown["Really"]) == {really} and set(shown["Model said"]) == {said}
        # They are the very rows: their inputs are those of the matching kept test rows.
        keys = np.asarray([str(label_value(v)) for v in results["actual"]]), \
            np.asarray([str(label_value(v)) for v in results["predicted"]])
        rows = pd.DataFrame(results["rows"])[(keys[0] == really) & (keys[1] == said)]
        assert sorted(shown["mean radius"]) == sorted(rows["mean radius"])


def test_multiclass_and_regression_runs_render(builder_home):
    iris, _ = saved_workspace(builder_home, "iris")
    at = open_decide("ws", iris.token)
    assert not at.error
    assert any("chooses among 3 classes" in c.value for c in at.caption)
    assert table(at, "Clearly weaker")["Rows"].sum() > 0
    assert at.selectbox(key=f"decide_cell_actual_{iris.load_state('run_id')}").options

    diabetes, run_id = saved_workspace(builder_home, "diabetes")
    at = open_decide("ws", diabetes.token)
    assert not at.error
    assert any("predicts a number" in c.value for c in at.caption)
    assert "Typical error (RMSE)" in table(at, "Clearly weaker").columns
    worst = table(at, "Error (actual − predicted)")
    assert len(worst) == 10
    errors = worst["Error (actual − predicted)"].abs().to_numpy()
    assert (np.diff(errors) <= 1e-9).all()  # the largest first
    run(at.slider(key=f"decide_worst_{run_id}").set_value(20))
    assert len(table(at, "Error (actual − predicted)")) == 20


def test_a_text_model_shows_the_kept_mistakes_of_a_cell(builder_home):
    from tests.kind_fixtures import text_run

    trained = text_run()
    workspace = Workspace.open(None, home=builder_home)
    run_id = workspace.save_run(copy.deepcopy(trained), "texts")
    workspace.save_state("run_id", run_id)
    at = open_decide("ws", workspace.token)
    assert any("split the test rows by an input column" in c.value for c in at.caption)  # no segments for texts
    mistakes = trained.test_results["mistakes"]
    if not mistakes:
        return
    first = mistakes[0]
    at.selectbox(key=f"decide_cell_actual_{run_id}").set_value(str(first["actual"]))
    run(at.selectbox(key=f"decide_cell_predicted_{run_id}").set_value(str(first["predicted"])))
    texts = table(at, "Text")["Text"].tolist()
    assert texts and texts == [m["text"] for m in mistakes if (str(m["actual"]), str(m["predicted"])) ==
                               (str(first["actual"]), str(first["predicted"]))]
