"""The workspaces of this machine as a whole: expiring empty ones, a cap on their number, the recent list.

Every visit without a workspace token makes a new workspace folder (``Workspace.open``), and most
stay empty: someone looked and left. Before a new one is made, ``prepare_new`` keeps the home tidy:

- at most once every ``BUILDER_WORKSPACE_SWEEP_MINUTES`` (default 10) per process and home, it
  removes the empty workspaces neither opened nor changed for ``BUILDER_WORKSPACE_EMPTY_TTL_HOURS``
  (default 24; 0 keeps them);
- when the home already holds ``BUILDER_MAX_WORKSPACES`` (default 1,000; 0: no cap), it removes
  the oldest empty ones to make room, and refuses the new one (``WorkspaceLimitError``) when every
  one holds work. A workspace with work is never removed.

"Empty" is decided conservatively: the folder holds nothing but its ``state/`` notes, and each of
them is empty (``null``, ``{}``, ``[]``, ``""``). Anything else keeps the workspace: the data, a run,
a training's checkpoint (a running or queued job, whose id is also a note), a model search, an
export, an upload being written, a note that cannot be read, a file nobody expected. So does a
share link that names it, and the tokens a caller asks to keep (the workspace being opened). A
workspace is removed by renaming its folder away first (one atomic step), then deleting it.

``recent_workspaces`` lists the workspaces that hold work, most recently used first, for the
app to offer while it listens on this computer alone (``is_local_address``): there, every
workspace is the user's own. Opened to a network, they are nobody else's business.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import secrets
import shutil
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from builder.errors import BuilderError
from builder.workspace import SHARES_FOLDER, TOKEN_PATTERN, Workspace, default_home

log = logging.getLogger(__name__)

EMPTY_TTL_ENV = "BUILDER_WORKSPACE_EMPTY_TTL_HOURS"
MAX_WORKSPACES_ENV = "BUILDER_MAX_WORKSPACES"
SWEEP_MINUTES_ENV = "BUILDER_WORKSPACE_SWEEP_MINUTES"
DEFAULT_EMPTY_TTL_HOURS = 24.0
DEFAULT_MAX_WORKSPACES = 1000
DEFAULT_SWEEP_MINUTES = 10.0
REMOVING_PREFIX = ".removing-"  # a workspace folder on its way out (hidden: never a token)
STATE_FOLDER = "state"
RECENT_LIMIT = 20

_sweep_lock = threading.Lock()
_last_sweep: dict[str, float] = {}  # home -> time.monotonic() of its last sweep in this process


class WorkspaceLimitError(BuilderError):
    """The machine keeps as many workspaces as it is set to, each with work: no new one can be made."""


def _setting(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        log.warning("%s=%r is not a number of zero or more: using %s", name, raw, default)
        return default
    return value


def empty_ttl_hours() -> float:
    """How long an empty workspace is kept (``BUILDER_WORKSPACE_EMPTY_TTL_HOURS``; 0: for ever)."""
    return _setting(EMPTY_TTL_ENV, DEFAULT_EMPTY_TTL_HOURS)


def max_workspaces() -> int:
    """The most workspaces the home keeps (``BUILDER_MAX_WORKSPACES``; 0: no cap)."""
    return int(_setting(MAX_WORKSPACES_ENV, DEFAULT_MAX_WORKSPACES))


def sweep_minutes() -> float:
    """The least time between two sweeps of a home by one process (``BUILDER_WORKSPACE_SWEEP_MINUTES``)."""
    return _setting(SWEEP_MINUTES_ENV, DEFAULT_SWEEP_MINUTES)


# --- what a workspace holds ------------------------------------------------------------------------


def workspace_folders(home: Path) -> list[Path]:
    """The workspace folders of ``home`` (named by a valid token; ``shares``, ``cli-runs`` and the
    run store are not workspaces)."""
    try:
        entries = list(os.scandir(home))
    except OSError:
        return []
    return [Path(entry.path) for entry in entries
            if TOKEN_PATTERN.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)]


def _empty_note(path: Path) -> bool:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False  # unreadable: we cannot tell, so it is kept
    return value in (None, {}, [], "")


def is_empty(folder: Path) -> bool:
    """Whether the workspace in ``folder`` holds nothing worth keeping (see the module's docstring)."""
    try:
        children = list(folder.iterdir())
    except OSError:
        return False
    for child in children:
        if child.name != STATE_FOLDER or not child.is_dir() or child.is_symlink():
            return False
        try:
            notes = list(child.iterdir())
        except OSError:
            return False
        if not all(note.suffix == ".json" and note.is_file() and _empty_note(note) for note in notes):
            return False
    return True


def last_modified(folder: Path) -> float:
    """When the workspace was last opened or changed (seconds since the epoch): the latest time of its
    folder (``Workspace.open`` marks it), its top-level files and folders, and its notes; 0 when gone."""
    times = []
    for path in (folder, *_children(folder), *_children(folder / STATE_FOLDER)):
        try:
            times.append(path.stat().st_mtime)
        except OSError:
            continue
    return max(times, default=0.0)


def _children(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def shared_tokens(home: Path) -> set[str]:
    """The tokens of the workspaces that a share link (``<home>/shares/*.json``) names."""
    tokens = set()
    for path in _children(home / SHARES_FOLDER):
        if path.suffix != ".json":
            continue
        try:
            owner = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(owner, dict) and isinstance(owner.get("workspace"), str):
            tokens.add(owner["workspace"])
    return tokens


# --- removing empty ones ----------------------------------------------------------------------------


def _remove(folder: Path) -> bool:
    """Remove the empty workspace ``folder``: renamed away (atomic), checked again, then deleted."""
    away = folder.with_name(f"{REMOVING_PREFIX}{folder.name}-{secrets.token_hex(4)}")
    try:
        folder.rename(away)
    except OSError:
        return False  # gone already (another process swept it), or not ours to move
    if not is_empty(away):  # something was written between the check and the rename: put it back
        try:
            away.rename(folder)
        except OSError as exc:
            log.warning("workspace %s got work while being removed and could not be put back (%s); it is "
                        "kept in %s", folder.name, exc, away)
        return False
    shutil.rmtree(away, ignore_errors=True)
    return True


def _removable(home: Path, keep: Collection[str]) -> list[tuple[float, Path]]:
    """The empty workspaces that may go, oldest first, as ``(last modified, folder)``."""
    kept = set(keep) | shared_tokens(home)
    found = [(last_modified(folder), folder) for folder in workspace_folders(home)
             if folder.name not in kept and is_empty(folder)]
    return sorted(found)


def expire_empty(home: Path | None = None, keep: Collection[str] = (), now: float | None = None,
                 ttl_hours: float | None = None) -> list[str]:
    """Remove the empty workspaces untouched for ``ttl_hours`` (default: the setting), all but ``keep``'s
    and those a share link names.

    Returns:
        The tokens of the workspaces removed.
    """
    home = Path(home) if home is not None else default_home()
    ttl = empty_ttl_hours() if ttl_hours is None else ttl_hours
    _clear_leftovers(home)
    if ttl <= 0:
        return []
    cutoff = (time.time() if now is None else now) - ttl * 3600
    removed = [folder.name for modified, folder in _removable(home, keep)
               if modified < cutoff and _remove(folder)]
    if removed:
        log.info("removed %d empty workspace(s) untouched for %g hours: %s", len(removed), ttl,
                 ", ".join(token[:6] + "..." for token in removed))
    return removed


def _clear_leftovers(home: Path) -> None:
    # A removal cut short (the process was killed mid-delete) leaves its renamed folder behind.
    for path in _children(home):
        if path.name.startswith(REMOVING_PREFIX) and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)


def sweep(home: Path | None = None, keep: Collection[str] = (), clock: float | None = None) -> list[str] | None:
    """``expire_empty``, at most once every ``sweep_minutes()`` per process and home.

    Args:
        clock: the time on ``time.monotonic``'s scale (tests pass their own).

    Returns:
        The tokens removed, or ``None`` when the home was swept too recently to sweep again.
    """
    home = Path(home) if home is not None else default_home()
    clock = time.monotonic() if clock is None else clock
    key = str(home.resolve())
    with _sweep_lock:
        last = _last_sweep.get(key)
        if last is not None and clock - last < sweep_minutes() * 60:
            return None
        _last_sweep[key] = clock
    return expire_empty(home, keep)


def make_room(home: Path | None = None, keep: Collection[str] = ()) -> list[str]:
    """Under the cap, make room for one more workspace: remove the oldest empty ones as needed.

    Returns:
        The tokens of the workspaces removed.

    Raises:
        WorkspaceLimitError: the home is full of workspaces that hold work.
    """
    home = Path(home) if home is not None else default_home()
    cap = max_workspaces()
    if cap <= 0:
        return []
    folders = workspace_folders(home)
    excess = len(folders) - cap + 1
    if excess <= 0:
        return []
    removed = []
    for _, folder in _removable(home, keep):
        if len(removed) >= excess:
            break
        if _remove(folder):
            removed.append(folder.name)
    if removed:
        log.info("removed the %d oldest empty workspace(s) to stay within %d", len(removed), cap)
    if len(removed) < excess:
        count = len(folders) - len(removed)
        log.warning("no new workspace: %s holds %d workspaces with work, the cap is %d (%s)", home, count, cap,
                    MAX_WORKSPACES_ENV)
        raise WorkspaceLimitError(
            f"This computer already keeps {count:,} workspaces, as many as it is set to keep, and each one "
            "holds data or trained models, so no new workspace can be made. Reopen yours with its bookmarked "
            "address, or ask whoever runs the app to remove old workspaces or raise BUILDER_MAX_WORKSPACES."
        )
    return removed


def prepare_new(home: Path | None = None, keep: Collection[str] = ()) -> None:
    """Before a new workspace is made in ``home``: the (throttled) sweep, then the cap.

    Raises:
        WorkspaceLimitError: the home is full of workspaces that hold work.
    """
    home = Path(home) if home is not None else default_home()
    if not home.is_dir():
        return  # the first workspace of this home
    sweep(home, keep)
    make_room(home, keep)


# --- the recent list ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecentWorkspace:
    """A workspace with work, as the recent list shows it."""

    token: str
    modified: float  # seconds since the epoch
    title: str | None  # the name of its data, or None
    runs: int  # saved runs

    @property
    def when(self) -> str:
        """``modified`` as local time, ``YYYY-MM-DD HH:MM``."""
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.modified))


def recent_workspaces(home: Path | None = None, limit: int = RECENT_LIMIT,
                      exclude: Collection[str] = ()) -> list[RecentWorkspace]:
    """The workspaces of ``home`` that hold work, most recently used first, at most ``limit``.

    Only for an app that listens on this computer alone (``is_local_address``): the list hands out
    every workspace's token.
    """
    home = Path(home) if home is not None else default_home()
    found = [(last_modified(folder), folder) for folder in workspace_folders(home)
             if folder.name not in exclude and not is_empty(folder)]
    found.sort(key=lambda item: item[0], reverse=True)
    recent = []
    for modified, folder in found[:max(0, limit)]:
        data = Workspace(folder, folder.name, read_only=True).data_file()
        runs = sum(1 for _ in (folder / "runs").glob("run-*/summary.json"))
        recent.append(RecentWorkspace(folder.name, modified, data.name if data else None, runs))
    return recent


def is_local_address(address: object) -> bool:
    """Whether a server bound to ``address`` is reachable from this computer alone: a loopback
    address or ``localhost``. Empty (every interface), ``0.0.0.0`` or any other address: no."""
    if not isinstance(address, str):
        return False
    host = address.strip().removeprefix("[").removesuffix("]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
