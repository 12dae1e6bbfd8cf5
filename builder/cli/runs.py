"""``python -m builder runs list|show|export|delete|rename|compare``: the run store from the shell.

Every run trained by ``train`` and every run saved in a workspace of the app is in the store
(``builder.runs``, ``<home>/runs.db``; runs saved before the store existed are imported the first
time the store is read here). Ids are those ``runs list`` shows; an unknown id is one plain sentence
that says how to see them (exit code 2).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from typing import TYPE_CHECKING, Any

from builder.cli.args import EXIT_OK, FORMATTER, PROG, CliError, whole_number
from builder.jsonsafe import strict

if TYPE_CHECKING:
    from builder.runs import RunRecord, RunStore

log = logging.getLogger("builder.cli")  # one logger name for every command, as before the split

ACTIONS = ("list", "show", "export", "delete", "rename", "compare")
RUNS_DESCRIPTION = """\
The runs kept on this machine: every model trained with 'train' and every run saved in the app's
workspaces, with its data's fingerprint (SHA-256, rows x columns), seed, package versions, test
and baseline metrics. List, filter and sort them, look at one, write any run's bundle again,
compare runs against their baselines, rename or delete them. The store is runs.db in the
builder's home folder ($BUILDER_HOME, or ~/.model-builder).
"""
RUNS_EPILOG = f"""\
examples:
  {PROG} runs list
  {PROG} runs list --task binary --search churn --sort metric:accuracy
  {PROG} runs show run-20250101-120000-ab12
  {PROG} runs export run-20250101-120000-ab12 --out churn.zip
  {PROG} runs compare run-20250101-120000-ab12 run-20250102-090000-cd34
  {PROG} runs rename run-20250101-120000-ab12 "Churn, 3 layers"
  {PROG} runs delete run-20250101-120000-ab12 --yes
