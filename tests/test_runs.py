"""The run store (``builder.runs``) and ``python -m builder runs``: every run kept, listed, compared,
exported, renamed and deleted, from the app's workspaces and from the command line.

Two tiny models are trained once through the CLI (an MLP and a logistic regression on iris); tests
that change the store work on a copy of that home folder (the store keeps folders relative to it).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from sklearn import datasets

from builder import cli
from builder.errors import ReadOnlyError
from builder.export import load_trained, save_trained
from builder.runs import (
    NO_WORKSPACE,
    RunNotFoundError,
    RunStore,
    RunStoreError,
    folder_health,
    record_cli_run,
)
from builder.workspace import RunSummary, Workspace, new_token

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Two runs trained with ``python -m builder train`` (in-process) into one home folder."""
    folder = tmp_path_factory.mktemp("runs")
    iris = datasets.load_iris(as_frame=True)
    frame = iris.frame.drop(columns="target")
    frame["species"] = iris.target_names[iris.target]
    data = folder / "iris.csv"
    frame.to_csv(data, index=False)
    home = folder / "home"
    summaries = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BUILDER_HOME", str(home))
        for model, epochs in (("mlp", "6"), ("logistic", "3")):
            out, err = io.StringIO(), io.StringIO()
            with redirect_stdout(out), redirect_stderr(err):
                code = cli.main(["train", "--data", str(data), "--target", "species", "--model", model,
                                 "--epochs", epochs, "--device", "cpu", "--out", str(folder / f"{model}.zip")])
            assert code == 0, err.getvalue()
            assert "run kept as run-" in err.getvalue()
            summaries[model] = json.loads(out.getvalue().strip().splitlines()[-1])
    store = RunStore(home)
    by_family = {r.family: r.id for r in store.list()}
    return SimpleNamespace(home=home, data=data, summaries=summaries, mlp=by_family["mlp"],
                           logistic=by_family["logistic"],
                           trained=load_trained(home / "cli-runs" / by_family["mlp"]))


