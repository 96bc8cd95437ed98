"""A device that holds an earlier weights part downloads only the tensors it does not hold (issue 17, item 1).

Parts are synthetic (a small code zip, weights blobs laid out like inductor's: tensors padded to 64 bytes with zero)
and signed like real ones; the fake server answers Range requests and logs them, so each test reads exactly which
bytes the device asked for. Whatever the index says, the whole part's signed sha256 decides what is stored.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest

from kiln_runtime.cache import Cache
from kiln_runtime.client import KilnClient
from kiln_runtime.errors import VerificationError
from kiln_runtime.http import RetryPolicy
from kiln_runtime.package_parts import split_package
from kiln_runtime.resolution import parse_resolution
from kiln_runtime.tensor_delta import MERGE_GAP, Tensor, merge_ranges, parse_tensor_index, portable_tensors

from .conftest import Compiled, FakeKiln, Fault, SigningKey, make_manifest, publish_artifact

FAST = RetryPolicy(attempts=3, backoff_s=0.01, max_backoff_s=0.02, timeout_s=5)
ENTRY = "model/data/aotinductor/model/w.wrapper_weights.blob"


def layout(tensors: dict[str, bytes]) -> tuple[bytes, list[dict[str, Any]]]:
    """A blob the way inductor writes one on CPU (each tensor padded to 64 bytes with zeros) and its index."""
    blob = bytearray()
    index = []
    for name, data in tensors.items():
        index.append({"name": name, "offset": len(blob), "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        blob += data + b"\0" * (-len(data) % 64)
    return bytes(blob), index


def code_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("model/data/aotinductor/model/w.wrapper.so", b"\x7fELF not really")
    return buf.getvalue()


def publish(fake: FakeKiln, key: SigningKey, blob: bytes, index: list[dict[str, Any]] | None) -> None:
    """Sign a manifest for (code, weights) and make the fake API resolve to it."""
    code = code_zip()
    parts = [
        {"role": "code", "sha256": hashlib.sha256(code).hexdigest(), "size": len(code)},
        {
            "role": "weights",
            "sha256": hashlib.sha256(blob).hexdigest(),
            "size": len(blob),
            "entry": ENTRY,
            **({"tensors": index} if index is not None else {}),
        },
    ]
    raw = json.dumps(make_manifest(parts)).encode()
    manifest_sha = hashlib.sha256(raw).hexdigest()
    for data in (code, blob, raw):
        fake.blobs[hashlib.sha256(data).hexdigest()] = data
    fake.keys = [key.published()]
    fake.resolution = {
        "model": {"id": "m-1", "name": "m"},
        "version": {"id": "v-1", "number": 1, "selectedBy": "latest", "channel": None},
        "artifact": {
            "id": "art",
            "targetId": "linux-x86_64-v3",
            "sha256": manifest_sha,
            "size": len(code) + len(blob),
            "signature": key.sign(raw),
            "signingKeyId": key.key_id,
            "manifestUrl": fake.blob_url(manifest_sha),
            "parts": [
                {k: v for k, v in p.items() if k != "tensors"} | {"url": fake.blob_url(p["sha256"])} for p in parts
            ],
            "expiresAt": "2099-01-01T00:00:00Z",
            "speedup": 2.0,
            "reasons": [],
        },
        "fallback": {
            "kind": "portable",
            "url": fake.blob_url("0" * 64),
            "sha256": "0" * 64,
            "size": 1,
            "expiresAt": "2099-01-01T00:00:00Z",
            "reason": "",
        },
        "ranked": [],
        "rejected": [],
    }


def fetch(fake: FakeKiln, cache: Cache) -> tuple[bytes, dict[str, int]]:
    """The device fetches what the fake resolves to: the weights part's bytes and what getting it cost."""
    fake.requests.clear()
    client = KilnClient(fake.url, fake.token, cache=cache, retry=FAST, pinned_keys="", trust_on_first_use=True)
    res = parse_resolution(fake.resolution)
    assert res.artifact is not None
    fetched = client.fetch_artifact(res.artifact)
    (_part, path), transfer = next(
        (pp, t) for pp, t in zip(fetched.parts, fetched.transfers, strict=True) if pp[0].role == "weights"
    )
    with zipfile.ZipFile(fetched.package) as z:  # the assembled package carries exactly these bytes
        assert z.read(ENTRY) == path.read_bytes()
    return path.read_bytes(), transfer.as_json()


