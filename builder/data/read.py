"""Reading a user's table file (CSV/TSV/TXT, Excel, Parquet, JSON) into a DataFrame.

Analysts' files arrive with semicolons, Windows code pages, byte-order marks, blank or repeated
header cells, trailing empty Excel rows, or are not tables at all. ``read_table`` accepts a path,
raw bytes or an uploaded file object, repairs what is safe to repair (and logs it), and turns
everything else into a ``DataError`` that says what is wrong with which file and what to do.

Like ``preprocess.py``, this file is copied verbatim into every export bundle, so the bundle's
``predict.py`` reads files exactly as the app does: it imports only pandas and the standard library
at the top (openpyxl, pyarrow and charset-normalizer only when a file needs them).

Plain CSV files (UTF-8, '.' decimals) are read with pyarrow's multi-threaded reader where pyarrow
is installed, into exactly the frame pandas' C parser gives (``_read_delimited_fast``); every other
file, and any value the two parsers would convert differently, is read by the C parser as before.

A file's size on disk says little about its size once read: 50 KB of Parquet can hold 3.5 GB of
zeros, and 650 KB of .xlsx one cell of 650 million characters. ``ReadLimits`` bounds the rows, the
values and the characters per cell, checked from a Parquet file's metadata and while an Excel sheet
streams by, before any frame is built, and on every frame read.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

try:
    from builder.errors import DataError
except ImportError:  # copied into an export bundle, next to predict.py

    class DataError(ValueError):  # type: ignore[no-redef]
        """The file cannot be read as a table; the message says why and what to do."""

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 200 * 2**20


@dataclass(frozen=True)
class ReadLimits:
    """How large a table may be once read, whatever the size of its file.

    Each limit is a setting: the environment variable in ``LIMIT_SETTINGS`` changes it for the app,
    the command line and a bundle's predict.py alike.

    Attributes:
        max_rows: most rows of data.
        max_cells: most values (rows times columns).
        max_cell_chars: most characters in one cell (32,767 is Excel's own limit).
    """

    max_rows: int = 10_000_000
    max_cells: int = 200_000_000
    max_cell_chars: int = 32_767

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ReadLimits:
        """The limits, each taken from its environment variable when that is set.

        Raises:
            DataError: a variable is set to something other than a whole number of 1 or more.
        """
        values = {}
        for item in fields(cls):
            setting = LIMIT_SETTINGS[item.name]
            raw = environ.get(setting, "").strip().replace("_", "").replace(",", "")
            if not raw:
                continue
            if not raw.isdigit() or int(raw) < 1:
                given, default = environ[setting], item.default
                raise DataError(
                    f"The setting {setting}={given!r} is not a whole number of 1 or more. Set it to a "
                    f"number such as {default:,} (the default), or remove it."
                )
            values[item.name] = int(raw)
        return cls(**values)


# The environment variable that sets each limit.
LIMIT_SETTINGS = {
    "max_rows": "BUILDER_MAX_ROWS",
    "max_cells": "BUILDER_MAX_CELLS",
    "max_cell_chars": "BUILDER_MAX_CELL_CHARS",
}
ROWS_SETTING, CELLS_SETTING, CELL_CHARS_SETTING = LIMIT_SETTINGS.values()

SUPPORTED_TABLE_EXTENSIONS = (
    ".csv", ".tsv", ".txt", ".xlsx", ".xlsm", ".parquet", ".json", ".jsonl", ".ndjson",
)
# Delimiters the sniffer may choose from; anything else is more likely text than a separator.
DELIMITERS = ",;\t|"
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "bar"}
SNIFF_BYTES = 64 * 1024

TableSource = str | os.PathLike | bytes | bytearray | memoryview | IO[bytes]

# Signatures of common non-table files, to tell the user what they actually uploaded.
_MAGIC = {
    b"PK\x03\x04": "a zip archive or an Excel workbook",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"\xd0\xcf\x11\xe0": "an old-style Office file (.xls or .doc)",
    b"PAR1": "a Parquet file",
}
_WESTERN_SYMBOLS = "€£°²³µ’‘“”–—•…«»¿¡§©®™½¼¾±·"
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def read_table(
    source: TableSource,
    name: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    drop_empty_rows: bool = True,
    *,
    limits: ReadLimits | None = None,
) -> pd.DataFrame:
    """Read a table file into a DataFrame with clean, unique column names.

    Args:
        source: a path, the file's bytes, or a binary file object (e.g. Streamlit's UploadedFile).
        name: the file name; needed for its extension when ``source`` is bytes. Without any name
            the format is recognised from the content.
        max_bytes: refuse files larger than this.
        drop_empty_rows: drop rows with no value at all (right for training); predicting keeps
            them, so the output has one row per input row, in order.
        limits: most rows, values and characters per cell (default: ``ReadLimits.from_env()``).

    Returns:
        The table. Column names are stripped of spaces; blank ones become ``column_3`` (its
        position) and repeated ones get ``_2``, ``_3`` suffixes.

    Raises:
        DataError: the file is missing, empty, too large (in bytes, or once read: see
            ``ReadLimits``), not a supported format, not a table, or damaged. The message names
            the file and says what to do.
    """
    limits = limits or ReadLimits.from_env()
    tried_arrow = False
    if isinstance(source, (str, os.PathLike)):
        # A delimited file on disk goes to pyarrow's reader straight from the file: no copy of its
        # bytes in memory. ``None`` (pyarrow missing, or a file that needs a repair) reads as below.
        path = Path(source)
        suffix = Path(name or path.name).suffix.lower()
        if suffix in _DELIMITED and path.is_file():
            _check_size(path.stat().st_size, path.name, max_bytes)
            label = f"'{name or path.name}'"
            frame = _read_delimited_fast(path, label, _DELIMITED[suffix])
            if frame is not None:
                return _tidy(frame, label, limits, drop_empty_rows)
            tried_arrow = True
    data, name = _read_bytes(source, name, max_bytes)
    # Messages read "The file {label} ...": "The file 'sales.csv' is empty." / "The file you
    # uploaded is empty."
    label = f"'{name}'" if name else "you uploaded"
    if not data.strip():
        raise DataError(f"The file {label} is empty. Choose a file that contains a table.")
    extension = _extension(name, data, label)
    if extension in _DELIMITED:
        frame = _read_delimited(data, label, _DELIMITED[extension], fast=not tried_arrow)
    else:
        frame = _READERS[extension](data, label, limits)
    return _tidy(frame, label, limits, drop_empty_rows)


# ---------------------------------------------------------------------------------------------
# Getting the bytes
# ---------------------------------------------------------------------------------------------


def _read_bytes(source: TableSource, name: str | None, max_bytes: int) -> tuple[bytes, str | None]:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise DataError(
                f"The file '{path}' does not exist or is a folder. Check the path and try again."
            )
        _check_size(path.stat().st_size, path.name, max_bytes)
        return path.read_bytes(), name or path.name
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "read"):
        name = name or os.path.basename(str(getattr(source, "name", "") or "")) or None
        size = getattr(source, "size", None)  # Streamlit's UploadedFile knows its size
        if isinstance(size, int):
            _check_size(size, name, max_bytes)
        # An uploaded file may have been read before (e.g. for a preview): start from the top.
        if getattr(source, "seekable", lambda: False)():
            source.seek(0)
        data = source.read(max_bytes + 1)
        if len(data) > max_bytes:
            # Count the rest without keeping it, so the message can give the real size.
            rest = sum(len(chunk) for chunk in iter(lambda: source.read(2**20), type(data)()))
            _check_size(len(data) + rest, name, max_bytes)
        if isinstance(data, str):
            data = data.encode("utf-8")
    else:
        raise TypeError(
            f"read_table expects a path, bytes or a file object, got {type(source).__name__}"
        )
    _check_size(len(data), name, max_bytes)
    return data, name


def _check_size(size: int, name: str | None, max_bytes: int) -> None:
    if size > max_bytes:
        label = f"The file '{name}'" if name else "The uploaded file"
        raise DataError(
            f"{label} is {megabytes(size)}, more than the limit of {megabytes(max_bytes)}. "
            "Use a smaller extract (fewer rows or columns), or save it as Parquet, which is "
            "smaller."
        )


def megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size / 1024:.1f} KB"


def _extension(name: str | None, data: bytes, label: str) -> str:
    suffix = Path(name).suffix.lower() if name else ""
    if suffix in SUPPORTED_TABLE_EXTENSIONS:
        return suffix
    if suffix == ".xls":
        raise DataError(
            f"The file {label} is an old Excel .xls workbook, which cannot be read. "
            "Open it in Excel and save it as .xlsx or CSV."
        )
    if suffix:
        raise DataError(
            f"The file {label} has the extension '{suffix}', which is not a supported table "
            f"format. Supported: {', '.join(SUPPORTED_TABLE_EXTENSIONS)}. Save or export the "
            "table as CSV or Excel."
        )
    # No extension to go by (bytes without a name): recognise the format from the content.
    if data.startswith(b"PAR1"):
        return ".parquet"
    if data.startswith(b"PK\x03\x04"):
        return ".xlsx"
    if data.lstrip()[:1] in (b"[", b"{"):
        return ".json"
    return ".csv"


# ---------------------------------------------------------------------------------------------
# Text formats
# ---------------------------------------------------------------------------------------------


def _decode(data: bytes, label: str) -> str:
    """Bytes to text: BOM first, then UTF-8, then the encoding charset-normalizer detects."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    head = data[:SNIFF_BYTES]
    if b"\x00" in head:
        raise DataError(_not_text_message(data, label))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    encoding = _detect_encoding(data)
    if encoding is None:
        raise DataError(_not_text_message(data, label))
    logger.info("The file %s is not UTF-8; reading it as %s", label, encoding)
    return data.decode(encoding, errors="replace")


