"""ONNX export of the network (dynamic batch) and its parity check against torch.

The dynamo exporter runs with its warnings silenced; onnxruntime must then give the raw outputs
torch gives, within ``PARITY_TOLERANCE``, or no bundle is written. (Not named ``onnx.py``, so that
``from builder.export import onnx`` never hides the onnx package.)
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
import warnings
from collections.abc import Iterator

import numpy as np
import torch

from builder.errors import BundleError
from builder.export.layout import ONNX_INPUT, ONNX_OUTPUT, SampleData
from builder.export.samples import random_inputs, sample_inputs
from builder.trained import TrainedModel

log = logging.getLogger(__name__)


# ONNX parity: the exported model must agree with torch to this many units on raw outputs
# (measured: <= 1.2e-7 for MLP, CNN, LSTM and Transformer, ~1e-6 for text models, so 1e-4 only
# catches real breakage).
PARITY_TOLERANCE = 1e-4
PARITY_BATCHES = (1, 3, 7)
EXPORT_BATCH = 2  # example batch for the exporter; 0 and 1 would be specialised, not dynamic


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's warnings (optional torchvision ops, deprecations): not the user's
    business, and the CLI's stderr should carry only what matters."""
    with _quiet_exporter_log():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield


@contextlib.contextmanager
def _quiet_exporter_log() -> Iterator[None]:
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


# --- the exporter's one-off start-up, paid on a background thread --------------------------------

# The first export in a process costs ~3 s more than the next ones: importing torch.onnx,
# onnxscript and torch.export, and building the exporter's operator registry. A command that will
# export anyway starts that on a thread while it reads and profiles the data, and waits for it
# before preparing and training, so two threads never import torch's compiler modules at once (a
# known source of "partially initialized module"). The overlap is partial, the warm-up being
# Python work that holds the GIL: on W1's 200k rows reading and profiling took ~2 s longer, and the
# export plus the first optimizer ~3.5 s less.
_warm_up: threading.Thread | None = None
_warm_up_lock = threading.Lock()


def warm_up_exporter() -> None:
    """Start the exporter's one-off start-up on a background thread (once per process).

    ``wait_for_exporter`` (and ``export_onnx``, which calls it) waits until it has finished. A
    failure here is only logged: the real export then pays the start-up itself, or says why not.
    """
    global _warm_up
    with _warm_up_lock:
        if _warm_up is None:
            _warm_up = threading.Thread(target=_export_a_tiny_model, name="onnx-exporter-warm-up", daemon=True)
            _warm_up.start()


def wait_for_exporter() -> None:
    """Block until a started warm-up (``warm_up_exporter``) has finished; at once if none was."""
    with _warm_up_lock:
        thread = _warm_up
    if thread is not None:
        thread.join()


def _export_a_tiny_model() -> None:
    started = time.perf_counter()
    try:
        # Not ``warnings.catch_warnings``: it swaps the process-wide filters, which the main thread
        # may be using meanwhile. An eval-mode Linear raises one deprecation note, filtered at import.
        with _quiet_exporter_log(), torch.inference_mode(False):
            torch.onnx.export(
                torch.nn.Linear(2, 1).eval(), (torch.zeros(EXPORT_BATCH, 2),), dynamo=True,
                external_data=False, verbose=False, dynamic_shapes=({0: torch.export.Dim("batch")},),
            )
    except Exception:  # the real export will meet the same problem and name it
        log.debug("ONNX exporter warm-up failed", exc_info=True)
        return
    log.debug("ONNX exporter warmed up in %.1f s", time.perf_counter() - started)


# torch 2.13's exporter, on any model: internal, and nothing a user can act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)


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
    wait_for_exporter()
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


def full_parity(trained: TrainedModel, onnx_model: bytes, sample_X: np.ndarray | None) -> tuple[float, int]:
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
