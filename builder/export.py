"""Export bundles and saved runs: a trained model in forms that run somewhere else.

Two on-disk forms of a ``TrainedModel``, for every kind of data (a table, images, text, a time
series) and every task (regression, classification, forecast, anomaly):

* **Export bundle** (``write_bundle`` / ``read_bundle``): one ``.zip`` for people outside the app.
  It holds the weights (``model.safetensors``, spec JSON in its metadata), ``spec.json``,
  ``preprocess.json`` (the preprocessor's own ``to_dict()``), ``model.onnx`` (checked against torch
  with onnxruntime before anything is written), readable PyTorch code (``model.py``), a standalone
  ``predict.py`` with the app's own data modules copied next to it unchanged (``preprocess.py``
  always; ``read.py`` for table files; ``images.py``, ``text.py`` or ``timeseries.py`` by kind),
  ``requirements.txt``, ``metrics.json``, a ``README.md`` model card, sample input
  (``sample_input.csv``, or a ``samples/`` folder of images) and the ``bundle.json`` manifest that
  ``read_bundle`` starts from.
* **Saved run** (``save_trained`` / ``load_trained``): the workspace's fast form of a run, without
  ONNX: ``model.safetensors`` plus ``trained.json``. Reloading gives identical outputs.

Every prediction goes through the preprocessor's ``predict_with(raw, run)``: torch in the app and in
``Bundle.predict``, onnxruntime in the bundle's ``predict.py``. Models are rebuilt inside the data
shape's ``scope()`` (a text model's Embedding reads token ids).

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
import re
import struct
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
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
from builder.data import DataSpec
from builder.data.images import IMAGE_EXTENSIONS, ImageSet
from builder.data.preprocess import ANOMALY_TASK, parse_datetime
from builder.data.sources import DataShape, kind_of, load_preprocessor, shape_of
from builder.errors import BuilderError, BundleError, DataError
from builder.evaluate import METRICS, BaselineResult, compare_to_baseline, verdict
from builder.jsonsafe import plain, strict
from builder.model import build_model
from builder.pipeline import PREDICT_CHUNK_ROWS, TrainedModel
from builder.safezip import EXPORT_AGAIN, NOT_A_BUNDLE, MiB, open_zip, read_member
from builder.spec import FAMILIES, ModelSpec
from builder.train import History, TrainConfig

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "builder.model-bundle"
# Format 1: tables (and anomaly detection on tables). Format 2 adds images, text and series; a table
# bundle is still written as format 1, so an older app keeps reading it, and an older app shown an
# image, text or series bundle says "update the app" instead of failing on its preprocess.json.
BUNDLE_VERSION = 2
TRAINED_FORMAT = "builder.trained-run"
TRAINED_VERSION = 2  # the same rule for saved runs

# ONNX parity: the exported model must agree with torch to this many units on raw outputs
# (measured: <= 1.2e-7 for MLP, CNN, LSTM and Transformer, ~1e-6 for text models, so 1e-4 only
# catches real breakage).
PARITY_TOLERANCE = 1e-4
PARITY_BATCHES = (1, 3, 7)
PARITY_MAX_SAMPLE_ROWS = 1000  # sample inputs checked through the whole path (keeps export fast)
EXPORT_BATCH = 2  # example batch for the exporter; 0 and 1 would be specialised, not dynamic
ONNX_INPUT = "features"
ONNX_OUTPUT = "outputs"
SAMPLE_INPUT_ROWS = 5  # rows of sample_input.csv (a series: at least one window of history)
SAMPLE_IMAGES = 5  # images in the bundle's samples/ folder
SAMPLE_FILE = "sample_input.csv"
SAMPLE_FOLDER = "samples"

MANIFEST = "bundle.json"
WEIGHTS = "model.safetensors"
TRAINED_JSON = "trained.json"
JSON_LIMIT = 64 * MiB  # no JSON member of a real bundle comes near this
SAMPLE_LIMIT = 64 * MiB  # one sample member (an image, the sample table) read back

# What each file is for, shown on the Export page and in the model card.
FILE_PURPOSES = {
    "README.md": "Model card: data, task, quality against a simple baseline, limits, how to use",
    "predict.py": "Standalone script: python predict.py input > predictions.csv",
    "preprocess.py": "The app's preprocessing code, copied unchanged (used by predict.py)",
    "read.py": "The app's file reader, copied unchanged (used by predict.py)",
    "images.py": "The app's image preprocessing code, copied unchanged (used by predict.py)",
    "text.py": "The app's text preprocessing code (tokenizer, vocabulary), copied unchanged",
    "timeseries.py": "The app's time-series preprocessing code, copied unchanged (used by predict.py)",
    "preprocess.json": "Fitted preprocessing steps (fills, scales, categories, vocabulary...) as plain JSON",
    "model.onnx": "The network in ONNX format, for onnxruntime in any language",
    "model.safetensors": "Trained weights (safetensors; the design is in its metadata)",
    "model.py": "The network as readable PyTorch code; load() rebuilds it with the weights",
    "spec.json": "The design as built in the app (layers and settings)",
    "metrics.json": "Test metrics, baseline metrics and a training summary",
    "requirements.txt": "Python packages predict.py needs (pinned)",
    SAMPLE_FILE: "A few raw rows in the input format (without the target)",
    f"{SAMPLE_FOLDER}/": "A few example images in the input format",
    MANIFEST: "Manifest: format version, kind of data, task, columns, classes, input shape",
}
_SAMPLE_PURPOSES = {
    "table": "A few raw rows in the input format (without the target)",
    "text": "A few raw rows with the text column (without the label)",
    "series": "The latest history in the input format: at least one window of rows",
}

_DATA_FOLDER = Path(__file__).resolve().parent / "data"
_PREDICT_TEMPLATE = Path(__file__).resolve().parent / "bundle_files" / "predict.py"
# The app's own modules predict.py needs, by kind of data, copied verbatim: one implementation.
# Each imports only numpy, pandas, Pillow (images) and the standard library at the top.
BUNDLE_MODULES: dict[str, tuple[str, ...]] = {
    "table": ("preprocess.py", "read.py"),
    "text": ("preprocess.py", "read.py", "text.py"),
    "series": ("preprocess.py", "read.py", "timeseries.py"),
    "images": ("preprocess.py", "images.py"),
}

# What raw sample data a caller may give write_bundle: rows for tables, text and series (the
# history); images for an image model (an ImageSet, or (name, bytes) pairs, or image file paths).
SampleData = pd.DataFrame | ImageSet | Sequence[tuple[str, bytes]] | Sequence[str | Path] | None


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


@dataclass
class Bundle:
    """An export bundle read back: everything needed to predict with torch, as the app does.

    Attributes:
        spec: the design.
        data_spec: target, task, input columns, kind of data and its options.
        preprocessor: the fitted preprocessing (a table, image, text or series preprocessor).
        metrics: contents of ``metrics.json``.
        manifest: contents of ``bundle.json``.
        model: the rebuilt network with the bundle's weights, on the CPU, in eval mode.
        input_shape: per-sample input shape after preprocessing.
        n_outputs: raw outputs per sample.
    """

    spec: ModelSpec
    data_spec: DataSpec
    preprocessor: Any
    metrics: dict[str, Any]
    manifest: dict[str, Any]
    model: nn.Module
    input_shape: tuple[int, ...]
    n_outputs: int

    @property
    def task(self) -> str:
        return self.data_spec.task

    @property
    def kind(self) -> str:
        """The kind of data: "table", "images", "text" or "series"."""
        return kind_of(self.preprocessor)

    @property
    def shape(self) -> DataShape:
        """Input and output shape (and the text vocabulary)."""
        return shape_of(self.preprocessor)

    def predict_outputs(self, X: np.ndarray) -> np.ndarray:
        """Raw outputs ``(N, n_outputs)`` for preprocessed inputs, in the app's chunk size."""
        return _forward(self.model, X, self.n_outputs)

    def predict(self, raw: Any, **options: Any) -> pd.DataFrame:
        """Predict raw data exactly as ``TrainedModel.predict`` does (torch + the same preprocessing).

        Args:
            raw: rows for a table or text model; the history for a forecast; images (an
                ``ImageSet``, or a list of image bytes or paths) for an image model.
            **options: ``files=[...]`` names images.

        Raises:
            DataError: a needed column is missing or the data cannot be read.
        """
        return self.preprocessor.predict_with(raw, self.predict_outputs, **options)


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