"""
LIST_HINT = f"run '{PROG} runs list' to see the ids"


def add_command(commands: argparse._SubParsersAction, debug: argparse.ArgumentParser) -> None:
    """Add the ``runs`` command and its actions to ``commands`` (``debug``: the shared --debug)."""
    runs = commands.add_parser("runs", help="list, show, export, compare, rename or delete kept runs",
                               description=RUNS_DESCRIPTION, epilog=RUNS_EPILOG, formatter_class=FORMATTER,
                               parents=[debug], allow_abbrev=False)
    runs.set_defaults(run=run_runs, action=None)
    actions = runs.add_subparsers(title="actions", dest="action", metavar="ACTION")

    listing = actions.add_parser("list", help="the runs, newest first", parents=[debug], allow_abbrev=False,
                                 description="The kept runs, newest first: id, when, task, model, test "
                                             "score, status and title.")
    listing.add_argument("--task", metavar="TASK",
                         help="only runs of this task: regression, binary, multiclass, forecast or anomaly")
    listing.add_argument("--search", metavar="TEXT",
                         help="only runs whose title, id, model, task or data name contains TEXT")
    listing.add_argument("--sort", default="created", metavar="FIELD",
                         help="created, title, task, kind, family, status, seconds, epochs, or "
                              "metric:NAME (e.g. metric:accuracy) (default: created)")
    listing.add_argument("--ascending", action="store_true", help="oldest (smallest) first")
    listing.add_argument("--limit", type=whole_number(1), metavar="N", help="show at most N runs")
    listing.add_argument("--json", action="store_true", help="print the runs as one JSON array")

    show = actions.add_parser("show", help="one run in detail", parents=[debug], allow_abbrev=False)
    show.add_argument("id", metavar="ID", help="the run's id (see 'runs list')")
    show.add_argument("--json", action="store_true", help="print the run as one JSON object")

    export = actions.add_parser("export", help="write a run's bundle (.zip)", parents=[debug], allow_abbrev=False,
                                description="Write the export bundle of a kept run, as 'train --out' "
                                            "writes it: 'predict' and the bundle's predict.py read it.")
    export.add_argument("id", metavar="ID", help="the run's id (see 'runs list')")
    export.add_argument("--out", required=True, metavar="BUNDLE.zip", help="where to write the bundle")

    delete = actions.add_parser("delete", help="delete a run and its files", parents=[debug], allow_abbrev=False)
    delete.add_argument("id", metavar="ID", help="the run's id (see 'runs list')")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    rename = actions.add_parser("rename", help="give a run a new title", parents=[debug], allow_abbrev=False)
    rename.add_argument("id", metavar="ID", help="the run's id (see 'runs list')")
    rename.add_argument("title", metavar="TITLE", help="the new title (quote it when it has spaces)")

    compare = actions.add_parser("compare", help="runs' test metrics side by side, against their baselines",
                                 parents=[debug], allow_abbrev=False)
    compare.add_argument("ids", nargs="+", metavar="ID", help="two or more run ids (see 'runs list')")
    compare.add_argument("--json", action="store_true", help="print the comparison as one JSON object")


def run_runs(args: argparse.Namespace) -> int:
    """``runs ACTION``: one action on the run store."""
    if args.action is None:
        raise CliError(f"Choose what to do with the runs: {', '.join(ACTIONS)} (run '{PROG} runs --help').")
    from builder.runs import RunNotFoundError, RunStore

    store = RunStore()
    store.import_workspace_runs()  # once: the runs saved before the store existed
    try:
        return _ACTIONS[args.action](store, args)
    except RunNotFoundError:
        known = set(store.ids())
        missing = [i for i in (args.ids if args.action == "compare" else [args.id]) if i not in known]
        raise CliError(f"No run has the id {(missing or ['?'])[0]!r}: {LIST_HINT}.") from None


def _list(store: RunStore, args: argparse.Namespace) -> int:
    records = store.list(task=args.task, search=args.search, order=args.sort, descending=not args.ascending,
                         limit=args.limit)
    if args.json:
        print(json.dumps([_public(r) for r in records], allow_nan=False))
        return EXIT_OK
    if not records:
        what = " that match" if args.task or args.search else ""
        print(f"No runs{what} yet: '{PROG} train' and the app's Train page keep every run here.")
        return EXIT_OK
    rows = [["ID", "CREATED", "TASK", "MODEL", "TEST SCORE", "STATUS", "TITLE"]]
    rows += [[r.id, r.created, r.task or "?", r.family or "?", _score(r), _status(r), r.title] for r in records]
    _print_table(rows)
    return EXIT_OK


def _show(store: RunStore, args: argparse.Namespace) -> int:
    record = store.get(args.id)
    if args.json:
        print(json.dumps(_public(record), allow_nan=False))
        return EXIT_OK
    data = "?"
    if record.data_sha256 or record.data_name:
        shape = ""
        if record.data_rows is not None:
            shape = f", {record.data_rows:,} rows" + (f" x {record.data_columns} columns"
                                                        if record.data_columns is not None else "")
        data = f"{record.data_name or '?'}{shape}" + (f", SHA-256 {record.data_sha256}" if record.data_sha256 else "")
    versions = ", ".join(f"{k} {v}" for k, v in record.versions.items() if v) or "?"
    lines = [
        ("id", record.id), ("title", record.title), ("created", record.created),
        ("kept by", "a workspace of the app" if record.workspace else "the command line"),
        ("status", _status(record) + (f": {record.problem}" if record.problem else "")),
        ("task", f"{record.task or '?'} ({record.kind or '?'} data)"), ("model", record.family or "?"),
        ("data", data), ("seed", "?" if record.seed is None else str(record.seed)),
        ("epochs", f"{record.epochs}" + (f" (best {record.best_epoch})" if record.best_epoch else "")
         + (f", ended: {record.stopped.replace('_', ' ')}" if record.stopped else "")),
        ("seconds", f"{record.seconds:.1f}"), ("versions", versions), ("folder", str(record.folder)),
    ]
    if record.extra.get("bundle"):
        lines.append(("bundle", str(record.extra["bundle"])))
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        print(f"{name.ljust(width)}  {value}")
    baseline = record.baseline or {}
    metrics = [*record.headline, *(m for m in record.validation if m not in record.headline)]
    if metrics:
        print()
        base_name = baseline.get("name")
        header = ["metric", "test", "validation"] + ([f"baseline ({base_name})"] if base_name else [])
        table = [header] + [[m, _number(record.headline.get(m)), _number(record.validation.get(m))]
                            + ([_number((baseline.get("test") or {}).get(m))] if base_name else [])
                            for m in metrics]
        _print_table(table)
    return EXIT_OK


def _export(store: RunStore, args: argparse.Namespace) -> int:
    from builder.cli.files import human_bytes, output_file

    out_file = output_file(args.out, "--out", "model.zip")
    record = store.get(args.id)
    if record.health != "ok":
        raise CliError(f"Run {record.id} cannot be exported: {record.problem} Train the model again.")
    with contextlib.redirect_stdout(sys.stderr):  # stdout: the one summary line
        report = store.export_bundle(record.id, out_file)
    for note in report.warnings:
        log.warning("%s", note)
    print(f"Bundle of run {record.id} ({record.title}) written to {out_file} ({human_bytes(report.size)}).")
    return EXIT_OK


def _delete(store: RunStore, args: argparse.Namespace) -> int:
    record = store.get(args.id)
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError(f"Deleting run {record.id} ({record.title}) removes its files and cannot be undone: "
                           "add --yes to delete it.")
        answer = input(f"Delete run {record.id} ({record.title}) and its files? This cannot be undone. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing deleted.")
            return EXIT_OK
    store.delete(record.id)
    print(f"Deleted run {record.id} ({record.title}).")
    return EXIT_OK


def _rename(store: RunStore, args: argparse.Namespace) -> int:
    store.rename(args.id, args.title)
    print(f"Run {args.id} is now called {store.get(args.id).title!r}.")
    return EXIT_OK


def _compare(store: RunStore, args: argparse.Namespace) -> int:
    comparison = store.compare(args.ids)
    if args.json:
        print(json.dumps(strict(comparison), allow_nan=False))
        return EXIT_OK
    runs = comparison["runs"]
    table = [["", *[r["id"] for r in runs]], ["title", *[r["title"] for r in runs]],
             ["model", *[f"{r['family']} ({r['task']})" for r in runs]],
             ["baseline", *[r["baseline"] or "none" for r in runs]]]
    for row in comparison["metrics"]:
        cells = []
        for run, value in zip(runs, row["values"], strict=True):
            if value is None:
                cells.append("-")
                continue
            text = _number(value["run"])
            if value["baseline"] is not None:
                text += f" vs {_number(value['baseline'])} ({value['difference']:+.4g})"
            if row["best"] == run["id"]:
                text += " best"
            cells.append(text)
        arrow = "higher" if row["higher_is_better"] else "lower"
        table.append([f"{row['metric']}{' *' if row['headline'] else ''} ({arrow} is better)", *cells])
    _print_table(table)
    print()
    print("Test metrics: each run's value vs its baseline's (the difference); * marks the headline metric.")
    if comparison["note"]:
        print(comparison["note"])
    return EXIT_OK


_ACTIONS = {"list": _list, "show": _show, "export": _export, "delete": _delete, "rename": _rename,
            "compare": _compare}


def _public(record: RunRecord) -> dict[str, Any]:
    """A run as JSON for the shell: the workspace token stays out (it opens the workspace in the app)."""
    data = record.to_dict()
    data["in_workspace"] = data.pop("workspace") is not None
    return strict(data)


def _score(record: RunRecord) -> str:
    from builder.evaluate import HEADLINE_METRIC

    metric = HEADLINE_METRIC.get(record.task)
    for where, metrics in (("", record.headline), ("val ", record.validation)):
        value = metrics.get(metric) if metric else None
        if isinstance(value, int | float):
            return f"{where}{metric} {_number(value)}"
    return "-"


def _status(record: RunRecord) -> str:
    return record.status if record.health == "ok" else record.health


def _number(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.4g}"


def _print_table(rows: list[list[str]]) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
