"""The local content-addressed cache, safe for concurrent processes.

    $KILN_CACHE_DIR (default ~/.cache/kiln)
      blobs/sha256/<hex>        verified bytes: artifact parts, manifests, portable .pt2 files
      blobs/sha256/<hex>.part   an interrupted download, resumed with an HTTP Range request
      packages/<manifest-sha256>.pt2         an AOTInductor package assembled from its parts
      packages/<manifest-sha256>.pt2.sha256  its sha256, to re-check the package before each load
      portable/<sha256>.pt2     a portable graph with its pickled sample inputs blanked (loadable copy)
      keys/<keyId>.json         trusted signing keys (trust on first use)
      locks/<name>.lock         flock()s: one downloader/assembler per blob or package at a time

Every file appears by an atomic rename of a finished temporary file in the same folder, so a reader sees a
whole file or none; a crashed writer leaves only a temporary (or a `.part`, which the next download resumes).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import ErrorCode, KilnRuntimeError

log = logging.getLogger("kiln_runtime")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20

try:
    import fcntl
except ImportError:  # Windows: no flock; concurrent downloads of one blob are then not serialised
    fcntl = None  # type: ignore[assignment]


def default_cache_dir() -> Path:
    env = os.environ.get("KILN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "kiln"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(value: str) -> str:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise KilnRuntimeError(ErrorCode.BAD_RESPONSE, f"not a sha256 hex digest: {value!r}")
    return value


def temp_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class Cache:
    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.blobs = self.root / "blobs" / "sha256"
        self.packages = self.root / "packages"
        self.portable = self.root / "portable"
        self.keys = self.root / "keys"
        self.locks = self.root / "locks"

    def blob_path(self, sha256: str) -> Path:
        return self.blobs / check_sha256(sha256)

    def partial_path(self, sha256: str) -> Path:
        return self.blobs / f"{check_sha256(sha256)}.part"

    def package_path(self, manifest_sha256: str) -> Path:
        return self.packages / f"{check_sha256(manifest_sha256)}.pt2"

    def portable_path(self, sha256: str) -> Path:
        return self.portable / f"{check_sha256(sha256)}.pt2"

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An exclusive inter-process lock (flock) held for the block; blocks until it is free."""
        self.locks.mkdir(parents=True, exist_ok=True)
        with open(self.locks / f"{name}.lock", "a+b") as f:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def verified_blob(self, sha256: str, size: int | None = None, *, rehash: bool = True) -> Path | None:
        """The cached blob if its bytes still hash to `sha256` (and have `size`); a bad one is deleted."""
        path = self.blob_path(sha256)
        try:
            actual_size = path.stat().st_size
        except FileNotFoundError:
            return None
        problem = None
        if size is not None and actual_size != size:
            problem = f"{actual_size} bytes instead of {size}"
        elif rehash:
            actual = sha256_file(path)
            if actual != sha256:
                problem = f"its bytes hash to {actual}"
        if problem is None:
            return path
        log.warning("cached blob %s failed its check (%s): corrupted or tampered; deleted", path, problem)
        path.unlink(missing_ok=True)
        return None

    def commit(self, tmp: Path, final: Path) -> Path:
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        return final


def derived_file(cache: Cache, final: Path, build: Callable[[Path], object], *, rehash: bool = True) -> Path:
    """A file made from verified blobs (an assembled package, a loadable portable copy), cached at `final`.

    Its sha256 is recorded beside it when built and checked before each reuse (unless `rehash` is off), so a
    corrupted or modified copy is rebuilt from the blobs instead of being loaded.
    """
    sidecar = final.with_name(final.name + ".sha256")
    with cache.lock(f"derived-{final.name}"):
        if final.exists():
            recorded = sidecar.read_text().strip() if sidecar.exists() else None
            if recorded is not None and (not rehash or sha256_file(final) == recorded):
                return final
            log.warning("cached %s does not match its recorded sha256: rebuilding it from verified parts", final)
            final.unlink(missing_ok=True)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(final).with_suffix(".pt2")  # torch's loaders want a .pt2 name
        try:
            build(tmp)
            digest = sha256_file(tmp)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        write_atomic(sidecar, (digest + "\n").encode())
        return final
