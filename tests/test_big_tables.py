"""Big tables: the command line's own size limit (--max-file-mb), and the pyarrow CSV reader.

pyarrow reads plain UTF-8 CSV files with '.' decimals; every other file, and every value the two
parsers convert differently, goes to the reader the app always had (pandas' C parser after encoding
detection and decimal-comma repair). Each case here reads the same bytes both ways and requires the
same frame: same columns, dtypes, values, and Python types of the values. Big files are read block
by block (``STREAM_FROM_BYTES``): the cases marked with ``arrow_reader`` run with both of pyarrow's
readers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from builder import cli
from builder.cli import files
from builder.cli.args import DEFAULT_MAX_FILE_MB
from builder.data import read
from builder.data.read import read_table
from builder.errors import DataError

REPO = Path(__file__).resolve().parents[1]


def fallback_read(monkeypatch: pytest.MonkeyPatch, source, **kwargs) -> pd.DataFrame:
    """``read_table`` as before pyarrow: the fast path answers "not this file"."""
    with monkeypatch.context() as patch:
        patch.setattr(read, "_read_delimited_fast", lambda *args: None)
        return read_table(source, **kwargs)


def fast_used(source: bytes | Path, delimiter: str | None = None) -> bool:
    return read._read_delimited_fast(source, "'t.csv'", delimiter) is not None


def assert_same_frame(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert [str(t) for t in got.dtypes] == [str(t) for t in want.dtypes]
    for i in range(got.shape[1]):  # NaN, not None; numpy floats, not Python ints
        assert [type(v) for v in got.iloc[:, i]] == [type(v) for v in want.iloc[:, i]], got.columns[i]


@pytest.fixture(params=["whole file", "block by block"])
def arrow_reader(request, monkeypatch) -> str:
    """Run the test with pyarrow's whole-file reader, then with its streaming one (every file
    counted as big)."""
    if request.param == "block by block":
        monkeypatch.setattr(read, "STREAM_FROM_BYTES", 0)
    return request.param


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- --max-file-mb -------------------------------------------------------------------------------


@pytest.fixture
def one_mb_csv(tmp_path: Path) -> Path:
    """A table file just over 1 MB (50,000 rows)."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=50_000).round(6), "b": rng.integers(0, 1000, 50_000),
                          "c": rng.choice(["north", "south"], 50_000), "y": rng.choice(["yes", "no"], 50_000)})
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    assert 2**20 < path.stat().st_size < 2 * 2**20
    return path


def test_the_command_line_limit_is_its_own_and_far_above_the_apps():
    assert DEFAULT_MAX_FILE_MB == 2048
    assert read.DEFAULT_MAX_BYTES == 200 * 2**20  # the app's upload limit stays as it was
    parser = cli.build_parser()
    for command in (["train", "--data", "t.csv", "--out", "m.zip"], ["predict", "--bundle", "m.zip", "--data",
                                                                    "t.csv", "--out", "p.csv"]):
        assert parser.parse_args(command).max_file_mb is None  # the default applies
        assert parser.parse_args([*command, "--max-file-mb", "4096"]).max_file_mb == 4096


def test_a_file_over_the_apps_limit_is_read_by_the_command_line(monkeypatch, one_mb_csv):
    monkeypatch.setattr(read_table, "__defaults__", (None, 1024, True))  # as if the app's limit were 1 KB
    with pytest.raises(DataError, match="limit of 1.0 KB"):
        read_table(one_mb_csv)  # the app's reader refuses it
    with files.max_file_mb(None):  # the command line's default
        assert len(files.read_input_table(one_mb_csv, "--data")) == 50_000


class TableBundle:
    """Stands in for a bundle of a table model: ``predict`` reads its --data next."""

    data_spec = type("DataSpec", (), {"kind": "table"})()
    task = "binary"


