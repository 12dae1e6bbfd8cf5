"""Tools for the translation tests: what the engine says, and what a page shows in English.

``message_templates`` reads a module's source and lists the sentences it raises as errors, as the
catalogue's keys must spell them: an f-string's values become fields named after the expression
(``f"Column '{name}' has {len(rows):,} rows"`` -> ``"Column '{name}' has {len:,} rows"``).

``english_words`` walks a rendered AppTest page and returns every English word it shows that is not
in the allow-list: the Chinese walk's test of "every user-facing string comes from the catalogue".
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------------
# The engine's messages


def _field_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):
        return _field_name(node.func)
    if isinstance(node, ast.Subscript):
        return _field_name(node.value)
    return "value"


def template_of(node: ast.expr) -> str | None:
    """The catalogue key an expression spells: a string constant, or an f-string with named fields."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.replace("{", "{{").replace("}", "}}")
    if not isinstance(node, ast.JoinedStr):
        return None
    out, seen = [], {}
    for part in node.values:
        if isinstance(part, ast.Constant):
            out.append(str(part.value).replace("{", "{{").replace("}", "}}"))
            continue
        assert isinstance(part, ast.FormattedValue)
        name = _field_name(part.value)
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}_{seen[name]}"
        conversion = {-1: "", 115: "!s", 114: "!r", 97: "!a"}[part.conversion]
        spec = ""
        if part.format_spec is not None:
            inner = template_of(part.format_spec)
            spec = ":" + (inner or "")
        out.append("{" + name + conversion + spec + "}")
    return "".join(out)


# Errors that mean a bug in the code, never shown to a user as advice.
PROGRAMMING_ERRORS = {"RuntimeError", "TypeError", "AssertionError", "NotImplementedError", "KeyError",
                      "AttributeError", "IndexError"}


def _is_error_call(node: ast.expr) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.endswith("Error")
            and node.func.id not in PROGRAMMING_ERRORS and bool(node.args))


def message_templates(path: Path) -> list[tuple[int, str]]:
    """``(line, template)`` for every error raised with a literal message in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None and _is_error_call(node.exc):
            template = template_of(node.exc.args[0])
            if template and re.search(r"[A-Za-z]{2,}", re.sub(r"\{[^{}]*\}", "", template)):  # words of its own
                found.append((node.lineno, template))
    return sorted(found)


# The command line, the standalone files a bundle carries and the catalogue itself stay English.
ENGLISH_ONLY = {"cli", "bundle_files", "i18n", "__main__.py"}


def engine_message_templates(folder: Path = ROOT / "builder") -> Iterator[tuple[Path, int, str]]:
    """Every raised message of the engine that a user can see (the CLI package aside: English)."""
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(folder).parts
        if parts[0] in ENGLISH_ONLY:
            continue
        for line, template in message_templates(path):
            yield path, line, template


# ---------------------------------------------------------------------------------------------
# What a page shows

# The fields of Streamlit's element protos that hold words a person reads.
_TEXT_FIELDS = {"body", "label", "help", "placeholder", "options", "text", "caption", "delta",
                "description", "title"}
_ICON = re.compile(r":material/[a-z_]+:|:[a-z]+-badge\[|:[a-z]+\[")  # icons, badges, colours
_QUOTED = re.compile(r"'[^'\n]{1,80}'")  # a quoted name or value, as the catalogue's rules quote them
_TAG = re.compile(r"<[^>]*>")  # markup the page draws with (a text's highlighted words)
_CUT = re.compile(r"[A-Za-z]+…")  # the end of a data value cut short for the screen
_URL = re.compile(r"https?://\S+|\?\w+=\S*")
_CODE = re.compile(r"`[^`]*`")
_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*[A-Za-z]")


def _proto_strings(message, field: str | None = None) -> Iterator[str]:
    for descriptor, value in message.ListFields():
        name = descriptor.name
        if descriptor.type not in (descriptor.TYPE_MESSAGE, descriptor.TYPE_STRING):
            continue
        items = [value] if isinstance(value, str) or hasattr(value, "ListFields") else list(value)
        if descriptor.type == descriptor.TYPE_MESSAGE:
            for item in items:
                if hasattr(item, "ListFields"):
                    yield from _proto_strings(item, name)
        elif descriptor.type == descriptor.TYPE_STRING and name in _TEXT_FIELDS:
            yield from items
        elif name == "spec" and descriptor.type == descriptor.TYPE_STRING:
            yield from _plotly_strings(value)


def _plotly_strings(spec: str) -> Iterator[str]:
    """The words of a plotly figure: titles, axis titles, trace names, annotations, hover text."""
    try:
        figure = json.loads(spec)
    except ValueError:
        return
    layout = figure.get("layout", {})
    for value in layout.values():
        if isinstance(value, dict) and isinstance(value.get("title"), dict):
            yield str(value["title"].get("text") or "")
    if isinstance(layout.get("title"), dict):
        yield str(layout["title"].get("text") or "")
    for note in layout.get("annotations", []) or []:
        yield str(note.get("text") or "")
    for trace in figure.get("data", []):
        yield str(trace.get("name") or "")
        template = trace.get("hovertemplate")
        if template:
            yield re.sub(r"%\{[^}]*\}|<extra>.*?</extra>|<[^>]+>", " ", str(template))


def page_strings(at) -> Iterator[str]:
    """Every string a rendered AppTest page shows (the sidebar included)."""
    def walk(node) -> Iterator[str]:
        proto = getattr(node, "proto", None)
        if proto is not None and hasattr(proto, "ListFields"):
            yield from _proto_strings(proto)
        for child in getattr(node, "children", {}).values():
            yield from walk(child)
    yield from walk(at._tree)


def english_words(at, allowed: Iterable[str]) -> list[tuple[str, str]]:
    """``(word, the text it is in)`` for each English word on the page outside ``allowed``.

    Icons, links and code spans (a file name, a command) are not words to translate; ``allowed``
    holds data values, column, layer and metric names (compared case-insensitively).
    """
    allowed_lower = {word.lower() for word in allowed}
    found = []
    for text in page_strings(at):
        cleaned = _CUT.sub(" ", _TAG.sub(" ", _QUOTED.sub(" ", _CODE.sub(" ", _URL.sub(" ", _ICON.sub(" ", text))))))
        for word in _WORD.findall(cleaned):
            if word.lower() not in allowed_lower:
                found.append((word, text))
    return found
