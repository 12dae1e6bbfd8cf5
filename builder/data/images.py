"""Image classification data: a zip of class folders in, float32 ``(N, C, H, W)`` arrays out.

The contract (ARCHITECTURE.md): an image zip holds one folder per class, at any depth. The class of
an image is the name of the innermost folder that holds it, so ``photos/train/cat/1.png`` and
``cat/2.jpg`` are both class ``cat``. PNG, JPEG, BMP and GIF (first frame) are read; ``__MACOSX``,
hidden files (``.DS_Store``, ``._x.png``) and other files (a README, a CSV) are skipped and logged.

``ImagePreprocessor`` is fitted on the training images only and its state is plain JSON, like the
table ``Preprocessor``:

* size: the median width and height of the training images, rounded to a multiple of 4 (at least
  8), and shrunk (aspect kept) so the longer side is at most 64 pixels, because a CNN on a CPU
  trains fast at 64x64 and slowly above it. Pass ``size=(H, W)`` to choose yourself.
* channels: 1 (grayscale) or 3 (colour), chosen by the majority of the training images' modes
  (a tie goes to colour, which loses nothing); every image is converted to it. Transparent pixels
  are laid on white first. 16-bit grayscale is scaled to 8 bits.
* pixels: resized with Pillow's BILINEAR filter, scaled to [0, 1], then normalised with the
  per-channel mean and standard deviation of the training pixels.

This file is copied verbatim into export bundles next to ``predict.py`` (like ``preprocess.py``), so
its top-level imports are numpy, pandas, Pillow and the standard library only. ``read_image_zip``
needs ``builder.safezip`` (imported when called); a bundle's ``predict.py`` reads images from a
folder or zip with its own small function and passes them (paths, bytes or Pillow images) to
``ImagePreprocessor.transform``.
"""

from __future__ import annotations

import copy
import io
import logging
import re
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

try:
    from builder.data.preprocess import (
        DataError,
        DecisionThreshold,
        check_saved_state,
        decode_class_outputs,
        finite_numbers,
        output_matrix,
    )
except ImportError:  # copied into an export bundle, next to the app's preprocess.py
    from preprocess import (  # type: ignore[no-redef]
        DataError,
        DecisionThreshold,
        check_saved_state,
        decode_class_outputs,
        finite_numbers,
        output_matrix,
    )


logger = logging.getLogger(__name__)

FORMAT = "builder.image-preprocessor"
FORMAT_VERSION = 1
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
PIL_FORMATS = ("PNG", "JPEG", "BMP", "GIF")  # Pillow refuses anything else, whatever its name
MAX_SIDE = 64  # the longest side of the automatic size; larger trains slowly on a CPU
MIN_SIDE = 8
MAX_PIXELS = 40_000_000  # one image may have at most 40 megapixels (a decompression bomb guard)
MAX_IMAGE_BYTES = 64 * 1024 * 1024  # one image file in the zip may unpack to at most 64 MB
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_NOT_IMAGES = "This file is not a usable image zip"
_ZIP_FIX = "Upload a .zip that holds one folder of images (PNG, JPEG, BMP or GIF) per class."

# ---------------------------------------------------------------------------------------------
# Reading a zip of class folders
# ---------------------------------------------------------------------------------------------


class _LazyImages(Sequence):
    """The images of an ``ImageSet``, decoded from their bytes only when one is asked for."""

    def __init__(self, data: list[bytes]):
        self._data = data

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [_open(b) for b in self._data[index]]
        return _open(self._data[index])


