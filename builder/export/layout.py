"""What a bundle holds: member names, format versions, file purposes and the modules copied in.

Also the names of the ONNX model's input and output, which the exporter, the manifest and the model
card share.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from builder.data.images import ImageSet
from builder.safezip import MiB

BUNDLE_FORMAT = "builder.model-bundle"
# Format 1: tables (and anomaly detection on tables). Format 2 adds images, text and series; a table
# bundle is still written as format 1, so an older app keeps reading it, and an older app shown an
# image, text or series bundle says "update the app" instead of failing on its preprocess.json.
BUNDLE_VERSION = 2
ONNX_INPUT = "features"
ONNX_OUTPUT = "outputs"
SAMPLE_FILE = "sample_input.csv"
SAMPLE_FOLDER = "samples"
MANIFEST = "bundle.json"
WEIGHTS = "model.safetensors"
JSON_LIMIT = 64 * MiB  # no JSON member of a real bundle comes near this
SAMPLE_LIMIT = 64 * MiB  # one sample member (an image, the sample table) read back
# What each file is for, shown on the Export page and in the model card.
FILE_PURPOSES = {
    "README.md": "Model card: data, task, quality against a simple baseline, limits, how to use",
    "predict.py": "Standalone script: python predict.py input > predictions.csv",
    "serve.py": "Prediction service: python serve.py, then POST /predict (see /docs)",
    "requirements-serve.txt": "Python packages serve.py needs (pinned): predict.py's and the web server",
    "Dockerfile": "The prediction service as a container: docker build, docker run -p 8000:8000",
    "preprocess.py": "The app's preprocessing code, copied unchanged (used by predict.py)",
    "read.py": "The app's file reader, copied unchanged (used by predict.py)",
    "xlsx_check.py": "The app's check of Excel files before they are read, copied unchanged",
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
SAMPLE_PURPOSES = {
    "table": "A few raw rows in the input format (without the target)",
    "text": "A few raw rows with the text column (without the label)",
    "series": "The latest history in the input format: at least one window of rows",
}
# The app's own modules predict.py needs, by kind of data, copied verbatim: one implementation.
# Each imports only numpy, pandas, Pillow (images) and the standard library at the top.
BUNDLE_MODULES: dict[str, tuple[str, ...]] = {
    "table": ("preprocess.py", "read.py", "xlsx_check.py"),
    "text": ("preprocess.py", "read.py", "xlsx_check.py", "text.py"),
    "series": ("preprocess.py", "read.py", "xlsx_check.py", "timeseries.py"),
    "images": ("preprocess.py", "images.py"),
}
# What raw sample data a caller may give write_bundle: rows for tables, text and series (the
# history); images for an image model (an ImageSet, or (name, bytes) pairs, or image file paths).
SampleData = pd.DataFrame | ImageSet | Sequence[tuple[str, bytes]] | Sequence[str | Path] | None
