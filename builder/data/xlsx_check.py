"""An Excel workbook checked before openpyxl reads it: what it would build, counted first.

A 650 KB .xlsx can hold one cell of 650 million characters, or a cell at XFD1048576 that pandas
pads into a grid of 17 billion values; openpyxl would build all of it. ``check_workbook`` finds the
parts openpyxl reads (the first worksheet and the shared texts) the way openpyxl finds them, and
streams their XML through expat: it counts the grid pandas would pad to and the characters of
every cell against ``ReadLimits``, names the cell over the limit, and names the part, line and
column of broken XML. Used by ``read.py`` (and copied beside it into every export bundle, so a
bundle's ``predict.py`` refuses the same files); it imports only the standard library.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from typing import Any

try:
    from builder.data.read import (
        CELL_CHARS_SETTING,
        CELLS_SETTING,
        DataError,
        ReadLimits,
        check_size_limits,
        megabytes,
    )
except ImportError:  # copied into an export bundle, next to read.py
    from read import (  # type: ignore[no-redef]
        CELL_CHARS_SETTING,
        CELLS_SETTING,
        DataError,
        ReadLimits,
        check_size_limits,
        megabytes,
    )

_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_TYPES_NS = "http://schemas.openxmlformats.org/package/2006/content-types"
_OFFICE_RELS_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_SHARED_STRINGS_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
_WORKBOOK_TYPES = (
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
    "application/vnd.ms-excel.sheet.macroEnabled.main+xml",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.template.main+xml",
    "application/vnd.ms-excel.template.macroEnabled.main+xml",
)
# openpyxl reads the workbook part, its relationships, styles, theme and properties whole; in a real
# workbook each is at most a few MB.
XLSX_PART_BYTES = 32 * 2**20
# expat passes text on in pieces but holds a tag whole, so a stretch of XML without a "<" longer
# than this many bytes per character of the cell limit (escaped, a character takes at most 10),
# plus room for a tag, is refused before expat sees it.
_XML_BYTES_PER_CHAR = 10
_XML_TAG_BYTES = 2**16
_XML_CHUNK = 2**20


class _TooLong(Exception):
    """Raised inside an expat handler: the text counted so far is over the limit."""


class _Found(Exception):
    """Raised inside an expat handler: the cell looked for (``args[0]``)."""


def check_workbook(data: bytes, label: str, limits: ReadLimits) -> None:
    """Refuse a workbook whose first sheet or shared texts are larger once read than ``limits``
    allow, or whose XML is broken, by streaming that XML through expat before openpyxl reads it.

    Mirrors how openpyxl (read-only, as pandas opens it) finds the parts and how pandas pads the
    sheet: rows up to the last row number, each as wide as the widest row.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        sheet, name, strings = _workbook_parts(zf, label)
        if sheet is not None:
            _scan_sheet(zf, sheet, name, label, limits)
        if strings is not None and strings in zf.namelist():
            entry = _scan_shared_strings(zf, strings, label, limits)
            if entry is not None:
                limit = limits.max_cell_chars
                cell = _cell_using_text(zf, sheet, entry - 1) if sheet is not None else None
                if cell is not None:
                    raise DataError(
                        f"The file {label} has a cell longer than the limit of {limit:,} characters "
                        f"(cell {cell} of the sheet '{name}'). Shorten that text, or raise the limit "
                        f"with the environment variable {CELL_CHARS_SETTING}."
                    )
                raise DataError(
                    f"The file {label} holds a text longer than the limit of {limit:,} characters "
                    f"(shared text {entry:,} of the workbook). Shorten that text, or raise the limit "
                    f"with the environment variable {CELL_CHARS_SETTING}."
                )


def _workbook_parts(zf: zipfile.ZipFile, label: str) -> tuple[str | None, str, str | None]:
    """``(first worksheet's part, its name, shared strings' part)``, found as openpyxl finds them;
    ``None`` where the workbook has none (openpyxl then says so itself)."""
    import posixpath

    workbook, strings = "xl/workbook.xml", None
    types = _small_part(zf, "[Content_Types].xml", label)
    for override in types.iter(f"{{{_TYPES_NS}}}Override") if types is not None else ():
        kind, part = override.get("ContentType"), (override.get("PartName") or "").lstrip("/")
        if kind == _SHARED_STRINGS_TYPE:
            strings = part
        elif kind in _WORKBOOK_TYPES:
            workbook = part
    folder = posixpath.dirname(workbook)
    targets: dict[str | None, tuple[str, str]] = {}
    rels = _small_part(zf, posixpath.join(folder, "_rels", posixpath.basename(workbook) + ".rels"), label)
    for rel in rels.iter(f"{{{_RELS_NS}}}Relationship") if rels is not None else ():
        target = rel.get("Target") or ""
        if rel.get("TargetMode") != "External":
            part = target[1:] if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))
            targets[rel.get("Id")] = (rel.get("Type") or "", part)
    for kind, part in targets.values():
        if kind.endswith(("/styles", "/theme")):
            _small_part(zf, part, label, parse=False)
    for part in ("_rels/.rels", "docProps/core.xml", "docProps/app.xml", "docProps/custom.xml"):
        _small_part(zf, part, label, parse=False)
    book, names = _small_part(zf, workbook, label), set(zf.namelist())
    for item in book.iter(f"{{{_MAIN_NS}}}sheet") if book is not None else ():
        kind, part = targets.get(item.get(f"{{{_OFFICE_RELS_NS}}}id"), ("", ""))
        if part in names and "chartsheet" not in kind:
            return part, str(item.get("name") or ""), strings
    return None, "", strings


