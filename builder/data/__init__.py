"""Tabular data: read a file, profile it, choose a target, split, and preprocess for training.

Typical flow::

    df = read_table("customers.csv")
    profile = profile_table(df)
    guess = infer_task(df["churned"])
    spec = DataSpec("churned", guess.task, suggest_features(profile, "churned"))
    data = prepare_tabular(df, spec)

``preprocess.py`` is self-contained (numpy, pandas, standard library) because export bundles ship a
copy of it next to ``predict.py``.
"""

from builder.data.prepare import DataSpec, PreparedData, prepare_tabular
from builder.data.preprocess import TASKS, Preprocessor, infer_kind, parse_numeric
from builder.data.profile import (
    ColumnProfile,
    TableProfile,
    TaskGuess,
    check_target,
    health_warnings,
    infer_task,
    profile_table,
    suggest_features,
)
from builder.data.read import SUPPORTED_TABLE_EXTENSIONS, read_table
from builder.data.samples import SAMPLES, Sample, load_sample
from builder.data.split import split_indices

__all__ = [
    "SAMPLES",
    "SUPPORTED_TABLE_EXTENSIONS",
    "TASKS",
    "ColumnProfile",
    "DataSpec",
    "PreparedData",
    "Preprocessor",
    "Sample",
    "TableProfile",
    "TaskGuess",
    "check_target",
    "health_warnings",
    "infer_kind",
    "infer_task",
    "load_sample",
    "parse_numeric",
    "prepare_tabular",
    "profile_table",
    "read_table",
    "split_indices",
    "suggest_features",
]
