"""The run store: one SQLite row per trained run, the run's files in its own folder.

``<home>/runs.db`` (``home``: ``builder.workspace.default_home()``) is an embedded SQLite database
(the standard library's ``sqlite3``) in WAL mode. Every call opens its own short-lived connection,
so threads and processes (the app, its workers, ``python -m builder`` in a shell) share it safely;
every change is one transaction (``BEGIN IMMEDIATE``), and a writer waits up to
``BUSY_TIMEOUT_S`` for another. The files of a run stay where they were written, in the format of
``builder.export.saved`` (safetensors + JSON, no pickle): a workspace run in
``<home>/<token>/runs/<run id>/``, a command-line run in ``<home>/cli-runs/<run id>/``. The row
says where; the folder is the truth about the model, the row what lists, filters and sorts it.

One row (``RunRecord``) holds: the id, the workspace token (``NULL`` for command-line runs), title,
created, task, kind of data, family, the data's fingerprint (its file's SHA-256, rows x columns and
name), the seed, package versions (torch, numpy, pandas, scikit-learn, python, builder), test,
validation and baseline metrics (JSON), epochs, seconds, status (``finished``, ``interrupted``,
``failed``), why training stopped, and the folder. A folder that is gone or damaged never breaks a
list: the record says so in ``health`` (``ok``, ``missing``, ``damaged``) and ``problem``.

Runs saved before the store existed are found as ``<home>/<token>/runs/run-*/summary.json`` (and
``<home>/cli-runs/run-*/summary.json``) and imported once by ``import_workspace_runs``.

Usage::

    store = RunStore(home)
    run_id = store.record(folder, trained, workspace=token, data_path=data_file)
    store.list(workspace=token, task="binary", search="churn", order="metric:accuracy")
    store.rename(run_id, "Churn, 3 layers"); store.compare([a, b]); store.delete(run_id)

This module imports only the standard library at load time (the CLI's ``--help`` stays instant);
torch and the exporters load when a model is loaded or a bundle written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import re
import secrets
import shutil
import sqlite3
import struct
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.errors import BuilderError
from builder.workspace import RUN_PATTERN, RunSummary, default_home, is_valid_token

if TYPE_CHECKING:
    from builder.export import BundleReport
    from builder.trained import TrainedModel

log = logging.getLogger(__name__)

DB_NAME = "runs.db"
CLI_RUNS = "cli-runs"  # <home>/cli-runs/<run id>/: the runs of ``python -m builder train``
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another process's transaction
STATUSES = ("finished", "interrupted", "failed")
HEALTHS = ("ok", "missing", "damaged")
SOURCES = ("workspace", "cli", "import")
SORT_FIELDS = ("created", "title", "task", "kind", "family", "status", "seconds", "epochs", "id")
METRIC_ORDER = "metric:"  # order="metric:accuracy" sorts by a test metric (runs without it last)
NO_WORKSPACE = ""  # list(workspace=NO_WORKSPACE): the runs of no workspace (the command line's)
MAX_TITLE = 200
SAMPLE_FOLDER = "sample"  # a run folder's sample input, for its bundle: sample_input.csv or samples/
SAMPLE_KEEP_ROWS = 200  # rows of a table kept for the bundle's parity check (= the CLI's SAMPLE_ROWS)
IMPORT_MARK = "workspace_import"  # meta key: when the runs saved before the store were imported
_HASH_CHUNK = 1 << 20
_VERSION_PACKAGES = (("torch", "torch"), ("numpy", "numpy"), ("pandas", "pandas"),
                     ("scikit-learn", "scikit-learn"))

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS runs (
        seq INTEGER PRIMARY KEY,  -- the order runs were added in (ties of created, to the second)
        id TEXT NOT NULL UNIQUE,
        workspace TEXT,
        title TEXT NOT NULL,
        created TEXT NOT NULL,
        task TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL DEFAULT '',
        family TEXT NOT NULL DEFAULT '',
        data_name TEXT,
        data_sha256 TEXT,
        data_rows INTEGER,
        data_columns INTEGER,
        seed INTEGER,
        versions TEXT NOT NULL DEFAULT '{}',
        headline TEXT NOT NULL DEFAULT '{}',
        validation TEXT NOT NULL DEFAULT '{}',
        baseline TEXT,
        epochs INTEGER NOT NULL DEFAULT 0,
        best_epoch INTEGER,
        seconds REAL NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'finished' CHECK (status IN ('finished', 'interrupted', 'failed')),
        stopped TEXT,
        folder TEXT NOT NULL,
        source TEXT NOT NULL DEFAULT 'workspace',
        extra TEXT NOT NULL DEFAULT '{}',
        updated TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS runs_by_workspace ON runs (workspace, created)",
    "CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS fingerprints (
        path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
        sha256 TEXT NOT NULL, rows INTEGER, columns INTEGER,
        PRIMARY KEY (path, size, mtime_ns)
    )""",
)
_JSON_FIELDS = ("versions", "headline", "validation", "baseline", "extra")
_COLUMNS = ("id", "workspace", "title", "created", "task", "kind", "family", "data_name", "data_sha256",
            "data_rows", "data_columns", "seed", "versions", "headline", "validation", "baseline", "epochs",
            "best_epoch", "seconds", "status", "stopped", "folder", "source", "extra", "updated")
