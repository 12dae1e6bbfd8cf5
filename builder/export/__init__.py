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

The parts, one job each:

* ``layout``: member names, format versions, what each file is for, the modules copied in;
* ``weights``: safetensors bytes, and the network rebuilt to load them into;
* ``samples``: inputs for the exporter and the parity check, and the bundle's sample input;
* ``onnx_export``: the ONNX export and its parity check against torch;
* ``metrics``: the ``metrics.json`` document;
* ``card``: the ``README.md`` model card;
* ``writer``: ``write_bundle``, the manifest and the atomic zip;
* ``reader``: ``read_bundle``, ``Bundle`` and ``bundle_samples``;
* ``saved``: ``save_trained`` / ``load_trained``, the workspace's folder format;
* ``predictions``: the predictions file a user takes away (ID-like input columns kept beside the
  predictions, CSV or Excel), for the Predict page and ``python -m builder predict``.
"""

from builder.export.card import model_card
from builder.export.layout import (
    BUNDLE_FORMAT,
    BUNDLE_MODULES,
    FILE_PURPOSES,
    MANIFEST,
    SAMPLE_FILE,
    SAMPLE_FOLDER,
    WEIGHTS,
    SampleData,
)
from builder.export.onnx_export import PARITY_BATCHES, PARITY_TOLERANCE, export_onnx, parity_check
from builder.export.reader import Bundle, bundle_samples, read_bundle
from builder.export.samples import input_columns, random_inputs, sample_inputs
from builder.export.saved import TRAINED_JSON, load_trained, save_trained
from builder.export.weights import load_weights, weights_bytes
from builder.export.writer import BundleFile, BundleReport, write_bundle

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_MODULES",
    "FILE_PURPOSES",
    "MANIFEST",
    "PARITY_BATCHES",
    "PARITY_TOLERANCE",
    "SAMPLE_FILE",
    "SAMPLE_FOLDER",
    "TRAINED_JSON",
    "WEIGHTS",
    "Bundle",
    "BundleFile",
    "BundleReport",
    "SampleData",
    "bundle_samples",
    "export_onnx",
    "input_columns",
    "load_trained",
    "load_weights",
    "model_card",
    "parity_check",
    "random_inputs",
    "read_bundle",
    "sample_inputs",
    "save_trained",
    "weights_bytes",
    "write_bundle",
]
