"""The timing method (timing.py) with stand-in functions: medians and their intervals, warm-up until stable,
alternating order, the noise guard re-measuring and marking a noisy figure uncertain."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import pytest

from kiln_driver import timing
from kiln_driver.timing import measure, median_interval


def sleeper(ms: float) -> Callable[[], None]:
    def call() -> None:
        end = time.perf_counter() + ms / 1000
        while time.perf_counter() < end:
            pass

    return call


def test_median_interval_is_distribution_free_and_brackets_the_median() -> None:
    xs = [float(i) for i in range(1, 21)]
    m, lo, hi = median_interval(xs)
    assert m == 10.5 and lo == 5.0 and hi == 15.0  # ranks 5 and 15 of 20 at 95 %
    assert median_interval([3.0]) == (3.0, 3.0, 3.0)
    wild = [1.0] * 30 + [1000.0] * 3  # a burst does not drag the median or its interval
    assert median_interval(wild)[2] == 1.0


def test_measure_reports_the_distribution_per_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timing, "read_cpu_pressure_us", lambda: 0)  # a quiet host
    sizes = [(sleeper(0.4), sleeper(0.2), [[8, 64]]), (sleeper(0.8), sleeper(0.4), [[16, 64]])]
    t = measure(sizes, device="cpu", warmup=3, runs=12, threads=1, lock_wait_ms=0.0)
    assert t["method"] == "interleaved-median-ci" and t["inputShapes"] == [[8, 64]]
    assert [p["inputShapes"] for p in t["perInput"]] == [[[8, 64]], [[16, 64]]]
    assert 1.5 < t["speedup"] < 2.6  # 2x by construction, give or take the machine
    lo, hi = t["speedupCi"]
    assert lo <= t["speedup"] <= hi
    assert all(p["samples"] >= 12 and p["warmupPairs"] >= 10 for p in t["perInput"])
    assert t["noise"]["attempts"] == 2 and t["noise"]["cpuPressure"] == 0.0


def test_calls_alternate_which_goes_first() -> None:
    order: list[str] = []
    sizes = [(lambda: order.append("e"), lambda: order.append("c"), [[1]])]
    measure(sizes, device="cpu", warmup=0, runs=4, threads=1, lock_wait_ms=0.0)
    pairs = [order[i : i + 2] for i in range(0, len(order), 2)]
    assert ["e", "c"] in pairs and ["c", "e"] in pairs


def test_a_noisy_host_is_measured_again_then_marked_uncertain(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every attempt sees other work waiting for the CPU half of the time.
    clock = itertools.count(step=10**9)
    monkeypatch.setattr(timing, "read_cpu_pressure_us", lambda: next(clock))
    t = measure([(sleeper(0.2), sleeper(0.1), [[4]])], device="cpu", warmup=2, runs=5, threads=1, lock_wait_ms=2500)
    assert t["noise"]["attempts"] == timing.MAX_ATTEMPTS
    assert t["uncertain"] is True
    assert any("CPU pressure" in r for r in t["noise"]["reasons"])
    assert t["noise"]["lockWaitMs"] == 2500
