"""Text classification data: tokenising, a fitted vocabulary, padded token ids.

Raw text cells go in, a float32 matrix of token ids ``(N, T)`` comes out (padding id 0), and model
outputs come back as labels with probabilities. ``TextPreprocessor`` is the text twin of the tabular
``Preprocessor``: fitted on the training split only, its whole state is plain JSON, and a JSON round
trip reproduces ``transform`` bit for bit.

This file is meant to be copied verbatim into export bundles next to ``predict.py``, so at the top
level it imports only numpy, pandas and the standard library (``DataError`` is imported with a
fallback). ``prepare_text`` needs the rest of the builder; it imports it inside the function, so the
bundle copy never loads it. The TF-IDF baseline lives in ``builder.baselines``.

Tokenising (``tokenize``), deterministic and the same in the app, the baseline and the bundle:

1. NFKC normalisation (full-width ``Ａ１`` -> ``A1``, ligatures, compatibility forms), then lowercase.
2. Characters of scripts written without spaces between words (see ``UNSEGMENTED_RANGES``: Chinese
   ideographs, Japanese kana, Thai, Lao, Khmer, Myanmar, Tibetan) are one token each: without a
   dictionary-based segmenter, single characters are the robust unit, and Chinese characters carry
   meaning on their own. Korean Hangul is written with spaces, so it is split into words.
3. Decimal numbers stay whole (``3.5``, ``1,000``); every other run of letters, digits and combining
   marks is a word (underscores split words). Punctuation, symbols and spaces are dropped.

Two ways to read a text (``ngrams``, part of the fitted state):

* ``ngrams=1``, words in order: for sequence models (Embedding -> LSTM/Transformer), which need the
  order of the words.
* ``ngrams=2``, a bag of n-grams, fastText-style: each distinct word and each distinct pair of
  neighbouring words ("not good") of a text, once, for a bag layer (EmbeddingBag) that averages
  their vectors. Word pairs keep the little order that matters most (negations, "highly
  recommend") at the cost of a larger vocabulary; counting each once per text (document frequency)
  keeps the rows short and stops one long rant from outweighing the rest.

``find_text_column`` decides whether a table is texts to classify (one free-text column carries the
signal) or a table to learn from; the CLI and the Data page both ask it.
"""

from __future__ import annotations

import copy
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

try:
    from builder.data.preprocess import (
        DataError,
        DecisionThreshold,
        cell_text,
        check_saved_state,
        decode_class_outputs,
        output_matrix,
    )
except ImportError:  # copied into an export bundle, next to the app's preprocess.py
    from preprocess import (  # type: ignore[no-redef]
        DataError,
        DecisionThreshold,
        cell_text,
        check_saved_state,
        decode_class_outputs,
        output_matrix,
    )


logger = logging.getLogger(__name__)

FORMAT = "builder.text-preprocessor"
FORMAT_VERSION = 1
TOKENIZER = "nfkc-lower-words-cjk-chars/1"  # bump when tokenize() changes its output
TASKS = ("binary", "multiclass")
PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
MAX_LENGTH_CAP = 256  # longest sequence the fitted max_length may reach
BAG_LENGTH_CAP = 1024  # a bag of n-grams: averaging is cheap, so a row may hold more ids
MAX_NGRAMS = 2  # words and pairs of words; triples grow the vocabulary for little gain
NGRAM_JOIN = " "  # "not good": tokens never hold a space, so a pair can never look like a word
LENGTH_PERCENTILE = 95  # max_length covers this share of training texts in full
# Cells that mean "no text" in exported spreadsheets (same spirit as the tabular preprocessor).
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "#n/a", "?"})

# check_text_column thresholds.
MIN_PRESENT_SHARE = 0.5  # at least half of the rows must hold some text
MIN_TEXTS = 10  # and at least this many rows in all
NUMBER_SHARE = 0.8  # a column whose values are numbers this often is not text
MIN_MEAN_TOKENS = 2.0  # single words on average: a category, not text to learn from

# find_text_column: a table is texts to classify when, besides its free-text column, it has at most
# this many other inputs (an id, a date, a category); the Data page suggested texts for tables of
# up to 4 columns (text, label and 2 more) before, measured on the sample sets.
MAX_SIDE_COLUMNS = 2
DETECT_ROWS = 5_000  # rows checked when looking for the text column (a sample of larger tables)

