"""The hard matching rules of docs/fingerprint.md, mirrored from checkCandidate in
libs/matching/src/match-artifacts.ts (same rules, same order, same reason texts): both run the shared vectors of
test/fixtures/contracts/needs.json (tests/test_contract_vectors.py).

The resolver already matched the artifact against the fingerprint the device sent; the loader checks the
signed manifest's `requires` again against THIS host's probe before loading anything (defense in depth: a
simulated or stale fingerprint, a resolver bug, or a manifest swapped after matching all stop here).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .versions import (
    compare_dotted,
    cuda_major_minor,
    normalize_compute_capability,
    normalize_dotted,
    parse_dotted,
    parse_torch_version,
)
from .x86_levels import describe_x86_level, device_x86_level, missing_x86_flags


def _json(value: Any) -> str:
    """What JavaScript's JSON.stringify(value) prints, so quoted values in reasons read the same as the server's."""
    return json.dumps(value, ensure_ascii=False)


def js_number(x: float) -> str:
    """What JavaScript's String(Number(x.toPrecision(3))) prints, so reasons read the same as the server's."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    x = float(f"{x:.3g}")
    if x == int(x) and abs(x) < 1e21:
        return str(int(x))
    text = repr(x)
    if "e" not in text:
        return text
    mantissa, exp = text.split("e")
    if -7 < int(exp) < 21:
        return format(Decimal(text), "f")
    return f"{mantissa.removesuffix('.0')}e{'+' if int(exp) > 0 else '-'}{abs(int(exp))}"


@dataclass
class NeedsCheck:
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def compatible(self) -> bool:
        return not self.failed


def _platform(fp: dict[str, Any], req: dict[str, Any], log: NeedsCheck) -> None:
    if fp.get("os") == req.get("os") and fp.get("arch") == req.get("arch"):
        log.passed.append(f"{req['os']}/{req['arch']} matches")
        return
    if fp.get("os") != req.get("os"):
        log.failed.append(f"built for {req.get('os')}; this device runs {fp.get('os')}")
    if fp.get("arch") != req.get("arch"):
        log.failed.append(f"built for {req.get('arch')} CPUs; this device is {fp.get('arch')}")


def _cpu_level(fp: dict[str, Any], req: dict[str, Any], log: NeedsCheck) -> None:
    needed = req.get("x86Level")
    if needed is None:
        return
    if not isinstance(needed, int) or isinstance(needed, bool) or not 1 <= needed <= 4:
        log.failed.append(f"its manifest names an unknown x86-64 level {_json(needed)}")
        return
    if fp.get("arch") != "x86_64":
        log.failed.append(f"needs an {describe_x86_level(needed)} CPU; this device is {fp.get('arch')}")
        return
    cpu = fp.get("cpu") or {}
    device = device_x86_level(cpu)
    if device.level >= needed:
        log.passed.append(f"x86-64-v{needed} ≤ this CPU's {device.describe()}")
        return
    missing = (
        f": missing {', '.join(missing_x86_flags(cpu.get('flags') or [], needed))}" if device.source == "flags" else ""
    )
    log.failed.append(f"needs {describe_x86_level(needed)}; this CPU is {device.describe()}{missing}")


def _gpu(fp: dict[str, Any], req: dict[str, Any], log: NeedsCheck) -> None:
    if req.get("computeCapability") is None:
        return
    needed = normalize_compute_capability(str(req["computeCapability"]))
    if needed is None:
        log.failed.append(f"its manifest names an unreadable compute capability {_json(req['computeCapability'])}")
        return
    gpus = fp.get("gpus") or []
    # Exact match: AOTInductor builds GPU code for the build GPU's own architecture (sm_90a runs on 9.0 only).
    for gpu in gpus:
        if normalize_compute_capability(str(gpu.get("computeCapability", ""))) == needed:
            log.passed.append(f"GPU {gpu.get('name')} has compute capability {needed}")
            return
    have = (
        "this device has no CUDA GPU"
        if not gpus
        else "this device's GPUs: " + ", ".join(f"{g.get('name')} ({g.get('computeCapability')})" for g in gpus)
    )
    log.failed.append(
        f"needs a GPU of compute capability {needed} (code built for sm_{needed.replace('.', '')} runs only there); "
        f"{have}"
    )