_ROW_DEFAULTS: dict[str, Any] = {"task": "", "kind": "", "family": "", "versions": {}, "headline": {},
                                 "validation": {}, "epochs": 0, "seconds": 0.0, "status": "finished",
                                 "source": "workspace", "extra": {}}
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class RunStoreError(BuilderError):
    """The run store cannot do what was asked (busy, damaged, a bad title or order...)."""


class RunNotFoundError(RunStoreError):
    """No run has the id asked for (in the workspace asked for)."""


@dataclass(frozen=True)
class DataFingerprint:
    """What a run learnt from: the file's SHA-256, its rows x columns (``None`` when unknown) and name."""

    name: str | None = None
    sha256: str | None = None
    rows: int | None = None
    columns: int | None = None


@dataclass(frozen=True)
class RunRecord:
    """One run of the store, as lists, filters and comparisons see it.

    Attributes:
        id: the run id (also its folder's name), e.g. ``run-20250101-120000-ab12``.
        workspace: the workspace token, or ``None`` for a command-line run.
        title, created: as the run list shows them (``created``: ``YYYY-MM-DD HH:MM:SS``, local time).
        task, kind, family: regression/binary/...; table/images/text/series; mlp/cnn/...
        data_name, data_sha256, data_rows, data_columns: the data's fingerprint (``None`` when unknown).
        seed: the training seed.
        versions: package versions it trained with (``{"torch": ..., "python": ...}``).
        headline: test metrics; ``validation``: validation metrics.
        baseline: ``{"name": ..., "test": {metric: value}}`` or ``None`` (anomaly detection has none).
        epochs, best_epoch, seconds: epochs run, the kept epoch, training time.
        status: ``finished``, ``interrupted`` or ``failed``; ``stopped``: why training ended.
        folder: the run's folder (absolute).
        source: ``workspace``, ``cli`` or ``import`` (saved before the store existed).
        extra: small facts (the bundle written by the command line...).
        updated: when the row last changed.
        health: ``ok``, ``missing`` (no folder) or ``damaged`` (files cut short or gone).
        problem: a sentence saying what is wrong when ``health`` is not ``ok``.
    """

    id: str
    workspace: str | None
    title: str
    created: str
    task: str
    kind: str
    family: str
    data_name: str | None
    data_sha256: str | None
    data_rows: int | None
    data_columns: int | None
    seed: int | None
    versions: dict[str, Any]
    headline: dict[str, float]
    validation: dict[str, float]
    baseline: dict[str, Any] | None
    epochs: int
    best_epoch: int | None
    seconds: float
    status: str
    stopped: str | None
    folder: Path
    source: str
    extra: dict[str, Any] = field(default_factory=dict)
    updated: str = ""
    health: str = "ok"
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the folder as a string)."""
        data = asdict(self)
        data["folder"] = str(self.folder)
        return data

    def summary(self) -> RunSummary:
        """The run as ``Workspace.list_runs`` gives it."""
        return RunSummary(self.id, self.created, self.title, self.task, dict(self.headline), dict(self.validation))


def now() -> str:
    """The store's time stamps: local time, ``YYYY-MM-DD HH:MM:SS`` (as workspace summaries)."""
    return time.strftime("%Y-%m-%d %H:%M:%S")


def new_run_id() -> str:
    """A fresh run id, in the workspace's format: ``run-YYYYmmdd-HHMMSS-xxxx``."""
    return f"run-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str | None]:
    """The versions a run trains with: python, torch, numpy, pandas, scikit-learn and the builder."""
    from importlib import metadata

    import builder

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for key, distribution in _VERSION_PACKAGES:
        try:
            versions[key] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[key] = None
    versions["builder"] = builder.__version__
    return versions


