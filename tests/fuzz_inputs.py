"""Generated malformed tables, image zips, designs and bundles, and what the builder does with each.

    python -m tests.fuzz_inputs [--cases N] [--seed S]     # prints one JSON summary line

Every case starts from a valid file (a messy generated table written as CSV, TSV, Excel, Parquet,
JSON or JSON lines; an image zip; a design; an exported bundle) and breaks it in one seeded way:
truncated, bytes flipped, inserted or zeroed, a region repeated, an inner member of a zip broken or
removed, a JSON value given the wrong type, an absurd size or a deep nesting; a bundle's hashes are
recomputed after a member is changed, so the damage reaches the parsers behind the hash check.
Each case goes through what the app and the command line run on such a file: ``read_table`` then
``profile_table``; ``read_image_zip``; ``ModelSpec.from_dict``; ``read_bundle`` then a prediction.
The only acceptable outcomes are a clean result or the builder's own error (``BuilderError``, one
plain sentence); anything else is reported with its traceback. The summary carries this process's
peak memory, so a test can bound it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import resource
import sys
import traceback
import zipfile
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from builder.errors import BuilderError

Case = tuple[str, Callable[[], Any]]


# --- byte-level damage -----------------------------------------------------------------------------


def damage(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """One seeded way of breaking a file's bytes, and its name."""
    n = len(data)
    at = int(rng.integers(0, max(n, 1)))
    how = str(rng.choice(["truncate", "flip", "insert", "zero", "repeat", "nul", "utf8", "shuffle"]))
    if how == "truncate":
        return how, data[:at]
    if how == "flip":
        out = bytearray(data)
        for i in rng.integers(0, max(n, 1), size=int(rng.integers(1, 24))):
            if n:
                out[int(i)] ^= int(rng.integers(1, 256))
        return how, bytes(out)
    if how == "insert":
        return how, data[:at] + rng.bytes(int(rng.integers(1, 64))) + data[at:]
    if how == "zero":
        return how, data[:at] + bytes(min(int(rng.integers(1, 512)), n - at)) + data[at + 512:]
    if how == "repeat":
        piece = data[at:at + int(rng.integers(1, 2048))]
        return how, data[:at] + piece * int(rng.integers(2, 50)) + data[at:]
    if how == "nul":
        return how, data[:at] + b"\x00" * int(rng.integers(1, 32)) + data[at:]
    if how == "utf8":
        return how, data[:at] + b"\xff\xfe\xc3\x28\xa0\xa1" + data[at:]
    chunks = [data[i:i + 256] for i in range(0, n, 256)]
    rng.shuffle(chunks)
    return how, b"".join(chunks)


