"""One catalogue for every sentence the app shows, in English and in Chinese.

English is the source language: the words in the code *are* the English text, and the catalogue
maps each of them to Chinese. The catalogue is one table, kept as one JSON file per area of the
product (``builder/i18n/zh/*.json``: the data page's words, the engine's messages...) so a change
touches one small file; a key may appear in only one of them.

Two ways in:

- ``translate(template, lang, **params)`` for a page's own words. The template is looked up, then
  formatted with ``params`` by ``str.format`` rules, so ``"{rows:,} rows"`` keeps its separators in
  both languages.
- ``translate_message(text, lang)`` for a sentence the engine has already written (an error, a data
  check's finding, a coach reading). The engine keeps writing plain English, which the CLI, the
  logs and the model card use; the app matches the sentence against the catalogue's templates and
  puts the values it carries (a column, a number) into the Chinese template.

A document the engine writes in the reader's language (the HTML report) runs inside
``using(lang)`` and words itself with ``tr`` and ``tr_message``, which read that language, as
gettext's ``_`` would; outside it they give English, so the CLI and the model card stay English.

A sentence missing from the catalogue falls back to English, never to an error; the Chinese walk of
every page (``tests/test_i18n_walk.py``) is what finds it.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from builder.wording import count as english_count

LANGUAGES = {"en": "English", "zh": "中文"}
DEFAULT_LANGUAGE = "en"
CATALOGUE_DIR = Path(__file__).parent

_FORMATTER = string.Formatter()
_CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("language", default=DEFAULT_LANGUAGE)


def catalogue_files(lang: str) -> list[Path]:
    """The JSON files that make up ``lang``'s catalogue (none for English, the source language)."""
    folder = CATALOGUE_DIR / lang
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


@functools.cache
def catalogue(lang: str) -> dict[str, str]:
    """English template -> ``lang``'s template, merged from the language's files.

    A key defined twice must say the same thing; ``tests/test_i18n.py`` checks that, so this just
    lets the later file win.
    """
    entries: dict[str, str] = {}
    for path in catalogue_files(lang):
        entries.update(json.loads(path.read_text(encoding="utf-8")))
    return entries


def translate(template: str, lang: str, /, **params: object) -> str:
    """``template`` in ``lang``, formatted with ``params`` ("{n:,} rows" -> "1,200 行")."""
    text = template if lang == DEFAULT_LANGUAGE else catalogue(lang).get(template, template)
    return text.format(**params) if params else text


def count(n: int | float, noun: str, lang: str, plural: str | None = None) -> str:
    """``wording.count`` in ``lang``: "1 row", "3 rows"; in Chinese "3 行" (no plural forms).

    The catalogue holds the singular noun ("row": "行").
    """
    if lang == DEFAULT_LANGUAGE:
        return english_count(n, noun, plural)
    return f"{n:,} {catalogue(lang).get(noun, noun)}"


_NUMBER = r"[-+−]?(?:\d[\d,]*)?(?:\.\d+)?(?:e[-+]?\d+)?%?"
_NUMBER_TYPES = set(",_dfFgGeE%n")  # the last character of a numeric format spec
_TEXT = ".+?"


@dataclass(frozen=True)
class _Pattern:
    """A catalogue template with fields, compiled to match the sentences it produces."""

    regex: re.Pattern[str]  # each text field as short as it can be
    greedy: re.Pattern[str]  # each text field as long as it can be
    fields: tuple[str, ...]  # the field name behind each group, in order
    quoted: tuple[bool, ...]  # the field sits inside quotes: a value (a column), never translated
    target: str
    literal_size: int  # how much fixed text it has: the more, the surer a match


def _compile(template: str, target: str) -> _Pattern | None:
    parts = list(_FORMATTER.parse(template))
    fields = [name for _, name, _, _ in parts if name is not None]
    if not fields:
        return None
    pattern, quoted, literal_size = [], [], 0
    for i, (literal, name, spec, _conversion) in enumerate(parts):
        pattern.append(re.escape(literal))
        literal_size += len(literal.strip())
        if name is not None:
            # A field formatted as a number ("{n:,}", "{share:.0%}") matches a number only; any
            # other matches text, non-greedy and across lines (a value may be a list on several).
            value = _NUMBER if spec and spec[-1:] in _NUMBER_TYPES else _TEXT
            pattern.append(f"(?P<f{len(quoted)}>{value})")
            following = parts[i + 1][0] if i + 1 < len(parts) else ""
            quoted.append(literal[-1:] in "'\"‘“" and literal[-1:] != "" and following[:1] in "'\"’”")
    lazy = "".join(pattern)
    return _Pattern(re.compile(lazy, re.DOTALL), re.compile(lazy.replace(_TEXT, ".+"), re.DOTALL),
                    tuple(fields), tuple(quoted), target, literal_size)