class RunStore:
    """The run store of one home folder (``<home>/runs.db``); see the module docstring.

    Cheap to create: each call opens and closes its own connection, so one instance may be shared by
    threads, and several processes may each have their own.

    Raises:
        RunStoreError: the database cannot be opened or is damaged (every method).
    """

    def __init__(self, home: str | Path | None = None):
        self.home = Path(home) if home is not None else default_home()
        self.path = self.home / DB_NAME
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunStoreError(f"The run store cannot be created in {str(self.home)!r}: "
                                f"{exc.strerror or exc}.") from None
        self._set_up()

    # --- connections --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One connection for one call; ``write``: one ``BEGIN IMMEDIATE`` transaction, committed at the end."""
        conn = None
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if write:
                conn.execute("BEGIN IMMEDIATE")
            yield conn
            if write:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback(conn)
            raise self._error(exc) from None
        except BaseException:
            self._rollback(conn)
            raise
        finally:
            if conn is not None:
                conn.close()

    @staticmethod
    def _rollback(conn: sqlite3.Connection | None) -> None:
        if conn is not None and conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def _error(self, exc: sqlite3.Error) -> RunStoreError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return RunStoreError(f"The run store is busy: another program has held it for more than "
                                 f"{BUSY_TIMEOUT_S:g} seconds. Try again in a moment.")
        if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
            return RunStoreError(f"The run store {str(self.path)!r} is damaged ({text}). Move it aside: a new "
                                 "one is made and the runs saved in workspaces are imported into it again.")
        return RunStoreError(f"The run store {str(self.path)!r} cannot be used: {text}.")

    def _set_up(self) -> None:
        """WAL mode and the tables, once per database (safe when several processes start at once)."""
        with self._connect() as conn:
            if conn.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
                return
            for attempt in range(50):  # switching to WAL needs a moment alone with the file
                try:
                    conn.execute("PRAGMA journal_mode = WAL")
                    break
                except sqlite3.OperationalError:
                    if attempt == 49:
                        raise
                    time.sleep(0.1)
            conn.execute("BEGIN IMMEDIATE")
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")

    # --- writing ------------------------------------------------------------------------------------

    def record(self, run_folder: str | Path, trained: TrainedModel, workspace: str | None = None,
               data_path: str | Path | None = None, status: str = "finished", *, title: str | None = None,
               data_name: str | None = None, data_shape: tuple[int | None, int | None] | None = None,
               source: str | None = None, extra: dict[str, Any] | None = None) -> str:
        """Add a saved run to the store, or bring its row up to date (same id, same folder).

        The id is the folder's name. A new row takes its title and creation time from the folder's
        ``summary.json`` when there is one; an existing row keeps its title, creation time, package
        versions and data fingerprint unless new ones are given (``update_run``: a new threshold).

        Args:
            run_folder: the run's folder, written by ``export.save_trained``.
            trained: the model saved there.
            workspace: the workspace token, or ``None`` (a command-line run).
            data_path: the data file it learnt from: its SHA-256 (and rows x columns) are kept.
            status: ``finished``, ``interrupted`` or ``failed``.
            title: the title (default: the summary's, the row's, else "<family> on <data>").
            data_name: the data's name to show (default: the trained model's ``info["source"]`` or
                the file name).
            data_shape: ``(rows, columns)`` of the data when the caller knows them (else read from
                the file once, and cached with its hash).
            source: ``workspace``, ``cli`` or ``import`` (default: by ``workspace``).
            extra: small JSON facts to keep with the row.

        Returns:
            The run id.

        Raises:
            RunStoreError: a bad status or id, another folder already holds the id, or the store
                cannot be written.
        """
        folder = Path(run_folder).absolute()
        run_id = folder.name
        self._check_status(status)
        if not _RUN_ID.fullmatch(run_id):
            raise RunStoreError(f"{run_id!r} cannot be a run id: use letters, digits, dots, dashes and underscores.")
        summary = _read_json_file(folder / "summary.json")
        summary = summary if isinstance(summary, dict) else {}
        fingerprint = self.fingerprint(data_path, data_shape) if data_path is not None else DataFingerprint()
        name = data_name or (trained.info or {}).get("source") or fingerprint.name
        row = _row_of_trained(trained)
        row.update(id=run_id, workspace=workspace, folder=self._relative(folder), status=status,
                   source=source or ("workspace" if workspace else "cli"), updated=now(),
                   data_name=name, data_sha256=fingerprint.sha256, data_rows=fingerprint.rows,
                   data_columns=fingerprint.columns, versions=package_versions(), extra=dict(extra or {}))
        given_title = title or summary.get("title")
        with self._connect(write=True) as conn:
            old = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if old is not None:
                if old["folder"] != row["folder"]:
                    raise RunStoreError(f"The run store already has a run {run_id!r} in another folder "
                                        f"({self._absolute(old['folder'])}); save this run under another id.")
                kept = self._record_of(old)
                row.update(title=_clean_title(given_title, strict=False) if given_title else kept.title,
                           created=summary.get("created") or kept.created, versions=kept.versions or row["versions"],
                           workspace=workspace if workspace is not None else kept.workspace,
                           source=kept.source, extra={**kept.extra, **row["extra"]})
                if fingerprint.sha256 is None:
                    row.update(data_sha256=kept.data_sha256, data_rows=kept.data_rows,
                               data_columns=kept.data_columns)
                row["data_name"] = row["data_name"] or kept.data_name
            else:
                row.update(title=_clean_title(given_title or _default_title(row["family"], name), strict=False),
                           created=summary.get("created") or now())
            self._write_row(conn, row, overwrite=old is not None)
        return run_id

    def set_status(self, run_id: str, status: str, workspace: str | None = None) -> None:
        """Mark a run ``finished``, ``interrupted`` or ``failed``.

        Raises:
            RunNotFoundError: no such run (in ``workspace``, when given).
        """
        self._check_status(status)
        with self._connect(write=True) as conn:
            self._row(conn, run_id, workspace)
            conn.execute("UPDATE runs SET status = ?, updated = ? WHERE id = ?", (status, now(), run_id))

    def rename(self, run_id: str, title: str, workspace: str | None = None) -> None:
        """Give a run a new title (its ``summary.json`` too, so the workspace's list agrees).

        Raises:
            RunNotFoundError: no such run (in ``workspace``, when given).
            RunStoreError: an empty or too long title.
        """
        title = _clean_title(title)
        with self._connect(write=True) as conn:
            record = self._record_of(self._row(conn, run_id, workspace))
            conn.execute("UPDATE runs SET title = ?, updated = ? WHERE id = ?", (title, now(), run_id))
            summary_path = record.folder / "summary.json"
            summary = _read_json_file(summary_path)
            if isinstance(summary, dict):  # written inside the transaction: a failure undoes the rename
                summary["title"] = title
                _write_atomic(summary_path, json.dumps(summary, indent=2))

    def delete(self, run_id: str, workspace: str | None = None) -> None:
        """Delete a run: its row and its folder, together (a folder outside the store's home is left alone).

        The folder is first renamed aside, then the row deleted, then the renamed folder removed: a
        failure in between puts the folder back, so a run is never half deleted.

        Raises:
            RunNotFoundError: no such run (in ``workspace``, when given).
        """
        record = self.get(run_id, workspace)
        folder, trash = record.folder, None
        if folder.is_dir():
            if self._inside_home(folder):
                trash = folder.with_name(f".{folder.name}.deleting-{secrets.token_hex(3)}")
                os.replace(folder, trash)
            else:
                log.warning("run %s: its folder %s is outside %s and was left in place", run_id, folder, self.home)
        try:
            with self._connect(write=True) as conn:
                conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        except BaseException:
            if trash is not None:
                os.replace(trash, folder)
            raise
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)

    def forget(self, run_id: str, workspace: str | None = None) -> bool:
        """Delete a run's row only (its folder is already gone); ``True`` when there was one."""
        with self._connect(write=True) as conn:
            if workspace is None:
                cursor = conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
            else:
                cursor = conn.execute("DELETE FROM runs WHERE id = ? AND workspace = ?", (run_id, workspace))
            return cursor.rowcount > 0

    def import_workspace_runs(self, force: bool = False) -> int:
        """Import the runs saved before the store existed, once: ``<home>/<token>/runs/run-*/`` (and
        ``<home>/cli-runs/run-*/``) with a ``summary.json``. Idempotent: runs already in the store are
        left as they are; after the first import, later calls return at once unless ``force``.

        A run whose ``trained.json`` is missing or damaged is imported from its summary alone (and
        lists as damaged).

        Returns:
            How many runs were added.
        """
        if not force and self._meta(IMPORT_MARK) is not None:
            return 0
        with self._connect() as conn:
            known = {row[0] for row in conn.execute("SELECT id FROM runs")}
        rows = []
        for summary_path in sorted(self._saved_summaries()):
            folder = summary_path.parent
            if folder.name in known:
                continue
            row = self._row_of_folder(folder)
            if row is not None:
                rows.append(row)
                known.add(row["id"])
        with self._connect(write=True) as conn:
            added = 0
            for row in rows:
                added += self._write_row(conn, row, overwrite=False, ignore=True)
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (IMPORT_MARK, now()))
        if added:
            log.info("imported %d earlier run(s) into the run store", added)
        return added

    # --- reading ------------------------------------------------------------------------------------

    def list(self, workspace: str | None = None, task: str | None = None, search: str | None = None,
             order: str = "created", descending: bool = True, limit: int | None = None,
             status: str | None = None) -> list[RunRecord]:
        """Runs, filtered and sorted.

        Args:
            workspace: only this workspace's runs; ``NO_WORKSPACE`` (``""``): only command-line runs;
                ``None``: all.
            task: only runs of this task.
            search: only runs whose title, id, family, task, kind or data name contains it (any case).
            order: one of ``SORT_FIELDS``, or ``"metric:<name>"`` (a test metric; runs without it last).
            descending: newest (largest) first.
            limit: at most this many.
            status: only runs with this status.

        Raises:
            RunStoreError: an unknown order.
        """
        where, params = [], []
        if workspace is not None:
            where.append("workspace IS NULL" if workspace == NO_WORKSPACE else "workspace = ?")
            params += [] if workspace == NO_WORKSPACE else [workspace]
        if task:
            where.append("task = ?")
            params.append(task)
        if status:
            self._check_status(status)
            where.append("status = ?")
            params.append(status)
        if search and search.strip():
            pattern = "%" + re.sub(r"([\\%_])", r"\\\1", search.strip()) + "%"
            where.append("(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in
                                           ("title", "id", "family", "task", "kind", "data_name")) + ")")
            params += [pattern] * 6
        direction = "DESC" if descending else "ASC"
        metric = None
        if order.startswith(METRIC_ORDER) and len(order) > len(METRIC_ORDER):
            metric = order[len(METRIC_ORDER):]
            sql_order = f"created {direction}, seq {direction}"
        elif order in SORT_FIELDS:
            column = "title COLLATE NOCASE" if order == "title" else order
            sql_order = f"{column} {direction}, created {direction}, seq {direction}"
        else:
            raise RunStoreError(f"Runs cannot be sorted by {order!r}: use one of {', '.join(SORT_FIELDS)}, "
                                "or metric:<name> (e.g. metric:accuracy).")
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY {sql_order}"
        if limit is not None and metric is None:
            sql += f" LIMIT {max(int(limit), 0)}"
        with self._connect() as conn:
            records = [self._record_of(row, check=True) for row in conn.execute(sql, params)]
        if metric is not None:
            present = [r for r in records if isinstance(r.headline.get(metric), int | float)]
            missing = [r for r in records if r not in present]
            present.sort(key=lambda r: r.headline[metric], reverse=descending)
            records = (present + missing)[:limit] if limit is not None else present + missing
        return records

    def get(self, run_id: str, workspace: str | None = None) -> RunRecord:
        """One run (its folder checked: see ``RunRecord.health``).

        Raises:
            RunNotFoundError: no such run (in ``workspace``, when given).
        """
        with self._connect() as conn:
            return self._record_of(self._row(conn, run_id, workspace), check=True)

    def ids(self, workspace: str | None = None) -> list[str]:
        """The run ids, newest first (cheap: no folder is checked)."""
        with self._connect() as conn:
            if workspace is None:
                rows = conn.execute("SELECT id FROM runs ORDER BY created DESC, seq DESC")
            else:
                rows = conn.execute("SELECT id FROM runs WHERE workspace IS ? ORDER BY created DESC, seq DESC",
                                    (workspace or None,))
            return [row[0] for row in rows]

    def load(self, run_id: str, workspace: str | None = None) -> TrainedModel:
        """The run's model, to reopen it (``export.load_trained``).

        Raises:
            RunNotFoundError: no such run.
            BundleError: its folder is missing or damaged (a sentence saying so).
        """
        from builder.export import load_trained

        return load_trained(self.get(run_id, workspace).folder)

    def history(self, run_id: str, workspace: str | None = None) -> dict[str, Any]:
        """The run's training curves (``History.to_dict()``: epoch, loss, val_loss, metrics...), read
        from its ``trained.json`` without loading the model: for overlaid curves.

        Raises:
            RunNotFoundError: no such run.
            RunStoreError: its folder is missing or damaged.
        """
        record = self.get(run_id, workspace)
        document = _read_json_file(record.folder / "trained.json")
        if not isinstance(document, dict) or not isinstance(document.get("history"), dict):
            raise RunStoreError(f"The curves of run {run_id!r} cannot be read: "
                                f"{record.problem or 'its trained.json is damaged.'}")
        return document["history"]

    def compare(self, ids: Sequence[str], workspace: str | None = None) -> dict[str, Any]:
        """The runs' test metrics side by side, each against its own baseline, as plain data.

        Returns:
            ``{"runs": [{"id", "title", "task", "family", "kind", "status", "health", "epochs",
            "seconds", "baseline": name or None}, ...], "metrics": [{"metric", "label",
            "higher_is_better", "headline", "values": [{"run", "baseline", "difference",
            "beats_baseline"} or None per run, in the order of "runs"], "best": run id or None},
            ...], "tasks": [...], "note": a sentence when the runs learnt different tasks, else None}``.
            ``difference`` is run minus baseline; ``beats_baseline`` uses the metric's direction.

        Raises:
            RunNotFoundError: an id is not in the store (in ``workspace``, when given).
            RunStoreError: no ids.
        """
        from builder.evaluate import HEADLINE_METRIC, METRICS, TASK_METRICS

        unique = list(dict.fromkeys(ids))
        if not unique:
            raise RunStoreError("Pick at least one run to compare.")
        records = [self.get(run_id, workspace) for run_id in unique]
        tasks = list(dict.fromkeys(r.task for r in records))
        names: list[str] = []
        for task in tasks:
            names += [m for m in TASK_METRICS.get(task, []) if any(m in r.headline for r in records)]
        names += sorted({m for r in records for m in r.headline} - set(names))
        names = list(dict.fromkeys(names))
        headlines = {HEADLINE_METRIC.get(task) for task in tasks}
        rows = []
        for name in names:
            info = METRICS.get(name)
            higher = info.higher_is_better if info is not None else True
            values: list[dict[str, Any] | None] = []
            for record in records:
                value = record.headline.get(name)
                if not isinstance(value, int | float):
                    values.append(None)
                    continue
                base = ((record.baseline or {}).get("test") or {}).get(name)
                base = base if isinstance(base, int | float) else None
                difference = None if base is None else float(value) - float(base)
                beats = None if base is None else (value > base if higher else value < base)
                values.append({"run": float(value), "baseline": base, "difference": difference,
                               "beats_baseline": beats})
            present = [(v["run"], r.id) for v, r in zip(values, records, strict=True) if v is not None]
            best = None
            if len(present) > 1:
                best = (max if higher else min)(present, key=lambda item: item[0])[1]
            rows.append({"metric": name, "label": info.label if info is not None else name,
                         "higher_is_better": higher, "headline": name in headlines, "values": values,
                         "best": best})
        runs = [{"id": r.id, "title": r.title, "task": r.task, "family": r.family, "kind": r.kind,
                 "status": r.status, "health": r.health, "epochs": r.epochs, "seconds": r.seconds,
                 "baseline": (r.baseline or {}).get("name")} for r in records]
        note = None
        if len(tasks) > 1:
            note = (f"These runs learnt different tasks ({', '.join(tasks)}): only the metrics they share "
                    "can be set side by side.")
        return {"runs": runs, "metrics": rows, "tasks": tasks, "note": note}

    # --- bundles ------------------------------------------------------------------------------------

    def export_bundle(self, run_id: str, out: str | Path, workspace: str | None = None) -> BundleReport:
        """Write the run's export bundle (``export.write_bundle``) from its saved folder.

        The sample input is the one kept with the run (``sample/``, written for command-line runs),
        else, for a table, the test rows the run kept; without either, the bundle says it has none.

        Raises:
            RunNotFoundError: no such run.
            BundleError: the folder is missing or damaged, or the model cannot be exported.
        """
        from builder.export import load_trained, write_bundle

        record = self.get(run_id, workspace)
        trained = load_trained(record.folder)
        return write_bundle(trained, out, sample_rows=load_sample(record.folder, trained))

    # --- data fingerprints --------------------------------------------------------------------------

    def fingerprint(self, data_path: str | Path, shape: tuple[int | None, int | None] | None = None
                    ) -> DataFingerprint:
        """The SHA-256 and rows x columns of a data file, cached by path, size and modification time.

        Rows x columns: ``shape`` when given, else read from the file (a table: rows and columns as
        the app reads them; an image zip: the number of images). Never raises: what cannot be found
        out is ``None``.
        """
        path = Path(data_path)
        try:
            stat = path.stat()
            key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        except OSError:
            return DataFingerprint(name=path.name)
        try:
            with self._connect() as conn:
                cached = conn.execute("SELECT sha256, rows, columns FROM fingerprints WHERE path = ? "
                                      "AND size = ? AND mtime_ns = ?", key).fetchone()
        except RunStoreError:
            cached = None
        if cached is not None:
            rows, columns = shape if shape is not None else (cached["rows"], cached["columns"])
            return DataFingerprint(path.name, cached["sha256"], rows, columns)
        try:
            sha256 = file_sha256(path)
        except OSError:
            return DataFingerprint(name=path.name)
        rows, columns = shape if shape is not None else _shape_of_file(path)
        with contextlib.suppress(RunStoreError):
            with self._connect(write=True) as conn:
                conn.execute("DELETE FROM fingerprints WHERE path = ?", key[:1])
                conn.execute("INSERT OR REPLACE INTO fingerprints VALUES (?, ?, ?, ?, ?, ?)",
                             (*key, sha256, rows, columns))
        return DataFingerprint(path.name, sha256, rows, columns)

    # --- the rows -----------------------------------------------------------------------------------

    def _row(self, conn: sqlite3.Connection, run_id: str, workspace: str | None) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM runs WHERE id = ?", (str(run_id),)).fetchone()
        if row is None or (workspace is not None and row["workspace"] != (workspace or None)):
            raise RunNotFoundError(f"No run has the id {run_id!r}: pick one from the list of runs.")
        return row

    def _write_row(self, conn: sqlite3.Connection, row: dict[str, Any], overwrite: bool, ignore: bool = False) -> int:
        row = {**_ROW_DEFAULTS, **{k: v for k, v in row.items() if v is not None}}
        values = [json.dumps(_plain(row[c])) if c in _JSON_FIELDS and row.get(c) is not None else row.get(c)
                  for c in _COLUMNS]
        verb = "INSERT OR IGNORE" if ignore else "INSERT"
        sql = f"{verb} INTO runs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
        if overwrite:  # an update keeps the row's place (its seq: the order runs were added in)
            sql += " ON CONFLICT (id) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:])
        return conn.execute(sql, values).rowcount

    def _record_of(self, row: sqlite3.Row, check: bool = False) -> RunRecord:
        data = {c: row[c] for c in _COLUMNS}
        for name in _JSON_FIELDS:
            try:
                data[name] = json.loads(data[name]) if data[name] is not None else None
            except (TypeError, json.JSONDecodeError):
                data[name] = None
        for name in ("versions", "headline", "validation", "extra"):
            if not isinstance(data[name], dict):
                data[name] = {}
        if not isinstance(data["baseline"], dict):
            data["baseline"] = None
        data["folder"] = self._absolute(data["folder"])
        data["seconds"] = float(data["seconds"] or 0.0)
        data["epochs"] = int(data["epochs"] or 0)
        record = RunRecord(**data)
        if not check:
            return record
        health, problem = folder_health(record.folder)
        return record if health == "ok" else replace(record, health=health, problem=problem)

    def _row_of_folder(self, folder: Path) -> dict[str, Any] | None:
        """A row for a run saved before the store: from ``summary.json`` and ``trained.json``."""
        summary = _read_json_file(folder / "summary.json")
        if not isinstance(summary, dict) or not _RUN_ID.fullmatch(folder.name):
            return None
        document = _read_json_file(folder / "trained.json")
        row = _row_of_document(document) if isinstance(document, dict) else {}
        token = folder.parent.parent.name if folder.parent.name == "runs" else None
        headline = summary.get("headline") if isinstance(summary.get("headline"), dict) else {}
        validation = summary.get("validation") if isinstance(summary.get("validation"), dict) else {}
        row.update(id=folder.name, workspace=token if is_valid_token(token) else None,
                   title=_clean_title(str(summary.get("title") or folder.name), strict=False),
                   created=str(summary.get("created") or now()), task=row.get("task") or str(summary.get("task") or ""),
                   headline=row.get("headline") or headline, validation=row.get("validation") or validation,
                   folder=self._relative(folder), status="finished", source="import", updated=now())
        if isinstance(document, dict):
            row["versions"] = {"builder": document.get("builder_version")}
            row["data_name"] = (document.get("info") or {}).get("source")
        return row

    def _saved_summaries(self) -> Iterable[Path]:
        for summary in self.home.glob("*/runs/run-*/summary.json"):
            if is_valid_token(summary.parents[2].name) and RUN_PATTERN.fullmatch(summary.parent.name):
                yield summary
        yield from self.home.glob(f"{CLI_RUNS}/run-*/summary.json")

    def _meta(self, key: str) -> str | None:
        with self._connect() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _relative(self, folder: Path) -> str:
        """Folders inside the home are kept relative to it: the home may move, the rows stay right."""
        try:
            return folder.absolute().relative_to(self.home.absolute()).as_posix()
        except ValueError:
            return str(folder.absolute())

    def _absolute(self, folder: str) -> Path:
        path = Path(folder)
        return path if path.is_absolute() else self.home.absolute() / path

    def _inside_home(self, folder: Path) -> bool:
        return not Path(self._relative(folder)).is_absolute()

    @staticmethod
    def _check_status(status: str) -> None:
        if status not in STATUSES:
            raise RunStoreError(f"{status!r} is not a run status: use one of {', '.join(STATUSES)}.")