@pytest.mark.parametrize("command", ["train", "predict"])
def test_a_file_over_max_file_mb_is_refused_naming_the_option(capsys, monkeypatch, tmp_path, one_mb_csv,
                                                              command):
    import builder.export

    monkeypatch.setattr(builder.export, "read_bundle", lambda path: TableBundle())
    (tmp_path / "m.zip").write_bytes(b"")
    argv = (["train", "--data", one_mb_csv, "--target", "y", "--out", tmp_path / "m.zip"] if command == "train"
            else ["predict", "--bundle", tmp_path / "m.zip", "--data", one_mb_csv, "--out", tmp_path / "p.csv"])
    capsys.readouterr()
    code = cli.main([str(a) for a in [*argv, "--max-file-mb", "1"]])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "big.csv" in err and "limit of 1 MB" in err and "raise it with --max-file-mb (e.g. --max-file-mb 2)" in err


def test_the_default_limit_names_the_option_too(capsys, monkeypatch, tmp_path, one_mb_csv):
    monkeypatch.setattr(files, "DEFAULT_MAX_FILE_MB", 1)  # as if the file were over 2,048 MB
    capsys.readouterr()
    code = cli.main(["train", "--data", str(one_mb_csv), "--target", "y", "--out", str(tmp_path / "m.zip")])
    err = capsys.readouterr().err
    assert code == 2
    assert "limit of 1 MB" in err and "--max-file-mb" in err
    with files.max_file_mb(2):  # the option raises it
        assert len(files.read_input_table(one_mb_csv, "--data")) == 50_000


def test_max_file_mb_must_be_a_whole_number_of_at_least_one(capsys, tmp_path):
    capsys.readouterr()
    code = cli.main(["train", "--data", "t.csv", "--out", str(tmp_path / "m.zip"), "--max-file-mb", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "--max-file-mb" in err and "whole number of 1 or more" in err


def test_the_limit_applies_to_one_command_only(one_mb_csv):
    with files.max_file_mb(1):
        with pytest.raises(DataError, match="--max-file-mb"):
            files.read_input_table(one_mb_csv, "--data")
    assert files._max_file_mb.get() is None
    with pytest.raises(DataError, match="train and predict take --max-file-mb"):  # inspect has no option
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(files, "DEFAULT_MAX_FILE_MB", 1)
            files.read_input_table(one_mb_csv, "--data")


# --- pyarrow and the fallback give the same frame --------------------------------------------------


def test_a_generated_benchmark_table_reads_the_same_both_ways(arrow_reader, monkeypatch, tmp_path):
    from bench.rows_scaling import make_table, write_csv

    path = tmp_path / "rows.csv"
    write_csv(make_table(3_000), path)
    assert fast_used(path)
    got = read_table(path)
    assert got.shape == (3_000, 20)
    assert_same_frame(got, fallback_read(monkeypatch, path))
    assert_same_frame(read_table(path.read_bytes(), name="rows.csv"), got)  # bytes: the app's upload


def test_a_pandas_written_table_with_every_kind_of_column_reads_the_same(arrow_reader, monkeypatch, tmp_path):
    rng = np.random.default_rng(1)
    n = 500
    frame = pd.DataFrame({
        "id": np.arange(1, n + 1),
        "price": rng.normal(100, 20, n),  # full float precision, as pandas writes it
        "tiny": rng.normal(0, 1e-6, n),  # written as 1.2e-07
        "count": rng.poisson(3, n).astype(float),
        "city": rng.choice(["Paris", "Köln", "Zürich", "São Paulo", 'He said "hi", then left'], n),
        "joined": pd.date_range("2020-01-01", periods=n, freq="D").astype(str),
        "at": pd.date_range("2020-01-01", periods=n, freq="h").astype(str),
        "clock": [f"{h % 24:02d}:30:00" for h in range(n)],
        "member": rng.choice([True, False], n),
        "flag": rng.choice(["True", "False", ""], n),
        "note": rng.choice(["", "NA", "n/a", "ok", "None", "null"], n),
        "empty": [None] * n,
        "mixed": rng.choice(["1", "2.5", "x"], n),
    })
    frame.loc[::7, "price"] = np.nan
    frame.loc[::11, "count"] = np.nan
    path = tmp_path / "kinds.csv"
    frame.to_csv(path, index=False)
    assert fast_used(path)
    got = read_table(path)
    assert_same_frame(got, fallback_read(monkeypatch, path))
    assert got["joined"].dtype == "str" and got["member"].dtype == bool and got["empty"].dtype == float


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("semicolons.csv", b"a;b;c\n1.5;x;3\n2.25;y;4\n"),
        ("tabs.tsv", b"a\tb\n1\tx\n2\ty\n"),
        ("bars.txt", b"a|b\n1|x\n2|y\n"),
        ("bom.csv", "\ufeffid,val\n1,2\n".encode()),
        ("crlf.csv", b"a,b\r\n1,x\r\n2,y\r\n"),
        ("quoted.csv", b'name,comment\nAnn,"likes red, blue"\nBob,"two\nlines"\n'),
        ("names.csv", b" a ,a,,b,NA\n1,2,3,4,5\n5,6,7,8,9\n"),
        ("gaps.csv", b"a,b\n1,2\n,\n3,4\n"),
        ("trailing.csv", b"a,b,\n1,2,\n3,4,\n"),
        ("no_newline.csv", b"a,b\n1,2"),
        ("blank_rows.csv", b"a,b\n\n1,2\n\n3,4\n"),
    ],
)
def test_plain_files_take_pyarrow_and_read_the_same(arrow_reader, monkeypatch, tmp_path, name, data):
    path = write(tmp_path, name, data)
    assert fast_used(path, "\t" if name.endswith(".tsv") else None), name
    assert_same_frame(read_table(path), fallback_read(monkeypatch, path))


