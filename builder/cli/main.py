"""The entry point: parse the command line, run the command, turn every failure into an exit code.

Errors a user can fix (``BuilderError``, unreadable paths, bad options) end with exit code 2 and one
plain sentence on stderr: no usage dump, no traceback. Anything else is a bug: exit code 1 and one
line pointing at ``--debug``, which shows the traceback and turns on debug logging.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from builder import __version__
from builder.cli import inspect, predict, runs, serve, train
from builder.cli.args import EXIT_BUG, EXIT_INTERRUPTED, EXIT_USER_ERROR, FORMATTER, PROG, CliError, CliParser
from builder.cli.stderr_log import StderrLog, logging_to_stderr
from builder.errors import BuilderError

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
  {PROG} serve --bundle price_model.zip

Run '{PROG} COMMAND --help' for the options of a command. Errors exit with code 2 and one
sentence; add --debug to any command to see the full details.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m builder`` and its commands."""
    debug = CliParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="on an error, show the full traceback; also log debug details")

    parser = CliParser(prog=PROG, description=MAIN_DESCRIPTION, epilog=MAIN_EPILOG,
                       formatter_class=FORMATTER, parents=[debug], allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)

    for command in (train, predict, inspect, runs, serve):
        command.add_command(commands, debug)
    return parser


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
    with logging_to_stderr(debug) as handler:
        try:
            try:
                args, extra = build_parser().parse_known_args(argv)
            except SystemExit as exc:  # --help and --version end here, after printing
                return int(exc.code or 0)
            if extra:  # reported here, where the command is known, to point at its own --help
                raise CliError(f"Unknown option or extra value {' '.join(extra)}: run "
                               f"'{PROG} {args.command} --help' to see the options.")
            args.argv = argv  # a command that starts copies of itself (train --nproc) passes them on
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


def _fail(exc: BaseException, debug: bool, code: int, handler: StderrLog) -> int:
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