def _torch(fp: dict[str, Any], req: dict[str, Any], log: NeedsCheck) -> None:
    torch_fp = fp.get("torch") or {}
    device_version = str(torch_fp.get("version") or "")
    build = parse_torch_version(str(req.get("torch", "")))
    device = parse_torch_version(device_version)
    if build is None:
        log.failed.append(f"its manifest names an unreadable torch build {_json(req.get('torch'))}")
        return
    if device is None:
        log.failed.append(f"this device's torch version {_json(device_version)} is unreadable")
        return
    public_ok = build.public == device.public
    if not public_ok:
        log.failed.append(
            f"built with torch {build.public} ({req['torch']}); this device runs torch {device.public} "
            f"({device_version}): compiled artifacts need the exact torch release"
        )
    device_cuda_raw = torch_fp.get("cuda")
    if req.get("computeCapability") is None:
        if public_ok:
            on_cuda = " (a CPU artifact also runs on this CUDA build)" if device_cuda_raw is not None else ""
            log.passed.append(f"torch {device.public} matches the build ({req['torch']}){on_cuda}")
        return
    device_cuda = cuda_major_minor(str(device_cuda_raw)) if device_cuda_raw is not None else None
    if build.cuda is None:
        log.failed.append(
            f"GPU artifact built with torch {req['torch']}, which does not name its CUDA version (+cuXYZ): "
            "the device's CUDA torch cannot be proven compatible"
        )
    elif device_cuda is None:
        log.failed.append(
            f"needs a CUDA {build.cuda} build of torch (like {build.public}+{build.local}); "
            f"this device's torch {device_version} is not a CUDA build"
        )
    elif device_cuda != build.cuda:
        log.failed.append(
            f"needs torch built for CUDA {build.cuda}; this device's torch {device_version} is built for CUDA "
            f"{device_cuda}"
        )
    elif public_ok:
        log.passed.append(f"torch {device.public} for CUDA {device_cuda} matches the build ({req['torch']})")


def _libc(fp: dict[str, Any], req: dict[str, Any], log: NeedsCheck) -> None:
    glibc = req.get("glibc")
    if req.get("os") != "linux" and glibc is None:
        return
    need = "glibc" if glibc is None else f"glibc ≥ {glibc}"
    libc = fp.get("libc") or {}
    name, version = libc.get("name"), libc.get("version")
    if name != "glibc":
        have = "an unknown libc" if name in (None, "unknown") else f"{name}{f' {version}' if version else ''}"
        log.failed.append(f"needs {need}; this device's libc is {have}")
        return
    if glibc is None:
        log.passed.append("glibc present (no versioned glibc symbol needed)")
        return
    needed = parse_dotted(normalize_dotted(str(glibc)) or "")
    if needed is None:
        log.failed.append(f"its manifest names an unreadable glibc requirement {_json(glibc)}")
        return
    have_v = parse_dotted(str(version)) if version is not None else None
    if have_v is None:
        log.failed.append(f"needs {need}; this device did not report its glibc version")
    elif compare_dotted(have_v, needed) < 0:
        log.failed.append(f"needs {need}; this device has glibc {version}")
    else:
        log.passed.append(f"glibc {version} ≥ {glibc}")


def _libstdcxx(fp: dict[str, Any], req: dict[str, Any], log: NeedsCheck) -> None:
    glibcxx = req.get("glibcxx")
    if glibcxx is None:
        return
    needed = parse_dotted(normalize_dotted(str(glibcxx)) or "")
    if needed is None:
        log.failed.append(f"its manifest names an unreadable GLIBCXX requirement {_json(glibcxx)}")
        return
    need = f"libstdc++ with GLIBCXX_{glibcxx}"
    device = (fp.get("libstdcxx") or {}).get("glibcxx")
    have = parse_dotted(str(device)) if device is not None else None
    if have is None:
        log.failed.append(f"needs {need}; this device did not report its libstdc++ (GLIBCXX) version")
    elif compare_dotted(have, needed) < 0:
        log.failed.append(f"needs {need}; this device's libstdc++ provides up to GLIBCXX_{device}")
    else:
        log.passed.append(f"GLIBCXX {device} ≥ {glibcxx}")


def _validation(manifest: dict[str, Any], log: NeedsCheck) -> None:
    v = manifest.get("verification") or {}
    max_abs = v.get("maxAbsError")
    if v.get("passed") is True:
        log.passed.append(f"verified against the portable graph (max abs error {js_number(float(max_abs or 0))})")
    else:
        detail = ""
        if isinstance(max_abs, (int, float)) and math.isfinite(max_abs):
            detail = f" (max abs error {js_number(max_abs)}, atol {js_number(float(v.get('atol') or 0))})"
        log.failed.append(f"not verified: its outputs were not shown to match the portable graph{detail}")
    isa = manifest.get("isaCheck") or {}
    if isa.get("passed") is True:
        log.passed.append("ISA check passed")
    else:
        counts = isa.get("counts") or {}
        used = [r for r in isa.get("forbidden") or [] if (counts.get(r) or 0) > 0]
        detail = f": uses forbidden {', '.join(f'{r} ({counts[r]}x)' for r in used)}" if used else ""
        log.failed.append(f"failed the ISA check{detail}; it could crash with an illegal instruction")


def check_needs(fingerprint: dict[str, Any], manifest: dict[str, Any]) -> NeedsCheck:
    """Every hard rule for one artifact manifest against one fingerprint, each failing rule with its reason."""
    log = NeedsCheck()
    req = manifest.get("requires")
    if not isinstance(req, dict):
        log.failed.append("its manifest has no `requires` section")
        return log
    _platform(fingerprint, req, log)
    _cpu_level(fingerprint, req, log)
    _gpu(fingerprint, req, log)
    _torch(fingerprint, req, log)
    _libc(fingerprint, req, log)
    _libstdcxx(fingerprint, req, log)
    _validation(manifest, log)
    return log
