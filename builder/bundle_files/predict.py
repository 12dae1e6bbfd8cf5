"""Predict with this exported model, without the app.

Usage::

    pip install -r requirements.txt
    python predict.py input.csv > predictions.csv        # a table, text or time-series model
    python predict.py input.xlsx --output predictions.csv
    python predict.py photos/ > predictions.csv          # an image model: a folder of images,
    python predict.py photos.zip > predictions.csv       # a .zip of images,
    python predict.py photo.png                          # or one image file
    python predict.py input.csv --threshold 0.8          # a yes/no model: answer its second class
                                                         # only above a probability of 0.8

It needs only numpy, pandas and onnxruntime (an image model also Pillow; Excel input openpyxl,
Parquet input pyarrow). What goes in depends on the model (``preprocess.json`` says which):

* a table model: raw rows with the same columns as the training file; the column the model
  predicts may be there or not (it is ignored), values may be missing and categories new;
* a text model: a table with the text column;
* a forecast: the history of the series (the time column and the value columns, at least one
  window of steps); the forecast starts after its last time stamp;
* an image model: images (PNG, JPEG, BMP, GIF); other files in the folder or zip are skipped.

Table files are read by ``read.py`` and everything is preprocessed by the app's own code, copied
here unchanged (``preprocess.py``, and ``images.py``, ``text.py`` or ``timeseries.py``), then run
through ``model.onnx``. The output CSV has one row per input row (per image; per future step for a
forecast), in order: ``prediction`` and, for classification, one ``probability_<class>`` column per
class; images add a first ``file`` column; a forecast gives the time stamp of each step and
``prediction``; an anomaly model gives ``anomaly_score`` and ``is_anomaly``. A yes/no model answers
its second class when that class's probability is above its decision threshold
(``decision_threshold`` in ``preprocess.json``: 0.5 unless one was chosen; ``--threshold`` sets
another for one run).

Exit status 2 with one sentence on stderr when the input cannot be used.
"""

from __future__ import annotations

import os
import sys

# Python puts a script's folder first on sys.path, so any file dropped beside predict.py (numpy.py,
# json.py...) would be imported instead of the installed package of that name. The folder leaves
# sys.path before anything else is imported; the bundle's own modules are found by name only
# (OWN_MODULES), and each is checked against bundle.json's SHA-256 before it runs.
HERE_PATH = os.path.dirname(os.path.realpath(__file__))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != HERE_PATH]

import argparse  # noqa: E402  (the imports wait for the line above)
import hashlib  # noqa: E402
import importlib  # noqa: E402
import importlib.abc  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402
import zipfile  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

HERE = Path(HERE_PATH)
MANIFEST = "bundle.json"
OWN_MODULES = ("preprocess", "read", "xlsx_check", "images", "text", "timeseries", "predict", "serve")


class BundleChanged(ImportError):
    """One of the bundle's own modules is missing from bundle.json or differs from it."""


class _OwnModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports the bundle's own modules from its folder, each only if its SHA-256 is bundle.json's."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        file = os.path.join(HERE_PATH, f"{name}.py")
        if path is not None or name not in OWN_MODULES or not os.path.isfile(file):
            return None
        return importlib.util.spec_from_file_location(name, file, loader=self)

    def create_module(self, spec: Any) -> None:
        return None  # the default module object

    def exec_module(self, module: Any) -> None:
        file = module.__spec__.origin
        name = os.path.basename(file)
        with open(file, "rb") as handle:
            source = handle.read()  # hashed and run from the same bytes
        try:
            with open(os.path.join(HERE_PATH, MANIFEST), encoding="utf-8") as handle:
                expected = json.load(handle)["files"][name]
        except (OSError, ValueError, KeyError, TypeError):
            raise BundleChanged(f"{name} is not listed in a readable {MANIFEST}: unzip the bundle again.") from None
        if hashlib.sha256(source).hexdigest() != expected:
            raise BundleChanged(f"{name} was changed after the bundle was exported (its SHA-256 does not match "
                                f"{MANIFEST}): unzip the bundle again. A bundle is code: run only one you trust.")
        exec(compile(source, file, "exec"), module.__dict__)  # noqa: S102  (the checked module's own code)


