"""``python -m builder train|predict|inspect``: the app's journey, scriptable.

The commands call exactly the functions the app calls (``pipeline.train_model``,
``export.write_bundle``, ``export.read_bundle``, ``data.sources.prepare_data``,
``shapes.infer_shapes``), so a model trained here is the model the app would train. Every kind of
data goes through them: a table, a zip of image folders, a text column, a time series (``--task
forecast``) and a table without a target (``--task anomaly``); ``data_choice.choose_data`` turns the
options into the ``DataSpec`` the app's Data page would make. This package is the only place in
``builder/`` that writes to stdout:

- ``train`` logs one line per epoch (throttled) to stderr and prints ONE JSON object as the last
  line of stdout, so ``python -m builder train ... | tail -n 1 | jq .metrics`` works;
- ``predict`` writes the predictions CSV and prints a one-line summary;
- ``inspect`` prints the layer table (or, with ``--json``, the same as JSON).

Errors a user can fix (``BuilderError``, unreadable paths, bad options) end with exit code 2 and one
plain sentence on stderr: no usage dump, no traceback. Anything else is a bug: exit code 1 and one
line pointing at ``--debug``, which shows the traceback and turns on debug logging.

The parts: ``main`` (the parser and the entry point), one module per command (``train``,
``predict``, ``inspect``), and what they share: ``args`` (argparse pieces and its errors as
sentences), ``stderr_log`` (logging to stderr), ``files`` (paths and tables) and ``data_choice``
(the kind of data, the task and the family).
"""

from builder.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
