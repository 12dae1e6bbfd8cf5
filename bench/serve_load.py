"""Load test of a served bundle on 127.0.0.1: latency and throughput at concurrency 1, 8 and 32.

    python -m bench.serve_load [--requests N] [--rows K] [--workers W] [--json OUT]

Trains a model on breast cancer (scikit-learn's bundled copy) with ``python -m builder train``,
serves it with ``python -m builder serve`` on a free port of 127.0.0.1 (the bundle's own serve.py),
and sends a fixed number of ``POST /predict`` requests of K rows each at every concurrency (client
threads on keep-alive connections). It prints p50 and p99 latency, throughput and errors, first with
the server's batching of concurrent requests, then with ``--no-batching``. The reference row is the
same rows predicted in one process by the bundle's own ``predict.Model`` (no HTTP, no JSON): the
floor that serving adds to. Every answer is compared with ``python -m builder predict``'s CSV of
the same rows: the same labels, probabilities within 1e-6.

The client runs on the same cores as the server, so on a small machine its own CPU use caps the
throughput; nothing but 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from bench.page_load import free_port

REPO = Path(__file__).resolve().parents[1]
CONCURRENCY = (1, 8, 32)


def make_bundle(folder: Path) -> tuple[Path, pd.DataFrame]:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "malignant", 1: "benign"})
    frame.to_csv(folder / "cancer.csv", index=False)
    subprocess.run([sys.executable, "-m", "builder", "train", "--data", str(folder / "cancer.csv"), "--target",
                    "target", "--out", str(folder / "cancer.zip"), "--epochs", "20", "--seed", "0"],
                   cwd=REPO, check=True, capture_output=True)
    return folder / "cancer.zip", frame.drop(columns=["target"])


def start_server(bundle: Path, workers: int, batching: bool) -> tuple[subprocess.Popen, int]:
    port = free_port()
    command = [sys.executable, "-m", "builder", "serve", "--bundle", str(bundle), "--port", str(port),
               "--workers", str(workers), "--no-access-log", *(() if batching else ("--no-batching",))]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not start within 120 s")


class Client:
    """One keep-alive connection per thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.local = threading.local()

    def post(self, body: bytes) -> tuple[float, int, bytes]:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = self.local.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        started = time.perf_counter()
        try:
            connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = response.read()
            status = response.status
        except OSError:
            self.local.connection = None
            return time.perf_counter() - started, 0, b""
        return time.perf_counter() - started, status, answer


def load(port: int, bodies: list[bytes], concurrency: int) -> dict:
    client = Client(port)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(client.post, bodies))
    seconds = time.perf_counter() - started
    latencies = sorted(r[0] for r in results)
    answers = [json.loads(r[2])["predictions"] if r[1] == 200 else None for r in results]
    return {
        "concurrency": concurrency,
        "requests": len(bodies),
        "errors": sum(r[1] != 200 for r in results),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "requests_per_s": len(bodies) / seconds,
        "answers": answers,
    }


def in_process_reference(bundle: Path, rows: list[pd.DataFrame], folder: Path) -> dict:
    """The same predictions by the bundle's predict.Model in this process: no HTTP, no JSON."""
    import zipfile

    unpacked = folder / "unpacked"
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(unpacked)
    code = (
        "import json, sys, time, pandas as pd; sys.path.insert(0, '.'); import predict; "
        "m = predict.Model(); rows = pd.read_csv(sys.argv[1]); k = int(sys.argv[2]); lat = []\n"
        "for start in range(0, len(rows), k):\n"
        "    t = time.perf_counter(); m.predict(rows.iloc[start:start + k]); lat.append(time.perf_counter() - t)\n"
        "print(json.dumps(lat))"
    )
    every = pd.concat(rows, ignore_index=True)
    every.to_csv(folder / "every.csv", index=False)
    result = subprocess.run([sys.executable, "-c", code, str(folder / "every.csv"), str(len(rows[0]))],
                            cwd=unpacked, capture_output=True, text=True, check=True)
    latencies = sorted(json.loads(result.stdout))
    return {"p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
            "requests_per_s": len(latencies) / sum(latencies)}


def check_identical(answers: list[list[dict]], expected: pd.DataFrame) -> float:
    """Largest probability difference against the CLI; labels must match exactly."""
    flat = [item for answer in answers for item in answer]
    assert len(flat) == len(expected), (len(flat), len(expected))
    got = pd.DataFrame(flat)
    assert got["prediction"].tolist() == expected["prediction"].tolist(), "labels differ from builder predict"
    columns = [c for c in got.columns if c.startswith("probability_")]
    return float(np.abs(got[columns].to_numpy(float) - expected[columns].to_numpy(float)).max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per concurrency level")
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="server processes")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        folder = Path(tmp)
        bundle, table = make_bundle(folder)
        picks = [table.iloc[[(i * args.rows + j) % len(table) for j in range(args.rows)]] for i in range(args.requests)]
        bodies = [json.dumps({"rows": chunk.to_dict("records")}).encode() for chunk in picks]
        pd.concat(picks, ignore_index=True).to_csv(folder / "requests.csv", index=False)
        subprocess.run([sys.executable, "-m", "builder", "predict", "--bundle", str(bundle), "--data",
                        str(folder / "requests.csv"), "--out", str(folder / "expected.csv")],
                       cwd=REPO, check=True, capture_output=True)
        expected = pd.read_csv(folder / "expected.csv")
        reference = in_process_reference(bundle, picks, folder)
        figures = {"rows_per_request": args.rows, "workers": args.workers, "cores": os.cpu_count(),
                   "in_process": reference, "runs": []}
        print(f"{args.requests} requests of {args.rows} row(s) per level, {args.workers} worker(s), "
              f"{os.cpu_count()} cores, 127.0.0.1")
        print(f"{'mode':<12}{'conc.':>6}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}{'errors':>8}{'max diff':>10}")
        print(f"{'in-process':<12}{'1':>6}{reference['p50_ms']:>9.2f}{reference['p99_ms']:>9.2f}"
              f"{reference['requests_per_s']:>9.0f}{'-':>8}{'-':>10}")
        for batching in (True, False):
            process, port = start_server(bundle, args.workers, batching)
            try:
                load(port, bodies[: min(50, len(bodies))], 4)  # warm every worker
                for concurrency in CONCURRENCY:
                    run = load(port, bodies, concurrency)
                    difference = check_identical(run.pop("answers"), expected) if not run["errors"] else float("nan")
                    run.update(mode="batching" if batching else "per request", max_difference=difference)
                    figures["runs"].append(run)
                    print(f"{run['mode']:<12}{concurrency:>6}{run['p50_ms']:>9.2f}{run['p99_ms']:>9.2f}"
                          f"{run['requests_per_s']:>9.0f}{run['errors']:>8}{difference:>10.1e}")
            finally:
                process.terminate()
                process.wait(timeout=30)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0 if all(run["errors"] == 0 for run in figures["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
