"""Download only the tensors this device does not hold yet (issue 17, item 1).

A weights part's signed manifest entry lists its tensors (`parts[].tensors`: name, offset, size, sha256; every byte
outside them is zero; kiln_driver/weights_layout.py writes it). A fine-tune that changed some layers keeps the
others' bytes, and so their sha256. This device remembers where each tensor it verified lies:

    $KILN_CACHE_DIR/tensors/<tensor sha256>   {"blob": <weights part sha256>, "offset": n, "size": n}

so for a new weights part it copies the tensors it holds from the verified blobs in its cache (re-hashing each
range), asks the server for the others with HTTP Range requests (neighbours merged into one request), leaves the
gaps zero, and then checks the whole part's sha256 against the signed manifest like any download. A part that
does not check out (a lying index, a server that ignores Range, a blob changed underneath) is downloaded whole
instead: the delta can cost bandwidth, never correctness.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import struct
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .cache import Cache, check_sha256, sha256_file, write_atomic
from .download import CONTENT_RANGE, TRANSIENT_STATUS, refused
from .errors import ErrorCode, NetworkError
from .http import RetryPolicy

log = logging.getLogger("kiln_runtime")

MAX_TENSORS = 16384  # the manifest schema's maxItems
# Portable tensor files smaller than this are not indexed: not worth an index file each.
MIN_INDEXED_BYTES = 64
# Missing tensors closer than this are fetched in one request (the bytes between come along): fewer round trips
# for many small tensors, a bounded overhead per gap.
MERGE_GAP = 64 << 10
_NAME = re.compile(r"[A-Za-z0-9_.]{1,400}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Tensor:
    name: str
    offset: int
    size: int
    sha256: str


def _is_count(v: Any, minimum: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= minimum


def parse_tensor_index(value: Any, part_size: int) -> tuple[Tensor, ...]:
    """A weights part's `tensors`, checked: well formed, by offset, none overlapping, inside the part.
    Raises ValueError saying what is wrong."""
    if not isinstance(value, list):
        raise ValueError("tensors is not a list")
    if len(value) > MAX_TENSORS:
        raise ValueError(f"{len(value)} tensors (at most {MAX_TENSORS})")
    out: list[Tensor] = []
    end = 0
    for i, t in enumerate(value):
        if not isinstance(t, dict):
            raise ValueError(f"tensors[{i}] is not an object")
        name, offset, size, sha = t.get("name"), t.get("offset"), t.get("size"), t.get("sha256")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"tensors[{i}].name is not a tensor name")
        if not _is_count(offset, 0) or not _is_count(size, 1):
            raise ValueError(f"tensors[{i}] ({name}): offset and size must be integers, size at least 1")
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise ValueError(f"tensors[{i}] ({name}): sha256 is not a sha256")
        if offset < end:
            raise ValueError(f"tensors[{i}] ({name}) starts at {offset}, inside the tensor before it (ends at {end})")
        end = offset + size
        if end > part_size:
            raise ValueError(f"tensors[{i}] ({name}) ends at {end}, past the part's {part_size} bytes")
        out.append(Tensor(name, offset, size, sha))
    return tuple(out)


@dataclass(frozen=True)
class DeltaResult:
    """What fetching one weights part cost: bytes asked of the server, tensors taken from this device's cache."""

    path: Path
    downloaded: int
    requests: int
    reused_tensors: int
    reused_bytes: int
    tensors: int


