"""x86-64 micro-architecture levels from Linux /proc/cpuinfo flag names.

The flag lists, labels and implying prefixes are the shared data of libs/targets/src/x86-levels.json, shipped
in this package as contracts/x86-levels.json (a byte-for-byte copy, checked by tests/test_contract_data.py).
The rules mirror libs/targets/src/x86-levels.ts (x86LevelFromFlags, capX86Flags) and the device-level rules of
libs/matching/src/cpu-level.ts: when flags are known they decide; a reported level is only a fallback.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import contracts
from .errors import ErrorCode, UsageError

_DATA: dict[str, Any] = contracts.load("x86-levels.json")

X86_LEVEL_FLAGS: dict[int, tuple[str, ...]] = {
    entry["level"]: tuple(entry["flags"]) for entry in _DATA["levels"] if entry["level"] > 1
}

_LEVEL_LABELS: dict[int, str] = {entry["level"]: entry["label"] for entry in _DATA["levels"]}


def x86_level_from_flags(flags: Iterable[str]) -> int:
    """Highest level whose flags (and those of every lower level) are all present; 1 = baseline x86-64."""
    have = set(flags)
    level = 1
    for candidate in (2, 3, 4):
        if not all(f in have for f in X86_LEVEL_FLAGS[candidate]):
            break
        level = candidate
    return level


# Flag-name prefixes that imply a level (an AVX-512 or AMX flag means v4 hardware, an AVX flag v3 hardware).
_IMPLIED_BY_PREFIX: tuple[tuple[str, int], ...] = tuple((p["prefix"], p["level"]) for p in _DATA["impliedByPrefix"])

X86_LEVEL_CAP_ENV = "KILN_X86_LEVEL_CAP"


def cap_x86_flags(flags: Iterable[str], cap: int | None) -> list[str]:
    """The flags a CPU capped at x86-64-v`cap` would show (mirrors capX86Flags in libs/targets/src/x86-levels.ts)."""
    flags = list(flags)
    if not cap or cap >= 4:
        return flags
    dropped = {f for lvl in (2, 3, 4) if lvl > cap for f in X86_LEVEL_FLAGS[lvl]}
    return [
        f
        for f in flags
        if f not in dropped and not any(level > cap and f.startswith(prefix) for prefix, level in _IMPLIED_BY_PREFIX)
    ]


def x86_level_cap_from_env(value: str | None) -> int | None:
    """KILN_X86_LEVEL_CAP: empty or unset means no cap; otherwise 1-4 (anything else is a configuration error)."""
    if value is None or not value.strip():
        return None
    try:
        cap = int(value.strip())
    except ValueError:
        cap = 0
    if cap not in (1, 2, 3, 4):
        raise UsageError(ErrorCode.USAGE, f"{X86_LEVEL_CAP_ENV}={value!r}: expected an x86-64 level 1-4, or nothing")
    return cap


def missing_x86_flags(flags: Iterable[str], level: int) -> list[str]:
    """Flags of every level up to `level` that are absent, in the catalog's order."""
    have = set(flags)
    return [f for lvl in (2, 3, 4) if lvl <= level for f in X86_LEVEL_FLAGS[lvl] if f not in have]


def describe_x86_level(level: int) -> str:
    label = _LEVEL_LABELS.get(level)
    return f"x86-64-v{level} ({label})" if label else f"x86-64-v{level} (unknown level)"


@dataclass(frozen=True)
class DeviceX86Level:
    level: int
    source: str  # "flags" | "reported" | "baseline"
    ignored_reported_level: int | None = None

    def describe(self) -> str:
        if self.source == "flags":
            if self.ignored_reported_level is None:
                return f"x86-64-v{self.level} (from its CPU flags)"
            return (
                f"x86-64-v{self.level} (from its CPU flags; its reported x86Level "
                f"{self.ignored_reported_level} was ignored: flags win)"
            )
        if self.source == "reported":
            return f"x86-64-v{self.level} (reported level; no CPU flags sent)"
        return "x86-64-v1 (assumed: neither CPU flags nor x86Level sent)"


def device_x86_level(cpu: dict[str, Any]) -> DeviceX86Level:
    flags = cpu.get("flags") or []
    reported = cpu.get("x86Level")
    if flags:
        level = x86_level_from_flags(flags)
        if reported is not None and reported != level:
            return DeviceX86Level(level, "flags", reported)
        return DeviceX86Level(level, "flags")
    if reported is not None:
        return DeviceX86Level(int(reported), "reported")
    return DeviceX86Level(1, "baseline")
