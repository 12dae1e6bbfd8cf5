"""Running a bundle's serve.py as a real server and talking to it over HTTP on 127.0.0.1.

The server runs the unzipped ``serve.py`` under ``python -I`` with ``torch``, ``builder``,
``sklearn`` and ``streamlit`` made unimportable: it must live on its requirements alone.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

BLOCKED = ("torch", "builder", "sklearn", "streamlit")
RUN_WITHOUT_THE_APP = (
    "import runpy, sys; sys.modules.update(dict.fromkeys({blocked!r})); "
    "sys.argv = ['serve.py', *sys.argv[1:]]; runpy.run_path('serve.py', run_name='__main__')"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without PYTHON* variables (nothing can add the repo to the path)."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}, **extra}


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Server:
    """A running server: its process and address."""

    process: subprocess.Popen
    port: int

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                chunked: bool = False) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            if chunked:
                connection.putrequest(method, path)
                for key, value in (headers or {}).items():
                    connection.putheader(key, value)
                connection.putheader("Transfer-Encoding", "chunked")
                connection.endheaders()
                for start in range(0, len(body or b""), 65536):
                    piece = body[start:start + 65536]
                    connection.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                connection.send(b"0\r\n\r\n")
            else:
                connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return Reply(response.status, response.read(), response.getheader("content-type", ""))
        finally:
            connection.close()

    def post_json(self, payload: Any, path: str = "/predict") -> Reply:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.request("POST", path, body, {"Content-Type": "application/json"})

    def post_files(self, files: Sequence[tuple[str, str, bytes]], path: str = "/predict") -> Reply:
        body, content_type = multipart(files)
        return self.request("POST", path, body, {"Content-Type": content_type})

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server stopped with exit code {self.process.returncode}: "
                                     f"{self.process.stderr.read().decode() if self.process.stderr else ''}")
            with contextlib.suppress(OSError):
                if self.request("GET", "/health").status == 200:
                    return
            time.sleep(0.2)
        raise AssertionError("the server did not answer /health in time")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_bundle_server(folder: Path, *options: str) -> Server:
    """The unzipped bundle's serve.py in a fresh ``python -I`` without torch or the builder."""
    port = free_port()
    command = [sys.executable, "-I", "-c", RUN_WITHOUT_THE_APP.format(blocked=BLOCKED),
               "--port", str(port), "--no-access-log", *options]
    process = subprocess.Popen(command, cwd=folder, env=clean_environment(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    return Server(process, port)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def multipart(files: Sequence[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body of (field, file name, content) parts, and its Content-Type."""
    boundary = uuid.uuid4().hex
    parts = []
    for field, name, content in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
                     "Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def json_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A table as the API's rows: plain JSON values, ``None`` for a missing one, floats unrounded."""
    def plain(value: Any) -> Any:
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA or value is pd.NaT:
            return None
        return value.item() if isinstance(value, np.generic) else value if not isinstance(value, pd.Timestamp) else str(value)

    return [{str(k): plain(v) for k, v in row.items()} for row in frame.to_dict("records")]
