"""read_table: every supported format, the repairs it makes, a plain message per bad file."""

from __future__ import annotations

import io
import logging
import os

import numpy as np
import pandas as pd
import pytest

from builder.data.read import LIMIT_SETTINGS, SUPPORTED_TABLE_EXTENSIONS, ReadLimits, read_table
from builder.errors import DataError
from tests.tabular_fixtures import make_messy_table


@pytest.fixture
def small() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "price": [1.5, np.nan, 3.25, 4.0],
            "city": ["Paris", "Köln", None, "Zürich"],
            "joined": pd.to_datetime(["2020-01-05", "2021-03-04", None, "2022-12-31"]),
        }
    )


class UploadedFile(io.BytesIO):
    """Stands in for Streamlit's UploadedFile: a BytesIO with a name, possibly read before."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.name = name


# --- sources ---------------------------------------------------------------------------------


def test_path_bytes_and_uploaded_file_give_the_same_table(tmp_path):
    data = b"a,b\n1,x\n2,y\n"
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    upload = UploadedFile(data, "t.csv")
    upload.read()  # a preview already consumed it; read_table must start from the top

    expected = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    for source, name in ((path, None), (str(path), None), (data, "t.csv"), (upload, None)):
        pd.testing.assert_frame_equal(read_table(source, name=name), expected)


def test_messy_table_survives_a_csv_round_trip(tmp_path):
    df = make_messy_table(n=200)
    path = tmp_path / "messy.csv"
    df.to_csv(path, index=False)
    back = read_table(path)
    assert list(back.columns) == list(df.columns)
    assert back.shape == df.shape
    # Messy money text is kept as written (the CSV reader itself turns "n/a" into a missing value).
    assert back["income"].fillna("n/a").tolist() == df["income"].tolist()
    assert back["customer_id"].tolist() == df["customer_id"].tolist()


# --- text formats ----------------------------------------------------------------------------


def test_semicolon_latin1_file_with_decimal_commas():
    text = "name;city;price\nJosé;España;1,5\nNiño;Köln;2,25\nRené;Málaga;3\n"
    df = read_table(text.encode("latin-1"), name="export.csv")
    assert list(df.columns) == ["name", "city", "price"]
    assert df["name"].tolist() == ["José", "Niño", "René"]
    assert df["city"].tolist() == ["España", "Köln", "Málaga"]
    assert df["price"].tolist() == [1.5, 2.25, 3.0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a;b\n1,5;x\n2,25;y\n", [1.5, 2.25]),  # decimal comma
        ("a;b\n1.5;x\n2.25;y\n", [1.5, 2.25]),  # semicolons, but decimal point
        ("a\tb\n1,5\tx\n2,25\ty\n", [1.5, 2.25]),
    ],
)
def test_decimal_mark_is_taken_from_the_data(text, expected):
    assert read_table(text.encode(), name="n.csv")["a"].tolist() == expected


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("id,город\n1,Москва\n2,Казань\n3,Санкт-Петербург\n4,Новосибирск\n", "cp1251"),
        ("id,όνομα\n1,Αθήνα\n2,Θεσσαλονίκη\n3,Πάτρα\n", "cp1253"),
        ("id,名前,都市\n1,山田,東京\n2,佐藤,大阪\n", "shift_jis"),
    ],
)
def test_non_western_encodings_are_detected(text, encoding):
    df = read_table(text.encode(encoding), name="cities.csv")
    expected = pd.read_csv(io.StringIO(text))
    pd.testing.assert_frame_equal(df, expected)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("a\tb\n1\tx\n2\ty\n", "t.tsv"),
        ("a|b\n1|x\n2|y\n", "t.txt"),
        ("a;b\n1;x\n2;y\n", "t.csv"),
        ("a,b\n1,x\n2,y\n", "t.txt"),
    ],
)
def test_delimiter_is_detected(text, name):
    df = read_table(text.encode(), name=name)
    assert list(df.columns) == ["a", "b"]
    assert df["b"].tolist() == ["x", "y"]


def test_quoted_separators_stay_inside_values():
    df = read_table(b'name,comment\nAnn,"likes red, blue"\nBob,"fine"\n', name="q.csv")
    assert df["comment"].tolist() == ["likes red, blue", "fine"]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_byte_order_mark_is_not_part_of_the_first_column_name(encoding):
    df = read_table("id,val\n1,2\n".encode(encoding), name="bom.csv")
    assert list(df.columns) == ["id", "val"]
    assert df["val"].tolist() == [2]


def test_column_names_are_stripped_and_made_unique(caplog):
    data = b" a ,a,,b\n1,2,3,4\n5,6,7,8\n"
    with caplog.at_level(logging.INFO, logger="builder.data.read"):
        df = read_table(data, name="names.csv")
    assert list(df.columns) == ["a", "a_2", "column_3", "b"]
    assert df["a_2"].tolist() == [2, 6]
    assert "Renamed" in caplog.text


def test_empty_rows_are_dropped():
    df = read_table(b"a,b\n1,2\n,\n3,4\n", name="gaps.csv")
    assert df["a"].tolist() == [1, 3]


# --- JSON ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orient", "lines", "name"),
    [
        ("records", False, "t.json"),
        ("columns", False, "t.json"),
        ("split", False, "t.json"),
        ("table", False, "t.json"),
        ("records", True, "t.jsonl"),
        ("records", True, "t.json"),
    ],
)
def test_json_layouts_round_trip(small, orient, lines, name):
    expected = small.drop(columns="joined")
    text = expected.to_json(orient=orient, lines=lines)
    back = read_table(text.encode(), name=name)
    pd.testing.assert_frame_equal(back, expected, check_dtype=False)


def test_nested_json_values_become_text():
    data = (
        b'[{"a": 1, "tags": ["x", "y"], "who": {"name": "Ann"}},'
        b' {"a": 2, "tags": [], "who": {"name": "Bob"}}]'
    )
    df = read_table(data, name="nested.json")
    assert df["tags"].tolist() == ['["x", "y"]', "[]"]
    assert df["who.name"].tolist() == ["Ann", "Bob"]


# --- binary formats --------------------------------------------------------------------------


def test_excel_round_trip_reads_the_first_sheet(tmp_path, small):
    path = tmp_path / "t.xlsx"
    with pd.ExcelWriter(path) as writer:
        small.to_excel(writer, sheet_name="data", index=False)
        pd.DataFrame({"other": [1]}).to_excel(writer, sheet_name="notes", index=False)
    back = read_table(path)
    pd.testing.assert_frame_equal(back, small, check_dtype=False)
    assert str(back["joined"].dtype).startswith("datetime64")


def test_excel_repeated_and_blank_headers(tmp_path):
    raw = pd.DataFrame([["x", "x", None, "y"], [1, 2, 3, 4], [5, 6, 7, 8]])
    path = tmp_path / "h.xlsx"
    raw.to_excel(path, index=False, header=False)
    assert list(read_table(path).columns) == ["x", "x_2", "column_3", "y"]


def test_parquet_round_trip(tmp_path, small):
    path = tmp_path / "t.parquet"
    small.to_parquet(path)
    pd.testing.assert_frame_equal(read_table(path), small)


@pytest.mark.parametrize("fmt", ["parquet", "xlsx", "json", "csv"])
def test_format_is_recognised_from_content_without_a_name(tmp_path, small, fmt):
    expected = small.drop(columns="joined")
    path = tmp_path / f"t.{fmt}"
    writers = {
        "parquet": lambda: expected.to_parquet(path),
        "xlsx": lambda: expected.to_excel(path, index=False),
        "json": lambda: expected.to_json(path, orient="records"),
        "csv": lambda: expected.to_csv(path, index=False),
    }
    writers[fmt]()
    back = read_table(path.read_bytes())
    pd.testing.assert_frame_equal(back, expected, check_dtype=False)


# --- bad files -------------------------------------------------------------------------------

PNG_HEADER = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.mark.parametrize(
    ("data", "name", "fragments"),
    [
        (b"", "empty.csv", ["'empty.csv'", "is empty"]),
        (b"  \n\n ", "blank.csv", ["'blank.csv'", "is empty"]),
        (b"a,b,c\n", "header.csv", ["'header.csv'", "no rows", "'a', 'b', 'c'"]),
        (b"a,b\n1,2\n", "notes.docx", ["'.docx'", "not a supported", ".csv", ".xlsx", ".json"]),
        (b"a,b\n1,2\n", "old.xls", ["'old.xls'", ".xls", "save it as .xlsx"]),
        (PNG_HEADER, "photo.csv", ["'photo.csv'", "PNG image"]),
        (os.urandom(4096), "noise.csv", ["'noise.csv'", "binary data"]),
        (b"a,b\n1,2\n3,4,5\n", "ragged.csv", ["'ragged.csv'", "line 3 has 3 values", "has 2"]),
        (b'[{"a": 1}, {"a": ', "cut.json", ["'cut.json'", "not valid JSON"]),
        (b'"just a string"', "scalar.json", ["'scalar.json'", "not a table"]),
        (b"[]", "none.json", ["'none.json'", "no rows"]),
        (b"PK\x03\x04 not really a workbook", "broken.xlsx", ["'broken.xlsx'", "Excel workbook"]),
        (b"PAR1 not really parquet", "broken.parquet", ["'broken.parquet'", "Parquet"]),
    ],
)
def test_bad_files_give_a_plain_message(data, name, fragments):
    with pytest.raises(DataError) as error:
        read_table(data, name=name)
    for fragment in fragments:
        assert fragment in str(error.value)


def test_too_large_file_names_its_size_and_the_limit(tmp_path):
    path = tmp_path / "big.csv"
    path.write_bytes(b"a\n" + b"1\n" * 2000)
    data = path.read_bytes()
    for source, name in ((path, None), (data, "big.csv"), (UploadedFile(data, "big.csv"), None)):
        with pytest.raises(DataError, match=r"'big.csv' is 3\.9 KB, more than the limit of 2\.0"):
            read_table(source, name=name, max_bytes=2048)


def test_missing_path_is_named(tmp_path):
    with pytest.raises(DataError, match="nothere.csv' does not exist"):
        read_table(tmp_path / "nothere.csv")


def test_supported_extensions_are_all_readable():
    expected = {".csv", ".tsv", ".txt", ".xlsx", ".xlsm", ".parquet", ".json"}
    assert expected <= set(SUPPORTED_TABLE_EXTENSIONS)


# --- limits on what a file expands to (issue 11; the hostile files are in test_hostile_files.py) ---


def test_read_limits_default_to_the_issue_figures_and_each_is_a_setting():
    assert ReadLimits.from_env({}) == ReadLimits(max_rows=10_000_000, max_cells=200_000_000, max_cell_chars=32_767)
    assert LIMIT_SETTINGS == {"max_rows": "BUILDER_MAX_ROWS", "max_cells": "BUILDER_MAX_CELLS",
                              "max_cell_chars": "BUILDER_MAX_CELL_CHARS"}
    given = {"BUILDER_MAX_ROWS": "1_000", "BUILDER_MAX_CELLS": "50,000", "BUILDER_MAX_CELL_CHARS": " 80 "}
    assert ReadLimits.from_env(given) == ReadLimits(max_rows=1_000, max_cells=50_000, max_cell_chars=80)


@pytest.mark.parametrize("value", ["many", "0", "-5", "1.5"])
def test_a_limit_setting_that_is_not_a_whole_number_is_named(value):
    with pytest.raises(DataError, match=rf"The setting BUILDER_MAX_CELLS='{value}' is not a whole number of 1 or more"):
        ReadLimits.from_env({"BUILDER_MAX_CELLS": value})


def test_read_table_takes_its_limits_from_the_environment(monkeypatch, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n" + "".join(f"{i},{'x' * i}\n" for i in range(6)))
    monkeypatch.setenv("BUILDER_MAX_ROWS", "5")
    with pytest.raises(DataError, match=r"'t.csv' has 6 rows, more than the limit of 5 rows.*BUILDER_MAX_ROWS"):
        read_table(path)
    monkeypatch.setenv("BUILDER_MAX_ROWS", "6")
    monkeypatch.setenv("BUILDER_MAX_CELLS", "11")
    with pytest.raises(DataError, match=r"6 rows of 2 columns \(12 values\), more than the limit of 11 values"):
        read_table(path.read_bytes(), name="t.csv")
    monkeypatch.setenv("BUILDER_MAX_CELLS", "12")
    monkeypatch.setenv("BUILDER_MAX_CELL_CHARS", "4")
    with pytest.raises(DataError, match=r"5 characters in one cell \(column 'b', data row 6\)"):
        read_table(path)
    monkeypatch.setenv("BUILDER_MAX_CELL_CHARS", "5")
    assert read_table(path).shape == (6, 2)


@pytest.mark.parametrize("suffix", [".xlsx", ".parquet", ".json"])
def test_every_format_honours_the_limits(small, tmp_path, suffix):
    path = tmp_path / f"t{suffix}"
    {".xlsx": lambda: small.to_excel(path, index=False), ".parquet": lambda: small.to_parquet(path),
     ".json": lambda: small.to_json(path, orient="records", date_format="iso")}[suffix]()
    assert read_table(path).shape == (4, 4)
    with pytest.raises(DataError, match="more than the limit of 3 rows"):
        read_table(path, limits=ReadLimits(max_rows=3))
    with pytest.raises(DataError, match=r"more than the limit of 5 per cell|longer than the limit of 5 characters"):
        read_table(path, limits=ReadLimits(max_cell_chars=5))
