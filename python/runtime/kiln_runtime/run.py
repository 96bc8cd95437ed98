"""What `kiln-device run` does with a resolver answer: verify and load the choice, run it next to the portable graph on
synthesized inputs of a few sizes, compare, time both, and report the run (telemetry.py) whatever its outcome.

Kept apart from the CLI so that a program can run a resolution exactly as the CLI does (the fleet e2e test runs many
devices of this host's class in one process through it).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from .client import KilnClient
from .errors import ErrorCode, KilnRuntimeError, LoadError, OutputMismatchError
from .resolution import Resolution
from .telemetry import Telemetry

DEFAULT_ATOL, DEFAULT_RTOL = 1e-4, 1e-3


@dataclass(frozen=True)
class RunOptions:
    seed: int = 0
    runs: int = 20
    warmup: int = 3
    atol: float | None = None
    rtol: float | None = None
    fallback: bool = False
    # Input sets of different sizes (seeds seed, seed+1, ...): latency is reported per size.
    sizes: int = 2


def median_ms(a: Any, b: Any, inputs: Any, *, warmup: int, runs: int) -> tuple[float, float]:
    """Median wall time of one call of `a` and of `b`, their calls interleaved so that both see the same
    load on a shared machine (timing one block after the other mostly measures whatever else ran then)."""
    args, kwargs = inputs.args, inputs.kwargs
    for _ in range(warmup):
        a(*args, **kwargs)
        b(*args, **kwargs)
    times_a: list[float] = []
    times_b: list[float] = []
    for _ in range(runs):
        for fn, times in ((a, times_a), (b, times_b)):
            t0 = time.perf_counter()
            fn(*args, **kwargs)
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times_a), statistics.median(times_b)


def compare_outputs(actual: Any, expected: Any, atol: float, rtol: float) -> tuple[float, bool, list[str]]:
    """Max abs error over every output tensor, whether all are within allclose(atol, rtol), and problems."""
    import torch
    from torch.utils._pytree import tree_flatten

    got, _ = tree_flatten(actual)
    want, _ = tree_flatten(expected)
    if len(got) != len(want):
        return float("inf"), False, [f"{len(got)} outputs, the portable graph gives {len(want)}"]
    max_abs, ok, problems = 0.0, True, []
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        if not isinstance(b, torch.Tensor):
            if a != b:
                ok = False
                problems.append(f"output {i}: {a!r} != {b!r}")
            continue
        if not isinstance(a, torch.Tensor) or a.shape != b.shape:
            ok = False
            problems.append(f"output {i}: shape {getattr(a, 'shape', None)} != {tuple(b.shape)}")
            max_abs = float("inf")
            continue
        a64, b64 = a.detach().cpu().double(), b.detach().cpu().double()
        if a64.numel():
            max_abs = max(max_abs, float((a64 - b64).abs().max()))
        if not torch.allclose(a64, b64, atol=atol, rtol=rtol, equal_nan=True):
            ok = False
            problems.append(f"output {i}: outside atol {atol} / rtol {rtol}")
    return max_abs, ok, problems


def _input_shapes(inputs: Any) -> list[list[int]]:
    return [list(v.shape) if hasattr(v, "shape") else [] for v in inputs.flat]


def run_resolution(
    res: Resolution,
    client: KilnClient,
    *,
    fingerprint: dict[str, Any],
    telemetry: Telemetry,
    options: RunOptions = RunOptions(),
) -> dict[str, Any]:
    """Runs the resolver's choice; returns what ran and what was measured. A failure is reported, then raised."""
    from .inputs import synthesize_inputs
    from .loader import load, load_portable, require_torch

    torch = require_torch()

    def report(
        ran: str, outcome: str, error: KilnRuntimeError | None = None, latency: Any = None, about_portable: bool = False
    ) -> str | None:
        return telemetry.record(
            res,
            fingerprint=fingerprint,
            ran=ran,
            outcome=outcome,
            error=error,
            latency=latency,
            about_portable=about_portable,
        )

    # The choice first, so that a refused artifact stops the run before anything at all is loaded.
    try:
        model = load(res, client, fallback=options.fallback)
    except KilnRuntimeError as exc:
        if exc.code != ErrorCode.TORCH_MISSING:
            report("none", "failed", exc)
        raise
    try:
        portable = model if model.kind == "portable" else load_portable(res, client, why=["reference for comparison"])
    except KilnRuntimeError as exc:
        model.close()
        report("none", "failed", exc, about_portable=True)  # the reference failed, not the artifact
        raise
    artifact_error = model.fallback_error
    try:
        sets = []
        for i in range(max(1, options.sizes)):
            inputs = synthesize_inputs(portable.program, options.seed + i)
            if all(inputs.shapes() != s.shapes() for s in sets):
                sets.append(inputs)
        verification = (model.manifest or {}).get("verification") or {}
        atol = options.atol if options.atol is not None else float(verification.get("atol") or DEFAULT_ATOL)
        rtol = options.rtol if options.rtol is not None else float(verification.get("rtol") or DEFAULT_RTOL)
        max_abs, ok, problems, timings = 0.0, True, [], []
        # no_grad, as the compile driver times on the build host, so the speedups compare.
        with torch.no_grad():
            for inputs in sets:
                try:
                    ref_args, ref_kwargs = inputs.clone()
                    expected = portable(*ref_args, **ref_kwargs)
                    run_args, run_kwargs = inputs.clone()
                    actual = model(*run_args, **run_kwargs)
                except KilnRuntimeError:
                    raise
                except Exception as exc:
                    raise LoadError(
                        ErrorCode.RUN_FAILED, f"running the model failed: {type(exc).__name__}: {exc}"
                    ) from exc
                err, good, why = compare_outputs(actual, expected, atol, rtol)
                max_abs, ok = max(max_abs, err), ok and good
                problems += [f"inputs {inputs.shapes()}: {p}" for p in why]
                eager_ms, model_ms = median_ms(portable, model, inputs, warmup=options.warmup, runs=options.runs)
                timings.append((inputs, eager_ms, model_ms))
    except KilnRuntimeError as exc:
        report("none", "failed", exc)
        raise
    finally:
        model.close()
        if portable is not model:
            portable.close()

    latency = [
        {
            "inputShapes": _input_shapes(inputs),
            **({"artifactMs": model_ms} if model.kind == "artifact" else {}),
            "portableMs": eager_ms,
            "runs": options.runs,
        }
        for inputs, eager_ms, model_ms in timings
    ]
    mismatch = None
    if not ok:
        mismatch = OutputMismatchError(
            ErrorCode.OUTPUT_MISMATCH,
            f"the {model.description} differs from the portable graph beyond tolerance: " + "; ".join(problems),
            {"maxAbsError": max_abs, "atol": atol, "rtol": rtol},
        )
    failure = mismatch or artifact_error
    report_id = report(model.kind, "failed" if failure else "ok", failure, latency)
    first, eager_ms, model_ms = timings[0]
    return {
        "ran": {
            "kind": model.kind,
            "artifactId": model.artifact_id,
            "targetId": model.target_id,
            "path": str(model.path),
        },
        "fallbackError": artifact_error.to_json() if artifact_error else None,
        "inputs": first.shapes(),
        "seed": options.seed,
        "maxAbsError": max_abs,
        "atol": atol,
        "rtol": rtol,
        "withinTolerance": ok,
        "problems": problems,
        "eagerMs": eager_ms,
        "modelMs": model_ms,
        "speedup": eager_ms / model_ms if model_ms > 0 else 0.0,
        "latency": latency,
        "runs": options.runs,
        "threads": torch.get_num_threads(),
        "reportId": report_id,
        "description": model.description,
        "mismatch": mismatch,
    }
