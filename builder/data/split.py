"""Splitting rows into training, validation and test sets.

Classification splits are stratified so every set keeps the class proportions of the whole table;
when a class is too small for that, the split falls back to a plain random one (and logs it) rather
than failing. Indices are row positions (0..N-1), sorted, so the sets keep the table's row order.
"""

from __future__ import annotations

import logging
import numbers

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from builder.errors import DataError

logger = logging.getLogger(__name__)

# The same bounds as TrainConfig's val_fraction/test_fraction settings (builder.train.SETTINGS).
MAX_FRACTION = 0.5  # each held-out set is at most half of the rows
MAX_HELD_OUT = 0.8  # validation + test together; training keeps at least 20%


def _check_fraction(value: float, setting: str, meaning: str) -> float:
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not is_number or not 0 <= value <= MAX_FRACTION:
        raise DataError(
            f"The {meaning} ({setting}) must be a number from 0 to {MAX_FRACTION}; "
            f"got {value!r}. A typical value is 0.15 (15% of the rows)."
        )
    return float(value)


def split_indices(
    y: pd.Series | np.ndarray,
    task: str,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 42,
    test_rows: np.ndarray | None = None,
    val_rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split row positions into training, validation and test sets.

    Args:
        y: the target values, one per row (only used to stratify classification splits and to
            count rows).
        task: ``"binary"`` or ``"multiclass"`` stratify; anything else splits at random.
        val_fraction: share of rows for validation, in [0, 0.5].
        test_fraction: share of rows for the final test, in [0, 0.5].
        seed: random seed; the same seed gives the same split.
        test_rows: a boolean mask, one per row: these rows are the test set (a test file of the
            user's own) and ``test_fraction`` is not used; ``val_fraction`` is then a share of
            the other rows.
        val_rows: a boolean mask, one per row: these rows are the validation set and no fraction
            is used (a cross-validation fold, ``builder.crossval``); the test set is then
            ``test_rows`` (none when ``None``) and training is every other row. All ``False``
            trains on every non-test row.

    Returns:
        ``(train_idx, val_idx, test_idx)``: sorted int64 row positions, disjoint, covering all rows.

    Raises:
        DataError: a fraction is out of range, or there are too few rows to split.
    """
    val_fraction = _check_fraction(val_fraction, "val_fraction", "validation share")
    test_fraction = _check_fraction(test_fraction, "test_fraction", "test share")
    if val_fraction + test_fraction > MAX_HELD_OUT:
        raise DataError(
            f"The validation and test shares (val_fraction + test_fraction) add up to "
            f"{val_fraction + test_fraction:.2f}; they must stay at most {MAX_HELD_OUT} so enough "
            "rows are left for training. Lower one of them."
        )
    # Integer codes per class: cheaper to stratify on than strings, and mixed types are fine.
    labels = pd.factorize(pd.Series(y))[0]
    positions = np.arange(len(labels))
    stratify = task in ("binary", "multiclass")
    if val_rows is not None:
        return _explicit(positions, val_rows, test_rows)
    if test_rows is not None:
        is_test = np.asarray(test_rows, dtype=bool)
        if len(is_test) != len(labels) or is_test.all() or not is_test.any():
            raise DataError(
                "The test rows must be some, but not all, of the rows: give a test file with at "
                "least one row and a training file with rows of its own."
            )
        rest = positions[~is_test]
        train, val = _split(rest, labels[rest], val_fraction, seed, stratify, "validation")
        return np.sort(train), np.sort(val), positions[is_test]
    # Test first, then validation as its share of the rest: each gets its fraction of all rows.
    rest, test = _split(positions, labels, test_fraction, seed, stratify, "test")
    val_share = val_fraction / (1.0 - test_fraction)
    train, val = _split(rest, labels[rest], val_share, seed, stratify, "validation")
    return np.sort(train), np.sort(val), np.sort(test)


def _explicit(
    positions: np.ndarray, val_rows: np.ndarray, test_rows: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The split the caller chose row by row: validation and test masks, training the rest."""
    is_val = np.asarray(val_rows, dtype=bool)
    is_test = np.zeros_like(is_val) if test_rows is None else np.asarray(test_rows, dtype=bool)
    if len(is_val) != len(positions) or len(is_test) != len(positions) or (is_val & is_test).any():
        raise DataError("The validation and test rows must be two separate sets of the table's rows.")
    is_train = ~(is_val | is_test)
    if not is_train.any():
        raise DataError("The validation and test rows leave no rows to train on: add rows, or use "
                        "fewer cross-validation folds.")
    return positions[is_train], positions[is_val], positions[is_test]


def _split(
    positions: np.ndarray, labels: np.ndarray, fraction: float, seed: int, stratify: bool, what: str
) -> tuple[np.ndarray, np.ndarray]:
    if fraction == 0:
        return positions, np.empty(0, dtype=np.int64)
    n_held = int(np.ceil(fraction * len(positions)))
    if len(positions) - n_held < 1:
        raise DataError(
            f"There are too few rows ({len(positions)}) to set aside a {what} set and still train. "
            "Add rows, or lower the validation and test shares."
        )
    if stratify:
        _, counts = np.unique(labels, return_counts=True)
        # Stratifying needs 2+ rows per class and room for every class on both sides.
        if counts.min() >= 2 and min(n_held, len(positions) - n_held) >= len(counts):
            kept, held = train_test_split(
                positions, test_size=n_held, random_state=seed, stratify=labels
            )
            return kept.astype(np.int64), held.astype(np.int64)
        logger.info(
            "A class is too small to keep class proportions in the %s set; splitting at random",
            what,
        )
    kept, held = train_test_split(positions, test_size=n_held, random_state=seed)
    return kept.astype(np.int64), held.astype(np.int64)
