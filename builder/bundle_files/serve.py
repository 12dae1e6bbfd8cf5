"""Serve this exported model over HTTP, with nothing but its requirements.

Usage::

    pip install -r requirements-serve.txt
    python serve.py                                  # http://127.0.0.1:8000, this machine only
    python serve.py --port 8080 --workers 4          # four processes, each with the model loaded
    python serve.py --host 0.0.0.0                   # open to the network (see "Scaling out" below)

Endpoints:

* ``POST /predict``: the predictions, ``{"predictions": [{...}, ...]}``, whose i-th item has the keys
  and values of row i of ``predict.py``'s CSV. What goes in depends on the model:

  - a table, text, anomaly or forecast model: ``{"rows": [{column: value, ...}, ...]}`` (``null``
    is a missing value; columns the model does not read are ignored; a forecast's rows are the
    history, at least one window of steps), or a table file as the multipart field ``file`` (CSV,
    TSV, TXT, Excel, Parquet, JSON), or a CSV body sent with ``Content-Type: text/csv``;
  - an image model: images (PNG, JPEG, BMP, GIF) or zips of images as the multipart field
    ``files``.

  ``?threshold=0.7`` sets a yes/no model's decision threshold for one request.
* ``GET /health``: ``{"status": "ok"}`` once the model is loaded.
* ``GET /model``: what the model is (task, classes, metrics against its baseline) and the input
  schema of a row, generated from ``preprocess.json``.
* ``GET /openapi.json``, and ``GET /docs``: this API described for people, served from here (no
  script or style sheet comes from elsewhere).

Input the model cannot use gets status 422 and ``{"detail": "<one plain sentence>"}`` (the sentence
``predict.py`` would print); a request over the limits gets 413; a stack trace never leaves the
server. The limits (rows, megabytes and images per request) are options below.

Every worker process loads the model once and shares one onnxruntime session between its
requests; requests that arrive while the model is busy are run together in one model call.

Scaling out: ``--workers N`` runs N processes behind one port (about one per core). Beyond one
machine, run this bundle in several containers (``Dockerfile``) behind any HTTP load balancer:
every worker is independent and keeps no state between requests, so no sticky sessions are needed.
Bind to ``0.0.0.0`` only behind a proxy you trust: the server has no authentication.
"""

from __future__ import annotations

import os
import sys

# The bundle's folder must not shadow installed packages (see predict.py, which keeps it off sys.path
# and imports the bundle's own modules by name, each checked against bundle.json).
HERE_PATH = os.path.dirname(os.path.realpath(__file__))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != HERE_PATH]

import argparse  # noqa: E402  (the imports wait for the line above)
import contextlib  # noqa: E402
import html  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import queue  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402


