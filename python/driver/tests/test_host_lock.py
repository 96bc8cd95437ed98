"""The host lock: compiles share it, timing excludes everything else, and no wait is unbounded (real flock calls,
another process holding the lock the way another build would)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kiln_driver import timing
from kiln_driver.host_lock import host_lock


def _try(path: Path, op: int) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, op | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.fixture
def lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "timing.lock"
    path.touch()
    monkeypatch.setenv("KILN_TIMING_LOCK", str(path))
    return path


def _held_by_another_build(path: Path, op: str) -> subprocess.Popen[str]:
    """Another process (another build) takes the lock and keeps it until killed."""
    code = (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(path)!r}, os.O_RDONLY)\n"
        f"fcntl.flock(fd, fcntl.{op})\n"
        "print('held', flush=True)\n"
        "time.sleep(3600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_compiles_share_the_lock_and_timing_excludes_them(lock: Path) -> None:
    with host_lock(exclusive=False) as state:
        assert state["lock"] == "shared"
        assert _try(lock, fcntl.LOCK_SH), "another compile may run"
        assert not _try(lock, fcntl.LOCK_EX), "timing waits for the compile"
    with host_lock(exclusive=True) as state:
        assert state["lock"] == "exclusive"
        assert not _try(lock, fcntl.LOCK_SH), "compiles wait for the timing"
    assert _try(lock, fcntl.LOCK_EX)


def test_a_lock_held_forever_by_another_build_does_not_stall_this_one(lock: Path) -> None:
    # A hostile (or just slow) build takes the exclusive lock and never lets go: this build's compile and its
    # timing each wait at most their bound, then go on without the lock and say so.
    other = _held_by_another_build(lock, "LOCK_EX")
    try:
        with host_lock(exclusive=False, wait_s=0.3) as compiling:
            assert compiling["lock"] == "contended"
        with host_lock(exclusive=True, wait_s=0.3) as timing:
            assert timing["lock"] == "contended"
        assert other.poll() is None, "the other build still holds its lock"
        assert not _try(lock, fcntl.LOCK_SH)
    finally:
        other.kill()
        other.wait()
    with host_lock(exclusive=True, wait_s=0.3) as after:
        assert after["lock"] == "exclusive", "once the other build is gone the lock is taken as usual"


def test_timing_waits_for_a_compile_that_ends_within_the_bound(lock: Path) -> None:
    other = _held_by_another_build(lock, "LOCK_SH")
    try:
        assert not _try(lock, fcntl.LOCK_EX)
    finally:
        other.kill()
        other.wait()
    with host_lock(exclusive=True, wait_s=30) as state:
        assert state["lock"] == "exclusive"


def test_without_a_lock_file_builds_go_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KILN_TIMING_LOCK", raising=False)
    with host_lock(exclusive=True) as state:
        assert state == {"lock": "none", "waitedS": 0.0}
    monkeypatch.setenv("KILN_TIMING_LOCK", str(tmp_path / "missing"))
    with host_lock(exclusive=True) as state:
        assert state["lock"] == "none"


def test_the_measurement_stops_at_its_time_budget_and_keeps_at_least_one_pair() -> None:
    calls = {"slow": 0}

    def slow() -> None:
        calls["slow"] += 1
        time.sleep(0.05)

    shapes = [[1, 4]]
    timed = timing.measure(
        [(slow, slow, shapes)], device="cpu", warmup=2, runs=10_000, threads=1, lock_wait_ms=0, max_seconds=0.3
    )
    assert timed["truncated"] is True and timed["uncertain"] is True
    assert 1 <= timed["runs"] < 10_000
    assert calls["slow"] < 2 * 10_000
    assert any("bound of 0.3 s" in r for r in timed["noise"]["reasons"])

    once = timing.measure(
        [(slow, slow, shapes)], device="cpu", warmup=5, runs=3, threads=1, lock_wait_ms=0, max_seconds=0
    )
    assert once["runs"] == 1 and once["truncated"] is True, "a budget of 0 still measures one pair"

    fast = timing.measure(
        [(lambda: None, lambda: None, shapes)], device="cpu", warmup=1, runs=5, threads=1, lock_wait_ms=0
    )
    assert fast["runs"] >= 5 and fast["truncated"] is False