def weight_ranges(fake: FakeKiln, blob: bytes) -> list[str | None]:
    sha = hashlib.sha256(blob).hexdigest()
    return [rng for method, p, rng in fake.requests if method == "GET" and p == f"/blobs/{sha}"]


def holding_v1(fake: FakeKiln, key: SigningKey, tmp_path: Path) -> tuple[Cache, bytes, list[dict[str, Any]]]:
    """A device that fetched v1 (TENSORS) whole: its cache, v1's weights part and its index."""
    cache = Cache(tmp_path / "cache")
    v1, index1 = layout(TENSORS)
    publish(fake, key, v1, index1)
    fetch(fake, cache)
    return cache, v1, index1


TENSORS = {
    "a_weight": os.urandom(4096),
    "a_bias": os.urandom(40),  # 24 bytes of zero padding follow it
    "b_weight": os.urandom(300_000),
    "b_bias": os.urandom(64),
    "head_weight": os.urandom(2560),
    "head_bias": os.urandom(40),
}


def test_a_fine_tune_of_the_head_downloads_only_the_head(
    fake_kiln: FakeKiln, signing_key: SigningKey, tmp_path: Path
) -> None:
    cache = Cache(tmp_path / "cache")
    v1, index1 = layout(TENSORS)
    publish(fake_kiln, signing_key, v1, index1)
    got, cost = fetch(fake_kiln, cache)
    assert got == v1
    assert cost == {"downloadedBytes": len(v1), "tensorCount": 6, "tensorsFromCache": 0}
    assert weight_ranges(fake_kiln, v1) == [None], "a device that holds nothing downloads the part whole"

    tuned = {**TENSORS, "head_weight": os.urandom(2560), "head_bias": os.urandom(40)}
    v2, index2 = layout(tuned)
    publish(fake_kiln, signing_key, v2, index2)
    got, cost = fetch(fake_kiln, cache)
    assert got == v2
    head = next(t for t in index2 if t["name"] == "head_weight")
    bias = next(t for t in index2 if t["name"] == "head_bias")
    # One request: the two changed tensors are neighbours; the padding between them comes along, nothing else.
    assert weight_ranges(fake_kiln, v2) == [f"bytes={head['offset']}-{bias['offset'] + bias['size'] - 1}"]
    assert cost == {
        "downloadedBytes": bias["offset"] + bias["size"] - head["offset"],
        "tensorCount": 6,
        "tensorsFromCache": 4,
    }
    assert cost["downloadedBytes"] < len(v2) / 100

    # Fetched again: it is cached, nothing is downloaded.
    got, cost = fetch(fake_kiln, cache)
    assert (got, cost["downloadedBytes"]) == (v2, 0)
    assert weight_ranges(fake_kiln, v2) == []


def test_tensors_are_found_across_parts_and_positions(
    fake_kiln: FakeKiln, signing_key: SigningKey, tmp_path: Path
) -> None:
    """A part that holds known tensors elsewhere (another order, a new tensor in front) reuses them all the same."""
    cache, _v1, _index1 = holding_v1(fake_kiln, signing_key, tmp_path)
    moved = {"new_embedding": os.urandom(1000), **dict(reversed(list(TENSORS.items())))}
    v2, index2 = layout(moved)
    publish(fake_kiln, signing_key, v2, index2)
    got, cost = fetch(fake_kiln, cache)
    assert got == v2
    assert cost == {"downloadedBytes": 1000, "tensorCount": 7, "tensorsFromCache": 6}
    assert weight_ranges(fake_kiln, v2) == ["bytes=0-999"]


