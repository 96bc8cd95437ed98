"""The machine an artifact's code is for, read from the code's headers before loading (issue 13, item 5)."""

from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from kiln_runtime import KilnClient, load
from kiln_runtime.errors import ErrorCode, IncompatibleArtifactError
from kiln_runtime.machine_code import check_code_machine, code_target, host_machine
from kiln_runtime.probe import probe_fingerprint

from .conftest import Compiled, FakeKiln, SigningKey, publish_artifact
from .test_loader import FAST


def elf(machine: int, *, bits: int = 64, little: bool = True) -> bytes:
    head = bytearray(64)
    head[:4] = b"\x7fELF"
    head[4] = 2 if bits == 64 else 1
    head[5] = 1 if little else 2
    head[18:20] = machine.to_bytes(2, "little" if little else "big")
    return bytes(head)


def pe(machine: int, offset: int = 0x80) -> bytes:
    head = bytearray(offset + 24)
    head[:2] = b"MZ"
    head[0x3C:0x40] = offset.to_bytes(4, "little")
    head[offset : offset + 4] = b"PE\0\0"
    head[offset + 4 : offset + 6] = machine.to_bytes(2, "little")
    return bytes(head)


@pytest.mark.parametrize(
    ("header", "target"),
    [
        (elf(62), ("linux", "x86_64")),
        (elf(183), ("linux", "aarch64")),
        (elf(243), ("linux", "riscv64")),
        (elf(3, bits=32), ("linux", "i686")),
        (elf(62, bits=32), ("linux", "x86_64 (32-bit ELF)")),
        (elf(21, little=False), ("linux", "ppc64")),
        (elf(21), ("linux", "ppc64le")),
        (elf(9999), ("linux", "ELF machine 9999")),
        (pe(0x8664), ("windows", "x86_64")),
        (pe(0xAA64), ("windows", "aarch64")),
        (pe(0x1234), ("windows", "PE machine 0x1234")),
        (b"MZ" + bytes(62), ("windows", "unknown (PE header past the first 4 KiB)")),
        (b"#!/bin/sh\n", None),
        (b"", None),
    ],
)
def test_the_code_format_and_machine_come_from_the_header(header: bytes, target: tuple[str, str] | None) -> None:
    assert code_target(header) == target


@pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason=f"sys.executable is ELF on Linux only (PE on Windows, Mach-O on macOS); this is {sys.platform}",
)
def test_this_interpreter_is_code_for_this_host() -> None:
    with open(sys.executable, "rb") as f:
        assert code_target(f.read(64)) == ("linux", host_machine())


def with_code_header(package: Path, dest: Path, header: bytes) -> Path:
    """A copy of `package` whose shared objects start with `header` (the rest of their bytes as compiled)."""
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith(".so"):
                data = header + data[len(header) :]
            out.writestr(info, data)
    return dest


def test_a_package_is_checked_against_the_host_it_would_load_on(compiled: Compiled, tmp_path: Path) -> None:
    check_code_machine(compiled.package)  # built here, for here
    other = "aarch64" if host_machine() != "aarch64" else "x86_64"
    with pytest.raises(IncompatibleArtifactError) as err:
        check_code_machine(compiled.package, machine=other)
    assert err.value.code == ErrorCode.INCOMPATIBLE_ARTIFACT
    assert f"Linux (ELF) code for {host_machine()}; this host is linux on {other}" in err.value.message
    with pytest.raises(IncompatibleArtifactError, match="this host is windows on"):
        check_code_machine(compiled.package, system="Windows")
    not_code = with_code_header(compiled.package, tmp_path / "text.pt2", b"not a shared object")
    with pytest.raises(IncompatibleArtifactError, match="neither ELF nor PE"):
        check_code_machine(not_code)


@pytest.mark.parametrize(
    "case",
    [
        (elf(183), "for aarch64"),
        (pe(0x8664), "a Windows DLL for x86_64"),
    ],
    ids=["aarch64-elf", "windows-dll"],
)
def test_a_signed_artifact_with_another_machines_code_is_refused_before_loading(
    fake_kiln: FakeKiln,
    compiled: Compiled,
    signing_key: SigningKey,
    tmp_path: Path,
    case: tuple[bytes, str],
) -> None:
    """The manifest says linux/x86_64 (signed, its needs pass on this host) but the code is another machine's: the
    loader refuses with that reason, not dlopen's "cannot open shared object file"; with fallback the portable graph
    runs instead."""
    header, says = case
    if host_machine() == "aarch64" and header[:4] == b"\x7fELF":
        header = elf(62)
        says = "for x86_64"
    bad = tmp_path / "other-machine"
    bad.mkdir()
    package = with_code_header(compiled.package, bad / "package.pt2", header)
    shutil.copy(compiled.portable, bad / "portable.pt2")
    publish_artifact(fake_kiln, Compiled(bad / "portable.pt2", package, bad / "parts"), signing_key)
    client = KilnClient(
        fake_kiln.url, fake_kiln.token, cache=tmp_path / "cache", retry=FAST, pinned_keys="", trust_on_first_use=True
    )
    res = client.resolve("tiny-mlp", fingerprint=probe_fingerprint())
    with pytest.raises(IncompatibleArtifactError) as err:
        load(res, client)
    assert says in err.value.message and "Nothing was loaded" in err.value.message
    with load(res, client, fallback=True) as m:
        assert m.kind == "portable" and m.fallback_error is not None
        assert m.fallback_error.code == ErrorCode.INCOMPATIBLE_ARTIFACT
