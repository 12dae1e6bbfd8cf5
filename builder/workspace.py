"""A user's workspace on this machine: the uploaded data, the design, the settings and the runs.

Each workspace is a folder named by an unguessable token (the app keeps it in the URL), so a page
switch, a browser refresh or a server restart finds everything again, and nobody can list other
people's workspaces: the token is checked against a strict pattern before it touches a path.
Small state is JSON written atomically; trained runs are saved with ``export.save_trained``
(safetensors + JSON, no pickle), and kept in step with the run store (``builder.runs``,
``<home>/runs.db``): saving, updating and deleting a run changes its row too. The run's folder is
what counts: a store that cannot be written is logged, never fatal. Data never leaves the machine.

A workspace can be shown read-only through a second token, its share token: ``share_link`` makes
one (``<home>/shares/<share token>.json`` names the workspace), ``revoke_share`` deletes it, and
``Workspace.open_shared`` opens the workspace behind it read-only. The rights live here, not in the
pages: a read-only workspace refuses every change (``ReadOnlyError``), and its ``token`` is the
share token, so the training jobs of the owner (found by the owner's token) stay out of its reach.

The workspace keeps one data file at a time, as uploaded: a table (CSV, Excel, ...; also the source
of text and time-series data) or an image zip (one folder per class). Saving a new one replaces
the old one only once the new file is safely written.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from builder.errors import BuilderError, DataError, ReadOnlyError

log = logging.getLogger(__name__)

HOME_ENV = "BUILDER_HOME"
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
JOB_PATTERN = re.compile(r"^[A-Za-z0-9_-]{6,64}$")  # a training job's id (builder.jobs)
RUN_PATTERN = re.compile(r"^run-[0-9]{8}-[0-9]{6}-[a-z0-9]{4}$")
SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")
DATA_KINDS = ("table", "images")  # what the saved data file is: a table file, or an image zip
# The most a workspace keeps of one data file. The app's uploads stop at 200 MB already
# (.streamlit/config.toml); this guards the disk against anything else that saves data.
MAX_DATA_BYTES = 1024 * 1024 * 1024
SHARES_FOLDER = "shares"  # <home>/shares/<share token>.json -> {"workspace": <owner token>}
SHARE_STATE = "share"  # the owner's current share token, in the workspace's state


def default_home() -> Path:
    """Where workspaces live: ``$BUILDER_HOME`` or ``~/.model-builder``."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".model-builder")


def new_token() -> str:
    """A fresh unguessable workspace token (128 bits)."""
    return secrets.token_urlsafe(16)


def is_valid_token(token: object) -> bool:
    return isinstance(token, str) and bool(TOKEN_PATTERN.fullmatch(token))


MAX_STORED_NAME = 120  # characters of an uploaded file's name kept on disk (file systems allow 255 bytes)


def stored_name(name: str) -> str:
    """An uploaded file's name as the workspace stores it: safe characters, short enough for any file
    system, the extension kept (it says how to read the file). The page shows the name as uploaded."""
    safe = SAFE_NAME.sub("_", Path(name).name).strip().lstrip(".") or "data"
    if len(safe) <= MAX_STORED_NAME:
        return safe
    suffix = Path(safe).suffix[:16]
    return safe[: MAX_STORED_NAME - len(suffix)] + suffix


class DataFile(NamedTuple):
    """The workspace's data file: the name to show, where it is, and whether it is a table or images."""

    name: str
    path: Path
    kind: str


@dataclass(frozen=True)
class RunSummary:
    """One saved run, as the run list shows it."""

    id: str
    created: str
    title: str
    task: str
    headline: dict[str, float]  # test metrics
    validation: dict[str, float] = field(default_factory=dict)  # all a search trial has: see builder.search


