"""What starting the verifier before the compile saves (issue 17, item 6): the verification's wall time once the
artifact's parts exist, with a verifier process started then (cold: interpreter start and torch import on the
critical path, as before) vs one started earlier that has been waiting (warm: what `Verifier.start()` during the
compile gives). Same artifact, same machine, runs interleaved (cold, warm, cold, warm, ...).

    .kiln/venv/bin/python bench/verifier_start.py [MODEL.pt2] [--runs N]

Builds MODEL (default: the MLP fixture) once for linux-x86_64-v3 with the compile driver, keeping its work dir,
then verifies that artifact 2 x N times. Prints one line per run and a JSON summary with the medians and the
saving.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# conftest: the driver tests' make_job (the catalog recipe, as the worker writes the job).
sys.path[:0] = [
    str(REPO / "python" / "driver"),
    str(REPO / "python" / "runtime"),
    str(REPO / "python/driver/tests"),
]

from conftest import make_job
from kiln_driver.progress import Events
from kiln_driver.verify import Verifier

WARM_WAIT_S = (
    20  # longer than any torch import seen here; a real compile takes 30 s and more
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "model", nargs="?", default=str(REPO / ".kiln" / "fixtures" / "mlp.pt2")
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="kiln-bench-verifier-"))
    try:
        work = base / "work"
        (base / "job.json").write_text(json.dumps(make_job(3)))
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(REPO / "python" / "driver"), str(REPO / "python" / "runtime")]
        )
        build = subprocess.run(
            [
                sys.executable,
                "-m",
                "kiln_driver",
                "build",
                "--model",
                args.model,
                "--job",
                str(base / "job.json"),
            ]
            + ["--out", str(base / "out"), "--work-dir", str(work)],
            capture_output=True,
            text=True,
            check=False,
        )
        if build.returncode != 0:
            raise SystemExit(f"the build failed:\n{build.stderr[-3000:]}")
        request = json.loads((work / "verify-request.json").read_text())
        # Timing samples until its interval is narrow or its budget is spent: on a busy host that is the budget,
        # whatever the start-up did. A small fixed budget keeps this a measure of the start-up.
        request.update(maxSeconds=1.0, warmup=1, runs=3)
        walls: dict[str, list[float]] = {"cold": [], "warm": []}
        for i in range(args.runs):
            for kind in ("cold", "warm"):
                verifier = Verifier()
                if kind == "warm":
                    verifier.start()
                    time.sleep(WARM_WAIT_S)  # the compile would be running now
                start = time.perf_counter()
                with verifier:
                    verification, _ = verifier.run(
                        request,
                        base / f"request-{kind}-{i}.json",
                        Events(io.StringIO()),
                    )
                wall = time.perf_counter() - start
                assert verification["passed"], verification
                walls[kind].append(wall)
                print(f"run {i + 1} {kind}: {wall:.2f} s", flush=True)
        cold, warm = statistics.median(walls["cold"]), statistics.median(walls["warm"])
        print(
            json.dumps(
                {
                    "coldMedianS": round(cold, 2),
                    "warmMedianS": round(warm, 2),
                    "savedS": round(cold - warm, 2),
                    "warmOverCold": round(warm / cold, 3),
                    "runs": args.runs,
                }
            )
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
