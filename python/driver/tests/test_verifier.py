"""The verifier process started before its artifact exists (Verifier): it waits, and it never outlives the build."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiln_driver.errors import DriverError
from kiln_driver.progress import Events
from kiln_driver.verify import Verifier

DRIVER_ROOT = Path(__file__).resolve().parents[1]
RUNTIME_ROOT = DRIVER_ROOT.parent / "runtime"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(DRIVER_ROOT), str(RUNTIME_ROOT)])}


def test_a_started_verifier_waits_and_leaves_quietly_when_no_request_comes() -> None:
    # The build failed (or was cancelled) before there was anything to verify: stdin closes without a path.
    proc = subprocess.run(
        [sys.executable, "-m", "kiln_driver", "verify", "--request", "-"],
        input="",
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""  # no result line: the parent asked for nothing


def test_close_kills_a_verifier_that_is_still_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])
    verifier = Verifier()
    verifier.start()
    proc = verifier._proc
    assert proc is not None and proc.poll() is None
    verifier.close()
    assert proc.returncode is not None  # reaped: no orphan left in the job's pid namespace
    verifier.close()  # idempotent


def test_a_verifier_that_died_while_waiting_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])
    verifier = Verifier()
    verifier.start()
    assert verifier._proc is not None
    verifier._proc.kill()  # the OOM killer, say, during the compile
    verifier._proc.wait()
    with pytest.raises(DriverError, match="verifier was killed"):
        verifier.run({}, tmp_path / "request.json", Events(io.StringIO()))  # type: ignore[typeddict-item]
    verifier.close()
