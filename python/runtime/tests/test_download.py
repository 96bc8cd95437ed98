"""Resumable downloads against a local HTTP server with Range support that drops connections mid-file,
corrupts bytes or ignores Range; and the cache's atomicity under concurrent processes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiln_runtime.cache import Cache, derived_file
from kiln_runtime.download import RetryPolicy, download_blob
from kiln_runtime.errors import ErrorCode, NetworkError, VerificationError

from .conftest import FakeKiln, Fault

FAST = RetryPolicy(attempts=3, backoff_s=0.01, max_backoff_s=0.02, timeout_s=5)
DATA = os.urandom(3 << 20) + b"tail"
SHA = hashlib.sha256(DATA).hexdigest()


def ranges(fake: FakeKiln) -> list[str | None]:
    return [r for m, p, r in fake.requests if p == f"/blobs/{SHA}"]


def test_a_dropped_connection_resumes_with_range_and_completes(fake_kiln: FakeKiln, tmp_path: Path) -> None:
    fake_kiln.blobs[SHA] = DATA
    fake_kiln.faults[SHA] = Fault(drop_after=1 << 20, drops=2)
    cache = Cache(tmp_path)
    path = download_blob(fake_kiln.blob_url(SHA), cache, sha256=SHA, size=len(DATA), what="blob", retry=FAST)
    assert path == cache.blob_path(SHA) and path.read_bytes() == DATA
    assert ranges(fake_kiln) == [None, "bytes=1048576-", "bytes=2097152-"]
    assert not cache.partial_path(SHA).exists()


def test_an_interrupted_process_leaves_a_part_that_the_next_one_resumes(fake_kiln: FakeKiln, tmp_path: Path) -> None:
    fake_kiln.blobs[SHA] = DATA
    cache = Cache(tmp_path)

    class CtrlC:
        """A progress sink that interrupts the download after 1.5 MiB, like Ctrl-C or a killed process."""

        seen = 0

        def update(self, n: int) -> None:
            self.seen += n
            if self.seen > 1_500_000:
                raise KeyboardInterrupt

        def close(self) -> None:
            pass

    with pytest.raises(KeyboardInterrupt):
        download_blob(
            fake_kiln.blob_url(SHA),
            cache,
            sha256=SHA,
            size=len(DATA),
            what="blob",
            retry=FAST,
            progress=lambda what, total, initial: CtrlC(),
        )
    kept = cache.partial_path(SHA).stat().st_size
    assert 0 < kept < len(DATA) and not cache.blob_path(SHA).exists()
    fake_kiln.requests.clear()
    path = download_blob(fake_kiln.blob_url(SHA), cache, sha256=SHA, size=len(DATA), what="blob", retry=FAST)
    assert path.read_bytes() == DATA
    assert ranges(fake_kiln) == [f"bytes={kept}-"]


def test_a_server_that_keeps_failing_is_given_up_on(fake_kiln: FakeKiln, tmp_path: Path) -> None:
    fake_kiln.blobs[SHA] = DATA
    fake_kiln.faults[SHA] = Fault(drop_after=0, drops=100)  # never sends a byte
    with pytest.raises(NetworkError) as err:
        download_blob(fake_kiln.blob_url(SHA), Cache(tmp_path), sha256=SHA, size=len(DATA), what="blob", retry=FAST)
    assert err.value.code == ErrorCode.DOWNLOAD_FAILED and "3 times in a row" in err.value.message


def test_a_corrupted_download_is_refused_and_not_cached(fake_kiln: FakeKiln, tmp_path: Path) -> None:
    fake_kiln.blobs[SHA] = DATA
    fake_kiln.faults[SHA] = Fault(corrupt_at=12345)
    cache = Cache(tmp_path)
    with pytest.raises(VerificationError) as err:
        download_blob(fake_kiln.blob_url(SHA), cache, sha256=SHA, size=len(DATA), what="blob", retry=FAST)
    assert err.value.code == ErrorCode.INTEGRITY_FAILED
    assert "do not match" in err.value.message
    assert not cache.blob_path(SHA).exists() and not cache.partial_path(SHA).exists()


def test_a_corrupted_resumed_prefix_is_downloaded_again_from_zero(fake_kiln: FakeKiln, tmp_path: Path) -> None:
    fake_kiln.blobs[SHA] = DATA
    cache = Cache(tmp_path)
    cache.blobs.mkdir(parents=True)
    cache.partial_path(SHA).write_bytes(b"garbage" * 1000)  # a stale .part with wrong bytes
    path = download_blob(fake_kiln.blob_url(SHA), cache, sha256=SHA, size=len(DATA), what="blob", retry=FAST)
    assert path.read_bytes() == DATA
    assert ranges(fake_kiln) == ["bytes=7000-", None]


def test_a_server_ignoring_range_restarts_cleanly(fake_kiln: FakeKiln, tmp_path: Path) -> None:
    fake_kiln.blobs[SHA] = DATA
    fake_kiln.faults[SHA] = Fault(drop_after=5000, drops=1, ignore_range=True)
    path = download_blob(fake_kiln.blob_url(SHA), Cache(tmp_path), sha256=SHA, size=len(DATA), what="b", retry=FAST)
    assert path.read_bytes() == DATA


def test_more_bytes_than_listed_are_refused(fake_kiln: FakeKiln, tmp_path: Path) -> None:
    fake_kiln.blobs[SHA] = DATA
    with pytest.raises(VerificationError, match="more than the expected"):
        download_blob(fake_kiln.blob_url(SHA), Cache(tmp_path), sha256=SHA, size=100, what="blob", retry=FAST)


def test_http_errors_are_not_retried_forever(fake_kiln: FakeKiln, tmp_path: Path) -> None:
    with pytest.raises(NetworkError, match="HTTP 404"):
        download_blob(fake_kiln.blob_url("missing"), Cache(tmp_path), sha256=SHA, size=1, what="blob", retry=FAST)


def test_a_cached_blob_that_changed_is_deleted_and_downloaded_again(fake_kiln: FakeKiln, tmp_path: Path) -> None:
    fake_kiln.blobs[SHA] = DATA
    cache = Cache(tmp_path)
    url = fake_kiln.blob_url(SHA)
    path = download_blob(url, cache, sha256=SHA, size=len(DATA), what="blob", retry=FAST)
    with open(path, "r+b") as f:  # flip one byte of the cached copy
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert cache.verified_blob(SHA, len(DATA)) is None and not path.exists()
    assert download_blob(url, cache, sha256=SHA, size=len(DATA), what="blob", retry=FAST).read_bytes() == DATA


_CONCURRENT = r"""
import sys
from pathlib import Path
from kiln_runtime.cache import Cache
from kiln_runtime.download import RetryPolicy, download_blob
url, root, sha, size = sys.argv[1:5]
p = download_blob(url, Cache(Path(root)), sha256=sha, size=int(size), what="blob",
                  retry=RetryPolicy(attempts=5, backoff_s=0.01, timeout_s=10))
