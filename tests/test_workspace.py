"""Workspaces: unguessable tokens, no path tricks, atomic JSON state, the table kept as uploaded."""

from __future__ import annotations

import pytest

from builder.errors import BuilderError, ReadOnlyError
from builder.workspace import Workspace, is_valid_token, new_token


def test_new_and_reopened_workspaces(tmp_path):
    ws = Workspace.open(None, home=tmp_path)
    assert is_valid_token(ws.token) and ws.root == tmp_path / ws.token
    ws.save_state("design", {"family": "mlp", "layers": []})
    again = Workspace.open(ws.token, home=tmp_path)
    assert again.token == ws.token and again.load_state("design") == {"family": "mlp", "layers": []}
    assert again.load_state("missing", default=3) == 3


@pytest.mark.parametrize("token", ["../../etc", "short", "a" * 65, "x/" + "a" * 30, None, 42])
def test_invalid_or_unknown_tokens_get_a_fresh_workspace(tmp_path, token):
    ws = Workspace.open(token, home=tmp_path)
    assert ws.token != token and ws.root.parent == tmp_path
    assert Workspace.open(new_token(), home=tmp_path).root.parent == tmp_path  # unknown -> new


def test_tokens_are_unguessable():
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100 and all(len(t) >= 22 for t in tokens)


def test_table_is_kept_with_a_safe_name_and_replaced_on_upload(tmp_path):
    ws = Workspace.open(None, home=tmp_path)
    assert ws.table_path() is None
    ws.save_table("../../sales 2024.csv", b"a,b\n1,2\n")
    name, path = ws.table_path()
    assert name == "sales 2024.csv" and path.parent == ws.root / "data" and path.read_bytes() == b"a,b\n1,2\n"
    ws.save_table("iris.csv", b"x\n1\n", title="Iris (sample)")
    name, path = ws.table_path()
    assert name == "Iris (sample)" and [p.name for p in (ws.root / "data").iterdir()] == ["iris.csv"]


def test_damaged_state_is_ignored_and_state_keys_are_checked(tmp_path):
    ws = Workspace.open(None, home=tmp_path)
    (ws.root / "state").mkdir(parents=True, exist_ok=True)
    (ws.root / "state" / "design.json").write_text("{half")
    assert ws.load_state("design", default="fallback") == "fallback"
    with pytest.raises(ValueError):
        ws.save_state("../escape", 1)


def test_runs_are_addressed_only_by_valid_ids(tmp_path):
    ws = Workspace.open(None, home=tmp_path)
    assert ws.list_runs() == []
    with pytest.raises(BuilderError, match="not a run id"):
        ws.load_run("../../etc")
    with pytest.raises(BuilderError, match="was not found"):
        ws.load_run("run-20260101-000000-abcd")


@pytest.mark.parametrize("name", ["..", ".", ".hidden.csv", "../.."])
def test_odd_upload_names_stay_inside_the_data_folder(tmp_path, name):
    ws = Workspace.open(None, home=tmp_path)
    ws.save_table("first.csv", b"a\n1\n")
    ws.save_table(name, b"b\n2\n")
    _, path = ws.table_path()
    assert path.parent == ws.root / "data" and path.read_bytes() == b"b\n2\n"


def test_an_image_zip_is_kept_as_the_data_and_a_table_replaces_it(tmp_path):
    ws = Workspace.open(None, home=tmp_path)
    assert ws.data_file() is None and ws.image_zip_path() is None
    ws.save_images("my photos.zip", b"PK zip bytes", title="Photos")
    data = ws.data_file()
    assert (data.name, data.path.name, data.kind) == ("Photos", "my photos.zip", "images")
    assert ws.table_path() is None and ws.image_zip_path() == ("Photos", data.path)
    ws.save_table("sales.csv", b"a\n1\n")
    assert ws.data_file().kind == "table" and ws.image_zip_path() is None
    assert [p.name for p in (ws.root / "data").iterdir()] == ["sales.csv"]


