"""A corpus of hostile files, generated on demand: small on disk, huge or broken once parsed.

Each maker writes one file into a folder the caller owns (a test's ``tmp_path``) and returns its
path. Everything is deterministic (fixed seed, fixed zip dates), so a failure reproduces exactly.
The three "bombs" are the ones issue 11 found with the first version:

- ``parquet_of_zeros``: about 50 KB of Parquet that decodes to about 3.5 GB of zeros (the issue's
  was 1 MB);
- ``xlsx_with_one_huge_cell``: about 650 KB of .xlsx whose one text cell holds 650 million
  characters;
- ``bundle_with_many_categories``: a real bundle whose preprocess.json lists two million categories
  for one column (its hash updated in bundle.json, as someone editing it would do).

The others are small files that made a third-party parser fail in its own words: broken XML inside
an .xlsx, a design JSON nested 100,000 deep, a text mean in preprocess.json.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

SEED = 11
_DATE = (2020, 1, 1, 0, 0, 0)  # every zip member's date: the same bytes on every run

# --- a minimal .xlsx, written by hand (openpyxl's own files carry the time they were made) --------

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/sharedStrings.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/></Relationships>'
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    'Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" '
    'Target="sharedStrings.xml"/></Relationships>'
)
_SHEET_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
)
_SHEET_TAIL = "</sheetData></worksheet>"
_STRINGS_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
)


def _sheet(rows: int = 12) -> str:
    """A sheet with a header (note, amount, label) and ``rows`` rows; every note is shared string 1,
    except the first row's, which is shared string 0 (the cell a hostile file makes huge)."""
    cells = ['<row r="1"><c r="A1" t="inlineStr"><is><t>note</t></is></c>'
             '<c r="B1" t="inlineStr"><is><t>amount</t></is></c>'
             '<c r="C1" t="inlineStr"><is><t>label</t></is></c></row>']
    rng = np.random.default_rng(SEED)
    for r in range(2, rows + 2):
        label = "yes" if r % 2 else "no"
        cells.append(f'<row r="{r}"><c r="A{r}" t="s"><v>{0 if r == 2 else 1}</v></c>'
                     f'<c r="B{r}"><v>{rng.integers(1, 100)}</v></c>'
                     f'<c r="C{r}" t="inlineStr"><is><t>{label}</t></is></c></row>')
    return _SHEET_HEAD + "".join(cells) + _SHEET_TAIL


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _write_xlsx(path: Path, sheet: str, strings: Callable[[Callable[[bytes], object]], None]) -> Path:
    """An .xlsx whose sharedStrings.xml is streamed by ``strings(write)`` (never whole in memory)."""
    with zipfile.ZipFile(path, "w", compresslevel=9) as zf:
        for name, text in (("[Content_Types].xml", _CONTENT_TYPES), ("_rels/.rels", _ROOT_RELS),
                           ("xl/workbook.xml", _WORKBOOK), ("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS),
                           ("xl/worksheets/sheet1.xml", sheet)):
            zf.writestr(_member(name), text)
        with zf.open(_member("xl/sharedStrings.xml"), "w", force_zip64=True) as out:
            strings(out.write)
    return path


def plain_xlsx(path: Path) -> Path:
    """The same hand-written workbook with ordinary cells: proves the others differ only where meant."""
    def strings(write: Callable[[bytes], object]) -> None:
        write((_STRINGS_HEAD + '<si><t>first note</t></si><si><t>a note</t></si></sst>').encode())
    return _write_xlsx(path, _sheet(), strings)


def xlsx_with_one_huge_cell(path: Path, chars: int = 650_000_000) -> Path:
    """One cell of ``chars`` characters (an Excel cell holds at most 32,767): about 1,000 times
    smaller zipped than read."""
    block = b"A" * 2**20

    def strings(write: Callable[[bytes], object]) -> None:
        write((_STRINGS_HEAD + "<si><t>").encode())
        left = chars
        while left > 0:
            write(block[:min(left, len(block))])
            left -= len(block)
        write(b"</t></si><si><t>a note</t></si></sst>")
    return _write_xlsx(path, _sheet(), strings)


def xlsx_with_far_cells(path: Path) -> Path:
    """A few cells, one in the last column (XFD) and one in the last row (1,048,576): pandas pads
    every row to the widest and fills the rows between, 17 billion empty cells."""
    sheet = (_SHEET_HEAD + '<row r="1"><c r="A1" t="inlineStr"><is><t>note</t></is></c>'
             '<c r="XFD1" t="inlineStr"><is><t>far</t></is></c></row>'
             '<row r="1048576"><c r="A1048576"><v>1</v></c></row>' + _SHEET_TAIL)

    def strings(write: Callable[[bytes], object]) -> None:
        write((_STRINGS_HEAD + "</sst>").encode())
    return _write_xlsx(path, sheet, strings)


def xlsx_with_broken_xml(path: Path) -> Path:
    """A workbook whose sheet XML stops in the middle of a tag (a copy cut short, or edited)."""
    sheet = _sheet()
    def strings(write: Callable[[bytes], object]) -> None:
        write((_STRINGS_HEAD + '<si><t>first note</t></si><si><t>a note</t></si></sst>').encode())
    return _write_xlsx(path, sheet[: len(sheet) // 2] + '<c r="Q', strings)


# --- Parquet -------------------------------------------------------------------------------------


def parquet_of_zeros(path: Path, rows: int = 110_000_000, columns: int = 4, row_group: int = 5_000_000) -> Path:
    """``rows`` x ``columns`` 64-bit zeros (about 3.5 GB once read) in about 50 KB of Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    zeros = pa.array(np.zeros(row_group, dtype=np.int64))
    schema = pa.schema([(f"x{i}", pa.int64()) for i in range(columns)])
    with pq.ParquetWriter(path, schema, compression="zstd", max_rows_per_page=1_000_000,
                          write_batch_size=1_000_000) as writer:
        left = rows
        while left > 0:
            n = min(left, row_group)
            writer.write_table(pa.table([zeros[:n]] * columns, schema=schema), row_group_size=row_group)
            left -= n
    return path


def parquet_with_long_text(path: Path, rows: int = 1_000, chars: int = 1_000_000) -> Path:
    """A text column whose every cell repeats one string of ``chars`` characters (a dictionary page
    holds it once): about 1 GB of text from a small file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    text = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, dtype=np.int32)), pa.array(["B" * chars]))
    pq.write_table(pa.table({"note": text, "amount": np.arange(rows)}), path, compression="zstd")
    return path


