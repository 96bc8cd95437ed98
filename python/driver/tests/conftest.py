"""Shared fixtures: the fixture models, job files built like the target catalog, and one real build."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parents[3]
# A W3C traceparent as a traced build worker puts it in job.json.
BUILD_TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
DRIVER_ROOT = Path(__file__).resolve().parents[1]


def fixtures_dir() -> Path:
    return Path(os.environ.get("KILN_FIXTURES_DIR", REPO / ".kiln" / "fixtures"))


@pytest.fixture(scope="session")
def fixtures() -> Path:
    """The fixture models, generated with test/fixtures/make_models.py when missing."""
    d = fixtures_dir()
    missing = [m for m in ("mlp", "mlp-retrained", "cnn", "transformer", "pair") if not (d / f"{m}.pt2").exists()]
    if missing:
        subprocess.run(
            [sys.executable, str(REPO / "test" / "fixtures" / "make_models.py"), str(d), "--only", *missing],
            check=True,
        )
    return d


def cpu_recipe(level: int) -> dict[str, Any]:
    """The x86 recipes of libs/targets/src/catalog.ts (recipeVersion 1)."""
    simdlen = {2: 0, 3: 256, 4: 512}[level]
    forbidden = {2: ["ymm", "zmm"], 3: ["zmm"], 4: []}[level]
    return {
        "targetId": f"linux-x86_64-v{level}",
        "recipeVersion": 1,
        "device": "cpu",
        "toolchain": {"torch": torch.__version__, "cxx": "g++"},
        "inductorConfigs": {
            "cpp.march": f"x86-64-v{level}",
            "cpp.simdlen": simdlen,
            "cpp.dynamic_threads": True,
            "freezing": True,
            "cpp.weight_prepack": False,
            "aot_inductor.package_constants_in_so": False,
            "aot_inductor.package_constants_on_disk_format": "binary_blob",
        },
        "forbiddenRegisters": forbidden,
        "tolerance": {"atol": 1e-4, "rtol": 1e-3},
    }


def make_job(level: int = 3, **overrides: Any) -> dict[str, Any]:
    recipe = cpu_recipe(level)
    job = {
        "targetId": recipe["targetId"],
        "recipe": recipe,
        "recipeHash": "ab" * 32,
        "modelContentHash": "cd" * 32,
        "cacheKey": "ef" * 32,
        "requires": {"os": "linux", "arch": "x86_64", "x86Level": level, "computeCapability": None},
        "host": {"cpuModel": "test host", "x86Level": 4, "gpuName": None, "driverVersion": None},
        "sandbox": {"network": False, "memoryLimitBytes": 8 << 30, "uid": os.getuid()},
        "timing": {"warmup": 2, "runs": 10},
        "seed": 0,
    }
    job.update(overrides)
    return job


@dataclass
class DriverRun:
    returncode: int
    out: Path
    tmpdir: Path
    stdout: str
    stderr: str

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    @property
    def phase_walls(self) -> dict[str, float]:
        """Seconds per driver phase, from its own `phase` / `phase_end` events (the benches report them)."""
        starts = {e["phase"]: e["at"] for e in self.events if e["event"] == "phase"}
        ends = {e["phase"]: e["at"] for e in self.events if e["event"] == "phase_end"}
        return {p: round(ends[p] - starts[p], 2) for p in starts if p in ends}

    @property
    def error(self) -> dict[str, Any]:
        return json.loads((self.out / "error.json").read_text())

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.out / "manifest.json").read_text())


def run_driver(model: Path, job: dict[str, Any], base: Path, timeout: float = 600) -> DriverRun:
    """Runs the CLI the way the worker does: a subprocess with its own TMPDIR and cache dir."""
    base.mkdir(parents=True, exist_ok=True)
    job_path = base / "job.json"
    job_path.write_text(json.dumps(job))
    out = base / "out"
    tmpdir = base / "tmp"
    tmpdir.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCHINDUCTOR_")}
    # The driver imports kiln_runtime (python/runtime) for the package parts code.
    pythonpath = os.pathsep.join([str(DRIVER_ROOT), str(REPO / "python" / "runtime")])
    env.update(TMPDIR=str(tmpdir), PYTHONPATH=pythonpath, CXX="/nonexistent/broken-g++")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kiln_driver",
            "build",
            "--model",
            str(model),
            "--job",
            str(job_path),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
    return DriverRun(proc.returncode, out, tmpdir, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def mlp_v3(fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> DriverRun:
    """One real end-to-end build of mlp.pt2 for linux-x86_64-v3, shared by the e2e assertions."""
    # With the traceparent a traced worker gives, so the progress test sees it stamped on every phase event.
    job = {**make_job(3), "traceparent": BUILD_TRACEPARENT}
    return run_driver(fixtures / "mlp.pt2", job, tmp_path_factory.mktemp("mlp-v3"))


@pytest.fixture(scope="session")
def vec_isa_answer() -> dict[str, Any]:
    """The worker's vector-ISA check with this host's g++ (`python -m kiln_driver vec-isa`), as jobs carry it."""
    return run_vec_isa_check(shutil.which("g++") or "/usr/bin/g++")


def run_vec_isa_check(cxx: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCHINDUCTOR_")}
    env["PYTHONPATH"] = os.pathsep.join([str(DRIVER_ROOT), str(REPO / "python" / "runtime")])
    proc = subprocess.run(
        [sys.executable, "-m", "kiln_driver", "vec-isa", "--cxx", cxx],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return next(e for e in events if e.get("event") == "vec-isa")["answer"]  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def mlp_v2(fixtures: Path, tmp_path_factory: pytest.TempPathFactory, vec_isa_answer: dict[str, Any]) -> DriverRun:
    """The same model for linux-x86_64-v2 (scalar kernels, no AVX registers allowed), with the worker's vector-ISA
    answer in the job (mlp_v3 has none): the build skips inductor's own check."""
    job = {**make_job(2), "vecIsa": vec_isa_answer}
    return run_driver(fixtures / "mlp.pt2", job, tmp_path_factory.mktemp("mlp-v2"))
