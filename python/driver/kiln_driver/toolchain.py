"""Is this worker able to build the recipe? Installed torch, the pinned C++ compiler, objdump, the hardware.

A mismatch is TOOLCHAIN_MISMATCH (exit 1): another worker may have the right toolchain, so it is retryable.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from kiln_runtime.x86_levels import x86_level_from_flags

from .errors import DriverError, ErrorCode
from .isa import objdump_for
from .job import Job
from .progress import log


class BuildGpu(TypedDict):
    name: str
    computeCapability: str
    driverVersion: str | None
    cudaDriverVersion: str | None
    cudaRuntime: str | None
    visibleDevices: int
    cudaVisibleDevices: str | None


_NVIDIA_PROC_VERSION = Path("/proc/driver/nvidia/version")
_KERNEL_MODULE_VERSION = re.compile(r"Kernel Module\b.*?\s(\d+\.\d+(?:\.\d+)?)\s")


def nvidia_kernel_driver_version(path: Path = _NVIDIA_PROC_VERSION) -> str | None:
    """'580.159.04' from /proc/driver/nvidia/version (readable inside the sandbox; no nvidia-smi needed)."""
    try:
        m = _KERNEL_MODULE_VERSION.search(path.read_text(errors="replace"))
    except OSError:
        return None
    return m.group(1) if m else None


def cuda_driver_api_version() -> str | None:
    """The CUDA version the installed driver supports (cuDriverGetVersion: 13000 -> '13.0')."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
        version = ctypes.c_int(0)
        if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return f"{version.value // 1000}.{(version.value % 1000) // 10}"


def build_gpu() -> BuildGpu:
    """The GPU this build compiles for (device 0 of what the job may see: the worker pins one per job)."""
    import torch

    major, minor = torch.cuda.get_device_capability(0)
    return {
        "name": torch.cuda.get_device_name(0),
        "computeCapability": f"{major}.{minor}",
        "driverVersion": nvidia_kernel_driver_version(),
        "cudaDriverVersion": cuda_driver_api_version(),
        "cudaRuntime": torch.version.cuda,
        "visibleDevices": torch.cuda.device_count(),
        "cudaVisibleDevices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


@dataclass(frozen=True)
class Compiler:
    path: str
    version: str


def _mismatch(message: str, **details: object) -> DriverError:
    return DriverError(ErrorCode.TOOLCHAIN_MISMATCH, message, dict(details))


def host_x86_level(cpuinfo: Path = Path("/proc/cpuinfo")) -> int | None:
    if platform.machine() != "x86_64":
        return None
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return x86_level_from_flags(set(line.split(":", 1)[1].split()))
    except OSError:
        return None
    return None


def resolve_compiler(cxx: str) -> Compiler:
    path = shutil.which(cxx)
    if path is None:
        raise _mismatch(f"C++ compiler {cxx!r} is not installed on this worker", cxx=cxx)
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise _mismatch(f"C++ compiler {path} does not run: {exc}", cxx=cxx, path=path) from exc
    return Compiler(path=path, version=(out.strip().splitlines() or ["unknown"])[0])


def check_toolchain(job: Job) -> Compiler:
    """Checks everything this job needs from the worker; returns the resolved compiler."""
    import torch

    recipe = job["recipe"]
    want = recipe["toolchain"]["torch"]
    if torch.__version__ != want:
        raise _mismatch(
            f"the recipe needs torch {want}, this worker has {torch.__version__}", want=want, have=torch.__version__
        )
    compiler = resolve_compiler(recipe["toolchain"]["cxx"])
    cross = recipe.get("cross")
    objdump = objdump_for(cross["arch"] if cross else platform.machine())
    if shutil.which(objdump) is None:
        raise _mismatch(f"{objdump} (binutils) is not installed on this worker")

    requires = job["requires"]
    if cross is not None:
        # A cross build: the host builds (its arch is the recipe's buildArch), qemu runs the artifact.
        if cross["buildArch"] != platform.machine() or requires["arch"] != cross["arch"]:
            raise _mismatch(
                f"the recipe cross-builds {cross['arch']} code on {cross['buildArch']} hosts, "
                f"this worker is {platform.machine()}"
            )
    elif requires["arch"] != platform.machine() or requires["os"] != platform.system().lower():
        raise _mismatch(
            f"the target is {requires['os']}/{requires['arch']}, "
            f"this worker is {platform.system()}/{platform.machine()}"
        )
    need_level = requires.get("x86Level")
    if need_level is not None:
        have_level = host_x86_level()
        # Verification runs the artifact here: a host below the target level would die with SIGILL.
        if have_level is None or have_level < need_level:
            raise _mismatch(
                f"the target needs x86-64-v{need_level}, this worker's CPU is v{have_level}",
                want=need_level,
                have=have_level,
            )
    if recipe["device"] == "cuda":
        if not torch.cuda.is_available():
            raise _mismatch("the recipe builds for CUDA and this worker has no usable GPU")
        want_cc = requires.get("computeCapability")
        major, minor = torch.cuda.get_device_capability()
        if want_cc is not None and want_cc != f"{major}.{minor}":
            # Triton compiles for the build GPU: an sm_90a artifact only runs on compute capability 9.0.
            raise _mismatch(f"the target needs compute capability {want_cc}, this GPU is {major}.{minor}")
    log.info("toolchain: torch %s, %s (%s)", torch.__version__, compiler.path, compiler.version)
    return compiler