def test_a_lying_index_costs_bandwidth_never_correctness(
    fake_kiln: FakeKiln, signing_key: SigningKey, tmp_path: Path
) -> None:
    """An index that names a held tensor where another lies (a_bias's slot said to hold v1's head_bias, 40 bytes
    too): the assembled part does not hash, so the device downloads the part whole and stores only bytes that match
    the signed sha256."""
    cache, _v1, index1 = holding_v1(fake_kiln, signing_key, tmp_path)
    v2, index2 = layout({**TENSORS, "head_bias": os.urandom(40)})
    lying = [dict(t) for t in index2]
    lying[1]["sha256"] = index1[5]["sha256"]
    publish(fake_kiln, signing_key, v2, lying)
    got, cost = fetch(fake_kiln, cache)
    assert got == v2
    head_bias = index2[5]
    # The delta was tried (the changed tensor asked for), failed its sha256, then the part came whole.
    assert weight_ranges(fake_kiln, v2) == [f"bytes={head_bias['offset']}-{head_bias['offset'] + 39}", None]
    assert cost["downloadedBytes"] == 40 + len(v2)


def test_a_server_that_ignores_range_gets_a_whole_download(
    fake_kiln: FakeKiln, signing_key: SigningKey, tmp_path: Path
) -> None:
    cache, _v1, _index1 = holding_v1(fake_kiln, signing_key, tmp_path)
    v2, index2 = layout({**TENSORS, "b_bias": os.urandom(64)})
    publish(fake_kiln, signing_key, v2, index2)
    fake_kiln.faults[hashlib.sha256(v2).hexdigest()] = Fault(ignore_range=True)
    got, cost = fetch(fake_kiln, cache)
    assert got == v2
    ranges = weight_ranges(fake_kiln, v2)
    assert len(ranges) == 2 and ranges[0] is not None and ranges[1] is None, ranges
    assert cost["downloadedBytes"] == len(v2), "the 200 answer to the Range request was not read"


def test_a_server_answering_other_bytes_than_asked_gets_a_whole_download(
    fake_kiln: FakeKiln, signing_key: SigningKey, tmp_path: Path
) -> None:
    """A 206 whose Content-Range is not the range asked for is not written anywhere: the part comes whole."""
    cache, _v1, _index1 = holding_v1(fake_kiln, signing_key, tmp_path)
    v2, index2 = layout({**TENSORS, "b_bias": os.urandom(64)})
    publish(fake_kiln, signing_key, v2, index2)
    fake_kiln.faults[hashlib.sha256(v2).hexdigest()] = Fault(shift_range=64)
    got, _ = fetch(fake_kiln, cache)
    assert got == v2 and weight_ranges(fake_kiln, v2)[-1] is None


BAD_ENTRIES = [
    b"not json",
    b'{"blob": "../../../etc/passwd", "offset": 0, "size": 4096}',
    b'{"blob": "' + b"a" * 64 + b'", "offset": Infinity, "size": 4096}',
    b'{"blob": "' + b"a" * 64 + b'", "offset": 1e30, "size": 4096}',
    b'{"blob": "' + b"a" * 64 + b'", "offset": 1000000000000000000000000000000, "size": 4096}',
    b'{"blob": "' + b"a" * 64 + b'", "offset": -5, "size": 4096}',
    b'{"blob": "' + b"a" * 64 + b'", "offset": 0, "size": 1}',
    b"[]",
]


@pytest.mark.parametrize("entry", BAD_ENTRIES, ids=range(len(BAD_ENTRIES)))
def test_a_tampered_index_entry_is_dropped_and_the_tensor_fetched(
    fake_kiln: FakeKiln, signing_key: SigningKey, tmp_path: Path, entry: bytes
) -> None:
    cache, _v1, index1 = holding_v1(fake_kiln, signing_key, tmp_path)
    a_weight = cache.root / "tensors" / index1[0]["sha256"]
    a_weight.write_bytes(entry)
    v2, index2 = layout({**TENSORS, "head_bias": os.urandom(40)})
    publish(fake_kiln, signing_key, v2, index2)
    got, cost = fetch(fake_kiln, cache)
    assert got == v2
    assert cost["tensorsFromCache"] == 4 and weight_ranges(fake_kiln, v2)[0] == "bytes=0-4095"
    assert json.loads(a_weight.read_bytes())["blob"] == hashlib.sha256(v2).hexdigest(), "re-recorded from v2"


