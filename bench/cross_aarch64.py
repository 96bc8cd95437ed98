"""linux-aarch64 cross builds vs native x86 builds of the same model (issue 13): driver wall per phase, same run.

    .kiln/venv/bin/python bench/cross_aarch64.py [--models mlp transformer] [--repeats N]

Needs the toolchain of `scripts/setup.sh --cross`. For each model, N times in turn: a native build for
linux-x86_64-v3 (compile, verification in a fresh process, timing) and a cross build for linux-aarch64 (compile
through the cross compiler, verification under qemu-aarch64 with the aarch64 torch, no timing). Both are the
driver's CLI as the worker runs it (a subprocess, its own TMPDIR and inductor cache). Per run it prints the wall
and the wall of each phase (from the driver's own phase events); then a JSON summary of the medians and the ratios
cross / native.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [
    str(REPO / "python" / "driver"),
    str(REPO / "python" / "runtime"),
    str(REPO / "python/driver/tests"),
]

from conftest import fixtures_dir, make_job, run_driver
from test_cross_aarch64 import cross_job, installed_toolchain


def one(model: Path, job: dict[str, Any], work: Path) -> dict[str, Any]:
    start = time.monotonic()
    run = run_driver(model, job, work, timeout=1800)
    wall = time.monotonic() - start
    if run.returncode != 0:
        raise SystemExit(f"build failed: {run.stderr[-3000:]}")
    m = run.manifest
    return {
        "wall": round(wall, 2),
        "phases": run.phase_walls,
        "compileSeconds": m["build"]["compileSeconds"],
        "maxAbsError": m["verification"]["maxAbsError"],
        "inputSets": len(m["verification"]["inputShapes"]),
        "codeBytes": next(p["size"] for p in m["parts"] if p["role"] == "code"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "transformer"])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    toolchain = installed_toolchain()
    summary: dict[str, Any] = {}
    for name in args.models:
        model = fixtures_dir() / f"{name}.pt2"
        runs: dict[str, list[dict[str, Any]]] = {"native": [], "cross": []}
        for i in range(args.repeats):
            for kind, job in (("native", make_job(3)), ("cross", cross_job(toolchain))):
                work = Path(tempfile.mkdtemp(prefix=f"kiln-bench-{kind}-"))
                try:
                    r = one(model, job, work)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                runs[kind].append(r)
                print(f"{name} {kind} #{i + 1}: {json.dumps(r)}", flush=True)

        def med(
            kind: str,
            key: str,
            phase: str | None = None,
            runs: dict[str, list[dict[str, Any]]] = runs,
        ) -> float:
            values = [
                r["phases"].get(phase, 0.0) if phase else r[key] for r in runs[kind]
            ]
            return round(statistics.median(values), 2)

        summary[name] = {
            kind: {
                "wall": med(kind, "wall"),
                "compiling": med(kind, "", "compiling"),
                "verifying": med(kind, "", "verifying"),
                "timing": med(kind, "", "timing"),
                "compileSeconds": med(kind, "compileSeconds"),
                "codeBytes": runs[kind][0]["codeBytes"],
                "maxAbsError": max(r["maxAbsError"] for r in runs[kind]),
            }
            for kind in runs
        }
        s = summary[name]
        s["ratios"] = {
            "wall": round(s["cross"]["wall"] / s["native"]["wall"], 2),
            "compileSeconds": round(
                s["cross"]["compileSeconds"] / s["native"]["compileSeconds"], 2
            ),
            "verifying": round(
                s["cross"]["verifying"] / max(s["native"]["verifying"], 1e-9), 2
            ),
        }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
