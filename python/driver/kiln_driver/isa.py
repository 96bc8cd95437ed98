"""ISA check: which vector register classes the compiled code uses, read from its disassembly, and the x86-64
level that code really needs.

`cpp.simdlen` alone does not keep AVX-512 out of a build on an AVX-512 host (inductor defaults to
-march=native), and such an artifact dies with SIGILL on an AVX2 device. The disassembly is the truth.

GPU artifacts have host code too: the wrapper `.so` that launches the kernels. torch 2.11 has no `cpp.march`, so
that code is built with -march=native for the build host's CPU (an H100 host's CUDA artifact had 27 zmm uses).
`required_x86_level` turns the disassembly into the level a device CPU must reach, and the manifest requires it.
Register classes alone would under-count: with -march=native GCC prefers 256-bit vectors, so AVX-512VL
instructions on ymm registers (vpternlogd, masked moves) and BMI2 on general registers (shlx, rorx) show up
without any zmm or ymm. Those are counted as `evidence`.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import TypedDict

from .errors import DriverError, ErrorCode

# xmm/ymm/zmm as the contract names them; tmm (AMX tiles) and k (AVX-512 opmask registers) are counted too,
# so a -march=native leak shows.
REGISTER_CLASSES = ("xmm", "ymm", "zmm", "tmm", "k")
_REGISTER = re.compile(r"%(?:([xyzt])mm(\d+)|k([0-7])\b)")
# AVX-512-only instructions that may use xmm/ymm registers (AVX-512VL) or none at all: EVEX-only mnemonics.
_AVX512_MNEMONIC = re.compile(
    r"^(?:vpternlog|vperm[it]2|vpro[lr]|vpmov(?:[dqw][bdw]|s[dqw]|us[dqw]|[bdqw]2m|m2[bdqw])|vpcompress|vcompress|"
    r"vpexpand|vexpand|vpconflict|vplzcnt|vrndscale|vreduce|vgetexp|vgetmant|vscalef|vfixupimm|vrcp14|vrsqrt14|"
    r"vpabsq|vp(?:max|min)[su]q|vpsraq|vpmullq|vcvt(?:t?p[sd]2u[dq]q?|t?p[sd]2qq|u[dq]q2p[sd]|qq2p[sd]|usi2s[sd]|t?s[sd]2usi)|"
    r"vbroadcast[fi](?:32x[248]|64x[24])|vextract[fi](?:32x[48]|64x[24])|vinsert[fi](?:32x[48]|64x[24])|"
    r"vshuf[fi](?:32x4|64x2)|valign[dq]|vpblendm|vblendm|vptestn?m|vmovdq[au](?:8|16|32|64)|vpcmpu?[bwdq]\b|"
    r"vpbroadcastm|vpermw|vpsrlvw|vpsravw|vpsllvw|vpdp|vdpbf16|vcvtne2?ps2bf16|kmov|kand|kor|kxor|kxnor|knot|"
    r"kortest|ktest|kshift|kunpck|kadd)"
)
# x86-64-v3 instructions on general registers: BMI1, BMI2, LZCNT, MOVBE. Not tzcnt: compilers emit `rep bsf`
# for any CPU (it runs as bsf where TZCNT is missing) and objdump shows it as tzcnt.
_V3_SCALAR_MNEMONIC = re.compile(
    r"^(?:andn|bextr|blsi|blsmsk|blsr|bzhi|mulx|pdep|pext|rorx|sarx|shlx|shrx|lzcnt|movbe)[lqw]?$"
)


class IsaEvidence(TypedDict):
    avx512: int
    v3Scalar: int


class IsaCheckResult(TypedDict):
    passed: bool
    forbidden: list[str]
    counts: dict[str, int]
    evidence: IsaEvidence
    requiredX86Level: int | None


def _mnemonic(line: str) -> str:
    """The instruction of an objdump line ("  1139:\tvpternlogd $0x96,%ymm1,...") without prefixes."""
    parts = line.split("\t")
    if len(parts) < 2:
        return ""
    words = parts[-1].split()
    while words and words[0] in ("lock", "rep", "repz", "repnz", "repe", "repne", "notrack", "bnd", "{evex}"):
        words = words[1:]
    return words[0] if words else ""


def count_registers(lines: Iterable[str]) -> dict[str, int]:
    return scan_disassembly(lines)[0]


def scan_disassembly(lines: Iterable[str]) -> tuple[dict[str, int], IsaEvidence]:
    """Register-class counts and AVX-512 / v3-scalar evidence of `objdump -d` output."""
    counts = dict.fromkeys(REGISTER_CLASSES, 0)
    evidence: IsaEvidence = {"avx512": 0, "v3Scalar": 0}
    for line in lines:
        avx512 = False
        for m in _REGISTER.finditer(line):
            if m.group(3) is not None:
                counts["k"] += 1
                avx512 = True
            else:
                counts[m.group(1) + "mm"] += 1
                avx512 = avx512 or (m.group(1) in "xy" and int(m.group(2)) >= 16)
        mnemonic = _mnemonic(line)
        if avx512 or _AVX512_MNEMONIC.match(mnemonic):
            evidence["avx512"] += 1
        elif _V3_SCALAR_MNEMONIC.match(mnemonic):
            evidence["v3Scalar"] += 1
    return counts, evidence


def required_x86_level(counts: dict[str, int], evidence: IsaEvidence, target_level: int | None) -> int | None:
    """The x86-64 level the code needs: the target's, raised by what the machine code shows.

    zmm, opmask or other AVX-512-only instructions ⇒ 4; ymm or BMI/LZCNT/MOVBE ⇒ 3; else the target's level
    (None for a GPU target whose host code shows neither: SSE2 is part of every x86-64 CPU).
    """
    seen = None
    if counts.get("zmm", 0) or counts.get("k", 0) or evidence["avx512"]:
        seen = 4
    elif counts.get("ymm", 0) or evidence["v3Scalar"]:
        seen = 3
    if target_level is None:
        return seen
    return max(target_level, seen or 0)


def disassembly_counts(so_path: Path) -> tuple[dict[str, int], IsaEvidence]:
    """Streams `objdump -d` (a big .so disassembles to gigabytes of text) and counts register uses."""
    proc = subprocess.Popen(
        ["objdump", "-d", "--no-show-raw-insn", str(so_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    assert proc.stdout is not None and proc.stderr is not None
    counts = scan_disassembly(proc.stdout)
    stderr = proc.stderr.read()
    if proc.wait() != 0:
        raise DriverError(ErrorCode.DRIVER_CRASHED, f"objdump -d failed on {so_path.name}: {stderr.strip()[:2000]}")
    return counts


# aarch64 (a cross build's code, read with the cross binutils' objdump): NEON vector registers (v0.4s, q1, d2 in
# vector forms) and SVE's scalable vectors and predicates (z0.s, p0/z). armv8-a devices without SVE (Graviton2,
# Raspberry Pi, Jetson) die with SIGILL on SVE code, so the linux-aarch64 recipe forbids it.
AARCH64_REGISTER_CLASSES = ("neon", "sve")
_NEON = re.compile(r"\bv(?:[12]?[0-9]|3[01])\.(?:16b|8b|8h|4h|4s|2s|2d|1d|b|h|s|d)\b|\bq(?:[12]?[0-9]|3[01])\b")
_SVE = re.compile(r"\bz(?:[12]?[0-9]|3[01])\.[bhsdq]\b|\bp(?:1[0-5]|[0-9])/[zm]\b")
AARCH64_OBJDUMP = "aarch64-linux-gnu-objdump"


def scan_aarch64_disassembly(lines: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(AARCH64_REGISTER_CLASSES, 0)
    for line in lines:
        parts = line.split("\t", 2)
        if len(parts) < 3:  # not an instruction line ("  1139:\tfmax\tv0.4s, v0.4s, v1.4s")
            continue
        operands = parts[2]
        counts["neon"] += len(_NEON.findall(operands))
        counts["sve"] += len(_SVE.findall(operands))
    return counts


def objdump_for(arch: str) -> str:
    """The objdump that reads `arch`'s machine code: the host's for x86-64, the cross binutils' for aarch64."""
    return AARCH64_OBJDUMP if arch == "aarch64" else "objdump"


