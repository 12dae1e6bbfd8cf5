"""Run one command in a fresh process and measure it: wall seconds and the child's own peak memory.

The peak is read from ``/proc/<pid>/status`` (``VmHWM``, the high-water mark of the child's own
memory since it started its program) while the child runs. The rusage ``os.wait4`` reports is no
measure of it: Linux carries the parent's peak into a child's ``ru_maxrss`` across fork and exec,
so a child that only prints reported 830 MB from a benchmark that had just written a 1M-row table.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POLL_S = 0.01  # how often the child's high-water mark is read (it only grows: a late read suffices)


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

    The output goes through temporary files so a chatty child never blocks on a full pipe. Off
    Linux the peak falls back to the rusage's ``ru_maxrss`` (see the module's note).
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=err, text=True)
        peak_kb = 0
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            peak_kb = max(peak_kb, _high_water_kb(child.pid))
            time.sleep(POLL_S)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        out.seek(0), err.seek(0)
        rusage_kb = usage.ru_maxrss / (1024 if sys.platform == "darwin" else 1)  # bytes on macOS
        return ChildRun(child.returncode, out.read(), err.read(), seconds, (peak_kb or rusage_kb) / 1024)


def _high_water_kb(pid: int) -> int:
    """The peak resident memory of process ``pid`` so far, in KiB (0 where /proc cannot say)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
