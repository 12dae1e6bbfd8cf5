"""AppTest of the Present page and the view-only link: the model for a room, no editing control,
and a shared view that cannot change the workspace whatever it clicks."""

from __future__ import annotations

import pytest

from builder.workspace import Workspace
from tests.app_helpers import button, open_page
from tests.test_page_evaluate import trained_workspace

PAGE = "pages/present.py"
EDITING_LABELS = ("Try logistic regression as the network's design", "Start", "Build the bundle")


def snapshot(workspace: Workspace) -> list[tuple[str, bytes]]:
    """Every file of the workspace with its bytes: equal snapshots mean nothing changed."""
    return sorted((str(p.relative_to(workspace.root)), p.read_bytes()) for p in workspace.root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def owner_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("present")
    return home, trained_workspace(home, "breast_cancer", epochs=15)


def view_only(app, home, monkeypatch, token: str):
    monkeypatch.setenv("BUILDER_HOME", str(home))
    app.query_params["view"] = token
    return app.run()


def test_the_owner_presents_the_model_and_shares_a_view_only_link(app, owner_home, monkeypatch):
    home, workspace = owner_home
    monkeypatch.setenv("BUILDER_HOME", str(home))
    at = open_page(app, workspace, PAGE)
    assert at.title[0].value == "Predicting 'diagnosis' from the other columns"
    assert [m.label for m in at.metric][:1] == ["Accuracy"] and at.get("plotly_chart")
    assert not any(b.label in EDITING_LABELS for b in at.button)
    button(at, "Make a view-only link").click().run()
    token = workspace.share_token()
    assert token and f"?view={token}" in at.code[0].value
    assert any("listens on this computer only" in c.value for c in at.caption)
    button(at, "Make a new link").click().run()
    renewed = workspace.share_token()
    assert renewed and renewed != token
    button(at, "Revoke the link").click().run()
    assert workspace.share_token() is None and any(b.label == "Make a view-only link" for b in at.button)


def test_a_view_only_link_shows_the_presentation_and_changes_nothing_whatever_it_clicks(app, owner_home,
                                                                                           monkeypatch):
    home, workspace = owner_home
    token = workspace.share_link()
    before = snapshot(workspace)
    at = view_only(app, home, monkeypatch, token)
    assert not at.exception, at.exception
    assert at.title[0].value == "Predicting 'diagnosis' from the other columns"
    assert any("View-only link" in m.value for m in at.sidebar.markdown)
    assert not any(b.label in EDITING_LABELS or "link" in b.label for b in at.button)  # no share panel either
    for page in ("pages/train.py", "pages/data.py", "pages/build.py", "pages/export.py"):
        with pytest.raises(ValueError, match=r"Known pages: \['[^']*present.py'\]"):
            at.switch_page(page)  # the view-only navigation has the presentation alone
    for index in range(len(at.button)):  # every button, every choice of every widget
        at.button[index].click().run()
    for widget in [*at.selectbox, *at.radio]:
        for option in widget.options:
            widget.set_value(option).run()
    for box in at.checkbox:
        box.check().run()
    assert not at.exception, at.exception
    assert snapshot(workspace) == before
    workspace.revoke_share()


def test_a_revoked_link_says_so(app, owner_home, monkeypatch):
    home, workspace = owner_home
    token = workspace.share_link()
    workspace.revoke_share()
    at = view_only(app, home, monkeypatch, token)
    assert "does not work" in at.error[0].value and not at.metric
