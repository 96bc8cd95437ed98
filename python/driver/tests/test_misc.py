"""Job parsing, output comparison, JSON safety, toolchain probing."""

from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path

import pytest
import torch
from conftest import make_job
from kiln_runtime.x86_levels import X86_LEVEL_FLAGS, x86_level_from_flags

from kiln_driver.build import drop_compile_outputs
from kiln_driver.compare import compare_outputs
from kiln_driver.errors import DriverError
from kiln_driver.job import parse_job
from kiln_driver.progress import dumps
from kiln_driver.toolchain import host_x86_level, resolve_compiler
from kiln_driver.verify import mismatch_message


def test_parse_job_accepts_the_contract() -> None:
    job = make_job(3)
    assert parse_job(job) is job
    job["timing"].update(maxSeconds=30, lockWaitSeconds=2.5)  # the bounds of the timing lock and measurement
    assert parse_job(job) is job


@pytest.mark.parametrize(
    "mutate",
    [
        lambda j: j.pop("cacheKey"),
        lambda j: j["recipe"].update(device="tpu"),
        lambda j: j["recipe"].update(targetId="linux-x86_64-v4"),
        lambda j: j["timing"].update(runs=0),
        lambda j: j.update(seed=True),
        lambda j: j["recipe"]["toolchain"].update(cxx=""),
        lambda j: j["recipe"].update(precision="int8"),
        lambda j: j["timing"].update(lockWaitSeconds=-1),
        lambda j: j["timing"].update(maxSeconds="forever"),
        lambda j: j["timing"].update(maxSeconds=True),
    ],
)
def test_parse_job_rejects_bad_jobs(mutate) -> None:
    job = make_job(3)
    mutate(job)
    with pytest.raises(DriverError) as info:
        parse_job(job)
    assert info.value.code == "INTERNAL" and info.value.exit_code == 3


def test_nvidia_kernel_driver_version(tmp_path: Path) -> None:
    from kiln_driver.toolchain import nvidia_kernel_driver_version

    proc = tmp_path / "version"
    proc.write_text(
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (dvs-builder@U22)\n"
        "GCC version:  gcc version 13.3.0 (Ubuntu 13.3.0-6ubuntu2~24.04)\n"
    )
    assert nvidia_kernel_driver_version(proc) == "580.159.04"
    proc.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n")
    assert nvidia_kernel_driver_version(proc) == "550.54.15"
    assert nvidia_kernel_driver_version(tmp_path / "missing") is None


def test_compare_outputs_within_tolerance() -> None:
    e = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    cmp = compare_outputs((e,), (e + 1e-6,), atol=1e-4, rtol=1e-3)
    assert cmp["passed"] and cmp["maxAbsError"] == pytest.approx(1e-6, rel=1e-2)
    assert cmp["maxRelError"] == pytest.approx(2e-6, rel=1e-2)  # 1e-6 / |0.5|


def test_compare_outputs_over_tolerance() -> None:
    e = torch.ones(4)
    cmp = compare_outputs([e], [e * 1.01], atol=1e-4, rtol=1e-3)
    assert not cmp["passed"] and cmp["maxAbsError"] == pytest.approx(0.01, rel=1e-3)


def test_compare_outputs_nan_and_inf() -> None:
    e = torch.tensor([math.nan, math.inf, 1.0])
    assert compare_outputs(e, e.clone(), 1e-4, 1e-3)["passed"]  # same NaN/inf positions: fine
    cmp = compare_outputs(e, torch.tensor([0.0, math.inf, 1.0]), 1e-4, 1e-3)
    assert not cmp["passed"] and cmp["maxAbsError"] == math.inf


def test_compare_outputs_structure_mismatch() -> None:
    cmp = compare_outputs([torch.ones(2)], [torch.ones(3)], 1e-4, 1e-3)
    assert not cmp["passed"] and cmp["kinds"] == ["shape"]
    assert cmp["problems"] == ["output 0 has shape [2] in the portable graph and [3] in the artifact"]
    cmp = compare_outputs([torch.ones(2)], [torch.ones(2), torch.ones(2)], 1e-4, 1e-3)
    assert not cmp["passed"] and cmp["kinds"] == ["count"]
    cmp = compare_outputs((torch.ones(2),), [torch.ones(2)], 1e-4, 1e-3)
    assert not cmp["passed"] and cmp["kinds"] == ["structure"]


def test_an_int_and_a_tensor_of_the_same_value_differ_in_type() -> None:
    """ExportDB's scalar_output: the portable graph returns a Python int (a SymInt output), AOTInductor a 0-d
    tensor. Equal values, yet not the same interface: refused, and the reason says so, never "beyond atol"."""
    cmp = compare_outputs((4,), (torch.tensor(4),), 1e-4, 1e-3)
    assert not cmp["passed"] and cmp["kinds"] == ["type"]
    assert cmp["problems"] == [
        "output 0 is an int (4) in the portable graph and a 0-d int64 tensor (4) in the artifact"
    ]
    assert cmp["maxAbsError"] == 0.0
    message = mismatch_message([f"inputs [[3, 3]]: {p}" for p in cmp["problems"]], cmp["kinds"], "fp32", 1e-4, 1e-3)
    assert message == (
        "the compiled artifact's outputs differ from the portable graph's in type (an artifact must return what the "
        "portable graph returns): inputs [[3, 3]]: output 0 is an int (4) in the portable graph and a 0-d int64 "
        "tensor (4) in the artifact"
    )
    assert "atol" not in message