def test_data_saved_before_kinds_existed_reads_as_a_table(tmp_path):
    ws = Workspace.open(None, home=tmp_path)
    ws.save_table("old.csv", b"a\n1\n")
    ws.save_state("table", {"name": "old.csv", "file": "old.csv", "saved": "2025-01-01 00:00:00"})
    assert ws.data_file().kind == "table" and ws.table_path()[0] == "old.csv"
    ws.save_state("table", {"name": "x", "file": "old.csv", "kind": "video"})
    assert ws.data_file() is None  # an unknown kind is not guessed at


def test_too_large_data_is_refused_and_the_previous_data_kept(tmp_path, monkeypatch):
    import builder.workspace as workspace_module

    ws = Workspace.open(None, home=tmp_path)
    ws.save_table("small.csv", b"a\n1\n")
    monkeypatch.setattr(workspace_module, "MAX_DATA_BYTES", 1024)
    with pytest.raises(BuilderError, match="more than the 0 MB a workspace keeps"):
        ws.save_images("huge.zip", b"x" * 2048)
    assert ws.table_path()[1].read_bytes() == b"a\n1\n"
    with pytest.raises(ValueError, match="unknown data kind"):
        ws.save_data("a.bin", b"1", kind="audio")


def test_a_share_link_opens_the_workspace_read_only_until_it_is_revoked(tmp_path):
    owner = Workspace.open(None, home=tmp_path)
    owner.save_state("design", {"family": "mlp", "layers": []})
    owner.save_table("sales.csv", b"a,b\n1,2\n")
    share = owner.share_link()
    assert is_valid_token(share) and share != owner.token and owner.share_link() == share  # made once
    viewer = Workspace.open_shared(share, home=tmp_path)
    assert viewer.read_only and viewer.root == owner.root and viewer.token == share  # not the owner's token
    assert viewer.load_state("design") == {"family": "mlp", "layers": []} and viewer.table_path() is not None
    before = sorted((p.relative_to(owner.root), p.read_bytes()) for p in owner.root.rglob("*") if p.is_file())
    refused = [
        lambda: viewer.save_state("design", None),
        lambda: viewer.save_table("other.csv", b"x\n1\n"),
        lambda: viewer.save_run(object(), "a run"),
        lambda: viewer.update_run(object(), "run-20260101-000000-abcd"),
        lambda: viewer.delete_run("run-20260101-000000-abcd"),
        lambda: viewer.search_storage(),
        viewer.share_link,
        viewer.revoke_share,
    ]
    for change in refused:
        with pytest.raises(ReadOnlyError, match="view-only link"):
            change()
    after = sorted((p.relative_to(owner.root), p.read_bytes()) for p in owner.root.rglob("*") if p.is_file())
    assert after == before  # nothing written, nothing deleted
    owner.revoke_share()
    assert owner.share_token() is None
    with pytest.raises(ReadOnlyError, match="revoked"):
        Workspace.open_shared(share, home=tmp_path)
    fresh = owner.share_link()
    assert fresh != share and Workspace.open_shared(fresh, home=tmp_path).root == owner.root


@pytest.mark.parametrize("token", [None, "short", "../" + "a" * 30, new_token()])
def test_unknown_or_malformed_share_tokens_open_nothing(tmp_path, token):
    Workspace.open(None, home=tmp_path)
    with pytest.raises(ReadOnlyError):
        Workspace.open_shared(token, home=tmp_path)
    assert not (tmp_path / str(token)).exists()


def test_an_upload_with_a_300_character_name_is_kept_under_a_shorter_one(tmp_path):
    """Issue 11, item 5: the name is shortened on disk (extension kept), shown as uploaded, no temp
    folder is left, and the table reads back."""
    workspace = Workspace.open(None, home=tmp_path)
    name = "quarterly sales " * 19 + "final.csv"  # 313 characters
    path = workspace.save_table(name, b"a,b\n1,2\n3,4\n")
    assert len(path.name) <= 120 and path.suffix == ".csv" and path.read_bytes().startswith(b"a,b")
    assert workspace.data_file().name == name
    assert not list(workspace.root.glob(".upload-*"))
