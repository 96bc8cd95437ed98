"""The device fingerprint (docs/fingerprint.md, schemaVersion 1): a structural check of the same rules as the
server's validateFingerprint (libs/matching/src/fingerprint.ts), so a bad `--fingerprint FILE` or a broken
probe is reported here, with the field's path, instead of as an API error. The server stays the judge: it
also normalises (lower-cases, sorts flags, canonical versions), which this check does not need to. Both accept
and refuse the same vectors, test/fixtures/contracts/fingerprints.json, as libs/contracts/src/schemas/
fingerprint.schema.json allows (tests/test_contract_vectors.py).
"""

from __future__ import annotations

import re
from typing import Any

from .versions import cuda_major_minor, js_trim, normalize_compute_capability, normalize_dotted, parse_torch_version

SCHEMA_VERSION = 1
OS_VALUES = ("linux", "windows", "darwin")
ARCH_ALIASES = {"x86_64": "x86_64", "amd64": "x86_64", "x64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
LIBC_VALUES = ("glibc", "musl", "unknown")
LIMITS = {
    "maxCpuFlags": 1024,
    "maxCpuFlagLength": 64,
    "maxGpus": 64,
    "maxNameLength": 256,
    "maxVersionLength": 64,
    "maxHostnameLength": 253,
}
_CPU_FLAG = re.compile(r"^[a-z0-9_.-]+$")


def _string(obj: dict[str, Any], key: str, path: str, errors: list[str], max_len: int, *, required: bool) -> str | None:
    if key not in obj:
        if required:
            errors.append(f"{path}: is required")
        return None
    v = obj[key]
    if not isinstance(v, str):
        errors.append(f"{path}: must be a string, got {v!r}")
        return None
    v = js_trim(v)
    if not v:
        errors.append(f"{path}: must not be empty")
        return None
    if len(v) > max_len:
        errors.append(f"{path}: must be at most {max_len} characters, got {len(v)}")
        return None
    return v


def _nullable_dotted(obj: dict[str, Any], key: str, path: str, errors: list[str]) -> None:
    if key not in obj:
        errors.append(f"{path}: is required (null when unknown)")
        return
    if obj[key] is None:
        return
    v = _string(obj, key, path, errors, LIMITS["maxVersionLength"], required=True)
    if v is not None and normalize_dotted(v) is None:
        errors.append(f'{path}: must be a dotted version like "2.36", got {v!r}')


def _object(obj: dict[str, Any], key: str, errors: list[str]) -> dict[str, Any] | None:
    v = obj.get(key)
    if not isinstance(v, dict):
        errors.append(f"{key}: must be an object, got {v!r}" if key in obj else f"{key}: is required")
        return None
    return v


def validate_fingerprint(fp: Any) -> list[str]:
    """Every problem found, each prefixed with its path; empty when the fingerprint is valid."""
    if not isinstance(fp, dict):
        return [f"fingerprint must be a JSON object, got {type(fp).__name__}"]
    if fp.get("schemaVersion") != SCHEMA_VERSION:
        return [f"schemaVersion: must be {SCHEMA_VERSION}, got {fp.get('schemaVersion')!r}"]
    errors: list[str] = []
    os_name = _string(fp, "os", "os", errors, LIMITS["maxNameLength"], required=True)
    if os_name is not None and os_name.lower() not in OS_VALUES:
        errors.append(f"os: must be one of {', '.join(OS_VALUES)}, got {os_name!r}")
    arch_raw = _string(fp, "arch", "arch", errors, LIMITS["maxNameLength"], required=True)
    arch = ARCH_ALIASES.get(arch_raw.lower()) if arch_raw is not None else None
    if arch_raw is not None and arch is None:
        errors.append(f"arch: must be one of {', '.join(ARCH_ALIASES)}, got {arch_raw!r}")

    libc = _object(fp, "libc", errors)
    if libc is not None:
        name = _string(libc, "name", "libc.name", errors, LIMITS["maxNameLength"], required=True)
        if name is not None and name.lower() not in LIBC_VALUES:
            errors.append(f"libc.name: must be one of {', '.join(LIBC_VALUES)}, got {name!r}")
        _nullable_dotted(libc, "version", "libc.version", errors)
    cxx = _object(fp, "libstdcxx", errors)
    if cxx is not None:
        _nullable_dotted(cxx, "glibcxx", "libstdcxx.glibcxx", errors)

    cpu = _object(fp, "cpu", errors)
    if cpu is not None:
        _string(cpu, "model", "cpu.model", errors, LIMITS["maxNameLength"], required=False)
        flags = cpu.get("flags")
        if not isinstance(flags, list):
            errors.append(f"cpu.flags: must be an array of strings (empty when unknown), got {flags!r}")
        elif len(flags) > LIMITS["maxCpuFlags"]:
            errors.append(f"cpu.flags: must have at most {LIMITS['maxCpuFlags']} entries, got {len(flags)}")
        else:
            for i, f in enumerate(flags):
                flag = js_trim(f).lower() if isinstance(f, str) else ""
                if not flag or len(flag) > LIMITS["maxCpuFlagLength"] or not _CPU_FLAG.match(flag):
                    errors.append(f"cpu.flags[{i}]: must be a /proc/cpuinfo flag name, got {f!r}")
        if "x86Level" in cpu:
            level = cpu["x86Level"]
            if level not in (1, 2, 3, 4) or isinstance(level, bool):
                errors.append(f"cpu.x86Level: must be 1, 2, 3 or 4, got {level!r}")
            elif arch is not None and arch != "x86_64":
                errors.append(f"cpu.x86Level: applies to x86_64 only, but arch is {arch}")

    torch = _object(fp, "torch", errors)
    if torch is not None:
        version = _string(torch, "version", "torch.version", errors, LIMITS["maxVersionLength"], required=True)
        parsed = parse_torch_version(version) if version is not None else None
        if version is not None and parsed is None:
            errors.append(f'torch.version: must be torch.__version__ like "2.13.0+cpu", got {version!r}')
        cuda: str | None = None
        if "cuda" not in torch:
            errors.append("torch.cuda: is required (torch.version.cuda; null for CPU builds)")
        elif torch["cuda"] is not None:
            raw = _string(torch, "cuda", "torch.cuda", errors, LIMITS["maxVersionLength"], required=True)
            cuda = cuda_major_minor(raw) if raw is not None else None
            if raw is not None and cuda is None:
                errors.append(f'torch.cuda: must be a CUDA version like "12.8", got {raw!r}')
        if parsed is not None and "cuda" in torch:
            if parsed.cuda is not None and cuda != parsed.cuda:
                errors.append(f"torch.cuda: is {cuda}, but torch.version {version!r} is a CUDA {parsed.cuda} build")
            elif parsed.local == "cpu" and torch["cuda"] is not None:
                errors.append(f"torch.cuda: is {torch['cuda']}, but torch.version {version!r} is a CPU build")

    gpus = fp.get("gpus")
    if not isinstance(gpus, list):
        errors.append(f"gpus: must be an array (empty when the device has no CUDA GPU), got {gpus!r}")
    elif len(gpus) > LIMITS["maxGpus"]:
        errors.append(f"gpus: must have at most {LIMITS['maxGpus']} entries, got {len(gpus)}")
    else:
        for i, g in enumerate(gpus):
            if not isinstance(g, dict):
                errors.append(f"gpus[{i}]: must be an object, got {g!r}")
                continue
            _string(g, "name", f"gpus[{i}].name", errors, LIMITS["maxNameLength"], required=True)
            cc = _string(g, "computeCapability", f"gpus[{i}].computeCapability", errors, 64, required=True)
            if cc is not None and normalize_compute_capability(cc) is None:
                errors.append(f'gpus[{i}].computeCapability: must be "major.minor" like "9.0", got {cc!r}')
            _string(g, "driverVersion", f"gpus[{i}].driverVersion", errors, LIMITS["maxVersionLength"], required=False)
    _string(fp, "hostname", "hostname", errors, LIMITS["maxHostnameLength"], required=False)
    return errors