def _load_predict() -> Any:
    """The bundle's predict.py as the module ``predict`` (it installs the checked import of the rest)."""
    if "predict" in sys.modules and getattr(sys.modules["predict"], "HERE_PATH", None) == HERE_PATH:
        return sys.modules["predict"]
    spec = importlib.util.spec_from_file_location("predict", os.path.join(HERE_PATH, "predict.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["predict"] = module
    spec.loader.exec_module(module)
    return module


try:
    import numpy as np
    import pandas as pd
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.exceptions import HTTPException

    predict = _load_predict()
except ImportError as exc:  # a package not installed, or predict.BundleChanged (which names no module)
    if __name__ != "__main__":
        raise
    sys.stderr.write(f"serve.py needs the package {exc.name}: pip install -r requirements-serve.txt\n" if exc.name
                     else f"{exc}\n")
    sys.exit(2)

log = logging.getLogger("serve")

ENVIRONMENT_PREFIX = "BUNDLE_SERVE_"  # how main() hands its options to the worker processes
INTERNAL_ERROR = ("The model could not answer this request because of an error in the server; "
                  "the server's log has the details.")


# --- settings -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What one worker process needs to know: the request limits and how to run the model.

    Attributes:
        max_rows: rows (or history steps) per request.
        max_request_mb: bytes of one request body, in MB.
        max_images: images per request (an image model).
        batching: run requests that arrive while the model is busy together in one model call.
        threads: onnxruntime threads per model call (0: one per core, shared among the workers).
    """

    max_rows: int = 10_000
    max_request_mb: float = 32.0
    max_images: int = 256
    batching: bool = True
    threads: int = 0

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mb * 1024**2)

    def to_environment(self) -> dict[str, str]:
        return {f"{ENVIRONMENT_PREFIX}{key.upper()}": str(value) for key, value in asdict(self).items()}

    @classmethod
    def from_environment(cls) -> Settings:
        """The settings main() wrote into the environment (the defaults where it wrote none)."""
        values: dict[str, Any] = {}
        for key, default in asdict(cls()).items():
            raw = os.environ.get(f"{ENVIRONMENT_PREFIX}{key.upper()}")
            if raw is not None:
                values[key] = raw == "True" if isinstance(default, bool) else type(default)(raw)
        return cls(**values)


# --- errors a client can fix ----------------------------------------------------------------------


class RequestProblem(Exception):
    """A request the model cannot answer: its HTTP status and one plain sentence."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = " ".join(detail.split())


def _input_errors() -> tuple[type[Exception], ...]:
    """The errors that mean "this input (or this bundle) cannot be used": the bundle's DataError
    classes, and a module that differs from bundle.json."""
    errors: tuple[type[Exception], ...] = (predict.DataError, predict.BundleChanged)
    if os.path.isfile(os.path.join(HERE_PATH, "read.py")):  # not in an image bundle
        try:
            from read import DataError as ReadError  # read.py has its own copy of the error class
        except predict.BundleChanged:
            return errors  # check_files() names the changed file
        errors += (ReadError,)
    return errors


# --- batching -----------------------------------------------------------------------------------


class _Waiting:
    """One request's model input, waiting for its outputs."""

    def __init__(self, X: np.ndarray) -> None:
        self.X = X
        self.done = threading.Event()
        self.outputs: np.ndarray | None = None
        self.error: BaseException | None = None


class Batcher:
    """The model, run once for every request waiting instead of once per request.

    One thread calls the model. A request that finds it idle goes straight through (no waiting for
    company); requests that arrive while it is busy queue, and the next call takes all of them that
    have the same input shape, up to ``max_rows``. Under load, one model call then serves many
    requests. An error in a call reaches every request of that call.
    """

    def __init__(self, run: Any, max_rows: int) -> None:
        self._run = run
        self._max_rows = max_rows
        self._queue: queue.SimpleQueue[_Waiting] = queue.SimpleQueue()
        self._held: list[_Waiting] = []  # taken from the queue with another shape: next call
        threading.Thread(target=self._loop, name="model-batcher", daemon=True).start()

    def __call__(self, X: np.ndarray) -> np.ndarray:
        waiting = _Waiting(np.ascontiguousarray(X, dtype=np.float32))
        self._queue.put(waiting)
        waiting.done.wait()
        if waiting.error is not None:
            raise waiting.error
        return waiting.outputs

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            try:
                outputs = self._run(np.concatenate([w.X for w in batch]) if len(batch) > 1 else batch[0].X)
                start = 0
                for waiting in batch:
                    waiting.outputs = outputs[start:start + len(waiting.X)]
                    start += len(waiting.X)
            except BaseException as exc:  # noqa: BLE001  (handed to the requests, which raise it)
                for waiting in batch:
                    waiting.error = exc
            finally:
                for waiting in batch:
                    waiting.done.set()

    def _next_batch(self) -> list[_Waiting]:
        first = self._held.pop(0) if self._held else self._queue.get()
        batch, rows = [first], len(first.X)
        shape = first.X.shape[1:]
        for waiting in list(self._held):
            if rows >= self._max_rows:
                break
            if waiting.X.shape[1:] == shape:
                self._held.remove(waiting)
                batch.append(waiting)
                rows += len(waiting.X)
        while rows < self._max_rows:
            try:
                waiting = self._queue.get_nowait()
            except queue.Empty:
                break
            if waiting.X.shape[1:] == shape:
                batch.append(waiting)
                rows += len(waiting.X)
            else:
                self._held.append(waiting)
        return batch


# --- the service --------------------------------------------------------------------------------


class Service:
    """The model behind the endpoints: reading requests, predicting, and describing itself."""

    def __init__(self, folder: str | Path = HERE_PATH, settings: Settings | None = None) -> None:
        self.folder = Path(folder)
        self.settings = settings or Settings()
        predict.check_files(self.folder)  # main() names the extra files once, not every worker
        self.model = predict.Model(self.folder, threads=self.settings.threads or None)
        if self.settings.batching:
            self.model.run = Batcher(self.model.run, predict.CHUNK_ROWS)
        self.manifest = json.loads((self.folder / predict.MANIFEST).read_text(encoding="utf-8"))
        self.metrics = json.loads((self.folder / "metrics.json").read_text(encoding="utf-8"))
        self.errors = _input_errors()
        self.columns: list[str] = list(self.manifest.get("input_columns") or [])
        self.output_columns = list(self._warm_up().columns)

    @property
    def images(self) -> bool:
        return self.model.kind == "images"

    def _warm_up(self) -> pd.DataFrame:
        """Predict the bundle's own sample once: the first request is not slower, and a bundle that
        cannot answer its sample never starts serving."""
        if self.images:
            names = [n for n in self.manifest.get("sample", []) if (self.folder / n).is_file()]
            return self.model.predict([(self.folder / n).read_bytes() for n in names], files=names)
        return self.model.predict(predict.read_rows(self.folder / "sample_input.csv"))

    # -- reading a request --

    def rows_from_json(self, body: bytes) -> pd.DataFrame:
        """``{"rows": [{column: value, ...}, ...]}`` as a table of the model's input columns."""
        if self.images:
            raise RequestProblem(422, "This model reads images: send them as the multipart field 'files' "
                                      "(PNG, JPEG, BMP or GIF files, or zips of them).")
        try:
            payload = json.loads(body)
        except RecursionError:
            raise RequestProblem(422, "The request's JSON is nested too deeply to read. Send "
                                      '{"rows": [{"column": value, ...}, ...]}.') from None
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise RequestProblem(422, f"The request body is not valid JSON ({exc}). Send "
                                      '{"rows": [{"column": value, ...}, ...]}.') from None
        if not isinstance(payload, dict) or "rows" not in payload:
            raise RequestProblem(422, 'The request needs a "rows" key: send {"rows": [{"column": value, ...}, ...]}.')
        if set(payload) != {"rows"}:
            extra = ", ".join(repr(k) for k in payload if k != "rows")
            raise RequestProblem(422, f"The request has keys the API does not know ({extra}): send exactly "
                                      '{"rows": [...]}; a threshold goes in the address, ?threshold=0.7.')
        rows = payload["rows"]
        if not isinstance(rows, list) or not rows:
            raise RequestProblem(422, '"rows" must be a list of at least one row, each {"column": value, ...}.')
        self.check_row_count(len(rows))
        for index, row in enumerate(rows):
            self._check_row(index, row)
        return pd.DataFrame({column: [row[column] for row in rows] for column in self.columns})

    def _check_row(self, index: int, row: Any) -> None:
        if not isinstance(row, dict):
            raise RequestProblem(422, f"rows[{index}] is not an object: give each row as "
                                      '{"column": value, ...}.')
        missing = [column for column in self.columns if column not in row]
        if missing:
            named = ", ".join(repr(c) for c in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise RequestProblem(422, f"rows[{index}] has no {named}: every row needs each column the model reads "
                                      "(null for a missing value). GET /model lists them.")
        for column in self.columns:
            value = row[column]
            if value is not None and not isinstance(value, (str, int, float, bool)):
                raise RequestProblem(422, f"rows[{index}][{column!r}] is a {type(value).__name__}, not one value: "
                                          "give a number, a text, true/false or null.")

    def rows_from_file(self, name: str, content: bytes) -> pd.DataFrame:
        """A table file (CSV, TSV, TXT, Excel, Parquet, JSON), read exactly as predict.py reads it."""
        if self.images:
            raise RequestProblem(422, "This model reads images: send them as the multipart field 'files'.")
        from read import SUPPORTED_TABLE_EXTENSIONS  # what predict.py and the app read

        suffix = Path(name).suffix.lower()
        if suffix not in SUPPORTED_TABLE_EXTENSIONS:
            raise RequestProblem(422, f"{Path(name).name[:120]!r} is not a table file: send a CSV, TSV, TXT, "
                                      "Excel (.xlsx), Parquet or JSON file.")
        with tempfile.TemporaryDirectory(prefix="serve-") as folder, self.input_problems():
            path = Path(folder) / _safe_name(name, suffix)  # the reader's messages name the file
            path.write_bytes(content)
            rows = predict.read_rows(path)
        self.check_row_count(len(rows))
        return rows

    def images_from_files(self, uploads: list[tuple[str, bytes]]) -> tuple[list[str], list[bytes]]:
        """Image files, and the images of zips, in the order sent (a zip's images in path order)."""
        if not self.images:
            raise RequestProblem(422, "This model reads table rows: send {\"rows\": [...]}, or a table file "
                                      "as the multipart field 'file'.")
        from images import IMAGE_EXTENSIONS, MAX_IMAGE_BYTES

        names: list[str] = []
        images: list[bytes] = []
        for name, content in uploads:
            suffix = Path(name).suffix.lower()
            if suffix == ".zip":
                with tempfile.TemporaryDirectory(prefix="serve-") as folder, self.input_problems():
                    path = Path(folder) / _safe_name(name, suffix)
                    path.write_bytes(content)
                    found, data = predict.read_images(path)
                names += found  # paths inside the zip, as predict.py names them
                images += data
            elif suffix in IMAGE_EXTENSIONS:
                if len(content) > MAX_IMAGE_BYTES:
                    raise RequestProblem(413, f"The image {name!r} is larger than {MAX_IMAGE_BYTES // 1024**2} MB.")
                names.append(name)
                images.append(content)
            else:
                raise RequestProblem(422, f"{name!r} is not an image: send PNG, JPEG, BMP or GIF files, or zips of them.")
            if len(images) > self.settings.max_images:
                break
        if not images:
            raise RequestProblem(422, "The request holds no image: send PNG, JPEG, BMP or GIF files as the "
                                      "multipart field 'files'.")
        if len(images) > self.settings.max_images:
            raise RequestProblem(413, f"The request holds more than {self.settings.max_images:,} images, the most one "
                                      "request may hold: split them into smaller requests.")
        return names, images

    def check_row_count(self, count: int) -> None:
        if count > self.settings.max_rows:
            raise RequestProblem(413, f"The request holds {count:,} rows, more than the {self.settings.max_rows:,} "
                                      "one request may hold: split it into smaller requests.")

    @staticmethod
    def threshold(raw: str | None) -> float | None:
        if raw is None:
            return None
        try:
            return float(raw)
        except ValueError:
            raise RequestProblem(422, f"threshold={raw[:40]!r} is not a number: give a probability between 0 "
                                      "and 1, e.g. ?threshold=0.7.") from None

    # -- answering --

    def predictions(self, raw: Any, threshold: float | None = None, files: list[str] | None = None) -> dict:
        """``{"predictions": [...]}`` for rows, a history or images; input problems as 422."""
        with self.input_problems():
            if threshold is not None:
                predict.check_decision_threshold(threshold, self.model.preprocessor.task, "threshold")
            options = {"files": files} if self.images else {}
            frame = self.model.predict(raw, threshold, **options)
        return {"predictions": records(frame)}

    @contextlib.contextmanager
    def input_problems(self) -> Iterator[None]:
        """The readers' and the preprocessing's errors about the input, as 422 with their sentence."""
        try:
            yield
        except self.errors as exc:
            raise RequestProblem(422, str(exc)) from None

    def title(self) -> str:
        """What the model does, in the model card's words (its first line: "Model card: predicting ...")."""
        card = self.folder / "README.md"
        first = card.read_text(encoding="utf-8").splitlines()[0] if card.is_file() else ""
        words = first.lstrip("# ").removeprefix("Model card:").replace("`", "'").strip()
        return (words[:1].upper() + words[1:]) if words else f"A {self.manifest.get('task')} model"

    def describe(self) -> dict[str, Any]:
        """``GET /model``: the model card's facts and the input schema."""
        pre = self.model.preprocessor
        manifest, metrics = self.manifest, self.metrics
        baseline = metrics.get("baseline") or {}
        facts: dict[str, Any] = {
            "kind": manifest.get("kind"),
            "task": manifest.get("task"),
            "target": manifest.get("target"),
            "family": manifest.get("family"),
            "classes": manifest.get("classes") or [],
            "created": manifest.get("created"),
            "builder_version": manifest.get("builder_version"),
            "metrics": {"test": metrics.get("test") or {},
                        "baseline": {"name": baseline.get("name"), "test": baseline.get("metrics") or {}}},
            "input_columns": self.columns,
            "output_columns": self.output_columns,
            "input_schema": self.request_schema(),
            "limits": {"max_rows": self.settings.max_rows, "max_request_mb": self.settings.max_request_mb,
                       "max_images": self.settings.max_images},
        }
        if getattr(pre, "decision_threshold", None) is not None:
            facts["decision_threshold"] = pre.decision_threshold
        for key in ("time_column", "window", "horizon", "threshold"):
            if key in manifest:
                facts[key] = manifest[key]
        return facts

    def request_schema(self) -> dict[str, Any]:
        """The JSON schema of a ``POST /predict`` body, from preprocess.json (images: the form)."""
        if self.images:
            return {"type": "object", "required": ["files"],
                    "properties": {"files": {"type": "array", "maxItems": self.settings.max_images,
                                             "items": {"type": "string", "format": "binary"},
                                             "description": "PNG, JPEG, BMP or GIF images, or zips of them"}}}
        row = {"type": "object", "required": self.columns, "properties": column_schemas(self.model.preprocessor),
               "description": "One row: every column the model reads (null for a missing value); "
                              "other columns are ignored."}
        return {"type": "object", "required": ["rows"], "additionalProperties": False,
                "properties": {"rows": {"type": "array", "minItems": 1, "maxItems": self.settings.max_rows,
                                        "items": row}}}

    def sample_request(self) -> dict[str, Any] | None:
        """Two rows of the bundle's sample input, as a request body for the docs (None: images)."""
        if self.images:
            return None
        rows = predict.read_rows(self.folder / "sample_input.csv")
        if self.model.preprocessor.task != "forecast":
            rows = rows.head(2)
        return {"rows": records(rows[self.columns])}


def _safe_name(name: str, suffix: str) -> str:
    """A client's file name, safe to write in a private folder: its own letters, short, same suffix."""
    stem = re.sub(r"[^\w .-]", "_", Path(name).name)[: -len(suffix) or None].strip(" .") or "upload"
    return f"{stem[:100]}{suffix}"


def column_schemas(preprocessor: Any) -> dict[str, Any]:
    """The JSON schema of each input column, from the fitted preprocessing."""
    state = preprocessor.to_dict()
    if state.get("format") == "builder.text-preprocessor":
        return {preprocessor.text_column: {"type": ["string", "null"], "description": "the text"}}
    if state.get("format") == "builder.series-preprocessor":
        schemas = {column: {"type": ["number", "null"], "description": "a value of the series"}
                   for column in preprocessor.columns}
        schemas[preprocessor.time_column] = {"type": "string", "description": "the time stamp of the row"}
        return schemas
    schemas: dict[str, Any] = {}
    for column in state.get("columns", []):
        kind = column.get("kind")
        if kind == "numeric":
            schema = {"type": ["number", "null"], "description": f"a number; missing: filled with {column.get('fill')}"}
        elif kind == "boolean":
            schema = {"type": ["boolean", "string", "number", "null"], "description": "yes/no"}
        elif kind == "datetime":
            schema = {"type": ["string", "null"], "description": "a date (as written in the training data)"}
        else:
            categories = column.get("categories") or []
            schema = {"type": ["string", "number", "boolean", "null"], "examples": categories[:20],
                      "description": f"one of {len(categories):,} categories seen in training; others count as other"}
        schemas[column["name"]] = schema
    return schemas


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON objects with the values the CSV holds: an integer stays an integer, a date is
    written as the CSV writes it, a missing value is null."""
    columns: list[list[Any]] = []
    for name in frame.columns:
        values = frame[name]
        if pd.api.types.is_datetime64_any_dtype(values):
            text = values.astype(str)
            columns.append([None if missing else t for t, missing in zip(text, values.isna(), strict=False)])
        elif pd.api.types.is_bool_dtype(values):
            columns.append([bool(v) for v in values])
        elif pd.api.types.is_integer_dtype(values) and not values.isna().any():
            columns.append([int(v) for v in values])
        elif pd.api.types.is_float_dtype(values):
            columns.append([None if np.isnan(v) else float(v) for v in values.to_numpy(dtype=float)])
        else:
            columns.append([_plain(v) for v in values])
    return [dict(zip(map(str, frame.columns), row, strict=False)) for row in zip(*columns, strict=False)]


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return str(value)
    return value


# --- the web app --------------------------------------------------------------------------------


class RequestTooLarge(Exception):
    """The request body grew past the limit while it was read."""


class BodyLimit:
    """ASGI middleware: a request body larger than ``max_bytes`` is refused, by its declared length
    before a byte is read, or while it streams in (a chunked body has no length)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(self.max_bytes)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise RequestTooLarge
            return message

        await self.app(scope, limited_receive, send)


def _too_large(max_bytes: int) -> JSONResponse:
    return JSONResponse({"detail": f"The request is larger than {max_bytes / 1024**2:g} MB, the most one request "
                                   "may hold: split it into smaller requests."}, status_code=413)


def create_app(folder: str | Path = HERE_PATH, settings: Settings | None = None) -> Any:
    """The FastAPI app of this bundle (``uvicorn serve:create_app --factory`` builds one per worker)."""
    settings = settings or Settings.from_environment()
    service = Service(folder, settings)
    manifest = service.manifest
    title = service.title()
    app = FastAPI(title=title, version=str(manifest.get("created", "")), docs_url=None, redoc_url=None,
                  description="Predictions of a model exported by the visual model builder. GET /docs for "
                              "how to call it.")
    app.state.service = service
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)

    @app.exception_handler(RequestProblem)
    async def request_problem(request: Request, exc: RequestProblem) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(RequestTooLarge)
    async def request_too_large(request: Request, exc: RequestTooLarge) -> JSONResponse:
        return _too_large(settings.max_request_bytes)

    @app.exception_handler(RequestValidationError)
    async def validation_problem(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "the request"
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'not valid')}."}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("error answering %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": INTERNAL_ERROR}, status_code=500)

    @app.get("/health", summary="Is the model loaded and answering?")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/model", summary="What the model is, how good it is, and what a request holds")
    def model() -> dict[str, Any]:
        return service.describe()

    @app.post("/predict", summary="Predictions for rows, a table file, a history or images",
              openapi_extra=_predict_openapi(service))
    async def predict_endpoint(request: Request) -> JSONResponse:
        threshold = service.threshold(request.query_params.get("threshold"))
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "multipart/form-data":
            try:
                form = await request.form(max_files=4 * settings.max_images + 16, max_fields=16,
                                          max_part_size=settings.max_request_bytes)
            except HTTPException as exc:
                raise RequestProblem(422, f"The multipart form could not be read ({exc.detail}).") from None
            if service.images:
                uploads = [(u.filename or "image", await u.read()) for u in form.getlist("files") if hasattr(u, "read")]
                names, images = service.images_from_files(uploads)
                answer = await run_in_threadpool(service.predictions, images, threshold, names)
            else:
                upload = form.get("file")
                if not hasattr(upload, "read"):
                    raise RequestProblem(422, "Send the table file as the multipart field 'file'.")
                rows = await run_in_threadpool(service.rows_from_file, upload.filename or "upload.csv", await upload.read())
                answer = await run_in_threadpool(service.predictions, rows, threshold)
        elif content_type in ("text/csv", "text/plain"):
            rows = await run_in_threadpool(service.rows_from_file, "body.csv", await request.body())
            answer = await run_in_threadpool(service.predictions, rows, threshold)
        elif content_type in ("application/json", ""):
            rows = service.rows_from_json(await request.body())
            answer = await run_in_threadpool(service.predictions, rows, threshold)
        else:
            raise RequestProblem(422, f"Content-Type {content_type[:60]!r} is not read here: send JSON "
                                      '{"rows": [...]}, a table file as the multipart field \'file\', a CSV body '
                                      "(text/csv), or images as the multipart field 'files'.")
        return JSONResponse(answer)

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        return HTMLResponse(docs_page(service, app.openapi(), str(request.base_url).rstrip("/")))

    return app


def _predict_openapi(service: Service) -> dict[str, Any]:
    """The request body and answers of POST /predict, generated for this model."""
    detail = {"application/json": {"schema": {"type": "object", "properties": {"detail": {"type": "string"}}}}}
    if service.images:
        content = {"multipart/form-data": {"schema": service.request_schema()}}
    else:
        content = {"application/json": {"schema": service.request_schema()},
                   "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                       "file": {"type": "string", "format": "binary",
                                "description": "a CSV, TSV, TXT, Excel, Parquet or JSON table"}}}},
                   "text/csv": {"schema": {"type": "string"}}}
        example = service.sample_request()
        if example:
            content["application/json"]["example"] = example
    threshold = {"name": "threshold", "in": "query", "required": False,
                 "schema": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                 "description": "a yes/no model: answer its second class above this probability, for this request"}
    return {
        "parameters": [threshold] if service.model.preprocessor.task == "binary" else [],
        "requestBody": {"required": True, "content": content},
        "responses": {
            "200": {"description": "one prediction per row (per image; per future step of a forecast)",
                    "content": {"application/json": {"schema": {"type": "object", "properties": {"predictions": {
                        "type": "array", "items": {"type": "object",
                                                   "properties": {c: {} for c in service.output_columns}}}}}}}},
            "413": {"description": "the request is over the limits (rows, megabytes, images)", "content": detail},
            "422": {"description": "the input cannot be used: the sentence says why", "content": detail},
        },
    }