# Values pyarrow converts differently from pandas' C parser (or where the C parser has quirks): the
# file must still read exactly as before, through the fallback where needed.
TRICKY = ["+5", "+0", "0x1F", "0X10", "NAN", "+nan", "Inf", "-inf", "Infinity", "9223372036854775807",
          "9223372036854775808", "18446744073709551616", "-9223372036854775809", "1e400", "1_000", "007",
          " 5 ", "1.", ".5", "1e5", "True", "TRUE", "true", "false", "T", "yes", "2020-01-05",
          "2020-01-05 10:00", "10:00:00", "٣", "-", "#N/A", "<NA>", "None", "", '"1"', '"x, y"']


@pytest.mark.parametrize("token", TRICKY)
@pytest.mark.parametrize("other", ["1", "1.5", "x", "True", ""])
def test_tricky_values_read_the_same(arrow_reader, monkeypatch, tmp_path, token, other):
    path = write(tmp_path, "t.csv", f"a,b\n{token},0\n{other},1\n3,2\n".encode())
    assert_same_frame(read_table(path), fallback_read(monkeypatch, path))


@pytest.mark.parametrize(
    ("late_row", "kind"),
    [("1.5,y", "double"), ("x,y", "string")],  # whole numbers turn decimal; numbers turn text
)
def test_a_type_that_changes_after_the_first_block_is_read_by_the_whole_file_reader(
        monkeypatch, tmp_path, late_row, kind):
    # The streaming reader types each column from its first block and stops at the first value
    # that does not fit; the whole-file reader then types the column from every row.
    monkeypatch.setattr(read, "STREAM_FROM_BYTES", 0)
    monkeypatch.setattr(read, "STREAM_BLOCK_BYTES", 2**20)
    rows = b"".join(b"%d,\n" % i for i in range(200_000))  # 1.4 MB: b is empty in the first block
    path = write(tmp_path, "late.csv", b"a,b\n" + rows + late_row.encode() + b"\n")
    reads = []
    arrow_csv = read._arrow_csv
    monkeypatch.setattr(read, "_arrow_csv", lambda *args, **kwargs: reads.append(kwargs.get("stream", False))
                        or arrow_csv(*args, **kwargs))
    got = read_table(path)
    assert reads == [True, False]  # streamed, refused, read whole
    assert got.shape == (200_001, 2) and str(got["a"].dtype) == {"double": "float64", "string": "str"}[kind]
    assert got["b"].iloc[-1] == "y" and got["b"].iloc[:-1].isna().all()
    assert_same_frame(got, fallback_read(monkeypatch, path))


