"""The probe on this host (any x86-64 Linux box with glibc and CPU torch), and its parsers.

What this host's CPU is comes from /proc/cpuinfo, read here with the level rules written out in this file
(never from the probe under test) over the shared flag lists (libs/targets/src/x86-levels.json), and
KILN_X86_LEVEL_CAP is honoured as the probe honours it.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import torch

from kiln_runtime.fingerprint import validate_fingerprint
from kiln_runtime.probe import loaded_libstdcxx, max_glibcxx, probe_fingerprint, read_cpuinfo
from kiln_runtime.x86_levels import X86_LEVEL_FLAGS, cap_x86_flags, x86_level_from_flags

_V2, _V3, _V4 = (set(X86_LEVEL_FLAGS[level]) for level in (2, 3, 4))


def _host_flags() -> set[str]:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def _expected_level(flags: set[str], cap: int | None) -> int:
    level = 4 if flags >= _V2 | _V3 | _V4 else 3 if flags >= _V2 | _V3 else 2 if flags >= _V2 else 1
    return min(level, cap) if cap else level


def _cap() -> int | None:
    value = os.environ.get("KILN_X86_LEVEL_CAP", "").strip()
    return int(value) if value else None


def _fingerprint_with_cap(cap: str) -> dict:
    env = {**os.environ, "KILN_X86_LEVEL_CAP": cap}
    code = "import json; from kiln_runtime.probe import probe_fingerprint; print(json.dumps(probe_fingerprint()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_this_host_gives_a_valid_fingerprint() -> None:
    fp = probe_fingerprint()
    assert validate_fingerprint(fp) == []
    assert fp["schemaVersion"] == 1
    assert (fp["os"], fp["arch"]) == ("linux", "x86_64")
    assert fp["libc"]["name"] == "glibc"
    assert fp["libc"]["version"] == os.confstr("CS_GNU_LIBC_VERSION").split()[1]
    assert fp["libstdcxx"]["glibcxx"] is not None and fp["libstdcxx"]["glibcxx"].startswith("3.4.")
    assert fp["cpu"]["x86Level"] == _expected_level(_host_flags(), _cap())
    assert "sse4_2" in fp["cpu"]["flags"]
    assert ("avx512f" in fp["cpu"]["flags"]) == (fp["cpu"]["x86Level"] == 4)
    assert fp["cpu"]["flags"] == sorted(set(fp["cpu"]["flags"]))
    assert fp["torch"] == {"version": torch.__version__, "cuda": torch.version.cuda}
    assert fp["gpus"] == []  # CPU torch: no CUDA GPUs, even on a machine with one


def test_glibcxx_comes_from_the_libstdcxx_torch_loaded() -> None:
    path = loaded_libstdcxx()
    assert path is not None and "libstdc++.so" in path
    version = max_glibcxx(path)
    assert version is not None
    data = open(path, "rb").read()  # noqa: SIM115
    assert f"GLIBCXX_{version}".encode() in data
    # Numeric, not lexical, maximum: 3.4.30 beats 3.4.9.
    assert [int(p) for p in version.split(".")] >= [3, 4, 9]


def test_without_torch_the_rest_is_still_reported() -> None:
    code = (
        "import json, sys; sys.modules['torch'] = None\n"
        "from kiln_runtime.probe import probe_fingerprint\n"
        "print(json.dumps(probe_fingerprint()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    fp = json.loads(out.stdout)
    assert fp["torch"] is None and fp["gpus"] == []
    assert fp["libc"]["name"] == "glibc" and fp["libstdcxx"]["glibcxx"] is not None
    assert fp["cpu"]["x86Level"] == _expected_level(_host_flags(), _cap())
    assert any(e.startswith("torch") for e in validate_fingerprint(fp))  # the resolver would refuse it


def test_cli_fingerprint_prints_json() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kiln_runtime", "fingerprint", "--no-hostname"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    fp = json.loads(out.stdout)
    assert "hostname" not in fp and validate_fingerprint(fp) == []


def test_cpuinfo_parsing_takes_the_first_processor() -> None:
    text = (
        "processor\t: 0\nmodel name\t: Test CPU @ 2GHz\nflags\t\t: sse4_2 avx2 AVX lahf_lm\n\n"
        "processor\t: 1\nmodel name\t: Other\nflags\t\t: avx512f\n"
    )
    assert read_cpuinfo(text) == {"flags": ["avx", "avx2", "lahf_lm", "sse4_2"], "model": "Test CPU @ 2GHz"}
    arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes\nCPU implementer\t: 0x41\n"
    assert read_cpuinfo(arm)["flags"] == ["aes", "asimd", "evtstrm", "fp"]


def test_x86_levels_need_every_lower_level() -> None:
    v2, v3, v4 = (list(X86_LEVEL_FLAGS[level]) for level in (2, 3, 4))
    assert x86_level_from_flags([]) == 1
    assert x86_level_from_flags(v2) == 2
    assert x86_level_from_flags(v2 + v3) == 3
    assert x86_level_from_flags(v2 + v3 + v4) == 4
    assert x86_level_from_flags(v3 + v4) == 1  # no SSE4.2 & co.: not even v2
    assert x86_level_from_flags(v2 + v3[:-1] + v4) == 2


def test_validation_catches_what_the_server_refuses() -> None:
    fp = probe_fingerprint()
    cases = {
        "schemaVersion": lambda f: f.update(schemaVersion=2),
        "arch": lambda f: f.update(arch="sparc"),
        "libc.version": lambda f: f["libc"].update(version="two"),
        "torch.cuda": lambda f: f["torch"].update(version="2.13.0+cu128", cuda=None),
        "gpus[0].computeCapability": lambda f: f.update(gpus=[{"name": "H100", "computeCapability": "sm_90"}]),
        "cpu.flags[0]": lambda f: f["cpu"].update(flags=["AVX 2"]),
        "cpu.x86Level": lambda f: f.update(arch="aarch64"),
        "hostname": lambda f: f.update(hostname=None),
    }
    for path, mutate in cases.items():
        bad = copy.deepcopy(fp)
        mutate(bad)
        errors = validate_fingerprint(bad)
        assert any(e.startswith(path) for e in errors), (path, errors)
    alias = copy.deepcopy(fp)
    alias.update(arch="AMD64")
    alias["cpu"].pop("x86Level")
    assert validate_fingerprint(alias) == []


def test_level_cap_makes_this_host_report_an_older_cpu() -> None:
    flags = _host_flags()
    for cap in ("3", "2", "1"):
        fp = _fingerprint_with_cap(cap)
        assert fp["cpu"]["x86Level"] == _expected_level(flags, int(cap)), cap
        shown = set(fp["cpu"]["flags"])
        assert not any(f.startswith(("avx512", "amx")) for f in shown), cap
        if int(cap) < 3:
            assert not any(f.startswith("avx") for f in shown) and not _V3 & shown, cap
        if int(cap) < 2:
            assert not _V2 & shown, cap
        assert validate_fingerprint(fp) == []
    uncapped = _fingerprint_with_cap("")
    assert uncapped["cpu"]["x86Level"] == _expected_level(flags, None)


def test_level_cap_refuses_a_bad_value() -> None:
    env = {**os.environ, "KILN_X86_LEVEL_CAP": "5"}
    out = subprocess.run(
        [sys.executable, "-m", "kiln_runtime", "fingerprint"], capture_output=True, text=True, env=env, check=False
    )
    assert out.returncode != 0
    assert "KILN_X86_LEVEL_CAP='5'" in out.stderr


def test_cap_x86_flags_drops_what_a_capped_cpu_lacks() -> None:
    v4_host = sorted(_V2 | _V3 | _V4 | {"avx512_vnni", "amx_tile", "avx_vnni", "sse2", "fpu"})
    assert x86_level_from_flags(cap_x86_flags(v4_host, 3)) == 3
    assert {"avx512_vnni", "amx_tile"}.isdisjoint(cap_x86_flags(v4_host, 3))
    assert "avx_vnni" in cap_x86_flags(v4_host, 3)
    assert x86_level_from_flags(cap_x86_flags(v4_host, 2)) == 2
    assert {"avx_vnni", "avx2", "fma"}.isdisjoint(cap_x86_flags(v4_host, 2))
    assert x86_level_from_flags(cap_x86_flags(v4_host, 1)) == 1
    assert cap_x86_flags(v4_host, 4) == v4_host and cap_x86_flags(v4_host, None) == v4_host
