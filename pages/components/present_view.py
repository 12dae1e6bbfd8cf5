"""The Present page's parts: the headline for a room of stakeholders, and the view-only share panel.

The share panel only calls the workspace (``share_link``, ``revoke_share``); whether a session may
change anything is decided there, not here: a view-only session never sees the panel, and would be
refused by its workspace if it tried.
"""

from __future__ import annotations

import streamlit as st

from builder.errors import BuilderError
from builder.trained import TrainedModel
from pages.components.state import SHARE_PARAM, AppState
from pages.components.ui import trained_time

LOOPBACK_NOTE = (
    "The app listens on this computer only (address 127.0.0.1, the default), so the link opens on "
    "this machine alone. To show it to colleagues on your network, start the app with "
    "`streamlit run app.py --server.address 0.0.0.0` (or set `address` under `[server]` in "
    "`.streamlit/config.toml`): then anyone who can reach this computer and has the link can view the model."
)


def headline(trained: TrainedModel) -> str:
    """What the model does, in one line a manager reads first."""
    target = trained.data_spec.target
    if trained.kind == "images":
        classes = ", ".join(str(c) for c in trained.preprocessor.classes[:6])
        return f"Sorting pictures into {len(trained.preprocessor.classes)} classes ({classes}{'...' if len(trained.preprocessor.classes) > 6 else ''})"
    if trained.task == "anomaly":
        return "Finding unusual rows"
    if trained.task == "forecast":
        return f"Forecasting '{target}'"
    source = "text" if trained.kind == "text" else "the other columns"
    return f"Predicting '{target}' from {source}"


def run_facts(trained: TrainedModel) -> str:
    """A caption: the model, when it was trained, on how many rows."""
    rows = trained.info.get("rows", {})
    trained_rows = rows.get("train")
    when = trained_time(trained.info)
    parts = [trained.spec.effective_family().upper() if trained.spec.effective_family() in ("mlp", "cnn", "rnn", "lstm", "gru")
             else trained.spec.effective_family().title()]
    if trained_rows:
        parts.append(f"learnt from {trained_rows:,} rows, scored on {rows.get('test', 0):,} it never saw")
    if when:
        parts.append(f"trained {when}")
    return " · ".join(parts)


def share_url(token: str) -> str:
    """The view-only address of this app for ``token`` (this page's address with ``?view=``)."""
    base = ""
    try:
        base = str(st.context.url or "").split("?", 1)[0]
    except (AttributeError, RuntimeError):  # no browser context (tests): a relative address
        base = ""
    if base.rstrip("/").endswith("/present"):
        base = base.rstrip("/")[: -len("/present")]
    return f"{base.rstrip('/')}/?{SHARE_PARAM}={token}"


def share_panel(state: AppState) -> None:
    """Make, show, revoke and remake the view-only link of this workspace."""
    with st.expander("Share a view-only link", icon=":material/share:"):
        st.caption("A second address for this workspace that shows this presentation only: whoever opens "
                   "it can look, but can neither edit, start, stop nor delete anything.")
        try:
            token = state.workspace.share_token()
            if token is None:
                if st.button("Make a view-only link", key="present_share_make", icon=":material/add_link:"):
                    state.workspace.share_link()
                    st.rerun()
            else:
                st.code(share_url(token), language=None)
                left, right = st.columns(2)
                if left.button("Revoke the link", key="present_share_revoke", icon=":material/link_off:",
                               help="The address stops working at once."):
                    state.workspace.revoke_share()
                    st.rerun()
                if right.button("Make a new link", key="present_share_renew", icon=":material/autorenew:",
                                help="Revokes this address and makes another."):
                    state.workspace.revoke_share()
                    state.workspace.share_link()
                    st.rerun()
        except BuilderError as exc:
            st.error(str(exc), icon=":material/error:")
        st.caption(LOOPBACK_NOTE)