def _rebuild(spec: ModelSpec, shape: DataShape, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    """The network of ``spec`` with fresh weights, built as training built it (text: token ids)."""
    with shape.scope():
        return build_model(spec, input_shape, n_outputs)


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
# Inputs for the exporter and the parity check
# ==================================================================================================


def random_inputs(trained: TrainedModel | Bundle, n: int, seed: int) -> np.ndarray:
    """``n`` made-up model inputs of the right shape and kind, float32 ``(n, *input_shape)``.

    Tables, images and series are standardised, so standard normal values exercise the usual
    range. Text models read token ids: whole numbers below the vocabulary size, each row a random
    length of real tokens (some unknown, id 1) followed by padding (0).
    """
    shape = tuple(int(d) for d in trained.input_shape)
    rng = np.random.default_rng(seed)
    vocab = trained.shape.vocab_size
    if vocab:
        (length,) = shape
        ids = rng.integers(1, max(vocab, 2), size=(n, length))  # 1 = <unk>, 2.. real tokens
        lengths = rng.integers(1, length + 1, size=n)
        ids[np.arange(length)[None, :] >= lengths[:, None]] = 0  # padding after the text
        return ids.astype(np.float32)
    return rng.standard_normal((n, *shape)).astype(np.float32)


def sample_inputs(trained: TrainedModel | Bundle, sample: SampleData) -> np.ndarray:
    """Model inputs of real sample data (at most ``PARITY_MAX_SAMPLE_ROWS``), through the app's
    own preprocessing: rows, texts or images as ``transform`` makes them; for a series every
    window of the history (the newest when there are more).

    Raises:
        DataError: the sample lacks an input column, or an image cannot be read.
    """
    pre = trained.preprocessor
    kind = kind_of(pre)
    if kind == "images":
        items = _image_items(sample)[:PARITY_MAX_SAMPLE_ROWS]
        return pre.transform([data for _, data in items])
    frame = _sample_frame(sample, kind)
    if kind == "series":
        return _series_windows(pre, frame)
    return pre.transform(frame.head(PARITY_MAX_SAMPLE_ROWS))


def _series_windows(pre: Any, history: pd.DataFrame) -> np.ndarray:
    """Every ``(window, F)`` slice of the regularised, scaled history: ``(M, window, F)``."""
    values = pre.transform(history)  # (N, F)
    window = int(pre.window)
    if len(values) < window:
        return np.zeros((0, window, values.shape[1]), dtype=np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)  # (M, F, window)
    windows = windows.transpose(0, 2, 1)[-PARITY_MAX_SAMPLE_ROWS:]
    return np.ascontiguousarray(windows, dtype=np.float32)


def _sample_frame(sample: SampleData, kind: str) -> pd.DataFrame:
    if not isinstance(sample, pd.DataFrame):
        raise DataError(
            f"The sample data for a model on {_KIND_WORDS[kind]} must be a table of rows; got "
            f"{type(sample).__name__}. Pass the rows the model was trained on."
        )
    return sample


def _image_items(sample: SampleData) -> list[tuple[str, bytes]]:
    """Sample images as ``(name, bytes)``: from an ``ImageSet``, pairs, or image file paths."""
    if isinstance(sample, ImageSet):
        return list(zip(sample.paths, sample.data, strict=True))
    if isinstance(sample, pd.DataFrame | str | bytes | Path) or sample is None:
        raise DataError(
            "The sample data for an image model must be images (the training zip read as an "
            "ImageSet, or a list of (name, bytes)); pass the images the model was trained on."
        )
    items = []
    for item in sample:
        if isinstance(item, str | Path):
            path = Path(item)
            try:
                items.append((path.name, path.read_bytes()))
            except OSError as exc:
                raise DataError(f"The sample image {str(path)!r} cannot be read ({exc.strerror or exc}).") from None
        else:
            name, data = item
            items.append((str(name), bytes(data)))
    return items


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

    The input is float32 ``(batch, *input_shape)``: rows ``(B, F)``, images ``(B, C, H, W)``, a
    series' windows ``(B, window, F)`` or token ids ``(B, T)``.

    Args:
        trained: the trained model.
        example: model inputs to trace with (at least 2 are used); made up if ``None``.

    Returns:
        The ``.onnx`` file's bytes (weights inside, no external data file).

    Raises:
        BundleError: the exporter cannot translate the network.
    """
    model = trained.model.eval()
    if example is None or len(example) < EXPORT_BATCH:
        example = random_inputs(trained, EXPORT_BATCH, seed=0)
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


def _max_diff(trained: TrainedModel, session, X: np.ndarray) -> float:
    if len(X) == 0:
        return 0.0
    expected = trained.predict_outputs(X)
    if not np.isfinite(expected).all():
        raise BundleError(
            "The trained model gives no number (NaN or infinity) for some inputs, so it cannot be "
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


def parity_check(trained: TrainedModel, sample: SampleData = None, onnx_model: bytes | None = None) -> float:
    """Largest absolute difference between torch and onnxruntime on the same model inputs.

    The Export page shows it as "the exported model gives the same answers: max difference 3e-7
    on 200 rows".

    Args:
        trained: the trained model.
        sample: raw sample data (rows, the history of a series, or images; see ``write_bundle``);
            ``None`` checks made-up inputs only.
        onnx_model: the exported model's bytes; exported here when ``None`` (~5 s).

    Returns:
        The max |torch - onnxruntime| over the raw outputs of the sample's inputs (or made-up ones).

    Raises:
        DataError: the sample lacks an input column or an image cannot be read.
        BundleError: the model cannot be exported.
    """
    if onnx_model is None:
        onnx_model = export_onnx(trained)
    session = _session(onnx_model)
    X = random_inputs(trained, max(PARITY_BATCHES), seed=1) if sample is None else sample_inputs(trained, sample)
    return _max_diff(trained, session, X)


def _full_parity(trained: TrainedModel, onnx_model: bytes, sample_X: np.ndarray | None) -> tuple[float, int]:
    """Parity at every batch size in ``PARITY_BATCHES`` and on the sample inputs."""
    session = _session(onnx_model)
    worst, rows = 0.0, 0
    for i, n in enumerate(PARITY_BATCHES):
        worst = max(worst, _max_diff(trained, session, random_inputs(trained, n, seed=100 + i)))
        rows += n
    if sample_X is not None and len(sample_X):
        worst = max(worst, _max_diff(trained, session, sample_X))
        rows += len(sample_X)
    return worst, rows


# ==================================================================================================
# Writing a bundle
# ==================================================================================================


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
    if _has_sample(sample_rows):
        sample_X = sample_inputs(trained, sample_rows)
    samples = _sample_members(trained, sample_rows if _has_sample(sample_rows) else None, notes)

    onnx_model = export_onnx(trained, sample_X)
    max_diff, parity_rows = _full_parity(trained, onnx_model, sample_X)
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


def _has_sample(sample: SampleData) -> bool:
    if sample is None:
        return False
    try:
        return len(sample) > 0
    except TypeError:
        return True


def _purpose(name: str, kind: str) -> str:
    if name.startswith(f"{SAMPLE_FOLDER}/"):
        return "An example image in the input format (python predict.py samples)"
    if name == SAMPLE_FILE:
        return _SAMPLE_PURPOSES.get(kind, FILE_PURPOSES[SAMPLE_FILE])
    return FILE_PURPOSES.get(name, "")


def _sample_members(trained: TrainedModel, sample: SampleData, notes: list[str]) -> dict[str, bytes]:
    """The bundle's sample input: ``sample_input.csv``, or ``samples/<image>`` files."""
    pre = trained.preprocessor
    kind = kind_of(pre)
    if kind == "images":
        if sample is None:
            notes.append("No sample images were given, so the bundle has no samples folder.")
            return {}
        return {f"{SAMPLE_FOLDER}/{name}": data for name, data in _pick_sample_images(sample)}
    columns = input_columns(pre)
    if sample is None:
        notes.append(f"No sample rows were given, so {SAMPLE_FILE} holds only the column names.")
        return {SAMPLE_FILE: pd.DataFrame(columns=columns).to_csv(index=False).encode()}
    frame = _sample_frame(sample, kind)
    if kind == "series":
        rows = _series_history(pre, frame)
        steps = len(pre.regularise(rows)) if len(rows) else 0
        if steps < pre.window:
            notes.append(
                f"The sample history covers only {steps} step(s), fewer than the {pre.window} the model "
                f"reads, so `python predict.py {SAMPLE_FILE}` will ask for more rows. Export with the "
                "whole series."
            )
    else:
        rows = frame.head(SAMPLE_INPUT_ROWS)
    return {SAMPLE_FILE: rows[columns].to_csv(index=False).encode()}


def input_columns(preprocessor: Any) -> list[str]:
    """The raw columns a model reads, in order (empty for images).

    A table: its input columns; text: the text column; a series: the time column and the value
    columns (the forecast column included).
    """
    kind = kind_of(preprocessor)
    if kind == "images":
        return []
    if kind == "text":
        return [preprocessor.text_column]
    if kind == "series":
        return list(dict.fromkeys([preprocessor.time_column, *preprocessor.columns]))
    return list(preprocessor.features)


def _series_history(pre: Any, history: pd.DataFrame) -> pd.DataFrame:
    """The newest raw rows of a history, in time order, covering at least one window of steps.

    Rows keep their raw values (text as written), so ``sample_input.csv`` looks like the training
    file; only rows without a readable time stamp are left out.
    """
    state = pre.to_dict()
    times = parse_datetime(history[pre.time_column], state.get("time_format"))
    order = np.argsort(times.to_numpy(dtype="datetime64[ns]"), kind="stable")
    order = order[~times.isna().to_numpy()[order]]
    ordered = history.iloc[order]
    n = min(len(ordered), max(int(pre.window), SAMPLE_INPUT_ROWS))
    while True:  # duplicated time stamps merge into one step: take more rows until a window fits
        rows = ordered.tail(n)
        if n >= len(ordered) or len(pre.regularise(rows)) >= pre.window:
            return rows.reset_index(drop=True)
        n = min(len(ordered), 2 * n)


def _pick_sample_images(sample: SampleData) -> list[tuple[str, bytes]]:
    """Up to ``SAMPLE_IMAGES`` images, one per class first, under safe unique file names."""
    items = _image_items(sample)
    labels = list(sample.labels) if isinstance(sample, ImageSet) else [None] * len(items)
    chosen: list[int] = []
    seen: set[Any] = set()
    for index, label in enumerate(labels):  # the first image of each class...
        if label is not None and label not in seen and len(chosen) < SAMPLE_IMAGES:
            seen.add(label)
            chosen.append(index)
    for index in range(len(items)):  # ...then the first ones not taken yet
        if len(chosen) >= SAMPLE_IMAGES:
            break
        if index not in chosen:
            chosen.append(index)
    out, used = [], set()
    for index in sorted(chosen):
        name, data = items[index]
        out.append((_unique_name(name, used), data))
    return out


def _unique_name(name: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(name).replace("\\", "/")).name).strip("._") or "image"
    if not base.lower().endswith(IMAGE_EXTENSIONS):
        base += ".png"
    stem, dot, ext = base.rpartition(".")
    candidate, number = base, 2
    while candidate.lower() in used:
        candidate = f"{stem}-{number}{dot}{ext}"
        number += 1
    used.add(candidate.lower())
    return candidate


