"""The interface's language: the switch, and the words of every page in the language chosen.

Every page string goes through ``t`` (the page's own words) or ``tm`` (a sentence the engine wrote);
both read the one catalogue in ``builder/i18n``. The language lives in the session and in the URL's
``lang`` parameter, so a reload or a bookmark keeps it; it never touches the workspace, so a
view-only link can switch it too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import streamlit as st

from builder.i18n import DEFAULT_LANGUAGE, LANGUAGES, count, translate, translate_message

LANG_KEY = "language"
LANG_PARAM = "lang"
_SWITCH_KEY = "language_switch"


def language() -> str:
    """The session's language code ("en" or "zh"), first taken from the URL."""
    lang = st.session_state.get(LANG_KEY)
    if lang is None:
        lang = st.query_params.get(LANG_PARAM, DEFAULT_LANGUAGE)
        lang = lang if lang in LANGUAGES else DEFAULT_LANGUAGE
        st.session_state[LANG_KEY] = lang
    return lang


def set_language(lang: str) -> None:
    st.session_state[LANG_KEY] = lang if lang in LANGUAGES else DEFAULT_LANGUAGE


def t(template: str, /, **params: object) -> str:
    """A page's own words in the session's language: ``t("{n:,} rows loaded", n=len(df))``."""
    return translate(template, language(), **params)


def tm(text: str) -> str:
    """A sentence the engine wrote (an error, a finding, a reading) in the session's language."""
    return translate_message(str(text), language())


def tcount(n: int | float, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun`` agreeing in number: "1 row", "3 rows"; "3 行" in Chinese."""
    return count(n, noun, language(), plural)


def shown_as(options: Iterable[Any], words: Callable[[Any], str] | None = None) -> Callable[[Any], str]:
    """A ``format_func`` showing each of ``options`` in the session's language (``t`` by default).

    The labels are made now, inside the script run: Streamlit may call a ``format_func`` outside it
    (AppTest does when a test picks an option), where the session's language cannot be read.
    """
    words = words or t
    labels = {option: words(option) for option in options}
    return lambda option: labels.get(option, str(option))


def _switched() -> None:
    set_language(st.session_state[_SWITCH_KEY])


def language_switch() -> None:
    """The switch, in the sidebar of every page; the URL keeps the choice for reloads."""
    lang = language()
    st.session_state[_SWITCH_KEY] = lang  # follows the session's choice, also when set from code
    # The label is in both languages: whoever opens the page must be able to find it.
    st.sidebar.selectbox("Language · 语言", list(LANGUAGES), format_func=LANGUAGES.__getitem__,
                         key=_SWITCH_KEY, on_change=_switched)
    if lang == DEFAULT_LANGUAGE:
        if LANG_PARAM in st.query_params:
            del st.query_params[LANG_PARAM]
    elif st.query_params.get(LANG_PARAM) != lang:
        st.query_params[LANG_PARAM] = lang
