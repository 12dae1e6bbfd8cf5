"""Workspaces of the whole machine: empty ones expire, their number is capped, the recent list;
and the sidebar offers the list only while the app listens on this computer alone."""

from __future__ import annotations

import json
import logging
import os
import time

import pytest

from builder import workspaces
from builder.workspace import Workspace, new_token
from builder.workspaces import (
    WorkspaceLimitError,
    expire_empty,
    is_empty,
    is_local_address,
    make_room,
    recent_workspaces,
    sweep,
)
from tests.app_helpers import open_page

DAY = 24 * 3600


def aged(workspace: Workspace, seconds: float) -> Workspace:
    """Make everything in ``workspace`` look ``seconds`` old."""
    when = time.time() - seconds
    for path in [*workspace.root.rglob("*"), workspace.root]:
        os.utime(path, (when, when))
    return workspace


def empty(home, seconds: float = 0) -> Workspace:
    return aged(Workspace.open(None, home=home), seconds)


def with_data(home, seconds: float = 0, name: str = "sales.csv") -> Workspace:
    workspace = Workspace.open(None, home=home)
    workspace.save_table(name, b"a,b\n1,2\n")
    return aged(workspace, seconds)


def with_run(workspace: Workspace, run_id: str = "run-20260101-000000-abcd") -> None:
    folder = workspace.root / "runs" / run_id
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"id": run_id}))


def tokens(home) -> set[str]:
    return {folder.name for folder in workspaces.workspace_folders(home)}


@pytest.fixture(autouse=True)
def _fresh_sweep_clock(monkeypatch):
    monkeypatch.setattr(workspaces, "_last_sweep", {})
    for name in (workspaces.EMPTY_TTL_ENV, workspaces.MAX_WORKSPACES_ENV, workspaces.SWEEP_MINUTES_ENV):
        monkeypatch.delenv(name, raising=False)


# --- what is empty ------------------------------------------------------------------------------


def test_a_fresh_visit_makes_an_empty_workspace_and_work_makes_it_not_empty(tmp_path):
    workspace = Workspace.open(None, home=tmp_path)
    assert is_empty(workspace.root)
    workspace.save_state("design", None)  # a cleared note is nothing to keep
    assert is_empty(workspace.root)
    workspace.save_state("design", {"family": "mlp", "layers": []})
    assert not is_empty(workspace.root)
    assert not is_empty(with_data(tmp_path).root)
    running = Workspace.open(None, home=tmp_path)
    running.save_state("job_id", "job-123456")
    assert not is_empty(running.root)
    checkpoint = Workspace.open(None, home=tmp_path)
    checkpoint.checkpoint_folder("job-123456").mkdir(parents=True)
    assert not is_empty(checkpoint.root)
    unknown = Workspace.open(None, home=tmp_path)
    (unknown.root / "search.db").write_bytes(b"")
    assert not is_empty(unknown.root)
    damaged = Workspace.open(None, home=tmp_path)
    (damaged.root / "state").mkdir()
    (damaged.root / "state" / "design.json").write_text("{half")
    assert not is_empty(damaged.root)  # cannot tell: kept


# --- expiry -------------------------------------------------------------------------------------------


def test_expiry_removes_only_old_empty_workspaces(tmp_path, caplog):
    old_empty, old_cleared = empty(tmp_path, 2 * DAY), Workspace.open(None, home=tmp_path)
    old_cleared.save_state("run_id", None)
    aged(old_cleared, 2 * DAY)
    young_empty = empty(tmp_path, 3600)
    old_data = with_data(tmp_path, 30 * DAY)
    old_runs = empty(tmp_path)
    with_run(old_runs)
    aged(old_runs, 30 * DAY)
    old_job = Workspace.open(None, home=tmp_path)
    old_job.save_state("job_id", "job-abcdef")
    aged(old_job, 30 * DAY)
    old_shared = Workspace.open(None, home=tmp_path)
    old_shared.share_link()
    old_shared.save_state("share", None)  # the note lost, the link still names the workspace
    aged(old_shared, 30 * DAY)
    old_current = empty(tmp_path, 30 * DAY)
    (tmp_path / "shares" / "not-json.json").write_text("{")  # a damaged share file is passed over

    with caplog.at_level(logging.INFO, logger="builder.workspaces"):
        removed = expire_empty(tmp_path, keep=[old_current.token])
    assert set(removed) == {old_empty.token, old_cleared.token}
    assert tokens(tmp_path) == {young_empty.token, old_data.token, old_runs.token, old_job.token,
                                old_shared.token, old_current.token}
    assert "removed 2 empty workspace(s)" in caplog.text
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(workspaces.REMOVING_PREFIX)]
    assert old_data.table_path() is not None  # untouched


