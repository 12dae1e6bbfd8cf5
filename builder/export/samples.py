"""Sample data: inputs for the exporter and the parity check, and the sample input of a bundle.

Made-up inputs of the right shape and kind, or real data through the app's own preprocessing; a
bundle keeps a few raw rows as ``sample_input.csv``, or a ``samples/`` folder of images.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from builder.data.images import IMAGE_EXTENSIONS, ImageSet
from builder.data.preprocess import parse_datetime
from builder.data.sources import kind_of
from builder.errors import DataError
from builder.export.layout import SAMPLE_FILE, SAMPLE_FOLDER, SampleData
from builder.trained import TrainedModel

if TYPE_CHECKING:
    from builder.export.reader import Bundle


PARITY_MAX_SAMPLE_ROWS = 1000  # sample inputs checked through the whole path (keeps export fast)
SAMPLE_INPUT_ROWS = 5  # rows of sample_input.csv (a series: at least one window of history)
SAMPLE_IMAGES = 5  # images in the bundle's samples/ folder
_KIND_WORDS = {"table": "a table", "images": "images", "text": "text", "series": "a time series"}


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


def has_sample(sample: SampleData) -> bool:
    """Whether ``sample`` holds any data (rows or images)."""
    if sample is None:
        return False
    try:
        return len(sample) > 0
    except TypeError:
        return True


def sample_members(trained: TrainedModel, sample: SampleData, notes: list[str]) -> dict[str, bytes]:
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