@dataclass
class ImageSet:
    """Images read from a zip, in member-path order.

    Attributes:
        paths: each image's member path in the zip.
        labels: each image's class (the name of the innermost folder that holds it).
        data: each image's file bytes (decoded on demand, so 50,000 photos do not fill memory).
        sizes: each image's ``(width, height)``.
        gray: whether each image is grayscale (by its mode).
    """

    paths: list[str]
    labels: list[str]
    data: list[bytes]
    sizes: list[tuple[int, int]] = field(default_factory=list)
    gray: list[bool] = field(default_factory=list)
    empty_classes: list[str] = field(default_factory=list)  # class folders without one image

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def empty_note(self) -> str | None:
        """What a model trained on these images will not know: the classes whose folder is empty."""
        if not self.empty_classes:
            return None
        listed = ", ".join(repr(name) for name in self.empty_classes[:10])
        return (f"The folder(s) {listed} hold no image, so the model will not know those classes. Add their "
                "images to the zip, or remove the empty folders if those classes are not wanted.")

    @property
    def images(self) -> Sequence[Image.Image]:
        """The images as Pillow images (first frame), decoded lazily."""
        return _LazyImages(self.data)

    @property
    def classes(self) -> list[str]:
        """The class names in output order (natural sort: "2" before "10")."""
        return sort_classes(set(self.labels))

    @property
    def counts(self) -> dict[str, int]:
        """Images per class, in class order."""
        counts = Counter(self.labels)
        return {name: counts[name] for name in self.classes}

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageSet:
        """The images at ``indices``, in that order."""
        idx = [int(i) for i in indices]
        return ImageSet(
            paths=[self.paths[i] for i in idx],
            labels=[self.labels[i] for i in idx],
            data=[self.data[i] for i in idx],
            sizes=[self.sizes[i] for i in idx] if self.sizes else [],
            gray=[self.gray[i] for i in idx] if self.gray else [],
        )


def sort_classes(names: Any) -> list[str]:
    """Class names in natural order ("digit2" before "digit10"), the order of the model's outputs."""

    def key(name: str) -> list[tuple[int, Any]]:
        return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part]

    return sorted((str(n) for n in names), key=lambda n: (key(n), n))


def _skip_reason(parts: list[str]) -> str | None:
    if any(part == "__MACOSX" for part in parts):
        return "macOS metadata"
    if any(part.startswith(".") for part in parts) or parts[-1].lower() in ("thumbs.db", "desktop.ini"):
        return "hidden"
    if not parts[-1].lower().endswith(IMAGE_EXTENSIONS):
        return "not an image"
    return None


def read_image_zip(source: Any, max_images: int = 50_000) -> ImageSet:
    """Read a zip of class folders and check every image.

    Args:
        source: the zip as a path, bytes, or a binary file-like object (e.g. an upload).
        max_images: most images accepted.

    Returns:
        An ``ImageSet`` sorted by member path; every image was decoded once to prove it is whole.

    Raises:
        DataError: not a zip (or an unsafe one: paths outside the folder, a zip bomb), no images,
            images outside any folder only, too many images, only one class, a class with fewer
            than 2 images, or a damaged image (named).
    """
    try:
        from builder.errors import BundleError
        from builder.safezip import EXPORT_AGAIN, open_zip, read_member
    except ImportError:  # pragma: no cover - only inside an export bundle
        raise DataError(
            "Reading an image zip needs the builder app; in an export bundle, pass a folder of "
            "images to predict.py instead."
        ) from None

    def reworded(error: Exception) -> DataError:
        text = str(error).replace(EXPORT_AGAIN, "").strip()
        return DataError(f"{text} {_ZIP_FIX}")

    try:
        zf = open_zip(
            source,
            # Folders and skipped files are members too; the image count is checked below.
            max_members=2 * max_images + 1_000,
            max_member_bytes=MAX_IMAGE_BYTES,
            what=_NOT_IMAGES,
        )
    except BundleError as error:
        raise reworded(error) from None

    with zf:
        found: dict[str, str] = {}  # member name -> class
        skipped: Counter[str] = Counter()
        at_root = []
        folders: set[tuple[str, ...]] = set()  # every folder the zip names, as path parts
        for info in zf.infolist():
            parts = [p for p in info.filename.replace("\\", "/").split("/") if p]
            folders.update(tuple(parts[:i]) for i in range(1, len(parts) if not info.is_dir() else len(parts) + 1))
            if info.is_dir():
                continue
            reason = _skip_reason(parts)
            if reason:
                skipped[reason] += 1
                continue
            if len(parts) < 2:
                at_root.append(info.filename)
                continue
            found[info.filename] = parts[-2]
        if skipped:
            logger.info("Skipped %s in the image zip", ", ".join(f"{n} {r} file(s)" for r, n in skipped.items()))
        if not found:
            if at_root:
                raise DataError(
                    f"The zip holds {len(at_root)} image(s) but none inside a folder, so their classes "
                    f"are unknown (for example {at_root[0]!r}). Put the images of each class in a folder "
                    "named after the class and zip those folders."
                )
            raise DataError(
                f"The zip holds no images (PNG, JPEG, BMP or GIF); {sum(skipped.values())} other "
                f"file(s) were skipped. {_ZIP_FIX}"
            )
        if at_root:
            logger.warning(
                "Skipped %d image(s) outside any class folder, for example %r", len(at_root), at_root[0]
            )
        if len(found) > max_images:
            raise DataError(
                f"The zip holds {len(found):,} images, more than the {max_images:,} allowed. "
                "Use a sample of the images per class."
            )
        counts = Counter(found.values())
        if len(counts) < 2:
            only = next(iter(counts))
            raise DataError(
                f"All {len(found)} images are in one class ({only!r}), so there is nothing to tell "
                "apart. Add a folder of images for at least one more class."
            )
        small = [name for name in sort_classes(counts) if counts[name] < 2]
        if small:
            listed = ", ".join(f"{name!r} ({counts[name]})" for name in small)
            raise DataError(
                f"The class(es) {listed} have fewer than 2 images; each class needs at least 2 "
                "(and a few dozen to learn well). Add images to them or remove those folders."
            )

        paths = sorted(found)
        data, sizes, gray = [], [], []
        for name in paths:
            try:
                raw = read_member(zf, name, MAX_IMAGE_BYTES, what=_NOT_IMAGES)
            except BundleError as error:
                raise reworded(error) from None
            image = _open(raw, name, check=True)
            data.append(raw)
            sizes.append(image.size)
            gray.append(_is_gray(image))
    images = ImageSet(paths=paths, labels=[found[p] for p in paths], data=data, sizes=sizes, gray=gray,
                      empty_classes=_empty_class_folders(folders, found))
    if images.empty_note:
        logger.warning("%s", images.empty_note)
    logger.info(
        "Read %d images in %d classes: %s",
        len(images), len(counts), ", ".join(f"{k}={v}" for k, v in images.counts.items()),
    )
    return images


