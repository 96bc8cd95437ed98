from __future__ import annotations

import hashlib
import struct
import zipfile
from pathlib import Path

import pytest

from kiln_driver.package_parts import assemble_package, check_weights_entry, split_package

BLOB = "pkg/data/aotinductor/model/abc.wrapper_weights.blob"
ENTRIES = {
    "pkg/data/aotinductor/model/abc.wrapper.cpp": b"// generated\n" * 50,
    "pkg/data/aotinductor/model/abc.wrapper.so": bytes(range(256)) * 40,
    BLOB: b"\x01\x02\x03\x04" * 5000,
    "pkg/data/aotinductor/model/abc.wrapper_metadata.json": b'{"AOTI_DEVICE_KEY": "cpu"}',
    "pkg/archive_format": b"pt2",
    "pkg/archive_version": b"0",
}


@pytest.fixture
def package(tmp_path: Path) -> Path:
    path = tmp_path / "package.pt2"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in ENTRIES.items():
            z.writestr(name, data)
    return path


def _aligned(path: Path) -> bool:
    with zipfile.ZipFile(path) as z, path.open("rb") as f:
        for info in z.infolist():
            f.seek(info.header_offset + 26)
            name_len, extra_len = struct.unpack("<HH", f.read(4))
            if (info.header_offset + 30 + name_len + extra_len) % 64:
                return False
    return True


def test_split_writes_content_addressed_parts(package: Path, tmp_path: Path) -> None:
    parts = split_package(package, tmp_path / "parts")
    code, weights = parts
    assert (code.role, weights.role, weights.entry) == ("code", "weights", BLOB)
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == sorted([code.sha256, weights.sha256])
    for part in parts:
        data = part.path.read_bytes()
        assert part.path.name == part.sha256 == hashlib.sha256(data).hexdigest()
        assert part.size == len(data)
    assert weights.path.read_bytes() == ENTRIES[BLOB]
    with zipfile.ZipFile(code.path) as z:
        assert z.namelist() == [n for n in ENTRIES if n != BLOB]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
    assert _aligned(code.path)


def test_assemble_roundtrip(package: Path, tmp_path: Path) -> None:
    code, weights = split_package(package, tmp_path / "parts")
    out = assemble_package(code.path, [(weights.entry, weights.path)], tmp_path / "assembled.pt2")
    with zipfile.ZipFile(out) as z:
        assert sorted(z.namelist()) == sorted(ENTRIES)
        for name, data in ENTRIES.items():
            assert z.read(name) == data
        assert z.testzip() is None
    assert _aligned(out)


def test_split_is_deterministic(package: Path, tmp_path: Path) -> None:
    a = split_package(package, tmp_path / "a")
    b = split_package(package, tmp_path / "b")
    assert [p.sha256 for p in a] == [p.sha256 for p in b]


def test_identical_blobs_are_stored_once(tmp_path: Path) -> None:
    path = tmp_path / "two.pt2"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("p/data/aotinductor/m1/a_weights.blob", b"same")
        z.writestr("p/data/aotinductor/m2/b_weights.blob", b"same")
        z.writestr("p/archive_format", b"pt2")
    _code, w1, w2 = split_package(path, tmp_path / "parts")
    assert w1.sha256 == w2.sha256 and w1.entry != w2.entry
    assert len(list((tmp_path / "parts").iterdir())) == 2


@pytest.mark.parametrize(
    "entry",
    [
        "../x_weights.blob",
        "/abs/x_weights.blob",
        "a/../../x_weights.blob",
        "a\\x_weights.blob",
        "a/x.so",
        "a//x_weights.blob",
    ],
)
def test_bad_weights_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError):
        check_weights_entry(entry)


def test_assemble_refuses_duplicate_entry(package: Path, tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"x")
    with pytest.raises(ValueError):
        assemble_package(package, [(BLOB, blob)], tmp_path / "dup.pt2")
