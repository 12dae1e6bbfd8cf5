"""Predict with this exported model, without the app.

Usage::

    pip install -r requirements.txt
    python predict.py input.csv > predictions.csv
    python predict.py input.xlsx --output predictions.csv

It needs only numpy, pandas and onnxruntime (Excel input also needs openpyxl, Parquet input
pyarrow). The input holds raw rows with the same columns as the training file; the column the model
predicts may be there or not (it is ignored), values may be missing and categories may be new. The
rows go through ``preprocess.py``, which is the app's own preprocessing code copied here unchanged,
then through ``model.onnx``. The output has one row per input row, in the same order: a
``prediction`` column (the label as written in the training data, or the number) and, for
classification, one ``probability_<class>`` column per class.

Exit status 2 with one sentence on stderr when the input cannot be used.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # preprocess.py lives next to this file

from preprocess import DataError, Preprocessor  # noqa: E402  (needs the path above)

CHUNK_ROWS = 8192  # rows per model call: bounds memory on big files
READERS = {
    ".csv": "text",
    ".tsv": "text",
    ".txt": "text",
    ".xlsx": "excel",
    ".xlsm": "excel",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
}


class InputError(Exception):
    """The input cannot be used; the message is one sentence for the person running the script."""


def read_rows(path: str | Path) -> pd.DataFrame:
    """Read a table file by its extension: CSV/TSV/TXT, Excel, Parquet or JSON.

    Raises:
        InputError: the file is missing, of an unknown type, or unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"The file {str(path)!r} does not exist.")
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise InputError(
            f"Cannot read {path.name}: use a .csv, .tsv, .txt, .xlsx, .parquet or .json file "
            "(save an old .xls workbook as .xlsx or CSV)."
        )
    try:
        if kind == "text":
            return _read_text(path)
        if kind == "excel":
            return _tidy_names(pd.read_excel(path, sheet_name=0, engine="openpyxl"))
        if kind == "parquet":
            return _tidy_names(pd.read_parquet(path))
        return _read_json(path)
    except ImportError as exc:
        package = "openpyxl" if kind == "excel" else "pyarrow"
        raise InputError(f"Reading {path.name} needs the {package} package: pip install {package}.") from exc
    except (ValueError, OSError) as exc:
        raise InputError(f"Cannot read {path.name}: {exc}") from exc


DELIMITERS = ",;\t|"  # the separators the app's reader considers
SNIFF_CHARS = 64 * 1024


def _read_text(path: Path) -> pd.DataFrame:
    """CSV-like text, read with the same options as the app so the columns get the same types.

    The separator is guessed among comma, semicolon, tab and bar; semicolon files write decimals
    with a comma ("1,5"), as in the app.
    """
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        text = data.decode("utf-8-sig")
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")  # what Excel on Western Windows writes
    if path.suffix.lower() == ".tsv":
        separator = "\t"
    else:
        sample = text[:SNIFF_CHARS]
        if len(text) > SNIFF_CHARS and "\n" in sample:
            sample = sample[: sample.rindex("\n")]
        try:
            separator = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
        except csv.Error:
            separator = ","
    frame = pd.read_csv(io.StringIO(text), sep=separator, decimal="," if separator == ";" else ".",
                        low_memory=False)
    return _tidy_names(frame)


def _tidy_names(frame: pd.DataFrame) -> pd.DataFrame:
    """Column names as the app cleans them: stripped, blank ones named ``column_<position>``."""
    names = []
    for i, name in enumerate(frame.columns):
        name = str(name).strip()
        names.append(f"column_{i + 1}" if not name or name.startswith("Unnamed:") else name)
    return frame.set_axis(names, axis=1)


def _read_json(path: Path) -> pd.DataFrame:
    """A list of records, an object of columns, pandas' split layout, or JSON Lines."""
    text = path.read_text(encoding="utf-8-sig")
    try:
        content = json.loads(text)
    except json.JSONDecodeError:
        content = [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(content, dict) and isinstance(content.get("data"), list):
        if "columns" in content:
            return _tidy_names(pd.DataFrame(content["data"], columns=content["columns"]))
        content = content["data"]
    if isinstance(content, list) and content and all(isinstance(r, dict) for r in content):
        return _tidy_names(pd.json_normalize(content))
    if isinstance(content, dict) and content and all(isinstance(v, list | dict) for v in content.values()):
        return _tidy_names(pd.DataFrame(content).reset_index(drop=True))
    if isinstance(content, dict) and content:
        return _tidy_names(pd.DataFrame([content]))
    raise InputError(f"{path.name} is JSON but not a table: use a list of row objects.")


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
    except (InputError, DataError) as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    if args.output:
        predictions.to_csv(args.output, index=False)
    else:
        predictions.to_csv(sys.stdout, index=False, lineterminator="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
