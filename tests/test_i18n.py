"""The catalogue: well formed, one meaning per key, every engine message translated, and the
lookups (a page's template, an engine sentence with its values) giving the Chinese text."""

from __future__ import annotations

import json
import string

import pytest

from builder.i18n import catalogue, catalogue_files, count, translate, translate_message
from tests.i18n_tools import ROOT, engine_message_templates

FORMATTER = string.Formatter()


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in FORMATTER.parse(template) if name is not None}


def test_every_catalogue_file_is_a_flat_table_of_strings():
    assert catalogue_files("zh"), "the Chinese catalogue has no files"
    for path in catalogue_files("zh"):
        entries = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(entries, dict), path.name
        for key, value in entries.items():
            assert isinstance(key, str) and isinstance(value, str) and value.strip(), (path.name, key)


def test_a_key_in_two_files_says_the_same_thing():
    seen: dict[str, tuple[str, str]] = {}
    clashes = []
    for path in catalogue_files("zh"):
        for key, value in json.loads(path.read_text(encoding="utf-8")).items():
            if key in seen and seen[key][1] != value:
                clashes.append((key, seen[key], (path.name, value)))
            seen[key] = (path.name, value)
    assert not clashes, clashes[:10]


def test_each_translation_has_exactly_the_fields_of_its_english():
    wrong = [(key, value) for key, value in catalogue("zh").items()
             if fields(key) != fields(value)]
    assert not wrong, wrong[:10]


def test_every_error_the_engine_raises_is_in_the_catalogue():
    entries = catalogue("zh")
    missing = [f"{path.relative_to(ROOT)}:{line}: {template}"
               for path, line, template in engine_message_templates() if template not in entries]
    assert not missing, f"{len(missing)} engine messages have no Chinese:\n" + "\n".join(missing[:40])


def test_a_page_template_is_formatted_in_either_language(monkeypatch):
    monkeypatch.setitem(catalogue("zh"), "{n:,} rows loaded", "已读入 {n:,} 行")
    assert translate("{n:,} rows loaded", "en", n=1200) == "1,200 rows loaded"
    assert translate("{n:,} rows loaded", "zh", n=1200) == "已读入 1,200 行"
    assert translate("Not in the catalogue", "zh") == "Not in the catalogue"


def test_counts_agree_in_english_and_take_the_chinese_noun():
    assert count(1, "row", "en") == "1 row"
    assert count(1200, "row", "en") == "1,200 rows"
    assert count(3, "row", "zh") == f"3 {catalogue('zh').get('row', 'row')}"


@pytest.fixture
def planted(monkeypatch):
    entries = catalogue("zh")
    for key, value in {
        "Column '{name}' has {count} missing values.": "列 '{name}' 有 {count} 个缺失值。",
        "The {kind} has no rows.": "{kind}没有任何行。",
        "table": "表格",
        "Pick another target.": "请另选目标列。",
    }.items():
        monkeypatch.setitem(entries, key, value)
    from builder import i18n
    i18n._patterns.cache_clear()
    i18n.translate_message.cache_clear()
    yield
    i18n._patterns.cache_clear()
    i18n.translate_message.cache_clear()


def test_an_engine_sentence_is_matched_and_its_values_carried(planted):
    assert translate_message("Column 'price' has 1,204 missing values.", "zh") == "列 'price' 有 1,204 个缺失值。"
    # A quoted value is a name and stays as it is, even when it is a known word.
    assert translate_message("Column 'table' has 3 missing values.", "zh") == "列 'table' 有 3 个缺失值。"
    # An unquoted value that is a known phrase is translated too.
    assert translate_message("The table has no rows.", "zh") == "表格没有任何行。"


def test_sentences_run_together_are_translated_one_by_one(planted):
    text = "Column 'a' has 2 missing values. Pick another target."
    assert translate_message(text, "zh") == "列 'a' 有 2 个缺失值。 请另选目标列。"


def test_an_unknown_sentence_and_english_pass_through_unchanged(planted):
    assert translate_message("Something nobody wrote down.", "zh") == "Something nobody wrote down."
    assert translate_message("Column 'price' has 3 missing values.", "en") == "Column 'price' has 3 missing values."


def test_a_template_with_fields_has_words_of_its_own():
    # A template made only of fields ("{a} ({b})") would match any sentence of the engine.
    loose = [key for key in catalogue("zh")
             if fields(key) and not any(ch.isalpha() for literal, *_ in FORMATTER.parse(key) for ch in literal)]
    assert not loose, loose[:10]


def test_a_number_field_matches_only_a_number(planted, monkeypatch):
    from builder import i18n

    monkeypatch.setitem(catalogue("zh"), "{flagged:,} of {total:,}", "{flagged:,} / {total:,}")
    i18n._patterns.cache_clear()
    assert translate_message("12 of 1,400", "zh") == "12 / 1,400"
    # A sentence that merely contains " of " is not this template's.
    assert translate_message("Most of the rows are empty", "zh") == "Most of the rows are empty"