def _empty_class_folders(folders: set[tuple[str, ...]], found: dict[str, str]) -> list[str]:
    """Folders beside the class folders (same parent) that hold no image: classes left empty."""
    image_folders = {tuple(p for p in name.replace("\\", "/").split("/") if p)[:-1] for name in found}
    parents = {folder[:-1] for folder in image_folders}
    holding = {folder[:i] for folder in image_folders for i in range(1, len(folder) + 1)}  # folders with images inside
    empty = {folder[-1] for folder in folders
             if folder[:-1] in parents and folder not in holding
             and not any(part == "__MACOSX" or part.startswith(".") for part in folder)}
    return sort_classes(empty - set(found.values()))


# ---------------------------------------------------------------------------------------------
# Decoding and pixels
# ---------------------------------------------------------------------------------------------


def _open(source: Any, name: str | None = None, check: bool = False) -> Image.Image:
    """Open one image (its first frame) from bytes, a path or a Pillow image.

    Raises:
        DataError: it is not a PNG/JPEG/BMP/GIF, is too large, or is damaged; ``name`` is quoted.
    """
    if isinstance(source, Image.Image):
        return source
    label = name or (str(source) if isinstance(source, str | Path) else "an image")
    if isinstance(source, str | Path):
        # Read the file first so no handle stays open (Pillow keeps GIFs open otherwise).
        try:
            if Path(source).stat().st_size > MAX_IMAGE_BYTES:
                raise DataError(f"The image file {label!r} is larger than 64 MB. Shrink it or leave it out.")
            source = Path(source).read_bytes()
        except FileNotFoundError:
            raise DataError(f"The image file {label!r} does not exist.") from None
    try:
        handle = io.BytesIO(bytes(source)) if isinstance(source, bytes | bytearray | memoryview) else source
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(handle, formats=PIL_FORMATS)
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise DataError(
                    f"The image {label!r} is {width}x{height} pixels, more than the "
                    f"{MAX_PIXELS // 1_000_000} megapixels allowed. Shrink it or leave it out."
                )
            image.seek(0)  # GIF: the first frame
            image.load()
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as error:
        detail = "" if not check else f" ({type(error).__name__})"
        raise DataError(
            f"The image {label!r} is damaged or is not a PNG, JPEG, BMP or GIF image{detail}. "
            "Open it, save it again as PNG or JPEG, or leave it out."
        ) from None
    return image


