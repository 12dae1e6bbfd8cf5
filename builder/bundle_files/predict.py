"""Predict with this exported model, without the app.

Usage::

    pip install -r requirements.txt
    python predict.py input.csv > predictions.csv
    python predict.py input.xlsx --output predictions.csv

It needs only numpy, pandas and onnxruntime (Excel input also needs openpyxl, Parquet input
pyarrow). The input holds raw rows with the same columns as the training file; the column the model
predicts may be there or not (it is ignored), values may be missing and categories may be new. The
file is read by ``read.py`` and the rows go through ``preprocess.py``: the app's own reading and
preprocessing code, copied here unchanged. Then through ``model.onnx``. The output has one row per input row, in the same order: a
``prediction`` column (the label as written in the training data, or the number) and, for
classification, one ``probability_<class>`` column per class.

Exit status 2 with one sentence on stderr when the input cannot be used.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # preprocess.py and read.py live next to this file

from preprocess import DataError, Preprocessor  # noqa: E402  (needs the path above)
from read import DataError as ReadError  # noqa: E402
from read import read_table  # noqa: E402

CHUNK_ROWS = 8192  # rows per model call: bounds memory on big files


def read_rows(path: str | Path) -> pd.DataFrame:
    """Read a table file (CSV/TSV/TXT, Excel, Parquet or JSON) exactly as the app reads it.

    Rows with no value at all are kept, so the output has one row per input row.

    Raises:
        ReadError: the file is missing, of an unknown type, or unreadable (the message says why).
    """
    return read_table(Path(path), drop_empty_rows=False)


def load_model(folder: str | Path = HERE) -> tuple[Preprocessor, ort.InferenceSession]:
    """Load the preprocessing state and the ONNX model from the bundle folder."""
    folder = Path(folder)
    state = json.loads((folder / "preprocess.json").read_text(encoding="utf-8"))
    preprocessor = Preprocessor.from_dict(state)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    return preprocessor, session


def predict(rows: pd.DataFrame, folder: str | Path = HERE) -> pd.DataFrame:
    """Predictions for raw rows: ``prediction`` plus ``probability_<class>`` for classification."""
    preprocessor, session = load_model(folder)
    X = preprocessor.transform(rows)  # (N, F) float32, no NaN
    name = session.get_inputs()[0].name
    chunks = [session.run(None, {name: X[start:start + CHUNK_ROWS]})[0]
              for start in range(0, len(X), CHUNK_ROWS)]
    n_outputs = preprocessor.n_outputs
    outputs = np.concatenate(chunks) if chunks else np.zeros((0, n_outputs), dtype=np.float32)
    return preprocessor.decode_outputs(outputs)


def main(argv: list[str] | None = None) -> int:
    """Command line: read the input file, write the predictions CSV to stdout (or --output)."""
    parser = argparse.ArgumentParser(description="Predict with this exported model.")
    parser.add_argument("input", help="table of raw rows: .csv, .tsv, .txt, .xlsx, .parquet or .json")
    parser.add_argument("--output", "-o", help="write the CSV here instead of to the screen")
    args = parser.parse_args(argv)
    try:
        predictions = predict(read_rows(args.input))
    except (ReadError, DataError) as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    if args.output:
        predictions.to_csv(args.output, index=False)
    else:
        predictions.to_csv(sys.stdout, index=False, lineterminator="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