def test_an_index_whose_blobs_are_gone_still_fetches(
    fake_kiln: FakeKiln, signing_key: SigningKey, tmp_path: Path
) -> None:
    """The user deleted blobs/ but not tensors/: nothing is held after all, the part comes (by ranges or whole)."""
    cache, _v1, _index1 = holding_v1(fake_kiln, signing_key, tmp_path)
    shutil.rmtree(cache.blobs)
    v2, index2 = layout({**TENSORS, "head_bias": os.urandom(40)})
    publish(fake_kiln, signing_key, v2, index2)
    got, cost = fetch(fake_kiln, cache)
    assert got == v2 and cost["tensorsFromCache"] == 0


def test_a_held_blob_changed_on_disk_is_not_copied(
    fake_kiln: FakeKiln, signing_key: SigningKey, tmp_path: Path
) -> None:
    """Each held tensor is re-hashed when copied: one whose bytes changed in the cache is downloaded instead."""
    cache, v1, _index1 = holding_v1(fake_kiln, signing_key, tmp_path)
    held = cache.blob_path(hashlib.sha256(v1).hexdigest())
    raw = bytearray(held.read_bytes())
    raw[10] ^= 1  # inside a_weight
    held.write_bytes(bytes(raw))
    v2, index2 = layout({**TENSORS, "head_bias": os.urandom(40)})
    publish(fake_kiln, signing_key, v2, index2)
    got, cost = fetch(fake_kiln, cache)
    assert got == v2
    assert cost["tensorsFromCache"] == 4 and weight_ranges(fake_kiln, v2)[0] == "bytes=0-4095"


def test_a_part_without_an_index_is_downloaded_whole(
    fake_kiln: FakeKiln, signing_key: SigningKey, tmp_path: Path
) -> None:
    cache, _v1, _index1 = holding_v1(fake_kiln, signing_key, tmp_path)
    v2, _ = layout({**TENSORS, "head_bias": os.urandom(40)})
    publish(fake_kiln, signing_key, v2, None)
    got, cost = fetch(fake_kiln, cache)
    assert got == v2
    assert cost == {"downloadedBytes": len(v2), "tensorCount": 0, "tensorsFromCache": 0}


BAD_INDEXES: list[tuple[str, Any, str]] = [
    ("not a list", {"a": 1}, "not a list"),
    (
        "overlapping",
        [
            {"name": "a", "offset": 0, "size": 100, "sha256": "0" * 64},
            {"name": "b", "offset": 64, "size": 8, "sha256": "0" * 64},
        ],
        "inside the tensor before",
    ),
    (
        "out of order",
        [
            {"name": "a", "offset": 64, "size": 8, "sha256": "0" * 64},
            {"name": "b", "offset": 0, "size": 8, "sha256": "0" * 64},
        ],
        "inside the tensor before",
    ),
    ("past the end", [{"name": "a", "offset": 100, "size": 200, "sha256": "0" * 64}], "past the part"),
    ("an empty tensor", [{"name": "a", "offset": 0, "size": 0, "sha256": "0" * 64}], "size at least 1"),
    ("a size of true", [{"name": "a", "offset": 0, "size": True, "sha256": "0" * 64}], "size at least 1"),
    ("a negative offset", [{"name": "a", "offset": -1, "size": 1, "sha256": "0" * 64}], "offset and size"),
    ("a short hash", [{"name": "a", "offset": 0, "size": 1, "sha256": "abc"}], "not a sha256"),
    ("a path as a name", [{"name": "../a", "offset": 0, "size": 1, "sha256": "0" * 64}], "not a tensor name"),
    ("too many", [{"name": "a", "offset": i, "size": 1, "sha256": "0" * 64} for i in range(16385)], "at most"),
]


