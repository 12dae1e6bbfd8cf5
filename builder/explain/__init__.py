"""Why a trained model predicts what it does: column importance, one input's reasons, dependence curves.

Four questions an analyst asks of a model, each answered in the units of the data:

* Which columns matter? ``column_importance``: permutation importance (scikit-learn) on the test
  rows kept with the run. One original column is shuffled at a time and the drop in accuracy
  (classes) or R² (numbers) is how much the model leans on it. Model-agnostic, measured on rows
  the model never trained on, and per original column (the one-hot parts of a category are
  shuffled together), which is what an analyst can act on.
* Why this prediction? ``explain_row`` (and ``what_if`` for a changed row): integrated gradients
  (captum) by default, because its attributions are *complete*: they add up to the output for
  the input minus the output for a baseline input, up to the numerical error of the path
  integral, which is reported as ``delta``. ``method="shapley"`` uses Shapley value sampling
  instead (no gradients; also adds up exactly, one feature group at a time). Table attributions
  are summed back from the preprocessed features to the original columns.
* How does the prediction move with one column? ``dependence``: partial dependence (the average
  curve) and individual conditional expectation curves (one per row), scikit-learn's brute force
  over the raw rows, all other columns as they are in the data.
* Why each of many rows? ``top_reasons``: integrated gradients over many rows at once (in chunks
  that bound the memory, never one row at a time), the ``k`` columns (or words) that pushed each
  prediction most.

What is explained (``output``): the probability of one class for classification (binary: the
second, "positive" class by default; multiclass: the predicted class), the prediction in original
units for regression and forecasts, the reconstruction error for an anomaly model. Attributions
are in those units too (a probability share, or the target's units).

Baselines (what an attribution is measured against):

* tables: a *typical row*, every number at its training median, every yes/no and category at its
  most frequent training value, every date at its middle date parts (the preprocessor's own
  fill values). With quantile scaling a median maps to about 0, so for numbers this is the
  "zeros after scaling" input; unlike all zeros, it is a row the model could really see (all-zero
  one-hot parts are no category at all).
* images: every pixel at the training mean colour (zeros after normalising).
* text (integrated gradients): every word's vector set to zero, the text's length kept; for a
  bag of n-grams that is the empty text. Shapley sampling removes words (padding) instead.
* forecasts: every past step at the training mean of its column (zeros after scaling), i.e. a
  flat series.

Kinds: every function takes table runs; ``explain_row`` also images, text and forecasts, and
``top_reasons`` also text. ``column_importance`` and ``dependence`` are about columns, so other
kinds get a ``SpecError`` saying so (not an empty answer that would look like "nothing matters").
Everything returned is plain data (numbers, strings, lists, dicts, numpy arrays) that
``builder.jsonsafe.plain`` turns into JSON; each dataclass has ``to_dict``.

The parts, one job a module:

* ``results``: the returned dataclasses (``ColumnImportance``, ``RowExplanation``, ``Dependence``).
* ``importance``: ``column_importance``, permutation importance per original column.
* ``curves``: ``dependence``, partial dependence and individual curves along one column.
* ``attributions``: ``explain_row`` (by kind) and ``what_if``; table rows are attributed there,
  ``images``, ``text`` and ``forecasts`` attribute the other kinds.
* ``reasons``: ``top_reasons``, the columns (or words) that moved each of many rows.
* ``explained``: the explained output (the network plus its decoding) and captum's passes over it.
* ``tables``: raw-table and feature helpers (column spans, the typical row, reading rows).
* ``estimator``: scikit-learn's view of a table network, for its inspection tools.
* ``sentences``: the plain-English words and sentences.
"""

from builder.explain.attributions import explain_row, what_if
from builder.explain.curves import dependence
from builder.explain.explained import BATCH_IG_STEPS, CHUNK_VALUES, IG_STEPS, METHODS, SHAPLEY_SAMPLES
from builder.explain.images import IMAGE_PATCHES
from builder.explain.importance import MIN_ROWS, column_importance
from builder.explain.reasons import top_reasons
from builder.explain.results import ColumnImportance, Dependence, RowExplanation
from builder.explain.sentences import NEGLIGIBLE
from builder.explain.tables import _column_spans as _column_spans  # tests check the feature bookkeeping
from builder.explain.tables import _moved_features as _moved_features

__all__ = [
    "BATCH_IG_STEPS",
    "CHUNK_VALUES",
    "IG_STEPS",
    "IMAGE_PATCHES",
    "METHODS",
    "MIN_ROWS",
    "NEGLIGIBLE",
    "SHAPLEY_SAMPLES",
    "ColumnImportance",
    "Dependence",
    "RowExplanation",
    "column_importance",
    "dependence",
    "explain_row",
    "top_reasons",
    "what_if",
]
