"""Per-tenant inductor caches (issue 17, item 3): restore an earlier build's cache folder, pack this build's.

Each job starts with an empty TORCHINDUCTOR_CACHE_DIR (build.prepare_environment). The worker may give it the
latest cache of its scope (tenant, target, recipe hash: the recipe pins the toolchain), as a zip in the job folder;
the driver restores it before compiling, and after a successful build packs the cache folder into the job's out
folder for the worker to upload. What inductor then finds there it reuses: on CPU the vector-ISA probe builds and
`<hash>/<key>.wrapper.so` / `.kernel.so` keyed by the generated source (with freezing on, the FX graph cache is
bypassed), on CUDA the per-kernel Triton builds and autotuning results.

The archive is untrusted: it is what an earlier build of the same tenant left, and a tenant's model runs code in
that build. So every member is checked before anything is written (regular files only, relative names without
`..`, bounded count and size) and a bad archive is ignored with its reason, never extracted outside the cache
folder. A cache is an optimization: a build without it gives the same code bytes (the reproduce path builds a
second time without one and compares). Python 3.11.2 here has no tarfile extraction filters: zip with our checks.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath
from typing import TypedDict

from kiln_runtime.cache import sha256_file

from .package_parts import WEIGHTS_BLOB_SUFFIX
from .progress import log

# The archive's name in the job's out folder (the worker uploads it from there).
ARCHIVE_NAME = "inductor-cache.zip"
# Bounds of a cache, on pack and on restore: a CPU cache is a few MB in a few dozen files, a CUDA one a few
# hundred MB in thousands (one build per Triton kernel).
MAX_MEMBERS = 20_000
MAX_TOTAL_BYTES = 2 << 30
# Fixed member timestamps (zip's earliest): two packs of the same folder give the same bytes.
_EPOCH = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o644
_CHUNK = 1 << 20
# Never packed: inductor's copies of the weights (the artifact's parts hold them; a blob may be GBs), its lock
# files, and any package (the artifact itself).
_EXCLUDED_SUFFIXES = (WEIGHTS_BLOB_SUFFIX, ".lock", ".pt2")
# Nor the model's own generated files (`<key>.wrapper.cpp`, `.kernel.cpp`, `.wrapper.so`, their metadata): inductor
# compiles them on every build anyway (no cache lookup before the C++ compile), and one it finds on disk changes the
# package: it keeps the found source and appends the compile commands to it, so the packaged sources (and the
# serialization id derived from them) differ from a build without the cache. Measured: tests/test_inductor_cache.py.
_MODEL_OUTPUT = re.compile(r"\.(wrapper|kernel)[._]")


class CacheRecord(TypedDict):
    sha256: str
    bytes: int


class _InductorCacheRequired(TypedDict):
    restored: CacheRecord | None
    stored: CacheRecord | None


class InductorCacheRecord(_InductorCacheRequired, total=False):
    """The manifest's `inductorCache`."""

    ignored: str  # why the offered cache was not restored (the build ran without it)


class BadCache(Exception):
    """The offered archive is not restored; the message says why."""


def _check_name(name: str) -> PurePosixPath:
    if not name or "\\" in name or "\x00" in name:
        raise BadCache(f"member {name!r}: not a plain relative name")
    if name.startswith("/"):
        raise BadCache(f"member {name!r}: an absolute name")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise BadCache(f"member {name!r}: an empty, '.' or '..' component")
    if len(parts[0]) == 2 and parts[0][1] == ":":
        raise BadCache(f"member {name!r}: a drive name")
    return PurePosixPath(name)


