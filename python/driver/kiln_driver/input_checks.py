"""The input ranges a compiled artifact really accepts, read from the checks AOTInductor generates.

A dynamic dim's range can be NARROWER in the compiled artifact than in the program: while compiling,
inductor evaluates size-dependent heuristics on the example size and turns the branch it took into a guard.
Seen here: the CNN fixture declares batch in [1, 32]; the conv fake kernel picks a backend by batch size, adds
`s77 > 1` and `s77 < 16`, and the artifact accepts only [2, 15]. With AOTI_RUNTIME_CHECK_INPUTS=1 other sizes
raise; without it they run code compiled for other sizes. The wrapper source holds those checks as text
generated from one template (torch/_inductor/codegen/cpp_wrapper_cpu.py), which is what we read here.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any, TypedDict

from .errors import DriverError, ErrorCode
from .inputs import InputPlan

_TOO_SMALL = re.compile(r'(\w+)\[(\d+)\]: dim value is too small at (\d+), "\s*<< "expected it to be >= (-?\d+)')
_TOO_LARGE = re.compile(r'(\w+)\[(\d+)\]: dim value is too large at (\d+), "\s*<< "expected to be <= (-?\d+)')
_CHECK_ERROR = re.compile(r"dim value is too (small|large) at \d+")


class AcceptedDim(TypedDict):
    tensorInput: int  # index among the tensor inputs (what the artifact calls input_handles[i])
    dim: int
    min: int | None
    max: int | None


def parse_wrapper_checks(source: str) -> list[AcceptedDim]:
    found: dict[tuple[int, int], AcceptedDim] = {}
    for pattern, key in ((_TOO_SMALL, "min"), (_TOO_LARGE, "max")):
        for m in pattern.finditer(source):
            if m.group(1) != "input_handles":
                continue
            idx, dim = int(m.group(2)), int(m.group(3))
            entry = found.setdefault((idx, dim), {"tensorInput": idx, "dim": dim, "min": None, "max": None})
            entry[key] = int(m.group(4))  # type: ignore[literal-required]
    return [found[k] for k in sorted(found)]


def accepted_dims(package: Path) -> list[AcceptedDim]:
    """The dynamic-dim bounds checked by every `*.wrapper.cpp` in an AOTInductor package."""
    dims: list[AcceptedDim] = []
    with zipfile.ZipFile(package) as z:
        for name in z.namelist():
            if name.endswith(".wrapper.cpp"):
                dims += parse_wrapper_checks(z.read(name).decode("utf-8", "replace"))
    return dims


def is_input_range_error(message: str) -> bool:
    """True for the artifact's own input check refusing a dim size (not a crash inside the model)."""
    return _CHECK_ERROR.search(message) is not None


class NarrowedDim(TypedDict):
    input: int  # user input index
    dim: int
    symbol: str
    declared: list[int | None]  # [min, max]; None = unbounded
    accepted: list[int | None]
    exampleSize: int


_HUGE = 1 << 62  # the generated upper check is clamped to 2**63 - 1: that is "unbounded"


def narrowed_dims(accepted: list[AcceptedDim], plan: InputPlan) -> list[NarrowedDim]:
    """Dims whose size is exactly one symbol, and whose accepted range leaves out declared sizes.

    Size 0 is ignored: inductor always assumes non-empty dims, and Kiln never tests empty tensors.
    """
    tensor_to_user = [i for i, spec in enumerate(plan["sets"][0]) if spec["kind"] == "tensor"]
    narrowed: list[NarrowedDim] = []
    for acc in accepted:
        if acc["tensorInput"] >= len(tensor_to_user):
            continue
        user_input = tensor_to_user[acc["tensorInput"]]
        dims = plan["dimSymbols"][user_input]
        symbol = dims[acc["dim"]] if acc["dim"] < len(dims) else None
        declared = plan["symbols"].get(symbol) if symbol is not None else None
        if symbol is None or declared is None:
            continue
        lo, hi = acc["min"], acc["max"] if acc["max"] is not None and acc["max"] < _HUGE else None
        too_high_min = lo is not None and lo > max(declared["min"], 1)
        too_low_max = hi is not None and (declared["max"] is None or hi < declared["max"])
        if too_high_min or too_low_max:
            narrowed.append(
                {
                    "input": user_input,
                    "dim": acc["dim"],
                    "symbol": symbol,
                    "declared": [declared["min"], declared["max"]],
                    "accepted": [lo, hi],
                    "exampleSize": declared["values"][0],
                }
            )
    return narrowed


def set_is_accepted(shapes: list[list[int]], narrowed: list[NarrowedDim]) -> bool:
    """True when every narrowed dim of this input set lies inside what the artifact accepts."""
    for n in narrowed:
        if n["input"] >= len(shapes) or n["dim"] >= len(shapes[n["input"]]):
            continue
        size = shapes[n["input"]][n["dim"]]
        lo, hi = n["accepted"]
        if (lo is not None and size < lo) or (hi is not None and size > hi):
            return False
    return True


def narrowed_range_error(narrowed: list[NarrowedDim], rejected: list[dict[str, Any]]) -> DriverError:
    """The artifact refuses sizes the program declares valid: say which dims, and what it does accept."""
    summary = "; ".join(
        f"input {n['input']} dim {n['dim']}: accepts {n['accepted']}, the program declares {n['declared']}"
        for n in narrowed
    )
    return DriverError(
        ErrorCode.INPUT_RANGE_NARROWED,
        "the compiled artifact refuses input sizes the program declares valid"
        + (f" ({summary})" if summary else "")
        + ": inductor specialized dynamic dims around the example size; re-export with the accepted range",
        {"rejected": rejected, "narrowedDims": narrowed},
    )
