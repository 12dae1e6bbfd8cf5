"""Time the whole command, CSV in to bundle out, against a minimal script doing the same job.

    python -m bench.command [--rows 200000] [--repeats 3] [--epochs 5] [--folder DIR] [--json OUT]

PERFORMANCE.md's bar: ``python -m builder train`` from a CSV to a written bundle within 1.25x "a
minimal script that reads the same CSV with pandas, trains the same epochs and saves the weights"
(``bench/minimal_command.py``). The data is W1's (``make_classification``: 50 numbers, a yes/no
target) written as a CSV; both train W1's network (Linear 256 - ReLU - Linear 256 - ReLU - head)
with Adam at 1e-3, batch 256, on 70% of the rows, with the same settings where the command has a
choice (no weight decay, a constant learning rate, no label smoothing, no early stop).

Every run is a fresh process; the two alternate, and each repeat reports wall seconds and the
child's own peak memory. The command also does what the script leaves out, and its log says how
long each part took: reading and profiling the table, preprocessing, validation every epoch,
the test score, the baseline, the ONNX export and its parity check, the run store. Those parts
are listed under the ratio so the gap has names.

Seconds on a shared machine vary with other processes: read the min over repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from bench.child import run_child

DATA_SEED = 0
TARGET = "label"
DESIGN = {"version": 1, "family": "mlp", "layers": [
    {"type": "Linear", "out_features": 256}, {"type": "ReLU"},
    {"type": "Linear", "out_features": 256}, {"type": "ReLU"},
]}
# The command's own log lines, and the part of the job each one times.
PART_LINES = {
    "training (with validation)": re.compile(r"training ended .* in (\d+(?:\.\d+)?) s"),
    "baseline": re.compile(r"baseline .* fitted in (\d+(?:\.\d+)?) s"),
    "ONNX export": re.compile(r"ONNX export took (\d+(?:\.\d+)?) s"),
    "bundle (export, parity, zip)": re.compile(r"bundle \S+ written in (\d+(?:\.\d+)?) s"),
}


def write_w1_csv(rows: int, path: Path) -> None:
    """W1's table (make_classification, 50 features, seed 0) as a CSV with a 0/1 ``label``."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=rows, n_features=50, n_informative=10, n_redundant=10,
                               random_state=DATA_SEED)
    table = pd.DataFrame(X.astype(np.float32), columns=[f"x{i}" for i in range(X.shape[1])])
    table[TARGET] = y
    table.to_csv(path, index=False)


def minimal_command(data: Path, folder: Path, epochs: int) -> list[str]:
    return [sys.executable, "-m", "bench.minimal_command", "--data", str(data), "--target", TARGET,
            "--out", str(folder / "minimal.pt"), "--epochs", str(epochs)]


def builder_command(data: Path, folder: Path, epochs: int) -> list[str]:
    design = folder / "design.json"
    design.write_text(json.dumps(DESIGN))
    return [sys.executable, "-m", "builder", "train", "--data", str(data), "--target", TARGET,
            "--spec", str(design), "--out", str(folder / "bundle.zip"), "--epochs", str(epochs),
            "--batch-size", "256", "--lr", "0.001", "--optimizer", "adam", "--weight-decay", "0",
            "--schedule", "constant", "--label-smoothing", "0", "--patience", "0",
            "--val-fraction", "0.15", "--test-fraction", "0.15", "--seed", "0"]


def run_once(name: str, command: list[str], env: dict[str, str]) -> dict:
    child = run_child(command, env)
    if child.returncode != 0:
        raise SystemExit(f"{name} failed (exit {child.returncode}):\n{child.stderr[-3000:]}")
    record = {"seconds": child.seconds, "peak_mb": child.peak_mb}
    if name == "builder":
        for part, line in PART_LINES.items():
            found = line.search(child.stderr)
            record[part] = float(found.group(1)) if found else None
        record["accuracy"] = json.loads(child.stdout.strip().splitlines()[-1])["metrics"]["test"]["accuracy"]
    else:
        record["training"] = json.loads(child.stdout.strip().splitlines()[-1])["train_s"]
    return record


def summarise(runs: dict[str, list[dict]]) -> dict:
    seconds = {name: [r["seconds"] for r in records] for name, records in runs.items()}
    summary = {
        "minimal_s": {"min": min(seconds["minimal"]), "median": statistics.median(seconds["minimal"])},
        "builder_s": {"min": min(seconds["builder"]), "median": statistics.median(seconds["builder"])},
        "peak_mb": {name: max(r["peak_mb"] for r in records) for name, records in runs.items()},
        "minimal_training_s": min(r["training"] for r in runs["minimal"]),
        "builder_parts_s": {part: min(r[part] for r in runs["builder"] if r[part] is not None)
                            for part in PART_LINES if any(r[part] is not None for r in runs["builder"])},
        "builder_accuracy": runs["builder"][0]["accuracy"],
    }
    summary["ratio_min"] = summary["builder_s"]["min"] / summary["minimal_s"]["min"]
    summary["ratio_median"] = summary["builder_s"]["median"] / summary["minimal_s"]["median"]
    return summary


def report(summary: dict) -> str:
    lines = [
        f"whole command: builder {summary['builder_s']['min']:.1f} s (median "
        f"{summary['builder_s']['median']:.1f}) / minimal script {summary['minimal_s']['min']:.1f} s "
        f"(median {summary['minimal_s']['median']:.1f})",
        f"ratio {summary['ratio_min']:.2f}x at the min, {summary['ratio_median']:.2f}x at the median "
        "(PERFORMANCE.md's bar: 1.25x)",
        f"peak memory: builder {summary['peak_mb']['builder']:.0f} MB, minimal "
        f"{summary['peak_mb']['minimal']:.0f} MB",
        f"builder test accuracy {summary['builder_accuracy']:.4f}",
        f"where the seconds go (min over repeats): the minimal script trains for "
        f"{summary['minimal_training_s']:.1f} s; the command:",
    ]
    lines += [f"  {part:30s} {seconds:5.1f} s" for part, seconds in summary["builder_parts_s"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.command", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--folder", type=Path, help="where the CSV and outputs go (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_command_") as scratch:
        folder = args.folder or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        data = folder / "w1.csv"
        write_w1_csv(args.rows, data)
        env = dict(os.environ, BUILDER_HOME=str(folder / "home"))  # the run store stays in the folder
        contestants = {"minimal": minimal_command(data, folder, args.epochs),
                       "builder": builder_command(data, folder, args.epochs)}
        print(f"{args.rows:,} rows x 50 numbers ({data.stat().st_size / 2**20:.0f} MB CSV), {args.epochs} "
              f"epochs, {args.repeats} repeats, fresh process per run, {os.cpu_count()} cores")
        runs: dict[str, list[dict]] = {name: [] for name in contestants}
        for repeat in range(args.repeats):
            order = list(contestants) if repeat % 2 == 0 else list(contestants)[::-1]
            for name in order:
                record = run_once(name, contestants[name], env)
                runs[name].append(record)
                print(f"  run {repeat + 1} {name:8s} {record['seconds']:6.2f} s, peak {record['peak_mb']:.0f} MB")
        summary = summarise(runs)
    print(report(summary))
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