def _detect_encoding(data: bytes) -> str | None:
    """Guess the code page of a file that is not UTF-8, or ``None`` when it is not text at all."""
    # The lines holding non-ASCII bytes are the only evidence of the encoding; in a mostly-ASCII
    # file a random sample often misses them.
    lines = re.finditer(rb"[^\n]*[\x80-\xff][^\n]*", data)
    evidence = b"\n".join(match.group() for _, match in zip(range(2000), lines, strict=False))
    # charset-normalizer misjudges short Western samples (it read "España" as Korean johab), and
    # Excel on Western Windows writes cp1252, so that reading wins whenever it is plausible.
    if _looks_western(evidence):
        return "cp1252"
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # an export bundle without the optional package: Excel's Western default
        return "cp1252"

    # A looser chaos threshold than the default: short columns of names score high even when right.
    results = from_bytes(evidence, threshold=0.5)
    best = results.best()
    if best is None:
        return None
    # Excel on Windows writes its own code pages (cp1250-cp1258); prefer one among near-ties.
    for match in results:
        if match.encoding.startswith("cp125") and match.chaos <= best.chaos + 0.02:
            return match.encoding
    return best.encoding


def _looks_western(evidence: bytes) -> bool:
    """True when the bytes read as cp1252 give accented Latin letters inside mostly-ASCII words."""
    try:
        text = evidence.decode("cp1252")
    except UnicodeDecodeError:
        return False
    special = re.findall(r"[^\x00-\x7f]", text)
    if not special or not all(_is_western(ch) for ch in special):
        return False
    # Cyrillic or Greek read as cp1252 also gives Latin letters, but whole words of them.
    clustered = sum(len(run) for run in re.findall(r"[^\x00-\x7f]{3,}", text))
    return clustered < 0.3 * len(special)