def check_isa_aarch64(so_paths: list[Path], forbidden: list[str]) -> IsaCheckResult:
    """The aarch64 counterpart of check_isa: NEON and SVE register uses; a forbidden class present fails."""
    total = dict.fromkeys(AARCH64_REGISTER_CLASSES, 0)
    for so in so_paths:
        proc = subprocess.Popen(
            [AARCH64_OBJDUMP, "-d", "--no-show-raw-insn", str(so)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        assert proc.stdout is not None and proc.stderr is not None
        for cls, n in scan_aarch64_disassembly(proc.stdout).items():
            total[cls] += n
        stderr = proc.stderr.read()
        if proc.wait() != 0:
            raise DriverError(ErrorCode.DRIVER_CRASHED, f"{AARCH64_OBJDUMP} -d failed on {so.name}: {stderr[:2000]}")
    bad = [cls for cls in forbidden if total.get(cls, 0) > 0]
    return {
        "passed": not bad,
        "forbidden": list(forbidden),
        "counts": total,
        "evidence": {"avx512": 0, "v3Scalar": 0},
        "requiredX86Level": None,
    }


def check_isa(so_paths: list[Path], forbidden: list[str], target_level: int | None = None) -> IsaCheckResult:
    """Forbidden register classes, and the level the code needs. A CPU target (with a level) whose code needs a
    higher level fails too: its devices would die with SIGILL. A GPU target (no level) requires what it needs."""
    total = dict.fromkeys(REGISTER_CLASSES, 0)
    evidence: IsaEvidence = {"avx512": 0, "v3Scalar": 0}
    for so in so_paths:
        counts, ev = disassembly_counts(so)
        for cls, n in counts.items():
            total[cls] += n
        for key in evidence:
            evidence[key] += ev[key]  # type: ignore[literal-required]
    bad = [cls for cls in forbidden if total.get(cls, 0) > 0]
    level = required_x86_level(total, evidence, target_level)
    above_target = target_level is not None and level is not None and level > target_level
    return {
        "passed": not bad and not above_target,
        "forbidden": list(forbidden),
        "counts": total,
        "evidence": evidence,
        "requiredX86Level": level,
    }
