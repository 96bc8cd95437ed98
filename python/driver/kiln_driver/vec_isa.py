"""Inductor's vector-ISA check, once per worker and toolchain instead of once per build.

Before it generates CPU code, inductor decides which vector ISAs (avx512, avx2, ...) it may use: each one the CPU
lists in /proc/cpuinfo is compiled (a program that includes ATen's vector headers) and loaded in a subprocess. In a
fresh inductor cache, which every sandboxed build has, that is three C++ compiles per build: 5-7 s of a 25 s MLP
build on a 2-vCPU host (bench/README.md, "Compile overhead"). The answer depends only on the compiler and the CPU,
the same for every build of a worker, so the worker asks once, inside the build sandbox, with the compiler its
builds use (`python -m kiln_driver vec-isa --cxx PATH`), and passes the answer in each job (`vecIsa`).

A job whose answer says every ISA the CPU lists compiled and loaded with the job's own compiler sets inductor's
`cpp.vec_isa_ok`: inductor then takes the CPU's list as valid without compiling, which is what its check would have
concluded. In any other case (another compiler, another CPU list, an ISA that failed, no answer yet) the build runs
inductor's check as before. Nothing else changes: the extra checks inductor makes under `cpp.vec_isa_ok` too
(avx512-bf16, avx512-vnni, amx) still run in the build, and Kiln's own ISA check reads the machine code afterwards.
"""

from __future__ import annotations

import platform
from typing import Any, TypedDict


class VecIsaAnswer(TypedDict):
    cxx: str  # the compiler the check compiled with (an absolute path)
    listed: list[str]  # the ISAs the CPU lists, as inductor names them ("avx512", "avx2")
    valid: list[str]  # those of them that compiled and loaded


def listed_isas() -> list[str] | None:
    """The vector ISAs inductor would check on this CPU, without checking them; None off x86 (not handled here)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return None
    from torch._inductor.cpu_vec_isa import supported_vec_isa_list, x86_isa_checker

    flags = x86_isa_checker()
    return [str(isa) for isa in supported_vec_isa_list if all(f in flags for f in str(isa).split())]


def check(cxx: str) -> VecIsaAnswer | None:
    """Inductor's own check (compile and load, per ISA) with `cxx`, as a build runs it with a fresh cache."""
    listed = listed_isas()
    if listed is None:
        return None
    import torch._inductor.config as inductor_config
    from torch._inductor.cpu_vec_isa import valid_vec_isa_list

    inductor_config.cpp.cxx = (cxx,)
    inductor_config.cpp.vec_isa_ok = None
    try:
        valid = [str(isa) for isa in valid_vec_isa_list()]
    except Exception:  # noqa: BLE001 - no usable compiler (InvalidCxxCompiler): nothing compiled, nothing is valid
        valid = []
    return {"cxx": cxx, "listed": listed, "valid": valid}


def may_skip_check(answer: VecIsaAnswer | None, compiler_path: str) -> tuple[bool, str]:
    """Whether this build may set `cpp.vec_isa_ok` on the worker's answer, and why (for the log)."""
    if answer is None:
        return False, "the worker has no answer of its vector-ISA check yet"
    if answer["cxx"] != compiler_path:
        return False, f"the worker checked with {answer['cxx']}, this build compiles with {compiler_path}"
    listed = listed_isas()
    if listed is None:
        return False, f"not an x86 host ({platform.machine()})"
    if sorted(listed) != sorted(answer["listed"]):
        return False, f"this CPU lists {listed}, the worker's check saw {answer['listed']}"
    if sorted(answer["valid"]) != sorted(listed):
        failed = sorted(set(listed) - set(answer["valid"]))
        return False, f"the worker's check failed for {failed}: inductor checks again"
    return True, f"{', '.join(listed)} compiled and loaded with {compiler_path} in the worker's check"


def apply(configs: dict[str, Any], answer: VecIsaAnswer | None, compiler_path: str) -> str:
    """Sets `cpp.vec_isa_ok` in `configs` when the worker's answer covers this build; returns the log line."""
    skip, why = may_skip_check(answer, compiler_path)
    if skip:
        configs["cpp.vec_isa_ok"] = True
        return f"vector ISA check done once by this worker ({why}): not repeated"
    return f"vector ISA check runs in this build ({why})"
