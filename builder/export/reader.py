"""Reading a bundle back: check it, rebuild the model, predict exactly as the app does.

The manifest, the format version and the members' hashes are checked before anything is used, each
JSON member's size in values and depth before Python builds it, and preprocess.json against the
manifest (kind, task, input shape, outputs, classes, input names, vocabulary) before the bundle is
used; ``bundle_samples`` gives the sample input a bundle carries.
"""

from __future__ import annotations

import hashlib
import json
import logging
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
from builder.jsonsafe import plain
from builder.safezip import EXPORT_AGAIN, NOT_A_BUNDLE, open_zip, read_member
from builder.spec import ModelSpec
from builder.trained import PREDICT_CHUNK_ROWS

log = logging.getLogger(__name__)

# A JSON member of up to JSON_LIMIT bytes can still become gigabytes of Python objects ("[{}, {},
# ...]": 1.5 GB from 64 MB). Counted on the bytes before parsing, none of a real bundle's members
# comes near these: a text model's 20,000-word vocabulary is 20,000 values.
MAX_JSON_VALUES = 8_000_000  # commas, so about one per value
MAX_JSON_CONTAINERS = 1_000_000  # lists and objects, 60 bytes or more each once parsed
MAX_JSON_DEPTH = 32  # real members nest 5 deep; deeper ones stop Python's recursive code


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
        warn_unlisted(zf, manifest)
        members = {name: read_member(zf, name, JSON_LIMIT) for name in ("spec.json", "preprocess.json")}
        weights = read_member(zf, WEIGHTS)
        metrics = _read_json_member(zf, "metrics.json") if "metrics.json" in zf.namelist() else {}
    _check_hashes(manifest, {**members, WEIGHTS: weights})
    spec = _parse(lambda: ModelSpec.from_dict(_json_value(members["spec.json"], "spec.json")), "spec.json")
    state = _json_value(members.pop("preprocess.json"), "preprocess.json")
    preprocessor = _parse(lambda: load_preprocessor(state), "preprocess.json")
    del state
    check_preprocessing(preprocessor, manifest)
    data_spec = _parse(lambda: DataSpec.from_dict(manifest["data_spec"]), MANIFEST)
    input_shape = tuple(manifest["input_shape"])
    n_outputs = manifest["n_outputs"]
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


def unlisted_members(zf: zipfile.ZipFile, manifest: dict[str, Any] | None = None) -> list[str]:
    """The files in a bundle's zip that its bundle.json does not list: added after the export (a
    bundle is code, so someone may have slipped in a module)."""
    listed = set((manifest if manifest is not None else _read_json_member(zf, MANIFEST)).get("files") or {})
    return sorted(name for name in zf.namelist() if not name.endswith("/") and name not in listed | {MANIFEST})


def warn_unlisted(zf: zipfile.ZipFile, manifest: dict[str, Any] | None = None) -> list[str]:
    """Log a warning naming the unlisted files (``unlisted_members``); returns them."""
    extra = unlisted_members(zf, manifest)
    if extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        log.warning("This bundle holds files that did not come with its export (%s): they are not used by the "
                    "app, but a bundle is code, so check where it came from.", shown)
    return extra


def _read_json_member(zf: zipfile.ZipFile, name: str) -> dict[str, Any]:
    value = _json_value(read_member(zf, name, JSON_LIMIT), name)
    if not isinstance(value, dict):
        raise BundleError(f"{NOT_A_BUNDLE}: its {name} is not a JSON object. {EXPORT_AGAIN}")
    return value


def _json_value(data: bytes, name: str) -> Any:
    """A JSON member parsed, once its values, lists and objects are counted on the bytes (commas
    and brackets inside text only over-count) and its depth is known to be sane.

    Raises:
        BundleError: not JSON, or larger or deeper than any bundle's member.
    """
    values, containers = data.count(b",") + 1, data.count(b"[") + data.count(b"{")
    if values > MAX_JSON_VALUES:
        raise BundleError(
            f"{NOT_A_BUNDLE}: its {name} holds about {values:,} values, far more than an exported "
            f"model's ({MAX_JSON_VALUES:,} at most). {EXPORT_AGAIN}"
        )
    if containers > MAX_JSON_CONTAINERS:
        raise BundleError(
            f"{NOT_A_BUNDLE}: its {name} holds {containers:,} lists and objects, far more than an "
            f"exported model's ({MAX_JSON_CONTAINERS:,} at most). {EXPORT_AGAIN}"
        )
    try:
        value = json.loads(data)
        too_deep = _depth(value) > MAX_JSON_DEPTH
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BundleError(f"{NOT_A_BUNDLE}: its {name} is not valid JSON. {EXPORT_AGAIN}") from None
    except RecursionError:  # how json answers nesting deeper than the interpreter allows
        too_deep = True
    if too_deep:
        raise BundleError(
            f"{NOT_A_BUNDLE}: its {name} is nested more than {MAX_JSON_DEPTH} levels deep, which no "
            f"exported model's is. {EXPORT_AGAIN}"
        )
    return value


