"""The portable graph (the uploaded `.pt2`): a loadable copy, and loading it without running pickled code.

`torch.export.load` unpickles an archive's sample inputs (retrying with weights_only=False) and dlopens any
precompiled AOTInductor code it holds. The loadable copy blanks every `data/sample_inputs/*` entry (torch
reads empty bytes as "no example inputs"), drops `data/aotinductor/*`, and refuses pickled weights,
constants and custom objects; every other entry is copied byte for byte. The compile driver does the same
before it touches an upload (kiln_driver/neutralize.py); the API's validator refuses most of it earlier.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from .errors import ErrorCode, LoadError, VerificationError
from .package_parts import copy_entry, write_stored_entry

_PICKLED_PREFIXES = ("custom_obj_", "opaque_obj_")


def _refuse(message: str) -> VerificationError:
    return VerificationError(ErrorCode.MANIFEST_INVALID, f"the portable graph cannot be loaded safely: {message}")


def _check_payload_config(data: bytes, name: str) -> None:
    try:
        config = json.loads(data)["config"]
        items = config.items()
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _refuse(f"{name} is not a payload config ({exc})") from exc
    for fqn, meta in items:
        path_name = str(meta.get("path_name", "")) if isinstance(meta, dict) else ""
        if not isinstance(meta, dict) or meta.get("use_pickle") or path_name.startswith(_PICKLED_PREFIXES):
            raise _refuse(f"{fqn!r} is stored as a pickle ({name})")


def make_loadable_copy(src: Path, dst: Path) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            if info.is_dir():
                continue
            top, sep, rel = info.filename.partition("/")
            if not sep or not top or info.filename.startswith("/") or "\\" in info.filename:
                raise _refuse(f"entry {info.filename!r} is not inside the archive's top folder")
            if any(p in ("", ".", "..") for p in rel.split("/")):
                raise _refuse(f"entry name {info.filename!r} is not allowed")
            if rel.startswith("data/aotinductor/"):
                continue
            if rel.startswith("data/sample_inputs/"):
                write_stored_entry(zout, info.filename, _Empty(), 0, info.date_time)
                continue
            if rel.startswith(("data/weights/", "data/constants/")) and rel.endswith("_config.json"):
                _check_payload_config(zin.read(info), rel)
            if rel.startswith("data/") and rel.endswith(".pkl"):
                raise _refuse(f"{rel} is a pickle")
            copy_entry(zin, info, zout)


class _Empty:
    def read(self, n: int = -1) -> bytes:
        return b""


def load_exported_program(path: Path) -> Any:
    """The one ExportedProgram of a loadable copy, with torch's archive loader (no legacy pickle fallback)."""
    try:
        from torch.export.pt2_archive._package import load_pt2
    except ImportError as exc:
        raise LoadError(ErrorCode.TORCH_MISSING, f"torch is needed to load models: {exc}") from exc
    try:
        contents = load_pt2(str(path))
    except Exception as exc:
        raise LoadError(
            ErrorCode.LOAD_FAILED, f"the portable graph does not load: {type(exc).__name__}: {exc}"
        ) from exc
    programs = contents.exported_programs
    if len(programs) != 1:
        raise LoadError(ErrorCode.LOAD_FAILED, f"the portable graph holds {len(programs)} programs, expected one")
    return next(iter(programs.values()))