def test_the_time_to_live_is_a_setting_and_zero_keeps_them(tmp_path, monkeypatch):
    old = empty(tmp_path, 3 * 3600)
    monkeypatch.setenv(workspaces.EMPTY_TTL_ENV, "0")
    assert expire_empty(tmp_path) == []
    monkeypatch.setenv(workspaces.EMPTY_TTL_ENV, "4")
    assert expire_empty(tmp_path) == []
    monkeypatch.setenv(workspaces.EMPTY_TTL_ENV, "2.5")
    assert expire_empty(tmp_path) == [old.token]
    monkeypatch.setenv(workspaces.EMPTY_TTL_ENV, "soon")
    assert workspaces.empty_ttl_hours() == workspaces.DEFAULT_EMPTY_TTL_HOURS


def test_a_removal_cut_short_is_cleared_by_the_next_sweep(tmp_path):
    leftover = tmp_path / f"{workspaces.REMOVING_PREFIX}abc"
    (leftover / "state").mkdir(parents=True)
    expire_empty(tmp_path)
    assert not leftover.exists()


def test_an_expired_workspace_still_open_in_a_tab_keeps_what_it_saves_next(tmp_path):
    workspace = empty(tmp_path, 2 * DAY)
    assert expire_empty(tmp_path) == [workspace.token]
    workspace.save_table("late.csv", b"a\n1\n")
    assert workspace.table_path() is not None and Workspace.open(workspace.token, home=tmp_path).token == workspace.token


# --- the sweep runs at most once every few minutes ----------------------------------------------------


def test_the_sweep_is_throttled_per_process_and_home(tmp_path):
    def bare(seconds: float) -> Workspace:  # made as Workspace.open does, without its sweep on the real clock
        token = new_token()
        return aged(Workspace(tmp_path / token, token), seconds)

    first = bare(2 * DAY)
    assert sweep(tmp_path, clock=1000.0) == [first.token]
    second = bare(2 * DAY)
    assert sweep(tmp_path, clock=1000.0 + 9 * 60) is None  # 9 minutes later: not again
    assert second.root.is_dir()
    assert sweep(tmp_path, clock=1000.0 + 11 * 60) == [second.token]


def test_opening_a_new_workspace_sweeps_and_reopening_one_does_not(tmp_path, monkeypatch):
    tmp_path = tmp_path / "home"
    calls = []
    real = workspaces.expire_empty
    monkeypatch.setattr(workspaces, "expire_empty", lambda home, keep: calls.append(home) or real(home, keep))
    old = empty(tmp_path, 2 * DAY)  # the home's first workspace: nothing to sweep yet
    assert calls == []
    Workspace.open(old.token, home=tmp_path)  # a reopened workspace: no sweep, and it counts as used now
    assert calls == [] and time.time() - workspaces.last_modified(old.root) < 60
    aged(old, 2 * DAY)
    Workspace.open(None, home=tmp_path)
    assert len(calls) == 1 and not old.root.exists()
    for _ in range(3):
        Workspace.open(None, home=tmp_path)  # within the sweep interval: no sweep
    assert len(calls) == 1


# --- the cap ----------------------------------------------------------------------------------------------


def test_the_cap_removes_the_oldest_empty_workspaces_first(tmp_path, monkeypatch):
    monkeypatch.setenv(workspaces.MAX_WORKSPACES_ENV, "4")
    oldest_empty, newer_empty = empty(tmp_path, 3000), empty(tmp_path, 2000)
    oldest_data = with_data(tmp_path, 9000)
    shared = empty(tmp_path, 5000)
    shared.share_link()
    aged(shared, 5000)
    new = Workspace.open(None, home=tmp_path)  # 4 already: room for one more
    assert tokens(tmp_path) == {newer_empty.token, oldest_data.token, shared.token, new.token}
    assert not oldest_empty.root.exists()
    assert make_room(tmp_path, keep=[new.token]) == [newer_empty.token]


def test_a_full_home_of_workspaces_with_work_refuses_a_new_one(tmp_path, monkeypatch):
    monkeypatch.setenv(workspaces.MAX_WORKSPACES_ENV, "2")
    kept = [with_data(tmp_path), with_data(tmp_path)]
    with pytest.raises(WorkspaceLimitError, match="already keeps 2 workspaces"):
        Workspace.open(None, home=tmp_path)
    assert tokens(tmp_path) == {w.token for w in kept}
    assert Workspace.open(kept[0].token, home=tmp_path).token == kept[0].token  # reopening still works
    monkeypatch.setenv(workspaces.MAX_WORKSPACES_ENV, "0")  # no cap
    assert Workspace.open(None, home=tmp_path).token not in {w.token for w in kept}