def damage_zip_member(data: bytes, rng: np.random.Generator, rehash: bool = False) -> tuple[str, bytes]:
    """Break one member of a zip (its content, or remove it) and zip it again."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    names = [n for n in members if n != "bundle.json"] or list(members)
    name = str(rng.choice(names))
    if rng.random() < 0.15:
        del members[name]
        how = f"remove {name}"
    elif name.endswith(".json") and rng.random() < 0.7:
        how, members[name] = _damage_json(members[name], rng)
        how = f"{how} in {name}"
    else:
        how, members[name] = damage(members[name], rng)
        how = f"{how} {name}"
    if rehash and "bundle.json" in members:
        manifest = json.loads(members["bundle.json"])
        manifest["files"] = {n: hashlib.sha256(b).hexdigest() for n, b in members.items() if n != "bundle.json"}
        members["bundle.json"] = json.dumps(manifest).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, content in members.items():
            zf.writestr(member, content)
    return how, buffer.getvalue()


WRONG_VALUES: list[Any] = [None, "text", -1, 0, 1e308, float("nan"), [], {}, [1, "a", None], True, "9" * 400,
                           {"nested": [[[[]]]]}]


def _damage_json(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """A JSON value replaced by one of the wrong type, removed, or buried deep."""
    try:
        value = json.loads(data)
    except ValueError:
        return damage(data, rng)
    paths = list(_paths(value))
    if not paths:
        return "deep", ("[" * 50_000 + "]" * 50_000).encode()
    path = paths[int(rng.integers(0, len(paths)))]
    choice = rng.random()
    if choice < 0.1:
        return "deep", ("[" * 50_000 + "]" * 50_000).encode()
    parent = value
    for key in path[:-1]:
        parent = parent[key]
    if choice < 0.3 and isinstance(parent, dict):
        del parent[path[-1]]
        return f"remove {_show(path)}", json.dumps(value).encode()
    parent[path[-1]] = WRONG_VALUES[int(rng.integers(0, len(WRONG_VALUES)))]
    return f"set {_show(path)}", json.dumps(value, allow_nan=True).encode()


def _paths(value: Any, prefix: tuple = (), limit: int = 400):
    """Paths to values inside a JSON document (breadth first, bounded)."""
    queue, seen = [(prefix, value)], 0
    while queue and seen < limit:
        path, item = queue.pop(0)
        children = item.items() if isinstance(item, dict) else enumerate(item[:20]) if isinstance(item, list) else ()
        for key, child in children:
            seen += 1
            yield (*path, key)
            queue.append(((*path, key), child))


def _show(path: tuple) -> str:
    return "/".join(map(str, path))


# --- valid starting files ----------------------------------------------------------------------------


def table_files() -> dict[str, bytes]:
    from tests.tabular_fixtures import make_messy_table

    frame = make_messy_table(n=120, seed=3)
    excel, parquet = io.BytesIO(), io.BytesIO()
    frame.to_excel(excel, index=False)
    frame.to_parquet(parquet, index=False)
    return {
        "rows.csv": frame.to_csv(index=False).encode(),
        "rows.tsv": frame.to_csv(index=False, sep="\t").encode("utf-16"),
        "rows.xlsx": excel.getvalue(),
        "rows.parquet": parquet.getvalue(),
        "rows.json": frame.to_json(orient="records").encode(),
        "rows.jsonl": frame.to_json(orient="records", lines=True).encode(),
    }


def design() -> dict:
    return {"version": 1, "family": "mlp", "layers": [{"type": "Linear", "out_features": 16}, {"type": "ReLU"},
                                                      {"type": "Dropout", "p": 0.1}]}


def bundle_and_rows() -> tuple[bytes, pd.DataFrame]:
    """A small exported table bundle (messy columns: numbers, categories, dates) and rows for it."""
    import tempfile
    from pathlib import Path

    from builder.data import DataSpec
    from builder.export import write_bundle
    from builder.pipeline import train_model
    from builder.train import TrainConfig
    from tests.tabular_fixtures import TARGET, make_messy_table

    frame = make_messy_table(n=200, seed=4)
    spec = DataSpec(TARGET, "binary", [c for c in frame.columns if c != TARGET])
    trained = train_model(frame, spec, TrainConfig(epochs=1, device="cpu", seed=0), with_baseline=False)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.zip"
        write_bundle(trained, path, sample_rows=frame)
        return path.read_bytes(), frame.drop(columns=[TARGET]).head(20)


# --- the cases ---------------------------------------------------------------------------------------


def cases(count: int, seed: int) -> list[Case]:
    """``count`` seeded malformed inputs, each with the call the app would make on it."""
    from builder.data import profile_table, read_table
    from builder.data.images import read_image_zip
    from builder.export import read_bundle
    from builder.spec import ModelSpec
    from tests.image_fixtures import make_digits_zip

    rng = np.random.default_rng(seed)
    tables = table_files()
    images = make_digits_zip(n_per_class=4, classes=(0, 1))
    bundle, rows = bundle_and_rows()
    out: list[Case] = []

    def table_case(name: str, data: bytes) -> Callable[[], Any]:
        def run() -> Any:
            frame = read_table(data, name)
            return profile_table(frame) if len(frame) else frame
        return run

    def bundle_case(data: bytes) -> Callable[[], Any]:
        def run() -> Any:
            return read_bundle(data).predict(rows)
        return run

    def design_case(text: bytes) -> Callable[[], Any]:
        def run() -> Any:
            try:
                value = json.loads(text)
            except (ValueError, RecursionError):  # the Build page and --spec refuse unreadable JSON first
                return None
            return ModelSpec.from_dict(value)
        return run

    for i in range(count):
        kind = ("table", "table", "table", "bundle", "bundle", "images", "design")[i % 7]
        if kind == "table":
            name = str(rng.choice(sorted(tables)))
            data = tables[name]
            how, broken = damage_zip_member(data, rng) if name.endswith(".xlsx") and rng.random() < 0.5 else damage(data, rng)
            out.append((f"{name}: {how}", table_case(name, broken)))
        elif kind == "bundle":
            how, broken = damage_zip_member(bundle, rng, rehash=rng.random() < 0.8) if rng.random() < 0.8 \
                else damage(bundle, rng)
            out.append((f"bundle: {how}", bundle_case(broken)))
        elif kind == "images":
            how, broken = damage_zip_member(images, rng) if rng.random() < 0.6 else damage(images, rng)
            out.append((f"images.zip: {how}", lambda data=broken: read_image_zip(data)))
        else:
            how, broken = _damage_json(json.dumps(design()).encode(), rng)
            out.append((f"design: {how}", design_case(broken)))
    return out


def run(count: int, seed: int) -> dict[str, Any]:
    outcomes: Counter[str] = Counter()
    failures: list[dict[str, str]] = []
    for name, call in cases(count, seed):
        try:
            call()
            outcomes["clean"] += 1
        except BuilderError as exc:
            outcomes[type(exc).__name__] += 1
            if "\n" in str(exc).strip() or not str(exc).strip():
                failures.append({"case": name, "error": f"not one sentence: {exc!r}"})
        except (Exception, RecursionError) as exc:  # noqa: BLE001  (reported: this is what the fuzz looks for)
            outcomes["unexpected"] += 1
            failures.append({"case": name, "error": f"{type(exc).__name__}: {exc}"[:300],
                             "traceback": traceback.format_exc()[-1500:]})
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"cases": count, "outcomes": dict(outcomes), "failures": failures, "peak_mb": round(peak_mb)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=350)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    summary = run(args.cases, args.seed)
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0 if not summary["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
