"""Serving a bundle: its own serve.py answers every kind of model like ``python -m builder predict``.

One small model per kind is trained once (real data for the tables: breast cancer, iris with
integer labels, diabetes; generated data with missing values, categories and dates for anomalies,
texts, a series and images) and exported. Each bundle's ``serve.py`` runs unzipped under
``python -I`` without torch or the builder. Its answers are compared with the predictions CSV of
``python -m builder predict`` on the same input: same keys, same labels (an integer stays an
integer), numbers within 1e-5 (onnxruntime against torch). Then the refusals: 422 with one
sentence for input the model cannot use, 413 over the limits, never a stack trace; ``/model``,
``/openapi.json``, ``/docs`` without outside assets; and ``python -m builder serve`` end to end.
"""

from __future__ import annotations

import html
import io
import json
import os
import signal
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets

from builder import cli
from builder.data import DataSpec
from builder.data.images import read_image_zip
from builder.export import write_bundle
from builder.pipeline import train_model
from builder.safezip import open_zip, safe_extract
from builder.train import TrainConfig
from tests.image_fixtures import make_digits_zip
from tests.serve_helpers import (
    Server,
    clean_environment,
    free_port,
    json_rows,
    running,
    start_bundle_server,
)
from tests.tabular_fixtures import TARGET, make_messy_table
from tests.test_data_text import make_text_table
from tests.test_data_timeseries import make_series

TOLERANCE = 1e-5  # and 1e-6 relative: onnxruntime against torch, both float32


@dataclass
class Served:
    """A trained model's bundle, unpacked, its raw input, and its server (running for the module)."""

    name: str
    zip_path: Path
    folder: Path
    data: object  # rows (a DataFrame) or an image zip's bytes
    server: Server


def _real_table(name: str) -> tuple[pd.DataFrame, DataSpec]:
    if name == "binary":
        frame = datasets.load_breast_cancer(as_frame=True).frame
        frame["target"] = frame["target"].map({0: "malignant", 1: "benign"})
        return frame, DataSpec("target", "binary", [c for c in frame.columns if c != "target"])
    if name == "multiclass":  # integer labels: they must come back as integers
        frame = datasets.load_iris(as_frame=True).frame
        return frame, DataSpec("target", "multiclass", [c for c in frame.columns if c != "target"])
    frame = datasets.load_diabetes(as_frame=True).frame
    return frame, DataSpec("target", "regression", [c for c in frame.columns if c != "target"])


def _train(name: str):
    config = TrainConfig(epochs=3, batch_size=32, lr=3e-3, device="cpu", seed=1)
    if name in ("binary", "multiclass", "regression"):
        frame, spec = _real_table(name)
        return frame, train_model(frame, spec, config, with_baseline=False), frame
    if name == "anomaly":
        frame = make_messy_table(n=300, seed=2).drop(columns=[TARGET])
        return frame, train_model(frame, DataSpec(None, "anomaly", list(frame.columns)), config,
                                  with_baseline=False), frame
    if name == "text":
        frame = make_text_table(n=240)
        spec = DataSpec("topic", "multiclass", ["text"], kind="text", options={"text_column": "text"})
        return frame, train_model(frame, spec, config, family="mlp", with_baseline=False), frame
    if name == "series":
        frame = make_series(n=160)
        spec = DataSpec("sales", "forecast", ["sales"], kind="series",
                        options={"time_column": "date", "window": 14, "horizon": 7})
        return frame, train_model(frame, spec, config, family="lstm", with_baseline=False), frame
    data = make_digits_zip(n_per_class=12, classes=(0, 1, 2))
    trained = train_model(data, DataSpec(None, "multiclass", [], kind="images"), config, family="cnn",
                          with_baseline=False)
    return data, trained, read_image_zip(data)


KINDS = ("binary", "multiclass", "regression", "anomaly", "text", "series", "images")


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> dict[str, Served]:
    """Every kind's bundle, each served by its own serve.py (started together, stopped at the end)."""
    out: dict[str, Served] = {}
    for name in KINDS:
        data, trained, sample = _train(name)
        folder = tmp_path_factory.mktemp(f"serve-{name}")
        zip_path = folder / "model.zip"
        write_bundle(trained, zip_path, sample_rows=sample)
        with open_zip(zip_path) as zf:
            safe_extract(zf, folder / "unpacked")
        options = {"binary": ("--max-rows", "300", "--max-request-mb", "1"),
                   "images": ("--max-images", "40")}.get(name, ())
        out[name] = Served(name, zip_path, folder / "unpacked", data,
                           start_bundle_server(folder / "unpacked", *options))
    try:
        for item in out.values():
            item.server.wait_ready()
        yield out
    finally:
        for item in out.values():
            item.server.stop()


