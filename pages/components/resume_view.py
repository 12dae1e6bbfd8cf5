"""The Train page's word on a training the app lost when it stopped: resume it, or let it go."""

from __future__ import annotations

import streamlit as st

from builder import resume
from pages.components.i18n import t
from pages.components.state import AppState
from pages.components.training import resume_training
from pages.components.ui import user_errors


def interrupted_panel(state: AppState) -> None:
    """When the workspace's last training stopped with the app, say so, with "Resume from epoch N"."""
    found = resume.interrupted(state.workspace)
    if found is None:
        return
    if found.epoch == 0:
        st.warning(t("The training '{title}' was interrupted before its first epoch ended, when the app "
                     "stopped. Start it again below.", title=found.request.title), icon=":material/restart_alt:")
    else:
        st.warning(t("The training '{title}' was interrupted after epoch {epoch} of {epochs}, when the app "
                     "stopped. Everything up to that epoch is saved, the optimizer's state included: it can "
                     "go on as if nothing had happened.", title=found.request.title, epoch=found.epoch,
                     epochs=found.epochs), icon=":material/restart_alt:")
    resume_column, discard_column, _ = st.columns([2, 1, 2])
    if found.epoch:
        if resume_column.button(t("Resume from epoch {epoch}", epoch=found.epoch), type="primary",
                                icon=":material/play_arrow:", key="train_resume", width="stretch"):
            with user_errors():
                resume_training(state, found)
                st.rerun()
    if discard_column.button(t("Discard it"), icon=":material/delete:", key="train_discard", width="stretch",
                             help=t("Forget the interrupted training; the current model stays as it is.")):
        resume.forget(state.workspace, found.job_id)
        st.rerun()
