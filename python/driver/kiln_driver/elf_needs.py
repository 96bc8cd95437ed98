"""Which GLIBC / GLIBCXX symbol versions a `.so` needs: a device with an older libc cannot load it."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import TypedDict

from .errors import DriverError, ErrorCode

_GLIBC = re.compile(r"\bGLIBC_(\d+(?:\.\d+)+)\b")
_GLIBCXX = re.compile(r"\bGLIBCXX_(\d+(?:\.\d+)+)\b")


class LibcNeeds(TypedDict):
    glibc: str | None
    glibcxx: str | None


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def highest(versions: Iterable[str]) -> str | None:
    """Version-aware max: 2.34 > 2.4, 3.4.30 > 3.4.9."""
    return max(versions, key=_version_key, default=None)


def parse_dynamic_symbols(text: str) -> LibcNeeds:
    """Highest GLIBC_x.y and GLIBCXX_x.y.z in `objdump -T` output (GLIBC_PRIVATE and friends are ignored)."""
    return {"glibc": highest(_GLIBC.findall(text)), "glibcxx": highest(_GLIBCXX.findall(text))}


def read_needs(so_paths: list[Path], objdump: str = "objdump") -> LibcNeeds:
    """`objdump`: one that reads the shared objects' machine type (isa.objdump_for)."""
    texts = []
    for so in so_paths:
        proc = subprocess.run([objdump, "-T", str(so)], check=False, capture_output=True, text=True, errors="replace")
        if proc.returncode != 0:
            message = f"objdump -T failed on {so.name}: {proc.stderr.strip()[:2000]}"
            raise DriverError(ErrorCode.DRIVER_CRASHED, message)
        texts.append(proc.stdout)
    return parse_dynamic_symbols("\n".join(texts))
