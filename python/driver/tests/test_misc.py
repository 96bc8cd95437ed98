"""Job parsing, output comparison, JSON safety, toolchain probing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import make_job

from kiln_driver.compare import compare_outputs
from kiln_driver.errors import DriverError
from kiln_driver.job import parse_job
from kiln_driver.progress import dumps
from kiln_driver.toolchain import resolve_compiler, x86_level_from_flags


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
    assert not compare_outputs([torch.ones(2)], [torch.ones(3)], 1e-4, 1e-3)["passed"]
    assert not compare_outputs([torch.ones(2)], [torch.ones(2), torch.ones(2)], 1e-4, 1e-3)["passed"]


def test_json_never_contains_nan_or_infinity() -> None:
    text = dumps({"a": math.inf, "b": [math.nan, -math.inf, 1.5]})
    assert json.loads(text) == {"a": "inf", "b": ["nan", "-inf", 1.5]}


def test_x86_levels_from_cpu_flags() -> None:
    v2 = {"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"}
    v3 = v2 | {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}
    v4 = v3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}
    assert [x86_level_from_flags(f) for f in (set(), v2, v3, v4, v2 | {"avx512f"})] == [1, 2, 3, 4, 2]


def test_resolve_compiler() -> None:
    cxx = resolve_compiler("g++")
    assert Path(cxx.path).is_absolute() and cxx.version
    with pytest.raises(DriverError) as info:
        resolve_compiler("kiln-no-such-compiler")
    assert info.value.code == "TOOLCHAIN_MISMATCH" and info.value.exit_code == 1
