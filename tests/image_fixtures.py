"""Reproducible image zips for tests (import these; they are not pytest fixtures).

``make_digits_zip`` writes scikit-learn's bundled 8x8 handwritten digits (no download) as small
images into a zip of class folders, the way an analyst would zip a folder tree: classes at different
depths, a mix of grayscale and colour PNG, JPEG, BMP and GIF files, plus the junk a Mac or Windows
zip tool adds (``__MACOSX``, ``.DS_Store``, ``Thumbs.db``, a README), which the reader must skip.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

DIGITS = tuple(range(10))

# (Pillow format, mode, extension), cycled over the images: grayscale is the majority (4 of 6).
MIXED_STYLES = (
    ("PNG", "L", ".png"),
    ("PNG", "RGB", ".png"),
    ("JPEG", "L", ".jpg"),
    ("BMP", "L", ".bmp"),
    ("JPEG", "RGB", ".jpeg"),
    ("GIF", "L", ".gif"),
)


def image_bytes(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    """Encode one Pillow image."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def digit_images(n_per_class: int = 30, size: int = 16, classes: tuple[int, ...] = DIGITS) -> list[tuple[int, Image.Image]]:
    """The first ``n_per_class`` digits of each class as grayscale ``size``x``size`` images."""
    digits = load_digits()
    out = []
    for label in classes:
        rows = np.flatnonzero(digits.target == label)[:n_per_class]
        for row in rows:
            pixels = (digits.images[row] * (255.0 / 16.0)).round().astype(np.uint8)  # (8, 8)
            image = Image.fromarray(pixels, mode="L").resize((size, size), Image.Resampling.BILINEAR)
            out.append((int(label), image))
    return out


def make_digits_zip(
    path_or_bytes: str | Path | None = None,
    n_per_class: int = 30,
    nested: bool = True,
    mixed_modes: bool = True,
    classes: tuple[int, ...] = DIGITS,
    size: int = 16,
    junk: bool = True,
) -> bytes | Path:
    """Write digits into a zip of class folders.

    Args:
        path_or_bytes: where to write the zip; ``None`` returns its bytes instead.
        n_per_class: images per class (the data set has ~180 per class).
        nested: put class folders at different depths (``digits/3``, ``digits/set/4``,
            ``digits/set/more/5``); otherwise directly at the top (``3/``).
        mixed_modes: cycle through ``MIXED_STYLES``; otherwise grayscale PNG only.
        classes: which digits to include.
        size: side of each image in pixels.
        junk: add files the reader must skip.

    Returns:
        The zip's bytes, or the path written.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, (label, image) in enumerate(digit_images(n_per_class, size, classes)):
            folder = f"digits/{'set/' * (label % 3)}" if nested else ""
            folder += "more/" if nested and label % 3 == 2 else ""
            fmt, mode, ext = MIXED_STYLES[i % len(MIXED_STYLES)] if mixed_modes else ("PNG", "L", ".png")
            options = {"quality": 95} if fmt == "JPEG" else {}
            zf.writestr(f"{folder}{label}/img_{i:05d}{ext}", image_bytes(image.convert(mode), fmt, **options))
        if junk:
            zf.writestr("__MACOSX/digits/._img_00000.png", b"\x00\x05\x16\x07 mac resource fork")
            zf.writestr("digits/.DS_Store", b"\x00\x00\x00\x01Bud1")
            zf.writestr("digits/0/Thumbs.db", b"windows thumbnails")
            zf.writestr("digits/README.txt", "Handwritten digits, one folder per digit.")
    data = buffer.getvalue()
    if path_or_bytes is None:
        return data
    path = Path(path_or_bytes)
    path.write_bytes(data)
    return path


def make_zip(members: dict[str, bytes | str]) -> bytes:
    """A zip with exactly these members (names are written as given, even unsafe ones)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            zf.writestr(zipfile.ZipInfo(name), content, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def solid(colour, size: tuple[int, int] = (6, 4), mode: str = "RGB") -> bytes:
    """A PNG of one colour (``size`` is width, height)."""
    return image_bytes(Image.new(mode, size, colour))