def builder_predict(bundle: Path, data: Path, out: Path) -> pd.DataFrame:
    """The predictions CSV of ``python -m builder predict`` (in-process), read back."""
    assert cli.main(["predict", "--bundle", str(bundle), "--data", str(data), "--out", str(out)]) == 0
    return pd.read_csv(out)


def assert_same_as_cli(answer: list[dict], expected: pd.DataFrame) -> None:
    """The API's predictions hold the CLI CSV's prediction columns with the same values, row by row."""
    assert len(answer) == len(expected) > 0
    keys = list(answer[0])
    assert all(list(item) == keys for item in answer)
    assert set(keys) <= set(expected.columns), (keys, list(expected.columns))
    for key in keys:
        want = expected[key]
        got = [item[key] for item in answer]
        if pd.api.types.is_float_dtype(want) and not pd.api.types.is_bool_dtype(want):
            np.testing.assert_allclose(np.array(got, dtype=float), want.to_numpy(float), rtol=1e-6, atol=TOLERANCE,
                                       err_msg=key)
        elif pd.api.types.is_integer_dtype(want):  # the CSV read back cannot tell 1 from "1"
            assert [str(v) for v in got] == want.astype(str).tolist(), key
        elif pd.api.types.is_bool_dtype(want):
            assert got == want.tolist(), key
        else:
            assert [str(v) for v in got] == want.astype(str).tolist(), key


def _table_input(item: Served) -> pd.DataFrame:
    frame = item.data
    if item.name == "series":
        return frame  # the whole history
    return frame.sample(n=min(len(frame), 60), random_state=0).reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# Every kind answers like `builder predict`
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [k for k in KINDS if k != "images"])
def test_json_rows_answer_like_builder_predict(served, name, tmp_path):
    item = served[name]
    rows = _table_input(item)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    expected = builder_predict(item.zip_path, tmp_path / "rows.csv", tmp_path / "predictions.csv")

    reply = item.server.post_json({"rows": json_rows(rows)})
    assert reply.status == 200, reply.body
    assert_same_as_cli(reply.json()["predictions"], expected)
    if name == "multiclass":  # iris's classes are the integers 0, 1, 2: they stay integers
        assert {type(p["prediction"]) for p in reply.json()["predictions"]} == {int}


@pytest.mark.parametrize("name", ["binary", "anomaly", "series"])
def test_a_file_upload_and_a_csv_body_answer_like_json(served, name, tmp_path):
    item = served[name]
    rows = _table_input(item)
    csv_bytes = rows.to_csv(index=False).encode()
    by_json = item.server.post_json({"rows": json_rows(rows)}).json()
    by_file = item.server.post_files([("file", "new rows.csv", csv_bytes)])
    by_body = item.server.request("POST", "/predict", csv_bytes, {"Content-Type": "text/csv"})
    assert by_file.status == by_body.status == 200, (by_file.body, by_body.body)
    for reply in (by_file, by_body):
        for got, want in zip(reply.json()["predictions"], by_json["predictions"], strict=True):
            assert got.keys() == want.keys()
            for key in want:
                if isinstance(want[key], float):
                    assert got[key] == pytest.approx(want[key], abs=1e-9)  # CSV text vs JSON number
                else:
                    assert got[key] == want[key]
    excel = io.BytesIO()
    rows.to_excel(excel, index=False)
    by_excel = item.server.post_files([("file", "rows.xlsx", excel.getvalue())])
    assert by_excel.status == 200 and len(by_excel.json()["predictions"]) == len(by_json["predictions"])


