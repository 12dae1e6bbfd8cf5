"""Fuzz: a few hundred generated malformed tables, image zips, designs and bundles (tests/fuzz_inputs.py).

Each must give a clean result or the builder's own error in one sentence, never another exception,
and the whole run must stay within a bounded peak memory (it runs in its own process, so its peak
is its own).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CASES = 350
PEAK_MB = 1500


def test_malformed_inputs_give_a_result_or_the_builders_own_error():
    result = subprocess.run([sys.executable, "-m", "tests.fuzz_inputs", "--cases", str(CASES), "--seed", "0"],
                            cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=600)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    failures = "\n\n".join(f"{f['case']}: {f['error']}\n{f.get('traceback', '')}" for f in summary["failures"])
    assert not summary["failures"], failures
    assert result.returncode == 0, result.stderr[-2000:]
    outcomes = summary["outcomes"]
    assert sum(outcomes.values()) == CASES
    # The damage must reach the parsers: many cases refused with the builder's errors, some still clean.
    assert outcomes.get("DataError", 0) > 50 and outcomes.get("BundleError", 0) > 5 and outcomes.get("clean", 0) > 20
    assert summary["peak_mb"] < PEAK_MB, summary["peak_mb"]
