"""``python -m builder train|predict|inspect``: the app's journey, scriptable.

The commands call exactly the functions the app calls (``pipeline.train_model``,
``export.write_bundle``, ``export.read_bundle``, ``shapes.infer_shapes``), so a model trained here is
the model the app would train. This module is the only place in ``builder/`` that writes to stdout:

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
    from builder.pipeline import TrainedModel
    from builder.shapes import ShapeReport
    from builder.spec import ModelSpec
    from builder.train import Callback, History, TrainConfig, TrainControl

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
  {PROG} predict --bundle price_model.zip --data new_houses.csv --out predictions.csv
  {PROG} inspect --bundle price_model.zip

Run '{PROG} COMMAND --help' for the options of a command. Errors exit with code 2 and one
sentence; add --debug to any command to see the full details.
"""

TRAIN_DESCRIPTION = """\
Learn a model from a table (CSV, TSV, TXT, Excel, Parquet or JSON) and save it as a bundle.

The data is split into training, validation and test rows; the network trains on the first,
keeps its best epoch on the second and is scored on the third, next to a simple scikit-learn
baseline fitted on the same rows. Progress goes to stderr, one line per epoch; the last line
of stdout is one JSON object with the task, the model, the device, the test metrics, the
baseline's test metrics and the bundle path.
"""

TRAIN_EPILOG = f"""\
examples:
  {PROG} train --data churn.csv --target churned --out churn.zip
  {PROG} train --data houses.xlsx --target price --model linear --epochs 50 --out price.zip
  {PROG} train --data iris.csv --target species --spec my_design.json --out iris.zip
"""

PREDICT_DESCRIPTION = """\
Predict every row of a data file with a saved bundle and write the predictions to a CSV file:
one row per input row, in the same order, with a 'prediction' column (the label as written in
the training data, or the number) and, for categories, one 'probability_<class>' column per
class. The file must have the columns the model was trained on; the target may be absent.
"""

PREDICT_EPILOG = f"""\
example:
  {PROG} predict --bundle churn.zip --data new_customers.csv --out predictions.csv
"""

INSPECT_DESCRIPTION = """\
Show a design as a table: each layer's number, type and settings, the shape that goes in and
comes out, its parameter count and the running total. The last row is the output layer, sized
to the task by the builder (locked). Below the table: total parameters and a rough memory need
for training one batch.

Give a design file and the data it is for (the data sets the input and output sizes), or a
bundle, which holds both.
"""

INSPECT_EPILOG = f"""\
examples:
  {PROG} inspect --spec my_design.json --data houses.csv --target price
  {PROG} inspect --bundle price_model.zip --json
"""


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
                      help="the table to learn from: CSV, TSV, TXT, Excel, Parquet or JSON")
    data.add_argument("--target", metavar="COL",
                      help="the column to predict (required for tables; if it is missing or "
                           "wrong, the error lists the columns)")
    data.add_argument("--task", choices=TASK_CHOICES, default="auto", metavar="TASK",
                      help="what to predict: regression (a number), binary (one of two values), "
                           "multiclass (one of several), forecast or anomaly (not available for "
                           "tables yet); auto decides from the target column (default: auto)")
    data.add_argument("--val-fraction", type=_number, metavar="F",
                      help="share of rows kept aside to pick the best epoch (default: 0.15)")
    data.add_argument("--test-fraction", type=_number, metavar="F",
                      help="share of rows kept aside for the final score (default: 0.15)")
    data.add_argument("--time-column", metavar="COL", help="time stamps, for --task forecast")
    data.add_argument("--window", type=_whole_number(1), metavar="N",
                      help="past steps the model sees, for --task forecast")
    data.add_argument("--horizon", type=_whole_number(1), metavar="N",
                      help="future steps to predict, for --task forecast")

    model = train.add_argument_group("model")
    model.add_argument("--model", choices=MODEL_CHOICES, default="auto", metavar="FAMILY",
                       help="model family: " + ", ".join(MODEL_CHOICES) + ". Tables take mlp, "
                            "linear or logistic; auto picks an MLP for a table (default: auto)")
    model.add_argument("--spec", metavar="SPEC.json",
                       help="a design file saved from the Build page (its family is the model)")

    settings = train.add_argument_group("training")
    settings.add_argument("--epochs", type=_whole_number(), metavar="N",
                          help="passes over the training rows (default: 30; training stops early "
                               "when the validation loss has not improved for --patience epochs)")
    settings.add_argument("--batch-size", type=_whole_number(), metavar="N",
                          help="rows per weight update (default: 64)")
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

    predict = commands.add_parser("predict", help="predict every row of a data file with a saved bundle",
                                  description=PREDICT_DESCRIPTION, epilog=PREDICT_EPILOG,
                                  formatter_class=_FORMATTER, parents=[debug], allow_abbrev=False)
    predict.add_argument("--bundle", required=True, metavar="BUNDLE.zip",
                         help="a bundle written by 'train' or by the app's Export page")
    predict.add_argument("--data", required=True, metavar="PATH",
                         help="the rows to predict: CSV, TSV, TXT, Excel, Parquet or JSON")
    predict.add_argument("--out", required=True, metavar="PREDICTIONS.csv",
                         help="the CSV file to write ('-' writes it to stdout)")
    predict.set_defaults(run=run_predict)

    inspect = commands.add_parser("inspect", help="show a design's layers, shapes and parameter counts",
                                  description=INSPECT_DESCRIPTION, epilog=INSPECT_EPILOG,
                                  formatter_class=_FORMATTER, parents=[debug], allow_abbrev=False)
    source = inspect.add_mutually_exclusive_group(required=True)
    source.add_argument("--spec", metavar="SPEC.json", help="a design file (give --data too)")
    source.add_argument("--bundle", metavar="BUNDLE.zip", help="a trained model bundle")
    inspect.add_argument("--data", metavar="PATH", help="the table the design is for (with --spec)")
    inspect.add_argument("--target", metavar="COL",
                         help="the column to predict (with --spec): sizes the output layer; "
                              "without it the output layer is shown with 1 value")
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
    file = Path(path).expanduser()
    if not file.exists():
        raise DataError(f"The file given to {option}, {path}, does not exist: check the path.")
    if file.is_dir():
        raise DataError(f"{option} needs a file, but {path} is a folder.")
    return file


