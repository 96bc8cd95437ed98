"""A weights-only update vs the first compile (issue 17, item 2): wall time of the compile driver, same run.

    .kiln/venv/bin/python bench/weights_update.py [--models mlp cnn] [--repeats N]

For each model, N times in turn: a full build of MODEL for linux-x86_64-v3 (the first compile), then a build of
MODEL-retrained (the same program, other weights: test/fixtures/make_models.py) with the full build's code part as
its code donor (the weights-only update). Both are the driver's CLI as the worker runs it (a subprocess, its own
TMPDIR and inductor cache, verification in a fresh process and timing included). Per run it prints the driver's
wall, the `compiling` phase's wall (from the driver's own phase events) and whether the code part was reused;
then a JSON summary with the medians and the ratios update / first compile. Goal of the issue: ≤ 0.20.
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
# conftest: the driver tests' make_job (the catalog recipe, as the worker writes the job) and run_driver (the
# driver's CLI as a subprocess, as the worker runs it).
sys.path[:0] = [
    str(REPO / "python" / "driver"),
    str(REPO / "python" / "runtime"),
    str(REPO / "python/driver/tests"),
]

from conftest import DriverRun, fixtures_dir, make_job, run_driver


def _timed(model: Path, job: dict[str, Any], base: Path) -> tuple[DriverRun, float]:
    start = time.monotonic()
    run = run_driver(model, job, base)
    wall = time.monotonic() - start
    if run.returncode != 0:
        raise SystemExit(
            f"{model.name}: the driver failed ({run.returncode}): {run.stderr[-2000:]}"
        )
    return run, wall


def bench(model: str, repeats: int, root: Path) -> dict[str, Any]:
    fixtures = fixtures_dir()
    rows: list[dict[str, Any]] = []
    for i in range(repeats):
        base = root / f"{model}-{i}"
        first, first_wall = _timed(
            fixtures / f"{model}.pt2", make_job(3), base / "first"
        )
        code = next(p for p in first.manifest["parts"] if p["role"] == "code")
        update_dir = base / "update"
        (update_dir / "donor").mkdir(parents=True)
        shutil.copyfile(
            first.out / "parts" / code["sha256"], update_dir / "donor" / "code.zip"
        )
        job = make_job(
            3,
            modelContentHash="12" * 32,
            codeDonor={
                "codePart": "donor/code.zip",
                "sha256": code["sha256"],
                "cacheKey": "ef" * 32,
            },
        )
        update, update_wall = _timed(
            fixtures / f"{model}-retrained.pt2", job, update_dir
        )
        first_phases, update_phases = first.phase_walls, update.phase_walls
        row = {
            "model": model,
            "firstWallS": round(first_wall, 2),
            "firstCompilingS": first_phases["compiling"],
            "updateWallS": round(update_wall, 2),
            "updateCompilingS": update_phases["compiling"],
            "reused": update.manifest["reuse"]["reused"],
            "codegenS": update.manifest["reuse"]["codegenSeconds"],
            "firstPhases": first_phases,
            "updatePhases": update_phases,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        shutil.rmtree(base, ignore_errors=True)

    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in rows), 2)

    summary = {
        "model": model,
        "runs": repeats,
        "allReused": all(r["reused"] for r in rows),
        "firstWallS": median("firstWallS"),
        "updateWallS": median("updateWallS"),
        "firstCompilingS": median("firstCompilingS"),
        "updateCompilingS": median("updateCompilingS"),
    }
    summary["wallRatio"] = round(summary["updateWallS"] / summary["firstWallS"], 3)
    summary["compilingRatio"] = round(
        summary["updateCompilingS"] / summary["firstCompilingS"], 3
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"]
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    missing = [
        m
        for name in args.models
        for m in (name, f"{name}-retrained")
        if not (fixtures_dir() / f"{m}.pt2").exists()
    ]
    if missing:
        raise SystemExit(
            f"missing fixtures {missing}: python test/fixtures/make_models.py {fixtures_dir()}"
        )
    with tempfile.TemporaryDirectory(prefix="kiln-weights-update-") as tmp:
        summaries = [bench(m, args.repeats, Path(tmp)) for m in args.models]
    print(json.dumps({"summary": summaries}, indent=2))


if __name__ == "__main__":
    main()
