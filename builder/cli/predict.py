"""``python -m builder predict``: a bundle's predictions for a table, images or a history, as a CSV."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.cli.args import (
    DEFAULT_REASONS,
    EXIT_OK,
    FORMATTER,
    MAX_REASONS,
    PROG,
    CliError,
    add_max_file_option,
    check_threshold,
    column_names,
    finite_number,
    whole_number,
)
from builder.cli.data_choice import KIND_WORDS
from builder.cli.files import (
    existing_path,
    input_file,
    is_image,
    is_zip,
    output_file,
    read_input_table,
    with_max_file_mb,
)
from builder.errors import DataError

if TYPE_CHECKING:  # torch and pandas load only when a command needs them: --help stays instant
    import pandas as pd

log = logging.getLogger("builder.cli")  # one logger name for every command, as before the split


MAX_PREDICT_IMAGES = 50_000  # images one predict run reads from a zip or a folder
PREDICT_DESCRIPTION = """\
Predict with a saved bundle and write the predictions to a CSV file (or an Excel file, when
--out ends in .xlsx). What --data is, and what comes out, depends on what the model learnt from:

  a table or text model    a table with the columns the model was trained on (the target may be
                           absent): one row per input row, in the same order, with 'prediction'
                           (the label as written in the training data, or the number) and, for
                           categories, one 'probability_<class>' column per class;
  an image model           a .zip of images, a folder of images or one image: one row per image
                           with 'file' (its path in the zip or folder) first;
  a forecast               the history (the time column and the series): one row per future step
                           after its last date, with the time stamp and 'prediction';
  an anomaly model         a table: one row per input row with 'anomaly_score' and 'is_anomaly'.

For rows of a table, the columns that identify a row (ID-like, as the Data page finds them: a
different value in every row, like a customer number) come first, so the predictions join back to
your data; --keep names the columns to keep instead. A yes/no model answers its second class when
that class's probability is above its decision threshold (0.5 unless one was chosen when it was
trained); --threshold uses another for this run.

For a table or text model, --explain adds 'reason_1', 'reason_2'... after the predictions: the
columns (or words) that pushed each prediction most, with their value and whether they raise or
lower it (the chance of the second class of a yes/no model, of the predicted class with several,
or the number), e.g. "age = 72 (raises)". They come from integrated gradients against a typical
row, all rows in one batch; --reasons sets how many. Images, forecasts and anomaly models have none.
"""
PREDICT_EPILOG = f"""\
examples:
  {PROG} predict --bundle churn.zip --data new_customers.csv --out predictions.csv
  {PROG} predict --bundle churn.zip --data new_customers.xlsx --out predictions.xlsx --keep customer_id,region
  {PROG} predict --bundle churn.zip --data new_customers.csv --out predictions.csv --threshold 0.7
  {PROG} predict --bundle churn.zip --data new_customers.csv --out predictions.csv --explain --reasons 2
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
                         help="the file to write: CSV, or Excel when the name ends in .xlsx ('-' writes "
                              "CSV to stdout)")
    predict.add_argument("--keep", type=column_names, metavar="COL,COL",
                         help="columns of --data to keep before the predictions, separated by commas "
                              "(default: the ID-like columns, so the rows join back to your data)")
    predict.add_argument("--threshold", type=finite_number, metavar="F",
                         help="a yes/no model: answer its second class when that class's probability "
                              "is above F, between 0 and 1, for this run (default: the bundle's own, "
                              "0.5 unless one was chosen)")
    predict.add_argument("--explain", action="store_true",
                         help="a table or text model: add the top reasons of each prediction, 'reason_1', "
                              "'reason_2'...: the columns (or words) that pushed it most, e.g. "
                              "\"age = 72 (raises)\"")
    predict.add_argument("--reasons", type=whole_number(1, MAX_REASONS), metavar="K",
                         help=f"with --explain: how many reasons per prediction, 1 to {MAX_REASONS} "
                              f"(default: {DEFAULT_REASONS})")
    add_max_file_option(predict)
    predict.set_defaults(run=with_max_file_mb(run_predict))


