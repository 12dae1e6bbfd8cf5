"""Writing a bundle: every member, the ``bundle.json`` manifest with hashes, one atomic zip.

The ONNX model is checked against torch before anything is written, and the zip appears only when
everything succeeded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import builder
from builder.codegen import model_source
from builder.data.preprocess import ANOMALY_TASK
from builder.data.sources import kind_of
from builder.errors import BundleError
from builder.export.card import TASK_WORDS, model_card
from builder.export.layout import (
    BUNDLE_FORMAT,
    BUNDLE_MODULES,
    BUNDLE_VERSION,
    FILE_PURPOSES,
    MANIFEST,
    ONNX_INPUT,
    ONNX_OUTPUT,
    SAMPLE_FILE,
    SAMPLE_FOLDER,
    SAMPLE_PURPOSES,
    WEIGHTS,
    SampleData,
)
from builder.export.metrics import metrics_document
from builder.export.onnx_export import PARITY_TOLERANCE, export_onnx, full_parity
from builder.export.samples import has_sample, input_columns, sample_inputs, sample_members
from builder.export.weights import weights_bytes
from builder.jsonsafe import plain, strict
from builder.trained import TrainedModel
from builder.wording import count

log = logging.getLogger(__name__)

_BUILDER_FOLDER = Path(__file__).resolve().parent.parent
_DATA_FOLDER = _BUILDER_FOLDER / "data"
_TEMPLATES = _BUILDER_FOLDER / "bundle_files"  # copied as they are: predict.py, serve.py, Dockerfile


@dataclass(frozen=True)
class BundleFile:
    """One file of a bundle, for the Export page's list."""

    name: str
    size: int
    purpose: str


