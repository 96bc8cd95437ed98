from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kiln_driver.elf_needs import highest, parse_dynamic_symbols, read_needs
from kiln_driver.isa import check_isa, count_registers, required_x86_level, scan_disassembly

SOURCE = r"""
#include <stddef.h>
#include <string.h>
void scale(float *restrict out, const float *restrict in, size_t n, float k) {
    for (size_t i = 0; i < n; ++i) out[i] = in[i] * k + 1.0f;
}
void copy(void *dst, const void *src, size_t n) { memcpy(dst, src, n); }
"""


@pytest.fixture(scope="module")
def shared_objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("so")
    (d / "k.c").write_text(SOURCE)
    built = {}
    for name, flags in {
        "avx512": ["-mavx512f", "-mprefer-vector-width=512"],
        "v2": ["-march=x86-64-v2"],
    }.items():
        out = d / f"{name}.so"
        subprocess.run(["gcc", "-O3", "-shared", "-fPIC", *flags, str(d / "k.c"), "-o", str(out)], check=True)
        built[name] = out
    return built


def test_avx512_build_uses_zmm_and_fails_a_v3_check(shared_objects: dict[str, Path]) -> None:
    result = check_isa([shared_objects["avx512"]], ["zmm"])
    assert result["counts"]["zmm"] > 0
    assert result["passed"] is False and result["forbidden"] == ["zmm"]


def test_v2_build_has_no_wide_registers(shared_objects: dict[str, Path]) -> None:
    result = check_isa([shared_objects["v2"]], ["ymm", "zmm"])
    assert result["counts"]["zmm"] == 0 and result["counts"]["ymm"] == 0
    assert result["counts"]["xmm"] > 0  # SSE is allowed and used
    assert result["passed"] is True


def test_count_registers_on_disassembly_text() -> None:
    lines = [
        "  1130:\tvmovups (%rsi,%rax,1),%zmm0",
        "  1137:\tvfmadd213ps %zmm2,%zmm1,%zmm0",
        "  1140:\tvmovaps %xmm0,%xmm1",
        "  1150:\tvaddps %ymm15,%ymm3,%ymm3",
        "  1160:\ttileloadd (%rax,%rbx,1),%tmm0",
        "  1170:\tcall   1030 <memcpy@plt>   # mentions xmm in a symbol name: memcpy_xmm",
    ]
    assert count_registers(lines) == {"xmm": 2, "ymm": 3, "zmm": 4, "tmm": 1, "k": 0}


def test_avx512_without_zmm_and_bmi_are_evidence() -> None:
    # What GCC emits with -march=native on an AVX-512 host that prefers 256-bit vectors.
    lines = [
        "  10:\tvpternlogd $0x96,%ymm1,%ymm2,%ymm3",
        "  20:\tvmovdqu32 %ymm17,(%rax)",
        "  30:\tvaddps %xmm1,%xmm2,%xmm3{%k1}",
        "  40:\tkmovw  %k1,%eax",
        "  50:\tshlx   %rax,%rdx,%rcx",
        "  60:\tvcvtdq2ps %ymm0,%ymm1",  # AVX, not AVX-512
        "  70:\ttzcnt  %eax,%eax",  # rep bsf: runs anywhere
        "0000000000001139 <kernel_avx512>:",
    ]
    counts, evidence = scan_disassembly(lines)
    assert counts["zmm"] == 0 and counts["k"] == 2
    assert evidence == {"avx512": 4, "v3Scalar": 1}
    assert required_x86_level(counts, evidence, None) == 4


def test_required_level_rules() -> None:
    none = {"avx512": 0, "v3Scalar": 0}
    assert required_x86_level({"zmm": 1}, none, None) == 4
    assert required_x86_level({"ymm": 5, "zmm": 0}, none, None) == 3
    assert required_x86_level({"xmm": 9}, {"avx512": 0, "v3Scalar": 2}, None) == 3
    assert required_x86_level({"xmm": 9}, none, None) is None  # SSE2 is every x86-64 CPU
    assert required_x86_level({"xmm": 9}, none, 2) == 2  # the target's level when the code shows nothing more
    assert required_x86_level({"ymm": 1}, none, 4) == 4  # never below the target's


def test_cpu_target_whose_code_needs_more_fails(shared_objects: dict[str, Path]) -> None:
    result = check_isa([shared_objects["avx512"]], [], target_level=3)
    assert result["requiredX86Level"] == 4 and result["passed"] is False
    gpu_like = check_isa([shared_objects["avx512"]], [], target_level=None)
    assert gpu_like["requiredX86Level"] == 4 and gpu_like["passed"] is True


OBJDUMP_T = """
k.so:     file format elf64-x86-64

DYNAMIC SYMBOL TABLE:
0000000000000000  w   D  *UND*\t0000000000000000  Base        __gmon_start__
0000000000000000      DF *UND*\t0000000000000000 (GLIBC_2.2.5) memcpy
0000000000000000      DF *UND*\t0000000000000000 (GLIBC_2.34)  __libc_start_main
0000000000000000      DF *UND*\t0000000000000000 (GLIBC_2.4)   __stack_chk_fail
0000000000000000      DF *UND*\t0000000000000000  GLIBC_PRIVATE __libc_secure_getenv
0000000000000000      DF *UND*\t0000000000000000 (GLIBCXX_3.4.9) _ZdlPv
0000000000000000      DF *UND*\t0000000000000000 (GLIBCXX_3.4.30) _ZSt28__throw_bad_array_new_lengthv
0000000000000000      DF *UND*\t0000000000000000 (GLIBCXX_3.4.21) _ZNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEE
0000000000000000      DF *UND*\t0000000000000000 (CXXABI_1.3.13) __cxa_throw
"""


def test_parse_dynamic_symbols_is_version_aware() -> None:
    # A string max would say 2.4 > 2.34 and 3.4.9 > 3.4.30.
    assert parse_dynamic_symbols(OBJDUMP_T) == {"glibc": "2.34", "glibcxx": "3.4.30"}


def test_parse_dynamic_symbols_without_versions() -> None:
    assert parse_dynamic_symbols("DYNAMIC SYMBOL TABLE:\n") == {"glibc": None, "glibcxx": None}


def test_highest() -> None:
    assert highest(["2.17", "2.2.5", "2.3.4"]) == "2.17"
    assert highest([]) is None


def test_read_needs_on_a_real_library(shared_objects: dict[str, Path]) -> None:
    needs = read_needs([shared_objects["v2"]])
    assert needs["glibc"] is not None  # memcpy is versioned
    assert needs["glibcxx"] is None  # plain C