if not any(type(finder).__name__ == _OwnModules.__name__ for finder in sys.meta_path):
    sys.meta_path.insert(0, _OwnModules())

try:
    import numpy as np
    import pandas as pd
    from preprocess import DataError, check_decision_threshold
except ImportError as exc:  # a package not installed, or BundleChanged (which names no module)
    if __name__ != "__main__":
        raise
    sys.stderr.write(f"predict.py needs the package {exc.name}: pip install -r requirements.txt\n" if exc.name
                     else f"{exc}\n")
    sys.exit(2)

CHUNK_ROWS = 8192  # inputs per model call: bounds memory on big files
IMAGE_CHUNK = 1024  # images decoded at a time
MAX_IMAGES = 50_000  # images in one folder or zip
MAX_ZIP_MEMBERS = 2 * MAX_IMAGES + 1_000  # folders and skipped files are members too
MAX_ZIP_BYTES = 2 * 1024**3  # all images of a zip together, unpacked
MAX_RATIO = 200  # unpacked / packed size of one member over 1 MB; zip bombs reach 1,000 and more
RATIO_FREE_BYTES = 1024**2

# preprocess.json's "format" -> (module, class, kind of input)
FORMATS = {
    "builder.tabular-preprocessor": ("preprocess", "Preprocessor", "table"),
    "builder.text-preprocessor": ("text", "TextPreprocessor", "table"),
    "builder.series-preprocessor": ("timeseries", "SeriesPreprocessor", "table"),
    "builder.image-preprocessor": ("images", "ImagePreprocessor", "images"),
}


# --- the bundle's own files ----------------------------------------------------------------------


def check_files(folder: str | Path = HERE) -> list[str]:
    """Check every file bundle.json lists against its SHA-256 before any of it is used.

    A bundle is code: a changed file (predict.py, preprocess.py, the model) could do anything when
    run, so a file that is not as exported stops the run. Returns the names of Python files that
    bundle.json does not list (someone added them), for a warning.

    Raises:
        DataError: bundle.json is missing or unreadable, or a listed file is missing or changed.
    """
    folder = Path(folder)
    manifest = _read_json(folder / MANIFEST)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        raise DataError(f"{MANIFEST} is damaged (it lists no files): use the bundle as it was exported.")
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            raise DataError(f"{name} is missing from the bundle folder: unzip the bundle again.")
        if hashlib.sha256(path.read_bytes()).hexdigest() != expected:
            raise DataError(f"{name} was changed after the bundle was exported (its SHA-256 does not match "
                            "bundle.json): unzip the bundle again. A bundle is code: run only one you trust.")
    return sorted(p.name for p in folder.glob("*.py") if p.name not in files)


# --- the model ----------------------------------------------------------------------------------


def load_preprocessor(folder: str | Path = HERE) -> Any:
    """The fitted preprocessing of this bundle (table, text, series or image), from preprocess.json,
    checked against bundle.json: an edited preprocess.json (two million categories, other classes)
    would otherwise make every row huge or every answer wrong.

    Raises:
        DataError: preprocess.json is unreadable, damaged, or does not match bundle.json.
    """
    folder = Path(folder)
    state = _read_json(folder / "preprocess.json")
    fmt = state.get("format") if isinstance(state, dict) else None
    if fmt not in FORMATS:
        raise DataError(f"preprocess.json has the unknown format {fmt!r}; use the bundle as it was exported.")
    module, cls, _ = FORMATS[fmt]
    preprocessor = getattr(importlib.import_module(module), cls).from_dict(state)
    _check_against_manifest(preprocessor, _read_json(folder / MANIFEST))
    return preprocessor


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise DataError(f"{path.name} is nested too deeply to read: use the bundle as it was exported.") from None
    except (OSError, ValueError) as exc:  # missing, not UTF-8, not JSON
        raise DataError(f"{path.name} cannot be read ({exc}): use the bundle as it was exported.") from None


