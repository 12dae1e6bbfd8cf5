"""AppTest of the Evaluate page: empty state, metric cards against the baseline, task-fit plots."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from streamlit.proto.Metric_pb2 import Metric

from builder.data import SAMPLES, DataSpec, load_sample
from builder.pipeline import train_model
from builder.templates import starter_spec
from builder.train import TrainConfig
from builder.workspace import Workspace

from app_helpers import open_page

PAGE = "pages/evaluate.py"


def trained_workspace(home, sample: str | None, epochs: int = 40) -> Workspace:
    """A workspace with a sample table and a run trained on it, as the Train page leaves it."""
    workspace = Workspace.open(None, home=home)
    if sample is None:
        return workspace
    info, df = SAMPLES[sample], load_sample(sample)
    workspace.save_table(f"{sample}.csv", df.to_csv(index=False).encode(), title=f"{info.title} (sample)")
    features = [c for c in df.columns if c != info.target]
    data_spec = DataSpec(info.target, info.task, features)
    design = starter_spec("mlp", len(features), len(df))
    workspace.save_state("data_spec", data_spec.to_dict())
    workspace.save_state("design", design.to_dict())
    trained = train_model(df, data_spec, TrainConfig(epochs=epochs, lr=0.01), spec=design)
    workspace.save_state("run_id", workspace.save_run(trained, f"MLP on {info.title}"))
    return workspace


def traces(at) -> list[dict]:
    return [trace for chart in at.get("plotly_chart") for trace in json.loads(chart.proto.spec)["data"]]


def test_without_a_model_the_page_points_to_train(app, builder_home):
    at = open_page(app, trained_workspace(builder_home, None), PAGE)
    assert "Train a model first" in at.info[0].value
    assert any(link.proto.page == "train" for link in at.get("page_link"))


@pytest.mark.parametrize("sample", ["iris", "breast_cancer"])
def test_classification_cards_verdict_and_confusion_matrix(app, builder_home, sample):
    at = open_page(app, trained_workspace(builder_home, sample), PAGE)
    cards = {m.label: m for m in at.metric}
    assert list(cards)[0] == "Accuracy"
    assert "vs logistic regression" in cards["Accuracy"].proto.delta
    assert "Share of rows the model labels correctly" in cards["Accuracy"].proto.help
    assert "Baseline:" in cards["Accuracy"].proto.help
    verdicts = [*at.success, *at.warning]
    assert verdicts and "logistic regression" in verdicts[0].value
    heat = [t for t in traces(at) if t["type"] == "heatmap"]
    classes = set(load_sample(sample)[SAMPLES[sample].target])
    assert len(heat) == 1 and set(heat[0]["x"]) == {str(c) for c in classes}
    per_class = at.dataframe[0].value
    assert list(per_class.columns) == ["Class", "Test rows", "Precision", "Recall"]
    assert per_class["Test rows"].sum() == at.session_state["app"].trained.info["rows"]["test"]

    at.toggle(key="eval_shares").set_value(True).run()
    heat = [t for t in traces(at) if t["type"] == "heatmap"][0]
    assert heat["text"][0][0].endswith("%")
    assert any(link.proto.page == "export" for link in at.get("page_link"))


def test_regression_shows_errors_against_ridge_and_residual_plots(app, builder_home):
    at = open_page(app, trained_workspace(builder_home, "diabetes", epochs=60), PAGE)
    cards = {m.label: m for m in at.metric}
    assert list(cards)[:2] == ["Typical error (RMSE)", "Average error (MAE)"]
    rmse = cards["Typical error (RMSE)"]
    assert "vs ridge regression" in rmse.proto.delta
    if "about the same" not in rmse.proto.delta:  # lower is better: a drop is green, a rise red
        down = rmse.proto.direction == Metric.MetricDirection.DOWN
        assert rmse.proto.color == (Metric.MetricColor.GREEN if down else Metric.MetricColor.RED)
        assert rmse.proto.delta.startswith("-" if down else "+")
    names = {t.get("name") for t in traces(at)}
    assert {"Test rows", "Perfect prediction"} <= names
    assert any(t["type"] == "histogram" for t in traces(at))
    assert {"Training", "Validation"} <= names  # the run's training curves at the bottom


def test_loading_another_table_keeps_the_runs_charts(app, builder_home):
    """Nothing trained is lost: the run keeps its own test answers, whatever table is loaded now."""
    workspace = trained_workspace(builder_home, "iris", epochs=5)
    other = pd.DataFrame({"city": ["Oslo", "Lima"] * 30, "sales": range(60)})
    workspace.save_table("sales.csv", other.to_csv(index=False).encode())
    at = open_page(app, workspace, PAGE)
    assert not at.error and at.metric
    assert at.get("plotly_chart")  # the confusion matrix is still drawn from the run itself


def test_when_the_baseline_wins_one_click_tries_the_simple_model(app, builder_home):
    workspace = trained_workspace(builder_home, "iris", epochs=1)  # one epoch: the network is behind
    at = open_page(app, workspace, PAGE)
    assert any("does not beat" in w.value for w in at.warning)
    next(b for b in at.button if b.label.startswith("Try logistic regression")).click().run()
    assert at.session_state["app"].design.family == "logistic"
    assert workspace.load_state("design")["family"] == "logistic"
