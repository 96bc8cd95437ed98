from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kiln_driver.elf_needs import highest, parse_dynamic_symbols, read_needs
from kiln_driver.isa import check_isa, count_registers

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
    assert count_registers(lines) == {"xmm": 2, "ymm": 3, "zmm": 4, "tmm": 1}


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