# --- the command line's runs ----------------------------------------------------------------------------


def record_cli_run(trained: TrainedModel, data_path: str | Path | None, sample: Any = None, *,
                   data_shape: tuple[int | None, int | None] | None = None, bundle: str | Path | None = None,
                   home: str | Path | None = None) -> str | None:
    """Keep a run of ``python -m builder train`` in the store: its folder ``<home>/cli-runs/<run id>/``
    (``export.save_trained``, a ``summary.json`` and a sample of the data for its bundle), then its row.

    Never raises: the bundle is written already, so a store that cannot be written is a warning.

    Args:
        trained: the trained model.
        data_path: the ``--data`` file (its SHA-256 is kept).
        sample: raw sample data as given to ``write_bundle`` (kept for ``runs export``).
        data_shape: rows x columns of the ``--data`` file as read (columns ``None`` for images).
        bundle: the bundle written (noted with the run).
        home: the store's home (default: ``default_home()``).

    Returns:
        The run id, or ``None`` when the run could not be kept.
    """
    folder = None
    try:
        from builder.export import save_trained
        from builder.spec import FAMILIES

        home = Path(home) if home is not None else default_home()
        run_id = new_run_id()
        while (home / CLI_RUNS / run_id).exists():
            run_id = new_run_id()
        folder = home / CLI_RUNS / run_id
        save_trained(trained, folder)
        save_sample(folder, trained, sample)
        family = trained.spec.effective_family()
        name = (trained.info or {}).get("source") or (Path(data_path).name if data_path is not None else "data")
        title = f"{FAMILIES[family].title if family in FAMILIES else family} on {name}"
        summary = {"id": run_id, "created": now(), "title": title, "task": trained.task,
                   "headline": trained.metrics.get("test", {}), "validation": trained.metrics.get("val", {})}
        _write_atomic(folder / "summary.json", json.dumps(_plain(summary), indent=2))
        RunStore(home).record(folder, trained, data_path=data_path, title=title, data_name=name,
                              data_shape=data_shape, source="cli",
                              extra={"bundle": str(Path(bundle).absolute())} if bundle is not None else None)
    except Exception as exc:  # noqa: BLE001 - the bundle is written; the store is a record of it
        log.warning("the run could not be kept in the run store (%s); the bundle is written all the same", exc)
        log.debug("run store failure", exc_info=True)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        return None
    log.info("run kept as %s (python -m builder runs show %s)", run_id, run_id)
    return run_id


