"""The sidebar's "Recent workspaces": reopen earlier work kept on this computer.

Shown only while the app listens on this computer alone (``server.address`` a loopback address),
where every workspace is the user's own; opened to a network (any other address, or none: every
interface), the list would hand anyone the others' workspaces, so it is never drawn. Nor in a
view-only link's session. Reopening is what the workspace's bookmarked address does: a fresh
session state for its token.
"""

from __future__ import annotations

import streamlit as st

from builder.workspaces import RecentWorkspace, is_local_address, recent_workspaces
from pages.components.i18n import LANG_KEY, t, tcount, tm
from pages.components.state import TOKEN_PARAM, AppState


def listens_locally() -> bool:
    """Whether this server is reachable from this computer alone."""
    return is_local_address(st.get_option("server.address"))


RECENT_KEY = "recent_workspaces"  # the list, made once per session: it scans every workspace folder


def _recent(home: str, current: str) -> list[RecentWorkspace]:
    if RECENT_KEY not in st.session_state:  # reopening another clears the session, so it is made again
        st.session_state[RECENT_KEY] = recent_workspaces(home, exclude=[current])
    return st.session_state[RECENT_KEY]


def _reopen(token: str) -> None:
    language = st.session_state.get(LANG_KEY)
    st.session_state.clear()  # as a fresh visit to the workspace's address
    if language is not None:
        st.session_state[LANG_KEY] = language
    st.query_params[TOKEN_PARAM] = token


def recent_workspaces_sidebar(state: AppState) -> None:
    """The other workspaces with work on this computer, newest first, each one click away."""
    workspace = state.workspace
    if workspace.read_only or not listens_locally():
        return
    recent = _recent(str(workspace.root.parent), workspace.token)
    if not recent:
        return
    with st.sidebar.expander(t("Recent workspaces"), icon=":material/history:"):
        st.caption(t("Your earlier work on this computer. This workspace stays as it is at its own address."))
        for item in recent:
            title = tm(item.title) if item.title else t("No data")
            st.button(title, key=f"reopen_{item.token}", icon=":material/folder_open:", on_click=_reopen,
                      args=(item.token,), width="stretch")
            st.caption(t("Last used {when}, {runs}", when=item.when, runs=tcount(item.runs, "trained model")))
