"""Helpers shared by the AppTest page tests."""

from __future__ import annotations

from builder.workspace import Workspace


def open_page(app, workspace: Workspace, page: str):
    """Open ``page`` in the workspace of ``workspace`` (its token in the URL, as a bookmark would)."""
    app.query_params["ws"] = workspace.token
    app.run()
    at = app.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def button(at, label: str):
    """The button whose label is ``label``."""
    return next(b for b in at.button if b.label == label)