def _check_against_manifest(preprocessor: Any, manifest: Any) -> None:
    """The preprocessing must give the inputs and outputs the model was exported with."""
    if not isinstance(manifest, dict):
        raise DataError(f"{MANIFEST} is damaged: use the bundle as it was exported.")
    found = [("input shape", list(preprocessor.input_shape), manifest.get("input_shape")),
             ("number of outputs", preprocessor.n_outputs, manifest.get("n_outputs")),
             ("classes", [str(c) for c in preprocessor.classes],
              [str(c) for c in manifest["classes"]] if isinstance(manifest.get("classes"), list) else None)]
    for what, got, expected in found:
        if expected is not None and got != expected:
            shown = f"{len(got):,} values" if isinstance(got, list) and len(got) > 6 else repr(got)
            raise DataError(f"preprocess.json and {MANIFEST} disagree on the {what} ({shown} against "
                            f"{expected!r:.120}): the preprocessing does not belong to this model. Use the "
                            "bundle as it was exported.")


def input_kind(preprocessor: Any) -> str:
    """``"images"`` or ``"table"``: what the command line reads."""
    return FORMATS[preprocessor.to_dict()["format"]][2]


def load_model(folder: str | Path = HERE, threads: int | None = None) -> tuple[Any, Any]:
    """Load the preprocessing state and the ONNX model from the bundle folder.

    Args:
        threads: onnxruntime's threads per model call (default: its own choice, one per core).
    """
    import onnxruntime as ort  # here, so the preprocessing can be used without it

    preprocessor = load_preprocessor(folder)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    session = ort.InferenceSession(str(Path(folder) / "model.onnx"), options, providers=["CPUExecutionProvider"])
    return preprocessor, session


