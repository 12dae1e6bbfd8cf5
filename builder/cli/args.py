"""Arguments: the argparse pieces every command shares, and argparse's errors reworded as sentences."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from typing import NoReturn

from builder.errors import BuilderError

PROG = "python -m builder"
EXIT_OK, EXIT_BUG, EXIT_USER_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
MODEL_CHOICES = ("auto", "linear", "logistic", "mlp", "cnn", "rnn", "lstm", "gru", "transformer",
                 "autoencoder")
TASK_CHOICES = ("auto", "regression", "binary", "multiclass", "forecast", "anomaly")
OPTIMIZER_CHOICES = ("sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
SCHEDULE_CHOICES = ("constant", "step", "cosine", "one_cycle", "plateau")  # builder.train_config.SCHEDULES
DEFAULT_WINDOW, DEFAULT_HORIZON = 28, 1  # = timeseries.WindowSpec's defaults (checked by a test)
# The command line's own limit on a table file (--max-file-mb of train and predict), far above the
# app's upload limit (200 MB, builder.data.read.DEFAULT_MAX_BYTES): a 1M x 20 CSV is about 200 MB.
DEFAULT_MAX_FILE_MB = 2048
DEFAULT_REASONS, MAX_REASONS = 3, 20  # = builder.export.predictions' REASONS, MAX_REASONS (a test checks)


class CliError(BuilderError):
    """A command line that cannot be run as written (unknown option, bad value...)."""


class CliParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose mistakes become one plain sentence instead of a usage dump."""

    def error(self, message: str) -> NoReturn:
        raise CliError(plain_argparse_message(message, self.prog))


def plain_argparse_message(message: str, prog: str) -> str:
    """Reword argparse's terse messages as sentences that say what to do."""
    help_hint = f"run '{prog} --help' to see the options."
    if match := re.match(r"the following arguments are required: (.+)", message):
        names = match.group(1)
        if names == "COMMAND":
            return f"Choose a command: train, predict, inspect, runs or serve (run '{PROG} --help' for what each does)."
        return f"Missing required option(s) {names}: {help_hint}"
    if match := re.match(r"argument (\S+?)(?:/\S+)?: (.+)", message):
        name, problem = match.group(1), match.group(2)
        if name == "COMMAND":
            return f"Unknown command {problem.split(':', 1)[-1].split(' (')[0].strip()}: use train, predict, inspect, runs or serve."
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


def whole_number(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number (at least ``minimum``, at most ``maximum``, when given)."""
    if minimum is not None and maximum is not None:
        wanted = f"a whole number from {minimum} to {maximum}"
    elif maximum is not None:
        wanted = f"a whole number of {maximum} or less"
    else:
        wanted = "a whole number" if minimum is None else f"a whole number of {minimum} or more"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}; got {text!r}") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be {wanted}; got {text!r}")
        return value

    return parse


def finite_number(text: str) -> float:
    """An argparse type: a finite number. Ranges are checked by ``TrainConfig`` (one set of rules)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number; got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number; got {text!r}")
    return value


def check_threshold(value: float | None, task: str | None = "binary") -> float | None:
    """``--threshold``: ``None`` (not given), or a number strictly between 0 and 1 for a yes/no model.

    Args:
        value: the option's value.
        task: the model's task (the default checks the range only, before a model is known).

    Raises:
        DataError: outside (0, 1), or the model is not a yes/no model (a plain sentence).
    """
    if value is None:
        return None
    from builder.data.preprocess import check_decision_threshold

    return check_decision_threshold(value, task, "--threshold")


def column_names(text: str) -> list[str]:
    """An argparse type: a comma-separated list of column names (``id,region``)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"needs one or more column names separated by commas; got {text!r}")
    return names


FORMATTER = argparse.RawDescriptionHelpFormatter


def add_data_options(group: argparse._ArgumentGroup, inspect: bool = False) -> None:
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
    group.add_argument("--window", type=whole_number(2), metavar="N",
                       help=f"for a forecast: past steps the model sees (default: {DEFAULT_WINDOW})")
    group.add_argument("--horizon", type=whole_number(1), metavar="N",
                       help=f"for a forecast: future steps it predicts (default: {DEFAULT_HORIZON})")
    group.add_argument("--text-column", metavar="COL",
                       help="the column holding free text, to train a text model on it (found by "
                            "itself when one free-text column and at most 2 other columns are the "
                            "inputs; needed for wider tables)")


def add_max_file_option(group: argparse._ArgumentGroup) -> None:
    """``--max-file-mb``: the largest table file a command reads (train and predict)."""
    group.add_argument("--max-file-mb", type=whole_number(1), metavar="MB",
                       help=f"the largest table file to read, in MB (default: {DEFAULT_MAX_FILE_MB}; the "
                            "app's upload limit of 200 MB does not apply here)")