def _output_file(path: str, option: str, example: str) -> Path:
    """Check, before any slow work, that ``path`` can be a file; create its folder."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise DataError(f"{option} needs a file name, but {path} is a folder: add a file name, e.g. "
                        f"{str(Path(path) / example)}.")
    file.parent.mkdir(parents=True, exist_ok=True)
    return file


def _check_table_file(file: Path, option: str) -> None:
    if file.suffix.lower() == ".zip":
        raise DataError(f"{option} {file.name} is a .zip, which means image folders, and images are "
                        "not available yet: use a table file (CSV, TSV, TXT, Excel, Parquet or JSON).")


def _read_table(file: Path, option: str, drop_empty_rows: bool = True) -> pd.DataFrame:
    from builder.data import read_table

    _check_table_file(file, option)
    df = read_table(file, drop_empty_rows=drop_empty_rows)
    log.info("read %s: %d rows, %d columns", file.name, len(df), len(df.columns))
    return df


def _column_list(columns: Sequence[Any], limit: int = 40) -> str:
    names = [str(c) for c in columns]
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _check_target(df: pd.DataFrame, target: str | None, file: Path) -> str:
    """The target column, or a ``DataError`` that lists the columns to choose from."""
    columns = [str(c) for c in df.columns]
    if target is None:
        raise DataError(f"Choose the column to predict with --target; the columns of {file.name} "
                        f"are: {_column_list(columns)}.")
    if target not in columns:
        near = [c for c in columns if c.strip().lower() == target.strip().lower()]
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise DataError(f"There is no column {target!r} in {file.name}{hint}; the columns are: "
                        f"{_column_list(columns)}.")
    return target


# ----------------------------------------------------------------------------------------------
# train


def _not_available(family: str) -> NoReturn:
    raise SpecError(f"The {family} family is not available for tables yet: use "
                    f"{_or_list(TABLE_FAMILIES)}.")


def _or_list(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


@dataclass
class TableJob:
    """Everything a family's handler needs to train on a table."""

    df: pd.DataFrame  # the raw table, as read
    data_spec: DataSpec  # target, task, input columns
    config: TrainConfig
    spec: ModelSpec | None  # the user's design, or None for the family's starter design
    family: str
    callbacks: list[Callback]
    control: TrainControl


def _train_model_family(job: TableJob) -> TrainedModel:
    """Linear, logistic and MLP all train through the app's own ``train_model``."""
    from builder.pipeline import train_model

    return train_model(job.df, job.data_spec, job.config, spec=job.spec, family=job.family,
                       callbacks=job.callbacks, control=job.control)


# Family -> how the CLI trains it on a table. A family of --model that is not listed here is refused
# with "not available for tables yet"; making one available is one entry here.
TABLE_FAMILIES: dict[str, Callable[[TableJob], TrainedModel]] = {
    "mlp": _train_model_family,
    "linear": _train_model_family,
    "logistic": _train_model_family,
}
TABLE_TASKS = ("regression", "binary", "multiclass")


