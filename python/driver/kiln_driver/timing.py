"""Timing the compiled artifact against the portable graph on the build host, so that the figure can be trusted.

Method `interleaved-median-ci`, per input size (up to MAX_SIZES of the verified sets, the export's first):
  1. warm up until stable: pairs of calls (portable, compiled) until the median per-pair ratio of the last
     WINDOW pairs moves by less than STABLE_REL from the window before (at least `warmup`, at most WARMUP_MAX pairs);
  2. sample interleaved pairs, alternating which of the two goes first (ABBA: neither always gets the warm cache),
     until there are at least `runs` pairs and the 95 % interval of the median per-pair ratio is within TARGET_REL of
     it, or MAX_SAMPLES pairs, or the size's time budget is spent;
  3. the noise guard: the share of wall time some task waited for a CPU while sampling (/proc/pressure/cpu "some",
     Linux PSI; else the 1-minute load average per CPU, beyond this process's own threads). A noisy attempt is
     measured again (up to MAX_ATTEMPTS while the timing is within TOTAL_BUDGET_S, the quietest kept); still noisy,
     or an interval wider than
     UNCERTAIN_REL, marks the result `uncertain` and says why. How long the build waited for the host's timing
     lock (other builds compiling or timing) is recorded, and a long wait earns extra warm-up (the compilers
     just evicted everything from the caches).
The medians come with distribution-free intervals (order statistics of the sorted samples: no normality assumed,
robust to the bursts a shared host produces). The headline `speedup` is the median per-pair ratio on the first size
(pairs share every burst, so their ratio is far steadier than a ratio of separate medians).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from typing import Any, TypedDict

from .compare import sync

METHOD = "interleaved-median-ci"
CONFIDENCE = 0.95
_Z = 1.959964
MAX_SIZES = 3
WINDOW = 5
STABLE_REL = 0.05
WARMUP_MAX = 60
TARGET_REL = 0.03
MAX_SAMPLES = 400
BUDGET_S = 4.0  # per input size and attempt, once the minimum of samples is reached
MAX_ATTEMPTS = 3
TOTAL_BUDGET_S = 30.0  # no further re-measuring of a noisy size past this (the figure is then marked uncertain)
NOISY_PRESSURE = 0.10  # share of wall time some task waited for a CPU
NOISY_LOAD_PER_CPU = 0.5  # beyond this process's own threads, when PSI is unavailable
UNCERTAIN_REL = 0.10  # interval half-width relative to the median
LONG_LOCK_WAIT_MS = 1000.0


class MedianWithInterval(TypedDict):
    median: float
    ci: list[float]


class TimingPerInput(TypedDict):
    inputShapes: list[list[int]]
    samples: int
    warmupPairs: int
    eagerMs: MedianWithInterval
    compiledMs: MedianWithInterval
    speedup: MedianWithInterval


class TimingNoise(TypedDict):
    cpuPressure: float | None
    loadPerCpu: float | None
    lockWaitMs: float
    attempts: int
    reasons: list[str]


def median_interval(values: list[float]) -> tuple[float, float, float]:
    """(median, low, high): the 95 % distribution-free interval of the median from order statistics
    (ranks n/2 ± z·√n/2, as in the sign test). Needs at least one value."""
    xs = sorted(values)
    n = len(xs)
    half = _Z * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half) - 1)  # 1-based rank floor(n/2 - half), 0-based index
    hi = min(n - 1, math.ceil(n / 2 + half) - 1)
    return statistics.median(xs), xs[lo], xs[hi]


def _with_ci(values: list[float], digits: int = 4) -> MedianWithInterval:
    m, lo, hi = median_interval(values)
    return {"median": round(m, digits), "ci": [round(lo, digits), round(hi, digits)]}


def read_cpu_pressure_us() -> int | None:
    """Cumulative µs some task waited for a CPU (/proc/pressure/cpu, `some total=`), or None without PSI."""
    try:
        with open("/proc/pressure/cpu", encoding="ascii") as f:
            for line in f:
                if line.startswith("some "):
                    for field in line.split():
                        if field.startswith("total="):
                            return int(field[len("total=") :])
    except (OSError, ValueError):
        return None
    return None


def load_per_cpu(own_threads: int) -> float | None:
    """1-minute load average per CPU, without this process's own busy threads; None where unknown."""
    try:
        load1 = os.getloadavg()[0]
    except (OSError, AttributeError):
        return None
    cpus = os.cpu_count() or 1
    return max(0.0, load1 - own_threads) / cpus


