"""Does the default network beat the simple reference on real data? One table says.

    python -m bench.quality [--sets titanic,concrete,...] [--seeds 0,1,2] [--search-minutes F]
                            [--no-search] [--json OUT.json]

Protocol (issue 8): each real data set of ``bench.quality_data`` is split 80/20 with
``train_test_split(random_state=0)`` (a series: the newest 20% in time). The network is trained by
``python -m builder train`` exactly as a user would run it, with default settings, on the 80% file
only (``--test-data`` scores it on the 20% file), once per seed; the table shows the median over
the seeds. The reference is the best of the app's own baseline (reported by the same command, on the
same rows) and, for tables and images, a 300-tree random forest fitted on the same 80%. Metrics:
accuracy for classes, R2 for regression, MAE for forecasts. A tie is within 1 accuracy point,
0.01 R2 or 2% MAE. With a search budget, ``--auto --budget-minutes`` runs too (seed 0 only).

Extra packages: ``pip install -r bench/requirements-quality.txt`` and, for Fashion-MNIST,
``apt-get install dataset-fashion-mnist``. Nothing is downloaded at run time.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from bench.quality_data import DATASETS, QualityDataset

TEST_SHARE = 0.2
SPLIT_SEED = 0
FOREST_TREES = 300
METRIC = {"binary": "accuracy", "multiclass": "accuracy", "regression": "r2", "forecast": "mae"}
HIGHER_IS_BETTER = {"accuracy": True, "r2": True, "mae": False}


@dataclass
class Outcome:
    """One data set's row of the table."""

    name: str
    metric: str
    network: list[float] = field(default_factory=list)  # one per seed
    seconds: list[float] = field(default_factory=list)
    baseline_name: str = ""
    baseline: float = float("nan")  # the app's own baseline, same rows
    forest: float | None = None  # the 300-tree random forest (tables and images)
    searched: float | None = None  # the --auto search's test metric
    search_seconds: float | None = None
    model: str = ""

    @property
    def reference(self) -> float:
        values = [v for v in (self.baseline, self.forest) if v is not None and np.isfinite(v)]
        return max(values) if HIGHER_IS_BETTER[self.metric] else min(values)

    @property
    def median(self) -> float:
        return float(statistics.median(self.network))

    def verdict(self, value: float | None) -> str:
        if value is None:
            return "-"
        ref = self.reference
        if self.metric in ("accuracy", "r2"):  # a tie is within 1 accuracy point or 0.01 R2
            gap = value - ref
            return "win" if gap > 0.01 else "tie" if gap >= -0.01 else "loss"
        ratio = value / ref  # MAE: lower is better
        return "win" if ratio < 0.98 else "tie" if ratio <= 1.02 else "loss"


# -- running the CLI ---------------------------------------------------------------------------


def run_cli(argv: list[str]) -> dict:
    """``python -m builder train ...`` in this process; returns its JSON summary."""
    from builder.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    if code != 0:
        raise RuntimeError(f"builder {' '.join(argv)} exited with {code}")
    return json.loads(out.getvalue().strip().splitlines()[-1])


def _split_files(data: QualityDataset, folder: Path) -> tuple[list[str], pd.DataFrame | None, pd.DataFrame | None]:
    """Write the 80% and 20% files; returns the CLI's data options and the two frames (tables)."""
    loaded = data.load()
    if data.kind == "images":
        train_zip, test_zip = _split_zip(loaded)
        (folder / "train.zip").write_bytes(train_zip)
        (folder / "test.zip").write_bytes(test_zip)
        return ["--data", str(folder / "train.zip"), "--test-data", str(folder / "test.zip")], None, None
    df = loaded
    if data.kind == "series":
        path = folder / "series.csv"
        df.to_csv(path, index=False)
        return ["--data", str(path), "--task", "forecast", "--target", data.target,
                "--test-fraction", str(TEST_SHARE)], None, None
    train, test = train_test_split(df, test_size=TEST_SHARE, random_state=SPLIT_SEED)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    options = ["--data", str(folder / "train.csv"), "--test-data", str(folder / "test.csv"),
               "--target", data.target]
    return options, train, test


def _split_zip(content: bytes) -> tuple[bytes, bytes]:
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        names = sorted(n for n in zf.namelist() if not n.endswith("/"))
        train, test = train_test_split(names, test_size=TEST_SHARE, random_state=SPLIT_SEED)
        parts = []
        for chosen in (train, test):
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as out:
                for name in chosen:
                    out.writestr(name, zf.read(name))
            parts.append(buffer.getvalue())
    return parts[0], parts[1]


# -- the random forest reference ---------------------------------------------------------------