def save_sample(folder: Path, trained: TrainedModel, sample: Any) -> None:
    """Keep a little of the data with a run (``<folder>/sample/``), so its bundle can be written later
    with a sample input and a parity check on real rows: up to ``SAMPLE_KEEP_ROWS`` rows of a table
    or text (``sample_input.csv``), the newest rows of a series, or a few images (``samples/``).
    Best effort: a sample that cannot be written is left out, with a log line."""
    try:
        from builder.data.sources import kind_of
        from builder.export.samples import has_sample, input_columns, sample_members

        if not has_sample(sample):
            return
        kind = kind_of(trained.preprocessor)
        if kind in ("table", "text"):
            columns = [c for c in input_columns(trained.preprocessor) if c in sample.columns]
            members = {"sample_input.csv": sample.head(SAMPLE_KEEP_ROWS)[columns].to_csv(index=False).encode()}
        else:
            members = sample_members(trained, sample, [])
        staging = Path(tempfile.mkdtemp(dir=folder, prefix=".sample-"))
        for name, data in members.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_bytes(data)
        shutil.rmtree(folder / SAMPLE_FOLDER, ignore_errors=True)
        os.replace(staging, folder / SAMPLE_FOLDER)
    except Exception as exc:  # noqa: BLE001 - a run without a sample still exports, with a note
        log.info("no sample kept with the run (%s)", exc)


