"""Which machine an artifact's compiled code is for, read from the code itself before anything is loaded.

The signed manifest's `requires` (os, arch) is checked first (needs.py); this reads the headers of the shared
objects in the assembled package as well, so that code of another machine type is refused with a reason that says
so, whatever a manifest claims: dlopen of an aarch64 `.so` on x86_64 fails with "cannot open shared object file"
or "wrong ELF class", which sends people looking for a missing file. Formats (headers only):

- ELF (Linux): `\\x7fELF`, EI_CLASS (byte 4: 1 = 32-bit, 2 = 64-bit), EI_DATA (byte 5: 1 = little endian), e_machine
  (bytes 18-19, in that byte order).
- PE (Windows DLL): `MZ`, e_lfanew (u32 LE at 0x3c) -> `PE\\0\\0`, then the COFF Machine (u16 LE).
"""

from __future__ import annotations

import platform
import zipfile
from pathlib import Path

from .errors import IncompatibleArtifactError

# e_machine -> the machine name platform.machine() gives on Linux.
ELF_MACHINES = {3: "i686", 8: "mips", 20: "ppc", 21: "ppc64le", 22: "s390x", 40: "arm", 62: "x86_64", 183: "aarch64"}
ELF_MACHINES_64 = {**ELF_MACHINES, 243: "riscv64"}
PE_MACHINES = {0x14C: "i686", 0x8664: "x86_64", 0xAA64: "aarch64", 0x1C4: "arm"}
HEADER_BYTES = 4096
# What platform.machine() says on other systems for the same machines.
_HOST_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "i386": "i686", "x86": "i686"}
_CODE_SUFFIXES = (".so", ".dll", ".pyd", ".dylib")


def host_machine(machine: str | None = None) -> str:
    m = (machine if machine is not None else platform.machine()).lower()
    return _HOST_ALIASES.get(m, m)


def host_os(system: str | None = None) -> str:
    return (system if system is not None else platform.system()).lower()


def code_target(header: bytes) -> tuple[str, str] | None:
    """(os, machine) of a shared object from its first bytes: ("linux", "aarch64"), ("windows", "x86_64"); an
    unknown machine number is named by its number; None when it is neither ELF nor PE."""
    if header[:4] == b"\x7fELF" and len(header) >= 20:
        if header[5] not in (1, 2):
            return ("linux", f"ELF with byte order {header[5]}")
        number = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
        names = ELF_MACHINES_64 if header[4] == 2 else ELF_MACHINES
        name = names.get(number, f"ELF machine {number}")
        if header[4] == 1 and name in ("x86_64", "aarch64"):
            name += " (32-bit ELF)"
        if name == "ppc64le" and header[5] != 1:
            name = "ppc64"
        return ("linux", name)
    if header[:2] == b"MZ" and len(header) >= 0x40:
        offset = int.from_bytes(header[0x3C:0x40], "little")
        if offset + 6 <= len(header) and header[offset : offset + 4] == b"PE\0\0":
            number = int.from_bytes(header[offset + 4 : offset + 6], "little")
            return ("windows", PE_MACHINES.get(number, f"PE machine 0x{number:04x}"))
        return ("windows", "unknown (PE header past the first 4 KiB)")
    return None


def check_code_machine(package: Path, *, machine: str | None = None, system: str | None = None) -> None:
    """Refuses (IncompatibleArtifactError, nothing loaded) a package whose compiled code is for another OS or
    machine than this host (or the `machine`/`system` given)."""
    want = (host_os(system), host_machine(machine))
    reasons: list[str] = []
    with zipfile.ZipFile(package) as z:
        for info in z.infolist():
            if info.is_dir() or not info.filename.lower().endswith(_CODE_SUFFIXES):
                continue
            with z.open(info) as f:
                found = code_target(f.read(HEADER_BYTES))
            name = info.filename.rsplit("/", 1)[-1]
            if found is None:
                reasons.append(f"{name} is not a shared object of any known format (neither ELF nor PE)")
            elif found != want:
                fmt = "a Windows DLL" if found[0] == "windows" else "Linux (ELF) code"
                reasons.append(f"{name} is {fmt} for {found[1]}; this host is {want[0]} on {want[1]}")
    if reasons:
        raise IncompatibleArtifactError(
            "the artifact's compiled code is for another machine: " + "; ".join(reasons) + ". Nothing was loaded.",
            reasons,
        )
