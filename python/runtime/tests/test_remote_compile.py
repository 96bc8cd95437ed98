"""Pure pieces of compile_remote (no network). The client against a real API runs from test/sdk.e2e-spec.ts,
which starts the API on an ephemeral port and runs a plain Python script with compile_remote."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest

from kiln_runtime.errors import UsageError
from kiln_runtime.http import api_error, is_transient_status
from kiln_runtime.remote_compile import (
    CompiledArtifact,
    _iter_changes,
    _s3_error,
    compile_remote,
    hash_parts,
    part_ranges,
)

MiB = 1 << 20


def test_part_ranges_tile_the_file() -> None:
    for size, part in [(1, 5 * MiB), (5 * MiB, 5 * MiB), (12 * MiB + 7, 5 * MiB), (2**40 + 3, 64 * MiB)]:
        count = max(1, -(-size // part))
        ranges = part_ranges(size, part, count)
        assert [r.part_number for r in ranges] == list(range(1, count + 1))
        assert sum(r.size for r in ranges) == size
        assert all(r.offset == (r.part_number - 1) * part for r in ranges)
        assert all(r.size == part for r in ranges[:-1])
    with pytest.raises(ValueError):
        part_ranges(100, 10, 3)


def test_hash_parts_matches_hashlib(tmp_path: Path) -> None:
    data = os.urandom(3 * MiB + 5)
    path = tmp_path / "m.pt2"
    path.write_bytes(data)
    ranges = part_ranges(len(data), MiB, 4)
    digests, whole = hash_parts(path, ranges)
    assert whole == hashlib.sha256(data).hexdigest()
    for r, d in zip(ranges, digests, strict=True):
        assert d == base64.b64encode(hashlib.sha256(data[r.offset : r.offset + r.size]).digest()).decode()


def test_transient_statuses() -> None:
    assert all(is_transient_status(s) for s in (429, 502, 503, 504))
    assert not any(is_transient_status(s) for s in (400, 401, 404, 409, 410, 422))


def test_api_errors_keep_the_api_code() -> None:
    err = api_error(422, '{"error":{"code":"PT2_TRUNCATED","message":"cut short","details":{"entry":"x"}}}', "POST /x")
    assert (err.status, err.api_code, err.message) == (422, "PT2_TRUNCATED", "cut short")
    assert err.details["entry"] == "x"
    proxy = api_error(502, "<html>bad gateway</html>", "GET /y")
    assert proxy.api_code == "HTTP_502"


def test_s3_error_codes_are_read_from_the_xml() -> None:
    xml = "<Error><Code>BadDigest</Code><Message>The Content-Md5 you specified did not match</Message></Error>"
    assert _s3_error(xml) == ("BadDigest", "The Content-Md5 you specified did not match")


def test_artifacts_become_dataclasses() -> None:
    a = CompiledArtifact.from_api(
        {
            "id": "a1",
            "targetId": "linux-x86_64-v3",
            "sizeBytes": 10,
            "timing": {"speedup": 1.5, "eagerMs": 3.0, "compiledMs": 2.0},
            "verification": {"maxAbsError": 1e-6},
            "requires": {"x86Level": 3},
            "parts": [{"role": "code"}],
        }
    )
    assert (a.target_id, a.speedup, a.eager_ms, a.max_abs_error, a.requires["x86Level"]) == (
        "linux-x86_64-v3",
        1.5,
        3.0,
        1e-6,
        3,
    )


def test_build_changes_are_reported_once() -> None:
    seen: dict[str, tuple[str, str | None]] = {}
    builds = [{"targetId": "a", "status": "queued", "phase": None}]
    assert len(list(_iter_changes(seen, builds))) == 1
    assert list(_iter_changes(seen, builds)) == []
    assert len(list(_iter_changes(seen, [{"targetId": "a", "status": "running", "phase": "compiling"}]))) == 1


def test_bad_inputs_fail_before_any_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KILN_API_URL", raising=False)
    monkeypatch.delenv("KILN_API_KEY", raising=False)
    env = {"api_url": "http://127.0.0.1:9", "api_key": "kiln_x"}
    with pytest.raises(UsageError):
        compile_remote(tmp_path / "m.pt2", model="m", targets=[], **env)
    with pytest.raises(FileNotFoundError):
        compile_remote(tmp_path / "missing.pt2", model="m", targets=["linux-x86_64-v3"], **env)
    with pytest.raises(UsageError):
        compile_remote(object(), model="m", targets=["linux-x86_64-v3"], **env)
    with pytest.raises(UsageError):
        compile_remote(tmp_path, model="m", targets=["t"], api_url="", api_key="")