def load_sample(folder: Path, trained: TrainedModel) -> Any:
    """The sample input kept with a run (see ``save_sample``); for a table without one, the input
    columns of the test rows the run kept; else ``None``."""
    from builder.data.sources import kind_of

    kept = folder / SAMPLE_FOLDER
    if (kept / "sample_input.csv").is_file():
        from builder.data import read_table

        try:
            return read_table(kept / "sample_input.csv", drop_empty_rows=False)
        except BuilderError as exc:
            log.warning("the sample kept with the run cannot be read (%s)", exc)
    elif (kept / "samples").is_dir():
        return [(p.name, p.read_bytes()) for p in sorted((kept / "samples").iterdir()) if p.is_file()]
    rows = (trained.test_results or {}).get("rows")
    if kind_of(trained.preprocessor) == "table" and isinstance(rows, dict) and rows:
        import pandas as pd

        return pd.DataFrame(rows)
    return None


# --- health of a folder ---------------------------------------------------------------------------------


def folder_health(folder: Path) -> tuple[str, str | None]:
    """``("ok", None)``, ``("missing", why)`` or ``("damaged", why)``: cheap checks (no model is loaded)
    that the run's ``trained.json`` is whole JSON and its ``model.safetensors`` as long as its header says."""
    from_json = folder / "trained.json"
    weights = folder / "model.safetensors"
    if not folder.is_dir():
        return "missing", f"Its folder {folder} is gone."
    for path in (from_json, weights):
        if not path.is_file():
            return "damaged", f"Its {path.name} is missing from {folder}."
    try:
        if not _json_looks_whole(from_json):
            return "damaged", f"Its trained.json in {folder} is cut short or not JSON."
        if not _safetensors_look_whole(weights):
            return "damaged", f"Its model.safetensors in {folder} is cut short or damaged."
    except OSError as exc:
        return "damaged", f"Its files in {folder} cannot be read ({exc.strerror or exc})."
    return "ok", None


