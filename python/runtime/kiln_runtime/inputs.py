"""Inputs for `kiln-device run`, synthesized from the portable graph's declared user inputs (never from the
pickled sample inputs): dtype, shape and strides from each placeholder, every dynamic dim a seeded random
size inside its range constraint (capped so a test run stays small)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from .errors import ErrorCode, LoadError

MAX_DYNAMIC_SIZE = 64  # a dynamic dim with a larger (or no) upper bound is drawn from [low, low + 63]


@dataclass
class SynthesizedInputs:
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    flat: list[Any]
    sizes: dict[str, int]  # symbol -> chosen size

    def shapes(self) -> list[str]:
        return [
            f"{str(v.dtype).removeprefix('torch.')}{list(v.shape)}" if hasattr(v, "shape") else repr(v)
            for v in self.flat
        ]

    def clone(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        from torch.utils._pytree import tree_map

        def copy(v: Any) -> Any:
            return v.clone() if hasattr(v, "clone") else v

        return tree_map(copy, self.args), tree_map(copy, self.kwargs)


def _bound(value: Any) -> int | None:
    try:
        if value.is_infinite or str(value) in ("int_oo", "-int_oo", "oo", "-oo"):
            return None
    except AttributeError:
        pass
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _unsupported(message: str) -> LoadError:
    return LoadError(ErrorCode.RUN_FAILED, f"cannot synthesize inputs: {message}")


def synthesize_inputs(program: Any, seed: int = 0) -> SynthesizedInputs:
    import sympy
    import torch
    from torch.export.graph_signature import ConstantArgument, InputKind
    from torch.utils._pytree import tree_unflatten

    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    vals: list[Any] = []
    for spec in program.graph_signature.input_specs:
        if spec.kind != InputKind.USER_INPUT:
            continue
        if isinstance(spec.arg, ConstantArgument):
            vals.append(("const", spec.arg.value))
        elif getattr(spec.arg, "name", None) in placeholders:
            vals.append(placeholders[spec.arg.name].meta.get("val"))
        else:
            raise _unsupported(f"user input {spec.arg} has no placeholder")

    rng = random.Random(seed)
    ranges = {str(sym): vr for sym, vr in program.range_constraints.items()}
    symbols: dict[str, Any] = {}
    for val in vals:
        dims = [*val.shape, *val.stride()] if isinstance(val, torch.Tensor) else [val]
        for d in dims:
            if isinstance(d, torch.SymInt):
                for sym in d.node.expr.free_symbols:
                    symbols[str(sym)] = sym
    sizes: dict[str, int] = {}
    for name in sorted(symbols):
        vr = ranges.get(name)
        lo = (_bound(vr.lower) if vr is not None else None) or 0
        hi = _bound(vr.upper) if vr is not None else None
        low = max(lo, 1) if hi is None or hi >= 1 else lo
        high = min(hi if hi is not None else low + MAX_DYNAMIC_SIZE - 1, low + MAX_DYNAMIC_SIZE - 1)
        sizes[name] = rng.randint(low, max(low, high))
    assignment = {symbols[n]: sympy.Integer(v) for n, v in sizes.items()}

    def concrete(d: Any) -> int:
        if isinstance(d, torch.SymInt):
            value = d.node.expr.xreplace(assignment)
            if not value.is_number:
                raise _unsupported(f"size expression {d.node.expr} has unknown symbols")
            return int(value)
        return int(d)

    gen = torch.Generator().manual_seed(seed)
    flat: list[Any] = []
    for val in vals:
        if isinstance(val, tuple) and len(val) == 2 and val[0] == "const":
            flat.append(val[1])
        elif isinstance(val, torch.Tensor):
            shape = [concrete(d) for d in val.shape]
            dtype = val.dtype
            if dtype == torch.bool:
                t = torch.rand(shape, generator=gen) < 0.5
            elif dtype.is_floating_point or dtype.is_complex:
                t = torch.randn(shape, generator=gen).to(dtype)
            else:
                t = torch.randint(0, 2, shape, generator=gen).to(dtype)
            stride = [concrete(d) for d in val.stride()]
            if math.prod(shape) > 0 and list(t.stride()) != stride:
                try:  # keep the layout the program was exported with (AOTI checks strides)
                    strided = torch.empty_strided(shape, stride, dtype=dtype)
                    strided.copy_(t)
                    t = strided
                except RuntimeError:
                    pass
            flat.append(t.to(val.device))
        elif isinstance(val, torch.SymInt):
            flat.append(concrete(val))
        elif val is None or isinstance(val, (int, float, bool, str)):
            flat.append(val)
        else:
            raise _unsupported(f"user input of type {type(val).__name__}")
    in_spec = program.call_spec.in_spec
    if in_spec is None:
        return SynthesizedInputs(tuple(flat), {}, flat, sizes)
    args, kwargs = tree_unflatten(flat, in_spec)
    return SynthesizedInputs(tuple(args), dict(kwargs), flat, sizes)
