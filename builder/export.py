"""Export bundles and saved runs: a trained model in forms that run somewhere else.

Two on-disk forms of a ``TrainedModel``:

* **Export bundle** (``write_bundle`` / ``read_bundle``): one ``.zip`` for people outside the app.
  It holds the weights (``model.safetensors``, spec JSON in its metadata), ``spec.json``,
  ``preprocess.json``, ``model.onnx`` (checked against torch with onnxruntime before anything is
  written), readable PyTorch code (``model.py``), a standalone ``predict.py`` with the app's own
  ``preprocess.py`` copied next to it, ``requirements.txt``, ``metrics.json``, a ``README.md`` model
  card, ``sample_input.csv`` and the ``bundle.json`` manifest that ``read_bundle`` starts from.
* **Saved run** (``save_trained`` / ``load_trained``): the workspace's fast form of a run, without
  ONNX: ``model.safetensors`` plus ``trained.json``. Reloading gives identical outputs.

No pickle anywhere and never ``torch.load``: weights are safetensors, everything else JSON or text.
Every zip is read through ``builder.safezip``, so an uploaded file cannot escape its folder or
exhaust memory. Errors are ``BundleError`` with a sentence an analyst can act on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import struct
import tempfile
import time
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

import builder
from builder.codegen import model_source
from builder.data import DataSpec, Preprocessor
from builder.errors import BuilderError, BundleError
from builder.evaluate import METRICS, BaselineResult, compare_to_baseline, verdict
from builder.jsonsafe import plain, strict
from builder.model import build_model
from builder.pipeline import PREDICT_CHUNK_ROWS, TrainedModel
from builder.safezip import EXPORT_AGAIN, NOT_A_BUNDLE, MiB, open_zip, read_member
from builder.spec import FAMILIES, ModelSpec
from builder.train import History, TrainConfig

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "builder.model-bundle"
BUNDLE_VERSION = 1
TRAINED_FORMAT = "builder.trained-run"
TRAINED_VERSION = 1

# ONNX parity: the exported model must agree with torch to this many units on raw outputs
# (measured: <= 1.2e-7 for MLP, CNN, LSTM and Transformer, so 1e-4 only catches real breakage).
PARITY_TOLERANCE = 1e-4
PARITY_BATCHES = (1, 3, 7)
PARITY_MAX_SAMPLE_ROWS = 1000  # sample rows checked through the whole path (keeps export fast)
EXPORT_BATCH = 2  # example batch for the exporter; 0 and 1 would be specialised, not dynamic
ONNX_INPUT = "features"
ONNX_OUTPUT = "outputs"
SAMPLE_INPUT_ROWS = 5

MANIFEST = "bundle.json"
WEIGHTS = "model.safetensors"
TRAINED_JSON = "trained.json"
JSON_LIMIT = 64 * MiB  # no JSON member of a real bundle comes near this

# What each file is for, shown on the Export page and in the model card.
FILE_PURPOSES = {
    "README.md": "Model card: data, task, quality against a simple baseline, limits, how to use",
    "predict.py": "Standalone script: python predict.py input.csv > predictions.csv",
    "preprocess.py": "The app's preprocessing code, copied unchanged (used by predict.py)",
    "read.py": "The app's file reader, copied unchanged (used by predict.py)",
    "preprocess.json": "Fitted preprocessing steps (fills, scales, categories) as plain JSON",
    "model.onnx": "The network in ONNX format, for onnxruntime in any language",
    "model.safetensors": "Trained weights (safetensors; the design is in its metadata)",
    "model.py": "The network as readable PyTorch code; load() rebuilds it with the weights",
    "spec.json": "The design as built in the app (layers and settings)",
    "metrics.json": "Test metrics, baseline metrics and a training summary",
    "requirements.txt": "Python packages predict.py needs (pinned)",
    "sample_input.csv": "A few raw rows in the input format (without the target)",
    "bundle.json": "Manifest: format version, task, columns, classes, input shape",
}

_PREPROCESS_SOURCE = Path(__file__).resolve().parent / "data" / "preprocess.py"
_READ_SOURCE = Path(__file__).resolve().parent / "data" / "read.py"
_PREDICT_TEMPLATE = Path(__file__).resolve().parent / "bundle_files" / "predict.py"


# ==================================================================================================
# Results
# ==================================================================================================


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
        parity_rows: rows compared (random batches of 1, 3 and 7 plus the sample rows).
        seconds: wall time of the export.
        warnings: things the user should know (e.g. no sample rows were given).
    """

    path: Path
    files: list[BundleFile]
    parity_max_diff: float
    parity_rows: int
    seconds: float
    warnings: list[str] = field(default_factory=list)

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
        }