def docs_page(service: Service, openapi: dict[str, Any], address: str) -> str:
    """``GET /docs``: the API of this model for people, one self-contained page (no outside assets)."""
    facts = service.describe()
    e = html.escape
    endpoints = "".join(
        f"<tr><td><code>{e(method.upper())} {e(path)}</code></td><td>{e(op.get('summary', ''))}</td></tr>"
        for path, methods in openapi.get("paths", {}).items() for method, op in methods.items())
    schema = facts["input_schema"]
    if service.images:
        inputs = "<p>Images (PNG, JPEG, BMP, GIF) or zips of images, as the multipart field <code>files</code>.</p>"
        example = f"curl -F files=@photo1.png -F files=@photo2.jpg {address}/predict"
    else:
        properties = schema["properties"]["rows"]["items"]["properties"]
        inputs = "<table><tr><th>column</th><th>type</th><th>notes</th></tr>" + "".join(
            f"<tr><td><code>{e(name)}</code></td><td>{e(' or '.join(s['type']) if isinstance(s['type'], list) else s['type'])}</td>"
            f"<td>{e(s.get('description', ''))}</td></tr>" for name, s in properties.items()) + "</table>"
        body = json.dumps(service.sample_request(), ensure_ascii=False)
        example = (f"curl -H 'Content-Type: application/json' -d '{body}' {address}/predict\n"
                   f"curl -F file=@new_rows.csv {address}/predict\n"
                   f"curl -H 'Content-Type: text/csv' --data-binary @new_rows.csv {address}/predict")
    baseline = facts["metrics"]["baseline"]["test"]
    metrics = "".join(f"<tr><td>{e(k)}</td><td>{_number(v)}</td><td>{_number(baseline.get(k))}</td></tr>"
                      for k, v in facts["metrics"]["test"].items() if isinstance(v, (int, float)))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{e(openapi['info']['title'])}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1f2430}}
