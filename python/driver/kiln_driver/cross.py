"""Cross builds: inductor on the x86 build host generating and compiling code for another machine (aarch64).

Inductor compiles for its own host only; four private switches make it build for an aarch64 device instead
(docs/cross-targets.md, measured with torch 2.13.0; a cross build plus an emulated run is tested on every toolchain
upgrade, because these are inductor internals):

1. the vector ISA: inductor picks it from the ISAs its check found valid on the host (AVX2, AVX-512). A cross build
   forces the target's (NEON) and sets `cpp.vec_isa_ok`, since the check compiles and dlopens probe code, which an
   x86 host cannot do for aarch64;
2. the compiler: `cpp.cxx` is a wrapper (`kiln_driver.cross_cxx`) around the cross compiler that drops the x86
   flags inductor adds and swaps the x86 torch's headers and libraries for the aarch64 wheel's (ATen/Config.h
   differs);
3. `cpp.march` comes from the recipe (armv8-a), never -march=native;
4. the package's metadata says AOTI_MACHINE=aarch64 (inductor writes the build host's `platform.machine()`).

The toolchain (the aarch64 torch, the sysroot qemu runs it in) is installed by `scripts/setup.sh --cross` and shown
to the sandboxed job read-only; the worker names its folders in the job (`crossToolchain`).
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any, TypedDict

from .errors import DriverError, ErrorCode

# What the compiler wrapper reads (set by `configure`, inherited by inductor's compiler subprocesses).
ENV_REAL_CXX = "KILN_CROSS_CXX"
ENV_HOST_TORCH = "KILN_CROSS_HOST_TORCH"
ENV_TARGET_SITE = "KILN_CROSS_TARGET_SITE"
ENV_HOST_PREFIXES = "KILN_CROSS_HOST_PREFIXES"


class CrossRecipe(TypedDict):
    arch: str
    buildArch: str
    toolchainName: str
    targetTorch: str
    vecIsa: str
    emulatedCpu: str


class CrossToolchain(TypedDict):
    """The installed toolchain as the job sees it (paths inside the sandbox)."""

    root: str  # $KILN_HOME/toolchains/<name>
    site: str  # the target architecture's site-packages (torch and what it imports)
    sysroot: str  # a root file system of the target architecture, for qemu -L
    python: str  # the target architecture's python, inside the sysroot
    qemu: str  # qemu-<arch> on the build host
    torch: str  # torch.__version__ of the site's torch (read at install)


def toolchain_of(job: dict[str, Any]) -> CrossToolchain:
    """The job's cross toolchain, checked: a recipe that cross-builds needs one, with the torch the recipe pins."""
    recipe = job["recipe"]
    cross: CrossRecipe = recipe["cross"]
    tc = job.get("crossToolchain")
    if not isinstance(tc, dict):
        raise DriverError(
            ErrorCode.TOOLCHAIN_MISMATCH,
            f"the recipe cross-builds for {cross['arch']} and this worker gave no {cross['toolchainName']} toolchain "
            "(scripts/setup.sh --cross installs it)",
        )
    if tc.get("torch") != cross["targetTorch"]:
        raise DriverError(
            ErrorCode.TOOLCHAIN_MISMATCH,
            f"the recipe links against {cross['arch']} torch {cross['targetTorch']}, the worker's "
            f"{cross['toolchainName']} toolchain has {tc.get('torch')}",
            {"want": cross["targetTorch"], "have": tc.get("torch")},
        )
    missing = [k for k in ("site", "sysroot", "python", "qemu") if not Path(str(tc.get(k, ""))).exists()]
    if missing:
        raise DriverError(
            ErrorCode.TOOLCHAIN_MISMATCH,
            f"the {cross['toolchainName']} toolchain is incomplete on this worker: {missing} not found",
            {"missing": missing},
        )
    return tc  # type: ignore[return-value]


def write_compiler_wrapper(folder: Path) -> Path:
    """An executable that inductor can run as its compiler: this interpreter running `kiln_driver.cross_cxx`."""
    folder.mkdir(parents=True, exist_ok=True)
    wrapper = folder / "kiln-cross-cxx"
    package_root = Path(__file__).resolve().parent.parent
    wrapper.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(package_root)!r})\n"
        "from kiln_driver.cross_cxx import main\n"
        "sys.exit(main(sys.argv[1:]))\n",
        encoding="utf-8",
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return wrapper


def configure(cross: CrossRecipe, toolchain: CrossToolchain, real_cxx: str) -> None:
    """Points inductor (in this process) at the target: its vector ISA, its machine in the metadata, and the
    environment the compiler wrapper reads. Call before compiling; `cpp.cxx` is set by the caller to the wrapper."""
    if cross["vecIsa"] != "neon":
        raise DriverError(ErrorCode.INTERNAL, f"unknown vector ISA {cross['vecIsa']!r} in a cross recipe")
    import torch
    from torch._inductor import codecache, cpu_vec_isa

    neon = cpu_vec_isa.VecNEON()
    cpu_vec_isa.valid_vec_isa_list = lambda: [neon]  # type: ignore[assignment]
    host_information = codecache.get_device_information

    def device_information(device_type: str) -> dict[str, str]:
        info = host_information(device_type)
        info["AOTI_MACHINE"] = cross["arch"]
        return info

    codecache.get_device_information = device_information  # type: ignore[assignment]
    os.environ[ENV_REAL_CXX] = real_cxx
    os.environ[ENV_HOST_TORCH] = str(Path(torch.__file__).resolve().parent)
    os.environ[ENV_TARGET_SITE] = toolchain["site"]
    # The host Python's library folders: inductor links AOT code with -L to them, useless (and x86) for the target.
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    os.environ[ENV_HOST_PREFIXES] = json.dumps(sorted(str(Path(p).resolve()) for p in prefixes))


def emulator_command(cross: CrossRecipe, toolchain: CrossToolchain) -> list[str]:
    """The command prefix that runs the target's python under user-mode emulation, with the sysroot as its root
    for the loader and for every absolute path it opens (qemu -L looks there first: the fake /proc/cpuinfo)."""
    return [toolchain["qemu"], "-cpu", cross["emulatedCpu"], "-L", toolchain["sysroot"], toolchain["python"]]


def emulator_env(toolchain: CrossToolchain, package_roots: list[str]) -> dict[str, str]:
    env = dict(os.environ)
    for key in (ENV_REAL_CXX, ENV_HOST_TORCH, ENV_TARGET_SITE, ENV_HOST_PREFIXES, "PYTHONHOME"):
        env.pop(key, None)
    env["PYTHONPATH"] = os.pathsep.join([*package_roots, toolchain["site"]])
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def describe(cross: CrossRecipe, toolchain: CrossToolchain) -> dict[str, Any]:
    """What the manifest records of the emulated verification."""
    return {
        "emulator": Path(toolchain["qemu"]).name,
        "cpu": cross["emulatedCpu"],
        "arch": cross["arch"],
        "torch": toolchain["torch"],
    }
