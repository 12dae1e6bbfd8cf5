"""How long a fresh page takes to load while the app trains: idle against two trainings running.

    python -m bench.page_load [--rows N] [--loads N] [--workers N] [--json OUT]

Starts the app as README.md says (``streamlit run app.py``, on 127.0.0.1) with an empty home,
prepares two workspaces that each hold a table and a design, and measures with headless Chromium
how long a fresh visit takes until the Data page has drawn (its uploader visible): ``--loads``
times while nothing trains, then again while both workspaces train (each started from its Train
page's Start button). It prints the median and worst load, idle and busy, and their ratio; the
issue's bar is busy within 2x of idle. ``--workers 0`` measures the old way (training in the
server's threads) for comparison.

Needs Chromium (``apt-get install -y chromium``) and Playwright. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
READY = '[data-testid="stFileUploader"]'  # the Data page has drawn its uploader


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_app(home: Path, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "BUILDER_HOME": str(home), "BUILDER_TRAINING_WORKERS": str(workers)}
    log = (home / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address",
         "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit("the app did not start within 90 s")


def prepared_workspace(home: Path, rows: int, seed: int) -> str:
    """A workspace with a generated table and the starter MLP, ready for Start; its token."""
    from bench.rows_scaling import TARGET, make_table
    from builder.data import DataSpec
    from builder.templates import starter_spec
    from builder.workspace import Workspace

    table = make_table(rows, seed=seed)
    workspace = Workspace.open(None, home=home)
    workspace.save_table("table.csv", table.to_csv(index=False).encode())
    features = [c for c in table.columns if c != TARGET]
    workspace.save_state("data_spec", DataSpec(TARGET, "binary", features).to_dict())
    workspace.save_state("design", starter_spec("mlp", len(features), rows).to_dict())
    return workspace.token


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command line, CPU seconds so far), from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found[int(entry.name)] = (int(fields[1]), command, (int(fields[11]) + int(fields[12])) / tick)
    return found


def cpu_by_role(server_pid: int) -> dict[str, float]:
    """CPU seconds used so far by the app's server, its training workers, and Chromium."""
    processes = _processes()
    roles = {"server": 0.0, "workers": 0.0, "chromium": 0.0}
    for pid, (parent, command, seconds) in processes.items():
        if pid == server_pid:
            roles["server"] += seconds
        elif parent == server_pid and "multiprocessing" in command:
            roles["workers"] += seconds
        elif "chrom" in command:
            roles["chromium"] += seconds
    return roles


def load_seconds(browser, url: str) -> float:
    """A fresh visit (new context: no cache, new session) until the Data page has drawn."""
    context = browser.new_context()
    page = context.new_page()
    started = time.perf_counter()
    page.goto(url)
    page.locator(READY).first.wait_for(state="visible", timeout=180_000)
    seconds = time.perf_counter() - started
    context.close()
    return seconds


def measure(rows: int, loads: int, workers: int) -> dict:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    home = Path(tempfile.mkdtemp(prefix="page-load-"))
    tokens = [prepared_workspace(home, rows, seed) for seed in (1, 2)]
    process, url = start_app(home, workers)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox"])
            load_seconds(browser, url)  # the first visit pays the server's one-off imports
            idle = [load_seconds(browser, url) for _ in range(loads)]
            trainers = []
            for token in tokens:
                page = browser.new_page()
                page.goto(f"{url}/train?ws={token}")
                page.get_by_role("button", name="Start training").click(timeout=120_000)
                page.get_by_text("Epoch", exact=False).first.wait_for(state="visible", timeout=180_000)
                trainers.append(page)
            before, started = cpu_by_role(process.pid), time.monotonic()
            busy = [load_seconds(browser, url) for _ in range(loads)]
            after, window = cpu_by_role(process.pid), time.monotonic() - started
            # Where the two cores went while the trainings were watched: share of one core each.
            busy_cpu = {role: round((after[role] - before[role]) / window, 2) for role in after}
            still_training = all("Training finished" not in page.content() for page in trainers)
            for page in trainers:  # the same with nobody watching the trainings (no live charts)
                page.close()
            unwatched = [load_seconds(browser, url) for _ in range(loads)]
            browser.close()
    finally:
        process.terminate()
        process.wait(20)
        shutil.rmtree(home, ignore_errors=True)
    return {
        "workers": workers, "rows": rows, "loads": loads,
        "idle_median_s": round(statistics.median(idle), 2), "idle_max_s": round(max(idle), 2),
        "busy_median_s": round(statistics.median(busy), 2), "busy_max_s": round(max(busy), 2),
        "ratio_median": round(statistics.median(busy) / statistics.median(idle), 2),
        "cores_used_while_watched": busy_cpu,
        "unwatched_median_s": round(statistics.median(unwatched), 2),
        "unwatched_ratio": round(statistics.median(unwatched) / statistics.median(idle), 2),
        "both_still_training": still_training,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.page_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows of each training table (default 200,000)")
    parser.add_argument("--loads", type=int, default=5, help="page loads idle and busy (default 5)")
    parser.add_argument("--workers", type=int, default=2, help="training worker processes (0: threads)")
    parser.add_argument("--json", metavar="OUT", help="also write the figures to this file")
    args = parser.parse_args(argv)
    figures = measure(args.rows, args.loads, args.workers)
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
