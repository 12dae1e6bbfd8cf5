"""One door from any kind of data to training arrays, and back from a saved preprocessing state.

The builder learns from four kinds of data (``DataSpec.kind``): a table, a zip of image folders, a
text column, and a time series. Each has its own module (``prepare``, ``images``, ``text``,
``timeseries``) with its own preprocessor; this module picks the right one so the pipeline, the
CLI and the pages never branch on the kind themselves:

* ``prepare_data(source, data_spec, ...)`` splits and preprocesses. Every prepared object has
  ``preprocessor``, ``X_train/X_val/X_test``, ``y_train/y_val/y_test`` (``None`` when there is no
  target: anomaly detection), ``input_shape``, ``n_outputs``, ``task`` and ``true_targets(split)``.
* ``load_preprocessor(state)`` rebuilds any preprocessor from its JSON (``preprocess.json``).

Every preprocessor answers ``predict_with(raw, run)``: raw rows (or images) in, the model call
``run`` in between, the predictions frame out. The app, the CLI and a bundle's ``predict.py`` all
go through it, so they cannot disagree.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from builder.data import images as image_data
from builder.data import preprocess as table_data
from builder.data import text as text_data
from builder.data import timeseries as series_data
from builder.data.prepare import KIND_OPTIONS, DataSpec, prepare_tabular
from builder.data.preprocess import ANOMALY_TASK
from builder.errors import DataError
from builder.layers import token_input

# The tasks each kind of data can be trained for (the first is what "auto" means when it is unclear).
KIND_TASKS: dict[str, tuple[str, ...]] = {
    "table": ("regression", "binary", "multiclass", ANOMALY_TASK),
    "images": ("binary", "multiclass"),
    "text": ("binary", "multiclass"),
    "series": ("forecast",),
}
KIND_TITLES = {"table": "a table", "images": "images", "text": "text", "series": "a time series"}


class Prepared(Protocol):
    """What every ``prepare_*`` function returns (see the module docstring)."""

    preprocessor: Any
    X_train: np.ndarray
    X_val: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray | None
    y_val: np.ndarray | None
    y_test: np.ndarray | None
    input_shape: tuple[int, ...]
    n_outputs: int

    def true_targets(self, split: str) -> np.ndarray: ...


def check_task(data_spec: DataSpec) -> None:
    """Refuse a task the kind of data cannot be trained for, saying which ones it can.

    Raises:
        DataError: e.g. a forecast on images, or regression on text.
    """
    allowed = KIND_TASKS[data_spec.kind]
    if data_spec.task not in allowed:
        raise DataError(
            f"A model on {KIND_TITLES[data_spec.kind]} cannot be trained for {data_spec.task!r}; "
            f"choose {' or '.join(allowed)}."
        )


def prepare_data(
    source: Any,
    data_spec: DataSpec,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 42,
    test_rows: np.ndarray | None = None,
    val_rows: np.ndarray | None = None,
    windows: series_data.TimeSplit | None = None,
    release_source: bool = False,
) -> Prepared:
    """Split and preprocess ``source`` for training as ``data_spec`` says.

    Args:
        source: a ``pd.DataFrame`` (table, text, series), or for images an ``ImageSet`` or the
            zip (path, bytes, file-like).
        data_spec: target, task, input columns, kind and the kind's options.
        val_fraction, test_fraction: shares held out (the newest steps for a series).
        seed: random seed of the split (a series is split by time, not at random).
        test_rows: boolean mask, one per row (image), of the rows that are the test set: a test
            file of the user's own, appended to the training rows. Not for a series, whose test
            set is always its newest part.
        val_rows: boolean mask, one per row (image), of the validation rows: a cross-validation
            fold (``builder.crossval``); replaces ``val_fraction`` and, with ``test_rows``, the
            whole random split. Not for a series.
        windows: a series only: the training, validation and test windows chosen by the caller
            (a cross-validation fold's expanding window); replaces both fractions.
        release_source: the caller hands ``source`` over and will not use it again: a table's
            columns are freed as they are prepared (``prepare_tabular``'s ``release_columns``).

    Raises:
        DataError: the data cannot be used as asked; the message says what to change.
    """
    check_task(data_spec)
    kind = data_spec.kind
    if test_rows is not None and kind == "series":
        raise DataError("A forecast is always tested on the newest part of its own series: leave out "
                        "the test file and set the test share instead.")
    if kind == "images":
        size = data_spec.option("size")
        return image_data.prepare_images(source, val_fraction, test_fraction, seed,
                                         size=tuple(size) if size else None, test_rows=test_rows,
                                         val_rows=val_rows)
    df = _table(source, kind)
    if kind == "text":
        column = _required(data_spec, "text_column")
        options = {name: data_spec.options[name] for name in ("max_length", "max_vocab", "ngrams")
                   if data_spec.options.get(name) is not None}
        return text_data.prepare_text(df, column, data_spec.target, data_spec.task,
                                      val_fraction, test_fraction, seed, test_rows=test_rows,
                                      val_rows=val_rows, **options)
    if kind == "series":
        window = series_data.WindowSpec(
            window=int(data_spec.option("window", series_data.WindowSpec.window)),
            horizon=int(data_spec.option("horizon", series_data.WindowSpec.horizon)),
            stride=int(data_spec.option("stride", series_data.WindowSpec.stride)),
        )
        if data_spec.target is None:
            raise DataError("A forecast needs the column to forecast: choose the target column.")
        return series_data.prepare_series(
            df, _required(data_spec, "time_column"), list(data_spec.features), data_spec.target,
            window, val_fraction, test_fraction, fill=data_spec.option("fill", "forward"), windows=windows,
        )
    if data_spec.task == ANOMALY_TASK and data_spec.target is not None:
        data_spec = DataSpec(None, ANOMALY_TASK, [f for f in data_spec.features if f != data_spec.target])
    return prepare_tabular(df, data_spec, val_fraction, test_fraction, seed, test_rows=test_rows,
                           val_rows=val_rows, release_columns=release_source)


def class_counts(source: Any, data_spec: DataSpec) -> dict[str, int] | None:
    """Rows (or images) per class of a classification task, before splitting; ``None`` otherwise.

    The splits are stratified, so the training rows keep these proportions: this is what class
    weights and their suggestion (``builder.losses.suggest_class_weights``) need.
    """
    if data_spec.task not in ("binary", "multiclass"):
        return None
    if data_spec.kind == "images":
        return dict(source.counts) if isinstance(source, image_data.ImageSet) else None
    if not isinstance(source, pd.DataFrame) or data_spec.target not in source.columns:
        return None
    counts = source[data_spec.target].dropna().astype(str).value_counts()
    return {str(label): int(n) for label, n in counts.items()}


# Each kind of data's preprocessor and the module it lives in (its FORMAT names its saved JSON).
PREPROCESSORS: dict[str, tuple[Any, type]] = {
    "table": (table_data, table_data.Preprocessor),
    "images": (image_data, image_data.ImagePreprocessor),
    "text": (text_data, text_data.TextPreprocessor),
    "series": (series_data, series_data.SeriesPreprocessor),
}


def load_preprocessor(state: dict) -> Any:
    """Rebuild the preprocessor saved as ``state`` (a table, image, text or series one).

    Raises:
        DataError: ``state`` is not a preprocessing state this version can read.
    """
    fmt = state.get("format") if isinstance(state, dict) else None
    for module, cls in PREPROCESSORS.values():
        if fmt == module.FORMAT:
            return cls.from_dict(state)
    raise DataError(
        f"This preprocessing file has the unknown format {fmt!r}. Use the preprocess.json from the "
        "same export bundle as the model."
    )


def kind_of(preprocessor: Any) -> str:
    """The kind of data a fitted preprocessor reads: "table", "images", "text" or "series"."""
    return next(kind for kind, (_, cls) in PREPROCESSORS.items() if isinstance(preprocessor, cls))


def _table(source: Any, kind: str) -> pd.DataFrame:
    if not isinstance(source, pd.DataFrame):
        raise DataError(f"{KIND_TITLES[kind].capitalize()} comes from a table file; this is not one. "
                        "Upload a CSV, Excel, Parquet or JSON file.")
    return source


def _required(data_spec: DataSpec, name: str) -> Any:
    value = data_spec.options.get(name)
    if value is None:
        raise DataError(f"{KIND_TITLES[data_spec.kind].capitalize()} needs the setting {name!r}: "
                        f"{KIND_OPTIONS[data_spec.kind][name]}.")
    return value


@dataclass(frozen=True)
class DataShape:
    """What a design needs to know about the data: the shape of one sample and of the output.

    Attributes:
        kind: "table", "images", "text" or "series".
        task: the task the data was prepared for.
        input_shape: one preprocessed sample: ``(F,)``, ``(C, H, W)``, ``(T,)`` token ids or
            ``(window, F)``.
        n_outputs: raw outputs per sample (1, the classes, the horizon, or F for an autoencoder).
        n_rows: training samples (rows, images, texts or windows).
        vocab_size: the text vocabulary (Embedding's ``num_embeddings``); ``None`` otherwise.
        n_columns: input columns before preprocessing (tables: one-hot makes ``F`` larger).
        season: a series' steps per natural cycle (12 monthly, 7 daily), ``None`` otherwise: the
            starter forecast design reads its linear side path's lags from it.
    """

    kind: str
    task: str
    input_shape: tuple[int, ...]
    n_outputs: int
    n_rows: int
    vocab_size: int | None = None
    n_columns: int = 0
    season: int | None = None

    @property
    def input_label(self) -> str:
        """How the first edge of the network diagram and the editor name the input."""
        shape = self.input_shape
        if self.kind == "images":
            channels = "grayscale" if shape[0] == 1 else f"{shape[0]} colour channels"
            return f"Input: {shape[2]}x{shape[1]} pixel images, {channels}"
        if self.kind == "text":
            return f"Input: {shape[0]} token ids per text (vocabulary {self.vocab_size:,})"
        if self.kind == "series":
            return f"Input: {shape[0]} steps x {shape[1]} value(s) per window"
        return f"Input: {shape[0]} number(s) per row"

    def scope(self) -> contextlib.AbstractContextManager:
        """The context to infer shapes, build and write code in (text: the token input)."""
        return token_input(self.vocab_size) if self.vocab_size else contextlib.nullcontext()


def data_shape(prepared: Prepared, data_spec: DataSpec) -> DataShape:
    """The ``DataShape`` of prepared data."""
    vocab = getattr(prepared.preprocessor, "vocab_size", None) if data_spec.kind == "text" else None
    return DataShape(kind=data_spec.kind, task=data_spec.task,
                     input_shape=tuple(int(d) for d in prepared.input_shape),
                     n_outputs=int(prepared.n_outputs), n_rows=len(prepared.X_train),
                     vocab_size=int(vocab) if vocab else None, n_columns=len(data_spec.features),
                     season=_season_of(prepared.preprocessor, data_spec.kind))


def shape_of(preprocessor: Any) -> DataShape:
    """The ``DataShape`` of a fitted preprocessor (a saved run or a bundle; ``n_rows`` unknown: 0)."""
    kind = kind_of(preprocessor)
    vocab = preprocessor.vocab_size if kind == "text" else None
    return DataShape(kind=kind, task=preprocessor.task,
                     input_shape=tuple(int(d) for d in preprocessor.input_shape),
                     n_outputs=int(preprocessor.n_outputs), n_rows=0, vocab_size=vocab,
                     season=_season_of(preprocessor, kind))


def _season_of(preprocessor: Any, kind: str) -> int | None:
    """A series' season (steps per cycle) from its fitted preprocessor; ``None`` for other kinds."""
    season = preprocessor.season if kind == "series" else None
    return int(season) if season else None