def _check_members(z: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    infos = z.infolist()
    if len(infos) > MAX_MEMBERS:
        raise BadCache(f"{len(infos)} members, more than {MAX_MEMBERS}")
    total = 0
    files: set[PurePosixPath] = set()
    for info in infos:
        if info.is_dir():
            raise BadCache(f"member {info.filename!r}: a folder entry (only regular files)")
        path = _check_name(info.filename)
        mode = info.external_attr >> 16
        # A zip made on Unix records the file type: anything but a regular file (a symlink, a device) is refused;
        # a member without one (permission bits only) is written as a regular file.
        if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
            raise BadCache(f"member {info.filename!r}: not a regular file (mode {mode:o})")
        if info.flag_bits & 0x1:
            raise BadCache(f"member {info.filename!r}: encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise BadCache(f"member {info.filename!r}: compression method {info.compress_type}")
        if path in files:
            raise BadCache(f"member {info.filename!r}: listed twice")
        files.add(path)
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise BadCache(f"members of more than {MAX_TOTAL_BYTES} bytes in all")
    # A name that is both a file and another member's folder.
    for path in files:
        for parent in path.parents:
            if parent in files:
                raise BadCache(f"member {str(path)!r}: {str(parent)!r} is a file")
    return infos


def _extract(z: zipfile.ZipFile, infos: list[zipfile.ZipInfo], dest: Path) -> None:
    for info in infos:
        target = dest.joinpath(*PurePosixPath(info.filename).parts)
        # Folders are made here, in a folder that was empty: no link can be on the way (checked again, cheaply).
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.resolve().is_relative_to(dest.resolve()):
            raise BadCache(f"member {info.filename!r}: lands outside the cache folder")
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, _FILE_MODE)
        written = 0
        with os.fdopen(fd, "wb") as dst, z.open(info) as src:  # zipfile checks each member's CRC
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if written > info.file_size:
                    raise BadCache(f"member {info.filename!r}: more bytes than it declares")
                dst.write(chunk)


def restore(archive: Path, sha256: str, dest: Path) -> tuple[CacheRecord | None, str | None]:
    """Restores the archive into the (empty) cache folder `dest`: (its record, None), or (None, why it was not)."""
    try:
        if dest.exists() and any(dest.iterdir()):
            raise BadCache("the cache folder is not empty")
        if not archive.is_file() or archive.is_symlink():
            raise BadCache("the archive is not a regular file")
        size = archive.stat().st_size
        actual = sha256_file(archive)
        if actual != sha256:
            raise BadCache(f"the archive hashes to {actual}, the job names {sha256}")
        dest.mkdir(parents=True, exist_ok=True)
        try:
            with zipfile.ZipFile(archive) as z:
                _extract(z, _check_members(z), dest)
        except BaseException:
            _empty(dest)  # nothing half-restored
            raise
    except BadCache as exc:
        return None, str(exc)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        return None, f"unreadable archive: {type(exc).__name__}: {exc}"
    return {"sha256": sha256, "bytes": size}, None


def _empty(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _packable(cache_dir: Path) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for root, dirs, names in os.walk(cache_dir):  # never follows links
        dirs.sort()
        for name in sorted(names):
            path = Path(root) / name
            if (
                name.endswith(_EXCLUDED_SUFFIXES)
                or _MODEL_OUTPUT.search(name)
                or not stat.S_ISREG(path.lstat().st_mode)
            ):
                continue
            found.append((path.relative_to(cache_dir).as_posix(), path))
    return sorted(found)


def pack(cache_dir: Path, archive: Path) -> CacheRecord | None:
    """Packs the cache folder into `archive`, deterministically; None (nothing written) when there is no cache folder
    or it is past the bounds restore accepts. A cache with nothing worth keeping is stored too, as an archive without
    members: the scope's latest cache is what its latest build left (on a CPU whose vector ISAs the worker checked
    once, a build leaves nothing but its own generated files, which are never packed)."""
    archive.unlink(missing_ok=True)
    if not cache_dir.is_dir():
        return None
    members = _packable(cache_dir)
    total = sum(p.stat().st_size for _, p in members)
    if len(members) > MAX_MEMBERS or total > MAX_TOTAL_BYTES:
        log.warning("inductor cache not stored: %d files, %d bytes, past the bounds", len(members), total)
        return None
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(archive.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        for name, path in members:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.create_system = 3  # Unix: the mode below is a regular file's
            info.external_attr = (stat.S_IFREG | _FILE_MODE) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            size = path.stat().st_size
            with path.open("rb") as src, z.open(info, "w", force_zip64=size > 0x7FFFFFFF) as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
    os.replace(tmp, archive)
    return {"sha256": sha256_file(archive), "bytes": archive.stat().st_size}
