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


def _package_with_id(path: Path, serialization_id: bytes, code: bytes = b"// generated\n") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("pkg/.data/serialization_id", serialization_id)
        z.writestr("pkg/data/aotinductor/model/abc.wrapper.cpp", code)
        z.writestr(BLOB, ENTRIES[BLOB])
    return path


def test_code_part_does_not_keep_the_random_serialization_id(tmp_path: Path) -> None:
    # torch writes a random id into every archive: two packages of the same code must still give one code part.
    first = _package_with_id(tmp_path / "a.pt2", b"0098880382596023554004666452829000432645")
    second = _package_with_id(tmp_path / "b.pt2", b"1843672599864223690310918404973234395947")
    code_a, _ = split_package(first, tmp_path / "parts-a")
    code_b, _ = split_package(second, tmp_path / "parts-b")
    assert code_a.sha256 == code_b.sha256
    with zipfile.ZipFile(code_a.path) as z:
        new_id = z.read("pkg/.data/serialization_id")
    assert len(new_id) == 40 and new_id.isdigit()  # torch's form, so its reader takes it as before
    assert new_id not in (b"0098880382596023554004666452829000432645", b"1843672599864223690310918404973234395947")


def test_serialization_id_follows_the_code(tmp_path: Path) -> None:
    code_a, _ = split_package(_package_with_id(tmp_path / "a.pt2", b"1" * 40, b"// one\n"), tmp_path / "pa")
    code_b, _ = split_package(_package_with_id(tmp_path / "b.pt2", b"1" * 40, b"// two\n"), tmp_path / "pb")
    with zipfile.ZipFile(code_a.path) as za, zipfile.ZipFile(code_b.path) as zb:
        assert za.read("pkg/.data/serialization_id") != zb.read("pkg/.data/serialization_id")