def _small_part(zf: zipfile.ZipFile, part: str, label: str, parse: bool = True) -> Any:
    """A part openpyxl reads whole, refused when it unpacks to more than any real one; parsed
    (``parse``), or ``None`` when the workbook has no such part."""
    from xml.etree import ElementTree

    try:
        info = zf.getinfo(part)
    except KeyError:
        return None
    if info.file_size > XLSX_PART_BYTES:
        size, most = megabytes(info.file_size), megabytes(XLSX_PART_BYTES)
        raise DataError(
            f"The file {label} could not be opened as an Excel workbook: its part {part} unpacks to "
            f"{size}, more than the {most} such a part takes in a real workbook. Open it in Excel and "
            "save it again as .xlsx or CSV."
        )
    if not parse:
        return None
    try:
        return ElementTree.fromstring(zf.read(info))
    except ElementTree.ParseError as error:
        raise DataError(_broken_part_message(label, part, str(error))) from None


def _broken_part_message(label: str, part: str, reason: str) -> str:
    return (
        f"The file {label} could not be opened as an Excel workbook: {part} is not valid XML "
        f"({reason}). Open it in Excel and save it again as .xlsx or CSV."
    )


def _xml_parser(start: Callable[..., None] | None, text: Callable[[str], None] | None,
                end: Callable[[str], None] | None = None) -> Any:
    from xml.parsers import expat

    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True
    parser.buffer_size = 2**16
    if start is not None:
        parser.StartElementHandler = start
    if text is not None:
        parser.CharacterDataHandler = text
    if end is not None:
        parser.EndElementHandler = end
    return parser


def _stream_part(zf: zipfile.ZipFile, part: str, parser: Any, label: str, run_limit: int | None = None) -> bool:
    """Feed ``part`` to ``parser`` in chunks. With ``run_limit``, stop before a stretch of more
    than that many bytes without a "<" and answer ``False`` (the handlers' state then tells where
    it starts); else ``True`` once the whole part is parsed.

    Raises:
        DataError: the part is not well-formed XML (naming the line and column).
    """
    from xml.parsers import expat

    offset = run_start = 0  # run_start: where the current stretch without "<" began
    try:
        with zf.open(part) as member:
            while chunk := member.read(_XML_CHUNK):
                if run_limit is not None:
                    long_at, run_start = _long_stretch(chunk, offset, run_start, run_limit)
                    if long_at is not None:
                        parser.Parse(chunk[:max(long_at, 0)], False)
                        return False
                parser.Parse(chunk, False)
                offset += len(chunk)
            parser.Parse(b"", True)
    except expat.ExpatError as error:
        reason = f"{expat.ErrorString(error.code)}, line {error.lineno}, column {error.offset + 1}"
        raise DataError(_broken_part_message(label, part, reason)) from None
    return True


