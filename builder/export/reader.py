"""Reading a bundle back: check it, rebuild the model, predict exactly as the app does.

The manifest, the format version and the members' hashes are checked before anything is used;
``bundle_samples`` gives the sample input a bundle carries.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from builder.data import DataSpec
from builder.data.images import IMAGE_EXTENSIONS
from builder.data.sources import DataShape, kind_of, load_preprocessor, shape_of
from builder.errors import BuilderError, BundleError, DataError
from builder.export.layout import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    JSON_LIMIT,
    MANIFEST,
    SAMPLE_FILE,
    SAMPLE_FOLDER,
    SAMPLE_LIMIT,
    WEIGHTS,
)
from builder.export.weights import load_state, load_weights, rebuild_model
from builder.safezip import EXPORT_AGAIN, NOT_A_BUNDLE, open_zip, read_member
from builder.spec import ModelSpec
from builder.trained import PREDICT_CHUNK_ROWS


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
    model = _parse(lambda: rebuild_model(spec, shape_of(preprocessor), input_shape, n_outputs), "spec.json")
    load_state(model, state, "this bundle")
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