# Code point ranges tokenised one character per token (scripts without spaces between words).
UNSEGMENTED_RANGES = (
    ("\u0e00", "\u0e7f"),  # Thai
    ("\u0e80", "\u0eff"),  # Lao
    ("\u0f00", "\u0fff"),  # Tibetan
    ("\u1000", "\u109f"),  # Myanmar
    ("\u1780", "\u17ff"),  # Khmer
    ("\u2e80", "\u2fdf"),  # CJK radicals, Kangxi radicals
    ("\u3005", "\u3007"),  # 々 〆 〇
    ("\u3040", "\u30ff"),  # Hiragana, Katakana
    ("\u31f0", "\u31ff"),  # Katakana phonetic extensions
    ("\u3400", "\u4dbf"),  # CJK extension A
    ("\u4e00", "\u9fff"),  # CJK unified ideographs
    ("\uf900", "\ufaff"),  # CJK compatibility ideographs
    ("\U00020000", "\U0003134f"),  # CJK extensions B-G
)
_UNSEGMENTED = "".join(f"{low}-{high}" for low, high in UNSEGMENTED_RANGES)
_TOKEN = re.compile(
    r"\d+(?:[.,]\d+)+"  # a decimal number or one with thousands separators, kept whole
    rf"|[{_UNSEGMENTED}]"  # one character of an unsegmented script
    rf"|[^\W_{_UNSEGMENTED}]+"  # a word: letters, digits, marks (\w without "_" and those scripts)
)


def tokenize(text: Any) -> list[str]:
    """Split one text into tokens (see the module docstring for the rules).

    Args:
        text: a string; missing values (None, NaN) give no tokens, other values are read as text.

    Returns:
        Lowercase tokens in reading order, e.g. ``"Scored 2.5 goals!"`` -> ``["scored", "2.5",
        "goals"]`` and ``"今天下雨"`` -> ``["今", "天", "下", "雨"]``.
    """
    text = _as_text(text)
    if not text:
        return []
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


def word_ngrams(tokens: list[str], ngrams: int) -> list[str]:
    """The distinct n-grams of one tokenised text, in reading order, for a bag of n-grams.

    Args:
        tokens: ``tokenize`` output.
        ngrams: longest n-gram: 1 words only, 2 also pairs of neighbouring words.

    Returns:
        Each distinct n-gram once (a bag counts presence, not repeats), interleaved by the position
        where it ends, so cutting a long text keeps its beginning for words and pairs alike:
        ``["not", "good", "at", "all"]``, 2 -> ``["not", "good", "not good", "at", "good at", "all",
        "at all"]``.
    """
    grams: dict[str, None] = {}  # an ordered set
    for end in range(len(tokens)):
        for n in range(1, min(ngrams, end + 1) + 1):
            grams.setdefault(NGRAM_JOIN.join(tokens[end - n + 1 : end + 1]))
    return list(grams)


def _as_text(value: Any) -> str:
    """A cell as text: '' for missing cells and missing-value tokens such as 'N/A'."""
    if value is None or (not isinstance(value, str) and _is_missing_scalar(value)):
        return ""
    text = value if isinstance(value, str) else str(value)
    return "" if text.strip().lower() in MISSING_TOKENS else text