class _Noise:
    """Watches the host while one attempt samples."""

    def __init__(self, own_threads: int) -> None:
        self.own_threads = own_threads
        self.start_us = read_cpu_pressure_us()
        self.start = time.perf_counter()

    def stop(self) -> tuple[float | None, float | None, list[str]]:
        wall_us = (time.perf_counter() - self.start) * 1e6
        end_us = read_cpu_pressure_us()
        pressure = None
        if self.start_us is not None and end_us is not None and wall_us > 0:
            pressure = max(0.0, (end_us - self.start_us) / wall_us)
        load = load_per_cpu(self.own_threads)
        reasons = []
        if pressure is not None and pressure > NOISY_PRESSURE:
            reasons.append(f"CPU pressure {pressure:.0%} of the time (other work wanted the CPUs)")
        elif pressure is None and load is not None and load > NOISY_LOAD_PER_CPU:
            reasons.append(f"load average {load:.2f} per CPU beyond this build's own threads")
        return pressure, load, reasons


def _pair(eager: Callable[[], Any], compiled: Callable[[], Any], device: str, flip: bool) -> tuple[float, float]:
    """One eager and one compiled call (ms), in the order `flip` says."""
    times = [0.0, 0.0]
    order = ((1, compiled), (0, eager)) if flip else ((0, eager), (1, compiled))
    for i, fn in order:
        start = time.perf_counter()
        fn()
        sync(device)
        times[i] = (time.perf_counter() - start) * 1000.0
    return times[0], times[1]


def _measure_size(
    eager: Callable[[], Any], compiled: Callable[[], Any], device: str, *, warmup: int, runs: int, deadline: float
) -> tuple[list[float], list[float], int]:
    """Warm-up pairs, then sampled pairs; past `deadline` (perf_counter) it stops as soon as one pair is sampled."""
    ratios: list[float] = []
    pairs = 0
    while pairs < WARMUP_MAX and time.perf_counter() < deadline:
        e, c = _pair(eager, compiled, device, flip=pairs % 2 == 1)
        pairs += 1
        ratios.append(e / c if c > 0 else 0.0)
        if pairs >= max(warmup, 2 * WINDOW):
            recent = statistics.median(ratios[-WINDOW:])
            before = statistics.median(ratios[-2 * WINDOW : -WINDOW])
            if before > 0 and abs(recent - before) / before < STABLE_REL:
                break
    eager_ms: list[float] = []
    compiled_ms: list[float] = []
    started = time.perf_counter()
    while len(eager_ms) < MAX_SAMPLES:
        e, c = _pair(eager, compiled, device, flip=len(eager_ms) % 2 == 1)
        eager_ms.append(e)
        compiled_ms.append(c)
        n = len(eager_ms)
        if time.perf_counter() >= deadline:
            break  # the measurement's bound (the job's timing.maxSeconds): fewer samples, never a longer hold
        if n < runs:
            continue
        if n % 5 == 0:
            m, lo, hi = median_interval([a / b for a, b in zip(eager_ms, compiled_ms, strict=True) if b > 0])
            if m > 0 and max(m - lo, hi - m) / m <= TARGET_REL:
                break
        if time.perf_counter() - started > BUDGET_S:
            break
    return eager_ms, compiled_ms, pairs