def test_images_answer_like_builder_predict_as_a_zip_or_as_files(served, tmp_path):
    item = served["images"]
    (tmp_path / "new.zip").write_bytes(item.data)
    expected = builder_predict(item.zip_path, tmp_path / "new.zip", tmp_path / "predictions.csv")

    as_zip = item.server.post_files([("files", "new.zip", item.data)])
    assert as_zip.status == 200, as_zip.body
    assert_same_as_cli(as_zip.json()["predictions"], expected)

    with zipfile.ZipFile(io.BytesIO(item.data)) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".png") and "__MACOSX" not in n)[:5]
        resource_fork = next(n for n in zf.namelist() if "__MACOSX" in n)
        files = [("files", n.rsplit("/", 1)[-1], zf.read(n)) for n in names]
    as_files = item.server.post_files(files)
    assert as_files.status == 200, as_files.body
    as_files = as_files.json()["predictions"]
    by_member = {row["file"]: row for row in as_zip.json()["predictions"]}
    with zipfile.ZipFile(io.BytesIO(item.data)) as zf:  # macOS metadata is skipped in a zip, refused alone
        damaged = item.server.post_files([*files, ("files", "._img.png", zf.read(resource_fork))])
    _refused(damaged, 422, "'._img.png'", "damaged")
    for name, got in zip(names, as_files, strict=True):
        assert got["file"] == name.rsplit("/", 1)[-1]
        assert got["prediction"] == by_member[name]["prediction"]


def test_a_threshold_changes_only_that_request(served):
    item = served["binary"]
    rows = json_rows(_table_input(item).head(40))
    default = [p["prediction"] for p in item.server.post_json({"rows": rows}).json()["predictions"]]
    strict = item.server.request("POST", "/predict?threshold=0.999", json.dumps({"rows": rows}).encode(),
                                 {"Content-Type": "application/json"}).json()["predictions"]
    assert all(p["prediction"] == "malignant" or p["probability_malignant"] <= 0.999 for p in strict)
    assert [p["prediction"] for p in strict].count("malignant") < default.count("malignant")
    again = [p["prediction"] for p in item.server.post_json({"rows": rows}).json()["predictions"]]
    assert again == default  # the shared model kept its own threshold


def test_concurrent_requests_get_their_own_answers(served):
    """Batched model calls must hand every request its own rows' predictions back."""
    from concurrent.futures import ThreadPoolExecutor

    item = served["multiclass"]
    rows = json_rows(item.data.drop(columns=["target"]))
    singles = [item.server.post_json({"rows": [row]}).json()["predictions"][0] for row in rows[:40]]
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(lambda row: item.server.post_json({"rows": [row]}).json()["predictions"][0],
                                 rows[:40]))
    assert together == singles


# --------------------------------------------------------------------------------------------------
# Describing itself
# --------------------------------------------------------------------------------------------------


def test_model_describes_the_model_and_its_input_schema(served):
    binary = served["binary"].server.request("GET", "/model").json()
    assert binary["task"] == "binary" and binary["classes"] == ["benign", "malignant"]
    assert binary["decision_threshold"] == 0.5
    assert "accuracy" in binary["metrics"]["test"]
    rows = binary["input_schema"]["properties"]["rows"]
    assert rows["maxItems"] == 300 and set(rows["items"]["required"]) == set(binary["input_columns"])
    assert rows["items"]["properties"]["mean radius"]["type"] == ["number", "null"]
    assert binary["output_columns"] == ["prediction", "probability_benign", "probability_malignant"]

    anomaly = served["anomaly"].server.request("GET", "/model").json()
    color = anomaly["input_schema"]["properties"]["rows"]["items"]["properties"]["color"]
    assert color["examples"] and "categories" in color["description"]
    series = served["series"].server.request("GET", "/model").json()
    assert series["window"] == 14 and series["horizon"] == 7 and series["time_column"] == "date"
    images = served["images"].server.request("GET", "/model").json()
    assert images["input_schema"]["required"] == ["files"] and images["classes"] == ["0", "1", "2"]


def test_openapi_and_docs_are_served_from_here(served):
    server = served["binary"].server
    openapi = server.request("GET", "/openapi.json").json()
    body = openapi["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data", "text/csv"} <= set(body)
    assert "mean radius" in body["application/json"]["schema"]["properties"]["rows"]["items"]["properties"]
    assert {"413", "422"} <= set(openapi["paths"]["/predict"]["post"]["responses"])
    assert openapi["paths"]["/predict"]["post"]["parameters"][0]["name"] == "threshold"
    assert openapi["info"]["title"] == "Predicting 'target'"
    docs = server.request("GET", "/docs")
    assert docs.status == 200 and docs.content_type.startswith("text/html")
    page = docs.body.decode()
    assert "mean radius" in page and "curl" in page
    own = f"http://127.0.0.1:{server.port}/predict"
    assert own in page and "<title>Predicting 'target'</title>" in html.unescape(page) and ">nan<" not in page
    assert "<script" not in page and "http://" not in page.replace(own, "") and "https://" not in page
    assert server.request("GET", "/redoc").status == 404