def _is_missing_scalar(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists, arrays: not a missing scalar
        return False


def as_text_list(texts: Any, what: str = "texts") -> list[str]:
    """Texts as a list of strings, one per row (a single string is refused: it is one text)."""
    if isinstance(texts, str):
        raise DataError(
            f"The {what} must be a list or column of texts, one per row; got one single text. "
            "Wrap it in a list."
        )
    if isinstance(texts, pd.DataFrame):
        raise DataError(f"The {what} must be one column of texts, not a whole table.")
    return [_as_text(t) for t in texts]


# ---------------------------------------------------------------------------------------------
# Labels (the same rules as the tabular preprocessor, repeated so this file stands alone)
# ---------------------------------------------------------------------------------------------


def label_value(value: Any) -> Any:
    """A class label as a plain JSON value: 1.0 -> 1, numpy ints -> int, others -> str."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(value) if float(value).is_integer() else float(value)
    return str(value)


def _sorted_labels(labels: list[Any]) -> list[Any]:
    if all(isinstance(v, bool) for v in labels):
        return sorted(labels)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in labels):
        return sorted(labels)
    return sorted(labels, key=str)


def is_missing_label(value: Any) -> bool:
    """Whether a label cell is empty (None, NaN or a token such as "n/a")."""
    return value is None or _is_missing_scalar(value) or (
        isinstance(value, str) and value.strip().lower() in MISSING_TOKENS
    )


def _quote_list(names: Iterable[Any], limit: int = 20) -> str:
    names = list(names)
    shown = ", ".join(repr(str(n)) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _check_setting(name: str, value: Any, low: int, meaning: str, typical: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise DataError(
            f"The {meaning} ('{name}') must be a whole number of at least {low}; got {value!r}. "
            f"A typical value is {typical}."
        )
    return int(value)


# ---------------------------------------------------------------------------------------------
# The preprocessor
# ---------------------------------------------------------------------------------------------


class TextPreprocessor(DecisionThreshold):
    """Turns texts into padded token ids and model outputs back into labels.

    Fit on the training split only, so no word seen only in validation or test rows enters the
    vocabulary (such words map to ``<unk>``). Missing or empty texts become all padding.
    """

    def __init__(self) -> None:
        self._vocabulary: list[str] | None = None  # token of each id; 0 is <pad>, 1 is <unk>
        self._index: dict[str, int] = {}
        self._max_length: int | None = None
        self._settings: dict[str, Any] = {}
        self._classes: list[Any] = []
        self._task: str | None = None
        self._target: str | None = None
        self._text_column: str | None = None

    # -- fitting --------------------------------------------------------------------------------

    def fit(
        self,
        texts: Iterable[Any],
        labels: Iterable[Any],
        task: str,
        max_vocab: int = 20_000,
        min_count: int = 2,
        max_length: int | None = None,
        *,
        ngrams: int = 1,
        classes: list[Any] | None = None,
        text_column: str | None = None,
        target: str | None = None,
    ) -> TextPreprocessor:
        """Learn the vocabulary, the sequence length and the classes from the training rows.

        The vocabulary holds ``<pad>`` (id 0), ``<unk>`` (id 1), then every token seen at least
        ``min_count`` times, most frequent first and ties in alphabetical order, so the same data
        always gives the same ids. ``max_length`` defaults to the 95th percentile of the training
        texts' token counts (rounded up, at least 1, at most 256): long enough to read almost
        every text in full, without padding every row to the one exceptionally long text.
        A bag of n-grams (``ngrams=2``) counts words and word pairs once per text: ``min_count``
        is then the number of training texts an n-gram must appear in, and ``max_length`` may
        reach 1024.

        Args:
            texts: the training texts (missing values allowed).
            labels: their classes, one per text (no missing values).
            task: ``"binary"`` or ``"multiclass"``.
            max_vocab: most vocabulary entries, ``<pad>`` and ``<unk>`` included.
            min_count: a token needs this many occurrences in the training texts to get an id.
            max_length: tokens kept per text (longer texts keep their beginning); ``None``: fit it.
            ngrams: 1 reads words in order (sequence models); 2 a bag of the distinct words and
                word pairs of each text (a bag layer such as EmbeddingBag). See ``word_ngrams``.
            classes: every class label (pass those of the whole table so a class absent from the
                training rows still decodes); defaults to the labels given.
            text_column: the column the texts come from, so ``transform`` can take a table.
            target: the name of the column to predict, for messages.

        Returns:
            ``self``, fitted.

        Raises:
            DataError: unknown task, bad settings, texts and labels of different lengths, no
                words at all, missing labels, or the wrong number of classes.
        """
        if task not in TASKS:
            raise DataError(
                f"The task {task!r} is not known for text. Choose one of: {', '.join(TASKS)}."
            )
        max_vocab = _check_setting("max_vocab", max_vocab, 3, "largest vocabulary", "20000")
        min_count = _check_setting("min_count", min_count, 1, "fewest uses of a word", "2")
        if max_length is not None:
            max_length = _check_setting("max_length", max_length, 1, "longest text in tokens", "128")
        ngrams = _check_ngrams(ngrams)
        text_list = as_text_list(texts)
        label_list = list(labels)
        name = target or "the label column"
        if len(text_list) != len(label_list):
            raise DataError(
                f"There are {len(text_list)} texts but {len(label_list)} labels; each text needs "
                "exactly one label. Pass the same rows for both."
            )
        missing = sum(is_missing_label(v) for v in label_list)
        if missing:
            raise DataError(
                f"{missing} row(s) have no value in {_quoted(name)}. Remove those rows or fill in "
                "the values."
            )
        tokens = [_units(tokenize(t), ngrams) for t in text_list]
        counts = Counter(token for row in tokens for token in row)
        if not counts:
            raise DataError(
                "The training texts contain no words at all (they are empty or only punctuation), "
                "so there is nothing to learn from. Choose a column with written text."
            )
        # Most frequent first, ties alphabetical: the same data always gives the same ids.
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        words = [token for token, n in ranked if n >= min_count][: max_vocab - 2]
        if max_length is None:
            lengths = np.array([len(row) for row in tokens], dtype=np.float64)
            fitted = float(np.percentile(lengths, LENGTH_PERCENTILE))
            cap = MAX_LENGTH_CAP if ngrams == 1 else BAG_LENGTH_CAP
            max_length = int(min(cap, max(1, int(np.ceil(fitted)))))
        class_labels = fit_classes(label_list if classes is None else classes, task, name)
        # Assign only once everything fitted, so a failed refit leaves the old state intact.
        self._vocabulary = [PAD, UNK, *words]
        self._index = {token: i for i, token in enumerate(self._vocabulary)}
        self._max_length = max_length
        self._settings = {"max_vocab": max_vocab, "min_count": min_count, "ngrams": ngrams}
        self._classes, self._task = class_labels, task
        self._target, self._text_column = target, text_column
        logger.info(
            "Fitted text preprocessing on %d texts (%s): %d distinct tokens, vocabulary %d, length %d",
            len(text_list), "words in order" if ngrams == 1 else f"a bag of 1- to {ngrams}-grams",
            len(counts), len(self._vocabulary), max_length,
        )
        return self

    # -- using ------------------------------------------------------------------------------------

    def transform(self, texts: Any) -> np.ndarray:
        """Turn texts into padded token ids.

        Args:
            texts: a list/Series/array of texts, or a table holding the fitted text column.

        Returns:
            float32 ``(N, max_length)``: token ids (unknown tokens -> 1), texts longer than
            ``max_length`` keep their first tokens, shorter ones are padded at the end with 0; a
            missing or empty text is all zeros. float32 because every model input of the product
            is float32; Embedding casts the ids back to integers. A bag of n-grams holds each
            distinct id of a text once (so "unknown" at most once), in reading order.

        Raises:
            DataError: a table without the text column.
        """
        self._fitted()
        if isinstance(texts, pd.DataFrame):
            texts = self._column_of(texts)
        text_list = as_text_list(texts)
        length = self._max_length
        ids = np.zeros((len(text_list), length), dtype=np.float32)  # (N, T), 0 = <pad>
        index, ngrams = self._index, self.ngrams
        cache: dict[str, list[int]] = {}  # texts repeat (and "" is common): tokenise each once
        for row, text in enumerate(text_list):
            row_ids = cache.get(text)
            if row_ids is None:
                row_ids = [index.get(token, UNK_ID) for token in _units(tokenize(text), ngrams)]
                if ngrams > 1:  # a bag: unknown n-grams all map to 1, which counts once
                    row_ids = list(dict.fromkeys(row_ids))
                row_ids = row_ids[:length]
                cache[text] = row_ids
            ids[row, : len(row_ids)] = row_ids
        return ids

    def predict_with(self, texts: Any, run: Callable[[np.ndarray], np.ndarray]) -> pd.DataFrame:
        """Predictions for raw texts (or a table with the text column), as the app and a bundle give them.

        Args:
            texts: as for ``transform``.
            run: the model: token ids ``(N, T)`` -> raw outputs.
        """
        return self.decode_outputs(run(self.transform(texts)))

    @staticmethod
    def mask(ids: np.ndarray) -> np.ndarray:
        """Which positions hold a real token (``True``) rather than padding: bool ``(N, T)``."""
        return np.asarray(ids) != PAD_ID

    @staticmethod
    def lengths(ids: np.ndarray) -> np.ndarray:
        """Real tokens per row after truncation: int64 ``(N,)`` (0 for a missing text)."""
        return TextPreprocessor.mask(ids).sum(axis=1).astype(np.int64)

    def encode_target(self, labels: Any) -> np.ndarray:
        """Encode labels for training.

        Args:
            labels: one label per row (no missing values).

        Returns:
            binary: float32 ``(N, 1)`` of 0/1 (1 is the second class in sorted order);
            multiclass: int64 ``(N,)`` class indexes.

        Raises:
            DataError: a label is missing or not a known class.
        """
        self._fitted()
        values = list(labels)
        name = self._target or "the label column"
        missing = sum(is_missing_label(v) for v in values)
        if missing:
            raise DataError(
                f"{missing} row(s) have no value in {_quoted(name)}. Remove those rows or fill in "
                "the values."
            )
        # Compare through the JSON label, so 1, 1.0 and np.int64(1) are all class "1".
        index = {str(label): i for i, label in enumerate(self._classes)}
        codes = np.array([index.get(str(label_value(v)), -1) for v in values], dtype=np.int64)
        if (codes < 0).any():
            unknown = list(dict.fromkeys(str(v) for v, c in zip(values, codes, strict=True) if c < 0))
            raise DataError(
                f"{_sentence_start(_quoted(name))} contains {_quote_list(unknown)}, which did not "
                f"appear when the model was set up (known values: {_quote_list(self._classes)}). "
                "Remove those rows."
            )
        if self._task == "binary":
            return codes.astype(np.float32)[:, None]  # (N, 1)
        return codes  # (N,)

    def decode_outputs(self, outputs: np.ndarray) -> pd.DataFrame:
        """Turn raw model outputs into labels and probabilities.

        Args:
            outputs: ``(N, n_outputs)`` raw outputs: one logit (binary) or k logits (multiclass).
                A 1-D array is read as one output per row.

        Returns:
            A frame with ``prediction`` (the label as written in the training data) and one
            ``probability_<class>`` column per class (each row sums to 1).

        Raises:
            DataError: the number of outputs per row does not match the classes.
        """
        self._fitted()
        out = output_matrix(outputs, self.n_outputs, "row", f"predicting one of {len(self._classes)} classes")
        return decode_class_outputs(out, self._task, self._classes, self._decision_threshold)

    # -- description ------------------------------------------------------------------------------

    @property
    def task(self) -> str:
        """``"binary"`` or ``"multiclass"``."""
        self._fitted()
        return self._task  # type: ignore[return-value]

    @property
    def target(self) -> str | None:
        """The column to predict, when known."""
        self._fitted()
        return self._target

    @property
    def text_column(self) -> str | None:
        """The column the texts are read from, when known."""
        self._fitted()
        return self._text_column

    @property
    def ngrams(self) -> int:
        """1: words in order (sequence models); 2: a bag of distinct words and word pairs."""
        self._fitted()
        return int(self._settings.get("ngrams", 1))  # states saved before n-grams read words

    @property
    def vocabulary(self) -> list[str]:
        """Token of each id, in id order (``<pad>``, ``<unk>``, then by training frequency)."""
        return list(self._fitted())

    @property
    def vocab_size(self) -> int:
        """Number of ids, padding and unknown included: Embedding's ``num_embeddings``."""
        return len(self._fitted())

    @property
    def max_length(self) -> int:
        """Tokens per row in ``transform``'s output (T)."""
        self._fitted()
        return self._max_length  # type: ignore[return-value]

    @property
    def input_shape(self) -> tuple[int]:
        """Shape of one sample: ``(T,)``."""
        return (self.max_length,)

    @property
    def classes(self) -> list[Any]:
        """Class labels in output order, as written in the training data."""
        self._fitted()
        return list(self._classes)

    @property
    def n_outputs(self) -> int:
        """Outputs per row the model needs: 1 (binary) or the number of classes."""
        return len(self.classes) if self.task == "multiclass" else 1

    def token_id(self, token: str) -> int:
        """The id of one token (1, ``<unk>``, when it is not in the vocabulary)."""
        self._fitted()
        return self._index.get(token, UNK_ID)

    # -- persistence ----------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The fitted state as plain JSON (dicts, lists, str, int, bool, None)."""
        vocabulary = self._fitted()
        return copy.deepcopy(
            {
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "tokenizer": TOKENIZER,
                "task": self._task,
                "target": self._target,
                "text_column": self._text_column,
                "settings": self._settings,
                "max_length": self._max_length,
                "classes": self._classes,
                "vocabulary": vocabulary,
                **self._decision_state(),
            }
        )

    @classmethod
    def from_dict(cls, state: dict) -> TextPreprocessor:
        """Rebuild a fitted preprocessor from ``to_dict`` output (e.g. a bundle's preprocess.json).

        Raises:
            DataError: the state is not text preprocessing state, has an unsupported version or
                tokenizer, or is damaged.
        """
        check_saved_state(state, FORMAT, FORMAT_VERSION, "text", f"tokenizer={TOKENIZER}")
        pre = cls()
        try:
            vocabulary = [str(t) for t in state["vocabulary"]]
            max_length = state["max_length"]
            valid = (
                vocabulary[:2] == [PAD, UNK]
                and len(set(vocabulary)) == len(vocabulary)
                and isinstance(max_length, int)
                and max_length >= 1
                and state["task"] in TASKS
                and len(state["classes"]) >= 2
            )
            if not valid:
                raise ValueError("inconsistent values")
            pre._settings = dict(state["settings"])
            _check_ngrams(pre._settings.get("ngrams", 1))
            most = pre._settings.get("max_vocab", len(vocabulary))
            if type(most) is not int or len(vocabulary) > most:  # each entry is a row of the model's embedding
                raise KeyError(f"a vocabulary of {len(vocabulary):,} entries for max_vocab {most!r}")
            pre._classes = list(state["classes"])
            pre._task, pre._target = state["task"], state["target"]
            pre._text_column = state["text_column"]
            if not all(isinstance(name, str | None) for name in (pre._target, pre._text_column)):
                raise KeyError("text_column")
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(
                f"The text preprocessing file is incomplete or damaged (problem with {error}). "
                "Export the model again."
            ) from None
        pre._vocabulary, pre._max_length = vocabulary, max_length
        pre._index = {token: i for i, token in enumerate(vocabulary)}
        pre._load_decision_state(state)
        return pre

    # -- internals ------------------------------------------------------------------------------

    def _fitted(self) -> list[str]:
        if self._vocabulary is None:
            raise RuntimeError("The text preprocessor is not fitted yet: call fit() first.")
        return self._vocabulary

    def _column_of(self, df: pd.DataFrame) -> pd.Series:
        column = self._text_column
        if column is None or column not in df.columns:
            name = "text column" if column is None else f"column named '{column}'"
            raise DataError(
                f"The data has no {name}, which holds the texts the model reads. Add it with the "
                f"same name as in the training data (columns now: {_quote_list(df.columns)})."
            )
        return df[column]


def _units(tokens: list[str], ngrams: int) -> list[str]:
    """What a text is read as: its tokens in order (``ngrams=1``) or its bag of n-grams."""
    return tokens if ngrams == 1 else word_ngrams(tokens, ngrams)


def _check_ngrams(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= MAX_NGRAMS:
        raise DataError(
            f"The longest word group ('ngrams') must be 1 (words in order) or up to {MAX_NGRAMS} "
            f"(a bag of words and word pairs); got {value!r}."
        )
    return int(value)


def _quoted(name: str) -> str:
    return name if name == "the label column" else f"'{name}'"


def _sentence_start(text: str) -> str:
    return text[:1].upper() + text[1:]


def fit_classes(labels: list[Any], task: str, name: str) -> list[Any]:
    """The sorted class labels of ``labels``, checked against ``task`` (``name``: the column)."""
    present = [v for v in labels if not is_missing_label(v)]
    classes = _sorted_labels(list({str(v): v for v in map(label_value, present)}.values()))
    if task == "binary" and len(classes) != 2:
        raise DataError(
            f"{_sentence_start(_quoted(name))} has {len(classes)} distinct value(s) "
            f"({_quote_list(classes)}) but a yes/no prediction (binary) needs exactly 2. "
            "Choose multiclass, or another column."
        )
    if len(classes) < 2:
        raise DataError(
            f"{_sentence_start(_quoted(name))} has only one value ({_quote_list(classes)}), so there "
            "is nothing to predict. Choose another column."
        )
    return classes


# ---------------------------------------------------------------------------------------------
# Checking a text column
# ---------------------------------------------------------------------------------------------


def check_text_column(df: pd.DataFrame, column: str) -> None:
    """Refuse a column that cannot serve as the text to learn from, saying why in plain words.

    Args:
        df: the table.
        column: the column meant to hold the texts.

    Raises:
        DataError: the column is not in the table; fewer than half its rows (or fewer than 10)
            hold text; it holds numbers rather than words; or its texts average fewer than two
            words (a category or a code rather than text).
    """
    if column not in df.columns:
        raise DataError(
            f"The text column '{column}' is not in the table. Columns: {_quote_list(df.columns)}."
        )
    texts = [_as_text(v).strip() for v in df[column]]
    present = [t for t in texts if t]
    if len(present) < MIN_TEXTS or len(present) < MIN_PRESENT_SHARE * len(texts):
        raise DataError(
            f"The column '{column}' is mostly empty: only {len(present)} of {len(texts)} rows hold "
            f"any text, and a text model needs at least half of the rows (and at least "
            f"{MIN_TEXTS}) filled in. Fill in the texts or choose another column."
        )
    numbers = pd.to_numeric(pd.Series(present).str.replace(",", "", regex=False), errors="coerce")
    if pd.api.types.is_numeric_dtype(df[column]) or numbers.notna().mean() >= NUMBER_SHARE:
        raise DataError(
            f"The column '{column}' holds numbers (for example {cell_text(present[0])}), not written text, "
            "so a text model cannot read it. Use it as a number in a table model, or choose the "
            "column that holds the texts."
        )
    mean_tokens = float(np.mean([len(tokenize(t)) for t in present]))
    if mean_tokens < MIN_MEAN_TOKENS:
        raise DataError(
            f"The texts in '{column}' are too short to learn from: {mean_tokens:.1f} word(s) per "
            f"row on average (for example {cell_text(present[0])}). It looks like a category or a code; "
            "use it in a table model, or choose a column with sentences."
        )


@dataclass(frozen=True)
class TextColumnGuess:
    """Whether a table is texts to classify, and which column holds them (``find_text_column``).

    Attributes:
        column: the free-text column a text model reads, or ``None``: learn from the table's columns.
        reason: why, in one plain sentence (for the log and the Data page).
        left_out: with ``column``: the other input columns, which a text model does not read.
        unread: without ``column``: the free-text columns, which a table model reads only as
            categories (a text that repeats word for word), not word by word.
    """

    column: str | None
    reason: str
    left_out: tuple[str, ...] = ()
    unread: tuple[str, ...] = ()


def find_text_column(df: pd.DataFrame, target: str | None, profile: Any = None) -> TextColumnGuess:
    """Find the free-text column that carries a table's signal, if there is one.

    A column is free text when the profile says so (long, mostly distinct strings) and a text model
    can read it (``check_text_column``). The table is texts to classify when such a column exists
    and at most ``MAX_SIDE_COLUMNS`` other columns could be inputs (an id, a date, a category
    beside the review); of several text columns the one with the most words per row is read.
    A wider table stays a table, and the guess lists its text columns as ``unread``, so the caller
    can say that a table model does not read their words.

    Args:
        df: the table as read.
        target: the column to predict (never the text), or ``None`` when it is not chosen yet: one
            of the other columns will be the label, so one more of them is allowed.
        profile: the table's ``TableProfile`` when the caller has one (else it is made here).

    Returns:
        A ``TextColumnGuess``.
    """
    from builder.data.profile import profile_table, suggest_features

    profile = profile if profile is not None else profile_table(df)
    sample = df if len(df) <= DETECT_ROWS else df.sample(DETECT_ROWS, random_state=0)
    words: dict[str, float] = {}  # free-text column -> mean tokens per non-empty text
    for column in profile.columns:
        if column.kind != "text" or column.name == target or column.constant or column.mostly_missing:
            continue
        try:
            check_text_column(sample, column.name)
        except DataError:
            continue  # too short or too empty to read as text: a table model treats it as a category
        texts = [t for t in (_as_text(v) for v in sample[column.name]) if t.strip()]
        words[column.name] = float(np.mean([len(tokenize(t)) for t in texts]))
    if not words:
        return TextColumnGuess(None, "no column holds free text (sentences of several words)")
    inputs = suggest_features(profile, target)
    others = [name for name in inputs if name not in words]
    best = max(words, key=lambda name: (words[name], -list(words).index(name)))  # ties: the first
    if len(others) > MAX_SIDE_COLUMNS + (target is None):
        listed = _quote_list(words, 5)
        return TextColumnGuess(
            None, f"the table has {len(others)} other input columns besides the free text in {listed}",
            unread=tuple(words))
    side = f" beside {len(others)} other column(s)" if others else " and nothing else to learn from"
    return TextColumnGuess(
        best, f"'{best}' holds free text (about {words[best]:.0f} words per row){side}",
        left_out=tuple(name for name in inputs if name != best))


# ---------------------------------------------------------------------------------------------
# From a table to training arrays
# ---------------------------------------------------------------------------------------------


@dataclass
class PreparedText:
    """Everything training and evaluation need from a text table.

    Attributes:
        preprocessor: fitted on the training rows; also decodes model outputs.
        X_train, X_val, X_test: float32 ``(N, T)`` padded token ids.
        y_train, y_val, y_test: float32 ``(N, 1)`` (binary) or int64 ``(N,)`` (multiclass).
        raw_val, raw_test: those rows exactly as read (all columns).
        train_idx, val_idx, test_idx: positions of each set's rows in the input table.
        input_shape: ``(T,)``.
        n_outputs: 1 for binary, the number of classes for multiclass.
    """

    preprocessor: TextPreprocessor
    X_train: np.ndarray
    X_val: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_val: np.ndarray
    y_test: np.ndarray
    raw_val: pd.DataFrame
    raw_test: pd.DataFrame
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    input_shape: tuple[int, ...]
    n_outputs: int
    raw_train: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)

    @property
    def task(self) -> str:
        """The task the data was prepared for."""
        return self.preprocessor.task

    @property
    def vocab_size(self) -> int:
        """Embedding's ``num_embeddings`` (pass it to ``builder.layers.token_input``)."""
        return self.preprocessor.vocab_size

    def true_targets(self, split: str) -> np.ndarray:
        """The labels of the "val" or "test" rows as written, comparable with decoded predictions."""
        raw = {"val": self.raw_val, "test": self.raw_test}[split]
        return raw[self.preprocessor.target].to_numpy()


def prepare_text(
    df: pd.DataFrame,
    text_column: str,
    target: str,
    task: str,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 42,
    test_rows: np.ndarray | None = None,
    val_rows: np.ndarray | None = None,
    **fit_options: Any,
) -> PreparedText:
    """Check, split (stratified) and tokenise a text table for training.

    Args:
        df: the table as read.
        text_column: the column holding the texts.
        target: the column to predict.
        task: ``"binary"`` or ``"multiclass"``.
        val_fraction: share of rows for validation.
        test_fraction: share of rows for the final test.
        seed: random seed for the split.
        test_rows: boolean mask over ``df``'s rows that are the test set (replaces
            ``test_fraction``; see ``split_indices``).
        val_rows: boolean mask over ``df``'s rows that are the validation set (replaces
            ``val_fraction``: a cross-validation fold).
        **fit_options: ``max_vocab``, ``min_count``, ``max_length``, ``ngrams`` for
            ``TextPreprocessor.fit``.

    Returns:
        A ``PreparedText``; rows without a label are left out (and the count logged). Rows with
        a missing text stay (they become all padding).

    Raises:
        DataError: the text column, the target, the task or the fractions cannot be used.
    """
    from builder.data.preprocess import missing_mask
    from builder.data.profile import check_target
    from builder.data.split import split_indices

    if task not in TASKS:
        raise DataError(
            f"The task {task!r} is not known for text. Choose one of: {', '.join(TASKS)}."
        )
    if target == text_column:
        raise DataError(
            f"'{target}' is the column to predict, so it cannot also be the text to read. "
            "Choose another text column or another column to predict."
        )
    check_text_column(df, text_column)
    check_target(df, target, task)
    kept = np.flatnonzero(~missing_mask(df[target]))
    dropped = len(df) - len(kept)
    if dropped:
        logger.info("Leaving out %d row(s) with no value in %r", dropped, target)
    labels = df[target].iloc[kept]
    held = None if test_rows is None else np.asarray(test_rows, dtype=bool)[kept]
    held_val = None if val_rows is None else np.asarray(val_rows, dtype=bool)[kept]  # a CV fold
    parts = split_indices(labels, task, val_fraction, test_fraction, seed, test_rows=held, val_rows=held_val)
    train, val, test = (kept[part] for part in parts)  # positions in the kept rows -> in df
    rows = {name: df.iloc[idx] for name, idx in (("train", train), ("val", val), ("test", test))}
    preprocessor = TextPreprocessor().fit(
        rows["train"][text_column],
        rows["train"][target],
        task,
        classes=pd.unique(labels).tolist(),  # a class absent from training still decodes
        text_column=text_column,
        target=target,
        **fit_options,
    )
    logger.info(
        "Prepared %d training, %d validation and %d test texts of %d tokens",
        len(train), len(val), len(test), preprocessor.max_length,
    )
    return PreparedText(
        preprocessor=preprocessor,
        X_train=preprocessor.transform(rows["train"]),
        X_val=preprocessor.transform(rows["val"]),
        X_test=preprocessor.transform(rows["test"]),
        y_train=preprocessor.encode_target(rows["train"][target]),
        y_val=preprocessor.encode_target(rows["val"][target]),
        y_test=preprocessor.encode_target(rows["test"][target]),
        raw_val=rows["val"],
        raw_test=rows["test"],
        train_idx=train,
        val_idx=val,
        test_idx=test,
        input_shape=preprocessor.input_shape,
        n_outputs=preprocessor.n_outputs,
        raw_train=rows["train"],
    )
