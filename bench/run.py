"""Time the engine's ``fit`` against the minimal loop on the PERFORMANCE.md workloads.

    python -m bench.run [--workload W1|W2|W3|W4|all] [--repeats N] [--rows N] [--threads N]

Each run happens in a fresh Python process (so peak memory is per run and no run warms another's
caches), alternating minimal / engine, with the same rows, thread count and initial weights. Both
get the same untimed warm-up (torch's first optimizer costs ~1.5 s of imports). The figure is
PERFORMANCE.md's: wall time of the whole training call (tensor wrapping and optimizer
construction included) divided by the epochs run.

- minimal: pre-built tensors, ``torch.randperm`` per epoch, slice, ``X[idx]``, forward, loss,
  backward, ``opt.step()`` with a plain ``torch.optim.Adam``; no DataLoader, no validation.
- engine: ``builder.train.fit`` as the app runs it: validation every epoch, a chart callback that
  records batch and epoch points under a lock, a ``TrainControl``, best checkpoint kept.

Run it on a quiet machine: other busy processes make torch's worker threads wait for cores and
can slow an epoch tenfold at random. Read the min over repeats; ``--threads 1`` is steadier on a
shared machine (the ratio stays fair: both sides get the same thread count).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.workloads import TRAIN_SEED, WORKLOADS, Split, Workload, test_metric

REPO = Path(__file__).resolve().parents[1]
IMPLS = ("minimal", "engine")
LOSSES = {
    "regression": nn.MSELoss,
    "binary": nn.BCEWithLogitsLoss,
    "multiclass": nn.CrossEntropyLoss,
}


# -- the two contestants (run inside a worker process) -------------------------------------------


def run_minimal(model: nn.Module, split: Split, wl: Workload) -> dict:
    """PERFORMANCE.md's minimal loop, timed as one call."""
    started = time.perf_counter()
    X = torch.from_numpy(split.X_train)  # (N, *input_shape)
    y = torch.from_numpy(split.y_train)  # (N, 1) or (N,)
    loss_fn = LOSSES[wl.task]()
    opt = torch.optim.Adam(model.parameters(), lr=wl.lr)
    torch.manual_seed(TRAIN_SEED)
    n = len(X)
    model.train()
    for _ in range(wl.epochs):
        perm = torch.randperm(n)  # (N,)
        for i in range(0, n, wl.batch_size):
            idx = perm[i : i + wl.batch_size]  # (B,)
            opt.zero_grad()
            loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
    return {"seconds": time.perf_counter() - started, "epochs": wl.epochs}


def run_engine(model: nn.Module, split: Split, wl: Workload) -> dict:
    """``builder.train.fit`` with what the app attaches: chart callback, control, validation."""
    from builder.train import Callback, TensorData, TrainConfig, TrainControl, fit

    class ChartRecorder(Callback):
        """What the job object does for the live chart: append points under a lock."""

        def __init__(self, started: float):
            self.started, self.first_event_s = started, None
            self.lock = threading.Lock()
            self.batch_points: list[tuple[int, float]] = []
            self.epoch_points: list[tuple[int, float, float]] = []

        def on_batch_end(self, step, logs):
            with self.lock:
                if self.first_event_s is None:
                    self.first_event_s = time.perf_counter() - self.started
                self.batch_points.append((step, logs["loss"]))

        def on_epoch_end(self, epoch, logs):
            with self.lock:
                self.epoch_points.append((epoch, logs["loss"], logs["val_loss"]))

    data = TensorData(split.X_train, split.y_train, split.X_val, split.y_val, split.y_scale)
    config = TrainConfig(
        epochs=wl.epochs, batch_size=wl.batch_size, lr=wl.lr, optimizer="adam", seed=TRAIN_SEED,
        device="cpu", early_stopping_patience=None,  # same number of epochs as the minimal loop
    )
    started = time.perf_counter()
    chart = ChartRecorder(started)
    result = fit(model, data, wl.task, config, callbacks=[chart], control=TrainControl())
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "epochs": result.history.epochs_run,
        "first_event_s": chart.first_event_s,
        "batch_events": len(chart.batch_points),
        "best_epoch": result.history.best_epoch,
    }


def warm_up() -> None:
    """Identical untimed warm-up for both: first optimizers (plain and fused) and autograd."""
    layer = nn.Linear(4, 1)
    for kwargs in ({}, {"fused": True}):
        opt = torch.optim.Adam(layer.parameters(), **kwargs)
        layer(torch.zeros(2, 4)).sum().backward()
        opt.step()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    Linux's ``ru_maxrss`` survives ``exec``, so a worker would report its parent's peak: read the
    peak of this process's own address space (VmHWM) instead where /proc has it.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker(impl: str, wl: Workload, data_path: Path, threads: int) -> dict:
    """One timed run in this (fresh) process; returns a JSON-ready record."""
    torch.set_num_threads(threads)
    split = load_split(data_path)
    warm_up()
    model = wl.build_model()
    rss_before = peak_rss_mb()
    record = (run_minimal if impl == "minimal" else run_engine)(model, split, wl)
    record["peak_rss_mb"] = peak_rss_mb()
    record["rss_before_mb"] = rss_before
    record["metric_name"], record["test_metric"] = test_metric(model, split, wl.task)
    record["s_per_epoch"] = record["seconds"] / record["epochs"]
    return record