def run_train(args: argparse.Namespace) -> int:
    """``train``: read and check the data, train, evaluate, write the bundle, print the JSON line."""
    from builder.train import TrainControl

    data_file = _input_file(args.data, "--data")
    _check_table_file(data_file, "--data")  # the kind of data decides which families can train
    if args.model != "auto" and args.model not in TABLE_FAMILIES:
        _not_available(args.model)
    if args.task not in ("auto", *TABLE_TASKS):
        raise SpecError(f"The {args.task} task is not available for tables yet: use auto, "
                        f"{_or_list(TABLE_TASKS)}.")
    for name in ("time_column", "window", "horizon"):
        if getattr(args, name) is not None:
            log.warning("--%s is used only with --task forecast; ignored.", name.replace("_", "-"))
    out_file = _output_file(args.out, "--out", "model.zip")
    spec = _load_spec(args.spec) if args.spec else None
    family = _resolve_family(args.model, spec)
    config = _train_config(args)

    df = _read_table(data_file, "--data")
    target = _check_target(df, args.target, data_file)
    data_spec = _data_spec(df, target, args.task)
    if family is None:
        from builder.templates import default_family

        family = default_family(data_spec.task)
    handler = TABLE_FAMILIES.get(family) or _not_available(family)

    control = TrainControl()
    progress = ProgressLog(family)
    with _stop_on_ctrl_c(control), contextlib.redirect_stdout(sys.stderr):  # stdout: the JSON only
        trained = handler(TableJob(df, data_spec, config, spec, family, [progress], control))
        from builder.export import write_bundle  # ONNX is imported only once there is a model

        report = write_bundle(trained, out_file, sample_rows=df.head(SAMPLE_ROWS))
    for note in report.warnings:
        log.warning("%s", note)
    log.info("bundle written to %s (%s)", out_file, _human_bytes(report.size))
    print(json.dumps(strict(_train_summary(trained, out_file)), allow_nan=False))
    return EXIT_OK


def _load_spec(path: str, strict: bool = True) -> ModelSpec:
    """Read a design file; a family that tables cannot use yet gets the "not available" message."""
    from builder.spec import ModelSpec

    data = _read_json(_input_file(path, "--spec"))
    family = data.get("family") if isinstance(data, dict) else None
    if family in MODEL_CHOICES and family not in TABLE_FAMILIES:
        _not_available(family)
    return ModelSpec.from_dict(data, strict=strict)


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "it is not text"
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise SpecError(f"The design file {file.name} is not valid JSON ({reason}{where}): save a "
                        "design from the Build page and use that.") from None


def _resolve_family(model: str, spec: ModelSpec | None) -> str | None:
    """The family to train: the design's, the one asked for, or ``None`` (auto: from the task)."""
    if spec is None:
        return None if model == "auto" else model
    if model not in ("auto", spec.family):
        raise SpecError(f"--model {model} and the design file's family, {spec.family}, disagree: "
                        "leave out --model, or change the family in the design.")
    if spec.family not in TABLE_FAMILIES:
        _not_available(spec.family)
    return spec.family


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """A validated ``TrainConfig`` from the options given; the others keep their defaults."""
    from builder.train import TrainConfig

    names = ("epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "seed", "device",
             "early_stopping_patience", "max_minutes", "val_fraction", "test_fraction")
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    return TrainConfig(**given).validate()


