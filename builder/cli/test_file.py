"""``--test-data``: score the model on a test file of the user's own instead of a held-out share.

The test file's rows (or images) are appended to the training data and marked as the test set, so
the preprocessing, the network and the baseline all see exactly the split the user chose, and the
rest of the journey (evaluation, the bundle's metrics) is the same as with a held-out share.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from builder.cli.files import column_list, is_zip, read_input_table
from builder.errors import DataError

log = logging.getLogger("builder.cli")


def append_test_file(source: Any, data_spec: Any, file: Path) -> tuple[Any, np.ndarray]:
    """The training data with the test file's rows after it, and the mask of those rows.

    Args:
        source: what ``choose_data`` read from ``--data``: a table or an ``ImageSet``.
        data_spec: how the data is used (its kind and columns).
        file: the ``--test-data`` file: the same kind of file as ``--data``.

    Raises:
        DataError: a forecast (always tested on its newest part), a different kind of file, or a
            test table without the columns the model reads.
    """
    if data_spec.kind == "series":
        raise DataError("--test-data does not apply to a forecast, which is always tested on the newest "
                        "part of its series: use --test-fraction instead.")
    if data_spec.kind == "images":
        if not is_zip(file):
            raise DataError(f"--test-data {file.name} must be a .zip of image folders, like --data.")
        from builder.data.images import ImageSet, read_image_zip

        test = read_image_zip(file)
        combined = ImageSet(*(getattr(source, name) + getattr(test, name) for name in
                              ("paths", "labels", "data", "sizes", "gray")))
        log.info("test images: %d from %s", len(test), file.name)
        return combined, _mask(len(source), len(test))
    import pandas as pd

    if is_zip(file):
        raise DataError(f"--test-data {file.name} is a zip, but --data is a table: pass a table file.")
    test = read_input_table(file, "--test-data")
    needed = [c for c in (data_spec.target, *data_spec.features, data_spec.option("text_column"))
              if c is not None]
    missing = [c for c in dict.fromkeys(needed) if c not in test.columns]
    if missing:
        raise DataError(f"The test file {file.name} has no column {column_list(missing)}, which the model "
                        f"reads; its columns are: {column_list(test.columns)}.")
    combined = pd.concat([source, test[[c for c in source.columns if c in test.columns]]], ignore_index=True)
    log.info("test rows: %d from %s", len(test), file.name)
    return combined, _mask(len(source), len(test))


def _mask(n_train: int, n_test: int) -> np.ndarray:
    return np.concatenate([np.zeros(n_train, dtype=bool), np.ones(n_test, dtype=bool)])
