"""The compiler inductor runs in a cross build (cross.py): the cross compiler, with inductor's host arguments fixed.

Inductor builds its command line for the machine it runs on: x86 flags (-mavx2, -mfma, -march=native), the x86
torch's include and library folders, the host Python's library folder. This wrapper drops the x86 flags, swaps the
x86 torch folder for the target architecture's torch (same release, other headers: ATen/Config.h differs), drops the
host Python's -L, and when linking lets the linker find the target torch's own dependencies (-rpath-link). The
environment names the folders (cross.configure); nothing else of the command changes.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .cross import ENV_HOST_PREFIXES, ENV_HOST_TORCH, ENV_REAL_CXX, ENV_TARGET_SITE

# Flags for the build host's CPU: never meaningful for the target (the recipe's -march comes as -march=armv8-a).
DROPPED_PREFIXES = ("-mavx", "-mamx", "-mfma", "-mf16c", "-mno-avx", "-mbmi", "-mlzcnt", "-mpopcnt", "-msse")
DROPPED = {"-march=native", "-mtune=native"}


def rewrite(args: Sequence[str], host_torch: str, target_site: str, host_prefixes: Sequence[str]) -> list[str]:
    """The cross compiler's arguments for inductor's `args`."""
    target_torch = str(Path(target_site) / "torch")
    out: list[str] = []
    for arg in args:
        if arg in DROPPED or arg.startswith(DROPPED_PREFIXES):
            continue
        swapped = arg.replace(host_torch, target_torch)  # before the next check: the x86 torch lives in the venv
        if swapped.startswith("-L") and any(swapped[2:].startswith(p) for p in host_prefixes):
            continue
        out.append(swapped)
    if "-shared" in out:
        # The target torch's libraries need their own (libtorch_cpu needs libcudart in PyPI's aarch64 build): the
        # linker must find them to check the link, though the artifact does not link them directly.
        lib_dirs = [Path(target_torch) / "lib", *sorted(Path(target_site).glob("nvidia/*/lib"))]
        out += [f"-Wl,-rpath-link,{d}" for d in lib_dirs]
    return out


def main(argv: Sequence[str]) -> int:
    try:
        real = os.environ[ENV_REAL_CXX]
        host_torch = os.environ[ENV_HOST_TORCH]
        target_site = os.environ[ENV_TARGET_SITE]
        host_prefixes = json.loads(os.environ.get(ENV_HOST_PREFIXES, "[]"))
    except (KeyError, ValueError) as exc:
        print(f"kiln cross compiler wrapper: its environment is incomplete ({exc})", file=sys.stderr)
        return 2
    args = list(argv)
    if args in (["--version"], ["-v"], ["-dumpversion"], ["-dumpfullversion"]):
        return subprocess.run([real, *args], check=False).returncode
    command = [real, *rewrite(args, host_torch, target_site, host_prefixes)]
    returncode = subprocess.run(command, check=False).returncode
    if returncode != 0:  # inductor reports stderr: say what actually ran
        print(f"kiln cross compiler wrapper ran: {shlex.join(command)}", file=sys.stderr)
    return returncode