def _json_looks_whole(path: Path) -> bool:
    with path.open("rb") as handle:
        first = handle.read(1)
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(size - 64, 0))
        last = handle.read().rstrip()
    return first == b"{" and last.endswith(b"}")


def _safetensors_look_whole(path: Path) -> bool:
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            return False
        (length,) = struct.unpack("<Q", head)
        if length > min(size - 8, 100 * 1024 * 1024):
            return False
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return False
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)
            and isinstance(v.get("data_offsets"), list) and len(v["data_offsets"]) == 2]
    return 8 + length + max(ends, default=0) == size


# --- helpers --------------------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _shape_of_file(path: Path) -> tuple[int | None, int | None]:
    """Rows x columns of a table file as the app reads it; the number of images of a zip."""
    try:
        if path.suffix.lower() == ".zip":
            from builder.data.images import IMAGE_EXTENSIONS

            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.lower().endswith(IMAGE_EXTENSIONS)
                         and not n.startswith("__MACOSX/") and not Path(n).name.startswith(".")]
            return len(names), None
        from builder.data import read_table

        frame = read_table(path)
        return len(frame), len(frame.columns)
    except (BuilderError, OSError, zipfile.BadZipFile) as exc:  # the hash is what counts; the shape is a note
        log.debug("rows x columns of %s unknown: %s", path.name, exc)
        return None, None


