"""``python -m builder inspect``: a design's layer table (shapes, parameters, memory) on data or from a bundle."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from typing import TYPE_CHECKING, Any

from builder.cli.args import EXIT_OK, FORMATTER, PROG, add_data_options, whole_number
from builder.cli.data_choice import SAMPLE_NOUNS, TABLE_FAMILIES, choose_data, profile_of
from builder.cli.files import existing_path, human_bytes, input_file, is_zip, or_list, read_input_table
from builder.cli.train import load_spec
from builder.errors import DataError, SpecError
from builder.jsonsafe import strict

if TYPE_CHECKING:  # torch and pandas load only when a command needs them: --help stays instant
    from builder.data.sources import DataShape
    from builder.shapes import ShapeReport
    from builder.spec import ModelSpec

log = logging.getLogger("builder.cli")  # one logger name for every command, as before the split


INSPECT_DEFAULT_BATCH = 64  # batch size of the memory estimate when --batch-size is not given
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


def add_command(commands: argparse._SubParsersAction, debug: argparse.ArgumentParser) -> None:
    """Add the ``inspect`` command and its options to ``commands`` (``debug``: the shared --debug)."""
    inspect = commands.add_parser("inspect", help="show a design's layers, shapes and parameter counts",
                                  description=INSPECT_DESCRIPTION, epilog=INSPECT_EPILOG,
                                  formatter_class=FORMATTER, parents=[debug], allow_abbrev=False)
    source = inspect.add_mutually_exclusive_group(required=True)
    source.add_argument("--spec", metavar="SPEC.json", help="a design file (give --data too)")
    source.add_argument("--bundle", metavar="BUNDLE.zip", help="a trained model bundle")
    inspect_data = inspect.add_argument_group("data (with --spec)")
    inspect_data.add_argument("--data", metavar="PATH",
                              help="the data the design is for: a table or a .zip of image folders")
    add_data_options(inspect_data, inspect=True)
    inspect.add_argument("--batch-size", type=whole_number(1), metavar="N",
                         help=f"batch size of the memory estimate (default: {INSPECT_DEFAULT_BATCH})")
    inspect.add_argument("--json", action="store_true", help="print the table as one JSON object")
    inspect.set_defaults(run=run_inspect)


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
                            or_list(["--" + n.replace("_", "-") for n in given]).replace(" or ", " and "))
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
    from builder.templates import text_reading
    from builder.train import TrainConfig

    # Not strict: a design with bad values still gets its table, with every problem listed.
    spec = load_spec(args.spec, strict=False)
    data_path = existing_path(args.data, "--data")
    if data_path.is_dir():
        raise DataError(f"--data needs a file, but {args.data} is a folder: for images, zip the class "
                        "folders and pass the .zip.")
    family = spec.family if spec.family in FAMILIES else None
    table_design = family is None or family in TABLE_FAMILIES
    if (args.target is None and table_design and not is_zip(data_path) and args.text_column is None
            and args.time_column is None and args.task in ("auto", "regression", "binary", "multiclass")):
        from builder.data import Preprocessor, suggest_features

        df = read_input_table(data_path, "--data")
        features = suggest_features(profile_of(df), None)
        if not features:
            raise DataError(f"No column of {data_path.name} can be an input: they look like "
                            "identifiers, or are constant or mostly empty.")
        preprocessor = Preprocessor().fit(df, None, "regression", features)
        note = ("No --target given: every usable column counts as an input and the output layer is "
                "shown with 1 value; add --target COL for the real sizes.")
        return spec, DataShape("table", "regression", (preprocessor.n_features,), 1, len(df),
                               n_columns=len(features)), note
    choice = choose_data(args, data_path, family)
    defaults = TrainConfig()
    data_spec = text_reading(choice.data_spec, spec)  # text: a bag of n-grams or words, as the design reads
    prepared = prepare_data(choice.source, data_spec, defaults.val_fraction, defaults.test_fraction,
                            defaults.seed)
    return spec, data_shape(prepared, data_spec), None


def _design_of_bundle(path: str) -> tuple[ModelSpec, DataShape, str | None]:
    from builder.data.sources import shape_of
    from builder.export import read_bundle

    bundle = read_bundle(input_file(path, "--bundle"))
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
           f"Memory to train one batch of {table['batch_size']} {SAMPLE_NOUNS[table['kind']]}: about "
           f"{human_bytes(table['memory_bytes_per_batch'])}"]
    out += [f"Problem: {problem}" for problem in table["problems"]]
    if table.get("note"):
        out.append(f"Note: {table['note']}")
    return "\n".join(out)
