"""builder.safezip: a zip from a stranger is refused before anything unsafe is unpacked."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest

from builder.errors import BundleError
from builder.safezip import MiB, open_zip, read_member, safe_extract, unsafe_name_reason


def make_zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_a_normal_zip_opens_from_bytes_path_and_file(tmp_path):
    data = make_zip({"spec.json": b"{}", "folder/readme.md": b"hello"})
    path = tmp_path / "ok.zip"
    path.write_bytes(data)
    for source in (data, path, str(path), io.BytesIO(data)):
        with open_zip(source) as zf:
            assert read_member(zf, "folder/readme.md") == b"hello"


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("../evil.py", "points outside the folder"),
        ("data/../../evil.py", "points outside the folder"),
        ("..\\evil.py", "points outside the folder"),
        ("/etc/passwd", "absolute path"),
        ("\\windows\\system.ini", "absolute path"),
        ("C:/Windows/evil.dll", "drive letter"),
    ],
)
def test_member_names_that_escape_the_folder_are_refused(name, words):
    data = make_zip({"ok.txt": b"1", name: b"x"})
    with pytest.raises(BundleError) as error:
        open_zip(data)
    message = str(error.value)
    assert message.startswith("This file is not a model bundle:")
    assert repr(name) in message and words in message


def test_safe_names_pass():
    for name in ("model.onnx", "a/b/c.txt", "dots..in.name.txt", "folder/"):
        assert unsafe_name_reason(name) is None


def test_a_symbolic_link_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.create_system = 3  # Unix
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(BundleError, match="symbolic link"):
        open_zip(buffer.getvalue())


def test_a_zip_bomb_is_refused():
    # 64 MiB of zeros packs into ~64 KB: a ratio of ~1000x.
    data = make_zip({"model.safetensors": b"\0" * (64 * MiB)})
    assert len(data) < MiB
    with pytest.raises(BundleError, match="zip bomb") as error:
        open_zip(data)
    assert "'model.safetensors'" in str(error.value)


def test_a_member_larger_than_allowed_is_refused():
    data = make_zip({"big.bin": b"x" * 5000}, compression=zipfile.ZIP_STORED)
    with pytest.raises(BundleError, match="unpacks to 4.9 KB, more than the 1.0 KB allowed"):
        open_zip(data, max_member_bytes=1024)
    with pytest.raises(BundleError, match="more than the 1.0 KB allowed"):
        open_zip(data, max_total_bytes=1024)


def test_too_many_members_are_refused():
    data = make_zip({f"f{i}.txt": b"x" for i in range(65)})
    with pytest.raises(BundleError, match="holds 65 files, more than the 64 allowed"):
        open_zip(data)


def test_duplicate_names_are_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("spec.json", b"{}")
        with pytest.warns(UserWarning):
            zf.writestr("spec.json", b"[]")
    with pytest.raises(BundleError, match="appears twice"):
        open_zip(buffer.getvalue())


@pytest.mark.parametrize("data", [b"", b"not a zip at all", b"PK\x03\x04garbage", b"%PDF-1.7 ..."])
def test_bytes_that_are_not_a_zip_are_refused(data):
    with pytest.raises(BundleError) as error:
        open_zip(data)
    assert str(error.value) == (
        "This file is not a model bundle: it is not a zip archive, or it is damaged. "
        "Export the model again from the Export page."
    )


def test_a_missing_file_path_says_so(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        open_zip(tmp_path / "nope.zip")


def test_read_member_is_bounded_and_names_missing_members():
    data = make_zip({"a.txt": b"x" * 100})
    with open_zip(data) as zf:
        with pytest.raises(BundleError, match="it has no spec.json. Export the model again"):
            read_member(zf, "spec.json")
        with pytest.raises(BundleError, match="more than the 10 bytes allowed"):
            read_member(zf, "a.txt", limit=10)


def test_read_member_caps_bytes_even_when_the_header_lies():
    # zipfile itself stops at the declared size, so a lying header alone only ever ends in a CRC
    # error. The cap is the guard for a reader that trusts the data: here a member whose stream
    # gives 4,000 bytes although its header says 10. It must stop at the cap, not at a CRC check.
    class LyingZip:
        def getinfo(self, name):
            info = zipfile.ZipInfo(name)
            info.file_size = 10
            return info

        def open(self, info):
            return io.BytesIO(b"y" * 4000)

    with pytest.raises(BundleError, match="a.txt unpacks to more than the 100 bytes allowed"):
        read_member(LyingZip(), "a.txt", limit=100)


def test_a_header_that_lies_about_its_size_is_reported_as_damaged():
    data = bytearray(make_zip({"a.txt": b"y" * 4000}, compression=zipfile.ZIP_STORED))
    with open_zip(bytes(data)) as zf:
        zf.getinfo("a.txt").file_size = 10  # the central directory claims 10 bytes; 4000 follow
        with pytest.raises(BundleError, match="a.txt is damaged"):
            read_member(zf, "a.txt", limit=100)


def test_a_damaged_member_is_reported():
    data = bytearray(make_zip({"a.txt": b"hello world" * 100}, compression=zipfile.ZIP_STORED))
    offset = data.index(b"hello world")
    data[offset] ^= 0xFF  # flip a byte: the CRC no longer matches
    with open_zip(bytes(data)) as zf, pytest.raises(BundleError, match="a.txt is damaged"):
        read_member(zf, "a.txt")


def test_safe_extract_writes_inside_the_folder(tmp_path):
    data = make_zip({"x/y.txt": b"1", "z.txt": b"2"})
    with open_zip(data) as zf:
        written = safe_extract(zf, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == ["x/y.txt", "z.txt"]
    assert (tmp_path / "out" / "x" / "y.txt").read_bytes() == b"1"