def _is_gray(image: Image.Image) -> bool:
    if image.mode in _GRAY_MODES:
        return True
    if image.mode in ("P", "PA"):
        palette = image.getpalette() or []
        indexes = np.asarray(image)
        used = {int(i) for i in np.unique(indexes[..., 0] if indexes.ndim == 3 else indexes)}
        colours = [palette[3 * i: 3 * i + 3] for i in used if 3 * i + 2 < len(palette)]
        return all(c[0] == c[1] == c[2] for c in colours)
    return False


def _pixels(image: Image.Image, channels: int, height: int, width: int) -> np.ndarray:
    """One image as float32 ``(C, H, W)`` in [0, 1]: converted, laid on white, resized (BILINEAR)."""
    mode = image.mode
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        # 16-bit or float grayscale: Pillow's convert("L") would clip at 255, so scale ourselves.
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if values.max(initial=0) > 255 else 255.0
        image = Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    elif mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    target = "L" if channels == 1 else "RGB"
    if image.mode != target:
        image = image.convert(target)
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.float32) / np.float32(255.0)  # (H, W) or (H, W, 3)
    if channels == 1:
        return array[None, :, :]  # (1, H, W)
    return np.ascontiguousarray(array.transpose(2, 0, 1))  # (3, H, W)


def _as_images(images: Any) -> tuple[Sequence[Any], list[str | None]]:
    """Accept an ImageSet, or a list of Pillow images / bytes / paths; return items and names."""
    if isinstance(images, ImageSet):
        return images.data, list(images.paths)
    if isinstance(images, Image.Image | bytes | str | Path):
        images = [images]
    items = list(images)
    names = [str(i) if isinstance(i, str | Path) else None for i in items]
    return items, names


def _round_side(value: float) -> int:
    return max(MIN_SIDE, int(4 * round(value / 4)))