def runner(session: Any, n_outputs: int):
    """The model as a function: float32 inputs ``(N, ...)`` -> raw outputs ``(N, n_outputs)``, in chunks."""
    name = session.get_inputs()[0].name

    def run(X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        chunks = [session.run(None, {name: X[start:start + CHUNK_ROWS]})[0]
                  for start in range(0, len(X), CHUNK_ROWS)]
        return np.concatenate(chunks) if chunks else np.zeros((0, n_outputs), dtype=np.float32)

    return run


class Model:
    """The bundle loaded once (its preprocessing and one onnxruntime session) for many predictions.

    Safe to share between threads: onnxruntime sessions are, and a call with its own threshold gets
    a copy of the preprocessing instead of changing the shared one. ``run`` is the model as a
    function of preprocessed inputs; a server may replace it (e.g. to batch concurrent calls).
    """

    MAX_THRESHOLD_COPIES = 16

    def __init__(self, folder: str | Path = HERE, threads: int | None = None) -> None:
        self.preprocessor, self.session = load_model(folder, threads)
        self.kind = input_kind(self.preprocessor)
        self.run = runner(self.session, self.preprocessor.n_outputs)
        self._with_threshold: dict[float, Any] = {}
        self._lock = threading.Lock()

    def predict(self, raw: Any, threshold: float | None = None, **options: Any) -> pd.DataFrame:
        """Predictions for raw input, exactly as the app makes them (``predict_with``).

        Args:
            raw: rows (a table, text or anomaly model), the history (a forecast), or images as
                bytes, paths or Pillow images (an image model; name them with ``files=[...]``).
            threshold: a yes/no model only: the decision threshold for this call instead of the
                bundle's own (strictly between 0 and 1).
        """
        preprocessor = self._preprocessor(threshold)
        if self.kind != "images":
            return preprocessor.predict_with(raw, self.run, **options)
        items, files = list(raw), options.pop("files", None)
        parts = [preprocessor.predict_with(items[start:start + IMAGE_CHUNK], self.run,
                                           files=None if files is None else files[start:start + IMAGE_CHUNK],
                                           **options)
                 for start in range(0, len(items), IMAGE_CHUNK)]
        return pd.concat(parts, ignore_index=True) if parts else preprocessor.predict_with([], self.run, files=files)

    def _preprocessor(self, threshold: float | None) -> Any:
        if threshold is None:
            return self.preprocessor
        check_decision_threshold(threshold, self.preprocessor.task)  # a plain error for other models
        with self._lock:
            if threshold not in self._with_threshold:
                if len(self._with_threshold) >= self.MAX_THRESHOLD_COPIES:
                    self._with_threshold.clear()
                state = self.preprocessor.to_dict()
                copy = type(self.preprocessor).from_dict(state)
                copy.set_decision_threshold(threshold)
                self._with_threshold[threshold] = copy
            return self._with_threshold[threshold]


def predict(raw: Any, folder: str | Path = HERE, threshold: float | None = None, **options: Any) -> pd.DataFrame:
    """One call's predictions: ``Model(folder).predict(raw, threshold, **options)``."""
    return Model(folder).predict(raw, threshold, **options)


# --- reading the input ----------------------------------------------------------------------------


def read_rows(path: str | Path) -> pd.DataFrame:
    """Read a table file (CSV/TSV/TXT, Excel, Parquet or JSON) exactly as the app reads it.

    Rows with no value at all are kept, so the output has one row per input row.

    Raises:
        DataError: the file is missing, of an unknown type, or unreadable (the message says why).
    """
    from read import read_table

    path = Path(path)
    if path.is_dir():
        raise DataError(f"{str(path)!r} is a folder; this model reads a table file (.csv, .tsv, .txt, "
                        ".xlsx, .parquet or .json).")
    return read_table(path, drop_empty_rows=False)


def _skipped(parts: list[str]) -> bool:
    from images import _skip_reason  # the same rule as the app's image zip reader

    return _skip_reason(parts) is not None


def read_images(path: str | Path) -> tuple[list[str], list[bytes]]:
    """Image names and bytes from a folder (sub-folders included), a .zip, or one image file.

    Names are paths inside the folder or zip (``/`` separated), sorted; hidden files, ``__MACOSX``
    and files that are not PNG/JPEG/BMP/GIF by name are skipped.

    Raises:
        DataError: the path is missing, holds no image or too many, or the zip is unsafe.
    """
    from images import IMAGE_EXTENSIONS, MAX_IMAGE_BYTES

    path = Path(path)
    if path.is_dir():
        found = sorted((p.relative_to(path).as_posix(), p) for p in path.rglob("*")
                       if p.is_file() and not p.is_symlink())
        found = [(name, p) for name, p in found if not _skipped(name.split("/"))]
        _check_count(len(found), str(path))
        for name, p in found:
            if p.stat().st_size > MAX_IMAGE_BYTES:
                raise DataError(f"The image {name!r} is larger than {MAX_IMAGE_BYTES // 1024**2} MB. Shrink it or leave it out.")
        return [name for name, _ in found], [p.read_bytes() for _, p in found]
    if not path.is_file():
        raise DataError(f"The input {str(path)!r} does not exist. Give a folder of images, a .zip of images or an image file.")
    if path.suffix.lower() == ".zip":
        return _read_image_zip(path, MAX_IMAGE_BYTES)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise DataError(f"The image {path.name!r} is larger than {MAX_IMAGE_BYTES // 1024**2} MB. Shrink it.")
        return [path.name], [path.read_bytes()]
    raise DataError(f"{path.name!r} is not an image: this model reads a folder of images, a .zip of images, "
                    "or one PNG, JPEG, BMP or GIF file.")


def _check_count(count: int, where: str) -> None:
    if count == 0:
        raise DataError(f"{where!r} holds no PNG, JPEG, BMP or GIF image. Give a folder or .zip of images.")
    if count > MAX_IMAGES:
        raise DataError(f"{where!r} holds {count:,} images, more than the {MAX_IMAGES:,} allowed at once. "
                        "Split them into smaller batches.")


def _unsafe(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member is refused: a path that would leave the folder, a link, or encryption."""
    name = info.filename.replace("\\", "/")
    if not name or "\x00" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "has an absolute or invalid path"
    if ".." in name.split("/"):
        return "points outside the folder ('..')"
    if info.create_system == 3 and (info.external_attr >> 16) & 0o170000 == 0o120000:
        return "is a symbolic link"
    if info.flag_bits & 0x1:
        return "is encrypted"
    return None


def _read_image_zip(path: Path, max_bytes: int) -> tuple[list[str], list[bytes]]:
    """The images of a zip, read into memory only (nothing is unpacked to disk), with size limits."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise DataError(f"{path.name!r} is not a zip archive (or it is damaged). Zip the images again.") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise DataError(f"The zip {path.name!r} holds {len(infos):,} files, more than the {MAX_ZIP_MEMBERS:,} allowed.")
        members, total = [], 0
        for info in infos:
            problem = _unsafe(info)
            if problem:
                raise DataError(f"The zip {path.name!r} is refused: its member {info.filename!r} {problem}.")
            if info.is_dir() or _skipped([p for p in info.filename.replace("\\", "/").split("/") if p]):
                continue
            too_big = info.file_size > max_bytes
            bomb = info.file_size > RATIO_FREE_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1)
            if too_big or bomb:
                raise DataError(f"The zip {path.name!r} is refused: {info.filename!r} unpacks to "
                                f"{info.file_size:,} bytes, too large for one image.")
            total += info.file_size
            if total > MAX_ZIP_BYTES:
                raise DataError(f"The images in {path.name!r} unpack to more than {MAX_ZIP_BYTES // 1024**3} GB. "
                                "Split them into smaller zips.")
            members.append(info)
        _check_count(len(members), path.name)
        members.sort(key=lambda info: info.filename)
        return [info.filename for info in members], [_read_member(zf, info, max_bytes, path.name) for info in members]


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, zip_name: str) -> bytes:
    """One member with a hard cap on the bytes actually produced (a header may lie about sizes)."""
    parts, size = [], 0
    try:
        with zf.open(info) as handle:
            while chunk := handle.read(1024**2):
                size += len(chunk)
                if size > limit:
                    raise DataError(f"The zip {zip_name!r} is refused: {info.filename!r} unpacks to more than "
                                    f"{limit // 1024**2} MB.")
                parts.append(chunk)
    except DataError:  # the cap above (a ValueError too)
        raise
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, ValueError, NotImplementedError, RuntimeError) as exc:
        raise DataError(f"The zip {zip_name!r} is damaged at {info.filename!r} ({exc}). Zip the images again.") from None
    return b"".join(parts)


