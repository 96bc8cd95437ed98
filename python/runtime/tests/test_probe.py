"""The probe on this host (an AVX-512 Linux box with glibc and CPU torch), and its parsers."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import torch

from kiln_runtime.fingerprint import validate_fingerprint
from kiln_runtime.probe import loaded_libstdcxx, max_glibcxx, probe_fingerprint, read_cpuinfo
from kiln_runtime.x86_levels import x86_level_from_flags


def test_this_host_gives_a_valid_fingerprint() -> None:
    fp = probe_fingerprint()
    assert validate_fingerprint(fp) == []
    assert fp["schemaVersion"] == 1
    assert (fp["os"], fp["arch"]) == ("linux", "x86_64")
    assert fp["libc"]["name"] == "glibc"
    assert fp["libc"]["version"] == os.confstr("CS_GNU_LIBC_VERSION").split()[1]
    assert fp["libstdcxx"]["glibcxx"] is not None and fp["libstdcxx"]["glibcxx"].startswith("3.4.")
    assert fp["cpu"]["x86Level"] == 4, "this machine has AVX-512"
    assert {"avx512f", "avx2", "sse4_2"} <= set(fp["cpu"]["flags"])
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
    assert fp["cpu"]["x86Level"] == 4
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
    v2 = ["cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"]
    v3 = ["avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"]
    v4 = ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"]
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
