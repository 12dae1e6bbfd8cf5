"""Run one command in a fresh process and measure it: wall seconds and the child's own peak memory."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ChildRun:
    """What one child process did: exit code, output, wall seconds and peak resident memory."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_mb: float


def run_child(command: list[str], env: dict[str, str] | None = None) -> ChildRun:
    """Run ``command`` from the repository root and wait for it.

    The peak is the child's own (``os.wait4``'s rusage, KiB on Linux), not this process's, and the
    output goes through temporary files so a chatty child never blocks on a full pipe.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        out.seek(0), err.seek(0)
        return ChildRun(os.waitstatus_to_exitcode(status), out.read(), err.read(), seconds,
                        usage.ru_maxrss / 1024)