def forest_score(data: QualityDataset, train: pd.DataFrame, test: pd.DataFrame) -> float:
    """A 300-tree random forest on the same rows (numbers imputed, categories one-hot)."""
    X_train, y_train = train.drop(columns=data.target), train[data.target]
    X_test, y_test = test.drop(columns=data.target), test[data.target]
    numeric = [c for c in X_train.columns if pd.api.types.is_numeric_dtype(X_train[c])]
    other = [c for c in X_train.columns if c not in numeric]
    encode = ColumnTransformer([
        ("numbers", SimpleImputer(strategy="median"), numeric),
        ("categories", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                                     OneHotEncoder(handle_unknown="ignore", min_frequency=5)), other),
    ])
    if data.task == "regression":
        model = RandomForestRegressor(FOREST_TREES, random_state=SPLIT_SEED, n_jobs=-1)
        return float(r2_score(y_test, make_pipeline(encode, model).fit(X_train, y_train).predict(X_test)))
    model = RandomForestClassifier(FOREST_TREES, random_state=SPLIT_SEED, n_jobs=-1)
    y_train, y_test = y_train.astype(str), y_test.astype(str)
    return float(accuracy_score(y_test, make_pipeline(encode, model).fit(X_train, y_train).predict(X_test)))


def image_forest_score(folder: Path) -> float:
    """A 300-tree random forest on the raw pixels of the same pictures."""
    from builder.data.images import read_image_zip

    arrays = []
    for name in ("train.zip", "test.zip"):
        images = read_image_zip(folder / name)
        pixels = np.stack([np.asarray(image.convert("L"), dtype=np.float32).ravel() for image in images.images])
        arrays.append((pixels, np.asarray(images.labels)))
    (X_train, y_train), (X_test, y_test) = arrays
    model = RandomForestClassifier(FOREST_TREES, random_state=SPLIT_SEED, n_jobs=-1).fit(X_train, y_train)
    return float(accuracy_score(y_test, model.predict(X_test)))


# -- the benchmark -----------------------------------------------------------------------------


def bench_one(data: QualityDataset, seeds: list[int], search_minutes: float | None) -> Outcome:
    metric = METRIC[data.task]
    outcome = Outcome(data.name, metric)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        options, train, test = _split_files(data, folder)
        for seed in seeds:
            started = time.perf_counter()
            summary = run_cli(["train", *options, "--seed", str(seed), "--out", str(folder / f"s{seed}.zip")])
            outcome.seconds.append(time.perf_counter() - started)
            outcome.network.append(float(summary["metrics"]["test"][metric]))
            outcome.model = summary["model"]
            if seed == seeds[0]:
                outcome.baseline_name = summary["baseline"]["name"]
                outcome.baseline = float(summary["baseline"]["test"][metric])
        if data.kind == "table":
            outcome.forest = forest_score(data, train, test)
        elif data.kind == "images":
            outcome.forest = image_forest_score(folder)
        if search_minutes:
            started = time.perf_counter()
            summary = run_cli(["train", *options, "--seed", str(seeds[0]), "--auto", "--budget-minutes",
                               str(search_minutes), "--out", str(folder / "search.zip")])
            outcome.search_seconds = time.perf_counter() - started
            outcome.searched = float(summary["metrics"]["test"][metric])
    return outcome


def format_table(outcomes: list[Outcome]) -> str:
    header = ("data set", "metric", "network (median)", "seeds", "reference", "verdict", "search",
              "verdict", "seconds")
    rows = [header]
    for o in outcomes:
        ref_name = "random forest" if o.forest is not None and o.reference == o.forest else o.baseline_name
        rows.append((
            o.name, o.metric, f"{o.median:.4f} ({o.model})", " / ".join(f"{v:.4f}" for v in o.network),
            f"{o.reference:.4f} ({ref_name})", o.verdict(o.median),
            "-" if o.searched is None else f"{o.searched:.4f}", o.verdict(o.searched),
            f"{statistics.median(o.seconds):.0f}" + ("" if o.search_seconds is None else f" + {o.search_seconds:.0f}"),
        ))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    wins = sum(o.verdict(o.median) in ("win", "tie") for o in outcomes)
    lines.append(f"\ndefault network wins or ties on {wins} of {len(outcomes)}")
    if any(o.searched is not None for o in outcomes):
        searched = sum(o.verdict(o.searched) in ("win", "tie") for o in outcomes)
        lines.append(f"search wins or ties on {searched} of {len(outcomes)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(n for n in DATASETS if n != "mnist_digits"),
                        help="comma-separated data set names (default: all but the MNIST fallback)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--search-minutes", type=float, default=1.0)
    parser.add_argument("--no-search", action="store_true")
    parser.add_argument("--json", help="also write the outcomes here")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    outcomes = []
    for name in args.sets.split(","):
        outcome = bench_one(DATASETS[name], seeds, None if args.no_search else args.search_minutes)
        outcomes.append(outcome)
        sys.stderr.write(f"{name}: network {outcome.network} reference {outcome.reference:.4f}\n")
    sys.stdout.write(format_table(outcomes) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps([o.__dict__ for o in outcomes], indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