# --------------------------------------------------------------------------------------------------
# Refusals: 422 with one sentence, 413 over the limits, never a stack trace
# --------------------------------------------------------------------------------------------------


def _refused(reply, status: int, *words: str) -> str:
    assert reply.status == status, reply.body
    detail = reply.json()["detail"]
    assert isinstance(detail, str) and "Traceback" not in detail and "\n" not in detail
    for word in words:
        assert word in detail, detail
    return detail


def test_rows_the_model_cannot_use_are_refused_naming_the_problem(served):
    server = served["binary"].server
    row = json_rows(served["binary"].data.drop(columns=["target"]).head(1))[0]
    without = {k: v for k, v in row.items() if k != "mean texture"}
    _refused(server.post_json({"rows": [row, without]}), 422, "rows[1]", "'mean texture'")
    _refused(server.post_json({"rows": [row], "threshold": 0.3}), 422, "'threshold'", "?threshold=")
    _refused(server.post_json({"rows": row}), 422, "list")
    _refused(server.post_json({"rows": []}), 422, "at least one row")
    _refused(server.post_json([row]), 422, '"rows"')
    _refused(server.post_json({"rows": [{**row, "mean area": [1, 2]}]}), 422, "rows[0]['mean area']", "list")
    _refused(server.post_json({"rows": ["not a row"]}), 422, "rows[0]", "object")
    _refused(server.post_json(b'{"rows": [{"mean area": 1,}]}'), 422, "not valid JSON")
    _refused(server.post_json(b"[" * 100_000 + b"]" * 100_000), 422, "nested too deeply")
    _refused(server.post_json(b"\xff\xfe\x00garbage"), 422, "not valid JSON")
    _refused(server.request("POST", "/predict?threshold=high", json.dumps({"rows": [row]}).encode(),
                            {"Content-Type": "application/json"}), 422, "threshold", "not a number")
    _refused(server.request("POST", "/predict?threshold=1.5", json.dumps({"rows": [row]}).encode(),
                            {"Content-Type": "application/json"}), 422, "threshold", "between 0 and 1")
    _refused(server.request("POST", "/predict", b"<rows/>", {"Content-Type": "application/xml"}), 422,
             "application/xml")
    _refused(server.post_files([("file", "rows.pdf", b"%PDF-1.4")]), 422, "not a table file")
    _refused(server.post_files([("file", "my rows.xlsx", b"PK\x03\x04 broken")]), 422, "'my rows.xlsx'", "Excel")
    _refused(server.post_files([("files", "a.png", b"\x89PNG")]), 422, "'file'")
    extra_column = {**row, "not used": "ignored"}  # columns the model does not read are ignored
    assert server.post_json({"rows": [extra_column]}).status == 200


def test_each_kind_refuses_the_other_kinds_input(served):
    _refused(served["images"].server.post_json({"rows": [{"a": 1}]}), 422, "images", "'files'")
    _refused(served["images"].server.post_files([("files", "notes.txt", b"hello")]), 422, "not an image")
    _refused(served["regression"].server.request("POST", "/predict?threshold=0.7", json.dumps(
        {"rows": json_rows(served["regression"].data.drop(columns=["target"]).head(1))}).encode(),
        {"Content-Type": "application/json"}), 422, "yes/no")
    _refused(served["series"].server.post_json({"rows": [{"date": "not a date", "sales": 1.0}]}), 422)


def test_requests_over_the_limits_get_413(served):
    item = served["binary"]
    server = item.server
    rows = json_rows(item.data.drop(columns=["target"]))  # 569 rows, over the server's 300
    _refused(server.post_json({"rows": rows}), 413, "569 rows", "300")
    _refused(server.post_files([("file", "rows.csv", item.data.to_csv(index=False).encode())]), 413, "rows")
    big = b'{"rows": [' + b" " * (2 * 1024**2) + b"]}"
    _refused(server.post_json(big), 413, "1 MB")
    _refused(server.request("POST", "/predict", big, {"Content-Type": "application/json"}, chunked=True), 413, "1 MB")
    assert server.request("GET", "/health").status == 200  # and it still serves
    with zipfile.ZipFile(io.BytesIO(served["images"].data)) as zf:
        image = zf.read(next(n for n in zf.namelist() if n.endswith(".png")))
    _refused(served["images"].server.post_files([("files", f"{i}.png", image) for i in range(41)]), 413, "40 images")