# --- text formats --------------------------------------------------------------------------------


def csv_with_a_long_cell(path: Path, chars: int = 40_000) -> Path:
    """A CSV whose second row holds one cell longer than any Excel cell (32,767 characters)."""
    path.write_text("note,amount\nshort,1\n" + "C" * chars + ",2\nshort,3\n", encoding="utf-8")
    return path


def deep_json(path: Path, depth: int = 100_000) -> Path:
    """JSON nested ``depth`` deep (``{"layers": [[[[...]]]]}``): Python's parser gives up with a
    RecursionError, not a JSONDecodeError."""
    path.write_text('{"family": "mlp", "layers": ' + "[" * depth + "]" * depth + "}", encoding="utf-8")
    return path


def deep_json_table(path: Path, depth: int = 100_000) -> Path:
    """A .json table file nested ``depth`` deep."""
    path.write_text("[" * depth + "]" * depth, encoding="utf-8")
    return path


# --- bundles -------------------------------------------------------------------------------------


def rewrite_bundle(source: Path, path: Path, member: str, change: Callable[[bytes], bytes]) -> Path:
    """A copy of the bundle ``source`` with ``member`` changed by ``change`` and its SHA-256 in
    bundle.json updated, as someone editing a bundle by hand would (the hashes are not keyed)."""
    with zipfile.ZipFile(source) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    members[member] = change(members[member])
    manifest = json.loads(members["bundle.json"])
    if member in manifest.get("files", {}):
        manifest["files"][member] = hashlib.sha256(members[member]).hexdigest()
    members["bundle.json"] = json.dumps(manifest, indent=2).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    path.write_bytes(buffer.getvalue())
    return path


def _edit_state(edit: Callable[[dict], None]) -> Callable[[bytes], bytes]:
    def change(data: bytes) -> bytes:
        state = json.loads(data)
        edit(state)
        return json.dumps(state).encode()
    return change


def _categorical(state: dict) -> dict:
    return next(c for c in state["columns"] if "categories" in c)


def _scaled(state: dict) -> dict:
    return next(c for c in state["columns"] if "std" in c)


def bundle_with_many_categories(source: Path, path: Path, n: int = 2_000_000, setting_too: bool = False) -> Path:
    """A table bundle whose first categorical column lists ``n`` categories (``n`` one-hot inputs
    per row where the model takes a handful); ``setting_too``: its max_categories setting raised to
    match, so only bundle.json's input shape tells."""
    def edit(state: dict) -> None:
        _categorical(state)["categories"] = [f"c{i:07d}" for i in range(n)]
        if setting_too:
            state["settings"]["max_categories"] = n
    return rewrite_bundle(source, path, "preprocess.json", _edit_state(edit))


def bundle_with_a_text_mean(source: Path, path: Path) -> Path:
    """A table bundle whose first scaled column's mean is text."""
    def edit(state: dict) -> None:
        _scaled(state)["mean"] = "about twelve"
    return rewrite_bundle(source, path, "preprocess.json", _edit_state(edit))


def bundle_with_other_classes(source: Path, path: Path) -> Path:
    """A classification bundle whose preprocess.json names other classes than its manifest."""
    def edit(state: dict) -> None:
        state["target_encoding"]["classes"] = ["cat", "dog"]
    return rewrite_bundle(source, path, "preprocess.json", _edit_state(edit))


def bundle_with_deep_preprocess_json(source: Path, path: Path, depth: int = 100_000) -> Path:
    """A bundle whose preprocess.json is nested ``depth`` deep."""
    return rewrite_bundle(source, path, "preprocess.json", lambda _: b"[" * depth + b"]" * depth)


def bundle_with_many_values(source: Path, path: Path, n: int = 4_000_000) -> Path:
    """A bundle whose preprocess.json (about 60 MB, under the 64 MB member limit, and random enough
    to pass the zip's compression-ratio check) is a list of ``n`` small objects: about 1.3 GB of
    Python objects once parsed."""
    numbers = np.random.default_rng(SEED).integers(0, 10**9, n)
    data = b"[" + b",".join(b'{"k":%d}' % v for v in numbers.tolist()) + b"]"
    return rewrite_bundle(source, path, "preprocess.json", lambda _: data)
