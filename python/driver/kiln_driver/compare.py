"""Comparing the compiled artifact with the portable graph, and timing them."""

from __future__ import annotations

from typing import Any, TypedDict


class Comparison(TypedDict):
    passed: bool
    maxAbsError: float
    maxRelError: float
    problems: list[str]
    # What each problem is (parallel to `problems`): "count", "structure", "type", "dtype", "shape" or "value".
    # Only "value" is a numeric difference (beyond the tolerance); the others mean the artifact does not
    # return what the portable graph returns, whatever the numbers.
    kinds: list[str]


def describe(value: Any) -> str:
    """'a 0-d int64 tensor', 'an int': how an output reads in a reason."""
    import torch

    if isinstance(value, torch.Tensor):
        return f"a {value.dim()}-d {str(value.dtype).removeprefix('torch.')} tensor"
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"


def _shown(value: Any) -> str:
    import torch

    if isinstance(value, torch.Tensor):
        return repr(value.item()) if value.numel() == 1 else f"shape {list(value.shape)}"
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "…"


def compare_outputs(expected: Any, actual: Any, atol: float, rtol: float) -> Comparison:
    """Leaf by leaf: the same structure, the same type of each output (a tensor, an int, ...), the same dtype and
    shape of each tensor, then allclose(actual, expected); errors in float64, rel = abs / max(|expected|, tiny).

    A type difference is a mismatch even when the values are equal (an int 4 and a 0-d tensor holding 4): the
    artifact stands in for the portable graph on devices, so it must return the same kinds of values.
    """
    import torch
    from torch.utils._pytree import tree_flatten

    exp_leaves, exp_spec = tree_flatten(expected)
    act_leaves, act_spec = tree_flatten(actual)
    problems: list[str] = []
    kinds: list[str] = []

    def problem(kind: str, text: str) -> None:
        problems.append(text)
        kinds.append(kind)

    max_abs = max_rel = 0.0
    if len(exp_leaves) != len(act_leaves):
        return {
            "passed": False,
            "maxAbsError": float("inf"),
            "maxRelError": float("inf"),
            "problems": [f"the artifact returns {len(act_leaves)} outputs, the portable graph {len(exp_leaves)}"],
            "kinds": ["count"],
        }
    if exp_spec != act_spec:
        problem("structure", f"the outputs are {exp_spec} in the portable graph and {act_spec} in the artifact")
    for i, (e, a) in enumerate(zip(exp_leaves, act_leaves, strict=True)):
        e_tensor, a_tensor = isinstance(e, torch.Tensor), isinstance(a, torch.Tensor)
        if e_tensor != a_tensor or (not e_tensor and type(e) is not type(a)):
            problem(
                "type",
                f"output {i} is {describe(e)} ({_shown(e)}) in the portable graph "
                f"and {describe(a)} ({_shown(a)}) in the artifact",
            )
            continue
        if not e_tensor:
            close = abs(a - e) <= atol + rtol * abs(e) if isinstance(e, float) and isinstance(a, float) else a == e
            if not close:
                problem("value", f"output {i} is {e!r} in the portable graph and {a!r} in the artifact")
            continue
        if e.dtype != a.dtype:
            problem("dtype", f"output {i} is {describe(e)} in the portable graph and {describe(a)} in the artifact")
            continue
        if e.shape != a.shape:
            problem(
                "shape",
                f"output {i} has shape {list(e.shape)} in the portable graph and {list(a.shape)} in the artifact",
            )
            max_abs = max_rel = float("inf")
            continue
        if e.numel() == 0:
            continue
        wide = torch.complex128 if e.is_complex() or a.is_complex() else torch.float64
        e64 = e.detach().to("cpu", wide)
        a64 = a.detach().to("cpu", wide)
        diff = (a64 - e64).abs().to(torch.float64)
        same = (a64 == e64) | (torch.isnan(a64) & torch.isnan(e64))  # equal infs and NaN-for-NaN count as exact
        diff = torch.where(same, torch.zeros_like(diff), torch.nan_to_num(diff, nan=float("inf")))
        tiny = torch.finfo(e.dtype).tiny if e.is_floating_point() or e.is_complex() else 1.0
        rel = diff / e64.abs().to(torch.float64).clamp_min(tiny)
        max_abs = max(max_abs, float(diff.max()))
        max_rel = max(max_rel, float(torch.nan_to_num(rel, nan=0.0).max()))
        if not torch.allclose(a64, e64, atol=atol, rtol=rtol, equal_nan=True):
            problem("value", f"output {i}: max abs error {float(diff.max()):.3g} exceeds atol={atol} rtol={rtol}")
    return {
        "passed": not problems,
        "maxAbsError": max_abs,
        "maxRelError": max_rel,
        "problems": problems,
        "kinds": kinds,
    }


def ieee_fp32(device: str) -> bool:
    """On CUDA, turn TF32 off for matmuls and cuDNN convolutions (cuDNN allows it by default): fp32 is checked as
    IEEE fp32, in the build (inductor reads the flags while compiling) and in the verifier (the portable graph
    and the artifact's cuBLAS/cuDNN calls read them at run time). Returns whether TF32 is still allowed."""
    if not device.startswith("cuda"):
        return False
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # newer torch prefers the fp32_precision API; the flags still work
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        return bool(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