@pytest.mark.parametrize(("why", "value", "message"), BAD_INDEXES, ids=[b[0] for b in BAD_INDEXES])
def test_malformed_indexes_are_refused(why: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_tensor_index(value, 256)


def test_a_signed_manifest_with_a_malformed_index_is_refused(
    fake_kiln: FakeKiln, signing_key: SigningKey, tmp_path: Path
) -> None:
    v1, index1 = layout(TENSORS)
    index1[-1]["size"] = 10**9
    publish(fake_kiln, signing_key, v1, index1)
    with pytest.raises(VerificationError, match="past the part"):
        fetch(fake_kiln, Cache(tmp_path / "cache"))


def test_neighbours_are_merged_into_one_request() -> None:
    t = [Tensor("a", 0, 10, "0" * 64), Tensor("b", 64, 10, "0" * 64), Tensor("c", 64 + 10 + MERGE_GAP + 1, 5, "0" * 64)]
    assert merge_ranges(t) == [(0, 74), (MERGE_GAP + 75, MERGE_GAP + 80)]


def test_a_device_that_ran_the_portable_graph_downloads_no_weights_for_the_artifact(
    fake_kiln: FakeKiln, signing_key: SigningKey, compiled: Compiled, tmp_path: Path
) -> None:
    """The real tiny MLP: its weights part holds three of the portable .pt2's four weight files byte for byte (the
    4-float bias is written into the code by freezing). A device that fetched the portable graph (before any artifact
    existed, say) holds them all: the artifact costs its code only."""
    parts = split_package(compiled.package, compiled.parts_dir)
    blob = parts[1].path.read_bytes()
    with zipfile.ZipFile(compiled.portable) as z:
        files = [z.read(n) for n in z.namelist() if "/data/weights/weight_" in n]
    # The index as the driver writes it, found here independently: where each weight file's bytes sit in the blob.
    index = sorted(
        (
            {"name": f"w{i}", "offset": blob.find(data), "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for i, data in enumerate(files)
            if blob.find(data) >= 0
        ),
        key=lambda t: t["offset"],
    )
    assert len(index) == 3 and sum(t["size"] for t in index) == len(blob)
    manifest_parts = [
        {"role": "code", "sha256": parts[0].sha256, "size": parts[0].size},
        {
            "role": "weights",
            "sha256": parts[1].sha256,
            "size": parts[1].size,
            "entry": parts[1].entry,
            "tensors": index,
        },
    ]
    publish_artifact(
        fake_kiln, compiled, signing_key, manifest_bytes=json.dumps(make_manifest(manifest_parts)).encode()
    )
    client = KilnClient(
        fake_kiln.url, fake_kiln.token, cache=Cache(tmp_path / "c"), retry=FAST, pinned_keys="", trust_on_first_use=True
    )
    res = parse_resolution(fake_kiln.resolution)
    client.fetch_portable(res)
    fake_kiln.requests.clear()
    assert res.artifact is not None
    fetched = client.fetch_artifact(res.artifact)
    cost = {p.role: t.as_json() for (p, _), t in zip(fetched.parts, fetched.transfers, strict=True)}
    assert cost["weights"] == {"downloadedBytes": 0, "tensorCount": 3, "tensorsFromCache": 3}
    assert cost["code"]["downloadedBytes"] == parts[0].size
    assert weight_ranges(fake_kiln, blob) == [], "not one byte of the weights part was asked for"
    assert (fetched.parts[1][1]).read_bytes() == blob


def test_a_crafted_portable_archive_hashes_each_byte_once(tmp_path: Path) -> None:
    """Two directory entries pointing at one stored file (and one past the end of the file) are indexed once: a
    crafted .pt2 cannot make the device hash its bytes over and over. Tiny files are not indexed."""
    pt2 = tmp_path / "m.pt2"
    big = os.urandom(4096)
    with zipfile.ZipFile(pt2, "w") as z:
        z.writestr("m/data/weights/weight_0", big)
        z.writestr("m/data/weights/weight_1", os.urandom(4096))
        z.writestr("m/data/weights/weight_2", b"tiny")
        z.writestr("m/data/weights/model_weights_config.json", b"{}" * 100)
    raw = bytearray(pt2.read_bytes())
    central = raw.index(b"PK\x01\x02", raw.index(b"PK\x01\x02") + 1)  # weight_1's directory record
    struct.pack_into("<I", raw, central + 42, 0)  # its local header offset: weight_0's
    pt2.write_bytes(bytes(raw))
    found = portable_tensors(pt2)
    assert [(t.name, t.size, t.sha256) for t in found] == [("weight_0", 4096, hashlib.sha256(big).hexdigest())]
