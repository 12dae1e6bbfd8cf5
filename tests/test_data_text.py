"""Text classification data: tokenising, the fitted vocabulary, padding, JSON state, checks, baseline.

The tables are generated with a fixed seed: three topics (sport / finance / weather) written with
topic words, shared filler words, a few typos and a few missing texts, plus a Chinese variant
written with topic characters and no spaces.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from builder.baselines import fit_text_baseline
from builder.data import DataSpec
from builder.data.text import (
    MAX_LENGTH_CAP,
    PAD_ID,
    UNK_ID,
    PreparedText,
    TextPreprocessor,
    check_text_column,
    find_text_column,
    prepare_text,
    tokenize,
    word_ngrams,
)
from builder.errors import DataError
from builder.layers import token_input
from builder.model import build_model
from builder.spec import ModelSpec
from builder.train import TensorData, TrainConfig, fit

TOPICS = {
    "sport": "match goal team player coach score league stadium referee season win striker".split(),
    "finance": "market stock bank profit shares investor price trading budget loan dividend bond".split(),
    "weather": "rain storm forecast sunny wind cloud snow temperature humid cold thunder fog".split(),
}
FILLER = "the a of and to in is was for on with at today yesterday report said very new".split()
TOPICS_ZH = {
    "sport": list("球赛队员跑踢冠军教练进"),
    "finance": list("钱银行股票市场价利息贷投"),
    "weather": list("雨雪风晴阴冷热雷雾温"),
}
FILLER_ZH = list("的了是在我们有这个今天说很")


def _typo(word: str, rng: np.random.Generator) -> str:
    if len(word) < 4:
        return word
    i = int(rng.integers(1, len(word) - 2))
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]  # swap two letters


def make_text_table(n: int = 600, seed: int = 0, chinese: bool = False) -> pd.DataFrame:
    """``text`` and ``topic`` columns; about 2% of texts are missing."""
    rng = np.random.default_rng(seed)
    topics, filler = (TOPICS_ZH, FILLER_ZH) if chinese else (TOPICS, FILLER)
    names = sorted(topics)
    texts, labels = [], []
    for _ in range(n):
        label = names[int(rng.integers(len(names)))]
        words = list(rng.choice(topics[label], size=int(rng.integers(3, 7))))
        words += list(rng.choice(filler, size=int(rng.integers(3, 8))))
        other = names[int(rng.integers(len(names)))]
        words.append(str(rng.choice(topics[other])))  # a word of a random topic: noise
        rng.shuffle(words)
        if not chinese:
            words = [_typo(w, rng) if rng.random() < 0.08 else w for w in words]
            if rng.random() < 0.3:
                words.append(str(int(rng.integers(1, 100))))
        text = ("" if chinese else " ").join(words)
        texts.append(None if rng.random() < 0.02 else text.capitalize() + ("。" if chinese else "."))
        labels.append(label)
    return pd.DataFrame({"text": texts, "topic": labels})


@pytest.fixture(scope="module")
def english() -> pd.DataFrame:
    return make_text_table()


@pytest.fixture(scope="module")
def chinese() -> pd.DataFrame:
    return make_text_table(chinese=True)


@pytest.fixture(scope="module")
def prepared(english) -> PreparedText:
    return prepare_text(english, "text", "topic", "multiclass", 0.15, 0.2, seed=1)


# --- tokenize --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("The Striker SCORED twice!", ["the", "striker", "scored", "twice"]),
        ("Shares rose 2.5% to 1,000 (record)", ["shares", "rose", "2.5", "to", "1,000", "record"]),
        ("今天下雨，很冷。", ["今", "天", "下", "雨", "很", "冷"]),
        ("東京タワーへ", ["東", "京", "タ", "ワ", "ー", "へ"]),
        ("ฝนตก", ["ฝ", "น", "ต", "ก"]),  # Thai: no spaces between words, one token per character
        ("한국어 문장", ["한국어", "문장"]),  # Korean is written with spaces: words
        ("Ｆｕｌｌ　ＷＩＤＴＨ １２", ["full", "width", "12"]),  # NFKC
        ("café naïve snake_case", ["café", "naïve", "snake", "case"]),
        ("sport球赛2024", ["sport", "球", "赛", "2024"]),
        ("...!!! ---", []),
        ("", []),
        (None, []),
        (float("nan"), []),
        ("N/A", []),
        (42, ["42"]),
    ],
)
def test_tokenize(text, tokens):
    assert tokenize(text) == tokens


def test_tokenize_is_deterministic_and_normalises_before_lowercasing():
    text = "Ｍａｒｋｅｔ ﬁnance Ⅻ"
    assert tokenize(text) == tokenize(text) == ["market", "finance", "xii"]


# --- TextPreprocessor -------------------------------------------------------------------------


def _fitted(texts, labels=None, task="multiclass", **options) -> TextPreprocessor:
    labels = labels if labels is not None else [("a", "b", "c")[i % 3] for i in range(len(texts))]
    return TextPreprocessor().fit(texts, labels, task, **options)


def test_vocabulary_is_ordered_by_frequency_then_alphabetically_and_special_ids_come_first():
    pre = _fitted(["b a c", "a b", "a d d", "z"], min_count=1)
    assert pre.vocabulary == ["<pad>", "<unk>", "a", "b", "d", "c", "z"]
    assert pre.vocab_size == 7
    assert (pre.token_id("<pad>"), pre.token_id("<unk>"), pre.token_id("never")) == (PAD_ID, UNK_ID, UNK_ID)


def test_min_count_and_max_vocab_limit_the_vocabulary():
    texts = ["a a a b b c", "a b c d"]
    assert _fitted(texts, min_count=2).vocabulary == ["<pad>", "<unk>", "a", "b", "c"]
    assert _fitted(texts, min_count=1, max_vocab=4).vocabulary == ["<pad>", "<unk>", "a", "b"]


def test_vocabulary_comes_from_the_training_split_only(prepared, english):
    pre = prepared.preprocessor
    train_tokens = {t for text in prepared.raw_train["text"] for t in tokenize(text)}
    assert set(pre.vocabulary[2:]) <= train_tokens
    test_only = {t for text in prepared.raw_test["text"] for t in tokenize(text)} - train_tokens
    assert test_only, "the typos should give the test rows words never seen in training"
    word = sorted(test_only)[0]
    ids = pre.transform([f"{word} {word}"])
    assert ids[0, :2].tolist() == [UNK_ID, UNK_ID]
    # the same word in training would have had its own id
    refit = TextPreprocessor().fit(list(english["text"].fillna("")) + [word] * 2, ["x", "y"] * 301, "binary")
    assert refit.token_id(word) > UNK_ID


def test_transform_pads_truncates_and_marks_lengths():
    pre = _fitted(["one two three", "four five", "six"], min_count=1, max_length=2)
    ids = pre.transform(["one two three", "six", "", None, "unknown words here"])
    assert ids.dtype == np.float32 and ids.shape == (5, 2)
    assert ids.tolist() == [
        [pre.token_id("one"), pre.token_id("two")],  # truncated: keeps the beginning
        [pre.token_id("six"), PAD_ID],  # padded at the end
        [PAD_ID, PAD_ID],  # empty text: all padding
        [PAD_ID, PAD_ID],  # missing text: all padding
        [UNK_ID, UNK_ID],
    ]
    assert pre.lengths(ids).tolist() == [2, 1, 0, 0, 2]
    assert pre.mask(ids).tolist() == [[True, True], [True, False], [False, False], [False, False], [True, True]]
    assert pre.transform([]).shape == (0, 2)


def test_max_length_is_the_95th_percentile_of_training_lengths_capped():
    texts = [" ".join(["w"] * n) for n in range(1, 101)]  # lengths 1..100
    assert _fitted(texts, min_count=1).max_length == int(np.ceil(np.percentile(np.arange(1, 101), 95)))
    long = [" ".join(["w"] * 1000)] * 3
    assert _fitted(long, min_count=1).max_length == MAX_LENGTH_CAP
    assert _fitted(["", "", "word"], min_count=1).max_length == 1  # never 0 columns


def test_prepare_text_shapes_and_stratified_split(prepared, english):
    n = len(english)
    assert len(prepared.train_idx) + len(prepared.val_idx) + len(prepared.test_idx) == n
    assert prepared.X_train.shape == (len(prepared.train_idx), prepared.input_shape[0])
    assert prepared.X_test.dtype == np.float32 and prepared.y_train.dtype == np.int64
    assert prepared.n_outputs == 3 and prepared.preprocessor.classes == ["finance", "sport", "weather"]
    shares = [pd.Series(prepared.true_targets(s)).value_counts(normalize=True) for s in ("val", "test")]
    whole = english["topic"].value_counts(normalize=True)
    for share in shares:
        assert (share - whole).abs().max() < 0.05
    assert prepared.X_train.max() < prepared.vocab_size
    # a missing text is all padding
    missing = english.index[english["text"].isna()]
    assert len(missing)
    rows = np.flatnonzero(np.isin(prepared.train_idx, missing))
    assert (prepared.X_train[rows] == PAD_ID).all()


def test_prepare_text_binary_and_transform_of_a_table(english):
    table = english.assign(is_sport=np.where(english["topic"] == "sport", "yes", "no"))
    data = prepare_text(table, "text", "is_sport", "binary", seed=3)
    assert data.y_train.shape == (len(data.train_idx), 1) and data.y_train.dtype == np.float32
    assert set(np.unique(data.y_train)) == {0.0, 1.0}
    assert data.n_outputs == 1
    np.testing.assert_array_equal(
        data.preprocessor.transform(data.raw_test), data.preprocessor.transform(list(data.raw_test["text"]))
    )


def test_json_round_trip_is_identical(prepared, english):
    pre = prepared.preprocessor
    text = json.dumps(pre.to_dict(), sort_keys=True)
    back = TextPreprocessor.from_dict(json.loads(text))
    assert json.dumps(back.to_dict(), sort_keys=True) == text
    sample = list(english["text"]) + ["brand new words", None, ""]
    assert pre.transform(sample).tobytes() == back.transform(sample).tobytes()
    logits = np.random.default_rng(0).normal(size=(4, 3)) * 5
    pd.testing.assert_frame_equal(pre.decode_outputs(logits), back.decode_outputs(logits))


def test_decode_outputs_gives_labels_and_probabilities_that_sum_to_one(prepared):
    pre = prepared.preprocessor
    logits = np.array([[1000.0, -1000.0, 0.0], [0.0, 5.0, -2.0], [-3.0, -3.0, 9.0]])
    out = pre.decode_outputs(logits)
    assert list(out.columns) == ["prediction", "probability_finance", "probability_sport", "probability_weather"]
    assert out["prediction"].tolist() == ["finance", "sport", "weather"]
    np.testing.assert_allclose(out.filter(like="probability_").sum(axis=1), 1.0)
    assert np.isfinite(out.filter(like="probability_").to_numpy()).all()
    binary = TextPreprocessor().fit(["good film", "bad film"], [0, 1], "binary")
    decoded = binary.decode_outputs(np.array([[-800.0], [0.0], [800.0]]))
    assert decoded["prediction"].tolist() == [0, 0, 1]  # ties go to the first class
    np.testing.assert_allclose(decoded[["probability_0", "probability_1"]].sum(axis=1), 1.0)


def test_encode_target_matches_labels_through_their_json_value():
    pre = TextPreprocessor().fit(["x y", "y z", "z x"], [1, 2, 3], "multiclass", min_count=1)
    assert pre.encode_target([1.0, np.int64(3), 2]).tolist() == [0, 2, 1]


# --- bad input: every message -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: TextPreprocessor().fit(["a b"], ["x"], "regression"), ["task 'regression'", "binary, multiclass"]),
        (lambda: TextPreprocessor().fit(["a b"], ["x"], "binary", max_vocab=2), ["'max_vocab'", "at least 3", "got 2"]),
        (lambda: TextPreprocessor().fit(["a b"], ["x"], "binary", min_count=0), ["'min_count'", "at least 1"]),
        (lambda: TextPreprocessor().fit(["a b"], ["x"], "binary", max_length=1.5), ["'max_length'", "1.5"]),
        (lambda: TextPreprocessor().fit(["a b", "c"], ["x"], "binary"), ["2 texts but 1 labels"]),
        (lambda: TextPreprocessor().fit("a b", ["x"], "binary"), ["one single text", "list"]),
        (lambda: TextPreprocessor().fit(["a", "b"], ["x", None], "binary"), ["1 row(s) have no value"]),
        (lambda: TextPreprocessor().fit(["!!", None], ["x", "y"], "binary"), ["no words at all"]),
        (lambda: TextPreprocessor().fit(["a", "b"], ["x", "x"], "multiclass", target="topic"), ["'topic' has only one value"]),
        (lambda: TextPreprocessor().fit(["a", "b", "c"], ["x", "y", "z"], "binary"), ["3 distinct value(s)", "exactly 2"]),
    ],
)
def test_fit_refuses_bad_input_with_a_plain_message(call, words):
    with pytest.raises(DataError) as caught:
        call()
    for word in words:
        assert word in str(caught.value)


def test_using_the_fitted_preprocessor_wrongly_is_explained(prepared):
    pre = prepared.preprocessor
    with pytest.raises(DataError, match=r"'topic' contains 'politics'.*known values: 'finance', 'sport', 'weather'"):
        pre.encode_target(["sport", "politics"])
    with pytest.raises(DataError, match=r"1 row\(s\) have no value in 'topic'"):
        pre.encode_target(["sport", None])
    with pytest.raises(DataError, match="gave 2 output value.*needs 3"):
        pre.decode_outputs(np.zeros((4, 2)))
    with pytest.raises(DataError, match="The data has no column named 'text'"):
        pre.transform(pd.DataFrame({"body": ["a b"]}))
    with pytest.raises(RuntimeError, match="not fitted"):
        TextPreprocessor().transform(["a"])


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda s: {**s, "format": "builder.tabular-preprocessor"}, ["not a saved text preprocessing file"]),
        (lambda s: {**s, "version": 99}, ["version 99", "Export the model again"]),
        (lambda s: {**s, "tokenizer": "other/1"}, ["tokenizer 'other/1'"]),
        (lambda s: {k: v for k, v in s.items() if k != "vocabulary"}, ["incomplete or damaged", "vocabulary"]),
        (lambda s: {**s, "vocabulary": ["a", "b", "c"]}, ["incomplete or damaged"]),
        (lambda s: {**s, "max_length": 0}, ["incomplete or damaged"]),
        (lambda s: [s], ["not a saved text preprocessing file"]),
    ],
)
def test_from_dict_refuses_foreign_or_damaged_state(prepared, change, words):
    with pytest.raises(DataError) as caught:
        TextPreprocessor.from_dict(change(prepared.preprocessor.to_dict()))
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize(
    ("column", "values", "words"),
    [
        ("body", None, ["text column 'body' is not in the table", "'text'"]),
        ("text", [None] * 30 + ["a real sentence here"] * 20, ["'text' is mostly empty", "only 20 of 50 rows"]),
        ("text", ["one two"] * 5, ["'text' is mostly empty", "only 5 of 5"]),
        ("text", [str(i * 1.5) for i in range(40)], ["'text' holds numbers", "not written text"]),
        ("text", list(range(40)), ["'text' holds numbers"]),
        ("text", ["1,234"] * 35 + ["big words here"] * 5, ["'text' holds numbers"]),
        ("text", ["red", "blue", "green", "red sky"] * 10, ["texts in 'text' are too short", "1.2 word(s)", "category"]),
    ],
)
def test_check_text_column_refuses_what_is_not_text(column, values, words):
    df = pd.DataFrame({"text": values if values is not None else ["a b c"] * 20})
    with pytest.raises(DataError) as caught:
        check_text_column(df, column)
    for word in words:
        assert word in str(caught.value)


def test_check_text_column_accepts_real_text(english, chinese):
    check_text_column(english, "text")
    check_text_column(chinese, "text")


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"task": "regression"}, ["task 'regression' is not known for text"]),
        ({"target": "text"}, ["'text' is the column to predict", "cannot also be the text"]),
        ({"text_column": "source"}, ["texts in 'source' are too short to learn from"]),
        ({"target": "label"}, ["'label', is not in the table"]),
        ({"val_fraction": 0.9}, ["val_fraction", "0.9"]),
    ],
)
def test_prepare_text_refuses_bad_choices(english, kwargs, words):
    options = {"text_column": "text", "target": "topic", "task": "multiclass", **kwargs}
    table = english.assign(source=np.where(english.index % 2, "web", "print"))
    with pytest.raises(DataError) as caught:
        prepare_text(table, **options)
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((["a b"], ["x"], ["a"], ["x"], "regression"), ["not known for text"]),
        ((["a b", "c"], ["x"], ["a"], ["x"], "binary"), ["2 training texts but 1 training labels"]),
        ((["a b"], ["x"], ["a"], ["x", "y"], "binary"), ["1 test texts but 2 test labels"]),
        ((["a b", "c"], ["x", None], ["a"], ["x"], "binary"), ["Some training rows have no label"]),
        ((["a b", "c d"], ["x", "x"], ["a"], ["y"], "binary"), ["only one class"]),
        ((["!!", ""], ["x", "y"], ["a"], ["y"], "binary"), ["no words at all"]),
    ],
)
def test_fit_text_baseline_refuses_bad_input(args, words):
    with pytest.raises(DataError) as caught:
        fit_text_baseline(*args)
    for word in words:
        assert word in str(caught.value)


# --- learning: the TF-IDF baseline and a tiny network ---------------------------------------------


@pytest.mark.parametrize("language", ["english", "chinese"])
def test_tfidf_baseline_learns_the_topics(language, request):
    table = request.getfixturevalue(language)
    data = prepare_text(table, "text", "topic", "multiclass", 0.15, 0.2, seed=1)
    train, test = data.raw_train, data.raw_test
    result = fit_text_baseline(train["text"], train["topic"], test["text"], test["topic"], "multiclass")
    assert result.metrics["accuracy"] > 0.9, result.metrics
    assert set(result.metrics) >= {"accuracy", "f1_macro", "roc_auc"}
    assert len(result.predictions) == len(test)
    np.testing.assert_allclose(result.predictions.filter(like="probability_").sum(axis=1), 1.0)
    if language == "chinese":  # characters one by one: the vocabulary is characters
        vocabulary = result.estimator["vectorizer"].vocabulary_
        assert "雨" in vocabulary and all(len(token) == 1 for token in vocabulary)


def test_embedding_mean_pool_network_learns_the_english_topics(prepared):
    spec = ModelSpec.from_dict({"family": "mlp", "layers": [
        {"type": "Embedding", "embedding_dim": 16},
        {"type": "SequencePool", "mode": "mean"},
    ]})
    with token_input(prepared.vocab_size):
        model = build_model(spec, prepared.input_shape, prepared.n_outputs, seed=0)
    data = TensorData(prepared.X_train, prepared.y_train, prepared.X_val, prepared.y_val)
    config = TrainConfig(epochs=12, batch_size=32, lr=0.02, device="cpu", seed=0, early_stopping_patience=None)
    result = fit(model, data, "multiclass", config)
    with torch.no_grad():
        logits = result.model(torch.from_numpy(prepared.X_test)).numpy()
    predicted = prepared.preprocessor.decode_outputs(logits)["prediction"]
    accuracy = float((predicted.to_numpy() == prepared.true_targets("test")).mean())
    assert accuracy > 0.85, accuracy


# --- a bag of n-grams (the MLP family's input) ------------------------------------------------------


def test_word_ngrams_are_distinct_and_interleaved_in_reading_order():
    tokens = ["not", "good", "not", "good", "at", "all"]
    assert word_ngrams(tokens, 1) == ["not", "good", "at", "all"]
    assert word_ngrams(tokens, 2) == ["not", "good", "not good", "good not", "at", "good at", "all", "at all"]
    assert word_ngrams([], 2) == []


def test_bag_of_ngrams_ids_are_distinct_padded_and_round_trip_through_json():
    texts = ["Not good at all", "good food, good price", "not bad", "good good good"] * 3
    pre = _fitted(texts, ["no", "yes", "yes", "yes"] * 3, task="binary", ngrams=2, min_count=1)
    assert pre.ngrams == 2 and "not good" in pre.vocabulary and "good food" in pre.vocabulary
    ids = pre.transform(["good good good", "not good, unheard-of words", None])
    assert ids.dtype == np.float32 and ids.shape == (3, pre.max_length)
    good = pre.token_id("good")
    # Each n-gram once ("good", "good good"), then padding.
    assert ids[0].tolist() == [good, pre.token_id("good good")] + [0] * (pre.max_length - 2)
    row = ids[1][ids[1] != 0].tolist()
    assert row[:3] == [pre.token_id("not"), good, pre.token_id("not good")]
    assert row.count(UNK_ID) == 1  # unknown words and pairs count once, not once each
    assert not ids[2].any()  # a missing text: all padding
    state = json.loads(json.dumps(pre.to_dict()))
    assert state["settings"]["ngrams"] == 2
    again = TextPreprocessor.from_dict(state)
    assert again.ngrams == 2
    np.testing.assert_array_equal(again.transform(texts), pre.transform(texts))


def test_states_saved_before_ngrams_read_words_in_order_and_bad_ngrams_are_refused(prepared, english):
    state = prepared.preprocessor.to_dict()
    del state["settings"]["ngrams"]  # as an older app wrote it
    old = TextPreprocessor.from_dict(state)
    assert old.ngrams == 1
    np.testing.assert_array_equal(old.transform(english["text"]), prepared.preprocessor.transform(english["text"]))
    state["settings"]["ngrams"] = 5
    with pytest.raises(DataError, match="damaged"):
        TextPreprocessor.from_dict(state)
    with pytest.raises(DataError, match="'ngrams'"):
        _fitted(["a b c"] * 4, ["x", "y"] * 2, ngrams=0)


def test_bag_length_may_exceed_the_sequence_cap():
    long_texts = [" ".join(f"w{i}" for i in range(400))] * 4  # 400 words, 799 distinct n-grams
    bag = _fitted(long_texts, ["x", "y"] * 2, ngrams=2, min_count=1)
    words = _fitted(long_texts, ["x", "y"] * 2, min_count=1)
    assert words.max_length == MAX_LENGTH_CAP and bag.max_length == 799


# --- which column holds the texts ------------------------------------------------------------------


def _reviews(english: pd.DataFrame) -> pd.DataFrame:
    """A table like the issue's: a product code (repeating), the review text, the score."""
    rng = np.random.default_rng(0)
    products = [f"P{int(i):03d}" for i in rng.integers(0, 40, len(english))]
    return pd.DataFrame({"product_id": products, "review": english["text"], "score": english["topic"]})