class TensorIndex:
    """Where this device's verified weights parts hold each tensor (`tensors/<sha256>`, one small file each)."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.root = cache.root / "tensors"

    def record(self, blob_sha256: str, tensors: tuple[Tensor, ...]) -> None:
        """After `blob_sha256` was verified: remember its tensors (a tensor already known elsewhere keeps that)."""
        for t in tensors:
            path = self.root / t.sha256
            if not path.exists():
                write_atomic(path, json.dumps({"blob": blob_sha256, "offset": t.offset, "size": t.size}).encode())

    def record_portable(self, pt2_sha256: str, pt2: Path) -> int:
        """After the portable graph `pt2_sha256` was verified: remember the tensors it stores (torch.export keeps one
        file per tensor, stored uncompressed), so an artifact's weights part that holds the same bytes costs no
        download. Once per .pt2; returns how many tensors it found."""
        marker = self.root / "from-portable" / pt2_sha256
        if marker.exists():
            return 0
        found = portable_tensors(pt2)[:MAX_TENSORS]
        self.record(pt2_sha256, tuple(found))
        write_atomic(marker, str(len(found)).encode())
        return len(found)

    def _where(self, t: Tensor) -> tuple[Path, int] | None:
        """The cached blob and offset an index entry names for `t`; a malformed entry is dropped."""
        path = self.root / t.sha256
        try:
            where = json.loads(path.read_bytes())
            blob, offset, size = where["blob"], where["offset"], where["size"]
            if not (isinstance(blob, str) and _SHA256.fullmatch(blob) and _is_count(offset, 0) and size == t.size):
                raise ValueError("malformed")
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, OSError):
            path.unlink(missing_ok=True)
            return None
        return self.cache.blob_path(blob), offset

    def copy_into(self, t: Tensor, out: BinaryIO) -> bool:
        """Copy the tensor's bytes from the cached blob holding it into `out` at `t.offset`, hashing as it goes, in
        chunks; False (and the entry dropped) when it is not held intact: the caller fetches it instead."""
        where = self._where(t)
        if where is None:
            return False
        blob, offset = where
        digest = hashlib.sha256()
        left = t.size
        try:
            with open(blob, "rb") as f:
                f.seek(offset)
                out.seek(t.offset)
                while left:
                    chunk = f.read(min(_CHUNK, left))
                    if not chunk:
                        break
                    digest.update(chunk)
                    out.write(chunk)
                    left -= len(chunk)
        except (OSError, ValueError, OverflowError):
            left = -1
        if left == 0 and digest.hexdigest() == t.sha256:
            return True
        (self.root / t.sha256).unlink(missing_ok=True)  # the blob is gone or changed: forget it, fetch the tensor
        return False

    def held_bytes(self, tensors: tuple[Tensor, ...]) -> int:
        """Bytes of `tensors` this device's index names a place for (not yet re-checked)."""
        return sum(t.size for t in tensors if (self.root / t.sha256).exists())


_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
_LOCAL_HEADER_SIGNATURE = 0x04034B50


def portable_tensors(pt2: Path) -> list[Tensor]:
    """Every tensor file of a portable .pt2 (`<archive>/data/weights/*`, `<archive>/data/constants/*`, stored, not
    the JSON configs, at least MIN_INDEXED_BYTES): where its bytes start in the file, its size and sha256.

    The zip's own directory is not trusted to be sane (the .pt2 came from a user): an entry whose data would overlap
    another's or leave the file is skipped, so no byte is hashed twice and the work is bounded by the file's size.
    """
    out: list[Tensor] = []
    file_size = pt2.stat().st_size
    with open(pt2, "rb") as f, zipfile.ZipFile(f) as z:
        spans: list[tuple[int, int, str]] = []
        for info in z.infolist():
            folder = info.filename.split("/")[-3:-1]
            name = info.filename.rsplit("/", 1)[-1]
            if (
                folder not in (["data", "weights"], ["data", "constants"])
                or info.compress_type != zipfile.ZIP_STORED
                or info.file_size < MIN_INDEXED_BYTES
                or name.endswith(".json")
                or not _NAME.fullmatch(name)
            ):
                continue
            f.seek(info.header_offset)
            header = f.read(_LOCAL_HEADER.size)
            if len(header) != _LOCAL_HEADER.size:
                continue
            fields = _LOCAL_HEADER.unpack(header)
            if fields[0] != _LOCAL_HEADER_SIGNATURE:
                continue
            start = info.header_offset + _LOCAL_HEADER.size + fields[9] + fields[10]
            if start + info.file_size <= file_size:
                spans.append((start, info.file_size, name))
        end = 0
        for start, size, name in sorted(spans):
            if start < end:  # overlaps the entry before it: a crafted archive
                continue
            end = start + size
            f.seek(start)
            digest = hashlib.sha256()
            left = size
            while left:
                chunk = f.read(min(_CHUNK, left))
                if not chunk:
                    break
                digest.update(chunk)
                left -= len(chunk)
            if not left:
                out.append(Tensor(name, start, size, digest.hexdigest()))
    return out


def merge_ranges(tensors: list[Tensor], gap: int = MERGE_GAP) -> list[tuple[int, int]]:
    """[start, end) byte ranges covering `tensors` (by offset), neighbours closer than `gap` merged."""
    ranges: list[tuple[int, int]] = []
    for t in sorted(tensors, key=lambda t: t.offset):
        start, end = t.offset, t.offset + t.size
        if ranges and start - ranges[-1][1] <= gap:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], end))
        else:
            ranges.append((start, end))
    return ranges


