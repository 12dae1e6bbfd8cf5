"""``python -m builder predict``: a bundle's predictions for a table, images or a history, as a CSV."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.cli.args import EXIT_OK, FORMATTER, PROG
from builder.cli.data_choice import KIND_WORDS
from builder.cli.files import existing_path, input_file, is_image, is_zip, output_file, read_input_table
from builder.errors import DataError

if TYPE_CHECKING:  # torch and pandas load only when a command needs them: --help stays instant
    import pandas as pd

log = logging.getLogger("builder.cli")  # one logger name for every command, as before the split


MAX_PREDICT_IMAGES = 50_000  # images one predict run reads from a zip or a folder
PREDICT_DESCRIPTION = """\
Predict with a saved bundle and write the predictions to a CSV file. What --data is, and what
comes out, depends on what the model learnt from:

  a table or text model    a table with the columns the model was trained on (the target may be
                           absent): one row per input row, in the same order, with 'prediction'
                           (the label as written in the training data, or the number) and, for
                           categories, one 'probability_<class>' column per class;
  an image model           a .zip of images, a folder of images or one image: one row per image
                           with 'file' (its path in the zip or folder) first;
  a forecast               the history (the time column and the series): one row per future step
                           after its last date, with the time stamp and 'prediction';
  an anomaly model         a table: one row per input row with 'anomaly_score' and 'is_anomaly'.
"""
PREDICT_EPILOG = f"""\
examples:
  {PROG} predict --bundle churn.zip --data new_customers.csv --out predictions.csv
  {PROG} predict --bundle photos_model.zip --data new_photos.zip --out predictions.csv
  {PROG} predict --bundle sales_model.zip --data sales.csv --out forecast.csv
