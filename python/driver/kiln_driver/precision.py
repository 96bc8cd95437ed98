"""Reduced-precision variants (recipe `precision: 'bf16' | 'fp16'`): the program converted before compiling.

The converted program keeps the portable graph's interface: floating inputs are cast to the target dtype on the
way in and floating outputs back to their original dtype on the way out, so a device can swap a bf16 artifact
for the fp32 one (or the portable graph) without touching its calling code, and the verifier compares it with
the fp32 portable graph directly. Inside, every floating weight, buffer and constant is in the target dtype.

How: `ep.module()` (deep-copied: it shares its tensors with the ExportedProgram) → floating parameters, buffers
and tensor constants cast → wrapped in the casting module → `torch.export.export` again with the program's own
dynamic dims (same symbols, same ranges, taken from the input plan) → run once on the example inputs (export
traces with fake tensors, which do not know which dtypes each kernel supports). Anything that fails on the way
(an op with no kernel for the dtype, mixed dtypes the program creates itself, a derived dynamic dim) is
PRECISION_UNSUPPORTED: deterministic, and it says why. Models whose numerics do not survive the dtype fail
verification instead (NUMERIC_MISMATCH, with the precision in the message).
"""

from __future__ import annotations

import copy
import inspect
import re
from pathlib import Path
from typing import Any

from .errors import DriverError, ErrorCode, short_traceback
from .inputs import InputPlan, call_args
from .progress import log

_SIMPLE_SYMBOL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def torch_dtype(precision: str) -> Any:
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _unsupported(precision: str, reason: str, **details: Any) -> DriverError:
    return DriverError(
        ErrorCode.PRECISION_UNSUPPORTED,
        f"this model cannot be built in {precision}: {reason}",
        {"precision": precision, "reason": reason, **details},
    )


def _user_output_dtypes(ep: Any) -> list[Any]:
    """The dtype of each user output of the program (None for non-tensor outputs), in output order."""
    import torch
    from torch.export.graph_signature import OutputKind

    nodes = {n.name: n for n in ep.graph.nodes}
    dtypes: list[Any] = []
    for spec in ep.graph_signature.output_specs:
        if spec.kind != OutputKind.USER_OUTPUT:
            continue
        node = nodes.get(getattr(spec.arg, "name", None) or "")
        val = node.meta.get("val") if node is not None else None
        dtypes.append(val.dtype if isinstance(val, torch.Tensor) else None)
    return dtypes


def _cast_tensor_attributes(module: Any, dtype: Any) -> int:
    """Floating tensors held as plain attributes (lifted constants) are not parameters or buffers: cast them too."""
    import torch

    n = 0
    for sub in module.modules():
        for name, value in list(vars(sub).items()):
            if isinstance(value, torch.nn.Parameter) or not isinstance(value, torch.Tensor):
                continue
            if value.is_floating_point():
                setattr(sub, name, value.to(dtype))
                n += 1
    return n


def _casting_module(inner: Any, dtype: Any, out_dtypes: list[Any]) -> Any:
    import torch
    from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

    class CastingModule(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            def cast_in(v: Any) -> Any:
                return v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v

            def cast_out(v: Any, want: Any) -> Any:
                if isinstance(v, torch.Tensor) and want is not None and v.is_floating_point() and v.dtype != want:
                    return v.to(want)
                return v

            args, kwargs = tree_map(cast_in, (args, kwargs))
            out = self.inner(*args, **kwargs)
            leaves, spec = tree_flatten(out)
            wants = out_dtypes + [None] * (len(leaves) - len(out_dtypes))
            back = [cast_out(leaf, want) for leaf, want in zip(leaves, wants, strict=True)]
            return tree_unflatten(back, spec)

    # Export binds inputs to the names of forward's signature: give it the program's own (x, y, ...), so keyword
    # inputs and per-name dynamic shapes line up as they did in the original export.
    signature = inspect.signature(inner.forward)
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    CastingModule.forward.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[self_param, *signature.parameters.values()]
    )
    return CastingModule()


def _dynamic_shapes(plan: InputPlan, flat: list[Any], precision: str) -> dict[int, Any]:
    """Per flat tensor input index: {dim: Dim} for its symbolic dims, with the program's symbols and ranges."""
    import torch
    from torch.export import Dim

    dims: dict[str, Any] = {}
    out: dict[int, Any] = {}
    for i, (symbols, value) in enumerate(zip(plan["dimSymbols"], flat, strict=False)):
        if not isinstance(value, torch.Tensor):
            continue
        spec: dict[int, Any] = {}
        for d, sym in enumerate(symbols):
            if sym is None:
                continue
            if not _SIMPLE_SYMBOL.match(sym) or sym not in plan["symbols"]:
                raise _unsupported(
                    precision,
                    f"input {i} dim {d} has the derived size {sym}; only plain dynamic dims are carried over",
                    input=i,
                    dim=d,
                )
            if sym not in dims:
                choice = plan["symbols"][sym]
                kw: dict[str, int] = {"min": int(choice["min"])}
                if choice["max"] is not None:
                    kw["max"] = int(choice["max"])
                dims[sym] = Dim(sym, **kw)
            spec[d] = dims[sym]
        if spec:
            out[i] = spec
    return out