def _bundle_members(trained: TrainedModel, onnx_model: bytes, samples: dict[str, bytes],
                    max_diff: float, parity_rows: int) -> dict[str, bytes]:
    """Every file of the bundle, README first (it is what a person opens first)."""
    kind = kind_of(trained.preprocessor)
    shape = trained.shape
    spec_json = json.dumps(trained.spec.to_dict(), indent=2)
    manifest = _manifest(trained, samples)
    metrics = _metrics_document(trained, max_diff, parity_rows)
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
        "predict.py": _PREDICT_TEMPLATE.read_bytes(),
        # Verbatim: one implementation of reading and preprocessing, in the app and the bundle.
        **{name: (_DATA_FOLDER / name).read_bytes() for name in BUNDLE_MODULES[kind]},
        "preprocess.json": _json_bytes(trained.preprocessor.to_dict()),
        "model.onnx": onnx_model,
        WEIGHTS: weights,
        "model.py": code.encode(),
        "spec.json": spec_json.encode(),
        "metrics.json": _json_bytes(metrics),
        "requirements.txt": _requirements(kind).encode(),
        **samples,
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


def _metrics_document(trained: TrainedModel, max_diff: float, parity_rows: int) -> dict[str, Any]:
    """``metrics.json``: what the model scores, against what, and how training went."""
    history = trained.history
    kind = kind_of(trained.preprocessor)
    test = dict(trained.metrics.get("test", {}))
    doc: dict[str, Any] = {
        "task": trained.task,
        "kind": kind,
        "target": trained.data_spec.target,
        "input": _input_facts(trained),
        "test": test,
        "metric_meanings": {name: METRICS[name].help for name in test if name in METRICS},
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
        comparisons = compare_to_baseline(trained.task, test, trained.baseline.metrics)
        doc["baseline"] = {
            **trained.baseline.to_dict(),
            "comparison": [c.to_dict() for c in comparisons],
            "verdict": verdict(trained.task, comparisons),
        }
    if trained.task == "forecast":
        doc["forecast_baselines"] = dict(trained.info.get("forecast_baselines") or {})
    if trained.task == ANOMALY_TASK:
        doc["anomaly"] = _anomaly_facts(trained)
    return plain(doc)


def _input_facts(trained: TrainedModel) -> dict[str, Any]:
    """What one input is, per kind of data (metrics.json's "input")."""
    pre = trained.preprocessor
    kind = kind_of(pre)
    if kind == "images":
        channels, height, width = pre.input_shape
        return {"what": "images", "height": height, "width": width, "channels": channels,
                "colour": "grayscale" if channels == 1 else "RGB", "formats": ["PNG", "JPEG", "BMP", "GIF"],
                "classes": plain(list(pre.classes))}
    if kind == "text":
        return {"what": "texts", "text_column": pre.text_column, "max_length": pre.max_length,
                "vocab_size": pre.vocab_size, "classes": plain(list(pre.classes))}
    if kind == "series":
        from builder.data.timeseries import describe_step

        return {"what": "a time series", "time_column": pre.time_column, "columns": pre.columns,
                "target": pre.target, "window": pre.window, "horizon": pre.horizon,
                "step": describe_step(pre.step), "fill": pre.to_dict().get("fill")}
    return {"what": "table rows", "columns": pre.kinds}


def _anomaly_facts(trained: TrainedModel) -> dict[str, Any]:
    pre = trained.preprocessor
    results = trained.test_results or {}
    percentiles = {}
    for split, key in (("validation", "val_errors"), ("test", "test_errors")):
        errors = np.asarray(results.get(key) or [], dtype=np.float64)
        if errors.size:
            percentiles[split] = {name: float(np.quantile(errors, q)) for name, q in _PERCENTILES}
    return {
        "threshold": pre.threshold,
        "quantile": pre.threshold_quantile,
        "error_percentiles": percentiles,
        "anomaly_score": "mean squared difference between a row (after preprocessing: standardised "
                         "numbers, one-hot categories) and the model's rebuild of it",
        "is_anomaly": "true when anomaly_score is above the threshold",
    }


_PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))


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
        return f"Forecasts the next {pre.horizon} step(s) of '{pre.target}' from the last {pre.window}."
    if kind == "images":
        channels, height, width = pre.input_shape
        return f"Classifies {width}x{height} images into {len(pre.classes)} classes."
    if kind == "text":
        return f"Predicts '{trained.data_spec.target}' from the text in '{pre.text_column}' ({len(pre.classes)} classes)."
    return f"Predicts '{trained.data_spec.target}' ({_TASK_WORDS.get(trained.task, trained.task)})."


