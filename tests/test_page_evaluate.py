"""AppTest of the Evaluate page: empty state, metric cards against the baseline, task-fit plots."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
from streamlit.proto.Metric_pb2 import Metric
from streamlit.testing.v1 import AppTest

from builder.data import SAMPLES, DataSpec, load_sample
from builder.pipeline import train_model
from builder.templates import starter_spec
from builder.train import TrainConfig
from builder.workspace import Workspace
from tests import kind_fixtures
from tests.app_helpers import open_page
from tests.conftest import APP_FILE
from tests.kind_fixtures import open_with_run

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
    # A short note says the data changed, without hiding anything of the run.
    note = next(i.value for i in at.info if "This model was trained on" in i.value)
    assert "other data (a table, predicting 'species')" in note and "**sales.csv**" in note
    assert "Train again" in note


def test_a_run_trained_in_the_app_names_its_data_when_other_data_is_loaded(app, builder_home):
    workspace = trained_workspace(builder_home, "iris", epochs=2)
    run = workspace.load_run(workspace.load_state("run_id"))
    run.info["source"] = "Iris flowers (sample)"  # as the Train page keeps it
    workspace.save_state("run_id", workspace.save_run(run, "MLP on Iris"))
    at = open_page(app, workspace, PAGE)
    assert not [i for i in at.info if "This model was trained on" in i.value]  # the same data: no note
    texts = kind_fixtures.text_table()
    workspace.save_table("tickets.csv", texts.to_csv(index=False).encode())
    workspace.save_state("data_spec", kind_fixtures.text_run().data_spec.to_dict())
    at = open_page(AppTest.from_file(APP_FILE, default_timeout=60), workspace, PAGE)
    note = next(i.value for i in at.info if "This model was trained on" in i.value)
    assert note.startswith("This model was trained on **Iris flowers (sample)** (a table, predicting 'species'); "
                           "the data loaded on the Data page now is **tickets.csv** (texts, predicting 'topic').")
    assert at.metric and at.get("plotly_chart")  # the run is still shown in full


def test_when_the_baseline_wins_one_click_tries_the_simple_model(app, builder_home):
    workspace = trained_workspace(builder_home, "iris", epochs=1)  # one epoch: the network is behind
    at = open_page(app, workspace, PAGE)
    assert any("does not beat" in w.value for w in at.warning)
    next(b for b in at.button if b.label.startswith("Try logistic regression")).click().run()
    assert at.session_state["app"].design.family == "logistic"
    assert workspace.load_state("design")["family"] == "logistic"


# --- images, text, forecasts and anomalies: each from the run's own results -----------------------


def test_images_show_cards_against_pixels_confusion_and_the_mistakes(app, builder_home):
    trained = kind_fixtures.image_run()
    at = open_with_run(app, builder_home, trained, PAGE)
    assert not at.exception and not at.error, [e.value for e in at.error]
    cards = {m.label: m for m in at.metric}
    assert "vs logistic regression on pixels" in cards["Accuracy"].proto.delta
    assert "pixels" in " ".join(c.value for c in at.caption)
    assert [t for t in traces(at) if t["type"] == "heatmap"]
    per_class = next(d.value for d in at.dataframe if "Class" in d.value.columns)
    assert list(per_class.columns) == ["Class", "Test images", "Precision", "Recall"]  # images, not rows
    mistakes = trained.test_results["mistakes"]
    assert mistakes, "a two-epoch CNN makes mistakes"
    shown = at.tabs[0].get("image")  # the test data tab (the Decide tab shows some again, by cell)
    assert len(shown) == len(mistakes)
    assert f"is {mistakes[0]['actual']}, model said {mistakes[0]['predicted']}" in str(shown[0].captions)


def test_images_without_mistakes_say_so(app, builder_home):
    trained = copy.deepcopy(kind_fixtures.image_run())
    trained.test_results["mistakes"] = []
    at = open_with_run(app, builder_home, trained, PAGE)
    assert any("every test image was classified correctly" in s.value.lower() for s in at.success)
    assert not at.get("image")


def test_text_shows_cards_against_tfidf_and_a_table_of_mistakes(app, builder_home):
    trained = kind_fixtures.text_run()
    at = open_with_run(app, builder_home, trained, PAGE)
    assert not at.exception and not at.error, [e.value for e in at.error]
    cards = {m.label: m for m in at.metric}
    assert "vs TF-IDF + logistic regression" in cards["Accuracy"].proto.delta
    assert [t for t in traces(at) if t["type"] == "heatmap"]
    mistakes = next(d.value for d in at.dataframe if "Text" in d.value.columns)
    assert list(mistakes.columns) == ["Text", "Actual", "Predicted", "Confidence"]
    assert len(mistakes) == len(trained.test_results["mistakes"]) > 0


def test_forecast_chart_steps_baselines_and_verdict(app, builder_home):
    trained = kind_fixtures.forecast_run()
    at = open_with_run(app, builder_home, trained, PAGE)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert list(m.label for m in at.metric)[:3] == ["Typical error (RMSE)", "Average error (MAE)",
                                                   "Variance explained (R²)"]
    verdicts = [*at.success, *at.warning]
    assert verdicts and ("beats every simple forecast" in verdicts[0].value or "does not beat" in verdicts[0].value)
    names = {t.get("name"): t for t in traces(at)}
    assert {"Actual", "Network, 1 step ahead", "Last value", "Seasonal naive", "Lagged ridge"} <= set(names)
    shown = [n for n in ("Last value", "Seasonal naive", "Lagged ridge") if names[n].get("visible") is not False
             and names[n].get("visible") != "legendonly"]
    assert len(shown) == 1  # the best one; the others one legend click away
    table = next(d.value for d in at.dataframe if "Forecast" in d.value.columns)
    assert table["Forecast"].tolist()[0] == "The network" and len(table) == 4

    at = at.select_slider(key="eval_forecast_step").set_value(7).run()
    assert "Network, 7 steps ahead" in {t.get("name") for t in traces(at)}
    at = at.radio(key="eval_forecast_view").set_value("The last forecast in full").run()
    assert not at.exception
    network = next(t for t in traces(at) if str(t.get("name")).startswith("Network"))
    assert network["name"] == "Network, Last forecast (7 steps)" and len(network["x"]) == 7


def test_anomaly_threshold_moves_the_flagged_count_and_is_saved(app, builder_home):
    trained = copy.deepcopy(kind_fixtures.anomaly_run())
    at = open_with_run(app, builder_home, trained, PAGE)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(t["type"] == "histogram" for t in traces(at))
    assert any(t.get("name") == "Validation rows" for t in traces(at))
    assert "baseline" not in at.caption[0].value and "flags as unusual" in at.caption[0].value  # there is none
    state = at.session_state["app"]
    slider = next(s for s in at.slider if s.label.startswith("Normal rows"))
    assert slider.value == pytest.approx(99.0)
    before = next(m for m in at.metric if m.label == "Test rows flagged").value

    at = slider.set_value(90.0).run()
    assert not at.exception and not at.error
    after = next(m for m in at.metric if m.label == "Test rows flagged").value
    flagged = int(after.split(" of ")[0])
    assert flagged > int(before.split(" of ")[0])
    assert state.trained.test_results["quantile"] == pytest.approx(0.90)
    assert state.trained.preprocessor.threshold == pytest.approx(state.trained.test_results["threshold"])
    rows = next(d.value for d in at.dataframe if "anomaly_score" in d.value.columns)
    assert len(rows) == min(flagged, len(trained.test_results["most_unusual"]))
    assert rows["anomaly_score"].is_monotonic_decreasing
    assert (rows["anomaly_score"] > state.trained.test_results["threshold"]).all()
    # Saved with the run: a refresh (or the export) sees the new threshold.
    saved = state.workspace.load_run(state.run_id)
    assert saved.preprocessor.threshold == pytest.approx(state.trained.preprocessor.threshold)
    assert saved.test_results["quantile"] == pytest.approx(0.90)


# --- advice that follows the run's own training history -------------------------------------------------


def with_history(trained, epochs: int, best: int, reason: str):
    """A copy of ``trained`` whose training ran ``epochs`` epochs, best at ``best``, ended by ``reason``."""
    from builder.train import History

    run = copy.deepcopy(trained)
    val = [1.0 - 0.05 * min(e, best) + 0.01 * max(0, e - best) for e in range(1, epochs + 1)]
    run.history = History(epoch=list(range(1, epochs + 1)), loss=[v * 0.9 for v in val], val_loss=val,
                          seconds=[0.1] * epochs, metrics={}, best_epoch=best, stopped_reason=reason)
    return run


def losing_forecast(epochs: int, best: int, reason: str):
    run = with_history(kind_fixtures.forecast_run(), epochs, best, reason)
    worst = max(float(b["rmse"]) for b in run.info["forecast_baselines"].values())
    run.metrics["test"]["rmse"] = worst * 2  # behind every simple forecast
    return run


def test_a_forecast_stopped_early_is_not_told_to_train_longer(app, builder_home):
    trained = losing_forecast(epochs=15, best=5, reason="early_stopping")
    at = open_with_run(app, builder_home, trained, PAGE)
    advice = next(w.value for w in at.warning if "does not beat" in w.value)
    best = min(trained.info["forecast_baselines"], key=lambda n: trained.info["forecast_baselines"][n]["rmse"])
    assert f"does not beat the {best} forecast" in advice
    assert "Early stopping ended training at epoch 15" in advice and "lowest at epoch 5" in advice
    assert "more epochs would not help" in advice and f"use the {best} forecast" in advice
    assert "train for more epochs" not in advice and "more history" not in advice


def test_a_forecast_still_improving_at_its_last_epoch_is_told_to_train_longer(app, builder_home):
    at = open_with_run(app, builder_home, losing_forecast(epochs=20, best=20, reason="completed"), PAGE)
    advice = next(w.value for w in at.warning if "does not beat" in w.value)
    assert "still falling when it ended at epoch 20: train for more epochs" in advice
    assert "would not help" not in advice


def test_a_table_model_behind_its_baseline_after_early_stopping_gets_a_simpler_model(app, builder_home):
    workspace = trained_workspace(builder_home, "iris", epochs=1)  # one epoch: the network is behind
    run = with_history(workspace.load_run(workspace.load_state("run_id")), 30, 12, "early_stopping")
    workspace.save_state("run_id", workspace.save_run(run, "MLP on Iris"))
    at = open_page(app, workspace, PAGE)
    advice = next(w.value for w in at.warning if "does not beat" in w.value or "about as good" in w.value)
    assert "more epochs would not help" in advice and "or use logistic regression" in advice
    assert "Try training for more epochs" not in advice


def test_the_loss_caption_explains_training_far_above_validation(app, builder_home):
    workspace = trained_workspace(builder_home, "iris", epochs=2)
    run = with_history(workspace.load_run(workspace.load_state("run_id")), 10, 10, "completed")
    assert any(layer.type == "Dropout" for layer in run.spec.layers)  # the starter MLP drops values
    run.history.loss = [v * 2 for v in run.history.val_loss]  # dropout makes training harder
    workspace.save_state("run_id", workspace.save_run(run, "MLP on Iris"))
    at = open_page(app, workspace, PAGE)
    said = " ".join(c.value for c in at.caption)
    assert "Training far above validation is expected here: dropout acts only while training" in said
    assert "memorises" not in said

    run.history.loss = [v / 2 for v in run.history.val_loss]  # the opposite: memorising
    workspace.save_state("run_id", workspace.save_run(run, "MLP on Iris"))
    at = open_page(AppTest.from_file(APP_FILE, default_timeout=60), workspace, PAGE)  # a new session
    said = " ".join(c.value for c in at.caption)
    assert "Validation far above training means the model memorises" in said and "expected here" not in said


def test_a_cross_validated_run_shows_its_fold_table(app, builder_home):
    info, df = SAMPLES["iris"], load_sample("iris")
    workspace = Workspace.open(None, home=builder_home)
    workspace.save_table("iris.csv", df.to_csv(index=False).encode(), title="Iris (sample)")
    data_spec = DataSpec(info.target, info.task, [c for c in df.columns if c != info.target])
    workspace.save_state("data_spec", data_spec.to_dict())
    trained = train_model(df, data_spec, TrainConfig(epochs=5, lr=0.01, cv_folds=3))
    workspace.save_state("run_id", workspace.save_run(trained, "MLP on Iris, 3 folds"))
    at = open_page(app, workspace, PAGE)
    assert any("Cross-validation, 3 of 3 folds" in m.value for m in at.markdown)
    folds = next(frame.value for frame in at.dataframe if "Network (mean ± spread)" in frame.value.columns)
    assert folds.iloc[0]["Metric"] == "Accuracy" and " ± " in folds.iloc[0]["Network (mean ± spread)"]
