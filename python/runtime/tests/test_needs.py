"""The hard rules, mirrored from libs/matching (same reasons), against the example fingerprints of
docs/fingerprint.md."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kiln_runtime.needs import check_needs, js_number
from kiln_runtime.x86_levels import X86_LEVEL_FLAGS

V2, V3, V4 = (list(X86_LEVEL_FLAGS[level]) for level in (2, 3, 4))

LAPTOP: dict[str, Any] = {
    "schemaVersion": 1,
    "os": "linux",
    "arch": "x86_64",
    "libc": {"name": "glibc", "version": "2.35"},
    "libstdcxx": {"glibcxx": "3.4.30"},
    "cpu": {"flags": sorted(["fpu", *V2, *V3])},
    "torch": {"version": "2.13.0+cpu", "cuda": None},
    "gpus": [],
}
H100: dict[str, Any] = {
    **LAPTOP,
    "libc": {"name": "glibc", "version": "2.39"},
    "cpu": {"flags": sorted([*V2, *V3, *V4])},
    "torch": {"version": "2.11.0+cu128", "cuda": "12.8"},
    "gpus": [{"name": "NVIDIA H100 80GB HBM3", "computeCapability": "9.0"}],
}


def manifest(**requires: Any) -> dict[str, Any]:
    req = {
        "os": "linux",
        "arch": "x86_64",
        "x86Level": 3,
        "computeCapability": None,
        "torch": "2.13.0+cpu",
        "glibc": "2.34",
        "glibcxx": "3.4.30",
    }
    req.update(requires)
    return {
        "requires": req,
        "verification": {"passed": True, "maxAbsError": 0.0000031, "atol": 1e-4},
        "isaCheck": {"passed": True, "forbidden": ["zmm"], "counts": {}},
    }


def test_a_fitting_artifact_passes_every_rule_with_the_servers_words() -> None:
    check = check_needs(LAPTOP, manifest())
    assert check.compatible
    assert check.passed == [
        "linux/x86_64 matches",
        "x86-64-v3 ≤ this CPU's x86-64-v3 (from its CPU flags)",
        "torch 2.13.0 matches the build (2.13.0+cpu)",
        "glibc 2.35 ≥ 2.34",
        "GLIBCXX 3.4.30 ≥ 3.4.30",
        "verified against the portable graph (max abs error 0.0000031)",
        "ISA check passed",
    ]


def test_v4_on_an_avx2_laptop_names_the_missing_flags() -> None:
    check = check_needs(LAPTOP, manifest(x86Level=4))
    assert check.failed == [
        "needs x86-64-v4 (AVX-512 F/BW/CD/DQ/VL); this CPU is x86-64-v3 (from its CPU flags): "
        "missing avx512f, avx512bw, avx512cd, avx512dq, avx512vl"
    ]


def test_flags_win_over_a_reported_level() -> None:
    fp = copy.deepcopy(LAPTOP)
    fp["cpu"]["x86Level"] = 4
    (reason,) = check_needs(fp, manifest(x86Level=4)).failed
    assert "its reported x86Level 4 was ignored: flags win" in reason
    fp["cpu"] = {"flags": [], "x86Level": 4}
    assert check_needs(fp, manifest(x86Level=4)).compatible  # no flags: the reported level is used


@pytest.mark.parametrize(
    ("device", "build", "ok"),
    [
        ("2.13.0+cpu", "2.13.0+cpu", True),
        ("2.13.0+cu128", "2.13.0+cpu", True),  # a CPU artifact runs on a CUDA build of the same release
        ("2.13.0", "2.13.0+cpu", True),
        ("2.12.1+cpu", "2.13.0+cpu", False),
        ("2.13.0.dev20260101+cpu", "2.13.0+cpu", False),
    ],
)
def test_torch_public_version_must_be_equal(device: str, build: str, ok: bool) -> None:
    fp = copy.deepcopy(LAPTOP)
    fp["torch"] = {"version": device, "cuda": "12.8" if "cu128" in device else None}
    check = check_needs(fp, manifest(torch=build))
    assert check.compatible is ok, check.failed
    if not ok:
        assert check.failed[0].endswith("compiled artifacts need the exact torch release")


def test_gpu_artifacts_need_the_exact_capability_and_cuda() -> None:
    gpu = manifest(computeCapability="9.0", torch="2.11.0+cu128", x86Level=None)
    assert check_needs(H100, gpu).compatible
    a100 = copy.deepcopy(H100)
    a100["gpus"] = [{"name": "NVIDIA A100-SXM4-80GB", "computeCapability": "8.0"}]
    assert check_needs(a100, gpu).failed == [
        "needs a GPU of compute capability 9.0 (code built for sm_90 runs only there); "
        "this device's GPUs: NVIDIA A100-SXM4-80GB (8.0)"
    ]
    cu126 = copy.deepcopy(H100)
    cu126["torch"] = {"version": "2.11.0+cu126", "cuda": "12.6"}
    assert check_needs(cu126, gpu).failed == [
        "needs torch built for CUDA 12.8; this device's torch 2.11.0+cu126 is built for CUDA 12.6"
    ]
    cpu_torch = copy.deepcopy(H100)
    cpu_torch["torch"] = {"version": "2.11.0+cpu", "cuda": None}
    assert "is not a CUDA build" in check_needs(cpu_torch, gpu).failed[0]
    untagged = manifest(computeCapability="9.0", torch="2.11.0", x86Level=None)
    assert "does not name its CUDA version" in check_needs(H100, untagged).failed[0]


def test_libc_and_libstdcxx_compare_numerically() -> None:
    old = copy.deepcopy(LAPTOP)
    old["libc"] = {"name": "glibc", "version": "2.9"}
    old["libstdcxx"] = {"glibcxx": "3.4.9"}
    assert check_needs(old, manifest(glibc="2.10", glibcxx="3.4.30")).failed == [
        "needs glibc ≥ 2.10; this device has glibc 2.9",
        "needs libstdc++ with GLIBCXX_3.4.30; this device's libstdc++ provides up to GLIBCXX_3.4.9",
    ]
    musl = copy.deepcopy(LAPTOP)
    musl["libc"] = {"name": "musl", "version": "1.2.4"}
    assert check_needs(musl, manifest()).failed == ["needs glibc ≥ 2.34; this device's libc is musl 1.2.4"]
    assert check_needs(musl, manifest(glibc=None)).failed == ["needs glibc; this device's libc is musl 1.2.4"]
    unknown = copy.deepcopy(LAPTOP)
    unknown["libstdcxx"] = {"glibcxx": None}
    assert "did not report its libstdc++" in check_needs(unknown, manifest()).failed[0]


def test_every_failing_rule_gives_its_own_reason() -> None:
    graviton = {
        **LAPTOP,
        "arch": "aarch64",
        "cpu": {"flags": ["fp", "asimd"]},
        "torch": {"version": "2.12.0", "cuda": None},
    }
    bad = manifest()
    bad["verification"] = {"passed": False, "maxAbsError": 0.5, "atol": 1e-4}
    bad["isaCheck"] = {"passed": False, "forbidden": ["zmm"], "counts": {"zmm": 12}}
    assert check_needs(graviton, bad).failed == [
        "built for x86_64 CPUs; this device is aarch64",
        "needs an x86-64-v3 (AVX2/FMA/BMI) CPU; this device is aarch64",
        "built with torch 2.13.0 (2.13.0+cpu); this device runs torch 2.12.0 (2.12.0): "
        "compiled artifacts need the exact torch release",
        "not verified: its outputs were not shown to match the portable graph (max abs error 0.5, atol 0.0001)",
        "failed the ISA check: uses forbidden zmm (12x); it could crash with an illegal instruction",
    ]


def test_unreadable_manifests_are_refused() -> None:
    assert check_needs(LAPTOP, {"requires": None}).failed == ["its manifest has no `requires` section"]
    assert "unknown x86-64 level 7" in check_needs(LAPTOP, manifest(x86Level=7)).failed[0]
    assert "unreadable torch build" in check_needs(LAPTOP, manifest(torch="latest")).failed[0]


def test_numbers_print_like_javascript() -> None:
    assert [js_number(x) for x in (1.0, 1.62, 0.0000031, 1.2345, 1e-7, 123456.0, 0.5)] == [
        "1",
        "1.62",
        "0.0000031",
        "1.23",
        "1e-7",
        "123000",
        "0.5",
    ]