_TASK_WORDS = {
    "regression": "a number; regression",
    "binary": "one of two classes; binary classification",
    "multiclass": "one of several classes; multiclass classification",
    "forecast": "the next values of a time series; forecasting",
    ANOMALY_TASK: "how unusual each row is; anomaly detection",
}
_KIND_WORDS = {"table": "a table", "images": "images", "text": "text", "series": "a time series"}


# ==================================================================================================
# The model card
# ==================================================================================================


def model_card(trained: TrainedModel, metrics: dict[str, Any] | None = None,
               samples: Sequence[str] | None = None) -> str:
    """The bundle's ``README.md``: data, task, quality against the baseline, limits, how to use.

    Args:
        trained: the trained model.
        metrics: the ``metrics.json`` document; built here when ``None``.
        samples: the bundle's sample members (``sample_input.csv`` or ``samples/...``).
    """
    metrics = metrics or _metrics_document(trained, math.nan, 0)
    kind = kind_of(trained.preprocessor)
    samples = list(samples) if samples is not None else [SAMPLE_FILE]
    family = FAMILIES.get(trained.spec.effective_family())
    family_title = family.title if family else trained.spec.family
    rows = trained.info.get("rows", {})
    unit = {"images": "images", "text": "texts", "series": "windows"}.get(kind, "rows")
    lines = [
        f"# Model card: {_card_title(trained)}",
        "",
        f"Made with the visual model builder {builder.__version__} "
        f"on {trained.info.get('trained_at') or time.strftime('%Y-%m-%d')}.",
        "",
        "## What it does",
        "",
        *_what_it_does(trained),
        "",
        "## Data",
        "",
        *_data_section(trained),
        "",
    ]
    if rows:
        lines.append(
            f"{unit.capitalize()}: " + ", ".join(f"{n:,} for {split}" for split, n in rows.items())
            + f". The test {unit} were never used in training: the scores below come from them."
        )
    if trained.info.get("source"):
        lines.append(f"Source file: `{trained.info['source']}`.")
    shape = trained.input_shape
    lines += [
        "",
        "## Model",
        "",
        f"{family_title}: {len(trained.spec.layers)} layer(s) plus the output layer, "
        f"{shape[0] if len(shape) == 1 else 'x'.join(map(str, shape))} inputs "
        f"after preprocessing. Trained for {trained.history.epochs_run} epoch(s) in "
        f"{trained.seconds:.1f} s on {trained.device}; "
        f"the weights of epoch {trained.history.best_epoch} (lowest validation loss) are kept.",
        "",
        "## How good it is (test data)",
        "",
        *_quality_section(trained, metrics),
        "",
        "## Limits",
        "",
        *_limits(trained, unit),
        "",
        "## How to use it",
        "",
        *_how_to_use(trained, metrics, samples),
        "",
        "## Files",
        "",
        "| File | What it is |",
        "|---|---|",
        *[f"| `{name}` | {purpose} |" for name, purpose in _card_files(kind, samples)],
        "",
    ]
    return "\n".join(lines)


