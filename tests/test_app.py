"""The router: every page opens without an error from a fresh workspace, and the sidebar shows the
journey, the data and the model in use."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from builder.data import DataSpec, load_sample
from builder.pipeline import train_model
from builder.train import TrainConfig
from builder.workspace import Workspace
from pages.components.ui import JOURNEY
from tests.app_helpers import open_page
from tests.conftest import APP_FILE


@pytest.mark.parametrize("page", [path for path, _, _ in JOURNEY])
def test_every_page_opens_on_an_empty_workspace_with_a_next_step(app, page):
    at = open_page(app, Workspace.open(None), page)
    assert not at.exception and at.title
    assert "Your journey" in " ".join(m.value for m in at.sidebar.markdown)


def test_sidebar_names_the_data_and_the_model_and_ticks_what_is_done(app, builder_home):
    workspace = Workspace.open(None)
    df = load_sample("iris")
    workspace.save_table("iris.csv", df.to_csv(index=False).encode(), title="Iris (sample)")
    data_spec = DataSpec("species", "multiclass", [c for c in df.columns if c != "species"])
    workspace.save_state("data_spec", data_spec.to_dict())
    workspace.save_state("design", {"family": "mlp", "layers": []})
    trained = train_model(df, data_spec, TrainConfig(epochs=2))
    workspace.save_state("run_id", workspace.save_run(trained, "MLP on iris"))
    at = open_page(app, workspace, "pages/evaluate.py")
    captions = " ".join(c.value for c in at.sidebar.caption)
    journey = " ".join(m.value for m in at.sidebar.markdown)
    assert "Data: Iris (sample)" in captions and "Model: predicts 'species'" in captions
    assert ":material/check_circle: Data" in journey and ":material/check_circle: Train" in journey
    assert ":material/radio_button_unchecked: Export" in journey
    # Other data loaded since: the model is named with the data it belongs to, and Train is not ticked.
    trained.info["source"] = "Iris (sample)"
    workspace.save_run(trained, "MLP on iris", run_id=workspace.load_state("run_id"))
    other = load_sample("breast_cancer")
    workspace.save_table("cancer.csv", other.to_csv(index=False).encode())
    workspace.save_state("data_spec", DataSpec("target", "binary", [c for c in other.columns if c != "target"]).to_dict())
    at = open_page(AppTest.from_file(APP_FILE, default_timeout=60), workspace, "pages/data.py")  # a new visit
    captions = " ".join(c.value for c in at.sidebar.caption)
    journey = " ".join(m.value for m in at.sidebar.markdown)
    assert "predicts 'species' from Iris (sample)" in captions and "made for other data" in captions
    assert ":material/radio_button_unchecked: Train" in journey


def test_every_page_shows_the_same_trained_time(app, builder_home):
    """The run's own trained_at everywhere: not the time it was saved (seconds later), nor cut to minutes."""
    workspace = Workspace.open(None)
    df = load_sample("iris")
    workspace.save_table("iris.csv", df.to_csv(index=False).encode(), title="Iris (sample)")
    data_spec = DataSpec("species", "multiclass", [c for c in df.columns if c != "species"])
    workspace.save_state("data_spec", data_spec.to_dict())
    workspace.save_state("design", {"family": "mlp", "layers": []})
    trained = train_model(df, data_spec, TrainConfig(epochs=2), with_baseline=False)
    trained.info["trained_at"] = "2026-01-02 03:04:05"
    workspace.save_state("run_id", workspace.save_run(trained, "MLP on iris"))
    assert workspace.list_runs()[0].created != "2026-01-02 03:04:05"  # the list's own time is another one

    def said(at) -> str:
        return " ".join(e.value for e in [*at.caption, *at.sidebar.caption, *at.markdown])

    at = open_page(app, workspace, "pages/evaluate.py")
    assert "trained 2026-01-02 03:04:05" in said(at)  # the run caption and the sidebar
    at = at.switch_page("pages/train.py").run()
    assert "2026-01-02 03:04:05" in list(at.dataframe(key="runs_table").value["created"])  # the earlier runs
    at = at.switch_page("pages/export.py").run()
    at = next(b for b in at.button if b.label == "Build the bundle").click().run()
    assert "from the model trained on 2026-01-02 03:04:05." in said(at)
    at = at.switch_page("pages/predict.py").run()
    assert "on 2026-01-02 03:04:05" in said(at)