@dataclass
class BundleReport:
    """What ``write_bundle`` wrote and how well the ONNX model matched torch.

    Attributes:
        path: the zip written.
        files: every member, in the zip's order.
        parity_max_diff: largest absolute difference between torch and onnxruntime raw outputs.
        parity_rows: inputs compared (random batches of 1, 3 and 7 plus the sample inputs: rows,
            images, texts or windows of a series).
        seconds: wall time of the export.
        warnings: things the user should know (e.g. no sample rows were given).
        kind: the kind of data: "table", "images", "text" or "series".
    """

    path: Path
    files: list[BundleFile]
    parity_max_diff: float
    parity_rows: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    kind: str = "table"

    @property
    def size(self) -> int:
        """Size of the zip in bytes."""
        return self.path.stat().st_size

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary."""
        return {
            "path": str(self.path),
            "files": [dataclasses.asdict(f) for f in self.files],
            "parity_max_diff": self.parity_max_diff,
            "parity_rows": self.parity_rows,
            "seconds": self.seconds,
            "warnings": list(self.warnings),
            "kind": self.kind,
        }


def write_bundle(trained: TrainedModel, path: str | Path, sample_rows: SampleData = None) -> BundleReport:
    """Write the export bundle of a trained model as a ``.zip``.

    The ONNX model is checked against torch with onnxruntime at batch sizes 1, 3 and 7 and on the
    sample data before anything is written; the zip appears only when everything succeeded.

    Args:
        trained: the trained model (any kind of data, any task).
        path: where to write the zip (missing folders are created).
        sample_rows: raw sample data in the training format, used for the parity check (up to
            1,000 inputs) and as the bundle's sample input:

            * a table, text or anomaly model: rows (the target may be present); the first 5
              become ``sample_input.csv``;
            * a forecast: the history (the whole series is best): every window of it is checked,
              and its newest rows, at least one window, become ``sample_input.csv``;
            * an image model: images, as an ``ImageSet`` (e.g. the training zip read with
              ``read_image_zip``), ``(name, bytes)`` pairs, or image file paths; up to 5 of them
              (one per class first) go into the ``samples/`` folder.

    Returns:
        A ``BundleReport``: files with sizes and purposes, the parity result and the time taken.

    Raises:
        BundleError: the model cannot be exported, the ONNX model disagrees with torch, or the file
            cannot be written.
        DataError: the sample data lacks an input column, or is not of the model's kind.
    """
    started = time.perf_counter()
    path = Path(path)
    notes: list[str] = []
    kind = kind_of(trained.preprocessor)
    sample_X = None
    if has_sample(sample_rows):
        sample_X = sample_inputs(trained, sample_rows)
    samples = sample_members(trained, sample_rows if has_sample(sample_rows) else None, notes)

    onnx_model = export_onnx(trained, sample_X)
    max_diff, parity_rows = full_parity(trained, onnx_model, sample_X)
    if not max_diff <= PARITY_TOLERANCE:
        raise BundleError(
            f"The exported ONNX model does not give the same answers as the trained model (largest "
            f"difference {max_diff:.2g}, allowed {PARITY_TOLERANCE:g}), so the bundle was not written. "
            "Simplify the design (e.g. remove unusual layers) and train again."
        )
    members = _bundle_members(trained, onnx_model, samples, max_diff, parity_rows)
    _write_zip_atomically(path, members)
    files = [BundleFile(name, len(data), _purpose(name, kind)) for name, data in members.items()]
    seconds = time.perf_counter() - started
    log.info("bundle %s written in %.1f s; ONNX parity %.2g on %d inputs", path, seconds, max_diff, parity_rows)
    return BundleReport(path, files, max_diff, parity_rows, seconds, notes, kind)


def _purpose(name: str, kind: str) -> str:
    if name.startswith(f"{SAMPLE_FOLDER}/"):
        return "An example image in the input format (python predict.py samples)"
    if name == SAMPLE_FILE:
        return SAMPLE_PURPOSES.get(kind, FILE_PURPOSES[SAMPLE_FILE])
    return FILE_PURPOSES.get(name, "")


def _bundle_members(trained: TrainedModel, onnx_model: bytes, samples: dict[str, bytes],
                    max_diff: float, parity_rows: int) -> dict[str, bytes]:
    """Every file of the bundle, README first (it is what a person opens first)."""
    kind = kind_of(trained.preprocessor)
    shape = trained.shape
    spec_json = json.dumps(trained.spec.to_dict(), indent=2)
    manifest = _manifest(trained, samples)
    metrics = metrics_document(trained, max_diff, parity_rows)
    weights = weights_bytes(trained.model, {
        "format": "pt", "spec": json.dumps(trained.spec.to_dict()),
        "input_shape": json.dumps(list(trained.input_shape)), "n_outputs": str(trained.n_outputs),
        "task": trained.task, "kind": kind, "builder_version": builder.__version__,
        **({"vocab_size": str(shape.vocab_size)} if shape.vocab_size else {}),
    })
    with shape.scope():
        code = model_source(trained.spec, trained.input_shape, trained.n_outputs, about=_about(trained))
    members = {
        "README.md": model_card(trained, metrics, samples=list(samples)).encode(),
        "predict.py": (_TEMPLATES / "predict.py").read_bytes(),
        "serve.py": (_TEMPLATES / "serve.py").read_bytes(),
        # Verbatim: one implementation of reading and preprocessing, in the app and the bundle.
        **{name: (_DATA_FOLDER / name).read_bytes() for name in BUNDLE_MODULES[kind]},
        "preprocess.json": _json_bytes(trained.preprocessor.to_dict()),
        "model.onnx": onnx_model,
        WEIGHTS: weights,
        "model.py": code.encode(),
        "spec.json": spec_json.encode(),
        "metrics.json": _json_bytes(metrics),
        "requirements.txt": _requirements(kind).encode(),
        "requirements-serve.txt": _serve_requirements().encode(),
        "Dockerfile": (_TEMPLATES / "Dockerfile").read_bytes(),
        **samples,
    }
    manifest["files"] = {name: hashlib.sha256(data).hexdigest() for name, data in members.items()}
    members[MANIFEST] = _json_bytes(manifest)
    return members


PARTIAL_PREFIX, PARTIAL_SUFFIX = ".bundle-", ".zip.tmp"  # a bundle being written, beside its final name
STALE_PARTIAL_S = 15 * 60  # an export takes seconds: a partial file this old was left by a killed one


def _remove_stale_partials(folder: Path) -> None:
    """Delete the half-written bundles of exports that were killed (no ``finally`` ran for them)."""
    now = time.time()
    for partial in folder.glob(f"{PARTIAL_PREFIX}*{PARTIAL_SUFFIX}"):
        with contextlib.suppress(OSError):
            if now - partial.stat().st_mtime > STALE_PARTIAL_S:
                partial.unlink()
                log.info("removed %s, left by an export that was stopped", partial.name)


def _write_zip_atomically(path: Path, members: dict[str, bytes]) -> None:
    """Write to a temporary file beside ``path`` and rename, so no half-written zip is ever seen."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BundleError(f"Cannot write the bundle in {str(folder)!r}: {exc.strerror or exc}.") from None
    _remove_stale_partials(folder)
    fd, tmp_name = tempfile.mkstemp(prefix=PARTIAL_PREFIX, suffix=PARTIAL_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16  # a plain readable file once unpacked
                zf.writestr(info, data)
        os.replace(tmp_name, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise BundleError(f"Cannot write the bundle to {str(path)!r}: {exc.strerror or exc}.") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def _manifest(trained: TrainedModel, samples: dict[str, bytes]) -> dict[str, Any]:
    pre = trained.preprocessor
    kind = kind_of(pre)
    shape = trained.shape
    manifest = {
        "format": BUNDLE_FORMAT,
        "format_version": 1 if kind == "table" else BUNDLE_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "builder_version": builder.__version__,
        "kind": kind,
        "task": trained.task,
        "target": trained.data_spec.target,
        "features": list(trained.data_spec.features),
        "input_columns": input_columns(pre),
        "classes": plain(list(pre.classes)),
        "input_shape": [int(d) for d in trained.input_shape],
        "n_outputs": int(trained.n_outputs),
        "family": trained.spec.family,
        "data_spec": trained.data_spec.to_dict(),
        "preprocess_format": pre.to_dict().get("format"),
        "modules": list(BUNDLE_MODULES[kind]),
        "sample": sorted(samples),
        "onnx": {"input": ONNX_INPUT, "output": ONNX_OUTPUT, "dynamic_batch": True,
                 "input_shape": ["batch", *[int(d) for d in trained.input_shape]], "dtype": "float32"},
        "versions": {"torch": torch.__version__, "numpy": np.__version__, "pandas": pd.__version__},
    }
    if kind == "table":
        manifest["feature_names"] = list(pre.feature_names)
    if shape.vocab_size:
        manifest["vocab_size"] = int(shape.vocab_size)
    if kind == "series":
        manifest.update(time_column=pre.time_column, window=int(pre.window), horizon=int(pre.horizon),
                        step=pre.step)
    if trained.task == ANOMALY_TASK:
        manifest.update(threshold=pre.threshold, threshold_quantile=pre.threshold_quantile)
    return manifest


def _requirements(kind: str) -> str:
    import onnxruntime

    lines = [
        "# What predict.py needs: pip install -r requirements.txt",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
        f"onnxruntime=={onnxruntime.__version__}",
    ]
    if kind == "images":
        lines.append(f"Pillow=={_version('Pillow')}")
    else:
        lines += [
            "# Optional: reading Excel (.xlsx) or Parquet input, and guessing unusual text encodings",
            f"# openpyxl=={_version('openpyxl')}",
            f"# pyarrow=={_version('pyarrow')}",
            f"# charset-normalizer=={_version('charset-normalizer')}",
        ]
    lines += [
        "# Optional: model.py (the network as PyTorch code) needs",
        f"# torch=={torch.__version__.split('+')[0]}",
        f"# safetensors=={_version('safetensors')}",
    ]
    return "\n".join(lines) + "\n"


def _serve_requirements() -> str:
    return "\n".join([
        "# What serve.py needs: predict.py's packages and the web server. pip install -r requirements-serve.txt",
        "-r requirements.txt",
        f"fastapi=={_version('fastapi')}",
        f"uvicorn=={_version('uvicorn')}",
        f"python-multipart=={_version('python-multipart')}",
    ]) + "\n"


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "0"


def _about(trained: TrainedModel) -> str:
    pre = trained.preprocessor
    kind = kind_of(pre)
    if trained.task == ANOMALY_TASK:
        return "Rebuilds a table row; the mean squared difference is the row's anomaly score."
    if trained.task == "forecast":
        return f"Forecasts the next {count(pre.horizon, 'step')} of '{pre.target}' from the last {pre.window}."
    if kind == "images":
        channels, height, width = pre.input_shape
        return f"Classifies {width}x{height} images into {len(pre.classes)} classes."
    if kind == "text":
        return f"Predicts '{trained.data_spec.target}' from the text in '{pre.text_column}' ({len(pre.classes)} classes)."
    return f"Predicts '{trained.data_spec.target}' ({TASK_WORDS.get(trained.task, trained.task)})."


def _json_bytes(value: Any) -> bytes:
    return json.dumps(strict(value), indent=2, allow_nan=False).encode()