def _is_western(ch: str) -> bool:
    return "LATIN" in unicodedata.name(ch, "") or ch in _WESTERN_SYMBOLS


def _not_text_message(data: bytes, label: str) -> str:
    kind = next((what for magic, what in _MAGIC.items() if data.startswith(magic)), None)
    found = f"looks like {kind}" if kind else "contains binary data, not text"
    return (
        f"The file {label} {found}, so it cannot be read as a text table. Check you chose the "
        "right file; if it is a spreadsheet, give it its real extension (.xlsx) or save it as CSV."
    )


def _check_garbled(text: str, label: str) -> None:
    if _garbled(text[:SNIFF_BYTES]):
        raise DataError(
            f"The file {label} does not look like text (many unreadable characters). "
            "Check you chose the right file, or save it again as CSV (UTF-8) from Excel."
        )


def _garbled(sample: str) -> bool:
    """More than 1% of ``sample`` is unreadable characters or control codes."""
    odd = sum(1 for ch in sample if ch == "\ufffd" or (ch < " " and ch not in "\t\r\n"))
    return bool(sample) and odd / len(sample) > 0.01


def _sniff_delimiter(text: str) -> str:
    sample = text[:SNIFF_BYTES]
    if len(text) > SNIFF_BYTES and "\n" in sample:
        sample = sample[: sample.rindex("\n")]  # whole lines only, or the sniffer miscounts
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def _decimal_mark(sample: str, delimiter: str) -> str:
    """"," when the sample writes decimals with a comma ("1,5"), as European Excel exports do."""
    if delimiter == ",":
        return "."
    commas = len(re.findall(r"\d,\d", sample))
    return "," if commas > len(re.findall(r"\d\.\d", sample)) else "."


def _read_delimited(data: bytes, label: str, delimiter: str | None = None, fast: bool = True) -> pd.DataFrame:
    """A delimited text file: pyarrow's reader for plain UTF-8 with '.' decimals (``fast``), else
    pandas' C parser after decoding, sniffing the separator and the decimal mark."""
    if fast:
        frame = _read_delimited_fast(data, label, delimiter)
        if frame is not None:
            return frame
    text = _decode(data, label)
    _check_garbled(text, label)
    delimiter = delimiter or _sniff_delimiter(text)
    decimal = _decimal_mark(text[:SNIFF_BYTES], delimiter)
    # The C parser reads UTF-8 bytes: the file's own when it is UTF-8 (the same text), else the
    # decoded text encoded again. A text buffer (io.StringIO) would hold 4 bytes per character.
    utf8 = data if data.isascii() else text.encode("utf-8")
    del text
    try:
        frame = pd.read_csv(io.BytesIO(utf8), sep=delimiter, decimal=decimal, low_memory=False)
        header = pd.read_csv(io.BytesIO(utf8), sep=delimiter, header=None, nrows=1, dtype=str)
        return _with_raw_header(frame, header)
    except pd.errors.EmptyDataError:
        raise DataError(
            f"The file {label} has no columns. Choose a file that contains a table."
        ) from None
    except pd.errors.ParserError as error:
        detail = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
        where = (
            f"line {detail[2]} has {detail[3]} values but the header has {detail[1]}"
            if detail else "its rows do not line up with its header"
        )
        shown = _DELIMITER_NAMES.get(delimiter, repr(delimiter))
        raise DataError(
            f"The file {label} could not be read as a table: {where} (values separated by "
            f"{shown}). Check that values containing the separator are in quotes, or save the "
            "file again as CSV."
        ) from None


# pyarrow's multi-threaded CSV reader: the fast path for plain files --------------------------

# The missing-value words of pandas' C parser (``pandas._libs.parsers.STR_NA_VALUES``), so both
# readers turn the same cells into missing values.
NA_WORDS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
            "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")