class NoDelta(Exception):
    """This delta cannot be done (the server ignores Range, the result does not hash): download the part whole.
    `downloaded`: the bytes the attempt had fetched already."""

    def __init__(self, message: str, downloaded: int = 0) -> None:
        super().__init__(message)
        self.downloaded = downloaded


def _fetch_range(url: str, start: int, end: int, out: BinaryIO, retry: RetryPolicy) -> int:
    """Bytes [start, end) of `url` by one Range request, streamed into `out` at `start` in chunks; retried on
    transient failures. Returns the bytes received (all attempts). A server that answers anything but exactly that
    range raises NoDelta."""
    failures = received = 0
    while True:
        req = urllib.request.Request(url, headers={"Range": f"bytes={start}-{end - 1}"})
        try:
            with urllib.request.urlopen(req, timeout=retry.timeout_s) as resp:
                m = CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", ""))
                if resp.status != 206 or not m or (int(m.group(1)), int(m.group(2))) != (start, end - 1):
                    raise NoDelta(f"the server did not answer the Range request (HTTP {resp.status})", received)
                out.seek(start)
                got = 0
                while chunk := resp.read(min(_CHUNK, end - start - got + 1)):
                    got += len(chunk)
                    received += len(chunk)
                    if got > end - start:
                        raise NoDelta(f"the server sent more than bytes {start}-{end - 1}", received)
                    out.write(chunk)
            if got != end - start:
                raise ConnectionError(f"the connection closed after {got} of {end - start} bytes")
            return received
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416:
                raise NoDelta(f"the server refused the range bytes {start}-{end - 1} (HTTP 416)", received) from exc
            if exc.code not in TRANSIENT_STATUS:
                raise refused(exc) from exc
            problem: Exception = exc
        except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            problem = exc
        failures += 1
        if failures >= retry.attempts:
            raise NetworkError(
                ErrorCode.DOWNLOAD_FAILED,
                f"bytes {start}-{end - 1}: download failed {failures} times in a row ({problem})",
                {"bytes": received},
            )
        time.sleep(retry.delay(failures))


def delta_path(cache: Cache, sha256: str) -> Path:
    """Where a delta of part `sha256` is assembled: one fixed name (under the part's lock), so what a killed process
    left is truncated and reused by the next attempt, never piled up."""
    return cache.blobs / f"{check_sha256(sha256)}.delta"


def assemble_delta(
    url: str, cache: Cache, *, sha256: str, size: int, tensors: tuple[Tensor, ...], retry: RetryPolicy, what: str
) -> DeltaResult:
    """Build the weights part `sha256` from held tensors plus Range requests for the rest, and verify it. The caller
    holds the part's lock.

    Raises NoDelta when the result cannot be made or does not hash to `sha256` (the caller downloads it whole).
    """
    index = TensorIndex(cache)
    cache.blobs.mkdir(parents=True, exist_ok=True)
    tmp = delta_path(cache, sha256)
    missing: list[Tensor] = []
    reused = reused_bytes = downloaded = requests = 0
    try:
        with open(tmp, "wb") as out:
            out.truncate(size)  # the gaps between tensors are zero (the index says so; the sha256 checks it)
            for t in tensors:
                if index.copy_into(t, out):
                    reused += 1
                    reused_bytes += t.size
                else:
                    missing.append(t)
            for start, end in merge_ranges(missing):
                try:
                    downloaded += _fetch_range(url, start, end, out, retry)
                except NoDelta as exc:
                    raise NoDelta(str(exc), downloaded + exc.downloaded) from None
                except NetworkError as exc:  # the whole download will say it again if the storage is really down
                    raise NoDelta(str(exc), downloaded + int(exc.details.get("bytes", 0))) from None
                requests += 1
            out.flush()
            os.fsync(out.fileno())
        digest = sha256_file(tmp)
        if digest != sha256:
            raise NoDelta(
                f"the part assembled from its tensors hashes to {digest}, the manifest says {sha256}", downloaded
            )
        path = cache.commit(tmp, cache.blob_path(sha256))
        cache.partial_path(sha256).unlink(missing_ok=True)  # an earlier whole download's leftover, now useless
    finally:
        tmp.unlink(missing_ok=True)
    log.info(
        "%s: %d of %d tensors (%d bytes) from this device's cache, %d bytes downloaded in %d requests",
        what,
        reused,
        len(tensors),
        reused_bytes,
        downloaded,
        requests,
    )
    return DeltaResult(path, downloaded, requests, reused, reused_bytes, len(tensors))
