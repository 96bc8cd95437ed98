"""linux-aarch64: cross-built on this x86 host, verified under qemu-aarch64 with the aarch64 torch (cross.py).

The real cross builds, verified under qemu, run once through the whole stack in test/cross-aarch64.e2e-spec.ts
(the MLP and the transformer: manifest, machine code, metadata, resolve, the device runtime under qemu) and in
bench/cross_aarch64.py; here: the parts of the driver on their own, and the refusal of a toolchain that does not
match the recipe, which needs the toolchain `scripts/setup.sh --cross` installs (npm test installs it and sets
KILN_REQUIRE_CROSS=1, so a missing toolchain fails there instead of skipping).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, make_job, run_driver

from kiln_driver.cross_cxx import rewrite
from kiln_driver.errors import DriverError
from kiln_driver.isa import scan_aarch64_disassembly
from kiln_driver.job import parse_job

# KILN_HOME as scripts/lib/env.sh exports it: relative to the repository (".kiln" by default).
TOOLCHAIN = (REPO / os.environ.get("KILN_HOME", ".kiln")).resolve() / "toolchains" / "linux-aarch64"
AARCH64_TORCH = "2.13.0+cu130"
CROSS = {
    "arch": "aarch64",
    "buildArch": "x86_64",
    "toolchainName": "linux-aarch64",
    "targetTorch": AARCH64_TORCH,
    "vecIsa": "neon",
    "emulatedCpu": "neoverse-n1",
}


def installed_toolchain() -> dict[str, Any]:
    """The toolchain as the worker passes it (its toolchain.json), or a skip/failure when it is not installed."""
    path = TOOLCHAIN / "toolchain.json"
    if not path.exists():
        why = f"the linux-aarch64 toolchain is not installed ({path} missing): scripts/setup.sh --cross"
        if os.environ.get("KILN_REQUIRE_CROSS") == "1":
            pytest.fail(why)
        pytest.skip(why)
    tc = json.loads(path.read_text(encoding="utf-8"))
    return {"root": str(TOOLCHAIN), **{k: tc[k] for k in ("site", "sysroot", "python", "qemu", "torch")}}


def cross_job(toolchain: dict[str, Any] | None, **recipe_changes: Any) -> dict[str, Any]:
    """The job the worker writes for linux-aarch64 (libs/targets/src/catalog.ts)."""
    job = make_job(3)
    recipe = job["recipe"]
    recipe.update(
        targetId="linux-aarch64",
        toolchain={"torch": recipe["toolchain"]["torch"], "cxx": "aarch64-linux-gnu-g++"},
        cross=dict(CROSS),
        forbiddenRegisters=["sve"],
    )
    recipe["inductorConfigs"].update({"cpp.march": "armv8-a", "cpp.simdlen": 128})
    recipe.update(recipe_changes)
    job["targetId"] = "linux-aarch64"
    job["requires"] = {"os": "linux", "arch": "aarch64", "x86Level": None, "computeCapability": None}
    if toolchain is not None:
        job["crossToolchain"] = toolchain
    return job


# ------------------------------------------------------------------------------------------------ units


def test_the_compiler_wrapper_drops_x86_flags_and_swaps_the_torch_folders() -> None:
    host_torch = "/venv/lib/python3.11/site-packages/torch"
    site = "/tc/site"
    args = [
        "k.cpp",
        "-march=native",
        "-mavx2",
        "-mfma",
        "-mavx512f",
        "-march=armv8-a",
        f"-I{host_torch}/include",
        "-L/venv/lib",
        "-L/usr/lib/x86_64-linux-gnu",
        f"-L{host_torch}/lib",
        "-ltorch",
        "-shared",
        "-o",
        "k.so",
    ]
    out = rewrite(args, host_torch, site, ["/venv", "/usr"])
    assert "-march=native" not in out and not any(a.startswith(("-mavx", "-mfma")) for a in out)
    assert "-march=armv8-a" in out
    assert f"-I{site}/torch/include" in out and f"-L{site}/torch/lib" in out
    assert "-L/venv/lib" not in out and "-L/usr/lib/x86_64-linux-gnu" not in out
    assert f"-Wl,-rpath-link,{site}/torch/lib" in out
    compile_only = rewrite(["-c", "k.cpp", "-mavx2"], host_torch, site, ["/venv"])
    assert compile_only == ["-c", "k.cpp"]


def test_the_aarch64_isa_scan_counts_neon_and_sve_operands() -> None:
    lines = [
        "    1000:\tfmax\tv0.4s, v0.4s, v1.4s",
        "    1004:\tldr\tq1, [x0, #16]",
        "    1008:\tadd\tx0, x0, #0x1",
        "    100c:\tld1w\t{z0.s}, p0/z, [x0]",
        "0000000000001000 <kernel>:",
    ]
    assert scan_aarch64_disassembly(lines) == {"neon": 4, "sve": 2}


def test_a_cross_job_is_parsed_and_its_toolchain_checked() -> None:
    tc = {"root": "/t", "site": "/t/site", "sysroot": "/t/s", "python": "/t/s/py", "qemu": "/usr/bin/q", "torch": "x"}
    assert parse_job(cross_job(tc))["recipe"]["cross"]["arch"] == "aarch64"
    with pytest.raises(DriverError, match=r"crossToolchain\.site must be an absolute path"):
        parse_job(cross_job({**tc, "site": "site"}))
    bad = cross_job(tc)
    bad["recipe"]["cross"]["arch"] = "riscv64"
    with pytest.raises(DriverError, match=r"differs from requires\.arch"):
        parse_job(bad)


# ------------------------------------------------------------------------------------------------ the toolchain


def test_a_toolchain_with_another_aarch64_torch_is_refused(fixtures: Path, tmp_path: Path) -> None:
    tc = installed_toolchain()
    run = run_driver(fixtures / "mlp.pt2", cross_job({**tc, "torch": "2.12.0+cu128"}), tmp_path)
    assert run.error["code"] == "TOOLCHAIN_MISMATCH"
    assert "2.13.0+cu130" in run.error["message"] and "2.12.0+cu128" in run.error["message"]
