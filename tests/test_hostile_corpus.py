"""The corpus of hostile files (tests/hostile_files.py) through the app and the served API.

``test_hostile_files.py`` sends each file through the readers and ``python -m builder``; here the
same files go where an analyst or a client would send them: the Data page's uploader and the
Predict page's bundle uploader (AppTest: a message, no exception, the earlier data kept), and a
running ``serve.py`` (422 or 413 with one sentence, the server still answering afterwards and its
peak memory bounded), and each hostile bundle is refused by its own ``serve.py`` before it serves.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from builder.safezip import open_zip, safe_extract
from builder.workspace import Workspace
from tests.app_helpers import open_page
from tests.serve_helpers import clean_environment, free_port, running, start_bundle_server
from tests.test_hostile_files import bundle, corpus  # noqa: F401  (the same corpus, made once here)

TABLES = ["zeros.parquet", "long-text.parquet", "huge-cell.xlsx", "far-cells.xlsx", "broken.xlsx", "long-cell.csv",
          "deep-table.json"]
BUNDLES = ["categories.zip", "categories-and-setting.zip", "many-values.zip", "text-mean.zip", "other-classes.zip",
           "deep-preprocess.zip"]
PEAK_LIMIT_MB = 1536
MIME = {".csv": "text/csv", ".json": "application/json", ".parquet": "application/octet-stream",
        ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".zip": "application/zip"}


def unpacked(zip_path: Path, folder: Path) -> Path:
    with open_zip(zip_path) as zf:
        safe_extract(zf, folder)
    return folder


def peak_mb(pid: int) -> float:
    """A live process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc")


@pytest.fixture(scope="module")
def table_server(bundle, tmp_path_factory):  # noqa: F811
    server = start_bundle_server(unpacked(bundle, tmp_path_factory.mktemp("served") / "bundle"))
    with running(server):
        yield server


@pytest.mark.parametrize("name", TABLES)
def test_the_served_api_refuses_each_hostile_table_plainly(corpus, table_server, name):  # noqa: F811
    path = corpus(name)
    reply = table_server.post_files([("file", path.name, path.read_bytes())])
    assert reply.status in (413, 422), reply.body[:500]
    detail = reply.json()["detail"]
    assert detail and "\n" not in detail and "Traceback" not in detail
    assert table_server.request("GET", "/health").status == 200
    assert peak_mb(table_server.process.pid) < PEAK_LIMIT_MB


@pytest.mark.parametrize("name", BUNDLES)
def test_serve_py_refuses_each_hostile_bundle_before_serving(corpus, tmp_path, name):  # noqa: F811
    folder = unpacked(corpus(name), tmp_path / "bundle")
    result = subprocess.run([sys.executable, "-I", "serve.py", "--port", str(free_port())], cwd=folder,
                            capture_output=True, text=True, timeout=300, env=clean_environment())
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize("name", TABLES)
def test_the_data_page_shows_a_message_for_each_hostile_table_and_keeps_the_data(app, builder_home, corpus,  # noqa: F811
                                                                                name):
    workspace = Workspace.open(None, home=builder_home)
    at = open_page(app, workspace, "pages/data.py")
    at.file_uploader[0].upload("good.csv", b"x,y\n1,a\n2,b\n3,a\n4,b\n", "text/csv").run()
    assert not at.exception and workspace.data_file() is not None
    path = corpus(name)
    at.file_uploader[0].upload(path.name, path.read_bytes(), MIME[path.suffix]).run()
    assert not at.exception, at.exception
    assert at.error, [m.value for m in at.markdown][:5]
    data = workspace.data_file()
    assert data is not None and data.path.read_bytes() == b"x,y\n1,a\n2,b\n3,a\n4,b\n"


@pytest.mark.parametrize("name", BUNDLES)
def test_the_predict_page_refuses_each_hostile_bundle(app, builder_home, corpus, name):  # noqa: F811
    workspace = Workspace.open(None, home=builder_home)
    at = open_page(app, workspace, "pages/predict.py")
    at = at.radio(key="predict_source").set_value("A bundle file").run()
    path = corpus(name)
    at = at.get("file_uploader")[0].upload(path.name, path.read_bytes(), "application/zip").run()
    assert not at.exception, at.exception
    assert at.error and "\n" not in at.error[0].value.strip()


def test_the_corpus_bundle_itself_serves(bundle, tmp_path):  # noqa: F811
    """The hostile bundles are this bundle changed: untouched, it serves (so the refusals are the changes')."""
    folder = unpacked(bundle, tmp_path / "bundle")
    shutil.copy(folder / "sample_input.csv", tmp_path / "rows.csv")
    with running(start_bundle_server(folder)) as server:
        reply = server.post_files([("file", "rows.csv", (tmp_path / "rows.csv").read_bytes())])
        assert reply.status == 200 and reply.json()["predictions"]
