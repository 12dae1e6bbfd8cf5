"""Word attributions of text models: one text explained word by word, and the top words of many texts."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from builder.data.text import NGRAM_JOIN, PAD_ID, UNK_ID, tokenize
from builder.errors import DataError, SpecError
from builder.explain.explained import _attribute, _Explained, _gradients_in_chunks, _outputs, _row_targets, _target
from builder.explain.results import RowExplanation
from builder.explain.sentences import _quote, _row_sentence
from builder.jsonsafe import plain
from builder.trained import TrainedModel


class _Slot(nn.Module):
    """Stands in for a text model's first layer: gives back the vectors it was handed."""

    def __init__(self) -> None:
        super().__init__()
        self.value: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value


class _TextForward:
    """The explained output as a function of each token's word vector ``(B, T, D)``, token ids beside.

    The attribution is taken at the output of the first layer (Embedding, or EmbeddingBag whose
    average is rebuilt here from the per-token vectors), so each token position gets its share.
    A shallow copy of the network with that layer swapped for a slot is used: the run's network is
    never changed, so other threads can keep predicting with it. The padding mask still comes from
    the ids, so both ends of the path (the text, and the text with zero vectors) read it alike.
    """

    def __init__(self, trained: TrainedModel):
        network = trained.model
        first = next(iter(network._modules))
        self.layer = network._modules[first]
        if not isinstance(self.layer, (nn.Embedding, nn.EmbeddingBag)):
            raise SpecError("Word attributions need a text model whose first layer is Embedding or EmbeddingBag.")
        self.slot = _Slot()
        clone = copy.copy(network)
        clone.__dict__["_modules"] = {**network._modules, first: self.slot}
        self.explained = _Explained(trained, clone)

    def vectors(self, ids: torch.Tensor) -> torch.Tensor:
        return self.layer.weight.detach()[ids.long()]  # (B, T) -> (B, T, D)

    def __call__(self, vectors: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        if isinstance(layer, nn.EmbeddingBag):
            real = (ids != PAD_ID) if layer.padding_idx is not None else torch.ones_like(ids, dtype=torch.bool)
            weights = real.unsqueeze(2).to(vectors.dtype)  # (B, T, 1)
            if layer.mode == "max":
                masked = vectors.masked_fill(~real.unsqueeze(2), -torch.inf).amax(dim=1)
                self.slot.value = torch.where(real.any(dim=1, keepdim=True), masked, torch.zeros_like(masked))
            else:
                total = (vectors * weights).sum(dim=1)  # (B, D)
                self.slot.value = total if layer.mode == "sum" else total / weights.sum(dim=1).clamp(min=1.0)
        else:
            self.slot.value = vectors  # (B, T, D)
        return self.explained(ids)


def _text_of(trained: TrainedModel, row: Any) -> str:
    pre = trained.preprocessor
    if isinstance(row, pd.DataFrame):
        if len(row) != 1:
            raise DataError(f"explain_row explains one text; got {len(row)} rows. Pick one, or use top_reasons.")
        row = _text_column(pre, row).iloc[0]
    if row is None or (isinstance(row, float) and math.isnan(row)):
        return ""
    if not isinstance(row, str):
        raise DataError(f"A text to explain must be a string; got {type(row).__name__}.")
    return row


def _text_column(pre: Any, rows: pd.DataFrame) -> pd.Series:
    column = pre.text_column
    if column is None or column not in rows.columns:
        raise DataError(f"The data has no column {column!r}, which holds the texts the model reads. Add it with the "
                        f"same name as in the training data (columns now: {_quote(rows.columns)}).")
    return rows[column]


def _word_shares(text: str, ids: np.ndarray, pre: Any) -> tuple[list[str], list[list[tuple[int, float]]]]:
    """The words of ``text`` and, per position of ``ids``, which words share its attribution.

    Words in order (``ngrams=1``): position p is word p. A bag of n-grams: a position is one
    distinct n-gram id (all unknown n-grams share id 1); its attribution is split evenly over
    every place that id occurs in the text, then evenly over the words of each place, so the
    words' values still add up to the total.
    """
    words = tokenize(text)
    length = len(ids)
    if pre.ngrams == 1:
        return words, [[(p, 1.0)] if p < len(words) and ids[p] != PAD_ID else [] for p in range(length)]
    slot = {int(i): p for p, i in enumerate(ids) if i != PAD_ID}
    places: list[list[list[int]]] = [[] for _ in range(length)]
    for end in range(len(words)):
        for n in range(1, min(pre.ngrams, end + 1) + 1):
            gram = NGRAM_JOIN.join(words[end - n + 1:end + 1])
            p = slot.get(pre.token_id(gram))
            if p is not None:
                places[p].append(list(range(end - n + 1, end + 1)))
    shares = []
    for found in places:
        parts = [(w, 1.0 / len(found) / len(span)) for span in found for w in span]
        shares.append(parts)
    return words, shares


def _word_values(words: list[str], shares: list[list[tuple[int, float]]], attr: np.ndarray) -> list[float]:
    values = np.zeros(len(words))
    for p, parts in enumerate(shares):
        for w, share in parts:
            values[w] += attr[p] * share
    return values.tolist()


def _explain_text(trained: TrainedModel, row: Any, target_class: Any, method: str) -> RowExplanation:
    pre = trained.preprocessor
    text = _text_of(trained, row)
    ids = torch.from_numpy(pre.transform([text]))  # (1, T)
    if method == "shapley":  # remove words (padding id 0) rather than zero their vectors
        forward: Callable = _Explained(trained)
        X, baseline, extra = ids, torch.zeros_like(ids), None
        mask = torch.arange(ids.shape[1]).unsqueeze(0)  # one group per position
        out, base = _outputs(forward, X)[0], _outputs(forward, baseline)[0]
    else:
        forward = _TextForward(trained)
        X = forward.vectors(ids)  # (1, T, D)
        baseline, extra, mask = torch.zeros_like(X), (ids,), None
        out, base = _outputs(forward, X, extra)[0], _outputs(forward, baseline, extra)[0]
    index, target = _target(trained, out, target_class)
    attr, delta = _attribute(forward, X, baseline, index, method, mask=mask, extra=extra)
    per_position = attr[0] if method == "shapley" else attr[0].sum(axis=-1)  # (T,)
    id_row = ids[0].numpy().astype(np.int64)
    words, shares = _word_shares(text, id_row, pre)
    values = _word_values(words, shares, per_position)
    vocabulary = pre.vocabulary
    tokens = [("(unknown words)" if i == UNK_ID else vocabulary[i], float(per_position[p]))
              for p, i in enumerate(id_row) if i != PAD_ID]
    prediction = plain(pre.decode_outputs(trained.predict_outputs(ids.numpy()))["prediction"].iloc[0])
    blank = "an empty text" if method == "shapley" else "the same text with every word blanked out"
    parts = [(f"'{word}'", value) for word, value in zip(words, values, strict=True)]
    sentence = _row_sentence(trained, target, out[index], base[index], parts, baseline_words=blank)
    return RowExplanation("text", method, list(zip(words, values, strict=True)), prediction, target,
                          float(out[index]), float(base[index]), delta, sentence, {"tokens": tokens})


def _text_reasons(trained: TrainedModel, rows: Any, k: int) -> pd.DataFrame:
    pre = trained.preprocessor
    if isinstance(rows, pd.DataFrame):
        index, texts = rows.index, _text_column(pre, rows).tolist()
    else:
        series = pd.Series(rows) if not isinstance(rows, pd.Series) else rows
        index, texts = series.index, series.tolist()
    texts = ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in texts]
    columns = [f"reason_{i + 1}" for i in range(k)]
    if not texts:
        return pd.DataFrame(columns=columns, index=index, dtype=object)
    ids = torch.from_numpy(pre.transform(texts))  # (N, T)
    forward = _TextForward(trained)
    attr = _gradients_in_chunks(forward, ids, _row_targets(trained, ids.numpy()), embed=forward.vectors)  # (N, T, D)
    per_position = attr.sum(axis=-1)  # (N, T)
    id_rows = ids.numpy().astype(np.int64)
    table = []
    for i, text in enumerate(texts):  # word bookkeeping only; the attributions came in one pass
        words, shares = _word_shares(text, id_rows[i], pre)
        totals: dict[str, float] = {}
        for word, value in zip(words, _word_values(words, shares, per_position[i]), strict=True):
            totals[word] = totals.get(word, 0.0) + value
        ranked = sorted(totals.items(), key=lambda item: -abs(item[1]))[:k]
        reasons = [f"'{w}' ({'raises' if v > 0 else 'lowers'})" for w, v in ranked if abs(v) >= 1e-9]
        table.append(reasons + [None] * (k - len(reasons)))
    return pd.DataFrame(table, columns=columns, index=index, dtype=object)
