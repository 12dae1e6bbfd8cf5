"""How ``python -m builder train`` scales with rows: a 20-column table at 10k, 100k, 1M (5M) rows.

    python -m bench.rows_scaling [--rows 10000,100000,1000000] [--epochs N] [--threads N]
                                 [--device cpu] [--folder DIR] [--keep] [--json OUT]

For each size it writes a CSV of a fixed-seed table (14 columns of numbers, 2 of counts, 3 of
categories, a yes/no target; a few percent missing in 5 of them), then runs
``python -m builder train --data FILE --target churned --epochs N`` (default 2) in a fresh process
and reports:

- s/epoch: the median time of the epochs the command logged after the first (training and
  validation; the first also pays one-off start-up costs);
- command s: the whole command, process start to bundle written (reading, profiling,
  preprocessing, training, evaluation, baseline, ONNX export);
- peak RSS: the child's own peak resident memory (its ``resource`` usage, from ``os.wait4``);
- tensors: the float32 input tensor of all rows (rows x encoded inputs x 4 bytes), the yardstick
  of the issue's "peak memory within about 2x the float32 training tensors plus the interpreter";
- file MB and the time the reader (``builder.data.read_table``) takes alone, in this process.

Seconds on a shared machine vary with the load of other processes: read the figures as a shape
(linear in rows or not), and rerun on a quiet machine for absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.child import run_child

DATA_SEED = 0
TARGET = "churned"
N_NUMBERS = 14
CATEGORIES = {
    "region": ["north", "south", "east", "west", "centre"],
    "plan": ["basic", "plus", "pro"],
    "channel": ["web", "shop", "phone", "partner"],
}
MISSING = {"x1": 0.05, "x4": 0.02, "x9": 0.10, "visits": 0.01, "region": 0.03}
DEFAULT_ROWS = (10_000, 100_000, 1_000_000)
DEFAULT_EPOCHS = 2
EPOCH_LINE = re.compile(r"epoch (\d+)/\d+: .*\((\d+(?:\.\d+)?) s\)")


def make_table(n: int, seed: int = DATA_SEED) -> pd.DataFrame:
    """The benchmark table: ``n`` rows x 20 columns with a learnable yes/no ``churned``.

    Columns: ``x1``..``x14`` (numbers, 6 decimals), ``visits`` and ``tickets`` (counts), ``region``,
    ``plan``, ``channel`` (categories), ``churned`` ('yes'/'no', about 30% yes). ``x1``, ``x4``,
    ``x9``, ``visits`` and ``region`` have 1-10% missing values. The same ``n`` and ``seed`` give
    the same table.
    """
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    numbers = rng.standard_normal((n, N_NUMBERS)).astype(np.float64)
    numbers[:, 1] = numbers[:, 1] * 1_000 + 50_000  # a money-sized column
    numbers[:, 2] = np.exp(numbers[:, 2])  # a skewed one
    for j in range(N_NUMBERS):
        columns[f"x{j + 1}"] = numbers[:, j].round(6)
    visits = rng.poisson(3, n)
    tickets = rng.poisson(0.5, n)
    columns["visits"], columns["tickets"] = visits.astype(np.float64), tickets
    picks = {name: rng.integers(0, len(values), n) for name, values in CATEGORIES.items()}
    for name, values in CATEGORIES.items():
        columns[name] = np.asarray(values, dtype=object)[picks[name]]
    score = (0.8 * numbers[:, 0] - 0.6 * numbers[:, 3] + 0.5 * numbers[:, 5] * numbers[:, 6]
             + 0.3 * (visits - 3) - 0.7 * tickets + 0.6 * (picks["plan"] == 0) - 0.4 * (picks["region"] == 2)
             + rng.normal(0, 0.8, n))
    columns[TARGET] = np.where(score > np.quantile(score, 0.7), "yes", "no").astype(object)
    df = pd.DataFrame(columns)
    for name, share in MISSING.items():
        holes = rng.random(n) < share
        df[name] = df[name].where(~holes)
    return df


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Write ``df`` as a plain UTF-8 CSV (pyarrow's writer when installed: 1M rows in ~2 s)."""
    try:
        import pyarrow as pa
        from pyarrow import csv as pa_csv
    except ImportError:
        df.to_csv(path, index=False)
        return
    table = pa.Table.from_pandas(df, preserve_index=False)
    # No value needs quotes (numbers and single words), so none are written, as Excel writes it.
    pa_csv.write_csv(table, path, pa_csv.WriteOptions(quoting_style="none"))