_SCAN_CHUNK = 16 * 2**20
# From this size on, pyarrow reads block by block. Reading a 1M x 20 CSV (a 168 MB frame) grew the
# process by 420-440 MB with the whole-file reader, 256 MB block by block in 1 MB blocks (333 MB in
# 4 MB blocks: more of them in flight), for ~0.5 s more on 2 cores (1.2 s against 0.6-0.8 s).
STREAM_FROM_BYTES = 32 * 2**20
STREAM_BLOCK_BYTES = 2**20  # the first block also gives each column its type


def _read_delimited_fast(source: bytes | Path, label: str, delimiter: str | None) -> pd.DataFrame | None:
    """Read a plain delimited file with pyarrow, giving exactly the frame pandas' C parser gives.

    "Plain" means UTF-8 (a byte-order mark allowed), a header on the first line, '.' decimals.
    pyarrow reads with all cores and, from a path, without holding the file's bytes in memory.
    Where the two parsers could disagree the answer is ``None``, and the caller reads the file
    with the C parser as before: another encoding, decimal commas, blank lines before the header,
    a parse error (the C parser's message names the line), and the few values pyarrow converts
    differently (listed in ``_arrow_disagrees``). pyarrow not installed (e.g. in a bundle): ``None``.
    """
    try:
        import pyarrow as pa
        from pyarrow import csv as pa_csv
    except ImportError:
        return None
    if int(pa.__version__.split(".")[0]) < 14:  # a bundle's older pyarrow: the options used here are newer
        return None
    head = _head(source, 4 * SNIFF_BYTES + 4)  # enough bytes for SNIFF_BYTES characters and one more
    whole = len(head) < 4 * SNIFF_BYTES + 4  # the head is the whole file
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]  # pyarrow skips it too
    elif head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head[:SNIFF_BYTES]:
        return None
    text = _utf8_prefix(head)
    if text is None or not text.split("\n", 1)[0].strip() or _garbled(text[:SNIFF_BYTES]):
        return None  # another encoding, a blank first line (pandas skips it), or not text
    delimiter = delimiter or _sniff_delimiter(text)
    if _decimal_mark(text[:SNIFF_BYTES], delimiter) != ".":
        return None
    header = _header_names(text if whole else text[: text.rfind("\n") + 1], delimiter)
    if header is None:
        return None
    positions = [str(i) for i in range(len(header))]
    # pyarrow's own allocator (mimalloc), told to hand back what the parser freed once the frame is
    # built: 250 MB held after reading 150 MB, against 560 MB with the C library's allocator.
    pool = pa.default_memory_pool()
    try:
        table = _arrow_table(pa, pa_csv, source, delimiter, positions, pool)
        retype = [name for name, kind in zip(positions, table.schema.types, strict=True)
                  if pa.types.is_temporal(kind)]  # dates and times: pandas keeps the text
        if retype:
            texts = _arrow_csv(pa, pa_csv, source, delimiter, positions, pool, as_text=retype)
            for name in retype:
                table = table.set_column(positions.index(name), name, texts.column(name))
        if _arrow_disagrees(pa, table, source):
            return None
        # One block per column, each column's Arrow memory freed as it is converted.
        frame = table.to_pandas(memory_pool=pool, split_blocks=True, self_destruct=True)
    except (pa.ArrowException, OSError, ValueError):
        return None
    del table
    pool.release_unused()  # the parser's freed buffers go back to the system
    for name in [name for name, dtype in frame.dtypes.items() if dtype == object]:
        # All missing (pyarrow's null type) or yes/no with gaps: pandas' float NaN, not None.
        column = frame[name]
        frame[name] = column.astype("float64") if column.isna().all() else column.where(column.notna(), float("nan"))
    return frame.set_axis(header, axis=1)


def _head(source: bytes | Path, size: int) -> bytes:
    if isinstance(source, Path):
        with source.open("rb") as file:
            return file.read(size)
    return source[:size]


def _utf8_prefix(head: bytes) -> str | None:
    """The text of ``head``, the start of a file; ``None`` when it is not UTF-8 (a character cut at
    the end of ``head`` is left out)."""
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 3:
            return None
        return head[: error.start].decode("utf-8")


def _header_names(text: str, delimiter: str) -> list[str] | None:
    """The header as ``_with_raw_header`` reads it (a missing-value word reads as blank), or
    ``None`` when it is not one plain line."""
    try:
        header = pd.read_csv(io.StringIO(text), sep=delimiter, header=None, nrows=1, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError):
        return None
    names = ["" if pd.isna(v) else str(v) for v in header.iloc[0]] if len(header) else []
    if not names or any("\n" in n or "\r" in n for n in names):
        return None
    return names


