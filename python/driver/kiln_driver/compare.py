"""Comparing the compiled artifact with the portable graph, and timing them."""

from __future__ import annotations

from typing import Any, TypedDict


class Comparison(TypedDict):
    passed: bool
    maxAbsError: float
    maxRelError: float
    problems: list[str]


def compare_outputs(expected: Any, actual: Any, atol: float, rtol: float) -> Comparison:
    """allclose(actual, expected) leaf by leaf; errors in float64, rel = abs / max(|expected|, tiny)."""
    import torch
    from torch.utils._pytree import tree_flatten

    exp_leaves, _ = tree_flatten(expected)
    act_leaves, _ = tree_flatten(actual)
    problems: list[str] = []
    max_abs = max_rel = 0.0
    if len(exp_leaves) != len(act_leaves):
        return {
            "passed": False,
            "maxAbsError": float("inf"),
            "maxRelError": float("inf"),
            "problems": [f"{len(act_leaves)} outputs, expected {len(exp_leaves)}"],
        }
    for i, (e, a) in enumerate(zip(exp_leaves, act_leaves, strict=True)):
        if not isinstance(e, torch.Tensor) or not isinstance(a, torch.Tensor):
            if isinstance(e, torch.Tensor) != isinstance(a, torch.Tensor) or e != a:
                problems.append(f"output {i}: {a!r} != {e!r}")
            continue
        if e.shape != a.shape:
            problems.append(f"output {i}: shape {tuple(a.shape)}, expected {tuple(e.shape)}")
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
            problems.append(f"output {i}: max abs error {float(diff.max()):.3g} exceeds atol={atol} rtol={rtol}")
    return {"passed": not problems, "maxAbsError": max_abs, "maxRelError": max_rel, "problems": problems}


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