def _card_title(trained: TrainedModel) -> str:
    pre = trained.preprocessor
    kind = kind_of(pre)
    if trained.task == ANOMALY_TASK:
        return "finding unusual rows"
    if trained.task == "forecast":
        return f"forecasting `{pre.target}`"
    if kind == "images":
        return "classifying images"
    if kind == "text":
        return f"predicting `{trained.data_spec.target}` from text"
    return f"predicting `{trained.data_spec.target}`"


def _what_it_does(trained: TrainedModel) -> list[str]:
    pre = trained.preprocessor
    kind = kind_of(pre)
    classes = list(pre.classes)
    answers = [f"Possible answers: {', '.join(f'`{c}`' for c in classes)}."] if classes else []
    if trained.task == ANOMALY_TASK:
        threshold, quantile = pre.threshold, pre.threshold_quantile
        share = f" ({quantile:.0%} of the validation rows score at or below it)" if quantile else ""
        return [
            "It scores how unusual each row is. The network (an autoencoder) squeezes a row through "
            "a narrow layer and rebuilds it; rows like the training rows come back nearly unchanged, "
            "unusual ones do not.",
            "",
            "- `anomaly_score`: the mean squared difference between the row and its rebuild, after "
            "preprocessing (standardised numbers, one column per category). Higher is more unusual.",
            f"- `is_anomaly`: `True` when `anomaly_score` is above the threshold **{_number(threshold)}**{share}, "
            "so a row as ordinary as most training rows is flagged only rarely.",
        ]
    if trained.task == "forecast":
        from builder.data.timeseries import describe_step

        return [
            f"It forecasts the next **{pre.horizon}** step(s) of **{pre.target}** (one step = "
            f"{describe_step(pre.step)}) from the last {pre.window} steps of "
            f"{', '.join(f'`{c}`' for c in pre.columns)}.",
        ]
    if kind == "images":
        return [f"It tells images apart: each image gets one of {len(classes)} classes, with a probability "
                "for each.", *answers]
    if kind == "text":
        return [f"It reads the text in `{pre.text_column}` and predicts **{trained.data_spec.target}** "
                f"({_TASK_WORDS.get(trained.task, trained.task)}).", *answers]
    return [f"It predicts **{trained.data_spec.target}** ({_TASK_WORDS.get(trained.task, trained.task)}).",
            *answers]