def _arrow_table(pa: Any, pa_csv: Any, source: bytes | Path, delimiter: str, names: list[str], pool: Any) -> Any:
    """The whole file as a pyarrow table; a big one read block by block where its types allow.

    The streaming reader takes each column's type from its first block (1 MB) and stops at a value
    that does not fit it (a column empty at first, whole numbers that turn decimal): such a file is
    read again by the whole-file reader, which infers types from every row.
    """
    size = source.stat().st_size if isinstance(source, Path) else len(source)
    if size >= STREAM_FROM_BYTES:
        try:
            return _arrow_csv(pa, pa_csv, source, delimiter, names, pool, stream=True)
        except pa.ArrowInvalid:
            pool.release_unused()  # the blocks read so far
    return _arrow_csv(pa, pa_csv, source, delimiter, names, pool)


def _arrow_csv(pa: Any, pa_csv: Any, source: bytes | Path, delimiter: str, names: list[str], pool: Any,
               as_text: list[str] | None = None, stream: bool = False) -> Any:
    """One pyarrow read: the header line skipped, columns named by position; ``as_text``: only
    these columns, as text; ``stream``: block by block (types from the first block)."""
    file = pa.OSFile(str(source)) if isinstance(source, Path) else pa.BufferReader(source)
    convert = pa_csv.ConvertOptions(
        null_values=list(NA_WORDS), strings_can_be_null=True, quoted_strings_can_be_null=True,
        true_values=["True", "TRUE", "true"], false_values=["False", "FALSE", "false"],
        **({"column_types": dict.fromkeys(as_text, pa.string()), "include_columns": as_text}
           if as_text else {}),
    )
    options = {
        "read_options": pa_csv.ReadOptions(column_names=names, skip_rows=1,
                                           block_size=STREAM_BLOCK_BYTES if stream else None),
        "parse_options": pa_csv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        "convert_options": convert,
        "memory_pool": pool,
    }
    with file:
        return pa_csv.open_csv(file, **options).read_all() if stream else pa_csv.read_csv(file, **options)


def _arrow_disagrees(pa: Any, table: Any, source: bytes | Path) -> bool:
    """Whether pyarrow may have converted a value differently from pandas' C parser.

    pyarrow reads hexadecimal integers ("0x1F"; pandas keeps the text), "NAN" and "+nan" as
    not-a-number (text), whole numbers beyond 64 bits as floats (pandas keeps them exactly), and
    "+5" as a float where pandas reads an integer. Any of these, or bytes that are not UTF-8
    (pyarrow's binary type), sends the file to the C parser.
    """
    import pyarrow.compute as pc

    kinds = table.schema.types
    if any(pa.types.is_binary(k) or pa.types.is_large_binary(k) for k in kinds):
        return True
    floats = []
    for column, kind in zip(table.columns, kinds, strict=True):
        if pa.types.is_floating(kind) and column.null_count < len(column):
            if pc.any(pc.is_nan(column)).as_py():
                return True
            low, high = (pc.min_max(column)[key].as_py() for key in ("min", "max"))
            if max(-low, high) >= 2.0**63 and pc.max(pc.abs(pc.filter(column, pc.is_finite(column)))).as_py() >= 2.0**63:
                return True
            floats.append(column)
    hex_ints = any(pa.types.is_integer(k) for k in kinds)
    if not floats and not hex_ints:
        return False
    plus, hexadecimal = _scan(source, bool(floats), hex_ints)
    if hexadecimal:
        return True
    # "+5" made a column of whole numbers float; pandas reads it as integers.
    return plus and any(pc.all(pc.equal(c, pc.floor(c))).as_py() for c in floats)


def _scan(source: bytes | Path, plus: bool, hexadecimal: bool) -> tuple[bool, bool]:
    """Whether the file's bytes hold "+" and "0x"/"0X" (each looked for only when asked), read from a
    path in chunks."""
    if not isinstance(source, Path):
        return plus and b"+" in source, hexadecimal and _has_hex(source)
    found_plus = found_hex = False
    tail = b""
    with source.open("rb") as file:
        while chunk := file.read(_SCAN_CHUNK):
            found_plus = found_plus or (plus and b"+" in chunk)
            found_hex = hexadecimal and (_has_hex(chunk) or (tail == b"0" and chunk[:1] in (b"x", b"X")))
            if found_hex or (found_plus and not hexadecimal):
                break  # the answer cannot change
            tail = chunk[-1:]
    return found_plus, found_hex


def _has_hex(data: bytes) -> bool:
    """Whether "0x" or "0X" occurs: memchr for each "x" and "X" while they are rare (numbers, names)."""
    for x in (b"x", b"X"):
        at, seen = data.find(x, 1), 0
        while at != -1:
            if data[at - 1] == 0x30:  # "0"
                return True
            seen += 1
            if seen > 1_000:  # text full of x: one search for the pair instead
                if b"0" + x in data:
                    return True
                break
            at = data.find(x, at + 1)
    return False


