"""Inputs for verification and timing, synthesized from the program's declared user inputs.

The uploaded sample inputs are never unpickled (see neutralize.py). Instead each user input's placeholder
(a fake tensor, or a constant / symbolic scalar) gives dtype, shape and strides; symbolic dims get concrete
sizes inside `ep.range_constraints`. Several sets are planned so that dynamic dims are really exercised:
  1. every symbol at its export hint (the size the user exported with), clamped into its range;
  2. every symbol at a different in-range size (hint + 1, an odd size that hits vector tail loops);
  3. every symbol at the bottom of its range (batch 1 is the common production case);
  4. every symbol at the top of its range, when it has one.
Sets 3 and 4 matter: a compiled artifact can accept a narrower range than the program (input_checks.py).
Duplicate sets are dropped, so a fully static model gets one set. The plan is plain JSON: the verifier
(a fresh process) materializes the tensors from it with the job seed, bit for bit the same each time.
"""

from __future__ import annotations

import math
from typing import Any, Literal, TypedDict

from .errors import DriverError, ErrorCode
from .progress import log

DEFAULT_SIZE = 8  # for a symbol with no recorded hint
# An extra set (beyond the export sizes) may be larger than the first set by this factor or up to this many
# bytes, whichever allows more; bigger ones are skipped (the generated input checks still cover range ends).
MAX_GROWTH = 64
MAX_SET_BYTES = 256 << 20


class TensorInput(TypedDict):
    kind: Literal["tensor"]
    dtype: str
    shape: list[int]
    stride: list[int]


class ValueInput(TypedDict):
    kind: Literal["value"]
    value: int | float | bool | str | None


InputSpec = TensorInput | ValueInput


class SymbolChoice(TypedDict):
    min: int
    max: int | None
    hint: int | None
    values: list[int]


class InputPlan(TypedDict):
    seed: int
    device: str
    symbols: dict[str, SymbolChoice]
    # Per user input, per dim: the symbolic size expression (e.g. "s77"), or None for a static size.
    dimSymbols: list[list[str | None]]
    sets: list[list[InputSpec]]


def _unsupported(message: str) -> DriverError:
    return DriverError(ErrorCode.INVALID_MODEL, f"cannot synthesize inputs: {message}")


def _to_int(value: Any) -> int | None:
    """A bound from a ValueRanges; None for +-infinity (sympy oo or torch's int_oo)."""
    try:
        if value.is_infinite or str(value) in ("int_oo", "-int_oo", "oo", "-oo"):
            return None
    except AttributeError:
        pass
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError, AttributeError):
        return None


def pick_sizes(lo: int, hi: int | None, hint: int | None) -> list[int]:
    """The concrete sizes to try for one symbol, in set order (see module docstring)."""
    low = max(lo, 1) if hi is None or hi >= 1 else lo  # avoid empty tensors unless the range forces them
    high = hi if hi is not None else max(low, hint or DEFAULT_SIZE) + 1

    def clamp(v: int) -> int:
        return min(max(v, low), high)

    first = clamp(hint if hint is not None else DEFAULT_SIZE)
    second = first + 1 if first + 1 <= high else clamp(first - 1)
    return [first, second, low, hi if hi is not None else first]


def _user_input_values(ep: Any) -> list[Any]:
    """Per user input, in call order: its placeholder's `meta['val']`, or ("const", value) for a constant."""
    from torch.export.graph_signature import ConstantArgument, InputKind

    placeholders = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    values: list[Any] = []
    for spec in ep.graph_signature.input_specs:
        if spec.kind != InputKind.USER_INPUT:
            continue
        if isinstance(spec.arg, ConstantArgument):
            values.append(("const", spec.arg.value))
        elif getattr(spec.arg, "name", None) in placeholders:
            values.append(placeholders[spec.arg.name].meta.get("val"))
        else:
            raise _unsupported(f"user input {spec.arg} has no placeholder in the graph")
    return values


def _hints(vals: list[Any]) -> dict[Any, int]:
    import torch

    for val in vals:
        env = None
        fake_mode = getattr(val, "fake_mode", None)
        if isinstance(val, torch.Tensor) and fake_mode is not None:
            env = fake_mode.shape_env
        elif isinstance(val, torch.SymInt):
            env = val.node.shape_env
        if env is not None:
            table = getattr(env, "backed_var_to_val", None) or getattr(env, "var_to_val", {})
            return {k: int(v) for k, v in table.items() if _to_int(v) is not None}
    return {}


