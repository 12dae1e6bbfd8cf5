"""The text panel of the Data page: the column of texts, the label to predict, examples and lengths.

The checks are the engine's (``check_text_column``, ``check_target``), so a choice the page
accepts is one training accepts. Token counts use the engine's own ``tokenize``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from builder.data import DataSpec, TableProfile, check_target, suggest_features
from builder.data.profile import MAX_CLASSES
from builder.data.text import LENGTH_PERCENTILE, MAX_LENGTH_CAP, check_text_column, tokenize
from builder.errors import DataError
from pages.components.data_view import cached_text_guess, data_key, purpose_name, saved_for
from pages.components.i18n import t, tm
from pages.components.state import AppState

FACT_ROWS = 5_000  # texts counted for the length facts (a sample of larger tables)
EXAMPLES = 6


def text_columns_first(profile: TableProfile) -> list[str]:
    """Columns that could hold texts: free-text ones first, then categories; numbers and dates last."""
    order = {"text": 0, "categorical": 1}
    return sorted((c.name for c in profile.columns), key=lambda n: order.get(profile.column(n).kind, 2))


def text_problems(df: pd.DataFrame) -> dict[str, str | None]:
    """Per column, why the engine's ``check_text_column`` refuses it as the texts (``None``: it can be).

    Checked on a sample of ``FACT_ROWS`` rows: this only orders the choices and picks the default;
    the chosen column is checked again on the whole table.
    """
    sample = df if len(df) <= FACT_ROWS else df.sample(FACT_ROWS, random_state=0)
    problems: dict[str, str | None] = {}
    for column in df.columns:
        try:
            check_text_column(sample, column)
            problems[column] = None
        except DataError as exc:
            problems[column] = str(exc)
    return problems


@st.cache_data(show_spinner=False, max_entries=16)
def _text_problems(key: str, _df: pd.DataFrame) -> dict[str, str | None]:
    return text_problems(_df)


def text_column_choices(profile: TableProfile, problems: dict[str, str | None]) -> list[str]:
    """The columns offered for the texts: those that hold written text first (free text before
    categories). When none does, the most varied column first: a column of texts, even one the
    engine refuses (numbers only, say), has many different values, and the label has few."""
    usable = [name for name in text_columns_first(profile) if problems.get(name) is None]
    others = sorted((c for c in profile.columns if c.name not in usable), key=lambda c: -c.n_unique)
    return usable + [c.name for c in others]


def label_columns(profile: TableProfile, text_column: str) -> list[str]:
    """Columns that can be the label: 2 to ``MAX_CLASSES`` values; categories first."""
    usable = [c for c in profile.columns if c.name != text_column and 2 <= c.n_unique <= MAX_CLASSES]
    return [c.name for c in sorted(usable, key=lambda c: (c.kind not in ("categorical", "boolean"), c.n_unique))]


@dataclass(frozen=True)
class TokenFacts:
    """How long the texts are, in tokens (words; single characters for Chinese and Japanese)."""

    counted: int
    median: float
    covered: int  # tokens that cover LENGTH_PERCENTILE % of the texts in full (the model's default)
    longest: int


def token_facts(texts: pd.Series) -> TokenFacts:
    """Token counts of (a sample of) the non-empty texts."""
    present = texts.dropna().astype("str")
    present = present[present.str.strip() != ""]
    if len(present) > FACT_ROWS:
        present = present.sample(FACT_ROWS, random_state=0)
    counts = np.array([len(tokenize(t)) for t in present]) if len(present) else np.zeros(1)
    covered = int(min(MAX_LENGTH_CAP, max(1, np.ceil(np.percentile(counts, LENGTH_PERCENTILE)))))
    return TokenFacts(len(present), float(np.median(counts)), covered, int(counts.max()))


@st.cache_data(show_spinner=False, max_entries=16)
def _facts(key: str, column: str, _texts: pd.Series) -> TokenFacts:
    return token_facts(_texts)


def examples(df: pd.DataFrame, text_column: str, target: str, n: int = EXAMPLES) -> pd.DataFrame:
    """A few texts with their labels, taking turns between labels so each one shows."""
    rows = df[[target, text_column]].dropna()
    rows = rows[rows[text_column].astype("str").str.strip() != ""]
    turn = rows.groupby(target, sort=False).cumcount()
    return rows.assign(_turn=turn).sort_values("_turn", kind="stable").head(n).drop(columns="_turn")


def _no_text_advice(profile: TableProfile, problems: dict[str, str | None], text_column: str) -> str:
    """What to do when the chosen column is not text: name a column that is, or, when none is,
    say so and point to a table model (which reads numbers and categories)."""
    usable = [name for name in text_column_choices(profile, problems) if problems.get(name) is None]
    if usable:
        return t("'{column}' holds written text: choose it above.", column=usable[0])
    labels = label_columns(profile, text_column)
    goal = t("predict '{label}' from the other columns", label=labels[0]) if labels \
        else t("learn from numbers and categories")
    return t("No column of this table holds written text (sentences of a few words), so there is nothing for a "
             "text model to read. To {goal}, choose '{purpose}' above.", goal=goal, purpose=purpose_name("table"))


def _left_out_sentence(text_column: str, left_out: list[str]) -> str:
    """Which columns a text model does not read, and how to learn from them instead."""
    names = ", ".join(f"'{name}'" for name in left_out[:10])
    if len(left_out) > 10:
        names = t("{names} and more", names=names)
    sentence = ("A text model reads only '{column}', so {names} is left out. To learn from those columns "
                "instead, choose '{purpose}' above." if len(left_out) == 1 else
                "A text model reads only '{column}', so {names} are left out. To learn from those columns "
                "instead, choose '{purpose}' above.")
    return t(sentence, column=text_column, names=names, purpose=purpose_name("table"))


def text_panel(state: AppState, profile: TableProfile, suffix: str) -> tuple[DataSpec | None, dict[str, str]]:
    """The text column and the label; the spec (``None`` if unusable) and the columns' roles."""
    saved = saved_for(state, "text")
    df = state.df
    problems = _text_problems(data_key(state), df)
    texts = text_column_choices(profile, problems)
    pick, label = st.columns(2, gap="large")
    guess = cached_text_guess(data_key(state), profile)  # the column the CLI would read, too
    start = saved.options.get("text_column") if saved else guess.column if guess else None
    text_column = pick.selectbox(t("The column with the texts"), texts, key=f"data_text_{suffix}",
                                 index=texts.index(start) if start in texts else 0,
                                 help=t("Written text, e.g. messages, reviews or descriptions. Columns that "
                                        "hold text are listed first."))
    # The texts first: a label only makes sense next to a column the model can read.
    try:
        check_text_column(df, text_column)
    except DataError as exc:
        st.error(f"{tm(exc)} {_no_text_advice(profile, problems, text_column)}", icon=":material/error:")
        return None, {text_column: "Text"}
    labels = label_columns(profile, text_column)
    if not labels:
        st.error(t("No column besides '{column}' has between 2 and {most} different values to predict. Add a "
                   "column with the label of each text (e.g. its topic).", column=text_column, most=MAX_CLASSES),
                 icon=":material/error:")
        return None, {text_column: "Text"}
    target = label.selectbox(t("The label to predict"), labels, key=f"data_label_{suffix}_{text_column}",
                             index=labels.index(saved.target) if saved and saved.target in labels else 0,
                             help=t("The category the model should give each text."))
    roles = {text_column: "Text", target: "Predicted"}
    task = "binary" if profile.column(target).n_unique == 2 else "multiclass"
    try:
        check_target(df, target, task)
    except DataError as exc:
        st.error(tm(exc), icon=":material/error:")
        return None, roles
    facts = _facts(data_key(state), text_column, df[text_column])
    prediction = ("{n} different labels → a yes/no prediction." if task == "binary"
                  else "{n} different labels → a category prediction.")
    label.caption(":material/lightbulb: " + t(prediction, n=profile.column(target).n_unique))
    pick.caption(":material/straighten: " + t(
        "About {median:.0f} words per text, the longest {longest:,}; the model reads the first {covered} tokens, "
        "which covers {percent}% of the texts in full.", median=facts.median, longest=facts.longest,
        covered=facts.covered, percent=LENGTH_PERCENTILE))
    left_out = [name for name in suggest_features(profile, target) if name != text_column]
    if left_out:  # a text model reads one column: say which others it does not read
        st.info(_left_out_sentence(text_column, left_out), icon=":material/info:")
    st.dataframe(examples(df, text_column, target), hide_index=True, width="stretch",
                 column_config={text_column: st.column_config.TextColumn(width="large")})
    st.caption(t("A few texts with their labels. Words are read in lower case; Chinese and Japanese "
                 "texts are read one character at a time."))
    return DataSpec(target, task, [text_column], kind="text", options={"text_column": text_column}), roles
