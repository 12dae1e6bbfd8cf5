"""From a table and the user's data choices to training-ready arrays.

``prepare_tabular`` is the one path from a DataFrame to tensors: it checks the column to predict,
drops rows without a target, splits, fits the ``Preprocessor`` on the training rows only (so nothing
about validation or test rows leaks into the scaling or the categories) and transforms all three.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from builder.data.preprocess import Preprocessor, missing_mask, parse_numeric
from builder.data.profile import check_target
from builder.data.split import split_indices
from builder.errors import DataError
from builder.memory import empty_column_major, to_row_major

logger = logging.getLogger(__name__)


KINDS = ("table", "images", "text", "series")  # what the model learns from

# Options each kind of data accepts (DataSpec.options), with what they mean. Anything else is refused.
KIND_OPTIONS: dict[str, dict[str, str]] = {
    "table": {},
    "images": {"augment": "true: shift (and, for photos, mirror) training images a little each epoch",
               "size": "[height, width] of the model's input; default from the training images"},
    "text": {"text_column": "the column holding the texts (required)",
             "max_length": "tokens kept per text; default from the training texts",
             "max_vocab": "most distinct tokens in the vocabulary",
             "ngrams": "1: words in order (sequence models); 2: a bag of words and word pairs "
                       "(EmbeddingBag); set from the design when training"},
    "series": {"time_column": "the column with the time stamps (required)",
               "window": "past steps the model sees", "horizon": "future steps it predicts",
               "stride": "steps between two windows", "fill": "'forward' or 'linear' for gaps"},
}


@dataclass
class DataSpec:
    """The user's data choices.

    Attributes:
        target: the column to predict (``None`` for models without one, e.g. anomaly detection;
            for images, the class comes from the folder, and the target is ``None`` too).
        task: ``"regression"``, ``"binary"``, ``"multiclass"``, ``"forecast"`` or ``"anomaly"``.
        features: the input columns, in order (for text, the text column; for a series, the value
            columns; for images, none).
        kind: what the rows are: ``"table"``, ``"images"`` (a zip of class folders), ``"text"`` (a
            text column) or ``"series"`` (a time series).
        options: settings of that kind (``KIND_OPTIONS``), e.g. ``{"time_column": "date",
            "window": 24, "horizon": 1}`` for a series.
    """

    target: str | None
    task: str
    features: list[str] = field(default_factory=list)
    kind: str = "table"
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DataError(f"The kind of data {self.kind!r} is not known. Choose one of: {', '.join(KINDS)}.")
        unknown = sorted(set(self.options) - set(KIND_OPTIONS[self.kind]))
        if unknown:
            allowed = ", ".join(KIND_OPTIONS[self.kind]) or "none"
            raise DataError(
                f"The data setting(s) {', '.join(map(repr, unknown))} do not apply to {self.kind} data "
                f"(allowed: {allowed}). Remove them."
            )

    def option(self, name: str, default: Any = None) -> Any:
        """One of ``options``, or ``default`` when it is not set."""
        value = self.options.get(name)
        return default if value is None else value

    def to_dict(self) -> dict:
        """Plain JSON form."""
        return {"target": self.target, "task": self.task, "features": list(self.features),
                "kind": self.kind, "options": dict(self.options)}

    @classmethod
    def from_dict(cls, data: dict) -> DataSpec:
        """Rebuild from ``to_dict`` output (``kind`` and ``options`` may be absent: a table).

        Raises:
            DataError: a key is missing or unknown, or ``features`` is not a list of names.
        """
        required, optional = {"target", "task", "features"}, {"kind", "options"}
        missing, unknown = required - set(data), set(data) - required - optional
        if missing or unknown:
            raise DataError(
                f"The saved data settings are not valid: missing {sorted(missing) or 'nothing'}, "
                f"unknown {sorted(unknown) or 'nothing'}. "
                "Expected the keys target, task and features (and kind, options)."
            )
        features = data["features"]
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise DataError(
                f"The saved data settings list the input columns as {features!r}; "
                "expected a list of column names."
            )
        options = data.get("options") or {}
        if not isinstance(options, dict):
            raise DataError(f"The saved data settings have options {options!r}; expected an object.")
        return cls(target=data["target"], task=data["task"], features=list(features),
                   kind=data.get("kind") or "table", options=dict(options))


@dataclass
class PreparedData:
    """Everything training and evaluation need from a table.

    Attributes:
        preprocessor: fitted on the training rows; also decodes model outputs.
        X_train, X_val, X_test: float32 ``(N, F)`` model inputs.
        y_train, y_val, y_test: encoded targets (float32 ``(N, 1)`` for regression/binary,
            int64 ``(N,)`` for multiclass); ``None`` when there is no target.
        raw_val, raw_test: the validation and test rows exactly as read (all columns), for
            metrics, baselines, parity checks and the evaluation page.
        train_idx, val_idx, test_idx: positions of each set's rows in the input table.
        input_shape: shape of one sample, ``(F,)``.
        n_outputs: 1 for regression/binary, the number of classes for multiclass, and the
            number of features when there is no target (a model that reconstructs its input).
    """

    preprocessor: Preprocessor
    X_train: np.ndarray
    X_val: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray | None
    y_val: np.ndarray | None
    y_test: np.ndarray | None
    raw_val: pd.DataFrame
    raw_test: pd.DataFrame
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    input_shape: tuple[int, ...]
    n_outputs: int

    @property
    def task(self) -> str:
        """The task the data was prepared for."""
        return self.preprocessor.task

    def true_targets(self, split: str) -> np.ndarray:
        """The answers of the "val" or "test" rows, comparable with decoded predictions.

        Labels stay as written; numbers are parsed the way training parsed them ("$1,234" ->
        1234.0), so metrics never see text.
        """
        raw = {"val": self.raw_val, "test": self.raw_test}[split][self.preprocessor.target]
        return parse_numeric(raw) if self.task == "regression" else raw.to_numpy()

    @property
    def feature_names(self) -> list[str]:
        """Names of the model's input features (columns of ``X_*``)."""
        return self.preprocessor.feature_names

    @property
    def y_scale(self) -> float:
        """Multiply a regression error in training units by this to get original units."""
        return self.preprocessor.target_scale