def plan_inputs(ep: Any, seed: int, device: str) -> InputPlan:
    """Plan concrete input sets for an ExportedProgram; raises INVALID_MODEL for inputs we cannot build."""
    import sympy
    import torch

    vals = _user_input_values(ep)
    ranges = {str(sym): vr for sym, vr in ep.range_constraints.items()}
    hints = {str(k): v for k, v in _hints(vals).items()}

    symbols: dict[str, Any] = {}

    def collect(dim: Any) -> None:
        if isinstance(dim, torch.SymInt):
            for sym in dim.node.expr.free_symbols:
                symbols[str(sym)] = sym

    for val in vals:
        if isinstance(val, torch.Tensor):
            for d in (*val.shape, *val.stride()):
                collect(d)
        elif isinstance(val, torch.SymInt):
            collect(val)

    choices: dict[str, SymbolChoice] = {}
    for name in sorted(symbols):
        vr = ranges.get(name)
        lo = _to_int(vr.lower) if vr is not None else None
        hi = _to_int(vr.upper) if vr is not None else None
        lo = 0 if lo is None else lo
        choices[name] = {"min": lo, "max": hi, "hint": hints.get(name), "values": pick_sizes(lo, hi, hints.get(name))}

    def concrete(dim: Any, assignment: dict[Any, Any]) -> int:
        if isinstance(dim, torch.SymInt):
            value = dim.node.expr.xreplace(assignment)
            if not value.is_number:
                raise _unsupported(f"size expression {dim.node.expr} has unknown symbols")
            return int(value)
        return int(dim)

    sets: list[list[InputSpec]] = []
    seen: set[str] = set()
    for i in range(4):
        assignment = {symbols[n]: sympy.Integer(c["values"][i]) for n, c in choices.items()}
        specs: list[InputSpec] = []
        for val in vals:
            if isinstance(val, tuple) and len(val) == 2 and val[0] == "const":
                value = val[1]
                if value is not None and not isinstance(value, (int, float, bool, str)):
                    raise _unsupported(f"constant input of type {type(value).__name__}")
                specs.append({"kind": "value", "value": value})
            elif isinstance(val, torch.Tensor):
                if val.layout != torch.strided or val.is_quantized or val.is_nested:
                    raise _unsupported(f"input tensors of layout {val.layout} are not supported")
                specs.append(
                    {
                        "kind": "tensor",
                        "dtype": str(val.dtype).removeprefix("torch."),
                        "shape": [concrete(d, assignment) for d in val.shape],
                        "stride": [concrete(d, assignment) for d in val.stride()],
                    }
                )
            elif isinstance(val, torch.SymInt):
                specs.append({"kind": "value", "value": concrete(val, assignment)})
            elif isinstance(val, (torch.SymFloat, torch.SymBool)):
                hint = val.node.hint
                specs.append({"kind": "value", "value": hint if hint is not None else val.node.pytype(1)})
            elif val is None or isinstance(val, (int, float, bool, str)):
                specs.append({"kind": "value", "value": val})
            else:
                raise _unsupported(f"user input of type {type(val).__name__}")
        key = repr(specs)
        if key in seen:
            continue
        seen.add(key)
        if sets and set_bytes(specs) > max(MAX_GROWTH * set_bytes(sets[0]), MAX_SET_BYTES):
            log.warning("not verifying on inputs %s: too large", input_shapes(specs))
            continue
        sets.append(specs)
    dim_symbols: list[list[str | None]] = [
        [str(d.node.expr) if isinstance(d, torch.SymInt) else None for d in val.shape]
        if isinstance(val, torch.Tensor)
        else []
        for val in vals
    ]
    return {"seed": seed, "device": device, "symbols": choices, "dimSymbols": dim_symbols, "sets": sets}


def set_bytes(specs: list[InputSpec]) -> int:
    import torch

    return sum(math.prod(s["shape"]) * getattr(torch, s["dtype"]).itemsize for s in specs if s["kind"] == "tensor")


def input_shapes(specs: list[InputSpec]) -> list[list[int]]:
    return [list(s["shape"]) if s["kind"] == "tensor" else [] for s in specs]


def _contiguous_strides(shape: list[int]) -> list[int]:
    strides, acc = [], 1
    for size in reversed(shape):
        strides.append(acc)
        acc *= max(size, 1)
    return strides[::-1]


def materialize(specs: list[InputSpec], seed: int, device: str) -> list[Any]:
    """Concrete values for one planned set: floats ~ randn, ints in [0, 2), bools random; same seed, same bits."""
    import torch

    gen = torch.Generator().manual_seed(seed % (1 << 63))
    out: list[Any] = []
    for spec in specs:
        if spec["kind"] == "value":
            out.append(spec["value"])
            continue
        dtype = getattr(torch, spec["dtype"], None)
        if not isinstance(dtype, torch.dtype):
            raise _unsupported(f"unknown dtype {spec['dtype']}")
        shape = spec["shape"]
        if dtype == torch.bool:
            base = torch.rand(shape, generator=gen) < 0.5
        elif dtype.is_complex:
            base = torch.randn(shape, generator=gen, dtype=torch.complex64).to(dtype)
        elif dtype.is_floating_point:
            base = torch.randn(shape, generator=gen).to(dtype)
        else:
            base = torch.randint(0, 2, shape, generator=gen).to(dtype)
        stride = spec["stride"]
        tensor = base
        if stride != _contiguous_strides(shape) and math.prod(shape) > 0:
            try:  # keep the layout the program was exported with (AOTI checks strides too)
                tensor = torch.empty_strided(shape, stride, dtype=dtype)
                tensor.copy_(base)
            except RuntimeError:
                tensor = base
        out.append(tensor.to(device) if device != "cpu" else tensor)
    return out


def call_args(ep: Any, flat: list[Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Flat user inputs -> the (args, kwargs) the program is called with, via its input tree spec."""
    from torch.utils._pytree import tree_unflatten

    in_spec = ep.call_spec.in_spec
    if in_spec is None:
        return tuple(flat), {}
    args, kwargs = tree_unflatten(flat, in_spec)
    return tuple(args), dict(kwargs)
