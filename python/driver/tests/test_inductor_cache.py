"""Per-tenant inductor caches (inductor_cache.py): the checks on an untrusted archive, deterministic packing, and a
real rebuild with a restored cache giving the same code part as a build without one."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, make_job, run_driver
from jsonschema import Draft202012Validator

from kiln_driver import inductor_cache
from kiln_driver.build import _restore_cache
from kiln_driver.inductor_cache import ARCHIVE_NAME, pack, restore
from kiln_driver.job import parse_job


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> str:
    with zipfile.ZipFile(path, "w") as z:
        for info, data in members:
            z.writestr(info, data)
    return _sha(path)


def _symlink(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


GOOD = [("ab/cabc.cpp", b"// code"), ("ab/cabc.so", b"\x7fELF..."), ("top.json", b"{}")]


def test_a_good_archive_restores_every_file(tmp_path: Path) -> None:
    archive = tmp_path / "cache.zip"
    sha = _zip(archive, list(GOOD))
    dest = tmp_path / "inductor-cache"
    restored, ignored = restore(archive, sha, dest)
    assert ignored is None
    assert restored == {"sha256": sha, "bytes": archive.stat().st_size}
    assert {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()} == dict(GOOD)


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ([("../escaped.txt", b"x")], "'..' component"),
        ([("ab/../../escaped.txt", b"x")], "'..' component"),
        ([("/tmp/escaped.txt", b"x")], "absolute name"),
        ([("ab\\..\\..\\escaped.txt", b"x")], "not a plain relative name"),
        ([("C:/escaped.txt", b"x")], "drive name"),
        ([(_symlink("ab/link", "/etc/passwd"), b"/etc/passwd")], "not a regular file"),
        ([(_symlink("ab", "/"), b"/"), ("ab/escaped.txt", b"x")], "not a regular file"),
        ([("ab/", b"")], "folder entry"),
        ([("ab/x", b"1"), ("ab/x", b"2")], "listed twice"),
        ([("ab", b"file"), ("ab/x", b"under a file")], "is a file"),
    ],
)
def test_a_bad_member_refuses_the_whole_archive_and_nothing_is_written(
    tmp_path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]], reason: str
) -> None:
    archive = tmp_path / "jobdir" / "cache.zip"
    archive.parent.mkdir()
    # A good member first: nothing of it may stay either.
    sha = _zip(archive, [("aa/first.cpp", b"ok"), *members])
    dest = tmp_path / "jobdir" / "build" / "inductor-cache"
    restored, ignored = restore(archive, sha, dest)
    assert restored is None
    assert ignored is not None and reason in ignored, ignored
    assert not dest.exists() or list(dest.iterdir()) == []
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "jobdir" / "escaped.txt").exists()


def test_too_many_members_or_bytes_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inductor_cache, "MAX_MEMBERS", 3)
    archive = tmp_path / "many.zip"
    sha = _zip(archive, [(f"f{i}", b"x") for i in range(4)])
    restored, ignored = restore(archive, sha, tmp_path / "a")
    assert restored is None and ignored == "4 members, more than 3"

    monkeypatch.setattr(inductor_cache, "MAX_TOTAL_BYTES", 1000)
    big = tmp_path / "big.zip"
    # Compresses to almost nothing: the bound is on the declared (extracted) sizes, before anything is written.
    sha = _zip(big, [("a", b"\0" * 600), ("b", b"\0" * 600)])
    restored, ignored = restore(big, sha, tmp_path / "b")
    assert restored is None and ignored == "members of more than 1000 bytes in all"
    assert not (tmp_path / "b").exists() or list((tmp_path / "b").iterdir()) == []


def test_an_archive_that_lies_about_a_size_is_stopped_at_the_declared_size(tmp_path: Path) -> None:
    archive = tmp_path / "lies.zip"
    _zip(archive, [("a", b"\0" * 100_000)])
    raw = bytearray(archive.read_bytes())
    # The central directory's uncompressed size of the one member: 100000 -> 10.
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 24 : cd + 28] = (10).to_bytes(4, "little")
    archive.write_bytes(raw)
    dest = tmp_path / "c"
    restored, ignored = restore(archive, _sha(archive), dest)
    assert restored is None and ignored is not None
    assert not dest.exists() or list(dest.iterdir()) == []


def test_wrong_hash_not_a_zip_or_a_used_cache_folder_are_ignored(tmp_path: Path) -> None:
    archive = tmp_path / "cache.zip"
    sha = _zip(archive, list(GOOD))
    wrong = "0" * 64
    assert restore(archive, wrong, tmp_path / "a") == (None, f"the archive hashes to {sha}, the job names {wrong}")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip at all")
    restored, ignored = restore(junk, _sha(junk), tmp_path / "b")
    assert restored is None and ignored is not None and ignored.startswith("unreadable archive: BadZipFile")
    used = tmp_path / "used"
    used.mkdir()
    (used / "other").write_text("x")
    assert restore(archive, sha, used) == (None, "the cache folder is not empty")
    link = tmp_path / "link.zip"
    link.symlink_to(archive)
    assert restore(link, sha, tmp_path / "d") == (None, "the archive is not a regular file")


def _cache_folder(root: Path) -> Path:
    for name, data in GOOD:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "ab" / "cabc.wrapper_weights.blob").write_bytes(b"w" * 1000)
    for name in ("cxyz.wrapper.cpp", "cxyz.wrapper.so", "cxyz.wrapper_metadata.json", "cuvw.kernel.cpp"):
        (root / "ab" / name).write_bytes(b"the model's own generated files")
    (root / "locks").mkdir()
    (root / "locks" / "cabc.lock").write_bytes(b"")
    (root / "ab" / "model.pt2").write_bytes(b"package")
    (root / "ab" / "link.so").symlink_to(root / "ab" / "cabc.so")
    return root


def test_pack_is_deterministic_and_leaves_out_weights_locks_packages_and_links(tmp_path: Path) -> None:
    first = _cache_folder(tmp_path / "one")
    one = pack(first, tmp_path / "out1" / ARCHIVE_NAME)
    second = _cache_folder(tmp_path / "two")
    os.utime(second / "top.json", (1_000_000_000, 1_000_000_000))  # other times, other folder: same bytes
    two = pack(second, tmp_path / "out2" / ARCHIVE_NAME)
    assert one is not None and two is not None
    assert (tmp_path / "out1" / ARCHIVE_NAME).read_bytes() == (tmp_path / "out2" / ARCHIVE_NAME).read_bytes()
    assert one == two == {"sha256": _sha(tmp_path / "out1" / ARCHIVE_NAME), "bytes": one["bytes"]}
    with zipfile.ZipFile(tmp_path / "out1" / ARCHIVE_NAME) as z:
        assert z.namelist() == sorted(name for name, _ in GOOD)
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    # What pack writes, restore takes.
    restored, ignored = restore(tmp_path / "out1" / ARCHIVE_NAME, one["sha256"], tmp_path / "back")
    assert ignored is None and restored == one
    assert pack(tmp_path / "missing", tmp_path / "none.zip") is None
    # A cache folder with nothing worth keeping: an archive without members, which restores to nothing.
    (tmp_path / "nothing" / "locks").mkdir(parents=True)
    (tmp_path / "nothing" / "locks" / "c.lock").write_bytes(b"")
    empty = pack(tmp_path / "nothing", tmp_path / "empty.zip")
    assert empty is not None
    with zipfile.ZipFile(tmp_path / "empty.zip") as z:
        assert z.namelist() == []
    assert restore(tmp_path / "empty.zip", empty["sha256"], tmp_path / "back-empty") == (empty, None)


def test_the_job_field_is_checked() -> None:
    parse_job(make_job(3, inductorCache={"store": True, "restore": {"archive": "c.zip", "sha256": "a" * 64}}))
    for bad in (
        {"store": "yes"},
        {"restore": {"archive": "c.zip", "sha256": "a" * 64}},
        {"store": True, "restore": {"archive": "../other-job/c.zip", "sha256": "a" * 64}},
        {"store": True, "restore": {"archive": "/etc/passwd", "sha256": "a" * 64}},
        {"store": True, "restore": {"archive": "c.zip", "sha256": "a" * 12}},
    ):
        with pytest.raises(Exception, match="invalid job file"):
            parse_job(make_job(3, inductorCache=bad))


def test_a_bad_archive_in_a_job_is_ignored_with_its_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "cache.zip"
    sha = _zip(archive, [("../../escaped", b"x")])
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "cache"))
    job = parse_job(make_job(3, inductorCache={"store": True, "restore": {"archive": "cache.zip", "sha256": sha}}))
    record = _restore_cache(job, tmp_path)
    assert record is not None and record["restored"] is None and record["stored"] is None
    assert "'..' component" in record.get("ignored", "")


def test_a_rebuild_with_a_restored_cache_gives_the_same_code_part(
    fixtures: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real builds: mlp without a cache (storing one), then mlp again restoring it. Equal code parts prove the cache
    did not change the code; the second build's log says it restored the cache."""
    # The fixed build folder the worker gives (build.py): the same paths in the code on both builds.
    monkeypatch.setenv("KILN_BUILD_DIR", str(tmp_path / "kiln-build"))
    first = run_driver(fixtures / "mlp.pt2", make_job(3, inductorCache={"store": True}), tmp_path / "first")
    assert first.returncode == 0, first.stderr[-3000:]
    stored = first.manifest["inductorCache"]["stored"]
    assert first.manifest["inductorCache"] == {"restored": None, "stored": stored}
    archive = first.out / ARCHIVE_NAME
    assert stored == {"sha256": _sha(archive), "bytes": archive.stat().st_size}
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
    assert any(n.endswith(".so") for n in names), names
    assert not any(n.endswith(("_weights.blob", ".lock", ".pt2")) or ".wrapper" in n for n in names), names

    job_dir = tmp_path / "second"
    job_dir.mkdir()
    (job_dir / "cache.zip").write_bytes(archive.read_bytes())
    job = make_job(3, inductorCache={"store": True, "restore": {"archive": "cache.zip", "sha256": stored["sha256"]}})
    second = run_driver(fixtures / "mlp.pt2", job, job_dir)
    assert second.returncode == 0, second.stderr[-3000:]
    cache = second.manifest["inductorCache"]
    assert cache["restored"] == stored and "ignored" not in cache, json.dumps(cache)
    assert f"inductor cache {stored['sha256']} restored" in second.stderr
    code = [p for p in first.manifest["parts"] if p["role"] == "code"]
    assert [p for p in second.manifest["parts"] if p["role"] == "code"] == code
    schema = json.loads((REPO / "libs/contracts/src/schemas/artifact-manifest.schema.json").read_text("utf-8"))
    for run in (first, second):
        Draft202012Validator(schema).validate(run.manifest)
