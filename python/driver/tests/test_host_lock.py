"""The host lock: compiles share it, timing excludes everything else (checked with real flock calls)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

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


def test_compiles_share_the_lock_and_timing_excludes_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = tmp_path / "timing.lock"
    lock.touch()
    monkeypatch.setenv("KILN_TIMING_LOCK", str(lock))
    with host_lock(exclusive=False):
        assert _try(lock, fcntl.LOCK_SH), "another compile may run"
        assert not _try(lock, fcntl.LOCK_EX), "timing waits for the compile"
    with host_lock(exclusive=True):
        assert not _try(lock, fcntl.LOCK_SH), "compiles wait for the timing"
    assert _try(lock, fcntl.LOCK_EX)


def test_without_a_lock_file_builds_go_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KILN_TIMING_LOCK", raising=False)
    with host_lock(exclusive=True):
        pass
    monkeypatch.setenv("KILN_TIMING_LOCK", str(tmp_path / "missing"))
    with host_lock(exclusive=True):
        pass