table{{border-collapse:collapse;margin:.5rem 0 1.5rem}}td,th{{border:1px solid #d0d4dc;padding:.3rem .6rem;text-align:left;vertical-align:top}}
pre{{background:#f4f5f8;padding:1rem;overflow-x:auto}}code{{font-size:.92em}}</style></head><body>
<h1>{e(openapi['info']['title'])}</h1>
<p>Task: {e(str(facts['task']))}; classes: {e(', '.join(map(str, facts['classes'])) or 'none')}. Exported {e(str(facts['created']))}.
The machine-readable description is <a href="/openapi.json">/openapi.json</a>; <a href="/model">/model</a> has these facts as JSON.</p>
<h2>Endpoints</h2><table><tr><th>call</th><th>what</th></tr>{endpoints}</table>
<h2>What a request holds</h2>{inputs}
<p>At most {service.settings.max_rows:,} rows, {service.settings.max_request_mb:g} MB and {service.settings.max_images:,} images per request (413 above).
Input the model cannot use gets 422 and <code>{{"detail": "..."}}</code> saying why.</p>
<h2>Examples</h2><pre>{e(example)}</pre>
<h2>Quality on the test rows</h2><table><tr><th>metric</th><th>model</th><th>{e(str(facts['metrics']['baseline']['name'] or 'baseline'))}</th></tr>{metrics}</table>
</body></html>"""


def _number(value: Any) -> str:
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
    return f"{value:.4g}" if number else "-"


# --- command line ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Check the bundle, then serve it with uvicorn (exit 2 and one sentence when it cannot)."""
    defaults = Settings()
    parser = argparse.ArgumentParser(description="Serve this exported model over HTTP (see the top of serve.py).")
    parser.add_argument("--host", default="127.0.0.1",
                        help="the address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it "
                             "to the network)")
    parser.add_argument("--port", type=int, default=8000, help="the port (default 8000)")
    parser.add_argument("--workers", type=int, default=1, help="processes answering requests (default 1)")
    parser.add_argument("--max-rows", type=int, default=defaults.max_rows, help="rows per request")
    parser.add_argument("--max-request-mb", type=float, default=defaults.max_request_mb, help="MB per request")
    parser.add_argument("--max-images", type=int, default=defaults.max_images, help="images per request")
    parser.add_argument("--threads", type=int, default=0,
                        help="model threads per worker (default: the cores shared among the workers)")
    parser.add_argument("--no-batching", action="store_true", help="one model call per request")
    parser.add_argument("--no-access-log", action="store_true", help="do not log every request")
    args = parser.parse_args(argv)
    problem = _check_arguments(args)
    if problem:
        sys.stderr.write(problem + "\n")
        return 2
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    settings = Settings(args.max_rows, args.max_request_mb, args.max_images, not args.no_batching, threads)
    try:
        extra = predict.check_files()
        predict.load_preprocessor()
    except _input_errors() as exc:
        sys.stderr.write(" ".join(str(exc).split()) + "\n")
        return 2
    if extra:
        sys.stderr.write(f"Note: {', '.join(extra)} in the bundle folder did not come with the bundle.\n")
    os.environ.update(settings.to_environment())
    import uvicorn

    uvicorn.run("serve:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                access_log=not args.no_access_log, server_header=False, log_level="info")
    return 0


def _check_arguments(args: argparse.Namespace) -> str | None:
    """Why the options cannot be served (a busy port included), or None."""
    if not 0 < args.port < 65536:
        return f"--port {args.port} is not a port: give a number from 1 to 65535."
    for option, value in (("--workers", args.workers), ("--max-rows", args.max_rows),
                          ("--max-request-mb", args.max_request_mb), ("--max-images", args.max_images)):
        if not value > 0:
            return f"{option} must be above 0 (got {value})."
    try:
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((args.host, args.port))
    except OSError as exc:
        return (f"Cannot listen on {args.host}:{args.port} ({exc.strerror or exc}): pick another --port, or "
                "stop what is using it.")
    return None


if __name__ == "__main__":
    sys.exit(main())