@dataclass
class Bundle:
    """An export bundle read back: everything needed to predict with torch, as the app does.

    Attributes:
        spec: the design.
        data_spec: target, task and input columns.
        preprocessor: the fitted preprocessing.
        metrics: contents of ``metrics.json``.
        manifest: contents of ``bundle.json``.
        model: the rebuilt network with the bundle's weights, on the CPU, in eval mode.
        input_shape: per-sample input shape after preprocessing.
        n_outputs: raw outputs per row.
    """

    spec: ModelSpec
    data_spec: DataSpec
    preprocessor: Preprocessor
    metrics: dict[str, Any]
    manifest: dict[str, Any]
    model: nn.Module
    input_shape: tuple[int, ...]
    n_outputs: int

    @property
    def task(self) -> str:
        return self.data_spec.task

    def predict_outputs(self, X: np.ndarray) -> np.ndarray:
        """Raw outputs ``(N, n_outputs)`` for preprocessed rows, in the app's chunk size."""
        return _forward(self.model, X, self.n_outputs)

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        """Predict raw rows exactly as ``TrainedModel.predict`` does (torch + the same preprocessing).

        Raises:
            DataError: a needed column is missing.
        """
        X = self.preprocessor.transform(df)
        return self.preprocessor.decode_outputs(self.predict_outputs(X))


def _forward(model: nn.Module, X: np.ndarray, n_outputs: int) -> np.ndarray:
    # Same chunking as TrainedModel.predict_outputs, so a bundle and the app run identical batches.
    model.eval()
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(X), PREDICT_CHUNK_ROWS):
            batch = torch.from_numpy(np.ascontiguousarray(X[start:start + PREDICT_CHUNK_ROWS]))
            chunks.append(model(batch).numpy())  # (b, n_outputs)
    if not chunks:
        return np.zeros((0, n_outputs), dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)


# ==================================================================================================
# Weights (safetensors)
# ==================================================================================================


def weights_bytes(model: nn.Module, metadata: dict[str, str] | None = None) -> bytes:
    """Serialise a module's state dict as safetensors, with string ``metadata`` in the header."""
    # safetensors refuses tensors that share memory or are not contiguous: give it plain copies.
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    return save_safetensors_bytes(tensors, metadata=metadata)