def _data_section(trained: TrainedModel) -> list[str]:
    pre = trained.preprocessor
    kind = kind_of(pre)
    if kind == "images":
        channels, height, width = pre.input_shape
        colour = "grayscale" if channels == 1 else "colour (RGB)"
        return [
            "Input: image files (PNG, JPEG, BMP or GIF; the first frame of a GIF). Each image is "
            f"converted to {colour} (transparent parts laid on white), resized to {width}x{height} "
            "pixels (Pillow's bilinear filter), and its pixels are scaled with the mean and spread "
            "of the training images, per channel.",
        ]
    if kind == "text":
        return [
            f"Input: a table with the column `{pre.text_column}` holding the texts. Each text is "
            "normalised (NFKC, lower case) and cut into tokens: words and numbers; in Chinese, "
            "Japanese, Thai and similar scripts every character is a token. Punctuation is dropped.",
            f"The vocabulary holds {pre.vocab_size:,} tokens (padding and 'unknown' included); a "
            f"word never seen in training counts as unknown. The first {pre.max_length} tokens of "
            "a text are read; a missing text reads as empty.",
        ]
    if kind == "series":
        from builder.data.timeseries import FILL_WORDS, describe_step

        state = pre.to_dict()
        season = f"; one season is {pre.season} steps" if pre.season else ""
        return [
            f"Input: the history of the series as a table: the time column `{pre.time_column}` and the "
            f"value column(s) {', '.join(f'`{c}`' for c in pre.columns)}, in any row order.",
            f"The rows are put on a regular grid of {describe_step(pre.step)}{season}. Rows sharing a "
            "time stamp are averaged, a time stamp off the step moves to the nearest step, and gaps "
            f"and empty values are filled by {FILL_WORDS.get(state.get('fill'), state.get('fill'))}. "
            f"Each column is scaled with the mean and spread of the training part.",
        ]
    kinds = pre.kinds
    return [
        f"Input columns ({len(kinds)}), as they must appear in new files:",
        "",
        "| Column | Read as |",
        "|---|---|",
        *[f"| `{name}` | {how} |" for name, how in kinds.items()],
    ]


def _quality_section(trained: TrainedModel, metrics: dict[str, Any]) -> list[str]:
    if trained.task == "forecast":
        return _forecast_table(metrics)
    if trained.task == ANOMALY_TASK:
        return _anomaly_section(metrics)
    return _metrics_table(trained, metrics)


def _metrics_table(trained: TrainedModel, metrics: dict[str, Any]) -> list[str]:
    test = metrics.get("test") or {}
    if not test:
        return ["No test data was scored."]
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


def _forecast_table(metrics: dict[str, Any]) -> list[str]:
    test = metrics.get("test") or {}
    if not test:
        return ["No test windows were scored."]
    naive = metrics.get("forecast_baselines") or {}
    names = list(naive)
    lines = [
        "Errors over every predicted step of every test window, in the units of the series, next "
        "to three naive forecasts any model should beat:",
        "",
        "| Metric | This model | " + " | ".join(f"{n.capitalize()} forecast" for n in names) + " | Meaning |",
        "|---|---|" + "---|" * len(names) + "---|",
    ]
    for name, value in test.items():
        info = METRICS.get(name)
        cells = [_fmt(name, naive[n][name]) if name in naive[n] else "-" for n in names]
        lines.append(f"| {info.label if info else name} | {_fmt(name, value)} | " + " | ".join(cells)
                     + f" | {info.help if info else ''} |")
    baseline = metrics.get("baseline") or {}
    if baseline.get("verdict"):
        best = str(baseline.get("name", "naive forecast")).lower()
        lines += ["", f"The best of them on these test windows is the {best}. {baseline['verdict']}"]
    return lines


def _anomaly_section(metrics: dict[str, Any]) -> list[str]:
    facts = metrics.get("anomaly") or {}
    test = metrics.get("test") or {}
    lines = []
    if test:
        lines += ["| Metric | Test rows | Meaning |", "|---|---|---|"]
        for name, value in test.items():
            info = METRICS.get(name)
            lines.append(f"| {info.label if info else name} | {_fmt(name, value)} | {info.help if info else ''} |")
        lines.append("")
    lines.append(f"Threshold: **{_number(facts.get('threshold'))}**"
                 + (f", the {facts['quantile']:.0%} point of the validation rows' scores."
                    if facts.get("quantile") else "."))
    percentiles = facts.get("error_percentiles") or {}
    if percentiles:
        lines += ["", "Anomaly scores of the held-out rows:", "",
                  "| Rows | Median | 90% below | 99% below | Highest |", "|---|---|---|---|---|"]
        for split, values in percentiles.items():
            lines.append(f"| {split} | " + " | ".join(_number(values.get(k)) for k, _ in _PERCENTILES) + " |")
    lines += ["", "There is no baseline: nothing in the data says which rows really are anomalies. "
                  "Check the most unusual rows by hand before you act on them."]
    return lines


