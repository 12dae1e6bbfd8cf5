"""``python -m builder train|predict|inspect``: the app's journey, scriptable.

The commands call exactly the functions the app calls (``pipeline.train_model``,
``export.write_bundle``, ``export.read_bundle``, ``data.sources.prepare_data``,
``shapes.infer_shapes``), so a model trained here is the model the app would train. Every kind of
data goes through them: a table, a zip of image folders, a text column, a time series (``--task
forecast``) and a table without a target (``--task anomaly``); ``_choose_data`` turns the options
into the ``DataSpec`` the app's Data page would make. This module is the only place in
``builder/`` that writes to stdout:

- ``train`` logs one line per epoch (throttled) to stderr and prints ONE JSON object as the last
  line of stdout, so ``python -m builder train ... | tail -n 1 | jq .metrics`` works;
- ``predict`` writes the predictions CSV and prints a one-line summary;
- ``inspect`` prints the layer table (or, with ``--json``, the same as JSON).

Errors a user can fix (``BuilderError``, unreadable paths, bad options) end with exit code 2 and one
plain sentence on stderr: no usage dump, no traceback. Anything else is a bug: exit code 1 and one
line pointing at ``--debug``, which shows the traceback and turns on debug logging.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from builder import __version__
from builder.errors import BuilderError, DataError, SpecError
from builder.jsonsafe import strict

if TYPE_CHECKING:  # torch and pandas load only when a command needs them: --help stays instant
    import pandas as pd

    from builder.data import DataSpec
    from builder.data.sources import DataShape
    from builder.pipeline import TrainedModel
    from builder.shapes import ShapeReport
    from builder.spec import ModelSpec
    from builder.train import History, TrainConfig, TrainControl

log = logging.getLogger("builder.cli")

PROG = "python -m builder"
EXIT_OK, EXIT_BUG, EXIT_USER_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130

MODEL_CHOICES = ("auto", "linear", "logistic", "mlp", "cnn", "rnn", "lstm", "gru", "transformer",
                 "autoencoder")
TASK_CHOICES = ("auto", "regression", "binary", "multiclass", "forecast", "anomaly")
OPTIMIZER_CHOICES = ("sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
# Raw rows handed to write_bundle: all are checked through ONNX, the first 5 become sample_input.csv.
SAMPLE_ROWS = 200
PROGRESS_INTERVAL_S = 0.5  # at most two epoch lines a second; the first epoch always shows
INSPECT_DEFAULT_BATCH = 64  # batch size of the memory estimate when --batch-size is not given
DEFAULT_WINDOW, DEFAULT_HORIZON = 28, 1  # = timeseries.WindowSpec's defaults (checked by a test)
MAX_PREDICT_IMAGES = 50_000  # images one predict run reads from a zip or a folder


# ----------------------------------------------------------------------------------------------
# Arguments


class _CliError(BuilderError):
    """A command line that cannot be run as written (unknown option, bad value...)."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose mistakes become one plain sentence instead of a usage dump."""

    def error(self, message: str) -> NoReturn:
        raise _CliError(_plain_argparse_message(message, self.prog))


def _plain_argparse_message(message: str, prog: str) -> str:
    """Reword argparse's terse messages as sentences that say what to do."""
    help_hint = f"run '{prog} --help' to see the options."
    if match := re.match(r"the following arguments are required: (.+)", message):
        names = match.group(1)
        if names == "COMMAND":
            return f"Choose a command: train, predict or inspect (run '{PROG} --help' for what each does)."
        return f"Missing required option(s) {names}: {help_hint}"
    if match := re.match(r"argument (\S+?)(?:/\S+)?: (.+)", message):
        name, problem = match.group(1), match.group(2)
        if name == "COMMAND":
            return f"Unknown command {problem.split(':', 1)[-1].split(' (')[0].strip()}: use train, predict or inspect."
        if choice := re.match(r"invalid choice: (.+?) \(choose from (.+)\)", problem):
            allowed = choice.group(2).replace("'", "")
            return f"{name} does not accept {choice.group(1)}: choose one of {allowed}."
        if problem == "expected one argument":
            return f"{name} needs a value: {help_hint}"
        if re.match(r"not allowed with argument (\S+)", problem):
            other = problem.rsplit(" ", 1)[-1]
            return f"Use either {name} or {other}, not both."
        return f"{name} {problem.rstrip('.')}."
    if match := re.match(r"one of the arguments (.+) is required", message):
        return f"Give {match.group(1).replace(' ', ' or ')}: {help_hint}"
    return message[:1].upper() + message[1:].rstrip(".") + "."