# -- data hand-over between the parent and the workers ------------------------------------------


def save_split(split: Split, path: Path) -> None:
    np.savez(path, **{f.name: np.asarray(getattr(split, f.name)) for f in fields(Split)})


def load_split(path: Path) -> Split:
    with np.load(path) as arrays:
        values = {name: arrays[name] for name in arrays.files}
    values["y_scale"] = float(values["y_scale"])
    return Split(**values)


# -- the parent: alternate fresh processes, summarise -------------------------------------------


def run_in_subprocess(impl: str, name: str, data_path: Path, threads: int) -> dict:
    cmd = [sys.executable, "-m", "bench.run", "--worker", impl, "--workload", name,
           "--data", str(data_path), "--threads", str(threads)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{impl} run of {name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_workload(wl: Workload, rows: int, repeats: int, threads: int, folder: Path) -> dict:
    split = wl.make_split(rows)
    data_path = folder / f"{wl.name}.npz"
    save_split(split, data_path)
    print(f"\n{wl.name}: {wl.title}")
    print(f"  train {len(split.X_train)} / val {len(split.X_val)} / test {len(split.X_test)} rows, "
          f"{threads} threads, {repeats} repeats, fresh process per run")
    runs: dict[str, list[dict]] = {impl: [] for impl in IMPLS}
    for repeat in range(repeats):
        order = IMPLS if repeat % 2 == 0 else IMPLS[::-1]  # alternate who goes first
        for impl in order:
            record = run_in_subprocess(impl, wl.name, data_path, threads)
            runs[impl].append(record)
            extra = ""
            if impl == "engine":
                extra = f", first batch event {record['first_event_s']:.3f} s"
            print(f"  run {repeat + 1} {impl:8s} {record['s_per_epoch']:.4f} s/epoch, "
                  f"{record['metric_name']} {record['test_metric']:.4f}, "
                  f"peak RSS {record['peak_rss_mb']:.0f} MB{extra}")
    return summarise(wl, runs)


def summarise(wl: Workload, runs: dict[str, list[dict]]) -> dict:
    def stats(impl: str, key: str) -> tuple[float, float]:
        values = [r[key] for r in runs[impl]]
        return min(values), statistics.median(values)

    summary = {"workload": wl.name}
    metric_name = "test " + runs["engine"][0]["metric_name"]
    print(f"  {'':8s} {'s/epoch min':>12s} {'median':>9s} {metric_name:>14s} "
          f"{'peak RSS MB':>12s} {'(before fit)':>12s}")
    for impl in IMPLS:
        low, mid = stats(impl, "s_per_epoch")
        metric = statistics.median(r["test_metric"] for r in runs[impl])
        rss = statistics.median(r["peak_rss_mb"] for r in runs[impl])
        before = statistics.median(r["rss_before_mb"] for r in runs[impl])
        print(f"  {impl:8s} {low:12.4f} {mid:9.4f} {metric:14.4f} {rss:12.0f} {before:12.0f}")
        summary[impl] = {"s_per_epoch_min": low, "s_per_epoch_median": mid, "test_metric": metric,
                         "peak_rss_mb": rss}
    (e_min, e_med), (m_min, m_med) = stats("engine", "s_per_epoch"), stats("minimal", "s_per_epoch")
    rss_ratio = summary["engine"]["peak_rss_mb"] / summary["minimal"]["peak_rss_mb"]
    first = statistics.median(r["first_event_s"] for r in runs["engine"])
    print(f"  ratio engine/minimal: {e_min / m_min:.2f}x (min), {e_med / m_med:.2f}x (median); "
          f"peak RSS {rss_ratio:.2f}x; engine first batch event after {first:.3f} s (median)")
    summary.update(ratio_min=e_min / m_min, ratio_median=e_med / m_med, rss_ratio=rss_ratio,
                   first_event_s=first)
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--workload", default="all", choices=[*WORKLOADS, "all"])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each implementation")
    parser.add_argument("--rows", type=int, default=None,
                        help="total rows before the split (W1, W4: generated; W2/W3: a subsample)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads for both implementations (default: all cores)")
    parser.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:  # inside a fresh process: one timed run, one JSON line
        print(json.dumps(worker(args.worker, WORKLOADS[args.workload], args.data, args.threads)))
        return

    names = list(WORKLOADS) if args.workload == "all" else [args.workload]
    print(f"torch {torch.__version__}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        summaries = [
            bench_workload(WORKLOADS[n], args.rows or WORKLOADS[n].default_rows, args.repeats,
                           args.threads, Path(folder))
            for n in names
        ]
    print("\n" + json.dumps(summaries))


if __name__ == "__main__":
    main()