class _TextLength:
    """An expat text handler counting the characters of the current element (``restart`` at each
    one); raises ``_TooLong`` as soon as they pass ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chars = 0

    def restart(self) -> None:
        self.chars = 0

    def __call__(self, data: str) -> None:
        self.chars += len(data)
        if self.chars > self.limit:
            raise _TooLong


def _streams_within(zf: zipfile.ZipFile, part: str, start: Callable[[str, dict[str, str]], None],
                    length: _TextLength, label: str) -> bool:
    """Stream ``part`` through expat with these handlers: ``False`` when a text ran over its limit
    (the handlers' state tells where), ``True`` once the whole part is parsed."""
    try:
        return _stream_part(zf, part, _xml_parser(start, length), label,
                            _XML_BYTES_PER_CHAR * length.limit + _XML_TAG_BYTES)
    except _TooLong:
        return False


def _long_stretch(chunk: bytes, offset: int, run_start: int, limit: int) -> tuple[int | None, int]:
    """Whether ``chunk`` (at ``offset`` in its part) extends a stretch without "<" past ``limit``
    bytes: ``(its start relative to the chunk, or None; where the stretch open at the chunk's end
    began)``. One ``rfind`` per ``limit`` bytes: no Python loop over tags."""
    end = offset + len(chunk)
    while run_start + limit < end:
        found = chunk.rfind(b"<", max(run_start - offset, 0), run_start + limit + 1 - offset)
        if found == -1:
            return run_start - offset, run_start
        run_start = offset + found + 1
    found = chunk.rfind(b"<", max(run_start - offset, 0))
    return None, (offset + found + 1 if found != -1 else run_start)


def _scan_sheet(zf: zipfile.ZipFile, part: str, name: str, label: str, limits: ReadLimits) -> None:
    """Count the rows and columns pandas would build from the sheet, and the characters of each
    cell, refusing as soon as one is over its limit."""
    row_tag, cell_tag = f"{_MAIN_NS} row", f"{_MAIN_NS} c"
    limit = limits.max_cell_chars
    length = _TextLength(limit)
    columns: dict[str, int] = {}
    row = column = last_row = widest = 0

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal row, column, last_row, widest
        if tag == cell_tag:
            ref = attrs.get("r")
            if ref:
                letters = ref.rstrip("0123456789")
                column = columns.get(letters) or columns.setdefault(letters, _column_number(letters, ref, part, label))
            else:
                column += 1
            widest = max(widest, column)
            length.restart()
        elif tag == row_tag:
            ref = attrs.get("r")
            row = _row_number(ref, part, label) if ref else row + 1
            column = 0
            if row > last_row:
                last_row = row
                check_size_limits(last_row - 1, widest, label, limits)

    if not _streams_within(zf, part, start, length, label):
        cell = f"{_column_letters(column)}{row}"
        raise DataError(
            f"The file {label} has a cell longer than the limit of {limit:,} characters "
            f"(cell {cell} of the sheet '{name}'). Shorten that text, or raise the limit with the "
            f"environment variable {CELL_CHARS_SETTING}."
        )
    check_size_limits(max(last_row - 1, 0), widest, label, limits)


def _scan_shared_strings(zf: zipfile.ZipFile, part: str, label: str, limits: ReadLimits) -> int | None:
    """The number (1-based) of the first shared text longer than the cell limit, or ``None``;
    refuses a table of more texts than the values limit."""
    entry_tag = f"{_MAIN_NS} si"
    most = limits.max_cells
    length = _TextLength(limits.max_cell_chars)
    entries = 0

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal entries
        if tag == entry_tag:
            entries += 1
            length.restart()
            if entries > most:
                raise DataError(
                    f"The file {label} holds more than {most:,} different texts, more than the limit "
                    f"of values per table. Use a smaller extract, or raise the limit with the "
                    f"environment variable {CELLS_SETTING}."
                )

    return None if _streams_within(zf, part, start, length, label) else max(entries, 1)


def _cell_using_text(zf: zipfile.ZipFile, part: str, index: int) -> str | None:
    """The first cell of the sheet that shows shared text number ``index`` (0-based), or ``None``.
    Run only once a text was found too long, over a sheet already scanned."""
    row_tag, cell_tag, value_tag = f"{_MAIN_NS} row", f"{_MAIN_NS} c", f"{_MAIN_NS} v"
    wanted = str(index)
    row = column = 0
    shared = in_value = False
    value: list[str] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal row, column, shared, in_value
        if tag == cell_tag:
            ref = attrs.get("r")
            if ref:
                letters = ref.rstrip("0123456789")
                row, column = int(ref[len(letters):] or row), _column_number(letters, ref, part, "")
            else:
                column += 1
            shared = attrs.get("t") == "s"
        elif tag == row_tag:
            ref = attrs.get("r")
            row, column = (_row_number(ref, part, "") if ref else row + 1), 0
        elif tag == value_tag and shared:
            in_value = True
            value.clear()

    def text(data: str) -> None:
        if in_value:
            value.append(data)

    def end(tag: str) -> None:
        nonlocal in_value
        if tag == value_tag and in_value:
            in_value = False
            if "".join(value).strip() == wanted:
                raise _Found(f"{_column_letters(column)}{row}")

    try:
        _stream_part(zf, part, _xml_parser(start, text, end), "")
    except _Found as found:
        return str(found.args[0])
    return None


def _column_number(letters: str, ref: str, part: str, label: str) -> int:
    """1 for "A", 27 for "AA"; a reference openpyxl would refuse is a damaged workbook."""
    if not (1 <= len(letters) <= 3 and letters.isascii() and letters.isalpha()):
        raise DataError(_broken_part_message(label, part, f"the cell reference {ref!r} is not valid"))
    number = 0
    for letter in letters.upper():
        number = number * 26 + ord(letter) - 64
    return number


def _column_letters(number: int) -> str:
    letters = ""
    while number > 0:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters or "A"


def _row_number(ref: str, part: str, label: str) -> int:
    try:
        number = float(ref)
    except ValueError:
        number = float("nan")
    if not number.is_integer() or number < 1:
        raise DataError(_broken_part_message(label, part, f"the row number {ref!r} is not valid"))
    return int(number)


# Parquet ----------------------------------------------------------------------------------------
