"""`python -m kiln_driver probe`: the output contract host-probe.ts reads (see kiln_driver/probe.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from conftest import DRIVER_ROOT


def _probe(*args: str, broken_torch: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"}
    if broken_torch:
        env["PYTHONPATH"] = str(broken_torch)
    return subprocess.run(
        [sys.executable, "-m", "kiln_driver", "probe", *args],
        cwd=DRIVER_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _broken_torch(tmp_path: Path) -> Path:
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text('raise ImportError("kiln test: this torch is broken")\n')
    return tmp_path


def test_probe_prints_python_then_torch() -> None:
    r = _probe()
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [sys.version.split()[0], torch.__version__]


def test_probe_names_the_interpreter_even_when_torch_is_broken(tmp_path: Path) -> None:
    r = _probe(broken_torch=_broken_torch(tmp_path))
    assert r.returncode == 1
    assert r.stdout.splitlines() == [sys.version.split()[0]]
    assert r.stderr.strip().splitlines()[-1] == "ImportError: kiln test: this torch is broken"


def test_probe_subprocess_reports_torch_as_json() -> None:
    r = _probe("--subprocess")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "error": None,
    }


def test_probe_subprocess_reports_why_torch_failed(tmp_path: Path) -> None:
    r = _probe("--subprocess", broken_torch=_broken_torch(tmp_path))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {
        "python": sys.version.split()[0],
        "torch": None,
        "error": "ImportError: kiln test: this torch is broken",
    }