def _limits(trained: TrainedModel, unit: str) -> list[str]:
    pre = trained.preprocessor
    kind = kind_of(pre)
    trained_rows = trained.info.get("rows", {}).get("train")
    seen = f"the {trained_rows:,} training {unit}" if isinstance(trained_rows, int) else f"the training {unit}"
    causes = "- It finds patterns, not causes: do not read a prediction as the reason for an outcome."
    if trained.task == ANOMALY_TASK:
        quantile = pre.threshold_quantile
        rate = f" (about {1 - quantile:.1%} of them with this threshold)" if quantile else ""
        return [
            f"- It learned what ordinary looks like from {seen}. If those rows held anomalies, "
            "similar rows will look ordinary.",
            "- Unusual is not wrong: a flagged row deserves a look, not a verdict. By design a few "
            f"ordinary rows are flagged too{rate}.",
            "- Missing values are filled the way training filled them; categories never seen in "
            "training count as \"other\".",
        ]
    if trained.task == "forecast":
        return [
            f"- It learned from {seen} of one series. It assumes the future behaves like the past: "
            "a new trend, a holiday or a promotion it never saw will surprise it.",
            "- Forecasts further ahead are usually less accurate than the next step.",
            f"- Give it the newest history: it reads the last {pre.window} steps and forecasts from "
            "the last time stamp given. Gaps are filled, so a long gap weakens the forecast.",
        ]
    if kind == "images":
        return [
            f"- It knows only the classes it learned from {seen}: every image gets one of them, "
            "even a picture of something else entirely.",
            "- Images unlike the training ones (other lighting, angle, camera, background, or much "
            "larger and shrunk a lot) get less reliable answers.",
            causes,
        ]
    if kind == "text":
        return [
            f"- It learned from {seen}: texts on other topics, in another language or style get less "
            "reliable answers, and words never seen in training are ignored as unknown.",
            f"- Only the first {pre.max_length} tokens of a text are read.",
            causes,
            "- Texts may carry past biases. Check the errors per group before using it for decisions "
            "about people.",
        ]
    return [
        f"- It learned only from {seen} of one file. Rows unlike them (values outside the ranges "
        "seen, new kinds of customers or products) get less reliable predictions.",
        "- Missing values are filled the way training filled them (the median for numbers, the most "
        "common value for categories); categories never seen in training count as \"other\".",
        causes,
        "- The data may carry past biases. Check the errors per group (region, age band...) before "
        "using it for decisions about people, and re-train when the data changes.",
    ]


def _how_to_use(trained: TrainedModel, metrics: dict[str, Any], samples: list[str]) -> list[str]:
    pre = trained.preprocessor
    kind = kind_of(pre)
    packages = "numpy, pandas, Pillow and onnxruntime" if kind == "images" else "numpy, pandas and onnxruntime"
    if kind == "images":
        example = f"python predict.py {SAMPLE_FOLDER} > predictions.csv" if samples else \
            "python predict.py my_images > predictions.csv"
        commands = [example, "python predict.py photos.zip > predictions.csv",
                    "python predict.py one_image.png"]
        explain = (
            "The input is a folder of images (sub-folders included), a .zip of images, or one image "
            "file. Other files are skipped. The output has one row per image, sorted by path: `file` "
            "(the path inside the folder or zip), `prediction` (the class) and one "
            "`probability_<class>` column per class."
        )
        folder = SAMPLE_FOLDER if samples else "my_images"
        reader, raw = "read_images", f"files, images = read_images('{folder}')    # a folder, a .zip or one image"
        call = "pre.predict_with(images, run, files=files)"
    else:
        example = f"python predict.py {SAMPLE_FILE} > predictions.csv"
        commands = [example]
        reader, raw = "read_rows", f"rows = read_rows('{SAMPLE_FILE}')         # read as the app reads tables"
        call = "pre.predict_with(rows, run)"
        if trained.task == "forecast":
            explain = (
                f"The input is the history: a table file (.csv, .tsv, .txt, .xlsx, .parquet or .json) "
                f"with `{pre.time_column}` and {', '.join(f'`{c}`' for c in pre.columns)}, at least "
                f"{pre.window} steps, newest last or in any order. The output has {pre.horizon} rows, "
                f"one per future step after the last time stamp: `{pre.time_column}` and `prediction`."
            )
        elif trained.task == ANOMALY_TASK:
            explain = (
                "The input is a table file (.csv, .tsv, .txt, .xlsx, .parquet or .json) with the "
                "columns above. The output has one row per input row, in the same order: "
                "`anomaly_score` and `is_anomaly`."
            )
        else:
            columns = f"the column `{pre.text_column}`" if kind == "text" else "the columns above"
            target = trained.data_spec.target
            explain = (
                f"The input is a table file (.csv, .tsv, .txt, .xlsx, .parquet or .json) with {columns}; "
                f"`{target}` may be present and is ignored. The output has one row per input row, in "
                "the same order, with a `prediction` column"
                + (" and one `probability_<class>` column per class." if pre.classes
                   else " (in the units of the target).")
            )
    parity = metrics.get("onnx_parity", {})
    shape = ", ".join(map(str, trained.input_shape))
    return [
        f"Standalone, with only {packages}:",
        "",
        "```",
        "pip install -r requirements.txt",
        *commands,
        "```",
        "",
        explain,
        "",
        "In Python with PyTorch (`model.py` is the network as plain code; the same preprocessing as "
        "`predict.py`):",
        "",
        "```python",
        "import torch",
        "from model import load",
        f"from predict import load_preprocessor, {reader}",
        "pre = load_preprocessor()                    # the app's own preprocessing code",
        "net = load('model.safetensors')",
        "run = lambda X: net(torch.from_numpy(X)).detach().numpy()",
        raw,
        f"predictions = {call}",
        "```",
        "",
        f"With ONNX in any language: `model.onnx` takes a float32 input `{ONNX_INPUT}` of shape "
        f"(batch, {shape}) ({_onnx_input_words(trained)}) and gives `{ONNX_OUTPUT}` "
        f"(batch, {trained.n_outputs}): {_onnx_output_words(trained)} "
        f"It was checked against PyTorch before export: largest difference "
        f"{parity.get('max_abs_diff', float('nan')):.1g} on {parity.get('rows', 0)} inputs.",
    ]


