"""A bundle is code: its scripts run only the files it was exported with, and nothing dropped beside them.

``predict.py`` and ``serve.py`` keep the bundle's folder off ``sys.path`` and import the bundle's own
modules by name, each checked against ``bundle.json`` before it runs. Tried the way people run them:
``python predict.py`` from the folder (where Python itself would put the folder first on the path).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sklearn import datasets

from builder.data import DataSpec
from builder.export import write_bundle
from builder.pipeline import train_model
from builder.safezip import open_zip, safe_extract
from builder.train import TrainConfig
from tests.serve_helpers import Server, clean_environment, free_port, running

TRAP = "raise SystemExit('the planted {name}.py ran')\n"


@pytest.fixture(scope="module")
def bundle_folder(tmp_path_factory) -> Path:
    frame = datasets.load_wine(as_frame=True).frame
    spec = DataSpec("target", "multiclass", [c for c in frame.columns if c != "target"])
    trained = train_model(frame, spec, TrainConfig(epochs=2, device="cpu", seed=0), with_baseline=False)
    folder = tmp_path_factory.mktemp("bundle")
    write_bundle(trained, folder / "model.zip", sample_rows=frame)
    with open_zip(folder / "model.zip") as zf:
        safe_extract(zf, folder / "unpacked")
    return folder / "unpacked"


@pytest.fixture
def copy(bundle_folder, tmp_path) -> Path:
    return Path(shutil.copytree(bundle_folder, tmp_path / "bundle"))


def run_predict(folder: Path, *python_flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *python_flags, "predict.py", "sample_input.csv"], cwd=folder,
                          capture_output=True, text=True, timeout=120, env=clean_environment())


@pytest.mark.parametrize("flags", [(), ("-I",)], ids=["python", "python -I"])
def test_files_dropped_beside_predict_py_cannot_stand_in_for_packages(copy, flags):
    expected = run_predict(copy, *flags)
    assert expected.returncode == 0, expected.stderr
    for name in ("json", "numpy", "pandas", "hashlib", "onnxruntime", "zipfile"):
        (copy / f"{name}.py").write_text(TRAP.format(name=name))
    result = run_predict(copy, *flags)
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected.stdout
    assert "planted" not in result.stderr
    assert "Note: hashlib.py, json.py, numpy.py" in result.stderr  # named, so the user can remove them


def test_a_changed_module_never_runs(copy):
    with (copy / "preprocess.py").open("a") as handle:
        handle.write("\nimport sys; sys.stdout.write('CHANGED CODE RAN')\n")
    result = run_predict(copy)
    assert result.returncode == 2
    assert "preprocess.py was changed" in result.stderr and "run only one you trust" in result.stderr
    assert "Traceback" not in result.stderr and "CHANGED CODE RAN" not in result.stdout + result.stderr


def test_a_module_missing_from_the_manifest_is_refused(copy):
    import json

    manifest = json.loads((copy / "bundle.json").read_text())
    del manifest["files"]["read.py"]
    (copy / "bundle.json").write_text(json.dumps(manifest))
    result = run_predict(copy)
    assert result.returncode == 2 and "read.py" in result.stderr and "Traceback" not in result.stderr


def test_serve_py_ignores_files_dropped_beside_it(copy):
    for name in ("json", "fastapi", "uvicorn", "numpy"):
        (copy / f"{name}.py").write_text(TRAP.format(name=name))
    port = free_port()
    process = subprocess.Popen([sys.executable, "serve.py", "--port", str(port), "--no-access-log"], cwd=copy,
                               env=clean_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with running(Server(process, port)) as server:
        reply = server.request("POST", "/predict", (copy / "sample_input.csv").read_bytes(),
                               {"Content-Type": "text/csv"})
        assert reply.status == 200 and len(reply.json()["predictions"]) == 5


def test_files_added_to_a_bundle_zip_are_named_when_it_is_read(bundle_folder, tmp_path, caplog):
    import logging
    import zipfile

    from builder.export import read_bundle
    from builder.export.reader import unlisted_members

    zip_path = tmp_path / "model.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        for path in sorted(bundle_folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(bundle_folder).as_posix())
        zf.writestr("numpy.py", TRAP.format(name="numpy"))
    with zipfile.ZipFile(zip_path) as zf:
        assert unlisted_members(zf) == ["numpy.py"]
    with caplog.at_level(logging.WARNING, logger="builder.export.reader"):
        bundle = read_bundle(zip_path)
    assert bundle.task == "multiclass"
    assert any("numpy.py" in r.getMessage() and "did not come with its export" in r.getMessage() for r in caplog.records)