def _read_json(data: bytes, label: str, limits: ReadLimits) -> pd.DataFrame:
    # Every value but the first in a list or object follows a comma, so commas and brackets bound
    # the values, records included (commas inside text only over-count): checked before Python
    # holds any of them, at some 60 bytes each.
    values = data.count(b",") + data.count(b"[") + data.count(b"{") + 1
    if values > limits.max_cells:
        limit = limits.max_cells
        raise DataError(
            f"The file {label} holds up to {values:,} values and records, more than the limit of "
            f"{limit:,} values per table. Use a smaller extract, or raise the limit with the "
            f"environment variable {CELLS_SETTING}."
        )
    text = _decode(data, label)
    try:
        content: Any = json.loads(text)
    except json.JSONDecodeError as error:
        content = _json_lines(text, label, error, limits)
    except RecursionError:
        raise DataError(_too_deep_message(label)) from None
    del text
    if isinstance(content, list):
        _check_rows(len(content), label, limits)
    try:
        frame = _frame_from_json(content, label)
    except RecursionError:  # pandas flattens nested records recursively
        raise DataError(_too_deep_message(label)) from None
    # Nested lists/objects would make columns unhashable for profiling: keep them as JSON text.
    for column in frame.columns[frame.dtypes == object]:
        if frame[column].map(lambda v: isinstance(v, (list, dict))).any():
            frame[column] = frame[column].map(
                lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v
            )
    return frame


def _too_deep_message(label: str) -> str:
    return (
        f"The file {label} is JSON nested too deeply to read (lists or objects inside each other "
        "hundreds of levels deep). Tables are read from a list of records, an object of columns, "
        "or one record per line (JSON Lines)."
    )


def _json_lines(text: str, label: str, whole_file_error: json.JSONDecodeError, limits: ReadLimits) -> list[Any]:
    """Parse JSON Lines (one record per line), or explain where the JSON is broken."""
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            # If even the first record fails, the file was meant as one JSON document.
            where = whole_file_error.lineno if not records else number
            raise DataError(
                f"The file {label} is not valid JSON (problem at line {where}). Check the file is "
                "complete; tables are read from a list of records, an object of columns, or one "
                "record per line (JSON Lines)."
            ) from None
        except RecursionError:
            raise DataError(_too_deep_message(label)) from None
        if len(records) > limits.max_rows:
            _check_rows(len(records), label, limits)
    return records


def _frame_from_json(content: Any, label: str) -> pd.DataFrame:
    if isinstance(content, dict) and isinstance(content.get("data"), list):
        # pandas' "split" ({"columns": [...], "data": [[...]]}) and "table" orientations.
        if "columns" in content:
            try:
                return pd.DataFrame(content["data"], columns=content["columns"])
            except (ValueError, TypeError):  # rows that do not fit the columns, columns not a list
                raise DataError(_not_a_table_message(label)) from None
        schema = content.get("schema")
        keys = schema.get("primaryKey") if isinstance(schema, dict) else None
        index_fields = [key for key in keys if isinstance(key, str)] if isinstance(keys, list) else []
        frame = _frame_from_json(content["data"], label)
        return frame.drop(columns=[c for c in index_fields if c in frame.columns])
    if isinstance(content, list) and content and all(isinstance(r, dict) for r in content):
        return pd.json_normalize(content)
    if isinstance(content, dict) and content and all(
        isinstance(v, (list, dict)) for v in content.values()
    ):
        try:
            return pd.DataFrame(content).reset_index(drop=True)
        except ValueError:
            pass  # columns of different lengths: fall through to the message
    if isinstance(content, dict) and content and not any(
        isinstance(v, (list, dict)) for v in content.values()
    ):
        return pd.DataFrame([content])  # a single record
    if isinstance(content, list) and not content:
        raise DataError(f"The file {label} holds an empty list: there are no rows to read.")
    raise DataError(_not_a_table_message(label))


def _not_a_table_message(label: str) -> str:
    return (
        f"The file {label} is JSON but not a table. Use a list of records "
        '([{"age": 31, "city": "Paris"}, ...]), an object of equally long columns '
        '({"age": [31, 45], "city": ["Paris", "Rome"]}), or one record per line.'
    )


# ---------------------------------------------------------------------------------------------
# Binary formats
# ---------------------------------------------------------------------------------------------


def _read_excel(data: bytes, label: str, limits: ReadLimits) -> pd.DataFrame:
    from xml.etree.ElementTree import ParseError

    try:
        from builder.data.xlsx_check import check_workbook
    except ImportError:  # copied into an export bundle, next to read.py
        from xlsx_check import check_workbook  # type: ignore[no-redef]

    from openpyxl.utils.exceptions import InvalidFileException

    try:
        from lxml.etree import XMLSyntaxError  # openpyxl parses with lxml when it is installed
    except ImportError:
        XMLSyntaxError = ParseError  # noqa: N806

    try:
        check_workbook(data, label, limits)
        with pd.ExcelFile(io.BytesIO(data), engine="openpyxl") as book:
            sheets = book.sheet_names
            if not sheets:
                raise DataError(
                    f"The file {label} holds no worksheet (only charts, or nothing). Open it in Excel, "
                    "put the table on a sheet, and save it again as .xlsx or CSV."
                )
            first = sheets[0]
            if len(sheets) > 1:
                logger.info("The file %s has %d sheets; reading %r", label, len(sheets), first)
            frame = pd.read_excel(book, sheet_name=0)
            header = pd.read_excel(book, sheet_name=0, header=None, nrows=1)
    except DataError:  # our own sentence (a ValueError too): passed on as it is
        raise
    except (ParseError, XMLSyntaxError) as error:  # in a part openpyxl reads and the scan does not
        reason = str(error)
        raise DataError(
            f"The file {label} could not be opened as an Excel workbook: part of its XML is broken "
            f"({reason}). Open it in Excel and save it again as .xlsx or CSV."
        ) from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError, InvalidFileException,
            KeyError, OSError, ValueError, TypeError):
        raise DataError(
            f"The file {label} could not be opened as an Excel workbook: it may be damaged, "
            "password-protected, or not really an .xlsx file. Open it in Excel and save it "
            "again as .xlsx or CSV."
        ) from None
    return _with_raw_header(frame, header)