def load_weights(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read safetensors bytes into tensors and the header's string metadata.

    Raises:
        BundleError: the bytes are not a safetensors file.
    """
    try:
        tensors = load_safetensors_bytes(data)
        (header_size,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + header_size])
    except (SafetensorError, struct.error, ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{NOT_A_BUNDLE}: its weights file is damaged ({exc}). {EXPORT_AGAIN}") from None
    metadata = header.get("__metadata__") or {}
    return tensors, {str(k): str(v) for k, v in metadata.items()}


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise BundleError(
            f"The weights in {where} do not fit the design they were saved with ({first}). "
            f"{EXPORT_AGAIN}"
        ) from None
    model.eval()


# ==================================================================================================
# ONNX
# ==================================================================================================


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's warnings (optional torchvision ops, deprecations): not the user's
    business, and the CLI's stderr should carry only what matters."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export_onnx(trained: TrainedModel, example: np.ndarray | None = None) -> bytes:
    """Export the network to ONNX with a dynamic batch dimension.

    Args:
        trained: the trained model.
        example: preprocessed rows to trace with (at least 2 are used); random rows if ``None``.

    Returns:
        The ``.onnx`` file's bytes (weights inside, no external data file).

    Raises:
        BundleError: the exporter cannot translate the network.
    """
    model = trained.model.eval()
    shape = tuple(trained.input_shape)
    if example is None or len(example) < EXPORT_BATCH:
        example = _random_rows(EXPORT_BATCH, shape, seed=0)
    x = torch.from_numpy(np.ascontiguousarray(example[:EXPORT_BATCH], dtype=np.float32))
    started = time.perf_counter()
    try:
        with _quiet_exporter(), torch.inference_mode(False):
            program = torch.onnx.export(
                model, (x,), dynamo=True, external_data=False, verbose=False,
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT],
            )
        data = program.model_proto.SerializeToString()
    except Exception as exc:  # the exporter raises many types; all mean "cannot export this"
        log.warning("ONNX export failed", exc_info=True)  # the full trace, for --debug and bug reports
        raise BundleError(
            f"This model cannot be exported to ONNX ({type(exc).__name__}: {str(exc)[:300]}). "
            "Simplify the design (remove the last layer you added) and train again."
        ) from exc
    log.info("ONNX export took %.1f s (%d bytes)", time.perf_counter() - started, len(data))
    return data


def _session(onnx_model: bytes):
    import onnxruntime as ort  # imported here: saving a run must not pay for it

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])


def _random_rows(n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    # Standardised inputs are roughly N(0, 1), so random normal rows exercise the usual range.
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)


def _max_diff(trained: TrainedModel, session, X: np.ndarray) -> float:
    if len(X) == 0:
        return 0.0
    expected = trained.predict_outputs(X)
    if not np.isfinite(expected).all():
        raise BundleError(
            "The trained model gives no number (NaN or infinity) for some rows, so it cannot be "
            "exported. Train it again with a smaller learning rate."
        )
    try:
        got = session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(X, dtype=np.float32)})[0]
    except Exception as exc:  # onnxruntime's errors derive from Exception only
        raise BundleError(
            f"The exported ONNX model could not run ({str(exc).splitlines()[0][:200]}), so the bundle "
            "was not written. Simplify the design (remove unusual layers) and train again."
        ) from exc
    if got.shape != expected.shape:
        return math.inf
    diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    return float(np.nan_to_num(diff, nan=math.inf).max())


def parity_check(trained: TrainedModel, df: pd.DataFrame | None = None,
                 onnx_model: bytes | None = None) -> float:
    """Largest absolute difference between torch and onnxruntime on the same preprocessed rows.

    The Export page shows it as "the exported model gives the same answers: max difference 3e-7
    on 200 rows".

    Args:
        trained: the trained model.
        df: raw rows (the target may be present); ``None`` checks random rows only.
        onnx_model: the exported model's bytes; exported here when ``None`` (~5 s).

    Returns:
        The max |torch - onnxruntime| over the raw outputs of ``df``'s rows (or random rows).

    Raises:
        DataError: ``df`` lacks an input column.
        BundleError: the model cannot be exported.
    """
    if onnx_model is None:
        onnx_model = export_onnx(trained)
    session = _session(onnx_model)
    if df is None:
        X = _random_rows(max(PARITY_BATCHES), tuple(trained.input_shape), seed=1)
    else:
        X = trained.preprocessor.transform(df)
    return _max_diff(trained, session, X)


def _full_parity(trained: TrainedModel, onnx_model: bytes, sample_X: np.ndarray | None) -> tuple[float, int]:
    """Parity at every batch size in ``PARITY_BATCHES`` and on the sample rows."""
    session = _session(onnx_model)
    shape = tuple(trained.input_shape)
    worst, rows = 0.0, 0
    for i, n in enumerate(PARITY_BATCHES):
        worst = max(worst, _max_diff(trained, session, _random_rows(n, shape, seed=100 + i)))
        rows += n
    if sample_X is not None and len(sample_X):
        worst = max(worst, _max_diff(trained, session, sample_X))
        rows += len(sample_X)
    return worst, rows


# ==================================================================================================
# Writing a bundle
# ==================================================================================================


def write_bundle(trained: TrainedModel, path: str | Path,
                 sample_rows: pd.DataFrame | None = None) -> BundleReport:
    """Write the export bundle of a trained model as a ``.zip``.

    The ONNX model is checked against torch with onnxruntime at batch sizes 1, 3 and 7 and on the
    sample rows before anything is written; the zip appears only when everything succeeded.

    Args:
        trained: the trained model.
        path: where to write the zip (missing folders are created).
        sample_rows: raw rows in the training format (the target may be present). Up to 1,000 of
            them are used for the parity check and the first 5 become ``sample_input.csv``.

    Returns:
        A ``BundleReport``: files with sizes and purposes, the parity result and the time taken.

    Raises:
        BundleError: the model cannot be exported, the ONNX model disagrees with torch, or the file
            cannot be written.
        DataError: ``sample_rows`` lacks an input column.
    """
    started = time.perf_counter()
    path = Path(path)
    notes: list[str] = []
    sample_X = None
    if sample_rows is not None and len(sample_rows):
        sample_rows = sample_rows.head(PARITY_MAX_SAMPLE_ROWS)
        sample_X = trained.preprocessor.transform(sample_rows)
    else:
        notes.append("No sample rows were given, so sample_input.csv holds only the column names.")

    onnx_model = export_onnx(trained, sample_X)
    max_diff, parity_rows = _full_parity(trained, onnx_model, sample_X)
    if not max_diff <= PARITY_TOLERANCE:
        raise BundleError(
            f"The exported ONNX model does not give the same answers as the trained model (largest "
            f"difference {max_diff:.2g}, allowed {PARITY_TOLERANCE:g}), so the bundle was not written. "
            "Simplify the design (e.g. remove unusual layers) and train again."
        )
    members = _bundle_members(trained, onnx_model, sample_rows, max_diff, parity_rows)
    _write_zip_atomically(path, members)
    files = [BundleFile(name, len(data), FILE_PURPOSES.get(name, "")) for name, data in members.items()]
    seconds = time.perf_counter() - started
    log.info("bundle %s written in %.1f s; ONNX parity %.2g on %d rows", path, seconds, max_diff, parity_rows)
    return BundleReport(path, files, max_diff, parity_rows, seconds, notes)


def _bundle_members(trained: TrainedModel, onnx_model: bytes, sample_rows: pd.DataFrame | None,
                    max_diff: float, parity_rows: int) -> dict[str, bytes]:
    """Every file of the bundle, README first (it is what a person opens first)."""
    spec_json = json.dumps(trained.spec.to_dict(), indent=2)
    preprocess_state = trained.preprocessor.to_dict()
    manifest = _manifest(trained)
    metrics = _metrics_document(trained, max_diff, parity_rows)
    weights = weights_bytes(trained.model, {
        "format": "pt", "spec": json.dumps(trained.spec.to_dict()),
        "input_shape": json.dumps(list(trained.input_shape)), "n_outputs": str(trained.n_outputs),
        "task": trained.task, "builder_version": builder.__version__,
    })
    members = {
        "README.md": model_card(trained, metrics).encode(),
        "predict.py": _PREDICT_TEMPLATE.read_bytes(),
        "preprocess.py": _PREPROCESS_SOURCE.read_bytes(),  # verbatim: one implementation
        "read.py": _READ_SOURCE.read_bytes(),  # files are read exactly as the app reads them
        "preprocess.json": _json_bytes(preprocess_state),
        "model.onnx": onnx_model,
        WEIGHTS: weights,
        "model.py": model_source(trained.spec, trained.input_shape, trained.n_outputs,
                                 about=_about(trained)).encode(),
        "spec.json": spec_json.encode(),
        "metrics.json": _json_bytes(metrics),
        "requirements.txt": _requirements().encode(),
        "sample_input.csv": _sample_csv(trained, sample_rows).encode(),
    }
    manifest["files"] = {name: hashlib.sha256(data).hexdigest() for name, data in members.items()}
    members[MANIFEST] = _json_bytes(manifest)
    return members


def _write_zip_atomically(path: Path, members: dict[str, bytes]) -> None:
    """Write to a temporary file beside ``path`` and rename, so no half-written zip is ever seen."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BundleError(f"Cannot write the bundle in {str(folder)!r}: {exc.strerror or exc}.") from None
    fd, tmp_name = tempfile.mkstemp(prefix=".bundle-", suffix=".zip.tmp", dir=folder)
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


def _manifest(trained: TrainedModel) -> dict[str, Any]:
    pre = trained.preprocessor
    return {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "builder_version": builder.__version__,
        "task": trained.task,
        "target": trained.data_spec.target,
        "features": list(trained.data_spec.features),
        "feature_names": list(pre.feature_names),
        "classes": plain(list(pre.classes)),
        "input_shape": [int(d) for d in trained.input_shape],
        "n_outputs": int(trained.n_outputs),
        "family": trained.spec.family,
        "data_spec": trained.data_spec.to_dict(),
        "onnx": {"input": ONNX_INPUT, "output": ONNX_OUTPUT, "dynamic_batch": True},
        "versions": {"torch": torch.__version__, "numpy": np.__version__, "pandas": pd.__version__},
    }


def _metrics_document(trained: TrainedModel, max_diff: float, parity_rows: int) -> dict[str, Any]:
    """``metrics.json``: what the model scores, against what, and how training went."""
    history = trained.history
    doc: dict[str, Any] = {
        "task": trained.task,
        "target": trained.data_spec.target,
        "test": dict(trained.metrics.get("test", {})),
        "metric_meanings": {name: METRICS[name].help for name in trained.metrics.get("test", {}) if name in METRICS},
        "baseline": None,
        "history": {
            "epochs_run": history.epochs_run,
            "best_epoch": history.best_epoch,
            "best_val_loss": history.best_val_loss,
            "final_loss": history.loss[-1] if history.loss else None,
            "final_val_loss": history.val_loss[-1] if history.val_loss else None,
            "stopped_reason": history.stopped_reason,
            "seconds": trained.seconds,
            "device": trained.device,
            "config": trained.config.to_dict(),
        },
        "rows": dict(trained.info.get("rows", {})),
        "onnx_parity": {"max_abs_diff": max_diff, "rows": parity_rows},
    }
    if trained.metrics.get("val"):
        doc["validation"] = dict(trained.metrics["val"])
    if trained.baseline is not None:
        comparisons = compare_to_baseline(trained.task, doc["test"], trained.baseline.metrics)
        doc["baseline"] = {
            **trained.baseline.to_dict(),
            "comparison": [c.to_dict() for c in comparisons],
            "verdict": verdict(trained.task, comparisons),
        }
    return plain(doc)


def _requirements() -> str:
    import onnxruntime

    return (
        "# What predict.py needs: pip install -r requirements.txt\n"
        f"numpy=={np.__version__}\n"
        f"pandas=={pd.__version__}\n"
        f"onnxruntime=={onnxruntime.__version__}\n"
        "# Optional: reading Excel (.xlsx) or Parquet input, and guessing unusual text encodings\n"
        f"# openpyxl=={_version('openpyxl')}\n"
        f"# pyarrow=={_version('pyarrow')}\n"
        f"# charset-normalizer=={_version('charset-normalizer')}\n"
        "# Optional: model.py (the network as PyTorch code) needs\n"
        f"# torch=={torch.__version__.split('+')[0]}\n"
        f"# safetensors=={_version('safetensors')}\n"
    )


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "0"


def _sample_csv(trained: TrainedModel, sample_rows: pd.DataFrame | None) -> str:
    features = list(trained.preprocessor.features)
    if sample_rows is None or not len(sample_rows):
        return pd.DataFrame(columns=features).to_csv(index=False)
    return sample_rows.head(SAMPLE_INPUT_ROWS)[features].to_csv(index=False)


def _about(trained: TrainedModel) -> str:
    return f"Predicts '{trained.data_spec.target}' ({_TASK_WORDS.get(trained.task, trained.task)})."


_TASK_WORDS = {
    "regression": "a number; regression",
    "binary": "one of two classes; binary classification",
    "multiclass": "one of several classes; multiclass classification",
}


# ==================================================================================================
# The model card
# ==================================================================================================


def model_card(trained: TrainedModel, metrics: dict[str, Any] | None = None) -> str:
    """The bundle's ``README.md``: data, task, quality against the baseline, limits, how to use.

    Args:
        trained: the trained model.
        metrics: the ``metrics.json`` document; built here when ``None``.
    """
    metrics = metrics or _metrics_document(trained, math.nan, 0)
    pre = trained.preprocessor
    target = trained.data_spec.target
    rows = trained.info.get("rows", {})
    family = FAMILIES.get(trained.spec.effective_family())
    family_title = family.title if family else trained.spec.family
    kinds = pre.kinds
    lines = [
        f"# Model card: predicting `{target}`",
        "",
        f"Made with the visual model builder {builder.__version__} "
        f"on {trained.info.get('trained_at') or time.strftime('%Y-%m-%d')}.",
        "",
        "## What it does",
        "",
        f"It predicts **{target}** ({_TASK_WORDS.get(trained.task, trained.task)}).",
    ]
    if pre.classes:
        lines.append(f"Possible answers: {', '.join(f'`{c}`' for c in pre.classes)}.")
    lines += [
        "",
        "## Data",
        "",
        f"Input columns ({len(kinds)}), as they must appear in new files:",
        "",
        "| Column | Read as |",
        "|---|---|",
        *[f"| `{name}` | {kind} |" for name, kind in kinds.items()],
        "",
    ]
    if rows:
        lines.append(
            "Rows: " + ", ".join(f"{n:,} for {split}" for split, n in rows.items())
            + ". The test rows were never used in training: the scores below come from them."
        )
    if trained.info.get("source"):
        lines.append(f"Source file: `{trained.info['source']}`.")
    lines += [
        "",
        "## Model",
        "",
        f"{family_title}: {len(trained.spec.layers)} layer(s) plus the output layer, "
        f"{trained.input_shape[0] if len(trained.input_shape) == 1 else trained.input_shape} inputs "
        f"after preprocessing. Trained for {trained.history.epochs_run} epoch(s) in "
        f"{trained.seconds:.1f} s on {trained.device}; "
        f"the weights of epoch {trained.history.best_epoch} (lowest validation loss) are kept.",
        "",
        "## How good it is (test rows)",
        "",
    ]
    lines += _metrics_table(trained, metrics)
    trained_rows = rows.get("train")
    seen = f"the {trained_rows:,} training rows" if isinstance(trained_rows, int) else "the training rows"
    lines += [
        "",
        "## Limits",
        "",
        f"- It learned only from {seen} of one file. Rows unlike them (values outside the ranges "
        "seen, new kinds of customers or products) get less reliable predictions.",
        "- Missing values are filled the way training filled them (the median for numbers, the most "
        "common value for categories); categories never seen in training count as \"other\".",
        "- It finds patterns, not causes: do not read a prediction as the reason for an outcome.",
        "- The data may carry past biases. Check the errors per group (region, age band...) before "
        "using it for decisions about people, and re-train when the data changes.",
        "",
        "## How to use it",
        "",
        "Standalone, with only numpy, pandas and onnxruntime:",
        "",
        "```",
        "pip install -r requirements.txt",
        "python predict.py sample_input.csv > predictions.csv",
        "```",
        "",
        "The input is a table file (.csv, .tsv, .txt, .xlsx, .parquet or .json) with the columns "
        f"above; `{target}` may be present and is ignored. The output has one row per input row, in "
        "the same order, with a `prediction` column"
        + (" and one `probability_<class>` column per class." if pre.classes else " (in the units of the target)."),
        "",
        "In Python with PyTorch (`model.py` is the network as plain code):",
        "",
        "```python",
        "import json, torch",
        "from model import load",
        "from preprocess import Preprocessor",
        "pre = Preprocessor.from_dict(json.load(open('preprocess.json')))",
        "net = load('model.safetensors')",
        "X = pre.transform(rows)                      # rows: a pandas DataFrame",
        "predictions = pre.decode_outputs(net(torch.from_numpy(X)).detach().numpy())",
        "```",
        "",
        f"With ONNX in any language: `model.onnx` takes a float32 input `{ONNX_INPUT}` of shape "
        f"(rows, {', '.join(map(str, trained.input_shape))}) (the output of `Preprocessor.transform`) and gives "
        f"`{ONNX_OUTPUT}` (rows, {trained.n_outputs}): "
        + {"regression": "the prediction in standardised units (times the target's std plus its mean, "
                         "see `preprocess.json`).",
           "binary": "one logit; the probability of the second class is 1 / (1 + exp(-logit)).",
           "multiclass": "one logit per class; softmax gives the probabilities."}.get(trained.task, "raw outputs."),
        f"It was checked against PyTorch before export: largest difference "
        f"{metrics.get('onnx_parity', {}).get('max_abs_diff', float('nan')):.1g} on "
        f"{metrics.get('onnx_parity', {}).get('rows', 0)} rows.",
        "",
        "## Files",
        "",
        "| File | What it is |",
        "|---|---|",
        *[f"| `{name}` | {purpose} |" for name, purpose in FILE_PURPOSES.items()],
        "",
    ]
    return "\n".join(lines)


def _metrics_table(trained: TrainedModel, metrics: dict[str, Any]) -> list[str]:
    test = metrics.get("test") or {}
    if not test:
        return ["No test rows were scored."]
    baseline = metrics.get("baseline") or {}
    base_metrics = baseline.get("metrics", {})
    base_name = baseline.get("name", "baseline")
    lines = [
        f"| Metric | This model | {base_name} | Meaning |",
        "|---|---|---|---|",
    ]
    for name, value in test.items():
        info = METRICS.get(name)
        label = info.label if info else name
        meaning = info.help if info else ""
        base = base_metrics.get(name)
        base_text = _fmt(name, base) if base is not None else "-"
        lines.append(f"| {label} | {_fmt(name, value)} | {base_text} | {meaning} |")
    if baseline.get("verdict"):
        lines += ["", baseline["verdict"]]
    if baseline.get("description"):
        lines += ["", f"The baseline: {baseline['description']}"]
    return lines


def _fmt(metric: str, value: Any) -> str:
    from builder.evaluate import format_metric

    try:
        return format_metric(metric, float(value))
    except (BuilderError, TypeError, ValueError, KeyError):
        return f"{value:.4g}" if isinstance(value, float) else str(value)


# ==================================================================================================
# Reading a bundle
# ==================================================================================================


def read_bundle(source: str | Path | bytes | Any) -> Bundle:
    """Read an export bundle and rebuild the model with its weights.

    Args:
        source: a path, the zip's bytes, or a binary file-like object (e.g. an upload).

    Returns:
        A ``Bundle`` whose ``predict(df)`` gives the app's predictions.

    Raises:
        BundleError: the file is not a bundle, is unsafe or damaged, or was made by a newer app; the
            message says what to do.
    """
    with open_zip(source) as zf:
        manifest = _read_json_member(zf, MANIFEST)
        _check_manifest(manifest)
        members = {name: read_member(zf, name, JSON_LIMIT) for name in ("spec.json", "preprocess.json")}
        weights = read_member(zf, WEIGHTS)
        metrics = _read_json_member(zf, "metrics.json") if "metrics.json" in zf.namelist() else {}
    _check_hashes(manifest, {**members, WEIGHTS: weights})
    spec = _parse(lambda: ModelSpec.from_dict(json.loads(members["spec.json"])), "spec.json")
    preprocessor = _parse(lambda: Preprocessor.from_dict(json.loads(members["preprocess.json"])),
                          "preprocess.json")
    data_spec = _parse(lambda: DataSpec.from_dict(manifest["data_spec"]), MANIFEST)
    input_shape = tuple(int(d) for d in manifest["input_shape"])
    n_outputs = int(manifest["n_outputs"])
    state, _ = load_weights(weights)
    model = _parse(lambda: build_model(spec, input_shape, n_outputs), "spec.json")
    _load_state(model, state, "this bundle")
    return Bundle(spec, data_spec, preprocessor, metrics, manifest, model, input_shape, n_outputs)


def _read_json_member(zf: zipfile.ZipFile, name: str) -> dict[str, Any]:
    data = read_member(zf, name, JSON_LIMIT)
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BundleError(f"{NOT_A_BUNDLE}: its {name} is not valid JSON. {EXPORT_AGAIN}") from None
    if not isinstance(value, dict):
        raise BundleError(f"{NOT_A_BUNDLE}: its {name} is not a JSON object. {EXPORT_AGAIN}")
    return value


def _check_manifest(manifest: dict[str, Any]) -> None:
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{NOT_A_BUNDLE}: its {MANIFEST} is not a bundle manifest. {EXPORT_AGAIN}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise BundleError(f"{NOT_A_BUNDLE}: its format version {version!r} is not valid. {EXPORT_AGAIN}")
    if version > BUNDLE_VERSION:
        raise BundleError(
            f"This bundle was made by a newer version of the app (bundle format {version}; this app "
            f"reads format {BUNDLE_VERSION}). Update the app, or export the model again from the "
            "Export page of this version."
        )
    missing = [key for key in ("input_shape", "n_outputs", "data_spec", "task") if key not in manifest]
    if missing:
        raise BundleError(f"{NOT_A_BUNDLE}: its {MANIFEST} lacks {', '.join(missing)}. {EXPORT_AGAIN}")


def _check_hashes(manifest: dict[str, Any], members: dict[str, bytes]) -> None:
    hashes = manifest.get("files") or {}
    for name, data in members.items():
        expected = hashes.get(name)
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            raise BundleError(
                f"This bundle's {name} was changed after export, so the model may not behave as it "
                f"was tested. {EXPORT_AGAIN}"
            )


def _parse(make: Any, name: str) -> Any:
    """Run a constructor on bundle content; turn its failure into a ``BundleError`` naming the file."""
    try:
        return make()
    except (BuilderError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"{NOT_A_BUNDLE}: its {name} cannot be used ({exc}). {EXPORT_AGAIN}") from None


# ==================================================================================================
# Saved runs (the workspace's form)
# ==================================================================================================


def save_trained(trained: TrainedModel, folder: str | Path) -> Path:
    """Save a run for the workspace: ``model.safetensors`` and ``trained.json`` (no ONNX, fast).

    Args:
        trained: the trained model.
        folder: the run's folder (created if missing).

    Returns:
        The folder.

    Raises:
        BundleError: the folder cannot be written.
    """
    folder = Path(folder)
    document = {
        "format": TRAINED_FORMAT,
        "format_version": TRAINED_VERSION,
        "builder_version": builder.__version__,
        "spec": trained.spec.to_dict(),
        "data_spec": trained.data_spec.to_dict(),
        "preprocess": trained.preprocessor.to_dict(),
        "input_shape": [int(d) for d in trained.input_shape],
        "n_outputs": int(trained.n_outputs),
        "config": trained.config.to_dict(),
        "history": trained.history.to_dict(),
        "metrics": trained.metrics,
        "baseline": trained.baseline.to_dict() if trained.baseline is not None else None,
        "device": trained.device,
        "seconds": trained.seconds,
        "info": trained.info,
        "test_results": trained.test_results,
    }
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Weights first, JSON last: a run whose trained.json exists is complete.
        _write_file_atomically(folder / WEIGHTS, weights_bytes(trained.model))
        # NaN can occur in a diverged run's history; Python's json reads its own NaN back exactly.
        _write_file_atomically(folder / TRAINED_JSON, json.dumps(plain(document), indent=1).encode())
    except OSError as exc:
        raise BundleError(f"Cannot save the run in {str(folder)!r}: {exc.strerror or exc}.") from None
    return folder


def load_trained(folder: str | Path) -> TrainedModel:
    """Load a run written by ``save_trained``; its outputs are identical to the saved model's.

    Raises:
        BundleError: the folder holds no complete run, or a newer one.
    """
    folder = Path(folder)
    try:
        document = json.loads((folder / TRAINED_JSON).read_bytes())
        weights = (folder / WEIGHTS).read_bytes()
    except FileNotFoundError:
        raise BundleError(f"No saved run in {str(folder)!r}: it is missing or was not saved completely. "
                          "Train the model again.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"The saved run in {str(folder)!r} is damaged ({exc}). Train the model again.") from None
    if not isinstance(document, dict) or document.get("format") != TRAINED_FORMAT:
        raise BundleError(f"{str(folder)!r} does not hold a saved run. Train the model again.")
    if document.get("format_version", 0) > TRAINED_VERSION:
        raise BundleError("This run was saved by a newer version of the app. Update the app or train again.")

    def build() -> TrainedModel:
        spec = ModelSpec.from_dict(document["spec"])
        input_shape = tuple(int(d) for d in document["input_shape"])
        model = build_model(spec, input_shape, int(document["n_outputs"]))
        state, _ = load_weights(weights)
        _load_state(model, state, "this saved run")
        baseline = document.get("baseline")
        return TrainedModel(
            model=model,
            spec=spec,
            data_spec=DataSpec.from_dict(document["data_spec"]),
            preprocessor=Preprocessor.from_dict(document["preprocess"]),
            input_shape=input_shape,
            config=TrainConfig.from_dict(document["config"]),
            history=History.from_dict(document["history"]),
            metrics=document.get("metrics") or {},
            baseline=_baseline_from_dict(baseline) if baseline else None,
            device=document.get("device", "CPU"),
            seconds=float(document.get("seconds", 0.0)),
            info=document.get("info") or {},
            test_results=document.get("test_results"),
        )

    try:
        return build()
    except BundleError:
        raise
    except (BuilderError, KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"The saved run in {str(folder)!r} cannot be used ({exc}). Train the model again.") from None


def _baseline_from_dict(data: dict[str, Any]) -> BaselineResult:
    # The baseline's predictions and fitted estimator are not saved: the run keeps its scores.
    return BaselineResult(name=data["name"], description=data.get("description", ""),
                          metrics=dict(data.get("metrics", {})), predictions=pd.DataFrame())


def _write_file_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ==================================================================================================
# Small helpers
# ==================================================================================================


def _json_bytes(value: Any) -> bytes:
    return json.dumps(strict(value), indent=2, allow_nan=False).encode()