@pytest.fixture
def home(kept: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the module's home folder, for tests that change it; ``BUILDER_HOME`` points at it."""
    copied = tmp_path / "home"
    shutil.copytree(kept.home, copied)
    monkeypatch.setenv("BUILDER_HOME", str(copied))
    return copied


def run_cli(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "usage:" not in err, err
    return lines[0]


# ----------------------------------------------------------------------------------------------
# Recording


def test_train_keeps_its_run_with_fingerprint_seed_versions_and_metrics(kept: SimpleNamespace) -> None:
    store = RunStore(kept.home)
    for family, run_id in (("mlp", kept.mlp), ("logistic", kept.logistic)):
        record, summary = store.get(run_id), kept.summaries[family]
        assert record.workspace is None and record.source == "cli" and record.status == "finished"
        assert record.health == "ok" and record.problem is None
        assert record.folder == kept.home / "cli-runs" / run_id
        assert (record.folder / "trained.json").is_file() and (record.folder / "sample" / "sample_input.csv").is_file()
        assert record.data_sha256 == hashlib.sha256(kept.data.read_bytes()).hexdigest()
        assert (record.data_name, record.data_rows, record.data_columns) == ("iris.csv", 150, 5)
        assert record.seed == 42 and record.task == "multiclass" and record.kind == "table"
        assert {"python", "torch", "numpy", "pandas", "scikit-learn"} <= set(record.versions)
        assert all(record.versions[k] for k in ("python", "torch", "numpy", "pandas", "scikit-learn"))
        assert record.headline == summary["metrics"]["test"] and record.validation
        assert record.baseline == {"name": summary["baseline"]["name"], "test": summary["baseline"]["test"]}
        assert record.epochs == summary["epochs_run"] and record.seconds == pytest.approx(summary["seconds"], abs=1e-3)
        assert record.extra["bundle"] == str(kept.data.parent / f"{family}.zip")
    assert store.get(kept.mlp).title == "MLP (neural network) on iris.csv"
    assert store.get(kept.logistic).title == "Logistic regression on iris.csv"


def test_a_store_that_cannot_be_written_is_a_warning_not_a_failure(kept: SimpleNamespace, tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the home folder should be")
    with caplog.at_level(logging.WARNING, logger="builder.runs"):
        assert record_cli_run(kept.trained, kept.data, home=blocked) is None
    assert "could not be kept in the run store" in caplog.text


# ----------------------------------------------------------------------------------------------
# Listing, filtering, sorting; the workspace in step


def test_list_filters_sorts_and_limits(kept: SimpleNamespace, home: Path) -> None:
    ws = Workspace.open(None, home=home)
    ws.save_table("iris.csv", kept.data.read_bytes())
    ws_run = ws.save_run(kept.trained, "Petals, 100% % _ wide")
    store = RunStore(home)

    assert [r.id for r in store.list(workspace=ws.token)] == [ws_run]
    assert {r.id for r in store.list(workspace=NO_WORKSPACE)} == {kept.mlp, kept.logistic}
    assert len(store.list()) == 3 and len(store.list(task="multiclass")) == 3 and store.list(task="regression") == []
    assert [r.id for r in store.list(search="LOGISTIC")] == [kept.logistic]
    assert [r.id for r in store.list(search="100%")] == [ws_run]  # % and _ are literal, not wildcards
    assert store.list(search="0_w") == []
    assert [r.title for r in store.list(order="title", descending=False)] == sorted(
        (r.title for r in store.list()), key=str.lower)
    by_accuracy = [r.headline["accuracy"] for r in store.list(order="metric:accuracy")]
    assert by_accuracy == sorted(by_accuracy, reverse=True)
    assert len(store.list(limit=1)) == 1 and len(store.list(order="metric:accuracy", limit=2)) == 2
    assert store.list()[0].id == ws_run  # newest first
    with pytest.raises(RunStoreError, match="cannot be sorted by 'bogus'"):
        store.list(order="bogus")

    record = store.get(ws_run)
    saved_data = ws.data_file().path
    assert record.workspace == ws.token and record.source == "workspace" and record.title == "Petals, 100% % _ wide"
    assert record.data_sha256 == hashlib.sha256(saved_data.read_bytes()).hexdigest()
    assert (record.data_rows, record.data_columns, record.data_name) == (150, 5, "iris.csv")
    assert ws.list_runs() == [record.summary()] and isinstance(ws.list_runs()[0], RunSummary)


def test_workspace_changes_keep_the_store_in_step(kept: SimpleNamespace, home: Path) -> None:
    ws = Workspace.open(None, home=home)
    store = RunStore(home)
    run_id = ws.save_run(kept.trained, "First try")
    created = store.get(run_id).created

    changed = copy.copy(kept.trained)  # a new threshold, say: new scores, same run
    changed.metrics = {"test": {"accuracy": 0.5}, "val": {"accuracy": 0.25}}
    ws.update_run(changed, run_id)
    record = store.get(run_id)
    assert record.headline == {"accuracy": 0.5} and record.validation == {"accuracy": 0.25}
    assert record.title == "First try" and record.created == created

    ws.rename_run(run_id, "  Second   thoughts ")
    assert store.get(run_id).title == "Second thoughts" and ws.list_runs()[0].title == "Second thoughts"
    store.forget(run_id)  # as if the store could not be written when the run was saved
    ws.rename_run(run_id, "Third")
    assert store.get(run_id).title == "Third" and store.get(run_id).workspace == ws.token

    viewer = Workspace.open_shared(ws.share_link(), home=home)
    with pytest.raises(ReadOnlyError):
        viewer.save_run(kept.trained, "Not allowed")
    with pytest.raises(ReadOnlyError):
        viewer.delete_run(run_id)
    with pytest.raises(ReadOnlyError):
        viewer.rename_run(run_id, "Not allowed")
    assert len(store.list(workspace=ws.token)) == 1

    again = ws.save_run(kept.trained, "Overwritten", run_id=run_id)  # save over a run: one row, new title
    assert again == run_id and store.get(run_id).title == "Overwritten" and len(store.list(workspace=ws.token)) == 1

    ws.delete_run(run_id)
    assert store.list(workspace=ws.token) == [] and ws.list_runs() == []
    with pytest.raises(RunNotFoundError):
        store.get(run_id)

    other = ws.save_run(kept.trained, "Deleted from the store")
    store.delete(other)
    assert not (ws.root / "runs" / other).exists() and ws.list_runs() == []


def test_rename_and_delete(kept: SimpleNamespace, home: Path) -> None:
    store = RunStore(home)
    with pytest.raises(RunStoreError, match="needs a title"):
        store.rename(kept.mlp, "   ")
    with pytest.raises(RunStoreError, match="at most 200"):
        store.rename(kept.mlp, "x" * 201)
    with pytest.raises(RunNotFoundError, match="No run has the id 'run-nope'"):
        store.rename("run-nope", "Title")
    with pytest.raises(RunNotFoundError):  # another workspace's view cannot reach a run
        store.rename(kept.mlp, "Title", workspace=new_token())
    store.rename(kept.mlp, "Iris MLP")
    assert store.get(kept.mlp).title == "Iris MLP"
    assert json.loads((home / "cli-runs" / kept.mlp / "summary.json").read_text())["title"] == "Iris MLP"

    store.delete(kept.mlp)
    assert not (home / "cli-runs" / kept.mlp).exists()
    assert [r.id for r in store.list()] == [kept.logistic]
    assert not list((home / "cli-runs").glob(".*"))  # nothing left behind
    with pytest.raises(RunNotFoundError):
        store.delete(kept.mlp)
    store.set_status(kept.logistic, "interrupted")
    assert store.list(status="interrupted")[0].id == kept.logistic
    with pytest.raises(RunStoreError, match="not a run status"):
        store.set_status(kept.logistic, "sleeping")


def test_compare_sets_each_run_against_its_baseline(kept: SimpleNamespace) -> None:
    store = RunStore(kept.home)
    table = store.compare([kept.mlp, kept.logistic, kept.mlp])  # a repeated id counts once
    assert [r["id"] for r in table["runs"]] == [kept.mlp, kept.logistic] and table["note"] is None
    rows = {row["metric"]: row for row in table["metrics"]}
    assert list(rows)[0] == "accuracy" and rows["accuracy"]["headline"] and rows["accuracy"]["higher_is_better"]
    for family, value in zip(("mlp", "logistic"), rows["accuracy"]["values"], strict=True):
        summary = kept.summaries[family]
        assert value["run"] == summary["metrics"]["test"]["accuracy"]
        assert value["baseline"] == summary["baseline"]["test"]["accuracy"]
        assert value["difference"] == pytest.approx(value["run"] - value["baseline"])
        assert value["beats_baseline"] == (value["run"] > value["baseline"])
    accuracies = {r: v["run"] for r, v in zip((kept.mlp, kept.logistic), rows["accuracy"]["values"], strict=True)}
    assert rows["accuracy"]["best"] == max(accuracies, key=accuracies.get)
    json.dumps(table, allow_nan=False)  # plain data

    history = store.history(kept.mlp)
    assert len(history["epoch"]) == store.get(kept.mlp).epochs and len(history["val_loss"]) == len(history["epoch"])
    with pytest.raises(RunNotFoundError):
        store.compare([kept.mlp, "run-missing"])
    with pytest.raises(RunStoreError, match="at least one"):
        store.compare([])


# ----------------------------------------------------------------------------------------------
# Runs saved before the store; damaged folders


def test_runs_saved_before_the_store_are_imported_once(kept: SimpleNamespace, tmp_path: Path) -> None:
    home, token = tmp_path / "old-home", new_token()
    runs = home / token / "runs"
    good, broken = runs / "run-20240101-090000-ab12", runs / "run-20240102-090000-cd34"
    save_trained(kept.trained, good)  # as Workspace.save_run wrote runs before the store
    broken.mkdir(parents=True)
    for folder, title, created in ((good, "Old MLP", "2024-01-01 09:00:00"), (broken, "Half saved", "2024-01-02 09:00:00")):
        (folder / "summary.json").write_text(json.dumps({
            "id": folder.name, "created": created, "title": title, "task": "multiclass",
            "headline": {"accuracy": 0.9}, "validation": {"accuracy": 0.8}}))
    (home / "not-a-token" / "runs" / "run-20240103-090000-ef56").mkdir(parents=True)

    store = RunStore(home)
    assert store.import_workspace_runs() == 2
    assert store.import_workspace_runs() == 0 and store.import_workspace_runs(force=True) == 0  # idempotent
    old = store.get(good.name)
    assert (old.workspace, old.title, old.created, old.source) == (token, "Old MLP", "2024-01-01 09:00:00", "import")
    assert (old.family, old.kind, old.task, old.seed) == ("mlp", "table", "multiclass", 42)
    assert old.headline == kept.trained.metrics["test"] and old.epochs == kept.trained.history.epochs_run
    assert old.baseline["name"] == kept.trained.baseline.name and old.health == "ok"
    half = store.get(broken.name)
    assert half.health == "damaged" and "trained.json" in half.problem and half.headline == {"accuracy": 0.9}
    assert Workspace.open(token, home=home).list_runs()[0].id == broken.name  # the workspace's list as before


def test_damaged_or_missing_folders_are_marked_never_fatal(kept: SimpleNamespace, home: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    mlp, logistic = home / "cli-runs" / kept.mlp, home / "cli-runs" / kept.logistic
    text = (mlp / "trained.json").read_bytes()
    (mlp / "trained.json").write_bytes(text[: len(text) // 2])  # cut short, as by a full disk
    shutil.rmtree(logistic)
    records = {r.id: r for r in RunStore(home).list()}
    assert records[kept.mlp].health == "damaged" and "cut short" in records[kept.mlp].problem
    assert records[kept.logistic].health == "missing" and "gone" in records[kept.logistic].problem

    code, out, err = run_cli(capsys, "runs", "list")
    assert code == 0, err
    assert "damaged" in out and "missing" in out
    code, out, _ = run_cli(capsys, "runs", "show", kept.logistic)
    assert code == 0 and "missing: Its folder" in out
    code, _, err = run_cli(capsys, "runs", "export", kept.mlp, "--out", home.parent / "x.zip")
    assert "cannot be exported" in one_line_error(code, err)

    (mlp / "trained.json").write_bytes(text)
    weights = (mlp / "model.safetensors").read_bytes()
    (mlp / "model.safetensors").write_bytes(weights[:-10])
    assert folder_health(mlp)[0] == "damaged"
    (mlp / "model.safetensors").write_bytes(weights)
    assert folder_health(mlp) == ("ok", None)


# ----------------------------------------------------------------------------------------------
# python -m builder runs ...


def test_runs_commands_end_to_end(kept: SimpleNamespace, home: Path, capsys: pytest.CaptureFixture,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = run_cli(capsys, "runs", "list")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].split()[:5] == ["ID", "CREATED", "TASK", "MODEL", "TEST"] and len(lines) == 3
    assert kept.mlp in out and "accuracy" in out and "finished" in out

    code, out, _ = run_cli(capsys, "runs", "list", "--task", "multiclass", "--search", "logistic", "--json")
    listed = json.loads(out)
    assert code == 0 and [r["id"] for r in listed] == [kept.logistic]
    assert listed[0]["in_workspace"] is False and "workspace" not in listed[0]

    code, out, _ = run_cli(capsys, "runs", "show", kept.mlp)
    assert code == 0 and "SHA-256" in out and "150 rows x 5 columns" in out and "seed      42" in out
    code, out, _ = run_cli(capsys, "runs", "show", kept.mlp, "--json")
    assert code == 0 and json.loads(out)["data_sha256"] == hashlib.sha256(kept.data.read_bytes()).hexdigest()

    code, out, _ = run_cli(capsys, "runs", "rename", kept.mlp, "Iris, the MLP")
    assert code == 0 and "'Iris, the MLP'" in out and RunStore(home).get(kept.mlp).title == "Iris, the MLP"

    code, out, _ = run_cli(capsys, "runs", "compare", kept.mlp, kept.logistic)
    assert code == 0 and "accuracy *" in out and " vs " in out and "best" in out
    code, out, _ = run_cli(capsys, "runs", "compare", kept.mlp, kept.logistic, "--json")
    assert code == 0 and json.loads(out)["metrics"][0]["metric"] == "accuracy"

    bundle = home.parent / "out" / "again.zip"
    code, out, err = run_cli(capsys, "runs", "export", kept.mlp, "--out", bundle)
    assert code == 0, err
    assert bundle.is_file() and out.strip().count("\n") == 0 and str(bundle) in out
    predictions = home.parent / "predictions.csv"
    code, _, err = run_cli(capsys, "predict", "--bundle", bundle, "--data", kept.data, "--out", predictions)
    assert code == 0, err
    table = pd.read_csv(predictions)
    assert len(table) == 150 and "prediction" in table and "probability_setosa" in table
    from builder.export import read_bundle

    assert len(read_bundle(bundle).predict(pd.read_csv(kept.data).head(3))) == 3

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal: no question, an error
    code, _, err = run_cli(capsys, "runs", "delete", kept.logistic)
    assert "--yes" in one_line_error(code, err) and (home / "cli-runs" / kept.logistic).is_dir()

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    code, out, _ = run_cli(capsys, "runs", "delete", kept.logistic)
    assert code == 0 and "Nothing deleted" in out and (home / "cli-runs" / kept.logistic).is_dir()
    code, out, _ = run_cli(capsys, "runs", "delete", kept.logistic, "--yes")
    assert code == 0 and "Deleted run" in out and not (home / "cli-runs" / kept.logistic).exists()

    for argv in (("show", kept.logistic), ("export", "run-x", "--out", bundle), ("compare", kept.mlp, "run-x"),
                 ("rename", "run-x", "T"), ("delete", "run-x", "--yes")):
        code, _, err = run_cli(capsys, "runs", *argv)
        message = one_line_error(code, err)
        assert "No run has the id" in message and "runs list" in message
    code, _, err = run_cli(capsys, "runs")
    assert "Choose what to do" in one_line_error(code, err)
    code, _, err = run_cli(capsys, "runs", "list", "--sort", "bogus")
    assert "cannot be sorted" in one_line_error(code, err)


# ----------------------------------------------------------------------------------------------
# Several processes


WRITER = textwrap.dedent("""
    import shutil, sys, time
    from pathlib import Path
    from builder.export import load_trained
    from builder.runs import RunStore

    home, source, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    trained = load_trained(source)
    while not (home.parent / "go").exists():
        time.sleep(0.01)
    store = RunStore(home)  # both processes may create the database at the same moment
    for i in range(12):
        folder = home / "cli-runs" / f"{name}-{i:02d}"
        shutil.copytree(source, folder)
        store.record(folder, trained, title=f"{name} {i}")
        store.rename(folder.name, f"{name} run {i}")
        if i % 3 == 0:
            store.delete(folder.name)
        store.list(search=name)
""")


def test_two_processes_writing_at_once_keep_the_store_whole(kept: SimpleNamespace, tmp_path: Path) -> None:
    home = tmp_path / "shared-home"
    home.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(home), str(kept.home / "cli-runs" / kept.mlp), name],
                              env=env, stderr=subprocess.PIPE, text=True)
             for name in ("alpha", "beta")]
    (tmp_path / "go").touch()
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    store = RunStore(home)
    records = store.list()
    assert len(records) == 2 * 8 and all(r.health == "ok" for r in records)
    assert {r.title for r in records} == {f"{n} run {i}" for n in ("alpha", "beta") for i in range(12) if i % 3}
    with sqlite3.connect(home / "runs.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert sorted(p.name for p in (home / "cli-runs").iterdir()) == sorted(r.id for r in records)
