"""Saved runs: the workspace's fast form of a trained model (weights and ``trained.json``, no ONNX).

Reloading one gives outputs identical to the saved model's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

import builder
from builder.baselines import BaselineResult
from builder.data import DataSpec
from builder.data.sources import kind_of, load_preprocessor, shape_of
from builder.errors import BuilderError, BundleError
from builder.export.layout import WEIGHTS
from builder.export.weights import load_state, load_weights, rebuild_model, weights_bytes
from builder.jsonsafe import plain
from builder.spec import ModelSpec
from builder.train import History, TrainConfig
from builder.trained import TrainedModel

TRAINED_FORMAT = "builder.trained-run"
TRAINED_VERSION = 2  # the same rule for saved runs
TRAINED_JSON = "trained.json"


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
        # No indent: json's C encoder runs only without one (3x faster on 20,000 kept test rows).
        _write_file_atomically(folder / TRAINED_JSON, json.dumps(plain(document)).encode())
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
        model = rebuild_model(spec, shape_of(preprocessor), input_shape, int(document["n_outputs"]))
        state, _ = load_weights(weights)
        load_state(model, state, "this saved run")
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
