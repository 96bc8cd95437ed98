"""inductor's vector-ISA check once per worker (kiln_driver/vec_isa.py): the check itself, when a build may rely on
its answer, and a real build that did."""

from __future__ import annotations

import platform
from typing import Any

import pytest
from conftest import DriverRun, run_vec_isa_check

from kiln_driver import vec_isa

# inductor's vector-ISA check (torch/_inductor/cpu_vec_isa.py, valid_vec_isa_list) compiles programs only on x86;
# on aarch64 it reads torch.cpu.get_capabilities() and compiles nothing, so there is nothing for a worker to answer.
x86_only = pytest.mark.skipif(
    platform.machine() != "x86_64",
    reason=f"inductor's vector-ISA check compiles only on x86_64 (cpu_vec_isa.valid_vec_isa_list); "
    f"this host is {platform.machine()}",
)


@x86_only
def test_the_check_compiles_and_loads_every_isa_the_cpu_lists(vec_isa_answer: dict[str, Any]) -> None:
    assert vec_isa_answer["cxx"].startswith("/")
    assert vec_isa_answer["listed"] == vec_isa.listed_isas()
    # Every x86-64 CPU that runs torch lists at least AVX2 (v3) or nothing vectorized (v2): avx2 when listed compiles.
    assert sorted(vec_isa_answer["valid"]) == sorted(vec_isa_answer["listed"])


@x86_only
def test_a_compiler_that_does_not_run_validates_nothing(tmp_path: Any) -> None:
    answer = run_vec_isa_check(str(tmp_path / "no-such-g++"))
    assert answer["valid"] == []
    listed = vec_isa.listed_isas()
    assert answer["listed"] == listed
    if listed:  # a CPU without vector ISAs gives nothing to skip in any case
        skip, why = vec_isa.may_skip_check(answer, answer["cxx"])
        assert not skip and "failed for" in why


def answer(cxx: str = "/usr/bin/g++", listed: list[str] | None = None, valid: list[str] | None = None) -> Any:
    listed = ["avx512", "avx2"] if listed is None else listed
    return {"cxx": cxx, "listed": listed, "valid": listed if valid is None else valid}


@pytest.fixture
def cpu_lists(monkeypatch: pytest.MonkeyPatch) -> Any:
    def set_list(isas: list[str] | None) -> None:
        monkeypatch.setattr(vec_isa, "listed_isas", lambda: isas)

    set_list(["avx512", "avx2"])
    return set_list


def test_the_answer_covers_a_build_with_the_same_compiler_and_cpu(cpu_lists: Any) -> None:
    configs: dict[str, Any] = {}
    line = vec_isa.apply(configs, answer(listed=["avx2", "avx512"]), "/usr/bin/g++")
    assert configs == {"cpp.vec_isa_ok": True}
    assert "not repeated" in line


@pytest.mark.parametrize(
    ("given", "compiler", "cpu", "why"),
    [
        (None, "/usr/bin/g++", ["avx512", "avx2"], "no answer"),
        (answer(), "/opt/gcc-14/bin/g++", ["avx512", "avx2"], "this build compiles with /opt/gcc-14/bin/g++"),
        (answer(listed=["avx2"]), "/usr/bin/g++", ["avx512", "avx2"], "this CPU lists"),
        (answer(valid=["avx2"]), "/usr/bin/g++", ["avx512", "avx2"], "failed for ['avx512']"),
        (answer(), "/usr/bin/g++", None, "not an x86 host"),
    ],
    ids=["no-answer", "other-compiler", "other-cpu", "an-isa-failed", "not-x86"],
)
def test_inductor_checks_in_the_build_unless_the_answer_covers_it(
    cpu_lists: Any, given: Any, compiler: str, cpu: list[str] | None, why: str
) -> None:
    cpu_lists(cpu)
    configs: dict[str, Any] = {}
    line = vec_isa.apply(configs, given, compiler)
    assert configs == {}
    assert "runs in this build" in line and why in line


@x86_only
def test_a_build_with_the_answer_skips_the_check_and_still_builds_right(mlp_v2: DriverRun, mlp_v3: DriverRun) -> None:
    """mlp_v2's job carries the answer, mlp_v3's none: both build; only v2 passed cpp.vec_isa_ok to inductor. That the
    v2 code holds no AVX and both share one weights part is test_build_e2e's."""
    assert mlp_v2.returncode == 0 and mlp_v3.returncode == 0
    assert mlp_v2.manifest["toolchain"]["inductorConfigs"].get("cpp.vec_isa_ok") is True
    assert "not repeated" in mlp_v2.stderr
    assert "cpp.vec_isa_ok" not in mlp_v3.manifest["toolchain"]["inductorConfigs"]
    assert "vector ISA check runs in this build (the worker has no answer" in mlp_v3.stderr
