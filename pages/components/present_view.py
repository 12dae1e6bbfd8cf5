"""The Present page's parts: the headline for a room of stakeholders, and the view-only share panel.

The share panel only calls the workspace (``share_link``, ``revoke_share``); whether a session may
change anything is decided there, not here: a view-only session never sees the panel, and would be
refused by its workspace if it tried.
"""

from __future__ import annotations

import streamlit as st

from builder.errors import BuilderError
from builder.spec import FAMILIES
from builder.trained import TrainedModel
from pages.components.i18n import t, tm
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
        classes = trained.preprocessor.classes
        shown = ", ".join(str(c) for c in classes[:6]) + ("..." if len(classes) > 6 else "")
        return t("Sorting pictures into {n} classes ({classes})", n=len(classes), classes=shown)
    if trained.task == "anomaly":
        return t("Finding unusual rows")
    if trained.task == "forecast":
        return t("Forecasting '{target}'", target=target)
    if trained.kind == "text":
        return t("Predicting '{target}' from text", target=target)
    return t("Predicting '{target}' from the other columns", target=target)


def run_facts(trained: TrainedModel) -> str:
    """A caption: the model, when it was trained, on how many rows."""
    rows = trained.info.get("rows", {})
    trained_rows = rows.get("train")
    when = trained_time(trained.info)
    family = trained.spec.effective_family()
    # "MLP", "LSTM"; the others by the first words of their title: "Logistic regression", "Autoencoder".
    parts = [family.upper() if family in ("mlp", "cnn", "rnn", "lstm", "gru")
             else tm(FAMILIES[family].title.split(" (")[0]) if family in FAMILIES else family]
    if trained_rows:
        parts.append(t("learnt from {train:,} rows, scored on {test:,} it never saw", train=trained_rows,
                       test=rows.get("test", 0)))
    if when:
        parts.append(t("trained {when}", when=when))
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
    with st.expander(t("Share a view-only link"), icon=":material/share:"):
        st.caption(t("A second address for this workspace that shows this presentation only: whoever opens "
                     "it can look, but can neither edit, start, stop nor delete anything."))
        try:
            token = state.workspace.share_token()
            if token is None:
                if st.button(t("Make a view-only link"), key="present_share_make", icon=":material/add_link:"):
                    state.workspace.share_link()
                    st.rerun()
            else:
                st.code(share_url(token), language=None)
                left, right = st.columns(2)
                if left.button(t("Revoke the link"), key="present_share_revoke", icon=":material/link_off:",
                               help=t("The address stops working at once.")):
                    state.workspace.revoke_share()
                    st.rerun()
                if right.button(t("Make a new link"), key="present_share_renew", icon=":material/autorenew:",
                                help=t("Revokes this address and makes another.")):
                    state.workspace.revoke_share()
                    state.workspace.share_link()
                    st.rerun()
        except BuilderError as exc:
            st.error(tm(exc), icon=":material/error:")
        st.caption(t(LOOPBACK_NOTE))
