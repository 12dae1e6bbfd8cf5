"""Open zip files that came from someone else without trusting them.

Every zip the app reads (a model bundle a user uploads, later image folders) goes through
``open_zip``, which looks at the whole table of contents before a single byte is unpacked:

* no member may escape the folder it is unpacked into: absolute paths, ``..`` parts, Windows drive
  letters and symbolic links are refused;
* the number of members and their declared sizes are capped, and so is each member's compression
  ratio, because a "zip bomb" is a tiny file that unpacks to gigabytes;
* encrypted members are refused (we could not read them anyway).

``read_member`` then reads one member with a hard cap on the bytes actually produced, so a member
whose header lies about its size still cannot fill memory. Errors are ``BundleError`` with a plain
sentence that starts "This file is not a model bundle: ...".
"""

from __future__ import annotations

import io
import re
import stat
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

from builder.errors import BundleError

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

DEFAULT_MAX_MEMBERS = 64
DEFAULT_MAX_TOTAL_BYTES = 2 * GiB
DEFAULT_MAX_MEMBER_BYTES = 1 * GiB
# Real files (weights, JSON, code) compress 2-10x; text with long runs of one character can reach
# ~100x. Bombs rely on ratios of 1,000x and more, so 200x refuses them and nothing we write.
DEFAULT_MAX_RATIO = 200
# Below this size a high ratio cannot hurt (1 MiB of zeros is still only 1 MiB), so it is allowed.
RATIO_FREE_BYTES = 1 * MiB
READ_CHUNK_BYTES = 1 * MiB

NOT_A_BUNDLE = "This file is not a model bundle"
EXPORT_AGAIN = "Export the model again from the Export page."

_DRIVE = re.compile(r"^[A-Za-z]:")

ZipSource = str | Path | bytes | bytearray | memoryview | BinaryIO

# What reading a damaged member raises: a CRC mismatch or bad header (BadZipFile), truncated data
# (EOFError, OSError), corrupt deflate data (zlib.error), a header offset pointing before the file
# (ValueError: negative seek), an unsupported compression method (NotImplementedError), encryption
# (RuntimeError).
ZIP_READ_ERRORS = (zipfile.BadZipFile, OSError, EOFError, zlib.error, ValueError, NotImplementedError, RuntimeError)


def open_zip(
    source: ZipSource,
    *,
    max_members: int = DEFAULT_MAX_MEMBERS,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
    max_ratio: float = DEFAULT_MAX_RATIO,
    what: str = NOT_A_BUNDLE,
) -> zipfile.ZipFile:
    """Open a zip and check its whole table of contents before anything is read.

    Args:
        source: a path, the zip's bytes, or a binary file-like object (e.g. a Streamlit upload).
        max_members: most members allowed (folders included).
        max_total_bytes: most bytes all members may unpack to, by their declared sizes.
        max_member_bytes: most bytes one member may unpack to.
        max_ratio: largest unpacked/packed size ratio allowed for members over 1 MiB.
        what: how messages start, e.g. "This file is not a model bundle".

    Returns:
        The open ``zipfile.ZipFile`` (close it, or use it in a ``with`` block).

    Raises:
        BundleError: the source is not a zip, or any member is unsafe; the message names it.
    """
    try:
        if isinstance(source, bytes | bytearray | memoryview):
            handle: str | Path | BinaryIO = io.BytesIO(bytes(source))
        else:
            handle = source
        zf = zipfile.ZipFile(handle)
    except FileNotFoundError:
        raise BundleError(f"The file {str(source)!r} does not exist.") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError):
        raise BundleError(f"{what}: it is not a zip archive, or it is damaged. {EXPORT_AGAIN}") from None
    try:
        check_members(zf, max_members=max_members, max_total_bytes=max_total_bytes,
                      max_member_bytes=max_member_bytes, max_ratio=max_ratio, what=what)
    except BaseException:
        zf.close()
        raise
    return zf


