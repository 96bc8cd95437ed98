"""Fresh-process check of assembled CUDA artifacts (step 6 of cuda_builds.py), one process per model.

    python bench/cuda/load_and_time.py REQUEST.json DRIVER_SRC RUNTIME_SRC

REQUEST.json: {"portable": MODEL.pt2, "artifacts": [{"name", "manifest", "parts", "work"}, ...]}. For each artifact:
assemble it from its parts as a device does, load it with the driver's loader (and the device runtime's, when
python/runtime has one), compare it with the fp32 portable graph on every input set it accepts (TF32 off), and
time eager vs compiled on the export-size inputs and on the largest accepted inputs: 20 warm-ups, then 200
rounds of one synchronized call of each, interleaved; median and best of each. Self-contained on purpose (the
driver's own timing code may change): torch.cuda.synchronize() after every call, wall clock. Prints one JSON list.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEVICE = os.environ.get(
    "KILN_BENCH_DEVICE", "cuda"
)  # "cpu" to try this script without a GPU


def _sync() -> None:
    import torch

    if DEVICE == "cuda":
        torch.cuda.synchronize()


def time_ms(
    fns: list[Callable[[], Any]], warmup: int = 20, runs: int = 200
) -> list[dict[str, float]]:
    for _ in range(warmup):
        for fn in fns:
            fn()
    _sync()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            _sync()
            samples[i].append((time.perf_counter() - start) * 1000.0)
    return [
        {"median": round(statistics.median(s), 4), "best": round(min(s), 4)}
        for s in samples
    ]


def main() -> None:
    request, driver_src, runtime_src = sys.argv[1:4]
    sys.path[:0] = [driver_src, runtime_src]
    import torch
    from kiln_driver.compare import compare_outputs, ieee_fp32
    from kiln_driver.compile import load_program, program_on
    from kiln_driver.input_checks import set_is_accepted
    from kiln_driver.inputs import (
        call_args,
        input_shapes,
        materialize,
        plan_inputs,
        set_bytes,
    )
    from kiln_driver.package_parts import assemble_package
    from kiln_driver.verify import load_compiled

    req = json.loads(Path(request).read_text())
    ieee_fp32(DEVICE)
    ep = program_on(load_program(Path(req["portable"])), DEVICE)
    ref = ep.module()
    plan = plan_inputs(ep, 0, DEVICE)

    def call(fn: Any, flat: list[Any]) -> Any:
        args, kwargs = call_args(ep, flat)
        return fn(*args, **kwargs)

    results = []
    for art in req["artifacts"]:
        m = json.loads(Path(art["manifest"]).read_text())
        parts = Path(art["parts"])
        code = next(p for p in m["parts"] if p["role"] == "code")
        weights = [
            (p["entry"], parts / p["sha256"])
            for p in m["parts"]
            if p["role"] == "weights"
        ]
        package = assemble_package(
            parts / code["sha256"], weights, Path(art["work"]) / "assembled.pt2"
        )
        started = time.perf_counter()
        compiled = load_compiled(package)
        load_s = time.perf_counter() - started
        sets = [
            s
            for s in plan["sets"]
            if set_is_accepted(input_shapes(s), m["inputRanges"]["dims"])
        ]
        atol, rtol = m["verification"]["atol"], m["verification"]["rtol"]
        checks, timings = [], []
        with torch.no_grad():
            for i, specs in enumerate(sets):
                flat = materialize(specs, 100 + i, DEVICE)
                c = compare_outputs(call(ref, flat), call(compiled, flat), atol, rtol)
                checks.append(
                    {
                        "shapes": input_shapes(specs),
                        "maxAbsError": c["maxAbsError"],
                        "passed": c["passed"],
                    }
                )
            for label, specs in (
                ("export size", sets[0]),
                ("largest", max(sets, key=set_bytes)),
            ):
                flat = materialize(specs, 7, DEVICE)
                eager, fast = time_ms(
                    [
                        lambda flat=flat: call(ref, flat),
                        lambda flat=flat, fn=compiled: call(fn, flat),
                    ]
                )
                timings.append(
                    {
                        "inputs": label,
                        "shapes": input_shapes(specs),
                        "eagerMs": eager["median"],
                        "compiledMs": fast["median"],
                        "speedup": round(eager["median"] / fast["median"], 3),
                        "eagerBestMs": eager["best"],
                        "compiledBestMs": fast["best"],
                        "speedupOfBest": round(eager["best"] / fast["best"], 3),
                    }
                )
        runtime: dict[str, Any]
        try:
            from kiln_runtime import loader

            started = time.perf_counter()
            other = loader.load_aoti_package(package, 0 if DEVICE == "cuda" else -1)
            runtime_s = time.perf_counter() - started
            flat = materialize(sets[0], 5, DEVICE)
            with torch.no_grad():
                same = compare_outputs(
                    call(compiled, flat), call(other, flat), 0.0, 0.0
                )["passed"]
            runtime = {
                "loaded": True,
                "loadSeconds": round(runtime_s, 3),
                "sameOutputsAsDriverLoader": same,
            }
            del other
        except Exception as exc:  # noqa: BLE001 - optional: the runtime is someone else's work in progress
            runtime = {"loaded": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
        results.append(
            {
                "name": art["name"],
                "target": m["target"],
                "precision": m.get("precision"),
                "loadSeconds": round(load_s, 3),
                "checks": checks,
                "timings": timings,
                "deviceRuntimeLoader": runtime,
            }
        )
        del compiled
    print(json.dumps(results))


if __name__ == "__main__":
    main()