def _write_atomic(path: Path, text: str) -> None:
    # Write beside the target and rename: a crash mid-write never leaves a half-written file.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Workspace:
    """The folder of one token. Create with ``Workspace.open`` (or ``open_shared``, read-only).

    Attributes:
        token: the owner's token; for a read-only view, the share token it was opened with.
        root: the workspace folder.
        read_only: every change raises ``ReadOnlyError``.
    """

    def __init__(self, root: Path, token: str, read_only: bool = False):
        self.token = token
        self.root = root
        self.read_only = read_only
        if not read_only:
            self.root.mkdir(parents=True, exist_ok=True)

    @classmethod
    def open(cls, token: str | None, home: Path | None = None) -> Workspace:
        """Open the workspace of ``token``, or create a new one when it is missing or invalid.

        Before a new one is made, empty workspaces left by earlier visits expire and the number of
        workspaces is capped (``builder.workspaces.prepare_new``). Reopening one marks it as used
        now: its folder's time is what the expiry and the recent list go by.

        Raises:
            WorkspaceLimitError: a new one is needed, and the home is full of workspaces with work.
        """
        home = Path(home) if home is not None else default_home()
        if not is_valid_token(token) or not (home / token).is_dir():
            from builder.workspaces import prepare_new  # it builds on this module

            prepare_new(home, keep=[token] if is_valid_token(token) else [])
            token = new_token()
        else:
            try:
                os.utime(home / token)
            except OSError as exc:  # read-only disk, say: the workspace still opens
                log.warning("workspace %s... could not be marked as used (%s)", token[:6], exc)
        return cls(home / token, token)

    @classmethod
    def open_shared(cls, share_token: str | None, home: Path | None = None) -> Workspace:
        """Open, read-only, the workspace that ``share_token`` was made for.

        Raises:
            ReadOnlyError: the token is malformed, was revoked or never existed.
        """
        home = Path(home) if home is not None else default_home()
        owner = None
        if is_valid_token(share_token):
            try:
                owner = json.loads((home / SHARES_FOLDER / f"{share_token}.json").read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                owner = None
        owner = owner.get("workspace") if isinstance(owner, dict) else None
        if not is_valid_token(owner) or not (home / owner).is_dir():
            raise ReadOnlyError("This view-only link does not work (any more): its owner may have revoked it. "
                                "Ask them for a new link.")
        return cls(home / owner, share_token, read_only=True)

    def _check_writable(self, action: str) -> None:
        if self.read_only:
            raise ReadOnlyError(f"This is a view-only link: it cannot {action}. Only the owner of the "
                                "workspace can do that.")

    # --- the view-only share link -------------------------------------------------------------------

    def share_token(self) -> str | None:
        """The current share token, or ``None`` when there is none (or it was revoked)."""
        token = (self.load_state(SHARE_STATE) or {}).get("token")
        if is_valid_token(token) and (self.root.parent / SHARES_FOLDER / f"{token}.json").is_file():
            return token
        return None

    def share_link(self) -> str:
        """The share token of this workspace, made on first use (revoke it with ``revoke_share``)."""
        self._check_writable("make a share link")
        if (token := self.share_token()) is not None:
            return token
        token = new_token()
        _write_atomic(self.root.parent / SHARES_FOLDER / f"{token}.json", json.dumps({"workspace": self.token}))
        self.save_state(SHARE_STATE, {"token": token, "created": time.strftime("%Y-%m-%d %H:%M:%S")})
        return token

    def revoke_share(self) -> None:
        """Stop the current share link from working; a later ``share_link`` makes a new one."""
        self._check_writable("revoke a share link")
        token = (self.load_state(SHARE_STATE) or {}).get("token")
        if is_valid_token(token):
            (self.root.parent / SHARES_FOLDER / f"{token}.json").unlink(missing_ok=True)
        self.save_state(SHARE_STATE, None)

    # --- small JSON state (data spec, design, settings, selected run) ---------------------------

    def save_state(self, key: str, value: Any) -> None:
        self._check_writable("change the workspace")
        _write_atomic(self._state_path(key), json.dumps(value, indent=2))

    def load_state(self, key: str, default: Any = None) -> Any:
        path = self._state_path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return default
        except (OSError, json.JSONDecodeError):
            return default  # a damaged state file is ignored rather than blocking the app

    def _state_path(self, key: str) -> Path:
        if not re.fullmatch(r"[a-z_]{1,40}", key):
            raise ValueError(f"invalid state key {key!r}")
        return self.root / "state" / f"{key}.json"

    # --- the uploaded data --------------------------------------------------------------------------

    def save_data(self, name: str, content: bytes, kind: str = "table", title: str | None = None) -> Path:
        """Keep an uploaded file (replacing the previous data) and remember its name and kind.

        Args:
            name: the file name as uploaded (its extension tells how to read a table).
            content: the file's bytes.
            kind: ``"table"`` or ``"images"`` (a zip of class folders).
            title: the name to show, when it is not the file name (e.g. "Iris (sample)").

        Raises:
            DataError: the file is larger than a workspace keeps (``MAX_DATA_BYTES``).
            ValueError: an unknown ``kind`` (a bug in the caller).
        """
        self._check_writable("replace the data")
        if kind not in DATA_KINDS:
            raise ValueError(f"unknown data kind {kind!r}")
        if len(content) > MAX_DATA_BYTES:
            raise DataError(
                f"The file '{Path(name).name}' is {len(content) / 1024**2:,.0f} MB, more than the "
                f"{MAX_DATA_BYTES // 1024**2:,} MB a workspace keeps. Use a smaller sample of it."
            )
        safe = stored_name(name)
        folder = self.root / "data"
        # Write the new file beside the old one first: a failed write never loses the old data.
        self.root.mkdir(parents=True, exist_ok=True)  # an empty workspace may have expired meanwhile
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=".upload-"))
        try:
            (staging / safe).write_bytes(content)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise DataError(f"The file '{Path(name).name[:80]}' could not be kept ({exc.strerror or exc}): free some "
                            "disk space, or upload it again.") from None
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
        self.save_state("table", {"name": title or Path(name).name, "file": safe, "kind": kind,
                                  "saved": time.strftime("%Y-%m-%d %H:%M:%S")})
        return folder / safe

    def save_table(self, name: str, content: bytes, title: str | None = None) -> Path:
        """Keep an uploaded table file (see ``save_data``)."""
        return self.save_data(name, content, "table", title)

    def save_images(self, name: str, content: bytes, title: str | None = None) -> Path:
        """Keep an uploaded image zip (see ``save_data``)."""
        return self.save_data(name, content, "images", title)

    def data_file(self) -> DataFile | None:
        """The current data file (a table or an image zip), or ``None``."""
        info = self.load_state("table")
        if not isinstance(info, dict) or not isinstance(info.get("file"), str):
            return None
        kind = info.get("kind", "table")  # saved before image zips existed: a table
        path = self.root / "data" / info["file"]
        if kind not in DATA_KINDS or not path.is_file():
            return None
        return DataFile(str(info.get("name") or info["file"]), path, kind)

    def table_path(self) -> tuple[str, Path] | None:
        """The current table's display name and path, or ``None`` (also when the data is images)."""
        data = self.data_file()
        return (data.name, data.path) if data is not None and data.kind == "table" else None

    def image_zip_path(self) -> tuple[str, Path] | None:
        """The current image zip's display name and path, or ``None`` (also when the data is a table)."""
        data = self.data_file()
        return (data.name, data.path) if data is not None and data.kind == "images" else None

    # --- trained runs ------------------------------------------------------------------------------

    def save_run(self, trained: Any, title: str, run_id: str | None = None) -> str:
        """Save a ``TrainedModel`` as a new run (or over the run ``run_id``) and return its id."""
        self._check_writable("save a trained model")
        from builder.export import save_trained  # export imports torch/onnx: only when saving

        run_id = run_id or f"run-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        folder = self._run_folder(run_id)
        save_trained(trained, folder)
        summary = {"id": run_id, "created": time.strftime("%Y-%m-%d %H:%M:%S"), "title": title,
                   "task": trained.task, "headline": trained.metrics.get("test", {}),
                   "validation": trained.metrics.get("val", {})}
        _write_atomic(folder / "summary.json", json.dumps(summary, indent=2))
        self._store_run(folder, trained, with_data=True)
        return run_id

    def update_run(self, trained: Any, run_id: str) -> None:
        """Save a changed ``TrainedModel`` (a new threshold, say) over its run, keeping the title.

        Raises:
            BuilderError: no such run in this workspace.
        """
        self._check_writable("change a trained model")
        folder = self._run_folder(run_id)
        try:
            summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise BuilderError(f"Run {run_id!r} was not found in this workspace: pick one from the list.") from exc
        from builder.export import save_trained

        save_trained(trained, folder)
        summary.update(headline=trained.metrics.get("test", {}), validation=trained.metrics.get("val", {}))
        _write_atomic(folder / "summary.json", json.dumps(summary, indent=2))
        self._store_run(folder, trained)

    def load_run(self, run_id: str) -> Any:
        """Load a saved run as a ``TrainedModel``.

        Raises:
            BuilderError: no such run in this workspace.
        """
        folder = self._run_folder(run_id)
        if not folder.is_dir():
            raise BuilderError(f"Run {run_id!r} was not found in this workspace: pick one from the list.")
        from builder.export import load_trained

        return load_trained(folder)

    def list_runs(self) -> list[RunSummary]:
        """Saved runs, newest first."""
        runs = []
        for path in (self.root / "runs").glob("run-*/summary.json"):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                runs.append(RunSummary(data["id"], data["created"], data["title"], data["task"], data["headline"],
                                       data.get("validation", {})))
            except (OSError, KeyError, json.JSONDecodeError):
                continue  # a run still being written, or damaged: not listed
        return sorted(runs, key=lambda r: r.id, reverse=True)

    def search_storage(self) -> str:
        """The database URL of this workspace's model searches: ``search.db``, beside ``runs/``."""
        self._check_writable("search for a better model")
        return f"sqlite:///{self.root / 'search.db'}"

    def delete_run(self, run_id: str) -> None:
        self._check_writable("delete a run")
        shutil.rmtree(self._run_folder(run_id), ignore_errors=True)
        try:
            from builder.runs import RunStore

            RunStore(self.root.parent).forget(run_id, workspace=self.token)
        except BuilderError as exc:
            log.warning("run %s is deleted, but the run store could not be told (%s)", run_id, exc)

    def rename_run(self, run_id: str, title: str) -> None:
        """Give a run a new title, in the run store and in its ``summary.json``.

        Raises:
            BuilderError: no such run in this workspace, or an empty or too long title.
        """
        self._check_writable("rename a run")
        folder = self._run_folder(run_id)
        if not (folder / "summary.json").is_file():
            raise BuilderError(f"Run {run_id!r} was not found in this workspace: pick one from the list.")
        from builder.runs import RunNotFoundError, RunStore

        store = RunStore(self.root.parent)
        try:
            store.rename(run_id, title, workspace=self.token)
        except RunNotFoundError:  # saved while the store could not be written: add it, then rename
            store.import_workspace_runs(force=True)
            store.rename(run_id, title, workspace=self.token)

    def _store_run(self, folder: Path, trained: Any, with_data: bool = False) -> None:
        """Keep the run store's row of a saved run in step (with the data's fingerprint when new)."""
        try:
            from builder.runs import RunStore

            data = self.data_file() if with_data else None
            RunStore(self.root.parent).record(folder, trained, workspace=self.token,
                                              data_path=data.path if data else None,
                                              data_name=data.name if data else None)
        except Exception as exc:  # noqa: BLE001 - the run is saved in its folder; the store is its index
            log.warning("run %s is saved, but the run store could not be updated (%s)", folder.name, exc)

    # --- the training in progress ----------------------------------------------------------------

    def checkpoint_folder(self, job_id: str) -> Path:
        """Where training job ``job_id`` keeps its checkpoint, so it can resume after a restart."""
        if not JOB_PATTERN.fullmatch(job_id or ""):
            raise BuilderError(f"{job_id!r} is not a training job id.")
        return self.root / "checkpoints" / job_id

    def discard_checkpoints(self, keep: Collection[str] = ()) -> None:
        """Delete the checkpoints of trainings that ended or were given up, all but ``keep``'s."""
        self._check_writable("discard a training's checkpoint")
        folder = self.root / "checkpoints"
        for child in folder.iterdir() if folder.is_dir() else ():
            if child.name not in keep:
                shutil.rmtree(child, ignore_errors=True)

    def _run_folder(self, run_id: str) -> Path:
        if not RUN_PATTERN.fullmatch(run_id or ""):
            raise BuilderError(f"{run_id!r} is not a run id.")
        return self.root / "runs" / run_id