def check_members(
    zf: zipfile.ZipFile,
    *,
    max_members: int = DEFAULT_MAX_MEMBERS,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
    max_ratio: float = DEFAULT_MAX_RATIO,
    what: str = NOT_A_BUNDLE,
) -> None:
    """Raise ``BundleError`` for the first unsafe thing in ``zf``'s table of contents.

    See ``open_zip`` for the arguments.
    """
    infos = zf.infolist()
    if len(infos) > max_members:
        raise BundleError(
            f"{what}: it holds {len(infos)} files, more than the {max_members} allowed. {EXPORT_AGAIN}"
        )
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        problem = unsafe_name_reason(name)
        if problem:
            raise BundleError(f"{what}: the member {name!r} {problem}, so it is refused.")
        if _is_symlink(info):
            raise BundleError(f"{what}: the member {name!r} is a symbolic link, so it is refused.")
        if info.flag_bits & 0x1:
            raise BundleError(f"{what}: the member {name!r} is encrypted, so it cannot be read.")
        key = name.replace("\\", "/").rstrip("/").lower()
        if key in seen:
            # Two members with one name: which one "wins" depends on the reader, so refuse both.
            raise BundleError(f"{what}: the name {name!r} appears twice in it.")
        seen.add(key)
        if info.file_size > max_member_bytes:
            raise BundleError(
                f"{what}: the member {name!r} unpacks to {_size(info.file_size)}, more than the "
                f"{_size(max_member_bytes)} allowed for one file."
            )
        total += info.file_size
        if total > max_total_bytes:
            raise BundleError(
                f"{what}: its files unpack to more than the {_size(max_total_bytes)} allowed."
            )
        if info.file_size > RATIO_FREE_BYTES:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > max_ratio:
                raise BundleError(
                    f"{what}: the member {name!r} is compressed {ratio:,.0f} times (a 'zip bomb' "
                    f"that would unpack to {_size(info.file_size)}), so it is refused."
                )


def unsafe_name_reason(name: str) -> str | None:
    """Say why a member name could write outside the unpack folder, or ``None`` if it is safe.

    Both separators count: a zip made on Windows may use backslashes, and an extractor there treats
    them as folders.
    """
    if not name or "\x00" in name:
        return "has an empty or invalid name"
    normal = name.replace("\\", "/")
    if normal.startswith("/"):
        return "has an absolute path"
    if _DRIVE.match(normal):
        return "names a drive letter"
    if any(part == ".." for part in normal.split("/")):
        return "points outside the folder ('..')"
    return None


def read_member(zf: zipfile.ZipFile, name: str, limit: int = DEFAULT_MAX_MEMBER_BYTES,
                what: str = NOT_A_BUNDLE) -> bytes:
    """Read one member, never producing more than ``limit`` bytes.

    The declared size was checked by ``open_zip``; this also caps the bytes really unpacked, in
    case the header lied.

    Args:
        zf: a zip opened with ``open_zip``.
        name: the member's name.
        limit: most bytes to accept.
        what: how messages start.

    Raises:
        BundleError: the member is missing, larger than ``limit``, or damaged.
    """
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise BundleError(f"{what}: it has no {name}. {EXPORT_AGAIN}") from None
    if info.file_size > limit:
        raise BundleError(
            f"{what}: {name} is {_size(info.file_size)}, more than the {_size(limit)} allowed."
        )
    parts: list[bytes] = []
    produced = 0
    try:
        with zf.open(info) as member:
            while True:
                chunk = member.read(min(READ_CHUNK_BYTES, limit + 1 - produced))
                if not chunk:
                    break
                produced += len(chunk)
                if produced > limit:
                    raise BundleError(
                        f"{what}: {name} unpacks to more than the {_size(limit)} allowed."
                    )
                parts.append(chunk)
    except BundleError:  # the cap above (a ValueError too)
        raise
    except ZIP_READ_ERRORS as exc:
        raise BundleError(f"{what}: {name} is damaged ({exc}). {EXPORT_AGAIN}") from None
    return b"".join(parts)


def safe_extract(zf: zipfile.ZipFile, folder: str | Path, limit: int = DEFAULT_MAX_MEMBER_BYTES) -> list[Path]:
    """Unpack every file of a checked zip into ``folder`` with bounded reads.

    Args:
        zf: a zip opened with ``open_zip`` (so no name can escape ``folder``).
        folder: where to unpack; created if missing.
        limit: most bytes per member.

    Returns:
        The paths written, in the zip's order.
    """
    root = Path(folder).resolve()
    root.mkdir(parents=True, exist_ok=True)
    written = []
    for info in zf.infolist():
        target = (root / info.filename.replace("\\", "/")).resolve()
        # Checked again after resolving, in case the folder itself holds a link.
        if root != target and root not in target.parents:
            raise BundleError(f"{NOT_A_BUNDLE}: the member {info.filename!r} points outside the folder.")
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(read_member(zf, info.filename, limit))
        written.append(target)
    return written


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    # Unix permissions live in the high 16 bits of external_attr when the zip was made on Unix.
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def _size(n: int) -> str:
    """Write a byte count for people: 12 KB, 3.4 MB, 2.0 GB."""
    for unit, factor in (("GB", GiB), ("MB", MiB), ("KB", KiB)):
        if n >= factor:
            value = n / factor
            return f"{value:.1f} {unit}" if value < 10 else f"{value:,.0f} {unit}"
    return f"{n} bytes"