print(p)
"""


def test_concurrent_processes_download_once_and_see_whole_files(fake_kiln: FakeKiln, tmp_path: Path) -> None:
    fake_kiln.blobs[SHA] = DATA
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CONCURRENT, fake_kiln.blob_url(SHA), str(tmp_path), SHA, str(len(DATA))],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert set(outs) == {str(Cache(tmp_path).blob_path(SHA))}
    assert len(ranges(fake_kiln)) == 1  # the flock let one process download; the others found it cached
    assert sorted(p.name for p in Cache(tmp_path).blobs.iterdir()) == [SHA]  # no temporaries left


def test_derived_files_are_rebuilt_when_modified(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    builds = []

    def build(tmp: Path) -> None:
        builds.append(tmp)
        assert tmp.suffix == ".pt2" and tmp.parent == cache.packages
        tmp.write_bytes(b"package bytes")

    final = cache.package_path("ab" * 32)
    assert derived_file(cache, final, build) == final
    assert derived_file(cache, final, build) == final
    assert len(builds) == 1
    final.write_bytes(b"package bytez")
    derived_file(cache, final, build)
    assert len(builds) == 2 and final.read_bytes() == b"package bytes"
    assert sorted(p.name for p in cache.packages.iterdir()) == [final.name, final.name + ".sha256"]
