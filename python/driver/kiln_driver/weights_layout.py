"""Where each tensor lies in an AOTInductor weights blob: the per-tensor index of a weights part (issue 17, item 1).

A device that holds an earlier weights part downloads only the tensors it does not hold (kiln_runtime.tensor_delta);
for that, the manifest lists, per weights part, every tensor's byte range and sha256.

The layout is read off the generated wrapper (`<stem>.cpp` beside `<stem>_weights.blob` in the code part), which
declares every constant in order: `constants_info_[i].name / dtype / offset / data_size / from_folded / shape /
stride`. Inductor writes the blob from the same list (torch/_inductor/codecache.py, "aoti_serialize_constants"): the
constants that are not folded at run time, in order, each taking `data_size` bytes (its storage's bytes, padded to
64 unless every such constant is on the GPU), and none for a tensor without elements. A tensor's range is the bytes
its view reaches (offset, shape, stride, dtype) when everything after them in its slot is zero (for a plain
parameter those are exactly the bytes the portable .pt2 stores for it), else the whole slot.

Nothing here is trusted on faith: the slots must tile the blob exactly, and every byte outside the listed ranges
must be zero (a device fills those with zeros and checks the whole part's sha256 anyway). When the wrapper says
something else (another torch release, an opaque mkldnn constant), the part gets no index, with the reason in the
build log: the device then downloads the whole part, as before.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from .package_parts import WEIGHTS_BLOB_SUFFIX

_FIELD = re.compile(r"^\s*constants_info_\[(\d+)\]\.(\w+)\s*=\s*(.*?);\s*$", re.MULTILINE)
_NAME = re.compile(r'"([A-Za-z0-9_.]{1,400})"')
_INT = re.compile(r"\d+")
_DIMS = re.compile(r"\{\s*(\d+(?:\s*,\s*\d+)*)?\s*\}")
# Bytes per element of the dtypes inductor names `cached_torch_dtype_<name>` (others: the whole slot is the range).
_ITEM_SIZE = {
    "float64": 8,
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "int64": 8,
    "int32": 4,
    "int16": 2,
    "int8": 1,
    "uint8": 1,
    "bool": 1,
    "complex64": 8,
    "complex128": 16,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
}
_HASH_CHUNK = 1 << 20
MAX_TENSORS = 16384  # the manifest schema's maxItems
# The index's share of the manifest, as the orchestrator signs it (indented JSON): devices read manifests of up to
# 4 MiB (kiln_runtime.client.MAX_MANIFEST_BYTES), and the rest of a manifest is a few kB.
MAX_INDEX_BYTES = 3 << 20


class TensorRange(TypedDict):
    """One tensor of a weights part (the manifest's `parts[].tensors[]`)."""

    name: str
    offset: int
    size: int
    sha256: str


class NoLayout(Exception):
    """The part gets no per-tensor index; the message says why (logged by the build)."""


@dataclass(frozen=True)
class _Constant:
    name: str
    data_size: int
    from_folded: bool
    used_bytes: int | None  # the storage's bytes the view reaches, when the wrapper tells it


def wrapper_source_entry(blob_entry: str) -> str:
    """`…/<stem>_weights.blob` → `…/<stem>.cpp`, the wrapper inductor wrote the blob for."""
    if not blob_entry.endswith(WEIGHTS_BLOB_SUFFIX):
        raise NoLayout(f"{blob_entry!r} is not a weights blob entry")
    return blob_entry[: -len(WEIGHTS_BLOB_SUFFIX)] + ".cpp"


def _constants(source: str) -> list[_Constant]:
    fields: dict[int, dict[str, str]] = {}
    for m in _FIELD.finditer(source):
        fields.setdefault(int(m.group(1)), {})[m.group(2)] = m.group(3).strip()
    if sorted(fields) != list(range(len(fields))):
        raise NoLayout("the wrapper's constants_info_ indices are not 0..n-1")
    out: list[_Constant] = []
    for i in range(len(fields)):
        f = fields[i]
        name = _NAME.fullmatch(f.get("name", ""))
        size = f.get("data_size", "")
        folded = f.get("from_folded")
        if not name or not _INT.fullmatch(size) or folded not in ("true", "false"):
            raise NoLayout(f"constant {i}: no readable name, data_size and from_folded in the wrapper")
        slot = 0 if _is_empty(f) else int(size)
        out.append(_Constant(name.group(1), slot, folded == "true", _used_bytes(f) if slot else 0))
    return out


def _dims(value: str) -> list[int] | None:
    m = _DIMS.fullmatch(value)
    return None if m is None else [int(d) for d in (m.group(1) or "").split(",") if d.strip()]


def _is_empty(f: dict[str, str]) -> bool:
    """A tensor without elements: inductor writes no bytes for it, whatever its storage's data_size says."""
    shape = _dims(f.get("shape", ""))
    return shape is not None and 0 in shape and "opaque_metadata" not in f


def _used_bytes(f: dict[str, str]) -> int | None:
    """(offset + the farthest element + 1) × item size: the storage bytes a strided view reaches; None if unknown."""
    if "opaque_metadata" in f:  # an mkldnn constant: its bytes are not described by shape and stride
        return None
    item = _ITEM_SIZE.get(f.get("dtype", "").removeprefix("cached_torch_dtype_"))
    sizes, strides, offset = _dims(f.get("shape", "")), _dims(f.get("stride", "")), f.get("offset", "")
    if item is None or sizes is None or strides is None or not _INT.fullmatch(offset) or len(sizes) != len(strides):
        return None
    return (int(offset) + sum((n - 1) * st for n, st in zip(sizes, strides, strict=True)) + 1) * item


def _is_zero(f, start: int, end: int) -> bool:
    f.seek(start)
    left = end - start
    while left:
        chunk = f.read(min(_HASH_CHUNK, left))
        if not chunk or chunk.count(0) != len(chunk):
            return False
        left -= len(chunk)
    return True


def _sha256_range(f, start: int, size: int) -> str:
    digest = hashlib.sha256()
    f.seek(start)
    left = size
    while left:
        chunk = f.read(min(_HASH_CHUNK, left))
        if not chunk:
            raise NoLayout("the blob ended inside a tensor")
        digest.update(chunk)
        left -= len(chunk)
    return digest.hexdigest()


def weights_layout(code_part: Path, blob_entry: str, blob: Path) -> list[TensorRange]:
    """Every tensor of `blob` (the weights part at `blob_entry` of `code_part`): name, offset, size, sha256.

    Raises NoLayout when the wrapper does not describe the blob exactly.
    """
    source_entry = wrapper_source_entry(blob_entry)
    with zipfile.ZipFile(code_part) as z:
        try:
            info = z.getinfo(source_entry)
        except KeyError:
            raise NoLayout(f"the code part has no {source_entry}") from None
        source = z.read(info).decode("utf-8", errors="replace")
    constants = [c for c in _constants(source) if not c.from_folded]
    blob_size = blob.stat().st_size
    if sum(c.data_size for c in constants) != blob_size:
        raise NoLayout(
            f"the wrapper's constants take {sum(c.data_size for c in constants)} bytes, the blob has {blob_size}"
        )
    tensors: list[TensorRange] = []
    with blob.open("rb") as f:
        slot = 0
        for c in constants:
            size = c.data_size
            if c.used_bytes is not None and c.used_bytes <= size and _is_zero(f, slot + c.used_bytes, slot + size):
                size = c.used_bytes  # the padding after it is zero: the range is the tensor's own bytes
            if size:  # an empty tensor in a zero slot has no bytes to list
                tensors.append({"name": c.name, "offset": slot, "size": size, "sha256": _sha256_range(f, slot, size)})
            slot += c.data_size
    if len(tensors) > MAX_TENSORS:
        raise NoLayout(f"{len(tensors)} tensors, more than a manifest lists ({MAX_TENSORS})")
    signed = len(json.dumps({"parts": [{"tensors": tensors}]}, indent=2)) + 4 * len(tensors)  # deeper indentation
    if signed > MAX_INDEX_BYTES:
        raise NoLayout(f"the index would take {signed} bytes of the signed manifest (at most {MAX_INDEX_BYTES})")
    return tensors