class RowsByColumn:
    """Some rows of a table, copied one column at a time as they are read.

    ``Preprocessor`` fits and transforms column by column, so handing it this instead of
    ``df.iloc[rows]`` keeps one column of the training rows in memory at a time, not a copy of
    every column of them (on 1M rows x 20 columns: the preparation's peak ~110 MB lower).

    With ``release``, each column is also dropped from ``df`` once its rows are copied: for a table
    its caller has handed over, so that the table shrinks while the prepared matrix fills and the
    two never both take their full size (each column can then be read only once).
    """

    def __init__(self, df: pd.DataFrame, positions: np.ndarray, release: bool = False) -> None:
        self._df, self._positions, self._release = df, positions, release

    @property
    def columns(self) -> pd.Index:
        return self._df.columns

    def __len__(self) -> int:
        return len(self._positions)

    def __getitem__(self, column: str) -> pd.Series:
        rows = self._df[column].iloc[self._positions]
        if self._release:
            # Freed now where the column is a block of its own, as pyarrow's reader makes them; a
            # block shared by several columns (pandas' C parser) goes with the last of them.
            del self._df[column]
        return rows


def _training_matrix(preprocessor: Preprocessor, df: pd.DataFrame, rows: np.ndarray, release: bool) -> np.ndarray:
    """The training rows' input matrix; with ``release``, the table's columns freed as it fills.

    Writing one column of a row-major matrix touches every page of it, so the whole matrix would
    take memory from the first column on, while the table is still whole. Released column by
    column, the table shrinks as a column-major matrix grows (1M rows x 20 columns: ~70 MB lower
    peak); the row-major copy training reads is made once the table's inputs are gone, handing the
    column-major pages back as it goes (``builder.memory.to_row_major``).
    """
    if not release:
        return preprocessor.transform(RowsByColumn(df, rows))
    out = empty_column_major(len(rows), preprocessor.n_features)  # (N, F)
    preprocessor.transform(RowsByColumn(df, rows, release=True), out=out)
    return to_row_major(out)