def _data_spec(df: pd.DataFrame, target: str, task: str) -> DataSpec:
    """Target, task (inferred when ``auto``) and the input columns the app would suggest."""
    from builder.data import DataSpec, check_target, health_warnings, infer_task, profile_table, suggest_features

    if task == "auto":
        guess = infer_task(df[target])
        task = guess.task
        log.info("task: %s, because %s", task, guess.reason.rstrip("."))
    check_target(df, target, task)
    profile = profile_table(df)
    features = suggest_features(profile, target)
    if not features:
        raise DataError(f"No column is left to learn from besides {target!r}: the others look like "
                        "identifiers, or are constant or mostly empty. Add columns that describe the rows.")
    for note in health_warnings(profile, target):
        log.warning("%s", note)
    log.info("inputs: %s", _column_list(features, limit=20))
    return DataSpec(target=target, task=task, features=list(features))


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

    def __init__(self, family: str, interval_s: float = PROGRESS_INTERVAL_S):
        self.family = family
        self.interval_s = interval_s
        self._last_shown = -math.inf
        self._pending: str | None = None

    def on_train_begin(self, info: dict[str, Any]) -> None:
        _show_logs()  # the inputs are good: what was held back about them is worth seeing now
        log.info("training %s on %s: %s training rows, %s validation rows, %s parameters, "
                 "batch size %s, up to %s epochs", self.family, info.get("device", "?"),
                 info.get("train_rows", "?"), info.get("val_rows", "?"),
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
    """The JSON object ``train`` prints as the last line of stdout."""
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
    """``predict``: one prediction per input row, in order, to a CSV file; a summary on stdout."""
    from builder.export import read_bundle

    bundle_file = _input_file(args.bundle, "--bundle")
    data_file = _input_file(args.data, "--data")
    to_stdout = args.out == "-"
    out_file = None if to_stdout else _output_file(args.out, "--out", "predictions.csv")
    with contextlib.redirect_stdout(sys.stderr):
        bundle = read_bundle(bundle_file)
        df = _read_table(data_file, "--data", drop_empty_rows=False)  # one prediction per input row
        predictions = bundle.predict(df)
    if to_stdout:
        predictions.to_csv(sys.stdout, index=False)
        log.info("%s", _predict_summary(predictions, None))
        return EXIT_OK
    predictions.to_csv(out_file, index=False)
    print(_predict_summary(predictions, out_file))
    return EXIT_OK


def _predict_summary(predictions: pd.DataFrame, out_file: Path | None) -> str:
    n = len(predictions)
    where = f" to {out_file}" if out_file else ""
    text = f"Wrote {n} prediction{'' if n == 1 else 's'}{where}"
    probability = [c for c in predictions.columns if str(c).startswith("probability_")]
    if probability and n:
        counts = predictions["prediction"].value_counts()
        text += " (" + ", ".join(f"{label}: {count} rows" for label, count in counts.items()) + ")"
    elif n:
        values = predictions["prediction"]
        text += f" (from {values.min():.4g} to {values.max():.4g}, mean {values.mean():.4g})"
    return text + "."


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
            spec, input_shape, n_outputs, note = _design_on_data(args)
        else:
            if args.data or args.target:
                log.warning("--data and --target are not needed with --bundle; ignored.")
            spec, input_shape, n_outputs, note = _design_of_bundle(args.bundle)
        report = infer_shapes(spec, input_shape, n_outputs)
    table = _inspect_table(spec, report, input_shape, args.batch_size or INSPECT_DEFAULT_BATCH, note)
    print(json.dumps(strict(table), allow_nan=False) if args.json else _format_inspect(table))
    if report.problems:
        raise SpecError(report.problems[0].message)
    return EXIT_OK


def _design_on_data(args: argparse.Namespace) -> tuple[ModelSpec, tuple[int, ...], int, str | None]:
    """A design file sized from the data exactly as training would size it."""
    from builder.data import Preprocessor, prepare_tabular, profile_table, suggest_features
    from builder.train import TrainConfig

    # Not strict: a design with bad values still gets its table, with every problem listed.
    spec = _load_spec(args.spec, strict=False)
    data_file = _input_file(args.data, "--data")
    df = _read_table(data_file, "--data")
    if args.target is None:
        features = suggest_features(profile_table(df), None)
        if not features:
            raise DataError(f"No column of {data_file.name} can be an input: they look like "
                            "identifiers, or are constant or mostly empty.")
        preprocessor = Preprocessor().fit(df, None, "regression", features)
        note = ("No --target given: every usable column counts as an input and the output layer is "
                "shown with 1 value; add --target COL for the real sizes.")
        return spec, (preprocessor.n_features,), 1, note
    target = _check_target(df, args.target, data_file)
    data_spec: DataSpec = _data_spec(df, target, "auto")
    defaults = TrainConfig()
    prepared = prepare_tabular(df, data_spec, defaults.val_fraction, defaults.test_fraction, defaults.seed)
    return spec, tuple(prepared.input_shape), int(prepared.n_outputs), None


def _design_of_bundle(path: str) -> tuple[ModelSpec, tuple[int, ...], int, str | None]:
    from builder.export import read_bundle

    bundle = read_bundle(_input_file(path, "--bundle"))
    return bundle.spec, tuple(bundle.input_shape), int(bundle.n_outputs), None


def _inspect_table(spec: ModelSpec, report: ShapeReport, input_shape: tuple[int, ...], batch_size: int,
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
        "input_shape": list(input_shape),
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
    out = [f"Design: {family}, input {_shape_text(table['input_shape'])} per row", "",
           render(headers), render(["-" * w for w in widths]), *(render(line) for line in lines), "",
           f"Total parameters: {table['total_parameters']:,}",
           f"Memory to train one batch of {table['batch_size']} rows: about "
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