def test_other_output_differences_are_named() -> None:
    cmp = compare_outputs([torch.ones(2), 3], [torch.ones(2, dtype=torch.float64), 3.0], 1e-4, 1e-3)
    assert cmp["kinds"] == ["dtype", "type"]
    assert cmp["problems"] == [
        "output 0 is a 1-d float32 tensor in the portable graph and a 1-d float64 tensor in the artifact",
        "output 1 is an int (3) in the portable graph and a float (3.0) in the artifact",
    ]
    cmp = compare_outputs([5, None], [6, None], 1e-4, 1e-3)
    assert cmp["kinds"] == ["value"] and cmp["problems"] == [
        "output 0 is 5 in the portable graph and 6 in the artifact"
    ]
    assert compare_outputs([5, 0.5], [5, 0.5 + 1e-6], 1e-4, 1e-3)["passed"]
    # Values and types together: the type is what the message leads with; the numbers stay in the problems.
    cmp = compare_outputs([torch.ones(2), 1], [torch.ones(2) * 2, torch.tensor(1)], 1e-4, 1e-3)
    assert cmp["kinds"] == ["value", "type"]
    message = mismatch_message(cmp["problems"], cmp["kinds"], "fp32", 1e-4, 1e-3)
    assert "in type" in message and "output 1 is an int (1)" in message and "(1 more in details.problems)" in message
    only_numbers = compare_outputs([torch.ones(2)], [torch.ones(2) * 2], 1e-4, 1e-3)
    assert mismatch_message(only_numbers["problems"], only_numbers["kinds"], "bf16", 1e-2, 1e-2) == (
        "the compiled artifact (computing in bf16) differs from the portable graph beyond atol=0.01 rtol=0.01"
    )


def test_json_never_contains_nan_or_infinity() -> None:
    text = dumps({"a": math.inf, "b": [math.nan, -math.inf, 1.5]})
    assert json.loads(text) == {"a": "inf", "b": ["nan", "-inf", 1.5]}


def test_x86_level_from_cpu_flags_uses_the_shared_levels() -> None:
    def level_of(flags: list[str]) -> int:
        return x86_level_from_flags(set(flags))

    v2, v3, v4 = (list(X86_LEVEL_FLAGS[level]) for level in (2, 3, 4))
    assert [level_of(f) for f in ([], v2, v2 + v3, v2 + v3 + v4, [*v2, "avx512f"])] == [1, 2, 3, 4, 2]
    # SSE3 ("pni") is part of v2: without it the host is baseline x86-64, whatever else it has.
    assert level_of([f for f in v2 + v3 if f != "pni"]) == 1


def test_host_x86_level_reads_the_first_flags_line_of_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    flags = " ".join(X86_LEVEL_FLAGS[2])
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: fpu {flags}\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    # Off x86-64 the host has no x86 level at all, whatever a file says.
    assert host_x86_level(cpuinfo) == (2 if platform.machine() == "x86_64" else None)


def test_resolve_compiler() -> None:
    cxx = resolve_compiler("g++")
    assert Path(cxx.path).is_absolute() and cxx.version
    with pytest.raises(DriverError) as info:
        resolve_compiler("kiln-no-such-compiler")
    assert info.value.code == "TOOLCHAIN_MISMATCH" and info.value.exit_code == 1


def test_fixed_build_dir_is_emptied_and_holds_every_path_inductor_derives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from kiln_driver.build import fixed_build_dir, prepare_environment

    root = tmp_path / "kiln-build"
    (root / "inductor-cache" / "old").mkdir(parents=True)
    (root / "left-over.txt").write_text("from an earlier run")
    monkeypatch.setenv("KILN_BUILD_DIR", str(root))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "job-random" / "cache"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "job-random" / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", None)
    assert fixed_build_dir() == root
    assert list(root.iterdir()) == []  # nothing of an earlier run leaks into this one
    prepare_environment(root / "work", root)
    # The worker's per-job (random) paths are replaced, not kept: they would end up in the code.
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(root / "inductor-cache")
    assert os.environ["TMPDIR"] == str(root / "tmp")
    assert tempfile.gettempdir() == str(root / "tmp")


def test_fixed_build_dir_must_be_absolute(monkeypatch: pytest.MonkeyPatch) -> None:
    from kiln_driver.build import fixed_build_dir

    monkeypatch.setenv("KILN_BUILD_DIR", "relative/build")
    with pytest.raises(DriverError, match="absolute"):
        fixed_build_dir()
    monkeypatch.delenv("KILN_BUILD_DIR")
    assert fixed_build_dir() is None


def test_drop_compile_outputs_removes_the_package_and_cached_weights_only(tmp_path: Path) -> None:
    package = tmp_path / "compiled" / "model.pt2"
    cache = tmp_path / "inductor-cache"
    blob = cache / "ab" / "cxyz.wrapper_weights.blob"
    kept = [cache / "ab" / "cxyz.wrapper.cpp", cache / "ab" / "cxyz.wrapper.so"]
    for path, size in [(package, 300), (blob, 200), *((k, 50) for k in kept)]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    assert drop_compile_outputs(package, str(cache)) == 500
    assert not package.exists() and not blob.exists()
    assert all(k.exists() for k in kept)
    # Nothing left to remove (or no cache folder given): nothing fails.
    assert drop_compile_outputs(package, str(cache)) == 0
    assert drop_compile_outputs(package, None) == 0