def encoded_width(df: pd.DataFrame) -> int:
    """Inputs the network reads per row, from the app's own preprocessing fitted on a sample."""
    from builder.data import DataSpec, profile_table, suggest_features
    from builder.data.sources import prepare_data

    sample = df.head(5_000)
    features = suggest_features(profile_table(sample), TARGET)
    prepared = prepare_data(sample, DataSpec(TARGET, "binary", list(features)))
    return int(np.prod(prepared.input_shape))


def run_size(n: int, folder: Path, epochs: int, threads: int | None, device: str = "cpu") -> dict:
    """Write the table of ``n`` rows, train on it in a fresh process, and measure."""
    df = make_table(n)
    width = encoded_width(df)
    data = folder / f"rows_{n}.csv"
    write_csv(df, data)
    del df
    from builder.data import read_table

    started = time.perf_counter()
    read_table(data, max_bytes=2**40)
    read_s = time.perf_counter() - started
    command = [sys.executable, "-m", "builder", "train", "--data", str(data), "--target", TARGET,
               "--out", str(folder / f"rows_{n}.zip"), "--epochs", str(epochs), "--patience", "0",
               "--seed", "0", "--device", device]
    env = dict(os.environ, BUILDER_HOME=str(folder / "home"))  # the run store's copy stays in the folder
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    child = run_child(command, env)
    if child.returncode != 0:
        raise SystemExit(f"train failed on {n} rows (exit {child.returncode}):\n{child.stderr[-3000:]}")
    stdout, stderr = child.stdout, child.stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    # The first epoch also pays one-off costs (torch's first optimizer step imports ~1.5 s of code).
    all_epochs = [float(m.group(2)) for m in EPOCH_LINE.finditer(stderr)]
    epoch_s = all_epochs[1:]
    per_epoch = statistics.median(epoch_s) if epoch_s else summary["seconds"] / max(1, summary["epochs_run"])
    return {
        "rows": n,
        "file_mb": data.stat().st_size / 2**20,
        "read_s": read_s,
        "epochs": summary["epochs_run"],
        "s_per_epoch": per_epoch,
        "epoch_s": all_epochs,
        "device": summary["device"],
        "command_s": child.seconds,
        "peak_mb": child.peak_mb,
        "inputs": width,
        "tensor_mb": n * width * 4 / 2**20,
        "metric": summary["metrics"]["test"].get("accuracy"),
    }


def table(results: list[dict]) -> str:
    """The results as a Markdown table."""
    lines = ["| rows | file MB | read s | s/epoch | command s | peak RSS MB | float32 inputs MB (width) | "
             "peak / inputs | test accuracy |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['rows']:,} | {r['file_mb']:,.1f} | {r['read_s']:.2f} | {r['s_per_epoch']:.2f} | "
                     f"{r['command_s']:.1f} | {r['peak_mb']:,.0f} | {r['tensor_mb']:,.1f} ({r['inputs']}) | "
                     f"{r['peak_mb'] / r['tensor_mb']:.1f}x | {r['metric']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rows_scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default=",".join(map(str, DEFAULT_ROWS)),
                        help="sizes, comma-separated, e.g. 10000,100000,1000000,5000000")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"epochs per run (default {DEFAULT_EPOCHS})")
    parser.add_argument("--threads", type=int, help="torch/OpenMP threads of the child (default: all cores)")
    parser.add_argument("--device", default="cpu", help="the child's --device (default: cpu)")
    parser.add_argument("--folder", help="where the CSVs and bundles go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the CSVs and bundles")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    sizes = sorted(int(float(s)) for s in args.rows.split(",") if s.strip())
    with tempfile.TemporaryDirectory(prefix="rows_scaling_") as scratch:
        folder = Path(args.folder) if args.folder else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        results = []
        for n in sizes:
            results.append(run_size(n, folder, args.epochs, args.threads, args.device))
            r = results[-1]
            print(f"{n:>10,} rows: {r['s_per_epoch']:.2f} s/epoch, {r['command_s']:.1f} s command, "
                  f"peak {r['peak_mb']:,.0f} MB", file=sys.stderr, flush=True)
            if not args.keep:
                for suffix in (".csv", ".zip"):
                    (folder / f"rows_{n}{suffix}").unlink(missing_ok=True)
        if not args.keep:
            shutil.rmtree(folder / "home", ignore_errors=True)  # the run store the children kept
    print(f"{results[0]['device'] if results else args.device}, {args.epochs} epochs per run")
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
