"""Version strings the matching rules compare, mirroring libs/matching/src/versions.ts exactly: both run the
shared vectors of test/fixtures/contracts/versions.json (tests/test_contract_vectors.py).

glibc / GLIBCXX symbol versions are dotted numbers compared component by component; torch versions are a
PEP 440 public version plus a local tag whose `cuXYZ` segment names the CUDA version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# re.ASCII: \d is 0-9 only, as in JavaScript (Python's would also take other scripts' digits, "٢.٣").
_DOTTED = re.compile(r"^\d{1,9}(\.\d{1,9}){0,5}$", re.ASCII)
_SYMBOL_PREFIX = re.compile(r"^GLIBC(XX)?_", re.IGNORECASE)
# Release X.Y[.Z...], optional pre-release, post and dev segments, optional local tag (torch's own shape).
_TORCH_VERSION = re.compile(
    r"^(\d+(?:\.\d+)+(?:(?:a|b|rc)\d+)?(?:\.post\d+)?(?:\.dev\d+)?)(?:\+([a-z0-9]+(?:\.[a-z0-9]+)*))?$", re.ASCII
)
# cu128 -> 12.8, cu118 -> 11.8: the last digit is the minor version (how torch names its wheels).
_CUDA_LOCAL_SEGMENT = re.compile(r"^cu(\d+)(\d)$", re.ASCII)

# What JavaScript's String.prototype.trim() removes (WhiteSpace and LineTerminator): str.strip() would also remove
# U+001C-U+001F and U+0085, and keep U+FEFF.
JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def js_trim(text: str) -> str:
    """`text.trim()` as JavaScript does it."""
    return text.strip(JS_WHITESPACE)


def parse_dotted(version: str) -> list[int] | None:
    """Numeric components of a dotted version ("2.36" -> [2, 36]); None when it is not purely dotted numbers."""
    trimmed = js_trim(version)
    return [int(p) for p in trimmed.split(".")] if _DOTTED.match(trimmed) else None


def normalize_dotted(version: str) -> str | None:
    """Canonical dotted form without a GLIBC_/GLIBCXX_ prefix or leading zeros ("GLIBCXX_3.4.030" -> "3.4.30")."""
    parts = parse_dotted(_SYMBOL_PREFIX.sub("", js_trim(version)))
    return ".".join(str(p) for p in parts) if parts is not None else None


def compare_dotted(a: list[int], b: list[int]) -> int:
    """-1, 0 or 1; missing components count as 0 ("2.34" == "2.34.0", "3.4.30" > "3.4.9")."""
    for i in range(max(len(a), len(b))):
        d = (a[i] if i < len(a) else 0) - (b[i] if i < len(b) else 0)
        if d:
            return -1 if d < 0 else 1
    return 0


@dataclass(frozen=True)
class TorchVersion:
    public: str  # "2.13.0", "2.7.0.dev20250301"
    local: str | None  # "cpu", "cu128", None
    cuda: str | None  # "12.8" from a cu128 local segment


def parse_torch_version(version: str) -> TorchVersion | None:
    m = _TORCH_VERSION.match(js_trim(version).lower())
    if not m:
        return None
    local = m.group(2)
    cuda = None
    for segment in local.split(".") if local else []:
        cu = _CUDA_LOCAL_SEGMENT.match(segment)
        if cu:
            cuda = f"{int(cu.group(1))}.{cu.group(2)}"
            break
    return TorchVersion(public=m.group(1), local=local, cuda=cuda)


def cuda_major_minor(version: str) -> str | None:
    parts = parse_dotted(version)
    return f"{parts[0]}.{parts[1]}" if parts is not None and len(parts) >= 2 else None


def normalize_compute_capability(cc: str) -> str | None:
    parts = parse_dotted(cc)
    return ".".join(str(p) for p in parts) if parts is not None and len(parts) == 2 else None