def _whole_number(minimum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number (at least ``minimum`` when given)."""
    wanted = "a whole number" if minimum is None else f"a whole number of {minimum} or more"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}; got {text!r}") from None
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be {wanted}; got {text!r}")
        return value

    return parse


def _number(text: str) -> float:
    """An argparse type: a finite number. Ranges are checked by ``TrainConfig`` (one set of rules)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number; got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number; got {text!r}")
    return value


_FORMATTER = argparse.RawDescriptionHelpFormatter

MAIN_DESCRIPTION = """\
Train, inspect and use models from the command line. It runs the same engine as the app, so
a model trained here is the model the app would train.
"""

MAIN_EPILOG = f"""\
examples:
  {PROG} train --data houses.csv --target price --out price_model.zip
  {PROG} train --data photos.zip --out photo_model.zip
  {PROG} predict --bundle price_model.zip --data new_houses.csv --out predictions.csv
  {PROG} inspect --bundle price_model.zip

Run '{PROG} COMMAND --help' for the options of a command. Errors exit with code 2 and one
sentence; add --debug to any command to see the full details.
"""

TRAIN_DESCRIPTION = """\
Learn a model from your data and save it as a bundle. The data is a table (CSV, TSV, TXT,
Excel, Parquet or JSON) or a .zip of image folders (one folder per class, named after it):

  a table and --target COL       predicts that column from the others (MLP by default);
  a table whose input is text    reads the text column (Transformer by default);
  a .zip of image folders        tells the classes apart (CNN by default; no --target);
  --task forecast                forecasts --target from its past, by --time-column (LSTM);
  --task anomaly                 finds unusual rows, no column to predict (autoencoder).

The data is split into training, validation and test parts (a series by time); the network
trains on the first, keeps its best epoch on the second and is scored on the third, next to a
simple baseline fitted on the same data. Progress goes to stderr, one line per epoch; the last
line of stdout is one JSON object with the task, the model, the device, the test metrics, the
baseline's test metrics and the bundle path.
"""

TRAIN_EPILOG = f"""\
examples:
  {PROG} train --data churn.csv --target churned --out churn.zip
  {PROG} train --data houses.xlsx --target price --model linear --epochs 50 --out price.zip
  {PROG} train --data iris.csv --target species --spec my_design.json --out iris.zip
  {PROG} train --data photos.zip --out photos_model.zip
  {PROG} train --data reviews.csv --target sentiment --out reviews_model.zip
  {PROG} train --data sales.csv --task forecast --time-column date --target sales --window 28 --horizon 7 --out sales_model.zip
  {PROG} train --data transactions.csv --task anomaly --out unusual.zip
"""

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

INSPECT_DESCRIPTION = """\
Show a design as a table: each layer's number, type and settings, the shape that goes in and
comes out, its parameter count and the running total. The last row is the output layer, sized
to the task by the builder (locked). Below the table: total parameters and a rough memory need
for training one batch.

Give a design file and the data it is for (the data sets the input and output sizes; the data
options are those of 'train'), or a bundle, which holds both.
"""

INSPECT_EPILOG = f"""\
examples:
  {PROG} inspect --spec my_design.json --data houses.csv --target price
  {PROG} inspect --spec my_cnn.json --data photos.zip
  {PROG} inspect --spec my_lstm.json --data sales.csv --task forecast --time-column date --target sales
  {PROG} inspect --bundle price_model.zip --json
"""


def _add_data_options(group: argparse._ArgumentGroup, inspect: bool = False) -> None:
    """The options that say how to read the data: shared by ``train`` and ``inspect``."""
    group.add_argument("--target", metavar="COL",
                       help="the column to predict (for a forecast: the series to forecast); not "
                            "needed for an image zip or --task anomaly. When it is missing or "
                            "wrong, the error lists the columns"
                            + ("; without it a table design's output layer is shown with 1 value"
                               if inspect else ""))
    group.add_argument("--task", choices=TASK_CHOICES, default="auto", metavar="TASK",
                       help="what to learn: regression (a number), binary (one of two values), "
                            "multiclass (one of several), forecast (the next steps of a series; "
                            "needs --time-column and --target) or anomaly (unusual rows; no "
                            "target). auto decides from the data (default: auto)")
    group.add_argument("--time-column", metavar="COL",
                       help="for a forecast: the column with the dates or times (giving it means "
                            "--task forecast)")
    group.add_argument("--window", type=_whole_number(2), metavar="N",
                       help=f"for a forecast: past steps the model sees (default: {DEFAULT_WINDOW})")
    group.add_argument("--horizon", type=_whole_number(1), metavar="N",
                       help=f"for a forecast: future steps it predicts (default: {DEFAULT_HORIZON})")
    group.add_argument("--text-column", metavar="COL",
                       help="the column holding free text, to train a text model on it (needed "
                            "only when the table has other input columns or several text columns)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m builder`` and its three commands."""
    debug = _Parser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="on an error, show the full traceback; also log debug details")

    parser = _Parser(prog=PROG, description=MAIN_DESCRIPTION, epilog=MAIN_EPILOG,
                     formatter_class=_FORMATTER, parents=[debug], allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)

    train = commands.add_parser("train", help="learn a model from a data file and save it as a bundle",
                                description=TRAIN_DESCRIPTION, epilog=TRAIN_EPILOG,
                                formatter_class=_FORMATTER, parents=[debug], allow_abbrev=False)
    data = train.add_argument_group("data")
    data.add_argument("--data", required=True, metavar="PATH",
                      help="what to learn from: a table (CSV, TSV, TXT, Excel, Parquet or JSON) or "
                           "a .zip of image folders, one folder per class")
    _add_data_options(data)
    data.add_argument("--val-fraction", type=_number, metavar="F",
                      help="share of the data kept aside to pick the best epoch (default: 0.15)")
    data.add_argument("--test-fraction", type=_number, metavar="F",
                      help="share of the data kept aside for the final score (default: 0.15)")

    model = train.add_argument_group("model")
    model.add_argument("--model", choices=MODEL_CHOICES, default="auto", metavar="FAMILY",
                       help="model family: " + ", ".join(MODEL_CHOICES) + ". auto picks from the "
                            "data: an MLP for a table, a CNN for an image zip, a Transformer for a "
                            "text column, an LSTM for a forecast, an autoencoder for anomaly "
                            "detection (default: auto)")
    model.add_argument("--spec", metavar="SPEC.json",
                       help="a design file saved from the Build page (its family is the model)")

    settings = train.add_argument_group("training")
    settings.add_argument("--epochs", type=_whole_number(), metavar="N",
                          help="passes over the training data (default: 30; training stops early "
                               "when the validation loss has not improved for --patience epochs)")
    settings.add_argument("--batch-size", type=_whole_number(), metavar="N",
                          help="rows (images, texts, windows) per weight update (default: 64)")
    settings.add_argument("--lr", type=_number, metavar="F",
                          help="learning rate, the size of each update (default: 0.001)")
    settings.add_argument("--optimizer", choices=OPTIMIZER_CHOICES, metavar="NAME",
                          help="the update rule: " + ", ".join(OPTIMIZER_CHOICES) + "; adam suits "
                               "almost everything (default: adam)")
    settings.add_argument("--momentum", type=_number, metavar="F",
                          help="for --optimizer momentum only (default: 0.9)")
    settings.add_argument("--weight-decay", type=_number, metavar="F",
                          help="pull weights towards zero against overfitting (default: 0, off)")
    settings.add_argument("--patience", type=_whole_number(), metavar="N",
                          dest="early_stopping_patience",
                          help="stop after N epochs without a better validation loss; 0 turns "
                               "early stopping off (default: 10)")
    settings.add_argument("--seed", type=_whole_number(), metavar="N",
                          help="fixes the split, shuffling and initial weights, so a run can be "
                               "repeated (default: 42)")
    settings.add_argument("--device", choices=DEVICE_CHOICES, metavar="DEVICE",
                          help="where to train: auto, cpu, cuda (NVIDIA GPU) or mps (Apple GPU); "
                               "auto uses a GPU when there is one (default: auto)")
    settings.add_argument("--max-minutes", type=_number, metavar="F",
                          help="stop after this many minutes and keep the best model so far "
                               "(default: no limit)")

    out = train.add_argument_group("output")
    out.add_argument("--out", required=True, metavar="BUNDLE.zip",
                     help="where to save the trained model bundle (its folder is created)")
    train.set_defaults(run=run_train)

    predict = commands.add_parser("predict", help="predict new data with a saved bundle",
                                  description=PREDICT_DESCRIPTION, epilog=PREDICT_EPILOG,
                                  formatter_class=_FORMATTER, parents=[debug], allow_abbrev=False)
    predict.add_argument("--bundle", required=True, metavar="BUNDLE.zip",
                         help="a bundle written by 'train' or by the app's Export page")
    predict.add_argument("--data", required=True, metavar="PATH",
                         help="what to predict: a table file (CSV, TSV, TXT, Excel, Parquet or "
                              "JSON); for an image model a .zip of images, a folder of images or "
                              "one image; for a forecast, the history of the series")
    predict.add_argument("--out", required=True, metavar="PREDICTIONS.csv",
                         help="the CSV file to write ('-' writes it to stdout)")
    predict.set_defaults(run=run_predict)

    inspect = commands.add_parser("inspect", help="show a design's layers, shapes and parameter counts",
                                  description=INSPECT_DESCRIPTION, epilog=INSPECT_EPILOG,
                                  formatter_class=_FORMATTER, parents=[debug], allow_abbrev=False)
    source = inspect.add_mutually_exclusive_group(required=True)
    source.add_argument("--spec", metavar="SPEC.json", help="a design file (give --data too)")
    source.add_argument("--bundle", metavar="BUNDLE.zip", help="a trained model bundle")
    inspect_data = inspect.add_argument_group("data (with --spec)")
    inspect_data.add_argument("--data", metavar="PATH",
                              help="the data the design is for: a table or a .zip of image folders")
    _add_data_options(inspect_data, inspect=True)
    inspect.add_argument("--batch-size", type=_whole_number(1), metavar="N",
                         help=f"batch size of the memory estimate (default: {INSPECT_DEFAULT_BATCH})")
    inspect.add_argument("--json", action="store_true", help="print the table as one JSON object")
    inspect.set_defaults(run=run_inspect)
    return parser


# ----------------------------------------------------------------------------------------------
# Entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command.

    Args:
        argv: the arguments after ``python -m builder`` (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 done, 1 unexpected error (a bug), 2 a problem the user can fix,
        130 interrupted with Ctrl+C.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    with _logging_to_stderr(debug) as handler:
        try:
            try:
                args, extra = build_parser().parse_known_args(argv)
            except SystemExit as exc:  # --help and --version end here, after printing
                return int(exc.code or 0)
            if extra:  # reported here, where the command is known, to point at its own --help
                raise _CliError(f"Unknown option or extra value {' '.join(extra)}: run "
                                f"'{PROG} {args.command} --help' to see the options.")
            code = args.run(args)
            handler.show_held()
            return code
        except (BuilderError, OSError) as exc:
            return _fail(exc, debug, EXIT_USER_ERROR, handler)
        except KeyboardInterrupt:
            handler.show_held()
            print("Stopped by the user (Ctrl+C).", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception as exc:  # a bug: one line here, the details only with --debug
            return _fail(exc, debug, EXIT_BUG, handler)


def _fail(exc: BaseException, debug: bool, code: int, handler: _StderrLog) -> int:
    handler.drop_held()  # a command that fails while setting up prints its error alone
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    if code == EXIT_BUG:
        message = f"Unexpected error: {type(exc).__name__}: {exc} (run again with --debug for details)"
    elif isinstance(exc, OSError):
        message = _os_error_sentence(exc)
    else:
        message = str(exc)
    print(_one_line(message), file=sys.stderr)
    return code


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "Unknown error."


def _os_error_sentence(exc: OSError) -> str:
    name = str(exc.filename) if exc.filename is not None else "the file"
    if isinstance(exc, FileNotFoundError):
        return f"The file {name} does not exist: check the path."
    if isinstance(exc, IsADirectoryError):
        return f"{name} is a folder, not a file: give the path of a file."
    if isinstance(exc, PermissionError):
        return f"{name} cannot be opened: permission denied."
    reason = (exc.strerror or str(exc)).rstrip(".")
    return f"Could not read or write {name}: {reason}."


# ----------------------------------------------------------------------------------------------
# Logging: stderr, short lines, held back until the command has really started


class _StderrLog(logging.Handler):
    """Writes log records to stderr, one short line each.

    While ``holding``, records wait in memory: a command that fails while still reading and checking
    its inputs then prints only its one-sentence error, while a command that gets going shows them
    (``show_held``) before its progress lines.
    """

    def __init__(self, debug: bool):
        super().__init__(logging.DEBUG if debug else logging.INFO)
        self.debug = debug
        self._held: list[logging.LogRecord] | None = None if debug else []

    def emit(self, record: logging.LogRecord) -> None:
        if self._held is not None:
            self._held.append(record)
            return
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never break the command
            self.handleError(record)

    def show_held(self) -> None:
        """Show the held records and stop holding."""
        held, self._held = self._held or [], None
        for record in held:
            self.emit(record)

    def drop_held(self) -> None:
        """Forget the held records (the command failed before it started work)."""
        if self._held is not None:
            self._held = []

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        message = record.getMessage()
        if record.name == "py.warnings":  # "path.py:12: UserWarning: text\n  source line"
            first = message.strip().splitlines()[0] if message.strip() else ""
            message = re.sub(r"^.*?:\d+: ", "", first)
        if self.debug:
            text = f"{stamp} {record.levelname} {record.name}: {message}"
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            return text
        if record.levelno >= logging.WARNING:
            return f"{stamp} {record.levelname.lower()}: {message}"
        return f"{stamp} {message}"


_ACTIVE_LOG: list[_StderrLog] = []  # the handler of the command running now (a stack, for re-entry)


def _show_logs() -> None:
    """The command has started real work: show what was held and log straight through from now on."""
    if _ACTIVE_LOG:
        _ACTIVE_LOG[-1].show_held()


@contextlib.contextmanager
def _logging_to_stderr(debug: bool) -> Iterator[_StderrLog]:
    """Send the builder's log records and Python warnings to stderr for one command."""
    handler = _StderrLog(debug)
    loggers = [logging.getLogger("builder"), logging.getLogger("py.warnings")]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(handler.level)
        lg.propagate = False
    logging.captureWarnings(True)
    _ACTIVE_LOG.append(handler)
    try:
        yield handler
    finally:
        _ACTIVE_LOG.remove(handler)
        logging.captureWarnings(False)
        for lg, (level, propagate) in zip(loggers, saved, strict=False):
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate


# ----------------------------------------------------------------------------------------------
# Shared helpers


def _input_file(path: str, option: str) -> Path:
    """Check that ``path`` is a file before any slow work starts."""
    file = _existing_path(path, option)
    if file.is_dir():
        raise DataError(f"{option} needs a file, but {path} is a folder.")
    return file


def _existing_path(path: str, option: str) -> Path:
    file = Path(path).expanduser()
    if not file.exists():
        raise DataError(f"The file given to {option}, {path}, does not exist: check the path.")
    return file


def _output_file(path: str, option: str, example: str) -> Path:
    """Check, before any slow work, that ``path`` can be a file; create its folder."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise DataError(f"{option} needs a file name, but {path} is a folder: add a file name, e.g. "
                        f"{str(Path(path) / example)}.")
    file.parent.mkdir(parents=True, exist_ok=True)
    return file


def _is_zip(file: Path) -> bool:
    return file.suffix.lower() == ".zip"


def _is_image(file: Path) -> bool:
    from builder.data.images import IMAGE_EXTENSIONS

    return file.suffix.lower() in IMAGE_EXTENSIONS


def _read_table(file: Path, option: str, drop_empty_rows: bool = True) -> pd.DataFrame:
    from builder.data import read_table

    df = read_table(file, drop_empty_rows=drop_empty_rows)
    log.info("read %s: %d rows, %d columns", file.name, len(df), len(df.columns))
    return df


def _column_list(columns: Sequence[Any], limit: int = 40) -> str:
    names = [str(c) for c in columns]
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _check_column(df: pd.DataFrame, name: str, file: Path, what: str) -> str:
    """``name`` if it is a column of ``df``, else a ``DataError`` that lists the columns."""
    columns = [str(c) for c in df.columns]
    if name not in columns:
        near = [c for c in columns if c.strip().lower() == name.strip().lower()]
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise DataError(f"There is no column {name!r} in {file.name}{hint}, given as {what}; the "
                        f"columns are: {_column_list(columns)}.")
    return name


def _check_target(df: pd.DataFrame, target: str | None, file: Path) -> str:
    """The target column, or a ``DataError`` that lists the columns to choose from."""
    if target is None:
        raise DataError(f"Choose the column to predict with --target; the columns of {file.name} "
                        f"are: {_column_list([str(c) for c in df.columns])}.")
    return _check_column(df, target, file, "--target")


def _or_list(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


# ----------------------------------------------------------------------------------------------
# The data: which kind (table, images, text, series), which task, which family
#
# The decisions the app's Data and Build pages let the user make, taken from the options:
#   a .zip                          -> images; the task from the number of class folders
#   --task forecast (--time-column) -> series: --target over --time-column, in windows
#   --task anomaly (--model autoencoder) -> table without a target
#   a text column as the one input, or a sequence family on a table -> text
#   anything else                   -> table


SEQUENCE_FAMILIES = ("rnn", "lstm", "gru", "transformer")
TABLE_FAMILIES = ("linear", "logistic", "mlp")
_TASK_WORDS = {"regression": "predict a number (regression)",
               "binary": "predict one of two values (binary)",
               "multiclass": "predict one of several values (multiclass)",
               "forecast": "forecast a time series", "anomaly": "find unusual rows (anomaly detection)"}
_KIND_WORDS = {"table": "table columns", "images": "images", "text": "text", "series": "a time series"}
_SAMPLE_NOUNS = {"table": "rows", "images": "images", "text": "texts", "series": "windows"}


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


def _family_title(family: str) -> str:
    from builder.spec import FAMILIES

    return FAMILIES[family].title if family in FAMILIES else family


def _family_for(family: str | None, kind: str, task: str) -> str:
    """The family to train: ``family`` when it can learn ``task`` from ``kind``, else a SpecError
    naming the families that can; ``None`` (auto) is the default family of the kind and task."""
    from builder.spec import FAMILIES, families_for
    from builder.templates import default_family

    if family is None:
        return default_family(task, kind)
    found = FAMILIES.get(family)
    if found is None:  # an unknown family in a design file: its own validation names it
        return family
    fits = [f.key for f in families_for(kind, task)]
    use = f": use --model {_or_list(fits)} (or leave out --model)." if fits else "."
    if kind not in found.kinds:
        raise SpecError(f"{found.title} does not read {_KIND_WORDS[kind]}{use}")
    if task not in found.tasks:
        raise SpecError(f"{found.title} cannot {_TASK_WORDS.get(task, task)} from "
                        f"{_KIND_WORDS[kind]}{use}")
    return family


def _ignored(args: argparse.Namespace, names: Sequence[str], why: str) -> None:
    for name in names:
        if getattr(args, name, None) is not None:
            log.warning("--%s is not used %s; ignored.", name.replace("_", "-"), why)


def _choose_data(args: argparse.Namespace, file: Path, family: str | None) -> DataChoice:
    """Read ``file`` and decide the kind of data, the task and the family from the options."""
    task = args.task
    if task == "auto" and family == "autoencoder":
        task = "anomaly"
    if task == "auto" and args.time_column is not None:
        task = "forecast"
        log.info("task: forecast, because --time-column is given")
    if _is_zip(file):
        return _image_data(args, file, family, task)
    if _is_image(file):
        raise DataError(f"--data {file.name} is one image; a model learns from many: put the images "
                        "in one folder per class, zip the folders and pass the .zip.")
    if family == "cnn":
        raise SpecError(f"A CNN reads images: pass a .zip of image folders (one folder per class) to "
                        f"--data; {file.name} is a table (for a table use --model mlp).")
    df = _read_table(file, "--data")
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
        raise DataError(f"{file.name} holds {len(classes)} classes ({_column_list(classes, 10)}), "
                        f"which makes the task {found}, not {task}: leave out --task.")
    log.info("task: %s, because the zip holds %d class folders", found, len(classes))
    # An even spread over the (path-sorted) images, so every class is in the parity sample.
    picks = np.unique(np.linspace(0, len(images) - 1, min(len(images), SAMPLE_ROWS)).astype(int))
    return DataChoice(images, DataSpec(None, found, [], kind="images"), family or "cnn",
                      images.subset(picks))


def _profile(df: pd.DataFrame) -> Any:
    from builder.data import profile_table

    return profile_table(df)


def _series_data(args: argparse.Namespace, df: pd.DataFrame, file: Path, family: str | None) -> DataChoice:
    """A forecast: ``--target`` over ``--time-column``, cut into windows."""
    from builder.data import DataSpec
    from builder.data.preprocess import cell_text

    profile = _profile(df)
    dates = [c.name for c in profile.columns if c.kind == "datetime"]
    if dates:
        date_hint = f"the column(s) that look like dates: {_column_list(dates, 10)}"
    else:
        date_hint = (f"no column of {file.name} looks like dates (its columns: "
                     f"{_column_list([c.name for c in profile.columns], 20)})")
    if args.time_column is None:
        raise DataError(f"A forecast needs --time-column, the column with the dates or times; "
                        f"{date_hint}.")
    time_column = _check_column(df, args.time_column, file, "--time-column")
    column = profile.column(time_column)
    if column.kind != "datetime":
        example = f" (for example {cell_text(column.examples[0])})" if column.examples else ""
        raise DataError(f"The time column {time_column!r} does not hold dates or times{example}: "
                        f"choose {date_hint}.")
    numbers = [c.name for c in profile.columns if c.kind == "numeric" and c.name != time_column]
    if args.target is None:
        listed = _column_list(numbers, 20) if numbers else "none; a forecast needs numbers"
        raise DataError(f"Choose the series to forecast with --target; the columns of {file.name} "
                        f"with numbers are: {listed}.")
    target = _check_column(df, args.target, file, "--target")
    if target == time_column:
        raise DataError(f"{target!r} is the time column, so it cannot also be the series to forecast: "
                        f"give --target one of {_column_list(numbers, 20) or 'the columns with numbers'}.")
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
        _check_target(df, target, file)
        log.warning("anomaly detection has no column to predict: %r is left out of the inputs "
                    "(leave out --target to use it as an input).", target)
    profile = _profile(df)
    features = suggest_features(profile, target)
    if not features:
        raise DataError(f"No column of {file.name} can be an input: they look like identifiers, or "
                        "are constant or mostly empty. Add columns that describe the rows.")
    for note in health_warnings(profile, None):
        log.warning("%s", note)
    log.info("inputs: %s", _column_list(features, limit=20))
    return DataChoice(df, DataSpec(None, "anomaly", list(features)), family, df.head(SAMPLE_ROWS))


def _table_or_text_data(args: argparse.Namespace, df: pd.DataFrame, file: Path, family: str | None,
                        task: str) -> DataChoice:
    """A column to predict from the others (a table), or from one text column (text)."""
    from builder.data import DataSpec, health_warnings, suggest_features

    _ignored(args, ("time_column", "window", "horizon"), f"for --task {task}")
    target = _check_target(df, args.target, file)
    profile = _profile(df)
    features = suggest_features(profile, target)
    texts = [c.name for c in profile.columns if c.kind == "text" and c.name != target]
    text_column = args.text_column
    if text_column is not None:
        _check_column(df, text_column, file, "--text-column")
        if text_column == target:
            raise DataError(f"{target!r} is the column to predict, so it cannot also be the text to "
                            "read: give --text-column another column.")
        if family in TABLE_FAMILIES:
            raise SpecError(f"{_family_title(family)} reads table columns, not a text column: leave "
                            f"out --text-column, or use --model {_or_list(SEQUENCE_FAMILIES)}.")
    elif family in SEQUENCE_FAMILIES:
        if not texts:
            raise DataError(f"{_family_title(family)} reads text or a time series, but no column of "
                            f"{file.name} holds free text (sentences): for a table use --model mlp, "
                            "for a time series add --task forecast --time-column COL.")
        if len(texts) > 1:
            raise DataError(f"{file.name} has several text columns ({_column_list(texts, 10)}): choose "
                            "the one to read with --text-column COL.")
        text_column = texts[0]
    elif family is None and len(features) == 1 and features[0] in texts:
        text_column = features[0]
        log.info("%r holds free text and is the only input: training a text model", text_column)
    kind = "table" if text_column is None else "text"
    task = _infer_task(df, target, task)
    if kind == "text" and task not in ("binary", "multiclass"):
        raise DataError(f"A text model predicts categories, not numbers, but {target!r} is set up as "
                        f"a {task}: use --task binary or multiclass if its values are categories, or "
                        "a table model (--model mlp, without --text-column).")
    family = _family_for(family, kind, task)
    if kind == "text":
        log.info("reading the texts in %r", text_column)
        data_spec = DataSpec(target, task, [text_column], kind="text", options={"text_column": text_column})
        return DataChoice(df, data_spec, family, df.head(SAMPLE_ROWS))
    if not features:
        raise DataError(f"No column is left to learn from besides {target!r}: the others look like "
                        "identifiers, or are constant or mostly empty. Add columns that describe the rows.")
    for note in health_warnings(profile, target):
        log.warning("%s", note)
    log.info("inputs: %s", _column_list(features, limit=20))
    return DataChoice(df, DataSpec(target=target, task=task, features=list(features)), family,
                      df.head(SAMPLE_ROWS))


def _infer_task(df: pd.DataFrame, target: str, task: str) -> str:
    """``task``, or the task the target column suggests when ``auto``; checked against the column."""
    from builder.data import check_target, infer_task

    if task == "auto":
        guess = infer_task(df[target])
        task = guess.task
        log.info("task: %s, because %s", task, guess.reason.rstrip("."))
    check_target(df, target, task)
    return task


# ----------------------------------------------------------------------------------------------
# train


def run_train(args: argparse.Namespace) -> int:
    """``train``: read and check the data, train, evaluate, write the bundle, print the JSON line."""
    from builder.train import TrainControl

    data_file = _existing_path(args.data, "--data")
    if data_file.is_dir():
        raise DataError(f"--data needs a file, but {args.data} is a folder: to learn from images, zip "
                        "the class folders (one folder per class) and pass the .zip.")
    out_file = _output_file(args.out, "--out", "model.zip")
    spec = _load_spec(args.spec) if args.spec else None
    family = _resolve_family(args.model, spec)
    config = _train_config(args)
    choice = _choose_data(args, data_file, family)

    control = TrainControl()
    progress = ProgressLog(choice.family, noun=_SAMPLE_NOUNS[choice.data_spec.kind])
    with _stop_on_ctrl_c(control), contextlib.redirect_stdout(sys.stderr):  # stdout: the JSON only
        from builder.pipeline import train_model

        trained = train_model(choice.source, choice.data_spec, config, spec=spec, family=choice.family,
                              callbacks=[progress], control=control)
        from builder.export import write_bundle  # ONNX is imported only once there is a model

        report = write_bundle(trained, out_file, sample_rows=choice.sample)
    for note in report.warnings:
        log.warning("%s", note)
    log.info("bundle written to %s (%s)", out_file, _human_bytes(report.size))
    print(json.dumps(strict(_train_summary(trained, out_file)), allow_nan=False))
    return EXIT_OK


def _load_spec(path: str, strict: bool = True) -> ModelSpec:
    """Read a design file."""
    from builder.spec import ModelSpec

    return ModelSpec.from_dict(_read_json(_input_file(path, "--spec")), strict=strict)


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "it is not text"
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise SpecError(f"The design file {file.name} is not valid JSON ({reason}{where}): save a "
                        "design from the Build page and use that.") from None


def _resolve_family(model: str, spec: ModelSpec | None) -> str | None:
    """The family to train: the design's, the one asked for, or ``None`` (auto: from the data)."""
    if spec is None:
        return None if model == "auto" else model
    if model not in ("auto", spec.family):
        raise SpecError(f"--model {model} and the design file's family, {spec.family}, disagree: "
                        "leave out --model, or change the family in the design.")
    return spec.family


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """A validated ``TrainConfig`` from the options given; the others keep their defaults."""
    from builder.train import TrainConfig

    names = ("epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "seed", "device",
             "early_stopping_patience", "max_minutes", "val_fraction", "test_fraction")
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    return TrainConfig(**given).validate()


@contextlib.contextmanager
def _stop_on_ctrl_c(control: TrainControl) -> Iterator[None]:
    """The first Ctrl+C ends training after the current batch, keeping the best epoch (the bundle is
    still written); a second one aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handle(signum: int, frame: Any) -> None:
        if control.stopped:
            raise KeyboardInterrupt
        log.warning("stopping after this batch and keeping the best epoch (Ctrl+C again to abort)")
        control.stop()

    signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class ProgressLog:
    """Training callback: one concise stderr line per epoch, at most one per ``interval_s``.

    The first and the last planned epoch always show; when training ends earlier, the last epoch
    held back by the throttle shows at the end (the engine itself logs why training ended).
    """

    def __init__(self, family: str, interval_s: float = PROGRESS_INTERVAL_S, noun: str = "rows"):
        self.family = family
        self.noun = noun  # what one training example is: rows, images, texts or windows
        self.interval_s = interval_s
        self._last_shown = -math.inf
        self._pending: str | None = None

    def on_train_begin(self, info: dict[str, Any]) -> None:
        _show_logs()  # the inputs are good: what was held back about them is worth seeing now
        log.info("training %s on %s: %s training %s, %s validation %s, %s parameters, "
                 "batch size %s, up to %s epochs", self.family, info.get("device", "?"),
                 info.get("train_rows", "?"), self.noun, info.get("val_rows", "?"), self.noun,
                 f"{info['parameters']:,}" if "parameters" in info else "?",
                 info.get("batch_size", "?"), info.get("epochs", "?"))

    def on_batch_end(self, step: int, logs: dict[str, Any]) -> None:
        """Batch events feed the app's live chart; one line per epoch is enough here."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        line = _epoch_line(epoch, logs)
        now = time.monotonic()
        if epoch in (1, logs.get("epochs")) or now - self._last_shown >= self.interval_s:
            log.info("%s", line)
            self._last_shown, self._pending = now, None
        else:
            self._pending = line

    def on_train_end(self, history: History) -> None:
        if self._pending:
            log.info("%s", self._pending)
            self._pending = None


def _epoch_line(epoch: int, logs: dict[str, Any]) -> str:
    total = logs.get("epochs")
    parts = []
    for key in ("loss", "val_loss", "accuracy", "val_accuracy", "val_rmse"):
        value = logs.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            parts.append(f"{key} {value:.4g}")
    seconds = logs.get("seconds")
    timing = f" ({seconds:.2f} s)" if isinstance(seconds, (int, float)) else ""
    return f"epoch {epoch}{f'/{total}' if total else ''}: {', '.join(parts)}{timing}"


def _train_summary(trained: TrainedModel, out_file: Path) -> dict[str, Any]:
    """The JSON object ``train`` prints as the last line of stdout (``baseline`` is ``null`` for
    anomaly detection, which has none)."""
    baseline = None
    if trained.baseline is not None:
        baseline = {"name": trained.baseline.name, "test": dict(trained.baseline.metrics)}
    return {
        "task": trained.task,
        "model": trained.spec.effective_family(),
        "device": trained.device,
        "epochs_run": trained.history.epochs_run,
        "seconds": round(float(trained.seconds), 3),
        "metrics": {"test": dict(trained.metrics.get("test", {}))},
        "baseline": baseline,
        "bundle": str(out_file),
    }


# ----------------------------------------------------------------------------------------------
# predict


def run_predict(args: argparse.Namespace) -> int:
    """``predict``: the predictions CSV of the data (rows, images or a history); a summary on stdout."""
    from builder.export import read_bundle

    bundle_file = _input_file(args.bundle, "--bundle")
    data_path = _existing_path(args.data, "--data")
    to_stdout = args.out == "-"
    out_file = None if to_stdout else _output_file(args.out, "--out", "predictions.csv")
    with contextlib.redirect_stdout(sys.stderr):
        bundle = read_bundle(bundle_file)
        kind = bundle.data_spec.kind
        if kind == "images":
            items, files = _read_images(data_path)
            predictions = bundle.predict(items, files=files)
        else:
            if data_path.is_dir() or _is_zip(data_path) or _is_image(data_path):
                what = "a folder" if data_path.is_dir() else "a .zip" if _is_zip(data_path) else "an image"
                raise DataError(f"This model reads {_KIND_WORDS[kind]}, but --data {data_path.name} is "
                                f"{what}: give a table file (CSV, TSV, TXT, Excel, Parquet or JSON) "
                                "with the columns it was trained on.")
            df = _read_table(data_path, "--data", drop_empty_rows=False)  # one prediction per input row
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
    if _is_image(path):
        return [path], [path.name]
    if not _is_zip(path):
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


# ----------------------------------------------------------------------------------------------
# inspect


def run_inspect(args: argparse.Namespace) -> int:
    """``inspect``: the layer table of a design on given data, or of a bundle."""
    from builder.shapes import infer_shapes

    with contextlib.redirect_stdout(sys.stderr):
        if args.spec:
            if not args.data:
                raise DataError("--spec needs --data too: the data sets the input and output sizes "
                                "of the design.")
            spec, shape, note = _design_on_data(args)
        else:
            given = [name for name in ("data", "target", "time_column", "window", "horizon", "text_column")
                     if getattr(args, name) is not None] + (["task"] if args.task != "auto" else [])
            if given:
                log.warning("%s not needed with --bundle; ignored.",
                            _or_list(["--" + n.replace("_", "-") for n in given]).replace(" or ", " and "))
            spec, shape, note = _design_of_bundle(args.bundle)
        with shape.scope():  # text: the Embedding's vocabulary
            report = infer_shapes(spec, shape.input_shape, shape.n_outputs)
    table = _inspect_table(spec, report, shape, args.batch_size or INSPECT_DEFAULT_BATCH, note)
    print(json.dumps(strict(table), allow_nan=False) if args.json else _format_inspect(table))
    if report.problems:
        raise SpecError(report.problems[0].message)
    return EXIT_OK


def _design_on_data(args: argparse.Namespace) -> tuple[ModelSpec, DataShape, str | None]:
    """A design file sized from the data exactly as training would size it."""
    from builder.data.sources import DataShape, data_shape, prepare_data
    from builder.spec import FAMILIES
    from builder.train import TrainConfig

    # Not strict: a design with bad values still gets its table, with every problem listed.
    spec = _load_spec(args.spec, strict=False)
    data_path = _existing_path(args.data, "--data")
    if data_path.is_dir():
        raise DataError(f"--data needs a file, but {args.data} is a folder: for images, zip the class "
                        "folders and pass the .zip.")
    family = spec.family if spec.family in FAMILIES else None
    table_design = family is None or family in TABLE_FAMILIES
    if (args.target is None and table_design and not _is_zip(data_path) and args.text_column is None
            and args.time_column is None and args.task in ("auto", "regression", "binary", "multiclass")):
        from builder.data import Preprocessor, suggest_features

        df = _read_table(data_path, "--data")
        features = suggest_features(_profile(df), None)
        if not features:
            raise DataError(f"No column of {data_path.name} can be an input: they look like "
                            "identifiers, or are constant or mostly empty.")
        preprocessor = Preprocessor().fit(df, None, "regression", features)
        note = ("No --target given: every usable column counts as an input and the output layer is "
                "shown with 1 value; add --target COL for the real sizes.")
        return spec, DataShape("table", "regression", (preprocessor.n_features,), 1, len(df),
                               n_columns=len(features)), note
    choice = _choose_data(args, data_path, family)
    defaults = TrainConfig()
    prepared = prepare_data(choice.source, choice.data_spec, defaults.val_fraction, defaults.test_fraction,
                            defaults.seed)
    return spec, data_shape(prepared, choice.data_spec), None


def _design_of_bundle(path: str) -> tuple[ModelSpec, DataShape, str | None]:
    from builder.data.sources import shape_of
    from builder.export import read_bundle

    bundle = read_bundle(_input_file(path, "--bundle"))
    return bundle.spec, shape_of(bundle.preprocessor), None


def _inspect_table(spec: ModelSpec, report: ShapeReport, shape: DataShape, batch_size: int,
                   note: str | None) -> dict[str, Any]:
    """The layer table as plain data (what ``--json`` prints)."""
    rows = []
    running = 0
    for row in report.rows:
        running += row.n_params
        rows.append({
            "number": row.index + 1,
            "type": row.type,
            "settings": dict(row.params),
            "input_shape": list(row.input_shape) if row.input_shape else None,
            "output_shape": list(row.output_shape) if row.output_shape else None,
            "parameters": int(row.n_params),
            "running_total": int(running),
            "locked": bool(row.locked),
            "problem": row.problem.message if row.problem else None,
        })
    table = {
        "family": spec.family,
        "effective_family": spec.effective_family(),
        "kind": shape.kind,
        "task": shape.task,
        "input": shape.input_label.removeprefix("Input: "),
        "input_shape": list(shape.input_shape),
        "layers": rows,
        "total_parameters": int(report.total_params),
        "batch_size": batch_size,
        "memory_bytes_per_batch": int(report.memory_estimate(batch_size)),
        "problems": [p.message for p in report.problems],
    }
    if note:
        table["note"] = note
    return table


def _shape_text(shape: list[int] | None) -> str:
    return "x".join(str(d) for d in shape) if shape else "?"


def _format_inspect(table: dict[str, Any]) -> str:
    """The layer table as aligned text columns, then the totals."""
    headers = ["#", "Layer", "Settings", "Input", "Output", "Parameters", "Total"]
    lines = []
    for row in table["layers"]:
        layer = row["type"] + (" (output, locked)" if row["locked"] else "")
        settings = ", ".join(f"{k}={v}" for k, v in row["settings"].items()) or "-"
        lines.append([str(row["number"]), layer, settings, _shape_text(row["input_shape"]),
                      _shape_text(row["output_shape"]), f"{row['parameters']:,}",
                      f"{row['running_total']:,}"])
    widths = [max([len(h)] + [len(line[i]) for line in lines]) for i, h in enumerate(headers)]
    numeric = {0, 5, 6}

    def render(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=False))).rstrip()

    family = table["effective_family"]
    out = [f"Design: {family}; input: {table['input']}", "",
           render(headers), render(["-" * w for w in widths]), *(render(line) for line in lines), "",
           f"Total parameters: {table['total_parameters']:,}",
           f"Memory to train one batch of {table['batch_size']} {_SAMPLE_NOUNS[table['kind']]}: about "
           f"{_human_bytes(table['memory_bytes_per_batch'])}"]
    out += [f"Problem: {problem}" for problem in table["problems"]]
    if table.get("note"):
        out.append(f"Note: {table['note']}")
    return "\n".join(out)


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"
