"""ISA check: which vector register classes the compiled code uses, read from its disassembly.

`cpp.simdlen` alone does not keep AVX-512 out of a build on an AVX-512 host (inductor defaults to
-march=native), and such an artifact dies with SIGILL on an AVX2 device. The disassembly is the truth.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import TypedDict

from .errors import DriverError, ErrorCode

# xmm/ymm/zmm as the contract names them; tmm (AMX tiles) is counted too, so a -march=native leak shows.
REGISTER_CLASSES = ("xmm", "ymm", "zmm", "tmm")
_REGISTER = re.compile(r"%(x|y|z|t)mm\d+")


class IsaCheckResult(TypedDict):
    passed: bool
    forbidden: list[str]
    counts: dict[str, int]


def count_registers(lines: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(REGISTER_CLASSES, 0)
    for line in lines:
        for m in _REGISTER.finditer(line):
            counts[m.group(1) + "mm"] += 1
    return counts


def disassembly_counts(so_path: Path) -> dict[str, int]:
    """Streams `objdump -d` (a big .so disassembles to gigabytes of text) and counts register uses."""
    proc = subprocess.Popen(
        ["objdump", "-d", "--no-show-raw-insn", str(so_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    assert proc.stdout is not None and proc.stderr is not None
    counts = count_registers(proc.stdout)
    stderr = proc.stderr.read()
    if proc.wait() != 0:
        raise DriverError(ErrorCode.DRIVER_CRASHED, f"objdump -d failed on {so_path.name}: {stderr.strip()[:2000]}")
    return counts


def check_isa(so_paths: list[Path], forbidden: list[str]) -> IsaCheckResult:
    total = dict.fromkeys(REGISTER_CLASSES, 0)
    for so in so_paths:
        for cls, n in disassembly_counts(so).items():
            total[cls] += n
    bad = [cls for cls in forbidden if total.get(cls, 0) > 0]
    return {"passed": not bad, "forbidden": list(forbidden), "counts": total}