"""


def add_command(commands: argparse._SubParsersAction, debug: argparse.ArgumentParser) -> None:
    """Add the ``predict`` command and its options to ``commands`` (``debug``: the shared --debug)."""
    predict = commands.add_parser("predict", help="predict new data with a saved bundle",
                                  description=PREDICT_DESCRIPTION, epilog=PREDICT_EPILOG,
                                  formatter_class=FORMATTER, parents=[debug], allow_abbrev=False)
    predict.add_argument("--bundle", required=True, metavar="BUNDLE.zip",
                         help="a bundle written by 'train' or by the app's Export page")
    predict.add_argument("--data", required=True, metavar="PATH",
                         help="what to predict: a table file (CSV, TSV, TXT, Excel, Parquet or "
                              "JSON); for an image model a .zip of images, a folder of images or "
                              "one image; for a forecast, the history of the series")
    predict.add_argument("--out", required=True, metavar="PREDICTIONS.csv",
                         help="the CSV file to write ('-' writes it to stdout)")
    predict.set_defaults(run=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    """``predict``: the predictions CSV of the data (rows, images or a history); a summary on stdout."""
    from builder.export import read_bundle

    bundle_file = input_file(args.bundle, "--bundle")
    data_path = existing_path(args.data, "--data")
    to_stdout = args.out == "-"
    out_file = None if to_stdout else output_file(args.out, "--out", "predictions.csv")
    with contextlib.redirect_stdout(sys.stderr):
        bundle = read_bundle(bundle_file)
        kind = bundle.data_spec.kind
        if kind == "images":
            items, files = _read_images(data_path)
            predictions = bundle.predict(items, files=files)
        else:
            if data_path.is_dir() or is_zip(data_path) or is_image(data_path):
                what = "a folder" if data_path.is_dir() else "a .zip" if is_zip(data_path) else "an image"
                raise DataError(f"This model reads {KIND_WORDS[kind]}, but --data {data_path.name} is "
                                f"{what}: give a table file (CSV, TSV, TXT, Excel, Parquet or JSON) "
                                "with the columns it was trained on.")
            df = read_input_table(data_path, "--data", drop_empty_rows=False)  # one prediction per input row
            predictions = bundle.predict(df)
    if to_stdout:
        predictions.to_csv(sys.stdout, index=False)
        log.info("%s", _predict_summary(predictions, None))
        return EXIT_OK
    predictions.to_csv(out_file, index=False)
    print(_predict_summary(predictions, out_file))
    return EXIT_OK


def _image_member(parts: Sequence[str]) -> bool:
    """An image file, not macOS metadata, a hidden file or another kind of file."""
    from builder.data.images import IMAGE_EXTENSIONS

    if not parts or any(p == "__MACOSX" or p.startswith(".") for p in parts):
        return False
    return parts[-1].lower().endswith(IMAGE_EXTENSIONS)


def _read_images(path: Path) -> tuple[list[Any], list[str]]:
    """The images to predict and their names: a zip (member paths, any folders or none), a folder
    (paths inside it, sub-folders included) or one image file (its name).

    Raises:
        DataError: a table file, an unsafe or damaged zip, or no image at all.
    """
    if path.is_dir():
        found = sorted((p for p in path.rglob("*") if p.is_file()
                        and _image_member(p.relative_to(path).parts)), key=lambda p: p.as_posix())
        if not found:
            raise DataError(f"The folder {path.name} holds no images (PNG, JPEG, BMP or GIF): give the "
                            "folder that holds the images to predict.")
        _check_count(len(found), path.name)
        return list(found), [p.relative_to(path).as_posix() for p in found]
    if is_image(path):
        return [path], [path.name]
    if not is_zip(path):
        raise DataError(f"This model reads images, but --data {path.name} is not one: give a .zip of "
                        "images, a folder of images or one image file (PNG, JPEG, BMP or GIF).")
    from builder.data.images import MAX_IMAGE_BYTES
    from builder.errors import BundleError
    from builder.safezip import EXPORT_AGAIN, open_zip, read_member

    what = f"{path.name} is not a usable zip of images"
    try:
        with open_zip(path, max_members=2 * MAX_PREDICT_IMAGES + 1_000,
                      max_member_bytes=MAX_IMAGE_BYTES, what=what) as zf:
            names = sorted(info.filename for info in zf.infolist() if not info.is_dir()
                           and _image_member([p for p in info.filename.replace("\\", "/").split("/") if p]))
            if not names:
                raise DataError(f"The zip {path.name} holds no images (PNG, JPEG, BMP or GIF): zip the "
                                "images to predict (in folders or not).")
            _check_count(len(names), path.name)
            data = [read_member(zf, name, MAX_IMAGE_BYTES, what=what) for name in names]
    except BundleError as exc:
        raise DataError(str(exc).replace(EXPORT_AGAIN, "Zip the images to predict again.").strip()) from None
    return data, names


def _check_count(n: int, name: str) -> None:
    if n > MAX_PREDICT_IMAGES:
        raise DataError(f"{name} holds {n:,} images, more than the {MAX_PREDICT_IMAGES:,} one run "
                        "predicts: split them into several zips or folders.")


def _predict_summary(predictions: pd.DataFrame, out_file: Path | None) -> str:
    n = len(predictions)
    where = f" to {out_file}" if out_file else ""
    text = f"Wrote {n} prediction{'' if n == 1 else 's'}{where}"
    probability = [c for c in predictions.columns if str(c).startswith("probability_")]
    if "is_anomaly" in predictions.columns:
        flagged = int(predictions["is_anomaly"].astype(bool).sum())
        text += f" ({flagged} of {n} row{'' if n == 1 else 's'} flagged as unusual)"
    elif probability and n:
        counts = predictions["prediction"].value_counts()
        text += " (" + ", ".join(f"{label}: {count}" for label, count in counts.items()) + ")"
    elif n and "prediction" in predictions.columns:
        values = predictions["prediction"]
        text += f" (from {values.min():.4g} to {values.max():.4g}, mean {values.mean():.4g}"
        first = predictions.columns[0]
        if first != "prediction":  # a forecast: the time stamp of each step comes first
            text += f"; {first} {_when(predictions[first].iloc[0])} to {_when(predictions[first].iloc[-1])}"
        text += ")"
    return text + "."


def _when(value: Any) -> str:
    import pandas as pd

    stamp = pd.Timestamp(value)
    return str(stamp.date()) if stamp == stamp.normalize() else str(stamp)