@functools.cache
def _patterns(lang: str) -> tuple[_Pattern, ...]:
    compiled = (_compile(source, target) for source, target in catalogue(lang).items())
    # The most specific template first: "Column '{c}' is empty." before "{what} is empty."; on a
    # tie, the one with more fields ("... Try {fix}. {more}" before "... Try {fix}.", which would
    # otherwise swallow the rest into {fix}).
    return tuple(sorted((p for p in compiled if p is not None), key=lambda p: (-p.literal_size, -len(p.fields))))


@functools.lru_cache(maxsize=4096)
def translate_message(text: str, lang: str) -> str:
    """A sentence the engine wrote, in ``lang``; unchanged when the catalogue does not know it.

    A sentence made of several known sentences ("A. B.") is translated sentence by sentence, and a
    value a template carries is itself translated when it is a known phrase ("table" -> "表格"),
    but never when it stands in quotes (a column's or a file's name).
    """
    if lang == DEFAULT_LANGUAGE or not text:
        return text
    entries = catalogue(lang)
    if text in entries:
        return entries[text]
    stripped = text.strip()
    if stripped != text and stripped in entries:
        return text.replace(stripped, entries[stripped])
    for pattern in _patterns(lang):
        match = _best_match(pattern, stripped, entries)
        if match is None:
            continue
        values: dict[str, str] = {}
        for i, name in enumerate(pattern.fields):
            value = match.group(f"f{i}")
            values.setdefault(name, value if pattern.quoted[i] else translate_message(value, lang))
        return text.replace(stripped, _fill(pattern.target, values))
    sentences = _split_sentences(stripped)
    if len(sentences) > 1:
        translated = [translate_message(sentence, lang) for sentence in sentences]
        if translated != sentences:
            return text.replace(stripped, "".join(translated))
    return text


def _best_match(pattern: _Pattern, text: str, entries: dict[str, str]) -> re.Match[str] | None:
    """The way of reading ``text`` with ``pattern`` whose values are most often known phrases.

    "The network does not beat {other} on {what}" reads "... beat logistic regression on pixels on
    accuracy" with the shortest values (other: "logistic regression", what: "pixels on accuracy")
    or the longest (other: "logistic regression on pixels", what: "accuracy"); the catalogue knows
    both of the second's values, so that reading wins. On a tie the shortest values win.
    """
    short = pattern.regex.fullmatch(text)
    if short is None:
        return None
    long = pattern.greedy.fullmatch(text)
    if long is None or long.groups() == short.groups():
        return short

    def known(match: re.Match[str]) -> int:
        return sum(value in entries for value in match.groups())

    return long if known(long) > known(short) else short


def _fill(target: str, values: dict[str, str]) -> str:
    """Put already formatted ``values`` into ``target``'s fields (their format specs are spent)."""
    out = []
    for literal, name, _spec, _conversion in _FORMATTER.parse(target):
        out.append(literal)
        if name is not None:
            out.append(values.get(name, "{" + name + "}"))
    return "".join(out)


_SENTENCE_END = re.compile(r"(?<=[.!?:])\s+(?=[A-Z(\"'])")


def _split_sentences(text: str) -> list[str]:
    """``text`` cut after each sentence, keeping the spaces: "A. B." -> ["A. ", "B."]."""
    pieces, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        pieces.append(text[start:match.end()])
        start = match.end()
    pieces.append(text[start:])
    return pieces


@contextlib.contextmanager
def using(lang: str) -> Iterator[None]:
    """Within this block ``tr`` and ``tr_message`` speak ``lang`` (English when it is unknown)."""
    token = _CURRENT.set(lang if lang in LANGUAGES else DEFAULT_LANGUAGE)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current_language() -> str:
    return _CURRENT.get()


def tr(template: str, /, **params: object) -> str:
    """``translate`` in the language of the enclosing ``using`` block."""
    return translate(template, _CURRENT.get(), **params)


def tr_message(text: str) -> str:
    """``translate_message`` in the language of the enclosing ``using`` block."""
    return translate_message(text, _CURRENT.get())


def tr_count(n: int | float, noun: str, plural: str | None = None) -> str:
    """``count`` in the language of the enclosing ``using`` block."""
    return count(n, noun, _CURRENT.get(), plural)
