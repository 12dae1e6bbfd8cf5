"""``python -m builder serve``: a bundle as a prediction service, run by the bundle's own serve.py.

The bundle is checked as a zip (paths, sizes) and unpacked into a private temporary folder; its
``serve.py`` then runs there in a child process with the same options, so the service answers
exactly as the bundle does anywhere else. The folder is removed when the service stops.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from builder.cli.args import FORMATTER, PROG, CliError, whole_number
from builder.cli.files import input_file

log = logging.getLogger("builder.cli")

SERVE_DESCRIPTION = """\
Serve a bundle as a prediction service on this machine (FastAPI on uvicorn). It runs the
bundle's own serve.py, which needs only the bundle's requirements-serve.txt, so what you test
here answers like the bundle does in a container elsewhere.

  POST /predict   {"rows": [{column: value, ...}, ...]} (null for a missing value), a table
                  file as the multipart field 'file', a CSV body (Content-Type: text/csv),
                  or images as the multipart field 'files' -> {"predictions": [...]}, the
                  same values as 'predict' writes to its CSV
  GET  /health    {"status": "ok"}
  GET  /model     the model's task, classes, metrics and the input schema of a row
  GET  /docs      how to call it (served from here; /openapi.json for tools)

Input the model cannot use gets status 422 and {"detail": "<one sentence>"}; a request over the
limits gets 413. It listens on 127.0.0.1 (this machine only) unless --host says otherwise.
"""
SERVE_EPILOG = f"""\
examples:
  {PROG} serve --bundle churn.zip
  {PROG} serve --bundle churn.zip --port 8080 --workers 4
  curl -H 'Content-Type: application/json' -d '{{"rows": [{{"age": 42, "plan": "basic"}}]}}' http://127.0.0.1:8000/predict

To scale out, run the bundle's Dockerfile in several containers behind a load balancer.
"""


def add_command(commands: argparse._SubParsersAction, debug: argparse.ArgumentParser) -> None:
    """Add the ``serve`` command and its options to ``commands`` (``debug``: the shared --debug)."""
    serve = commands.add_parser("serve", help="serve a bundle as a prediction service (HTTP API)",
                                description=SERVE_DESCRIPTION, epilog=SERVE_EPILOG, formatter_class=FORMATTER,
                                parents=[debug], allow_abbrev=False)
    serve.add_argument("--bundle", required=True, metavar="BUNDLE.zip",
                       help="a bundle written by 'train' or by the app's Export page")
    serve.add_argument("--host", default="127.0.0.1",
                       help="the address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it "
                            "to the network, with no authentication: only behind a proxy you trust)")
    serve.add_argument("--port", type=whole_number(1, 65535), default=8000, help="the port (default 8000)")
    serve.add_argument("--workers", type=whole_number(1, 64), default=1,
                       help="processes answering requests, each with the model loaded (default 1; about one "
                            "per core)")
    serve.add_argument("--max-rows", type=whole_number(1, 10_000_000), default=10_000, metavar="N",
                       help="rows per request (default 10,000; more get status 413)")
    serve.add_argument("--max-request-mb", type=whole_number(1, 4096), default=32, metavar="MB",
                       help="megabytes per request (default 32)")
    serve.add_argument("--max-images", type=whole_number(1, 100_000), default=256, metavar="N",
                       help="images per request, for an image model (default 256)")
    serve.add_argument("--no-batching", action="store_true",
                       help="one model call per request (by default requests that arrive while the model is "
                            "busy share one call)")
    serve.add_argument("--no-access-log", action="store_true", help="do not log every request")
    serve.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """``serve``: unpack the checked bundle and run its serve.py until stopped; its exit code."""
    from builder.export.reader import warn_unlisted
    from builder.safezip import open_zip, safe_extract
    from builder.workspaces import is_local_address

    bundle_file = input_file(args.bundle, "--bundle")
    folder = Path(tempfile.mkdtemp(prefix="builder-serve-"))
    try:
        with open_zip(bundle_file) as zf:
            if "serve.py" not in zf.namelist():
                raise CliError(f"{bundle_file.name} was exported before bundles could serve themselves (it has no "
                               "serve.py): export the model again from the app or with 'train'.")
            warn_unlisted(zf)  # serve.py checks what bundle.json lists; this names what it does not
            safe_extract(zf, folder)
        if not is_local_address(args.host):
            log.warning("Listening on %s: anyone who can reach this machine can use the model (there is no "
                        "authentication). Put it behind a proxy you trust.", args.host)
        command = [sys.executable, "serve.py", "--host", args.host, "--port", str(args.port),
                   "--workers", str(args.workers), "--max-rows", str(args.max_rows),
                   "--max-request-mb", str(args.max_request_mb), "--max-images", str(args.max_images)]
        command += ["--no-batching"] * args.no_batching + ["--no-access-log"] * args.no_access_log
        return _run_until_stopped(command, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_until_stopped(command: list[str], folder: Path) -> int:
    """Run the service in the foreground; Ctrl+C or SIGTERM stop it cleanly (its exit code)."""
    child = subprocess.Popen(command, cwd=folder)
    previous = signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    try:
        try:
            code = child.wait()
        except KeyboardInterrupt:  # the child got the same Ctrl+C and is shutting down
            code = child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if child.poll() is None:
            child.kill()
    # uvicorn ends a clean shutdown by raising the signal that asked for it again: a normal stop
    return 0 if code in (-signal.SIGTERM, -signal.SIGINT) else code