def _row_of_trained(trained: TrainedModel) -> dict[str, Any]:
    baseline = None
    if trained.baseline is not None:
        baseline = {"name": trained.baseline.name, "test": dict(trained.baseline.metrics)}
    history = trained.history
    return {"task": trained.task, "kind": trained.kind, "family": trained.spec.effective_family(),
            "seed": getattr(trained.config, "seed", None), "headline": dict(trained.metrics.get("test", {})),
            "validation": dict(trained.metrics.get("val", {})), "baseline": baseline,
            "epochs": history.epochs_run, "best_epoch": history.best_epoch, "seconds": float(trained.seconds),
            "stopped": history.stopped_reason}


def _row_of_document(document: dict[str, Any]) -> dict[str, Any]:
    """The same facts as ``_row_of_trained``, from a saved ``trained.json`` (no torch needed)."""
    def part(name: str) -> dict[str, Any]:
        value = document.get(name)
        return value if isinstance(value, dict) else {}

    spec, history, metrics = part("spec"), part("history"), part("metrics")
    family = str(spec.get("family") or "")
    if family in ("linear", "logistic") and spec.get("layers"):  # = ModelSpec.effective_family
        family = "mlp"
    baseline = part("baseline")
    seconds = document.get("seconds")
    return {"task": str(part("data_spec").get("task") or ""), "kind": str(document.get("kind") or "table"),
            "family": family, "seed": part("config").get("seed"), "headline": dict(metrics.get("test") or {}),
            "validation": dict(metrics.get("val") or {}),
            "baseline": {"name": baseline.get("name"), "test": dict(baseline.get("metrics") or {})} if baseline else None,
            "epochs": len(history.get("epoch") or []), "best_epoch": history.get("best_epoch"),
            "seconds": float(seconds) if isinstance(seconds, int | float) else 0.0,
            "stopped": history.get("stopped_reason")}


def _default_title(family: str, data_name: str | None) -> str:
    return f"{family.upper() if family else 'Model'} on {data_name or 'data'}"


def _clean_title(title: Any, strict: bool = True) -> str:
    text = " ".join(str(title or "").split())
    if not text and strict:
        raise RunStoreError("A run needs a title: type a few words.")
    if len(text) > MAX_TITLE:
        if strict:
            raise RunStoreError(f"A run title can have at most {MAX_TITLE} characters; this one has {len(text)}.")
        text = text[:MAX_TITLE]
    return text


def _plain(value: Any) -> Any:
    if "numpy" in sys.modules:  # numpy values in metrics (never the case without numpy loaded)
        from builder.jsonsafe import plain

        return plain(value)
    return value


def _read_json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _write_atomic(path: Path, text: str) -> None:
    from builder.workspace import _write_atomic as write

    write(path, text)