def test_the_cap_never_removes_the_workspace_kept(tmp_path, monkeypatch):
    monkeypatch.setenv(workspaces.MAX_WORKSPACES_ENV, "1")
    current = empty(tmp_path, 9000)
    with pytest.raises(WorkspaceLimitError):
        make_room(tmp_path, keep=[current.token])
    assert current.root.is_dir()


# --- the recent list ---------------------------------------------------------------------------------


def test_recent_workspaces_with_work_newest_first(tmp_path):
    older = with_data(tmp_path, 3 * DAY, name="older.csv")
    newest = empty(tmp_path)
    newest.save_state("design", {"family": "mlp", "layers": []})
    middle = with_data(tmp_path, DAY, name="churn.csv")
    with_run(middle)
    with_run(middle, "run-20260102-000000-abcd")
    aged(middle, DAY)
    empty(tmp_path)  # nothing in it: not listed
    recent = recent_workspaces(tmp_path)
    assert [r.token for r in recent] == [newest.token, middle.token, older.token]
    assert [(r.title, r.runs) for r in recent] == [(None, 0), ("churn.csv", 2), ("older.csv", 0)]
    assert recent[1].when == time.strftime("%Y-%m-%d %H:%M", time.localtime(recent[1].modified))
    assert [r.token for r in recent_workspaces(tmp_path, limit=2, exclude=[newest.token])] == [middle.token,
                                                                                                 older.token]


@pytest.mark.parametrize(("address", "local"), [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True), ("127.0.0.2", True),
    ("", False), (None, False), ("0.0.0.0", False), ("::", False), ("192.168.1.20", False),
    ("example.org", False),
])
def test_only_a_loopback_address_is_this_computer_alone(address, local):
    assert is_local_address(address) is local


# --- the sidebar ---------------------------------------------------------------------------------------


@pytest.fixture
def server_address():
    """Set Streamlit's ``server.address`` for the test, as ``--server.address`` would."""
    from streamlit import config

    before = config.get_option("server.address")
    yield lambda value: config.set_option("server.address", value)
    config.set_option("server.address", before)


def recent_buttons(at) -> list:
    return [b for b in at.sidebar.button if (b.key or "").startswith("reopen_")]


def test_the_sidebar_lists_recent_workspaces_on_this_computer_and_reopens_one(app, builder_home, server_address):
    server_address("127.0.0.1")
    other = with_data(builder_home, 3600, name="churn.csv")
    with_run(other)
    current = Workspace.open(None, home=builder_home)
    at = open_page(app, current, "pages/data.py")
    assert [e.label for e in at.sidebar.expander] == ["Recent workspaces"]
    buttons = recent_buttons(at)
    assert [b.label for b in buttons] == ["churn.csv"]
    assert any("1 trained model" in c.value for c in at.sidebar.caption)
    buttons[0].click().run()
    assert not at.exception
    assert at.query_params["ws"] == other.token
    assert at.session_state["app"].workspace.token == other.token
    assert at.session_state["app"].table_name == "churn.csv"


@pytest.mark.parametrize("address", ["0.0.0.0", "", "192.168.1.20"])
def test_the_sidebar_never_lists_workspaces_when_open_to_a_network(app, builder_home, server_address, address):
    server_address(address)
    with_data(builder_home, 3600, name="churn.csv")
    at = open_page(app, Workspace.open(None, home=builder_home), "pages/data.py")
    assert not recent_buttons(at) and not [e for e in at.sidebar.expander if e.label == "Recent workspaces"]


def test_a_full_machine_says_so_instead_of_opening_a_page(app, builder_home, monkeypatch):
    with_data(builder_home)
    monkeypatch.setenv(workspaces.MAX_WORKSPACES_ENV, "1")
    at = app.run()
    assert not at.exception
    assert "already keeps 1 workspaces" in at.error[0].value


def test_a_view_only_link_never_lists_workspaces(app, builder_home, server_address):
    server_address("127.0.0.1")
    owner = with_data(builder_home, name="churn.csv")
    with_data(builder_home, 3600, name="other.csv")
    app.query_params["view"] = owner.share_link()
    at = app.run()
    assert not at.exception and at.session_state["app"].workspace.read_only
    assert not recent_buttons(at) and not at.sidebar.expander