def _round_trip(converted: Any, device: str, work: Path | None) -> Any:
    """Saves and reloads the converted program, as the uploaded one was. Export leaves its own shape environment
    on the program, where each dynamic dim is assumed >= 2 while tracing (torch specializes sizes 0 and 1): compiled
    from that, the artifact accepts batch [2, 256] where the program declares [1, 256] (seen on CPU and on the H100).
    The archive keeps only the declared ranges, so the reloaded program compiles to the full range."""
    import tempfile

    import torch

    from .compile import load_program, program_on

    with tempfile.TemporaryDirectory(dir=work) as folder:
        path = Path(folder) / "converted.pt2"
        torch.export.save(converted, str(path))
        return program_on(load_program(path), device)


def _shapes_for_wrapper(wrapper: Any, args: Any, kwargs: Any, example: list[Any], shapes: dict[int, Any]) -> Any:
    """`dynamic_shapes` for the casting module, keyed by the input tensors themselves (torch.export.ShapesCollection)
    where this torch has that; else laid out by hand, one entry per parameter of its (the program's) signature."""
    import torch

    collection_cls = getattr(torch.export, "ShapesCollection", None)
    if collection_cls is not None and hasattr(collection_cls, "dynamic_shapes"):
        collection = collection_cls()
        for i, spec in shapes.items():
            collection[example[i]] = spec
        return collection.dynamic_shapes(wrapper, args, kwargs)
    from torch.utils._pytree import tree_flatten, tree_unflatten

    _, spec = tree_flatten((args, kwargs))
    args_specs, kwargs_specs = tree_unflatten([shapes.get(i) for i in range(len(example))], spec)
    # One entry per parameter of forward's signature (the program's own), in its order, as export binds inputs.
    return tuple(inspect.signature(wrapper.forward).bind(*args_specs, **kwargs_specs).arguments.values())


def convert_program(ep: Any, precision: str, plan: InputPlan, example: list[Any], work: Path | None = None) -> Any:
    """The ExportedProgram computing in `precision`, with the same interface; `ep` itself is left untouched.

    `example`: one materialized input set (flat, in the program's dtypes) to export with. `work`: a folder for the
    converted program's archive (default: a temporary one).
    """
    import torch

    if precision == "fp32":
        return ep
    dtype = torch_dtype(precision)
    module = copy.deepcopy(ep.module())  # ep.module() shares parameters with ep: never cast those in place
    tensors = [*module.parameters(), *module.buffers()]
    if any(t.is_complex() for t in tensors) or any(isinstance(v, torch.Tensor) and v.is_complex() for v in example):
        raise _unsupported(precision, "the model has complex tensors")
    floating_state = sum(1 for t in tensors if t.is_floating_point())
    floating_inputs = sum(1 for v in example if isinstance(v, torch.Tensor) and v.is_floating_point())
    if floating_state == 0 and floating_inputs == 0:
        raise _unsupported(precision, "it has no floating-point weights or inputs: there is nothing to convert")
    module.to(dtype)
    constants = _cast_tensor_attributes(module, dtype)
    wrapper = _casting_module(module, dtype, _user_output_dtypes(ep))
    shapes = _dynamic_shapes(plan, example, precision)

    args, kwargs = call_args(ep, example)
    log.info(
        "converting to %s: %d floating weights/buffers, %d constants, %d floating inputs; dynamic dims %s",
        precision,
        floating_state,
        constants,
        floating_inputs,
        {i: {d: str(dim) for d, dim in s.items()} for i, s in shapes.items()},
    )
    try:
        with torch.no_grad():
            dynamic_shapes = _shapes_for_wrapper(wrapper, args, kwargs, example, shapes) if shapes else None
            converted = torch.export.export(wrapper, args, kwargs, dynamic_shapes=dynamic_shapes, strict=False)
    except Exception as exc:
        text = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        log.error("conversion to %s failed: %s", precision, text)
        raise _unsupported(
            precision, f"re-exporting it in {precision} failed ({text[:500]})", traceback=short_traceback(exc)
        ) from exc
    # Export traces with fake tensors, which do not know which dtypes each kernel supports: run it once for real
    # (e.g. linalg.inv has no bf16 kernel; a tensor the program creates in an explicit fp32 meets a bf16 one).
    try:
        with torch.no_grad():
            converted.module()(*args, **kwargs)
    except Exception as exc:
        text = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        log.error("the program converted to %s does not run: %s", precision, text)
        reason = f"the program converted to {precision} does not run ({text[:500]})"
        raise _unsupported(precision, reason, traceback=short_traceback(exc)) from exc
    device = next((v.device.type for v in example if isinstance(v, torch.Tensor)), "cpu")
    converted = _round_trip(converted, device, work)
    # The casts must not have changed which sizes the program accepts.
    before = {str(k): (str(v.lower), str(v.upper)) for k, v in ep.range_constraints.items()}
    after = {str(k): (str(v.lower), str(v.upper)) for k, v in converted.range_constraints.items()}
    if sorted(before.values()) != sorted(after.values()):
        raise _unsupported(
            precision,
            f"the converted program accepts other input sizes ({after}) than the original ({before})",
        )
    return converted