def prepare_tabular(
    df: pd.DataFrame,
    spec: DataSpec,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 42,
    test_rows: np.ndarray | None = None,
    val_rows: np.ndarray | None = None,
    release_columns: bool = False,
) -> PreparedData:
    """Check, split and preprocess a table for training.

    Args:
        df: the table as read (raw values).
        spec: target, task and input columns.
        val_fraction: share of rows for validation.
        test_fraction: share of rows for the final test.
        seed: random seed for the split.
        test_rows: boolean mask over ``df``'s rows that are the test set (replaces
            ``test_fraction``; see ``split_indices``).
        val_rows: boolean mask over ``df``'s rows that are the validation set (replaces
            ``val_fraction``: a cross-validation fold; see ``split_indices``).
        release_columns: the caller hands ``df`` over and will not use it again: each input
            column is dropped from it once its training rows are prepared, so that a big table and
            its prepared matrix do not fill memory together (1M rows x 20 columns: ~110 MB less).

    Returns:
        A ``PreparedData``; rows without a target value are left out (and the count logged).

    Raises:
        DataError: the target, task, input columns or fractions cannot be used.
    """
    target, task = spec.target, spec.task
    if target is not None:
        check_target(df, target, task)
        usable = ~missing_mask(df[target])
        if task == "regression":
            usable &= ~np.isnan(parse_numeric(df[target]))
        dropped = int(len(df) - usable.sum())
        if dropped:
            logger.info("Leaving out %d row(s) with no value in %r", dropped, target)
        kept = np.flatnonzero(usable)
        labels = df[target].iloc[kept]
    else:
        kept = np.arange(len(df))
        labels = pd.Series(np.zeros(len(df)))
    held = None if test_rows is None else np.asarray(test_rows, dtype=bool)[kept]
    held_val = None if val_rows is None else np.asarray(val_rows, dtype=bool)[kept]
    parts = split_indices(labels, task, val_fraction, test_fraction, seed, test_rows=held, val_rows=held_val)
    train, val, test = (kept[part] for part in parts)  # positions in the kept rows -> in df

    # Classes come from every usable row, so a class absent from the training split still decodes.
    classes = pd.unique(labels).tolist() if task in ("binary", "multiclass") and target else None
    train_rows = RowsByColumn(df, train)
    preprocessor = Preprocessor().fit(train_rows, target, task, spec.features, classes=classes)

    def encode(rows: pd.DataFrame | RowsByColumn) -> np.ndarray | None:
        return None if target is None else preprocessor.encode_target(rows[target])

    # The validation and test rows stay whole tables (evaluation shows them); the training rows,
    # most of the table, are only ever read one column at a time. Everything that reads ``df``
    # comes before the training matrix, which may release its columns as it fills.
    raw_val, raw_test = df.iloc[val], df.iloc[test]
    y_train = encode(train_rows)
    X_train = _training_matrix(preprocessor, df, train, release_columns)
    logger.info(
        "Prepared %d training, %d validation and %d test rows with %d features",
        len(train), len(val), len(test), preprocessor.n_features,
    )
    return PreparedData(
        preprocessor=preprocessor,
        X_train=X_train,
        X_val=preprocessor.transform(raw_val),
        X_test=preprocessor.transform(raw_test),
        y_train=y_train,
        y_val=encode(raw_val),
        y_test=encode(raw_test),
        raw_val=raw_val,
        raw_test=raw_test,
        train_idx=train,
        val_idx=val,
        test_idx=test,
        input_shape=(preprocessor.n_features,),
        n_outputs=preprocessor.n_outputs if target is not None else preprocessor.n_features,
    )