# --------------------------------------------------------------------------------------------------
# python -m builder serve
# --------------------------------------------------------------------------------------------------


def test_builder_serve_runs_the_bundles_own_serve_py_and_cleans_up(served, tmp_path):
    item = served["binary"]
    temp = tmp_path / "temp"
    temp.mkdir()
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "builder", "serve", "--bundle", str(item.zip_path),
                                "--port", str(port), "--no-access-log"], cwd=Path(__file__).resolve().parent.parent,
                               env=clean_environment(TMPDIR=str(temp)), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    server = Server(process, port)
    rows = json_rows(_table_input(item).drop(columns=["target"]).head(20))
    with running(server):
        assert list(temp.glob("builder-serve-*")), "the bundle is unpacked in a temporary folder"
        via_cli = server.post_json({"rows": rows})
        direct = item.server.post_json({"rows": rows})
        assert via_cli.status == 200 and via_cli.json() == direct.json()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    assert not list(temp.glob("builder-serve-*")), "the temporary folder is removed when the service stops"


def test_builder_serve_refuses_plainly(served, tmp_path, capsys):
    from tests.test_cli import assert_one_line_error, run_cli

    code, _, err = run_cli(capsys, "serve", "--bundle", str(tmp_path / "missing.zip"))
    assert "does not exist" in assert_one_line_error(code, err)
    old = tmp_path / "old.zip"
    with zipfile.ZipFile(served["binary"].zip_path) as source, zipfile.ZipFile(old, "w") as target:
        for info in source.infolist():
            if info.filename != "serve.py":
                target.writestr(info, source.read(info))
    code, _, err = run_cli(capsys, "serve", "--bundle", str(old))
    assert "export the model again" in assert_one_line_error(code, err)
    code, _, err = run_cli(capsys, "serve", "--bundle", str(old), "--port", "70000")
    assert "--port" in assert_one_line_error(code, err)
    busy = subprocess.run([sys.executable, "-m", "builder", "serve", "--bundle", str(served["binary"].zip_path),
                           "--port", str(served["binary"].server.port)], capture_output=True, text=True, timeout=120,
                          env=clean_environment())
    assert busy.returncode == 2 and "Cannot listen" in busy.stderr and "Traceback" not in busy.stderr


def test_serve_py_refuses_a_changed_bundle_before_serving(served, tmp_path):
    import shutil

    folder = tmp_path / "changed"
    shutil.copytree(served["binary"].folder, folder)
    with (folder / "preprocess.py").open("a") as handle:
        handle.write("\nprint('changed')\n")
    result = subprocess.run([sys.executable, "-I", "serve.py", "--port", str(free_port())], cwd=folder,
                            capture_output=True, text=True, timeout=120, env=clean_environment())
    assert result.returncode == 2, result.stderr
    assert "preprocess.py was changed" in result.stderr and "Traceback" not in result.stderr
    assert "changed\n" not in result.stdout  # the changed code never ran


def test_serve_py_names_a_missing_package(served, tmp_path):
    code = "import sys, runpy; sys.modules['fastapi'] = None; sys.argv = ['serve.py']; runpy.run_path('serve.py', run_name='__main__')"
    result = subprocess.run([sys.executable, "-I", "-c", code], cwd=served["binary"].folder, capture_output=True,
                            text=True, timeout=120, env=clean_environment())
    assert result.returncode == 2 and "fastapi" in result.stderr and "requirements-serve.txt" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_bundle_carries_a_dockerfile_and_its_serving_requirements(served):
    folder = served["binary"].folder
    docker = (folder / "Dockerfile").read_text()
    assert "requirements-serve.txt" in docker and 'CMD ["python", "serve.py"' in docker and "USER model" in docker
    requirements = (folder / "requirements-serve.txt").read_text()
    assert "-r requirements.txt" in requirements
    for package in ("fastapi==", "uvicorn==", "python-multipart=="):
        assert package in requirements
    manifest = json.loads((folder / "bundle.json").read_text())
    assert {"serve.py", "Dockerfile", "requirements-serve.txt"} <= set(manifest["files"])
    assert os.access(folder / "serve.py", os.R_OK)