def measure(
    sizes: list[tuple[Callable[[], Any], Callable[[], Any], list[list[int]]]],
    *,
    device: str,
    warmup: int,
    runs: int,
    threads: int,
    lock_wait_ms: float,
    max_seconds: float | None = None,
) -> dict[str, Any]:
    """Times (portable, compiled) call pairs per input size; returns the manifest's `timing` (see module docs).

    `max_seconds` bounds the whole measurement (warm-up and re-measuring included): a slow model is measured with
    fewer samples, and marked `truncated` and `uncertain`, rather than holding the host's exclusive timing lock (and
    every other build's compile) for as long as it takes. At least one pair per size is always measured.
    """
    per_input: list[TimingPerInput] = []
    noise: TimingNoise = {
        "cpuPressure": None,
        "loadPerCpu": None,
        "lockWaitMs": round(lock_wait_ms, 1),
        "attempts": 0,
        "reasons": [],
    }
    if lock_wait_ms > LONG_LOCK_WAIT_MS:
        warmup = max(warmup, 3 * WINDOW)  # the compilers that held the host just evicted everything from the caches
    worst_pressure: float | None = None
    worst_load: float | None = None
    still_noisy: list[str] = []
    began = time.perf_counter()
    deadline = began + max_seconds if max_seconds is not None else math.inf
    truncated = False
    for eager, compiled, shapes in sizes[:MAX_SIZES]:
        best: tuple[float, list[float], list[float], int, float | None, float | None, list[str]] | None = None
        for attempt in range(MAX_ATTEMPTS):
            if attempt > 0 and time.perf_counter() - began > TOTAL_BUDGET_S:
                break
            noise["attempts"] += 1
            watch = _Noise(threads)
            eager_ms, compiled_ms, pairs = _measure_size(
                eager, compiled, device, warmup=warmup, runs=runs, deadline=deadline
            )
            pressure, load, reasons = watch.stop()
            score = pressure if pressure is not None else (load or 0.0)
            if best is None or score < best[0]:
                best = (score, eager_ms, compiled_ms, pairs, pressure, load, reasons)
            if not reasons:
                break
        assert best is not None
        _, eager_ms, compiled_ms, pairs, pressure, load, reasons = best
        truncated = truncated or len(eager_ms) < runs
        if pressure is not None:
            worst_pressure = max(worst_pressure or 0.0, pressure)
        if load is not None:
            worst_load = max(worst_load or 0.0, load)
        still_noisy += [f"inputs {shapes}: {r}" for r in reasons]
        ratios = [a / b for a, b in zip(eager_ms, compiled_ms, strict=True) if b > 0]
        per_input.append(
            {
                "inputShapes": shapes,
                "samples": len(eager_ms),
                "warmupPairs": pairs,
                "eagerMs": _with_ci(eager_ms),
                "compiledMs": _with_ci(compiled_ms),
                "speedup": _with_ci(ratios, 3),
            }
        )
    noise["cpuPressure"] = None if worst_pressure is None else round(worst_pressure, 3)
    noise["loadPerCpu"] = None if worst_load is None else round(worst_load, 3)
    first = per_input[0]
    m = first["speedup"]["median"]
    lo, hi = first["speedup"]["ci"]
    wide = m <= 0 or max(m - lo, hi - m) / m > UNCERTAIN_REL
    if wide:
        still_noisy.append(f"the interval of the speedup ({lo}–{hi}) is wider than ±{UNCERTAIN_REL:.0%}")
    if truncated:
        still_noisy.append(f"the timing's bound of {max_seconds:g} s ended it before {runs} samples")
    noise["reasons"] = still_noisy
    return {
        "eagerMs": first["eagerMs"]["median"],
        "compiledMs": first["compiledMs"]["median"],
        "speedup": m,
        "runs": first["samples"],
        "threads": threads,
        "inputShapes": first["inputShapes"],
        "method": METHOD,
        "speedupCi": [lo, hi],
        "confidence": CONFIDENCE,
        "uncertain": bool(still_noisy),
        "noise": noise,
        "perInput": per_input,
        "truncated": truncated,
    }
