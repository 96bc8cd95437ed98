"""Split an AOTInductor package into content-addressed parts, and put it back together.

The one implementation: the compile driver splits (and reassembles, to verify in a fresh process) and the
device runtime assembles with exactly this code; `kiln_driver.package_parts` re-exports it. Standard library
only, on purpose.

An artifact is a `code` part (the AOTInductor package zip WITHOUT its `*_weights.blob` entries) plus one
`weights` part per blob (its raw bytes; `entry` says where it belongs in the package). Assembly copies the
code zip and appends each blob as a stored entry at its `entry` path; the loader then finds the blob beside
the `.so` as if it had never left.

Every entry we write is stored (uncompressed) and its data 64-byte aligned, like the files torch writes
itself, so torch's own readers can map them.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import struct
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

WEIGHTS_BLOB_SUFFIX = "_weights.blob"
# torch.export / AOTInductor archives hold one per package, under the archive's root folder.
SERIALIZATION_ID_ENTRY = ".data/serialization_id"
ALIGNMENT = 64
# Extra-field id for alignment padding (the one Android's zipalign uses); readers skip unknown ids.
_PADDING_EXTRA_ID = 0xD935
_LOCAL_HEADER_SIZE = 30
_ZIP64_EXTRA_SIZE = 20
_COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class PartFile:
    """One part written to disk, named by its content hash."""

    role: str  # "code" | "weights"
    sha256: str
    size: int
    path: Path
    entry: str | None = None  # for weights: the zip entry path inside the code package


def is_weights_entry(name: str) -> bool:
    return name.endswith(WEIGHTS_BLOB_SUFFIX)


def _needs_zip64(size: int) -> bool:
    # Mirrors zipfile._open_to_write, so the header size we plan for is the one it writes.
    return size * 1.05 > zipfile.ZIP64_LIMIT


def write_stored_entry(
    zout: zipfile.ZipFile,
    name: str,
    src: IO[bytes],
    size: int,
    date_time: tuple[int, int, int, int, int, int] = (1980, 1, 1, 0, 0, 0),
) -> None:
    """Append `size` bytes read from `src` as a stored entry whose data starts on a 64-byte boundary."""
    info = zipfile.ZipInfo(name, date_time=date_time)
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = size
    info.external_attr = 0o644 << 16
    zip64 = _needs_zip64(size)
    header_offset = zout.fp.tell()  # type: ignore[union-attr]
    fixed = _LOCAL_HEADER_SIZE + len(name.encode("utf-8")) + (_ZIP64_EXTRA_SIZE if zip64 else 0)
    pad = (-(header_offset + fixed + 4)) % ALIGNMENT  # +4: the padding record's own id and length
    info.extra = struct.pack("<HH", _PADDING_EXTRA_ID, pad) + b"\0" * pad
    with zout.open(info, "w", force_zip64=zip64) as dst:
        remaining = size
        while remaining:
            chunk = src.read(min(_COPY_CHUNK, remaining))
            if not chunk:
                raise OSError(f"{name}: source ended {remaining} bytes early")
            dst.write(chunk)
            remaining -= len(chunk)


def copy_entry(zin: zipfile.ZipFile, info: zipfile.ZipInfo, zout: zipfile.ZipFile, name: str | None = None) -> None:
    """Copy one entry's bytes unchanged (stored, aligned), keeping its timestamp."""
    with zin.open(info) as src:
        write_stored_entry(zout, name or info.filename, src, info.file_size, info.date_time)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _store_part(tmp: Path, parts_dir: Path, role: str, entry: str | None = None) -> PartFile:
    sha = _sha256_file(tmp)
    size = tmp.stat().st_size
    final = parts_dir / sha
    if final.exists():  # same content already stored (e.g. two identical blobs)
        tmp.unlink()
    else:
        os.replace(tmp, final)
    return PartFile(role=role, sha256=sha, size=size, path=final, entry=entry)


def is_serialization_id_entry(name: str) -> bool:
    return name == SERIALIZATION_ID_ENTRY or name.endswith("/" + SERIALIZATION_ID_ENTRY)


def content_serialization_id(zin: zipfile.ZipFile) -> bytes:
    """A serialization id derived from the code entries (names and bytes), in torch's form: 40 decimal digits.

    torch's archive writer puts a random id in every package (read back only for logging); kept, it made two
    builds of the same model, target and toolchain differ in their code part. Derived from the content, the
    same code gives the same id, and other code another one, as a fresh id would.
    """
    digest = hashlib.sha256()
    for info in zin.infolist():
        if info.is_dir() or is_weights_entry(info.filename) or is_serialization_id_entry(info.filename):
            continue
        name = info.filename.encode("utf-8")
        digest.update(struct.pack("<QQ", len(name), info.file_size) + name)
        with zin.open(info) as src:
            while chunk := src.read(_COPY_CHUNK):
                digest.update(chunk)
    return str(int.from_bytes(digest.digest(), "big") % 10**40).zfill(40).encode("ascii")


def split_package(package: Path, parts_dir: Path) -> list[PartFile]:
    """Write the package's parts into `parts_dir/<sha256>`; returns the code part first, then the weights.

    The code part is a function of the code alone: entries keep their order and timestamps, and the archive's
    random serialization id is replaced by one derived from the code (content_serialization_id).
    """
    parts_dir.mkdir(parents=True, exist_ok=True)
    weights: list[PartFile] = []
    code_tmp = parts_dir / ".code.tmp"
    with zipfile.ZipFile(package) as zin, zipfile.ZipFile(code_tmp, "w", zipfile.ZIP_STORED) as zout:
        serialization_id = content_serialization_id(zin)
        for info in zin.infolist():
            if info.is_dir():
                continue
            if is_weights_entry(info.filename):
                blob_tmp = parts_dir / ".weights.tmp"
                with zin.open(info) as src, blob_tmp.open("wb") as dst:
                    shutil.copyfileobj(src, dst, _COPY_CHUNK)
                weights.append(_store_part(blob_tmp, parts_dir, "weights", entry=info.filename))
            elif is_serialization_id_entry(info.filename):
                write_stored_entry(
                    zout, info.filename, io.BytesIO(serialization_id), len(serialization_id), info.date_time
                )
            else:
                copy_entry(zin, info, zout)
    code = _store_part(code_tmp, parts_dir, "code")
    return [code, *weights]


def check_weights_entry(entry: str) -> None:
    """A weights entry comes from a manifest: refuse anything that could land outside the package folder."""
    parts = entry.split("/")
    if (
        not is_weights_entry(entry)
        or entry.startswith("/")
        or "\\" in entry
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise ValueError(f"bad weights entry path {entry!r}")


def assemble_package(code_zip: Path, weights_parts: Iterable[tuple[str, Path]], out_path: Path) -> Path:
    """Rebuild a loadable AOTInductor package: the code zip plus each (entry, blob file) as a stored entry.

    `out_path` should end in `.pt2` (torch's loader warns otherwise).
    """
    with zipfile.ZipFile(code_zip) as zin, zipfile.ZipFile(out_path, "w", zipfile.ZIP_STORED) as zout:
        present = set(zin.namelist())
        for info in zin.infolist():
            copy_entry(zin, info, zout)
        for entry, blob in weights_parts:
            check_weights_entry(entry)
            if entry in present:
                raise ValueError(f"weights entry {entry!r} already exists in the code package")
            present.add(entry)
            with open(blob, "rb") as src:
                write_stored_entry(zout, entry, src, os.fstat(src.fileno()).st_size)
    return out_path