def _onnx_input_words(trained: TrainedModel) -> str:
    kind = kind_of(trained.preprocessor)
    return {
        "images": "images as `ImagePreprocessor.transform` makes them: channels, height, width",
        "text": "token ids as `TextPreprocessor.transform` makes them, 0 = padding",
        "series": "windows of the scaled series as `SeriesPreprocessor.last_window` makes them: steps, columns",
    }.get(kind, "rows as `Preprocessor.transform` makes them")


def _onnx_output_words(trained: TrainedModel) -> str:
    return {
        "regression": "the prediction in standardised units (times the target's std plus its mean, "
                      "see `preprocess.json`).",
        "binary": "one logit; the probability of the second class is 1 / (1 + exp(-logit)).",
        "multiclass": "one logit per class; softmax gives the probabilities.",
        "forecast": "one value per future step; `SeriesPreprocessor.decode_forecast` turns them into "
                    "the series' units.",
        ANOMALY_TASK: "the rebuilt row; the anomaly score is the mean squared difference to the input.",
    }.get(trained.task, "raw outputs.")


def _card_files(kind: str, samples: list[str]) -> list[tuple[str, str]]:
    names = ["README.md", "predict.py", *BUNDLE_MODULES[kind], "preprocess.json", "model.onnx", WEIGHTS,
             "model.py", "spec.json", "metrics.json", "requirements.txt"]
    rows = [(name, FILE_PURPOSES[name]) for name in names]
    if any(s.startswith(f"{SAMPLE_FOLDER}/") for s in samples):
        rows.append((f"{SAMPLE_FOLDER}/", FILE_PURPOSES[f"{SAMPLE_FOLDER}/"]))
    elif SAMPLE_FILE in samples:
        rows.append((SAMPLE_FILE, _SAMPLE_PURPOSES.get(kind, FILE_PURPOSES[SAMPLE_FILE])))
    rows.append((MANIFEST, FILE_PURPOSES[MANIFEST]))
    return rows


def _fmt(metric: str, value: Any) -> str:
    from builder.evaluate import format_metric

    try:
        return format_metric(metric, float(value))
    except (BuilderError, TypeError, ValueError, KeyError):
        return f"{value:.4g}" if isinstance(value, float) else str(value)


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


# ==================================================================================================
# Reading a bundle
# ==================================================================================================


def read_bundle(source: str | Path | bytes | Any) -> Bundle:
    """Read an export bundle (any kind of data) and rebuild the model with its weights.

    Args:
        source: a path, the zip's bytes, or a binary file-like object (e.g. an upload).

    Returns:
        A ``Bundle`` whose ``predict(raw)`` gives the app's predictions.

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
    preprocessor = _parse(lambda: load_preprocessor(json.loads(members["preprocess.json"])), "preprocess.json")
    data_spec = _parse(lambda: DataSpec.from_dict(manifest["data_spec"]), MANIFEST)
    input_shape = tuple(int(d) for d in manifest["input_shape"])
    n_outputs = int(manifest["n_outputs"])
    state, _ = load_weights(weights)
    model = _parse(lambda: _rebuild(spec, shape_of(preprocessor), input_shape, n_outputs), "spec.json")
    _load_state(model, state, "this bundle")
    return Bundle(spec, data_spec, preprocessor, metrics, manifest, model, input_shape, n_outputs)


def bundle_samples(source: str | Path | bytes | Any) -> pd.DataFrame | list[tuple[str, bytes]]:
    """The sample input a bundle carries: its ``sample_input.csv`` as raw rows (read as the app
    reads tables), or its ``samples/`` images as ``(name, bytes)``. Empty when it has none.

    Raises:
        BundleError: the file is not a zip or is unsafe.
    """
    from builder.data import read_table

    with open_zip(source) as zf:
        names = zf.namelist()
        images = sorted(n for n in names if n.startswith(f"{SAMPLE_FOLDER}/") and n.lower().endswith(IMAGE_EXTENSIONS))
        if images:
            return [(name.removeprefix(f"{SAMPLE_FOLDER}/"), read_member(zf, name, SAMPLE_LIMIT)) for name in images]
        if SAMPLE_FILE in names:
            data = read_member(zf, SAMPLE_FILE, SAMPLE_LIMIT)
            try:
                return read_table(data, name=SAMPLE_FILE, drop_empty_rows=False)
            except DataError:
                return pd.DataFrame()  # a header-only sample: nothing to show
    return pd.DataFrame()


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


def _parse(make: Callable[[], Any], name: str) -> Any:
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
        trained: the trained model (any kind of data, any task).
        folder: the run's folder (created if missing).

    Returns:
        The folder.

    Raises:
        BundleError: the folder cannot be written.
    """
    folder = Path(folder)
    kind = kind_of(trained.preprocessor)
    document = {
        "format": TRAINED_FORMAT,
        "format_version": 1 if kind == "table" else TRAINED_VERSION,
        "builder_version": builder.__version__,
        "kind": kind,
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
    """Load a run written by ``save_trained`` (any version, any kind); its outputs are identical to
    the saved model's.

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
        preprocessor = load_preprocessor(document["preprocess"])
        input_shape = tuple(int(d) for d in document["input_shape"])
        model = _rebuild(spec, shape_of(preprocessor), input_shape, int(document["n_outputs"]))
        state, _ = load_weights(weights)
        _load_state(model, state, "this saved run")
        baseline = document.get("baseline")
        return TrainedModel(
            model=model,
            spec=spec,
            data_spec=DataSpec.from_dict(document["data_spec"]),
            preprocessor=preprocessor,
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