def _read_parquet(data: bytes, label: str, limits: ReadLimits) -> pd.DataFrame:
    import pyarrow

    try:
        _check_parquet(data, label, limits)
        return pd.read_parquet(io.BytesIO(data), engine="pyarrow")
    except DataError:  # our own sentence (a ValueError too): passed on as it is
        raise
    except (pyarrow.ArrowException, OSError, ValueError, TypeError, KeyError):  # TypeError, KeyError: pandas'
        # own metadata in the file is damaged (an unknown dtype, a missing field)
        raise DataError(
            f"The file {label} could not be read as Parquet: it may be damaged or not really a "
            "Parquet file. Export it again, or save the table as CSV."
        ) from None


def _check_parquet(data: bytes, label: str, limits: ReadLimits) -> None:
    """Refuse a Parquet file over the limits from its metadata (rows, values), and by the longest
    text of each text column, read with every repeated text held once (as the file holds it)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    file = pq.ParquetFile(pa.BufferReader(data))
    meta, schema = file.metadata, file.schema_arrow
    rows, leaves = meta.num_rows, meta.num_columns
    values = None
    if leaves != len(schema.names):  # nested columns: a list in one row can hold millions of values
        values = sum(meta.row_group(g).column(c).num_values for g in range(meta.num_row_groups)
                     for c in range(leaves))
    check_size_limits(rows, len(schema.names), label, limits, values)
    limit = limits.max_cell_chars
    # Only a column whose stored text (its dictionary included) exceeds the limit can hold a longer cell.
    text = {field.name for field in schema if _is_text(pa, field.type)}
    paths = [meta.schema.column(c).path for c in range(leaves)]
    long = sorted({paths[c] for g in range(meta.num_row_groups) for c in range(leaves)
                   if paths[c] in text and meta.row_group(g).column(c).total_uncompressed_size > limit})
    if not long:
        return
    # Read as dictionaries: a text repeated in every row stays one text, so a table of 1,000 copies
    # of a million characters is checked without making them.
    dictionary_file = pq.ParquetFile(pa.BufferReader(data), read_dictionary=long)
    done = 0
    for batch in dictionary_file.iter_batches(columns=long, batch_size=2**16):
        for column in long:
            array = batch.column(column)
            if pa.types.is_dictionary(array.type):
                lengths = pc.take(_text_lengths(pa, pc, array.dictionary), array.indices)
            else:
                lengths = _text_lengths(pa, pc, array)
            longest = pc.max(lengths).as_py()
            if longest is not None and longest > limit:
                chars = longest
                row = done + pc.index(lengths, longest).as_py() + 1
                raise DataError(
                    f"The file {label} has {chars:,} characters in one cell (column '{column}', data "
                    f"row {row:,}), more than the limit of {limit:,} per cell. Shorten that text, or "
                    f"raise the limit with the environment variable {CELL_CHARS_SETTING}."
                )
        done += batch.num_rows


def _is_text(pa: Any, kind: Any) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind)
                or pa.types.is_large_binary(kind))


def _text_lengths(pa: Any, pc: Any, array: Any) -> Any:
    kind = array.type
    return pc.utf8_length(array) if pa.types.is_string(kind) or pa.types.is_large_string(kind) else pc.binary_length(array)


# The delimited formats and their separator (None: sniffed from the file).
_DELIMITED: dict[str, str | None] = {".csv": None, ".txt": None, ".tsv": "\t"}
# The other formats' readers (the delimited ones are read by ``read_table`` itself).
_READERS: dict[str, Callable[[bytes, str, ReadLimits], pd.DataFrame]] = {
    ".xlsx": _read_excel,
    ".xlsm": _read_excel,
    ".parquet": _read_parquet,
    ".json": _read_json,
    ".jsonl": _read_json,
    ".ndjson": _read_json,
}


# ---------------------------------------------------------------------------------------------
# Clean-up shared by every format
# ---------------------------------------------------------------------------------------------


def _with_raw_header(frame: pd.DataFrame, header: pd.DataFrame) -> pd.DataFrame:
    """Put back the header as written: pandas renames repeats ("a.1") and blanks ("Unnamed: 2")."""
    if len(header) and header.shape[1] == frame.shape[1]:
        names = ["" if pd.isna(v) else str(v) for v in header.iloc[0]]
        # The names may repeat here; _tidy makes them unique.
        return frame.set_axis(names, axis=1)
    return frame


def _tidy(frame: pd.DataFrame, label: str, limits: ReadLimits, drop_empty_rows: bool = True) -> pd.DataFrame:
    """Clean column names, drop empty rows and unnamed empty columns, reject tables without data."""
    _check_frame(frame, label, limits)
    if frame.shape[1] == 0:
        raise DataError(f"The file {label} has no columns. Choose a file that contains a table.")
    raw = [str(c).strip() for c in frame.columns]
    # pandas names blank header cells "Unnamed: 3"; Excel leaves formatted but empty columns.
    blank = [not name or name.startswith("Unnamed:") for name in raw]
    empty_unnamed = [i for i, b in enumerate(blank) if b and frame.iloc[:, i].isna().all()]
    if empty_unnamed and len(empty_unnamed) < frame.shape[1]:
        logger.info("Dropping %d empty unnamed columns from the file %s", len(empty_unnamed), label)
        keep = [i for i in range(frame.shape[1]) if i not in set(empty_unnamed)]
        frame, raw, blank = frame.iloc[:, keep], [raw[i] for i in keep], [blank[i] for i in keep]
    frame = frame.set_axis(_unique_names(raw, blank, label), axis=1)

    empty_rows = frame.isna().all(axis=1)
    if drop_empty_rows and empty_rows.any():
        logger.info("Dropping %d empty rows from the file %s", int(empty_rows.sum()), label)
        frame = frame.loc[~empty_rows].reset_index(drop=True)
    if len(frame) == 0:
        shown = ", ".join(f"'{c}'" for c in frame.columns[:10])
        raise DataError(
            f"The file {label} has column names ({shown}) but no rows of data. "
            "Choose a file that contains the data as well as the header."
        )
    return frame


def _check_rows(rows: int, label: str, limits: ReadLimits) -> None:
    if rows > limits.max_rows:
        limit = limits.max_rows
        raise DataError(
            f"The file {label} has {rows:,} rows, more than the limit of {limit:,} rows. Use a sample "
            f"of the rows, or raise the limit with the environment variable {ROWS_SETTING}."
        )


def check_size_limits(rows: int, columns: int, label: str, limits: ReadLimits, values: int | None = None) -> None:
    """Refuse ``rows`` over the row limit, or ``values`` (default: rows times columns) over the
    values limit."""
    _check_rows(rows, label, limits)
    cells = rows * columns if values is None else values
    if cells > limits.max_cells:
        limit = limits.max_cells
        raise DataError(
            f"The file {label} has {rows:,} rows of {columns:,} columns ({cells:,} values), more than "
            f"the limit of {limit:,} values. Keep fewer rows or columns, or raise the limit with the "
            f"environment variable {CELLS_SETTING}."
        )


def _check_frame(frame: pd.DataFrame, label: str, limits: ReadLimits) -> None:
    """The limits, checked on the frame as read (every format; the CSV reader's memory is bounded
    by the file's size, the others were checked before they built it)."""
    rows, columns = frame.shape
    check_size_limits(rows, columns, label, limits)
    limit = limits.max_cell_chars
    for position, (name, values) in enumerate(frame.items(), start=1):
        if isinstance(name, str) and len(name) > limit:
            chars = len(name)
            raise DataError(
                f"The file {label} has a column name of {chars:,} characters (column {position:,}), "
                f"more than the limit of {limit:,} per cell. Shorten that name, or raise the limit "
                f"with the environment variable {CELL_CHARS_SETTING}."
            )
        lengths = _cell_lengths(values)
        if lengths is None:
            continue
        at = int(lengths.argmax()) if len(lengths) else 0
        if len(lengths) and lengths[at] > limit:
            chars, row, column = int(lengths[at]), at + 1, str(name)
            raise DataError(
                f"The file {label} has {chars:,} characters in one cell (column '{column}', data row "
                f"{row:,}), more than the limit of {limit:,} per cell. Shorten that text, or raise "
                f"the limit with the environment variable {CELL_CHARS_SETTING}."
            )


def _cell_lengths(column: pd.Series) -> Any:
    """Characters in each cell of a text column (0 for any other value), or ``None`` for columns
    that hold no text."""
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        sizes = pd.Series(dtype.categories).map(lambda v: len(v) if isinstance(v, str | bytes) else 0)
        codes = column.cat.codes.to_numpy()
        return np.where(codes >= 0, sizes.to_numpy()[codes], 0) if len(sizes) else None
    if isinstance(dtype, pd.StringDtype):
        return column.str.len().fillna(0).to_numpy(dtype="int64")
    if dtype == object:
        return column.map(lambda v: len(v) if isinstance(v, str | bytes) else 0).to_numpy(dtype="int64")
    return None


def _unique_names(raw: list[str], blank: list[bool], label: str) -> list[str]:
    names = [f"column_{i}" if empty else name for i, (name, empty) in enumerate(zip(raw, blank, strict=False), 1)]
    seen: set[str] = set()
    unique = []
    for name in names:
        candidate, k = name, 2
        while candidate in seen:
            candidate, k = f"{name}_{k}", k + 1
        seen.add(candidate)
        unique.append(candidate)
    renamed = [(old, new) for old, new in zip(raw, unique, strict=False) if old != new]
    if renamed:
        logger.info("Renamed blank or repeated column names in the file %s: %s", label, renamed)
    return unique