def run_predict(args: argparse.Namespace) -> int:
    """``predict``: the predictions CSV of the data (rows, images or a history); a summary on stdout."""
    from builder.export import read_bundle
    from builder.export.predictions import write_predictions

    check_threshold(args.threshold)  # the range, before anything slow
    if args.reasons is not None and not args.explain:
        raise CliError("--reasons sets how many reasons --explain adds: add --explain, or leave out --reasons.")
    bundle_file = input_file(args.bundle, "--bundle")
    data_path = existing_path(args.data, "--data")
    to_stdout = args.out == "-"
    out_file = None if to_stdout else output_file(args.out, "--out", "predictions.csv")
    with contextlib.redirect_stdout(sys.stderr):
        bundle = read_bundle(bundle_file)
        kind = bundle.data_spec.kind
        _check_options(args, bundle)
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
            if args.explain:
                predictions = _add_reasons(bundle, df, predictions, args.reasons or DEFAULT_REASONS)
            if bundle.task != "forecast":  # one prediction per input row: keep what joins them back
                predictions = _keep_columns(args.keep, bundle, df, predictions)
            if kind == "table":
                _warn_out_of_range(bundle.preprocessor, df)
    if to_stdout:
        predictions.to_csv(sys.stdout, index=False)
        log.info("%s", _predict_summary(predictions, None, bundle.task == "forecast"))
        return EXIT_OK
    write_predictions(predictions, out_file)
    print(_predict_summary(predictions, out_file, bundle.task == "forecast"))
    return EXIT_OK


def _check_options(args: argparse.Namespace, bundle: Any) -> None:
    """--threshold needs a yes/no model (it then replaces the bundle's for this run); --keep needs
    one prediction per input row; --explain a table or text model (checked before predicting)."""
    if args.explain:
        from builder.export.predictions import reasons_refusal

        refusal = reasons_refusal(bundle.data_spec.kind, bundle.task, asked="The reasons --explain adds")
        if refusal is not None:
            raise CliError(f"{refusal}: leave out --explain.")
    if args.threshold is not None:
        threshold = check_threshold(args.threshold, bundle.task)
        log.info("decision threshold %g for this run (the bundle's own: %g)", threshold,
                 bundle.preprocessor.decision_threshold)
        bundle.preprocessor.set_decision_threshold(threshold, chosen="with --threshold for one run")
    if args.keep is not None and (bundle.data_spec.kind == "images" or bundle.task == "forecast"):
        why = ("each image's 'file' column already says which image it is" if bundle.data_spec.kind == "images"
               else "a forecast gives one row per future step, not one per input row")
        raise CliError(f"--keep applies to models that predict rows of a table, but {why}: leave out --keep.")


def _add_reasons(bundle: Any, rows: pd.DataFrame, predictions: pd.DataFrame, k: int) -> pd.DataFrame:
    """The predictions with ``reason_1`` .. ``reason_k`` after them, all rows in one batch."""
    import time

    from builder.export.predictions import with_reasons

    started = time.perf_counter()
    explained = with_reasons(bundle, rows, predictions, k)
    log.info("found the top %d reason%s of %d prediction%s in %.1f s", k, "" if k == 1 else "s", len(rows),
             "" if len(rows) == 1 else "s", time.perf_counter() - started)
    return explained


def _keep_columns(keep: list[str] | None, bundle: Any, rows: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """The input columns to keep (``--keep``, else the ID-like ones) first, then the predictions."""
    from builder.export.predictions import kept_columns, with_kept_columns

    spec = bundle.data_spec
    model_columns = [*spec.features, *([spec.target] if spec.target else [])]
    columns = kept_columns(rows, keep, exclude=model_columns, taken=list(predictions.columns), option="--keep")
    if columns:
        why = "as asked with --keep" if keep is not None else "ID-like, so the rows join back; --keep chooses others"
        log.info("kept %s beside the predictions (%s)", ", ".join(map(str, columns)), why)
    return with_kept_columns(predictions, rows, columns)


def _warn_out_of_range(preprocessor: Any, rows: pd.DataFrame, examples: int = 3) -> None:
    """One warning line when rows hold values outside what the model saw in training, naming a few."""
    from builder.decide import out_of_range

    notes = out_of_range(preprocessor, rows).reset_index(drop=True)
    flagged = notes[notes != ""]
    if flagged.empty:
        return
    n = len(flagged)
    shown = "; ".join(f"row {i + 1}: {note}" for i, note in flagged.head(examples).items())
    log.warning("%d row%s values outside what the model saw in training, so %s less reliable (%s%s).",
                n, " has" if n == 1 else "s have", "its prediction is" if n == 1 else "their predictions are",
                shown, "; ..." if n > examples else "")


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


def _predict_summary(predictions: pd.DataFrame, out_file: Path | None, forecast: bool = False) -> str:
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
        if forecast:  # the time stamp of each step comes first
            text += f"; {first} {_when(predictions[first].iloc[0])} to {_when(predictions[first].iloc[-1])}"
        text += ")"
    return text + "."


def _when(value: Any) -> str:
    import pandas as pd

    stamp = pd.Timestamp(value)
    return str(stamp.date()) if stamp == stamp.normalize() else str(stamp)