def choose_size(sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The automatic ``(height, width)``: the median size, rounded to 4s, longest side <= 64."""
    widths = np.array([s[0] for s in sizes], dtype=np.float64)
    heights = np.array([s[1] for s in sizes], dtype=np.float64)
    h, w = float(np.median(heights)), float(np.median(widths))
    shrink = min(1.0, MAX_SIDE / max(h, w))
    return min(MAX_SIDE, _round_side(h * shrink)), min(MAX_SIDE, _round_side(w * shrink))


# ---------------------------------------------------------------------------------------------
# Labels (same behaviour as the table Preprocessor)
# ---------------------------------------------------------------------------------------------


def _quote_list(names: list[Any], limit: int = 20) -> str:
    shown = ", ".join(repr(str(n)) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# ---------------------------------------------------------------------------------------------
# The preprocessor
# ---------------------------------------------------------------------------------------------


class ImagePreprocessor(DecisionThreshold):
    """Turns images into a normalised float32 ``(N, C, H, W)`` array, and outputs into labels.

    Fit it on the training images only. ``to_dict``/``from_dict`` is a plain-JSON round trip that
    reproduces ``transform`` bit for bit.
    """

    def __init__(self) -> None:
        self._state: dict | None = None

    def fit(
        self,
        images: Any,
        size: tuple[int, int] | None = None,
        *,
        labels: Sequence[str] | None = None,
        classes: Sequence[str] | None = None,
        channels: int | None = None,
    ) -> ImagePreprocessor:
        """Learn size, channels, pixel mean/std and the classes from the training images.

        Args:
            images: an ``ImageSet`` (its labels are used) or a list of Pillow images, bytes or paths.
            size: ``(height, width)`` to resize to; default: see the module docstring.
            labels: one class per image (taken from an ``ImageSet`` when not given).
            classes: every class name (pass all of them so a class missing here still decodes);
                default: those in ``labels``.
            channels: 1 or 3 to force grayscale or colour; default: the majority of the images.

        Returns:
            ``self``, fitted.

        Raises:
            DataError: no images, a damaged image, a bad size or channel count, or fewer than
                2 classes.
        """
        items, names = _as_images(images)
        if not items:
            raise DataError("There are no training images to learn from. Add images to the zip.")
        if isinstance(images, ImageSet) and labels is None:
            labels = images.labels
        if isinstance(images, ImageSet) and len(images.sizes) == len(images.gray) == len(items):
            sizes, gray = images.sizes, images.gray
        else:
            opened = [_open(item, name) for item, name in zip(items, names, strict=True)]
            sizes, gray = [im.size for im in opened], [_is_gray(im) for im in opened]
            items = opened
        if size is None:
            height, width = choose_size(sizes)
        else:
            height, width = (int(v) for v in size)
            if not (1 <= height <= 1024 and 1 <= width <= 1024):
                raise DataError(f"The image size must be between 1 and 1024 pixels a side; got {size!r}.")
        if channels is None:
            # The majority decides; a tie keeps colour (converting grey to RGB loses nothing).
            channels = 1 if 2 * sum(gray) > len(gray) else 3
        elif channels not in (1, 3):
            raise DataError(f"Images must have 1 (grayscale) or 3 (colour) channels; got {channels!r}.")

        class_state = None
        if labels is not None or classes is not None:
            names_found = classes if classes is not None else labels
            class_list = sort_classes(set(str(c) for c in names_found))
            if len(class_list) < 2:
                raise DataError(
                    f"There is only one class ({_quote_list(class_list)}), so there is nothing to "
                    "tell apart. Add a folder of images for at least one more class."
                )
            class_state = class_list

        # Mean and standard deviation per channel over every training pixel, accumulated in
        # float64 one image at a time so a large set never needs one big array.
        total = np.zeros(channels)
        squares = np.zeros(channels)
        for item, name in zip(items, names, strict=True):
            pixels = _pixels(_open(item, name), channels, height, width).astype(np.float64)  # (C, H, W)
            total += pixels.sum(axis=(1, 2))
            squares += np.square(pixels).sum(axis=(1, 2))
        count = len(items) * height * width
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
        std = np.where(std < 1e-6, 1.0, std)  # a constant channel is only centred
        self._state = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "task": None if class_state is None else ("binary" if len(class_state) == 2 else "multiclass"),
            "classes": class_state,
            "height": height,
            "width": width,
            "channels": channels,
            "mean": [float(v) for v in mean],
            "std": [float(v) for v in std],
            "resample": "bilinear",
            "background": "white",
        }
        logger.info(
            "Fitted image preprocessing on %d images: %dx%d, %d channel(s), mean %s, std %s",
            len(items), height, width, channels,
            [round(v, 4) for v in self._state["mean"]], [round(v, 4) for v in self._state["std"]],
        )
        return self

    def transform(self, images: Any, names: Sequence[str] | None = None) -> np.ndarray:
        """Turn images into the model's input.

        Args:
            images: an ``ImageSet``, or a list of Pillow images, image bytes or file paths.
            names: what an error calls each image (default: an ``ImageSet``'s paths, a path itself).

        Returns:
            float32 ``(N, C, H, W)``, normalised with the training mean and std.

        Raises:
            DataError: an image is damaged or not a PNG/JPEG/BMP/GIF (the message names it).
        """
        state = self._fitted()
        items, found = _as_images(images)
        names = found if names is None else [str(n) for n in names]
        c, h, w = state["channels"], state["height"], state["width"]
        out = np.empty((len(items), c, h, w), dtype=np.float32)  # (N, C, H, W)
        for i, (item, name) in enumerate(zip(items, names, strict=True)):
            out[i] = _pixels(_open(item, name), c, h, w)
        mean = np.asarray(state["mean"], dtype=np.float32)[None, :, None, None]
        std = np.asarray(state["std"], dtype=np.float32)[None, :, None, None]
        out -= mean
        out /= std
        return out

    def encode_target(self, labels: Sequence[Any]) -> np.ndarray:
        """Encode class names: binary -> float32 ``(N, 1)`` of 0/1 (1 is the second class),
        multiclass -> int64 ``(N,)`` class indexes.

        Raises:
            DataError: a label is not one of the known classes.
        """
        classes = self._fitted_classes()
        index = {name: i for i, name in enumerate(classes)}
        values = [str(v) for v in (labels.tolist() if isinstance(labels, np.ndarray | pd.Series) else labels)]
        unknown = sorted({v for v in values if v not in index})
        if unknown:
            raise DataError(
                f"The class(es) {_quote_list(unknown)} did not appear when the model was set up "
                f"(known classes: {_quote_list(classes)}). Remove those images."
            )
        codes = np.array([index[v] for v in values], dtype=np.int64)
        if self._state["task"] == "binary":  # type: ignore[index]
            return codes.astype(np.float32)[:, None]  # (N, 1)
        return codes  # (N,)

    def decode_outputs(self, outputs: np.ndarray, files: Sequence[str] | None = None) -> pd.DataFrame:
        """Turn raw model outputs into predictions.

        Args:
            outputs: ``(N, n_outputs)`` logits: one (binary) or one per class (multiclass).
            files: the images' names (member paths); when given, a first ``file`` column.

        Returns:
            A frame with ``prediction`` (the class name) and ``probability_<class>`` per class.

        Raises:
            DataError: the number of outputs per row, or of file names, does not match.
        """
        classes = self._fitted_classes()
        out = output_matrix(outputs, self.n_outputs, "image", f"telling {len(classes)} classes apart")
        decoded = decode_class_outputs(out, self.task, classes, self._decision_threshold)
        if files is not None:
            files = [str(f) for f in files]
            if len(files) != len(out):
                raise DataError(f"There are {len(files)} file names for {len(out)} predictions.")
            decoded.insert(0, "file", files)
        return decoded

    def predict_with(self, images: Any, run: Callable[[np.ndarray], np.ndarray],
                     files: Sequence[str] | None = None) -> pd.DataFrame:
        """Predictions for images, the same in the app and in an export bundle.

        Args:
            images: as for ``transform``.
            run: the model: ``(N, C, H, W)`` inputs -> raw outputs.
            files: names for a first ``file`` column (default: an ``ImageSet``'s member paths).

        Returns:
            ``decode_outputs``: ``file`` (when known), ``prediction``, ``probability_<class>``.
        """
        if files is None and isinstance(images, ImageSet):
            files = images.paths
        return self.decode_outputs(run(self.transform(images, names=files)), files=files)

    # -- description ----------------------------------------------------------------------------

    @property
    def task(self) -> str:
        """``"binary"`` (2 classes) or ``"multiclass"``."""
        self._fitted_classes()
        return self._state["task"]  # type: ignore[index]

    @property
    def classes(self) -> list[str]:
        """Class names in output order (empty when fitted without labels)."""
        return list(self._fitted()["classes"] or [])

    @property
    def n_outputs(self) -> int:
        """Model outputs per image: 1 (binary) or the number of classes."""
        return 1 if self.task == "binary" else len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one transformed image."""
        state = self._fitted()
        return state["channels"], state["height"], state["width"]

    @property
    def mean(self) -> list[float]:
        """Per-channel pixel mean of the training images (pixels in [0, 1])."""
        return list(self._fitted()["mean"])

    @property
    def std(self) -> list[float]:
        """Per-channel pixel standard deviation of the training images."""
        return list(self._fitted()["std"])

    # -- persistence ----------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The fitted state as plain JSON (a yes/no model's decision threshold included)."""
        state = copy.deepcopy(self._fitted())
        return {**state, **(self._decision_state() if state["classes"] else {})}

    @classmethod
    def from_dict(cls, state: dict) -> ImagePreprocessor:
        """Rebuild from ``to_dict`` output (e.g. a bundle's preprocess.json).

        Raises:
            DataError: not image preprocessing state, another version, or damaged.
        """
        check_saved_state(state, FORMAT, FORMAT_VERSION, "image")
        try:
            channels = state["channels"]
            # Sizes as fit() allows them, 1 to 1024 (a forged 100,000-pixel side would be 120 GB an
            # image); finite centres and positive spreads (text, NaN or 0 make every input the same).
            ok = (
                type(channels) is int and channels in (1, 3)
                and all(type(state[side]) is int and 1 <= state[side] <= 1024 for side in ("height", "width"))
                and finite_numbers(state["mean"], channels)
                and finite_numbers(state["std"], channels)
                and all(s > 1e-12 for s in state["std"])
                and (state["classes"] is None or len(state["classes"]) >= 2)
            )
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise DataError("The image preprocessing file is incomplete or damaged. Export the model again.")
        pre = cls()
        pre._state = {k: v for k, v in copy.deepcopy(state).items() if not k.startswith("decision_threshold")}
        pre._load_decision_state(state)
        return pre

    # -- internals ------------------------------------------------------------------------------

    def _fitted(self) -> dict:
        if self._state is None:
            raise RuntimeError("The image preprocessor is not fitted yet: call fit() first.")
        return self._state

    def _fitted_classes(self) -> list[str]:
        classes = self._fitted()["classes"]
        if not classes:
            raise DataError("This image preprocessing has no classes, so it cannot encode or decode labels.")
        return classes


# ---------------------------------------------------------------------------------------------
# From a zip to training arrays
# ---------------------------------------------------------------------------------------------


@dataclass
class PreparedImages:
    """Everything training and evaluation need from an image zip (like ``PreparedData``).

    Attributes:
        preprocessor: fitted on the training images; also decodes model outputs.
        X_train, X_val, X_test: float32 ``(N, C, H, W)``.
        y_train, y_val, y_test: int64 ``(N,)`` (multiclass) or float32 ``(N, 1)`` (binary).
        paths_train, paths_val, paths_test: member paths of each set's images.
        labels_train, labels_val, labels_test: class names of each set's images.
        train_idx, val_idx, test_idx: positions in the ``ImageSet`` (sorted member paths).
        input_shape: ``(C, H, W)``.
        n_outputs: 1 (binary) or the number of classes.
    """

    preprocessor: ImagePreprocessor
    X_train: np.ndarray
    X_val: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_val: np.ndarray
    y_test: np.ndarray
    paths_train: list[str]
    paths_val: list[str]
    paths_test: list[str]
    labels_train: list[str]
    labels_val: list[str]
    labels_test: list[str]
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    input_shape: tuple[int, int, int]
    n_outputs: int

    @property
    def task(self) -> str:
        """``"binary"`` or ``"multiclass"``."""
        return self.preprocessor.task

    @property
    def classes(self) -> list[str]:
        """Class names in output order."""
        return self.preprocessor.classes

    def true_targets(self, split: str) -> np.ndarray:
        """The class names of the "train", "val" or "test" images, comparable with predictions."""
        labels = {"train": self.labels_train, "val": self.labels_val, "test": self.labels_test}[split]
        return np.asarray(labels, dtype=object)


def prepare_images(
    source: Any,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 42,
    size: tuple[int, int] | None = None,
    max_images: int = 50_000,
    test_rows: np.ndarray | None = None,
    val_rows: np.ndarray | None = None,
) -> PreparedImages:
    """Read (unless given an ``ImageSet``), split stratified, fit on training images, transform.

    Args:
        source: an image zip (path, bytes, file-like) or an ``ImageSet``.
        val_fraction: share of images for validation.
        test_fraction: share of images for the final test.
        seed: random seed for the split.
        size: ``(height, width)``; default chosen from the training images.
        max_images: most images read from a zip.
        test_rows: boolean mask over the images that are the test set (replaces
            ``test_fraction``; see ``split_indices``).
        val_rows: boolean mask over the images that are the validation set (replaces
            ``val_fraction``: a cross-validation fold).

    Raises:
        DataError: the zip or the fractions cannot be used.
    """
    from builder.data.split import split_indices  # the app side only; keeps bundle imports small

    images = source if isinstance(source, ImageSet) else read_image_zip(source, max_images=max_images)
    classes = images.classes
    task = "binary" if len(classes) == 2 else "multiclass"
    train, val, test = split_indices(np.asarray(images.labels, dtype=object), task, val_fraction, test_fraction,
                                     seed, test_rows=test_rows, val_rows=val_rows)
    sets = {"train": images.subset(train), "val": images.subset(val), "test": images.subset(test)}
    pre = ImagePreprocessor().fit(sets["train"], size=size, classes=classes)
    logger.info(
        "Prepared %d training, %d validation and %d test images of shape %s",
        len(train), len(val), len(test), pre.input_shape,
    )
    return PreparedImages(
        preprocessor=pre,
        X_train=pre.transform(sets["train"]),
        X_val=pre.transform(sets["val"]),
        X_test=pre.transform(sets["test"]),
        y_train=pre.encode_target(sets["train"].labels),
        y_val=pre.encode_target(sets["val"].labels),
        y_test=pre.encode_target(sets["test"].labels),
        paths_train=sets["train"].paths,
        paths_val=sets["val"].paths,
        paths_test=sets["test"].paths,
        labels_train=sets["train"].labels,
        labels_val=sets["val"].labels,
        labels_test=sets["test"].labels,
        train_idx=train,
        val_idx=val,
        test_idx=test,
        input_shape=pre.input_shape,
        n_outputs=pre.n_outputs,
    )


__all__ = [
    "FORMAT",
    "IMAGE_EXTENSIONS",
    "ImagePreprocessor",
    "ImageSet",
    "PreparedImages",
    "choose_size",
    "prepare_images",
    "read_image_zip",
    "sort_classes",
]