# --- command line ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Command line: read the input, write the predictions CSV to stdout (or --output)."""
    parser = argparse.ArgumentParser(description="Predict with this exported model.")
    parser.add_argument("input", help="a table file (.csv, .tsv, .txt, .xlsx, .parquet, .json); for an image "
                                      "model a folder of images, a .zip of images or one image file")
    parser.add_argument("--output", "-o", help="write the CSV here instead of to the screen")
    parser.add_argument("--threshold", type=float, metavar="F",
                        help="a yes/no model: answer its second class when that class's probability is above F "
                             "(between 0 and 1; default: the model's own, see decision_threshold in "
                             "preprocess.json)")
    args = parser.parse_args(argv)
    errors: tuple[type[Exception], ...] = (DataError, BundleChanged)
    try:
        if (HERE / "read.py").is_file():  # an image bundle has none
            from read import DataError as ReadError  # read.py has its own copy of the error class

            errors += (ReadError,)
        extra = check_files()
        if extra:
            sys.stderr.write(f"Note: {', '.join(extra)} in the bundle folder did not come with the bundle; "
                             "remove them if you did not put them there.\n")
        preprocessor = load_preprocessor()
        if args.threshold is not None:
            check_decision_threshold(args.threshold, preprocessor.task, "--threshold")
        if input_kind(preprocessor) == "images":
            files, images = read_images(args.input)
            predictions = predict(images, threshold=args.threshold, files=files)
        else:
            predictions = predict(read_rows(args.input), threshold=args.threshold)
    except errors as exc:
        sys.stderr.write(" ".join(str(exc).split()) + "\n")
        return 2
    if args.output:
        predictions.to_csv(args.output, index=False)
        return 0
    try:
        predictions.to_csv(sys.stdout, index=False, lineterminator="\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped early (`| head`): that is its choice, not an error. Point stdout at
        # nothing so Python's own flush at exit does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
