"""Starting settings chosen from the data: what a user who only clicks Start trains with.

``TrainConfig``'s own defaults are neutral (a constant rate, no smoothing). A network only earns
its place when it beats the scikit-learn baseline on real data, and the settings that get it there
depend on the kind of data and its size, as the tabular deep-learning literature found (RealMLP,
Holzmueller et al. 2024; TabM, Gorishniy et al. 2024): AdamW with a little weight decay, a warm-up
then a cosine decay, enough optimizer steps on small tables, label smoothing for classes, and the
best epoch picked on validation rows. ``suggested_settings`` returns those as plain setting
values; the CLI and the app start from them, and anything the user sets wins.

Measured with ``python -m bench.quality`` (bench/README.md has the table).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from builder.train_config import TrainConfig

CLASS_TASKS = ("binary", "multiclass")
TABLE_STEPS = 3_000  # optimizer steps a table's run aims for (small tables need many epochs)
MIN_EPOCHS, MAX_EPOCHS = 40, 300
SMALL_IMAGE_SET = 20_000  # below this many pictures, augmentation pays (the model sees more variety)


def training_rows(n_rows: int, val_fraction: float, test_fraction: float, test_rows: Any = None) -> int:
    """About how many of ``n_rows`` rows train, before the data is split: the validation share of
    the non-test rows goes, and so does the test share (or the given ``test_rows`` mask's rows)."""
    if test_rows is not None:
        return int((n_rows - int(np.sum(test_rows))) * (1 - val_fraction))
    return int(n_rows * (1 - val_fraction - test_fraction))


def table_batch_size(n_rows: int) -> int:
    """Rows per step for a table of ``n_rows`` training rows: small batches for small tables."""
    return 64 if n_rows < 5_000 else 128 if n_rows < 50_000 else 256


def suggested_settings(kind: str, task: str, n_rows: int, epochs: int | None = None) -> dict[str, Any]:
    """The settings to start from for this data, as ``TrainConfig`` field values.

    Args:
        kind: "table", "images", "text" or "series".
        task: the task ("regression", "binary", "multiclass", "forecast", "anomaly").
        n_rows: training rows (images, texts, windows) after the validation and test shares.
        epochs: the user's number of epochs, when given: the warm-up and patience follow it.

    Returns:
        Only the settings that differ from ``TrainConfig``'s defaults for this data.
    """
    classes = task in CLASS_TASKS
    if kind == "table" and task != "anomaly":
        batch = table_batch_size(n_rows)
        steps_per_epoch = max(1, math.ceil(n_rows / batch))
        epochs = epochs or min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TABLE_STEPS / steps_per_epoch)))
        return {
            "optimizer": "adamw", "lr": 2e-3, "weight_decay": 1e-4, "batch_size": batch,
            "schedule": "cosine", "warmup_epochs": epochs // 40, "epochs": epochs,
            # The best epoch is kept either way; patience only ends runs that stopped learning
            # long ago, leaving the cosine decay room to find a better minimum late in the run.
            "early_stopping_patience": max(20, epochs // 4),
            **({"label_smoothing": 0.1} if classes else {}),
        }
    if kind == "images":
        return {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 5e-4, "schedule": "one_cycle",
                "epochs": epochs or (40 if n_rows < SMALL_IMAGE_SET else 20), "early_stopping_patience": None,
                "label_smoothing": 0.1}
    return {}


def suggested_data_options(kind: str, n_rows: int) -> dict[str, Any]:
    """``DataSpec`` options to start from: small image sets vary their training pictures (shifts
    only: a mirrored digit or letter is another symbol, so mirroring stays the user's choice)."""
    return {"augment": True} if kind == "images" and n_rows < SMALL_IMAGE_SET else {}


def suggested_config(kind: str, task: str, n_rows: int, **given: Any) -> TrainConfig:
    """``TrainConfig`` from the suggested settings, with the settings in ``given`` on top.

    Raises:
        SpecError: a given setting is invalid (the message names it).
    """
    return TrainConfig.from_dict({**suggested_settings(kind, task, n_rows, given.get("epochs")), **given})
