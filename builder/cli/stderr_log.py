"""Logging for a command: short lines on stderr, held back until the command has really started.

A command that fails while still reading and checking its inputs then prints only its one-sentence
error; one that gets going shows what was held before its progress lines.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import time
from collections.abc import Iterator


class StderrLog(logging.Handler):
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


_ACTIVE_LOG: list[StderrLog] = []  # the handler of the command running now (a stack, for re-entry)


def show_logs() -> None:
    """The command has started real work: show what was held and log straight through from now on."""
    if _ACTIVE_LOG:
        _ACTIVE_LOG[-1].show_held()


@contextlib.contextmanager
def logging_to_stderr(debug: bool) -> Iterator[StderrLog]:
    """Send the builder's log records and Python warnings to stderr for one command."""
    handler = StderrLog(debug)
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