def test_find_text_column_reads_the_review_and_names_what_it_leaves_out(english):
    guess = find_text_column(_reviews(english), "score")
    assert guess.column == "review"
    assert "'review' holds free text" in guess.reason
    assert guess.left_out == ("product_id",)
    assert find_text_column(english, "topic").column == "text"  # nothing else to learn from
    assert find_text_column(_reviews(english), None).column == "review"  # no label chosen yet


def test_find_text_column_finds_none_in_short_categories_or_a_wide_table(english):
    rng = np.random.default_rng(1)
    n = len(english)
    categories = pd.DataFrame({"city": rng.choice(["Paris", "Lyon", "Nice", "New York"], n),
                               "plan": rng.choice(["basic", "premium plus"], n), "churn": rng.choice(["y", "n"], n)})
    guess = find_text_column(categories, "churn")
    assert guess.column is None and not guess.unread and "no column holds free text" in guess.reason
    wide = _reviews(english).assign(**{f"x{i}": rng.normal(size=n) for i in range(3)})
    guess = find_text_column(wide, "score")
    assert guess.column is None and guess.unread == ("review",)  # the caller says its words are not read


def test_the_default_text_model_is_a_fast_bag_of_ngrams_that_matches_tf_idf(english):
    from builder.pipeline import train_model
    from builder.templates import BAG_MAX_TEXTS, default_family

    assert default_family("multiclass", "text", 5_000) == "mlp"
    assert default_family("multiclass", "text", BAG_MAX_TEXTS) == "transformer"
    data_spec = DataSpec("topic", "multiclass", ["text"], kind="text", options={"text_column": "text"})
    trained = train_model(english, data_spec, TrainConfig(device="cpu", seed=0))  # default family and settings
    assert [layer.type for layer in trained.spec.layers] == ["EmbeddingBag"]
    assert trained.preprocessor.ngrams == 2 and trained.data_spec.options["ngrams"] == 2
    assert trained.seconds < 60, trained.seconds  # seconds, not minutes: about 5 s on 2 idle cores
    accuracy = trained.metrics["test"]["accuracy"]
    assert accuracy >= trained.baseline.metrics["accuracy"] - 0.03, (accuracy, trained.baseline.metrics)
