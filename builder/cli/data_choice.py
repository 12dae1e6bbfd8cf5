"""The data of a command: which kind (table, images, text, series), which task, which family.

The decisions the app's Data and Build pages let the user make, taken from the options:

- a .zip                               -> images; the task from the number of class folders
- --task forecast (--time-column)      -> series: --target over --time-column (the one date
                                         column when not given), in windows
- --task anomaly (--model autoencoder) -> table without a target
- a text column as the one input, or a sequence family on a table -> text
- anything else                        -> table
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.cli.args import DEFAULT_HORIZON, DEFAULT_WINDOW
from builder.cli.files import check_column, column_list, is_image, is_zip, or_list, read_input_table, require_target
from builder.errors import DataError, SpecError

if TYPE_CHECKING:  # torch and pandas load only when a command needs them: --help stays instant
    import pandas as pd

    from builder.data import DataSpec

log = logging.getLogger("builder.cli")  # one logger name for every command, as before the split


# Raw rows handed to write_bundle: all are checked through ONNX, the first 5 become sample_input.csv.
SAMPLE_ROWS = 200
SEQUENCE_FAMILIES = ("rnn", "lstm", "gru", "transformer")
TABLE_FAMILIES = ("linear", "logistic", "mlp")
LINEAR_FAMILIES = ("linear", "logistic")  # read table columns only
TEXT_FAMILIES = ("mlp", *SEQUENCE_FAMILIES)  # read a text column (MLP as a bag of n-grams)
_TASK_WORDS = {"regression": "predict a number (regression)",
               "binary": "predict one of two values (binary)",
               "multiclass": "predict one of several values (multiclass)",
               "forecast": "forecast a time series", "anomaly": "find unusual rows (anomaly detection)"}
KIND_WORDS = {"table": "table columns", "images": "images", "text": "text", "series": "a time series"}
SAMPLE_NOUNS = {"table": "rows", "images": "images", "text": "texts", "series": "windows"}


@dataclass
class DataChoice:
    """What to learn from, as the Data page would set it up.

    Attributes:
        source: what ``train_model`` reads: the table, or the ``ImageSet`` of an image zip.
        data_spec: target, task, inputs, kind and the kind's options.
        family: the model family to train (``--model auto`` resolved from the data).
        sample: raw data in the training format for the bundle's parity check and sample input.
    """

    source: Any
    data_spec: DataSpec
    family: str
    sample: Any

    @property
    def shape(self) -> tuple[int | None, int | None] | None:
        """Rows x columns of the source (columns ``None`` for images), for the run store."""
        if self.source is None:
            return None
        columns = getattr(self.source, "columns", None)
        return len(self.source), (len(columns) if columns is not None else None)

    def hand_over_source(self) -> Any:
        """The source, forgotten here: whoever trains on it holds the only reference, so a big
        table is freed as soon as it has been prepared (``pipeline.train_model`` lets go of it)."""
        source, self.source = self.source, None
        return source


def sample_of(df: pd.DataFrame) -> pd.DataFrame:
    """The first rows as a table of their own: ``df.head()`` alone is a view that keeps every row
    of ``df`` in memory for as long as the sample lives (to the end of the command)."""
    return df.head(SAMPLE_ROWS).copy()


def _family_title(family: str) -> str:
    from builder.spec import FAMILIES

    return FAMILIES[family].title if family in FAMILIES else family


def _family_for(family: str | None, kind: str, task: str, n_rows: int | None = None) -> str:
    """The family to train: ``family`` when it can learn ``task`` from ``kind``, else a SpecError
    naming the families that can; ``None`` (auto) is the default family of the kind and task (for
    text also of the number of texts, ``n_rows``)."""
    from builder.spec import FAMILIES, families_for
    from builder.templates import default_family

    if family is None:
        return default_family(task, kind, n_rows)
    found = FAMILIES.get(family)
    if found is None:  # an unknown family in a design file: its own validation names it
        return family
    fits = [f.key for f in families_for(kind, task)]
    use = f": use --model {or_list(fits)} (or leave out --model)." if fits else "."
    if kind not in found.kinds:
        raise SpecError(f"{found.title} does not read {KIND_WORDS[kind]}{use}")
    if task not in found.tasks:
        raise SpecError(f"{found.title} cannot {_TASK_WORDS.get(task, task)} from "
                        f"{KIND_WORDS[kind]}{use}")
    return family


def _ignored(args: argparse.Namespace, names: Sequence[str], why: str) -> None:
    for name in names:
        if getattr(args, name, None) is not None:
            log.warning("--%s is not used %s; ignored.", name.replace("_", "-"), why)


def choose_data(args: argparse.Namespace, file: Path, family: str | None) -> DataChoice:
    """Read ``file`` and decide the kind of data, the task and the family from the options."""
    task = args.task
    if task == "auto" and family == "autoencoder":
        task = "anomaly"
    if task == "auto" and args.time_column is not None:
        task = "forecast"
        log.info("task: forecast, because --time-column is given")
    if is_zip(file):
        return _image_data(args, file, family, task)
    if is_image(file):
        raise DataError(f"--data {file.name} is one image; a model learns from many: put the images "
                        "in one folder per class, zip the folders and pass the .zip.")
    if family == "cnn":
        raise SpecError(f"A CNN reads images: pass a .zip of image folders (one folder per class) to "
                        f"--data; {file.name} is a table (for a table use --model mlp).")
    df = read_input_table(file, "--data")
    if task == "forecast":
        return _series_data(args, df, file, family)
    if task == "anomaly":
        return _anomaly_data(args, df, file, family)
    return _table_or_text_data(args, df, file, family, task)


def _image_data(args: argparse.Namespace, file: Path, family: str | None, task: str) -> DataChoice:
    """An image zip: one folder per class; the task follows from the number of classes."""
    import numpy as np

    from builder.data import DataSpec
    from builder.data.images import read_image_zip
    from builder.defaults import suggested_data_options

    if task in ("regression", "forecast", "anomaly"):
        raise DataError(f"--task {task} needs a table, but {file.name} is a .zip of images, which "
                        "trains an image classifier: leave out --task, or give a table file.")
    if family is not None and family != "cnn":
        raise SpecError(f"{_family_title(family)} does not read images: a .zip of image folders "
                        "trains a CNN (use --model cnn, or leave out --model).")
    _ignored(args, ("target", "time_column", "window", "horizon", "text_column"),
             "with images (the class of an image is the name of its folder)")
    images = read_image_zip(file)
    classes = images.classes
    found = "binary" if len(classes) == 2 else "multiclass"
    if task not in ("auto", found):
        raise DataError(f"{file.name} holds {len(classes)} classes ({column_list(classes, 10)}), "
                        f"which makes the task {found}, not {task}: leave out --task.")
    log.info("task: %s, because the zip holds %d class folders", found, len(classes))
    # An even spread over the (path-sorted) images, so every class is in the parity sample.
    picks = np.unique(np.linspace(0, len(images) - 1, min(len(images), SAMPLE_ROWS)).astype(int))
    options = suggested_data_options("images", len(images))
    return DataChoice(images, DataSpec(None, found, [], kind="images", options=options), family or "cnn",
                      images.subset(picks))


def profile_of(df: pd.DataFrame) -> Any:
    """The column profile of a table (kinds, missing values) that the choices read."""
    from builder.data import profile_table

    return profile_table(df)


def _series_data(args: argparse.Namespace, df: pd.DataFrame, file: Path, family: str | None) -> DataChoice:
    """A forecast: ``--target`` over ``--time-column``, cut into windows; without them, the only
    column of dates and the only other column of numbers are taken (and named in the log)."""
    from builder.data import DataSpec
    from builder.data.preprocess import cell_text
    from builder.data.profile import date_columns, find_time_column, numeric_columns

    profile = profile_of(df)
    dates = date_columns(profile)
    if dates:
        date_hint = f"the column(s) that look like dates: {column_list(dates, 10)}"
    else:
        date_hint = (f"no column of {file.name} looks like dates (its columns: "
                     f"{column_list([c.name for c in profile.columns], 20)})")
    time_column = args.time_column
    if time_column is None:
        # The one column of dates leaves no doubt (the Data page preselects the same one).
        try:
            time_column = find_time_column(profile)
        except DataError as exc:
            raise DataError(f"{exc} Give it with --time-column.") from None
        if time_column is None:
            raise DataError(f"A forecast needs --time-column, the column with the dates or times; "
                            f"{date_hint}.")
        log.info("time column: %r (the only column of dates)", time_column)
    time_column = check_column(df, time_column, file, "--time-column")
    column = profile.column(time_column)
    if column.kind != "datetime":
        example = f" (for example {cell_text(column.examples[0])})" if column.examples else ""
        raise DataError(f"The time column {time_column!r} does not hold dates or times{example}: "
                        f"choose {date_hint}.")
    numbers = [c.name for c in profile.columns if c.kind == "numeric" and c.name != time_column]
    usable = numeric_columns(profile, exclude=(time_column,))
    target = args.target
    if target is None and len(usable) == 1:
        target = usable[0]  # one series of numbers: nothing else could be forecast
        log.info("target: %r (the only column of numbers besides the time)", target)
    if target is None:
        listed = column_list(numbers, 20) if numbers else "none; a forecast needs numbers"
        raise DataError(f"Choose the series to forecast with --target; the columns of {file.name} "
                        f"with numbers are: {listed}.")
    target = check_column(df, target, file, "--target")
    if target == time_column:
        raise DataError(f"{target!r} is the time column, so it cannot also be the series to forecast: "
                        f"give --target one of {column_list(numbers, 20) or 'the columns with numbers'}.")
    family = _family_for(family, "series", "forecast")
    _ignored(args, ("text_column",), "for a forecast")
    window = args.window or DEFAULT_WINDOW
    horizon = args.horizon or DEFAULT_HORIZON
    options = {"time_column": time_column, "window": window, "horizon": horizon}
    log.info("forecasting %r %d step(s) ahead from the last %d steps, by %r", target, horizon, window,
             time_column)
    return DataChoice(df, DataSpec(target, "forecast", [target], kind="series", options=options), family, df)


def _anomaly_data(args: argparse.Namespace, df: pd.DataFrame, file: Path, family: str | None) -> DataChoice:
    """Anomaly detection: every usable column is an input; there is nothing to predict."""
    from builder.data import DataSpec, health_warnings, suggest_features

    family = _family_for(family, "table", "anomaly")
    _ignored(args, ("time_column", "window", "horizon", "text_column"), "for anomaly detection")
    target = args.target
    if target is not None:
        require_target(df, target, file)
        log.warning("anomaly detection has no column to predict: %r is left out of the inputs "
                    "(leave out --target to use it as an input).", target)
    profile = profile_of(df)
    features = suggest_features(profile, target)
    if not features:
        raise DataError(f"No column of {file.name} can be an input: they look like identifiers, or "
                        "are constant or mostly empty. Add columns that describe the rows.")
    for note in health_warnings(profile, None):
        log.warning("%s", note)
    log.info("inputs: %s", column_list(features, limit=20))
    return DataChoice(df, DataSpec(None, "anomaly", list(features)), family, sample_of(df))


def _table_or_text_data(args: argparse.Namespace, df: pd.DataFrame, file: Path, family: str | None,
                        task: str) -> DataChoice:
    """A column to predict from the others (a table), or from one text column (text).

    Without --text-column, a table whose signal is one free-text column (``find_text_column``) is
    read as text by the families that can (auto, MLP), and the log names the column and every
    column the text model leaves out; a table model says which free-text columns it cannot read.
    """
    from builder.data import DataSpec, health_warnings, suggest_features
    from builder.data.text import TextColumnGuess, find_text_column

    _ignored(args, ("time_column", "window", "horizon"), f"for --task {task}")
    target = require_target(df, args.target, file)
    profile = profile_of(df)
    features = suggest_features(profile, target)
    texts = [c.name for c in profile.columns if c.kind == "text" and c.name != target]
    text_column = args.text_column
    guess = TextColumnGuess(None, "")
    if text_column is not None:
        check_column(df, text_column, file, "--text-column")
        if text_column == target:
            raise DataError(f"{target!r} is the column to predict, so it cannot also be the text to "
                            "read: give --text-column another column.")
        if family in LINEAR_FAMILIES:
            raise SpecError(f"{_family_title(family)} reads table columns, not a text column: leave "
                            f"out --text-column, or use --model {or_list(TEXT_FAMILIES)}.")
    elif family in SEQUENCE_FAMILIES:
        if not texts:
            raise DataError(f"{_family_title(family)} reads text or a time series, but no column of "
                            f"{file.name} holds free text (sentences): for a table use --model mlp, "
                            "for a time series add --task forecast --time-column COL.")
        if len(texts) > 1:
            raise DataError(f"{file.name} has several text columns ({column_list(texts, 10)}): choose "
                            "the one to read with --text-column COL.")
        text_column = texts[0]
    else:
        guess = find_text_column(df, target, profile)
        reads_text = family is None or family == "mlp"
        # A number to predict: a text model cannot, so a table keeps its other columns; a lone text
        # column still becomes a text model, whose error below says what to change.
        numbers = task == "regression" or (task == "auto" and _infer_task(df, target, task, quiet=True)
                                           == "regression")
        if guess.column is not None and reads_text and not (numbers and set(features) - {guess.column}):
            text_column = guess.column
            log.info("%s: training a text model", guess.reason)
    kind = "table" if text_column is None else "text"
    task = _infer_task(df, target, task)
    if kind == "text" and task not in ("binary", "multiclass"):
        raise DataError(f"A text model predicts categories, not numbers, but {target!r} is set up as "
                        f"a {task}: use --task binary or multiclass if its values are categories, or "
                        "a table model (--model linear, without --text-column).")
    family = _family_for(family, kind, task, len(df))
    if kind == "text":
        log.info("reading the texts in column %r", text_column)
        for note in health_warnings(profile, target):  # IDs and empty columns left out, imbalance
            log.warning("%s", note)
        left_out = [name for name in features if name != text_column]
        if left_out:
            log.warning("a text model reads only %r, so these columns are left out: %s (to learn from "
                        "them instead, use --model logistic, which reads the table's columns)",
                        text_column, column_list(left_out, 20))
        data_spec = DataSpec(target, task, [text_column], kind="text", options={"text_column": text_column})
        return DataChoice(df, data_spec, family, sample_of(df))
    if not features:
        raise DataError(f"No column is left to learn from besides {target!r}: the others look like "
                        "identifiers, or are constant or mostly empty. Add columns that describe the rows.")
    for note in health_warnings(profile, target):
        log.warning("%s", note)
    unread = list(guess.unread) or ([guess.column] if guess.column else [])
    for name in unread:  # never drop the words of a text column silently
        if name in features:
            log.warning("%r holds free text, which a table model reads only as categories (whole texts "
                        "that repeat), not word by word: to learn from its words, use --text-column "
                        "%s (a text model reads that column alone)", name, name)
    log.info("inputs: %s", column_list(features, limit=20))
    return DataChoice(df, DataSpec(target=target, task=task, features=list(features)), family, sample_of(df))


def _infer_task(df: pd.DataFrame, target: str, task: str, quiet: bool = False) -> str:
    """``task``, or the task the target column suggests when ``auto``; checked against the column
    (``quiet``: without logging the guess)."""
    from builder.data import check_target, infer_task

    if task == "auto":
        guess = infer_task(df[target])
        task = guess.task
        if not quiet:
            log.info("task: %s, because %s", task, guess.reason.rstrip("."))
    check_target(df, target, task)
    return task