def _depth(value: Any) -> int:
    """How deep lists and objects nest in ``value`` (0 for a plain value), without recursion;
    counting stops past ``MAX_JSON_DEPTH``."""
    deepest, stack = 0, [(value, 1)] if isinstance(value, dict | list) else []
    while stack and deepest <= MAX_JSON_DEPTH:
        item, level = stack.pop()
        deepest = max(deepest, level)
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def check_preprocessing(preprocessor: Any, manifest: dict[str, Any]) -> None:
    """Refuse a preprocess.json that does not belong to the model its bundle.json describes: its
    kind of data, task, input shape, outputs, classes, input names or vocabulary differ (an edited
    preprocess.json with two million categories would otherwise give each row two million inputs).

    Raises:
        BundleError: the first difference, both values shown.
    """
    shape = _parse(lambda: shape_of(preprocessor), "preprocess.json")
    found: list[tuple[str, Any, Any]] = [
        ("the kind of data", shape.kind, manifest.get("kind", shape.kind)),
        ("the task", shape.task, manifest["task"]),
        ("the input shape", list(shape.input_shape), manifest["input_shape"]),
        ("the number of outputs", shape.n_outputs, manifest["n_outputs"]),
    ]
    if "classes" in manifest:
        found.append(("the classes", plain(list(preprocessor.classes)), manifest["classes"]))
    if "feature_names" in manifest:
        found.append(("the input names", list(preprocessor.feature_names), manifest["feature_names"]))
    if "vocab_size" in manifest:
        found.append(("the vocabulary size", shape.vocab_size, manifest["vocab_size"]))
    for what, got, expected in found:
        if got != expected:
            ours, theirs = _brief(got), _brief(expected)
            raise BundleError(
                f"This bundle's preprocess.json and its {MANIFEST} disagree on {what} ({ours} against "
                f"{theirs}), so the model and its preprocessing do not belong together. {EXPORT_AGAIN}"
            )


def _brief(value: Any) -> str:
    """A value for a message: a long list as its first items and its length."""
    if isinstance(value, list) and len(value) > 6:
        return f"[{', '.join(repr(v) for v in value[:3])}, ... {len(value):,} in all]"
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _check_manifest(manifest: dict[str, Any]) -> None:
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{NOT_A_BUNDLE}: its {MANIFEST} is not a bundle manifest. {EXPORT_AGAIN}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise BundleError(f"{NOT_A_BUNDLE}: its format version {version!r} is not valid. {EXPORT_AGAIN}")
    if not isinstance(manifest.get("files", {}), dict):
        raise BundleError(f"{NOT_A_BUNDLE}: its {MANIFEST} is not a bundle manifest. {EXPORT_AGAIN}")
    if version > BUNDLE_VERSION:
        raise BundleError(
            f"This bundle was made by a newer version of the app (bundle format {version}; this app "
            f"reads format {BUNDLE_VERSION}). Update the app, or export the model again from the "
            "Export page of this version."
        )
    missing = [key for key in ("input_shape", "n_outputs", "data_spec", "task") if key not in manifest]
    if missing:
        raise BundleError(f"{NOT_A_BUNDLE}: its {MANIFEST} lacks {', '.join(missing)}. {EXPORT_AGAIN}")
    shape, outputs = manifest["input_shape"], manifest["n_outputs"]
    if not (isinstance(shape, list) and shape and all(_whole(d) for d in shape) and _whole(outputs)):
        raise BundleError(
            f"{NOT_A_BUNDLE}: its {MANIFEST} gives the input shape {shape!r} and {outputs!r} outputs, "
            f"where whole numbers of 1 or more belong. {EXPORT_AGAIN}"
        )


def _whole(value: Any) -> bool:
    return type(value) is int and value >= 1


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
