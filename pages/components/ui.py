"""Small UI building blocks every page uses: headers, empty states, error display, generic widgets.

``param_input`` is the one generic renderer: a ``ParamSpec``'s constraint picks the widget (number
input, select box or toggle), its label and help come from the same declaration that validates it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from typing import Any, NoReturn

import streamlit as st

from builder.errors import BuilderError
from builder.params import ParamSpec
from pages.components.i18n import shown_as, t, tm

log = logging.getLogger(__name__)

# The journey, in order: (page file, title, material icon). app.py builds the navigation from it.
JOURNEY = (
    ("pages/data.py", "Data", ":material/table_chart:"),
    ("pages/build.py", "Build", ":material/account_tree:"),
    ("pages/train.py", "Train", ":material/model_training:"),
    ("pages/evaluate.py", "Evaluate", ":material/insights:"),
    ("pages/export.py", "Export", ":material/download:"),
    ("pages/predict.py", "Predict", ":material/online_prediction:"),
    ("pages/present.py", "Present", ":material/co_present:"),
)
PAGE_BY_TITLE = {title: (path, icon) for path, title, icon in JOURNEY}

# Chart colours shared by every page: train vs validation, model vs baseline.
COLOURS = {"train": "#1A73E8", "validation": "#E8710A", "model": "#1A73E8", "baseline": "#9AA0A6",
           "batch": "#A8C7FA", "good": "#188038", "bad": "#D93025"}


def human_bytes(size: float) -> str:
    """A size for people: "812 bytes", "4.6 KB", "1.2 GB"."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return t("{size:,.0f} bytes", size=size) if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def trained_time(info: dict[str, Any] | None) -> str:
    """When a run was trained, as every page shows it ("2026-11-23 18:22:07"): the run's own
    ``trained_at``, never the time it was saved or listed; "" when unknown."""
    return str((info or {}).get("trained_at") or "")


def page_header(title: str, subtitle: str) -> None:
    st.title(title)
    st.caption(subtitle)


def go_to(title: str, label: str | None = None) -> None:
    """A link to another step of the journey, by its title ("Data", "Build"...)."""
    path, icon = PAGE_BY_TITLE[title]
    st.page_link(path, label=label or t("Go to {page}", page=t(title)), icon=icon)


class PageEnd(Exception):  # noqa: N818  (a signal, not an error)
    """Raised by ``end_page`` inside ``page_run``: the page ended early on purpose."""


# Set while app.py runs a page inside ``page_run`` (the same script thread, so a ContextVar).
_IN_PAGE_RUN: contextvars.ContextVar[bool] = contextvars.ContextVar("in_page_run", default=False)


@contextlib.contextmanager
def page_run() -> Iterator[None]:
    """Run the page inside this block (app.py); a page that calls ``end_page`` ends here."""
    token = _IN_PAGE_RUN.set(True)
    try:
        yield
    except PageEnd:
        pass  # the page ended early on purpose (an empty state or a message)
    finally:
        _IN_PAGE_RUN.reset(token)


def end_page() -> NoReturn:
    """End the page's run here (an empty state, a message), like ``st.stop()``.

    Under app.py's router it raises ``PageEnd`` instead: after ``st.stop()`` every element drawn
    raises the stop again, so app.py could not redraw the sidebar and a step the page just
    completed would stay unticked. A page run on its own (Streamlit's pages/ folder mode) stops.
    """
    if _IN_PAGE_RUN.get():
        raise PageEnd
    st.stop()


def empty_state(message: str, next_page: str, label: str | None = None) -> NoReturn:
    """Say what is missing and link to the page that provides it, then end the page's run."""
    st.info(message, icon=":material/info:")
    go_to(next_page, label)
    end_page()


@contextlib.contextmanager
def user_errors(where: str = "") -> Iterator[None]:
    """Show a ``BuilderError`` as a plain message at this place in the page, and carry on.

    Anything else is a bug: it is logged with its traceback and shown as such, never hidden.
    """
    try:
        yield
    except BuilderError as exc:
        st.error(f"{where}{tm(str(exc))}", icon=":material/error:")
    except PageEnd:
        raise  # the page chose to end here: not an error
    except Exception as exc:  # noqa: BLE001 - a bug; the page stays usable and the log has details
        log.exception("unexpected error in the app")
        st.error(t("Something went wrong that is not your fault ({error}). Your data and trained models "
                   "are safe; please report this.", error=type(exc).__name__), icon=":material/bug_report:")
        st.exception(exc)


def param_input(spec: ParamSpec, value: Any, key: str, disabled: bool = False) -> Any:
    """Draw the widget that fits ``spec`` and return the value the user set."""
    constraint = spec.constraint
    allowed = tm(constraint.describe())
    help_text = t("{help} Allowed: {allowed}.", help=tm(spec.help), allowed=allowed) if spec.help else allowed
    label = tm(spec.label)
    if value is None:
        value = spec.default
    if constraint.widget == "bool":
        return st.toggle(label, value=bool(value), key=key, help=help_text, disabled=disabled)
    if constraint.widget == "choice":
        options = list(constraint.options)
        index = options.index(value) if value in options else 0
        return st.selectbox(label, options, index=index, key=key, help=help_text, disabled=disabled,
                            format_func=shown_as(options, lambda option: tm(str(option))))
    if constraint.widget == "int":
        return st.number_input(label, value=int(value), step=1, key=key, help=help_text,
                               min_value=constraint.low, max_value=constraint.high, disabled=disabled)
    if constraint.widget == "float":
        return st.number_input(label, value=float(value), key=key, help=help_text, format="%g",
                               disabled=disabled)
    return st.text_input(label, value=str(value), key=key, help=help_text, disabled=disabled)
