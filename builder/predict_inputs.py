"""What a user hands the Predict page, turned into what ``predict(raw, **opts)`` takes.

* images: any mix of image files and zips of images (folders or not, class folders ignored) ->
  file names and bytes, in upload order (zip members in path order);
* text: one typed text -> a one-row table with the model's text column;
* a forecast: the history table is passed as it is; ``history_for_chart`` gives its tail, cleaned
  the way the model reads it, for the chart beside the forecast.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import pandas as pd

from builder.errors import BuilderError, DataError

MAX_PREDICT_IMAGES = 5_000  # images per prediction request (each is decoded and resized)
MAX_IMAGE_FILE_BYTES = 64 * 1024 * 1024
_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
_NOT_IMAGES = "This file is not a usable zip of images"


def _skipped(name: str) -> bool:
    """macOS metadata, hidden files and anything that is not an image by its name."""
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    return (not parts or any(p == "__MACOSX" or p.startswith(".") for p in parts)
            or not parts[-1].lower().endswith(_IMAGE_EXTENSIONS))


def check_image(name: str, content: bytes) -> None:
    """Refuse, by name, a file that is not a whole PNG, JPEG, BMP or GIF image (cheap: no decoding).

    Raises:
        DataError: the file is damaged or another format.
    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(content)) as image:
            if image.format not in ("PNG", "JPEG", "BMP", "GIF"):
                raise ValueError(image.format)
            image.verify()
    # What Pillow raises for a damaged or foreign file (the same list as the image reader's), and
    # the ValueError above for a format it opens but the model does not read.
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError,
            Image.DecompressionBombWarning):
        raise DataError(f"The image {name!r} is damaged or is not a PNG, JPEG, BMP or GIF image. Open it and "
                        "save it again as PNG or JPEG, or leave it out.") from None


def images_from_uploads(uploads: Sequence[tuple[str, bytes]],
                        max_images: int = MAX_PREDICT_IMAGES) -> tuple[list[str], list[bytes]]:
    """Image names and bytes from uploaded image files and zips.

    Args:
        uploads: ``(file name, content)`` of each uploaded file.
        max_images: most images accepted in all.

    Returns:
        ``(names, data)``: a zip's images are named by their member path, as ``predict.py`` and
        the command line name them; when several zips are uploaded at once, ``zip name/member
        path``, so two zips' ``1.png`` stay apart.

    Raises:
        DataError: a file is neither an image nor a zip, a zip is unsafe or holds no image, an
            image is damaged (named), or there are more than ``max_images`` images.
    """
    from builder.safezip import EXPORT_AGAIN, open_zip, read_member

    names: list[str] = []
    data: list[bytes] = []
    several_zips = sum(name.lower().endswith(".zip") for name, _ in uploads) > 1
    for file_name, content in uploads:
        lower = file_name.lower()
        if lower.endswith(".zip"):
            try:
                with open_zip(content, max_members=2 * max_images + 1_000, max_member_bytes=MAX_IMAGE_FILE_BYTES,
                              what=f"{_NOT_IMAGES} ({file_name!r})") as zf:
                    members = sorted(i.filename for i in zf.infolist() if not i.is_dir() and not _skipped(i.filename))
                    if not members:
                        raise DataError(f"The zip {file_name!r} holds no PNG, JPEG, BMP or GIF image. "
                                        "Zip the images to predict (in folders or not) and upload it again.")
                    for member in members[:max_images + 1 - len(names)]:
                        names.append(f"{file_name}/{member}" if several_zips else member)
                        data.append(read_member(zf, member, MAX_IMAGE_FILE_BYTES, what=_NOT_IMAGES))
            except DataError:
                raise
            except BuilderError as exc:  # the safe-zip checks speak of bundles: say it for images
                raise DataError(str(exc).replace(EXPORT_AGAIN, "Zip the images again and upload the new zip.")) from None
        elif lower.endswith(_IMAGE_EXTENSIONS):
            names.append(file_name)
            data.append(content)
        else:
            raise DataError(f"{file_name!r} is not an image or a zip of images. Upload PNG, JPEG, BMP or GIF "
                            "files, or a .zip of them.")
        if len(names) > max_images:
            raise DataError(f"That is more than {max_images:,} images at once. Split them into smaller batches.")
    for name, content in zip(names, data, strict=True):
        check_image(name, content)
    return names, data


def text_row(text_column: str, text: str) -> pd.DataFrame:
    """One typed text as the one-row table a text model predicts from."""
    return pd.DataFrame({text_column: [text]})


def history_for_chart(preprocessor: Any, history: pd.DataFrame, steps: int) -> pd.DataFrame:
    """The last ``steps`` points of a forecast's history on the model's regular grid.

    Returns:
        Columns ``time`` (datetime64) and ``value`` (the forecast column, original units, gaps
        filled as the model fills them).

    Raises:
        DataError: the table lacks the time or value columns, or a time cannot be read.
    """
    frame = preprocessor.regularise(history).tail(steps)
    return pd.DataFrame({"time": frame[preprocessor.time_column].to_numpy(),
                         "value": frame[preprocessor.target].to_numpy(dtype=float)})


def summarise_anomalies(scored: pd.DataFrame) -> str:
    """'3 of 120 rows (2.5%) look unusual.' from ``anomaly_score``/``is_anomaly`` predictions."""
    flagged, total = int(scored["is_anomaly"].astype(bool).sum()), len(scored)
    if not flagged:
        return f"None of the {total:,} rows looks unusual at the model's threshold."
    return f"{flagged:,} of {total:,} rows ({flagged / total:.1%}) look unusual: they are listed first below."
