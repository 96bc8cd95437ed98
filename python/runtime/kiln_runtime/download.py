"""Resumable, verified downloads into the cache.

Bytes go to `blobs/sha256/<hex>.part`; after a dropped connection or a timeout the next attempt asks for the
rest with `Range: bytes=<have>-` (a server that ignores Range answers 200 and the file starts over). At the
end size and sha256 must match, then the `.part` is renamed onto the blob. A mismatch deletes the `.part`
and, if the download had been resumed, tries once more from byte 0 before refusing. Transient failures
(connection errors, timeouts, 408/429/5xx) are retried with exponential backoff; attempts that make
progress do not count against the limit. One process downloads a blob at a time (flock); the others wait
and then find it cached.
"""

from __future__ import annotations

import http.client
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from .cache import Cache, sha256_file
from .errors import ErrorCode, NetworkError, VerificationError
from .http import RetryPolicy

log = logging.getLogger("kiln_runtime")
_CHUNK = 1 << 20
# Shared with tensor_delta.py's ranged requests: what is worth a retry, and a 206's Content-Range.
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class Progress(Protocol):
    def update(self, n: int) -> object: ...
    def close(self) -> object: ...


# (description, total bytes or None, bytes already there) -> a progress sink
ProgressFactory = Callable[[str, "int | None", int], Progress]


class _Transient(Exception):
    pass


class _Restart(Exception):
    pass


class _Oversize(Exception):
    pass


def refused(exc: urllib.error.HTTPError) -> NetworkError:
    """A download the storage refused for good (not a transient status), saying what a user can do about it."""
    hint = " (presigned URLs expire: resolve again for fresh ones)" if exc.code in (400, 401, 403) else ""
    return NetworkError(
        ErrorCode.DOWNLOAD_FAILED,
        f"the download was refused: HTTP {exc.code} {exc.reason}{hint}",
        {"status": exc.code},
    )


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    req = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            raise _Restart from exc
        if exc.code in TRANSIENT_STATUS:
            raise _Transient(f"HTTP {exc.code}") from exc
        raise refused(exc) from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise _Transient(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from exc


def _fetch_into(url: str, part: Path, limit: int | None, timeout: float, bar: Progress | None) -> None:
    """One HTTP request appending to `part` from its current length; raises _Transient/_Restart on trouble."""
    offset = part.stat().st_size if part.exists() else 0
    if limit is not None and offset >= limit:
        if offset > limit:
            raise _Restart
        return
    resp = _open(url, offset, timeout)
    with resp:
        mode = "ab"
        if offset and resp.status == 206:
            m = CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                raise _Restart
        elif offset:
            log.info("the server ignored the Range request (HTTP %s): downloading from the start", resp.status)
            mode, offset = "wb", 0
            if bar is not None:
                bar.update(-part.stat().st_size)
        length = resp.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        got = 0
        with open(part, mode) as out:
            try:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    got += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
                    if limit is not None and offset + got > limit:
                        raise _Oversize
            except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as exc:
                raise _Transient(f"connection lost after {offset + got} bytes: {type(exc).__name__}") from exc
        if expected is not None and got < expected:
            raise _Transient(f"connection closed after {offset + got} of {offset + expected} bytes")


def download_blob(
    url: str,
    cache: Cache,
    *,
    sha256: str,
    size: int | None,
    what: str,
    retry: RetryPolicy | None = None,
    progress: ProgressFactory | None = None,
    max_size: int | None = None,
    rehash_cached: bool = True,
) -> Path:
    """The verified blob `sha256` in the cache, downloaded (resuming any `.part`) when it is not there yet."""
    retry = retry or RetryPolicy()
    with cache.lock(sha256):
        cached = cache.verified_blob(sha256, size, rehash=rehash_cached)
        if cached is not None:
            return cached
        cache.blobs.mkdir(parents=True, exist_ok=True)
        part = cache.partial_path(sha256)
        limit = size if size is not None else max_size
        fresh_retry_left = True
        while True:
            resumed = part.exists() and part.stat().st_size > 0
            try:
                _transfer(url, part, limit, what, retry=retry, progress=progress)
            except _Oversize:
                part.unlink(missing_ok=True)
                raise VerificationError(
                    ErrorCode.INTEGRITY_FAILED,
                    f"{what}: the server sent more than the expected {limit} bytes. Refused; nothing was loaded.",
                    {"expectedSha256": sha256, "limit": limit},
                ) from None
            actual_size = part.stat().st_size
            digest = sha256_file(part)
            if digest == sha256 and (size is None or actual_size == size):
                return cache.commit(part, cache.blob_path(sha256))
            part.unlink(missing_ok=True)
            if resumed and fresh_retry_left:
                log.warning("%s: the resumed download does not match its sha256; downloading it again", what)
                fresh_retry_left = False
                continue
            raise VerificationError(
                ErrorCode.INTEGRITY_FAILED,
                f"{what}: the downloaded bytes do not match the signed manifest "
                f"(sha256 {digest}, {actual_size} bytes; expected {sha256}"
                f"{f', {size} bytes' if size is not None else ''}). Refused; nothing was loaded.",
                {"expectedSha256": sha256, "actualSha256": digest, "expectedSize": size, "actualSize": actual_size},
            )


def _transfer(
    url: str, part: Path, limit: int | None, what: str, *, retry: RetryPolicy, progress: ProgressFactory | None
) -> None:
    initial = part.stat().st_size if part.exists() else 0
    bar = progress(what, limit, initial) if progress is not None else None
    failures = 0
    try:
        while True:
            before = part.stat().st_size if part.exists() else 0
            try:
                _fetch_into(url, part, limit, retry.timeout_s, bar)
                return
            except _Restart:
                log.info("%s: restarting the download from byte 0", what)
                if bar is not None:
                    bar.update(-before)
                part.unlink(missing_ok=True)
                failures += 1
            except _Transient as exc:
                now = part.stat().st_size if part.exists() else 0
                failures = 0 if now > before else failures + 1
                if failures >= retry.attempts:
                    raise NetworkError(
                        ErrorCode.DOWNLOAD_FAILED,
                        f"{what}: download failed {failures} times in a row ({exc}); kept {now} bytes to resume",
                        {"bytes": now},
                    ) from exc
                delay = retry.delay(max(failures, 1))
                log.info("%s: %s; resuming at byte %d in %.1f s", what, exc, now, delay)
                time.sleep(delay)
            if failures >= retry.attempts:
                raise NetworkError(ErrorCode.DOWNLOAD_FAILED, f"{what}: the server keeps sending a bad range")
    finally:
        if bar is not None:
            bar.close()
