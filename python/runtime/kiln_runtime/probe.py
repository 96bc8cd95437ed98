"""This host's fingerprint (docs/fingerprint.md, schemaVersion 1).

torch is imported lazily: without it the fingerprint still has the OS, libc, libstdc++ and CPU, and
`torch` is None (which the resolver refuses: no artifact or portable graph can run without torch).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import mmap
import os
import platform
import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

from .fingerprint import ARCH_ALIASES, SCHEMA_VERSION
from .versions import compare_dotted, cuda_major_minor, parse_dotted
from .x86_levels import X86_LEVEL_CAP_ENV, cap_x86_flags, x86_level_cap_from_env, x86_level_from_flags

_GLIBCXX = re.compile(rb"GLIBCXX_(\d+(?:\.\d+)+)")
_MUSL_VERSION = re.compile(r"Version\s+(\d+(?:\.\d+)+)")


def probe_os() -> str:
    return platform.system().lower()


def probe_arch() -> str:
    machine = platform.machine()
    return ARCH_ALIASES.get(machine.lower(), machine.lower())


def probe_libc() -> dict[str, str | None]:
    """glibc and its version from confstr (or gnu_get_libc_version); musl from its loader; else unknown."""
    if platform.system() != "Linux":
        return {"name": "unknown", "version": None}
    try:
        value = os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36"
    except (ValueError, OSError, AttributeError):
        value = None
    if value and value.startswith("glibc "):
        return {"name": "glibc", "version": value.split(" ", 1)[1].strip()}
    try:
        fn = ctypes.CDLL(None).gnu_get_libc_version
        fn.restype = ctypes.c_char_p
        return {"name": "glibc", "version": fn().decode()}
    except (OSError, AttributeError):
        pass
    for loader in sorted(glob.glob("/lib/ld-musl-*.so.1")):
        try:
            # Run with no arguments, musl's loader prints its usage and "Version 1.2.4" to stderr.
            out = subprocess.run([loader], capture_output=True, text=True, timeout=5, check=False)
        except (OSError, subprocess.SubprocessError):
            return {"name": "musl", "version": None}
        m = _MUSL_VERSION.search(out.stderr + out.stdout)
        return {"name": "musl", "version": m.group(1) if m else None}
    return {"name": "unknown", "version": None}


def loaded_libstdcxx() -> str | None:
    """Path of the libstdc++ mapped into this process (the one torch uses), via /proc/self/maps."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            for line in f:
                path = line.rstrip("\n").split(maxsplit=5)[-1]
                if "/libstdc++.so" in path and os.path.isfile(path):
                    return path
    except OSError:
        pass
    return None


def max_glibcxx(path: str) -> str | None:
    """The numerically highest GLIBCXX_x.y.z version string defined in a libstdc++ file."""
    best: list[int] | None = None
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            for m in _GLIBCXX.finditer(data):
                parts = parse_dotted(m.group(1).decode())
                if parts is not None and (best is None or compare_dotted(parts, best) > 0):
                    best = parts
    except (OSError, ValueError):
        return None
    return ".".join(map(str, best)) if best is not None else None


def probe_libstdcxx(torch_imported: bool) -> dict[str, str | None]:
    path = loaded_libstdcxx()
    if path is None and not torch_imported:
        # No torch: load the system's libstdc++ the way torch would, then look where it was mapped from.
        name = ctypes.util.find_library("stdc++") or "libstdc++.so.6"
        try:
            ctypes.CDLL(name)
            path = loaded_libstdcxx()
        except OSError:
            path = None
    return {"glibcxx": max_glibcxx(path) if path else None}


def read_cpuinfo(text: str) -> dict[str, Any]:
    """Model name and flags of the first processor of a /proc/cpuinfo text (`Features` on arm64)."""
    model: str | None = None
    flags: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            if flags:
                break  # end of the first processor's block
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and model is None and value.strip():
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = sorted({f.lower() for f in value.split()})
    cpu: dict[str, Any] = {"flags": flags}
    if model:
        cpu["model"] = model[:256]
    return cpu


def probe_cpu(arch: str) -> dict[str, Any]:
    try:
        cpu = read_cpuinfo(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        cpu = {"flags": []}
        if platform.processor():
            cpu["model"] = platform.processor()[:256]
    if arch == "x86_64" and cpu["flags"]:
        # KILN_X86_LEVEL_CAP makes this host report itself as an older CPU (for testing what such a device gets).
        cap = x86_level_cap_from_env(os.environ.get(X86_LEVEL_CAP_ENV))
        if cap is not None:
            cpu["flags"] = cap_x86_flags(cpu["flags"], cap)
        cpu["x86Level"] = x86_level_from_flags(cpu["flags"])
    return cpu


def nvidia_driver_version() -> str | None:
    """The NVIDIA driver version via NVML (what nvidia-smi reads), else nvidia-smi; None when neither works."""
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
        if nvml.nvmlInit_v2() == 0:
            try:
                buf = ctypes.create_string_buffer(96)
                if nvml.nvmlSystemGetDriverVersion(buf, ctypes.c_uint(len(buf))) == 0:
                    return buf.value.decode() or None
            finally:
                nvml.nvmlShutdown()
    except (OSError, AttributeError):
        pass
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            first = out.stdout.strip().splitlines()
            return first[0].strip() if out.returncode == 0 and first and first[0].strip() else None
        except (OSError, subprocess.SubprocessError):
            return None
    return None


def probe_torch() -> tuple[dict[str, Any] | None, list[dict[str, str]]]:
    """torch.__version__ / torch.version.cuda and the CUDA GPUs torch sees; (None, []) without torch."""
    try:
        import torch
    except ImportError:
        return None, []
    cuda_raw = getattr(torch.version, "cuda", None)
    cuda = cuda_major_minor(cuda_raw) if cuda_raw else None
    info = {"version": str(torch.__version__), "cuda": cuda}
    gpus: list[dict[str, str]] = []
    if cuda and torch.cuda.is_available():
        driver = nvidia_driver_version()
        for i in range(torch.cuda.device_count()):
            gpu = {
                "name": torch.cuda.get_device_name(i),
                "computeCapability": "{}.{}".format(*torch.cuda.get_device_capability(i)),
            }
            if driver:
                gpu["driverVersion"] = driver
            gpus.append(gpu)
    return info, gpus


def probe_fingerprint(*, with_torch: bool = True, hostname: bool = True) -> dict[str, Any]:
    """This host's fingerprint. With torch missing (or with_torch=False), `torch` is None and `gpus` empty."""
    arch = probe_arch()
    torch_info, gpus = probe_torch() if with_torch else (None, [])
    fp: dict[str, Any] = {
        "schemaVersion": SCHEMA_VERSION,
        "os": probe_os(),
        "arch": arch,
        "libc": probe_libc(),
        "libstdcxx": probe_libstdcxx(torch_imported=torch_info is not None),
        "cpu": probe_cpu(arch),
        "torch": torch_info,
        "gpus": gpus,
    }
    if hostname:
        name = socket.gethostname()
        if name:
            fp["hostname"] = name[:253]
    return fp