def test_a_small_file_is_read_whole_and_a_big_one_block_by_block(monkeypatch, tmp_path):
    path = write(tmp_path, "t.csv", b"a,b\n1,x\n2,y\n")
    reads = []
    arrow_csv = read._arrow_csv
    monkeypatch.setattr(read, "_arrow_csv", lambda *args, **kwargs: reads.append(kwargs.get("stream", False))
                        or arrow_csv(*args, **kwargs))
    read_table(path)
    monkeypatch.setattr(read, "STREAM_FROM_BYTES", path.stat().st_size)
    read_table(path)
    read_table(path.read_bytes(), name="t.csv")  # an upload's bytes: the same rule
    assert reads == [False, True, True]


def test_a_decimal_comma_file_falls_back_to_the_repair(monkeypatch, tmp_path):
    data = "name;price;qty\nJosé;1,5;2\nAnn;2,25;3\nBob;3;4\n".encode()
    path = write(tmp_path, "export.csv", data)
    assert not fast_used(path)
    got = read_table(path)
    assert got["price"].tolist() == [1.5, 2.25, 3.0]
    assert_same_frame(got, fallback_read(monkeypatch, path))


def test_a_latin1_file_falls_back_to_encoding_detection(monkeypatch, tmp_path):
    text = "name,city,price\nJosé,España,1.5\nNiño,Köln,2.25\nRené,Málaga,3\n"
    path = write(tmp_path, "latin1.csv", text.encode("latin-1"))
    assert not fast_used(path)
    got = read_table(path)
    assert got["city"].tolist() == ["España", "Köln", "Málaga"]
    assert_same_frame(got, fallback_read(monkeypatch, path))


def test_a_latin1_byte_past_the_start_of_a_big_file_falls_back(monkeypatch, tmp_path):
    # The first 256 KB are plain ASCII; pyarrow finds the bad byte, and the fallback reads cp1252.
    rows = b"".join(b"%d,plain\n" % i for i in range(40_000)) + "1,Málaga\n".encode("latin-1")
    path = write(tmp_path, "late.csv", b"id,city\n" + rows)
    assert not fast_used(path)
    got = read_table(path)
    assert got["city"].iloc[-1] == "Málaga"
    assert_same_frame(got, fallback_read(monkeypatch, path))


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"a,b\n1,2\n3,4,5\n", "line 3 has 3 values"),
        (b"a,b,c\n", "no rows"),
        (b"\n\n", "is empty"),
        ("id,val\n1,2\n".encode("utf-16"), None),  # read through the UTF-16 decoder
    ],
)
def test_errors_and_odd_files_are_the_fallbacks(monkeypatch, tmp_path, data, fragment):
    path = write(tmp_path, "odd.csv", data)
    if fragment is None:
        assert_same_frame(read_table(path), fallback_read(monkeypatch, path))
        return
    with pytest.raises(DataError, match=fragment) as fast:
        read_table(path)
    with pytest.raises(DataError) as slow:
        fallback_read(monkeypatch, path)
    assert str(fast.value) == str(slow.value)


def test_a_path_is_read_without_holding_its_bytes(monkeypatch, tmp_path):
    path = write(tmp_path, "t.csv", b"a,b\n1,x\n2,y\n")

    def refuse(self):
        raise AssertionError("the whole file was read into memory")

    monkeypatch.setattr(Path, "read_bytes", refuse)
    assert read_table(path)["b"].tolist() == ["x", "y"]


def test_without_pyarrow_a_bundle_still_reads_csv(tmp_path):
    """The bundle's predict.py copies read.py; where pyarrow is not installed, CSV reads as before."""
    path = write(tmp_path, "t.csv", "a;b\n1,5;Köln\n2;x\n".encode("cp1252"))
    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'pyarrow' or name.startswith('pyarrow.'):\n"
        "            raise ImportError('pyarrow is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import read\n"
        f"df = read.read_table({str(path)!r})\n"
        "assert 'pyarrow' not in sys.modules\n"
        "print(df['a'].tolist(), df['b'].tolist())\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO / "builder" / "data",
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[1.5, 2.0] ['Köln', 'x']"
